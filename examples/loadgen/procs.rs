//! The suite's child processes (fake upstreams and bridges, through the testkit's process
//! helper) and what is read of them from /proc.

use std::fs;
use std::process::Command;
use std::time::Duration;

use mcp_testkit::proc::{Proc, ProcOptions};

use super::SuiteArgs;
use crate::client::ClientKind;

/// Starts a child whose stderr goes to `<log_dir>/<name>.log`; its pid is recorded in
/// `<log_dir>/pids` for bench/run.sh, which ends the children if this driver is killed.
pub(super) fn spawn(name: &str, cmd: Command, args: &SuiteArgs) -> Result<Proc, String> {
    let opts = ProcOptions {
        stdin: true,
        stderr_log: Some(args.log_dir.join(format!("{name}.log"))),
        pid_file: Some(args.log_dir.join("pids")),
    };
    Proc::spawn(name, cmd, opts)
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The soft `Max open files` limit of this process (children inherit it).
pub(super) fn fd_limit() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub(super) struct Upstream {
    pub kind: ClientKind,
    pub url: String,
    /// None for an external server.
    proc: Option<Proc>,
}

impl Upstream {
    /// A server this suite did not start (no stats).
    pub fn external(kind: ClientKind, url: String) -> Upstream {
        Upstream {
            kind,
            url,
            proc: None,
        }
    }

    pub fn sessions(&mut self) -> Option<usize> {
        self.stats().map(|s| s.0)
    }

    /// (sessions, open SSE streams) of the fake upstream; None for an external server.
    pub fn stats(&mut self) -> Option<(usize, usize)> {
        let p = self.proc.as_mut()?;
        p.send_line("stats").ok()?;
        let l = p.wait_line("stats ", Duration::from_secs(5)).ok()?;
        let mut it = l.split_whitespace().skip(1).map(|v| v.parse().ok());
        Some((it.next()??, it.next()??))
    }
}

pub(super) fn start_upstream(kind: ClientKind, args: &SuiteArgs) -> Result<Upstream, String> {
    if args.upstream_transport == Some(kind) {
        if let Some(url) = &args.upstream_url {
            return Ok(Upstream {
                kind,
                url: url.clone(),
                proc: None,
            });
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let name = format!("upstream-{}", kind.as_str());
    let mut cmd = Command::new(exe);
    cmd.args([
        "upstream",
        "--transport",
        kind.as_str(),
        "--workers",
        &args.upstream_workers.to_string(),
    ]);
    let mut p = spawn(&name, cmd, args)?;
    let line = p.wait_line("url ", Duration::from_secs(10))?;
    Ok(Upstream {
        kind,
        url: line["url ".len()..].trim().to_string(),
        proc: Some(p),
    })
}

pub(super) struct Bridge {
    pub proc: Proc,
    pub base: String,
}

pub(super) fn start_bridge(up: &Upstream, args: &SuiteArgs, tag: &str) -> Result<Bridge, String> {
    let mut cmd = Command::new(&args.bridge);
    cmd.args([
        "--upstream",
        &up.url,
        "--upstream-transport",
        match up.kind {
            ClientKind::Legacy => "sse",
            ClientKind::Streamable => "streamable",
            ClientKind::Modern => "streamable-2026",
        },
        "--listen",
        "127.0.0.1:0",
        "--max-sessions",
        "100000",
    ]);
    if args.bridge_workers > 0 {
        cmd.args(["--workers", &args.bridge_workers.to_string()]);
    }
    cmd.args(&args.bridge_args);
    bridge_from(cmd, args, tag)
}

/// Starts the bridge command `cmd` and waits for its listening line.
pub(super) fn bridge_from(cmd: Command, args: &SuiteArgs, tag: &str) -> Result<Bridge, String> {
    let mut p = spawn(&format!("bridge-{tag}"), cmd, args)?;
    let line = p.wait_line("mcp-bridge listening on ", Duration::from_secs(10))?;
    let base = line["mcp-bridge listening on ".len()..].trim().to_string();
    Ok(Bridge { proc: p, base })
}
