//! Bridge replicas as real processes (the `mcp-bridge` binary), sharing a real redis-server,
//! behind a real haproxy that balances every request round-robin: what an operator runs.
//! A replica can be killed (SIGKILL), stopped (SIGTERM: its drain) and restarted on the same
//! port with the same flags; its output is kept across restarts for the assertions.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use mcp_testkit::haproxy::Haproxy;
use mcp_testkit::infra::free_port;
use mcp_testkit::proc::{strip_ansi, Proc, ProcOptions};
use mcp_testkit::redis_server::RedisServer;

/// The secret every replica of a group shares.
pub const SECRET: &str = "a-replica-secret-for-process-tests-0123456789";
const START_DEADLINE: Duration = Duration::from_secs(20);
const LISTENING: &str = "mcp-bridge listening on ";

/// A secret file that goes away with the group.
pub struct SecretFile(PathBuf);

impl SecretFile {
    pub fn new(content: &str) -> SecretFile {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let path = std::env::temp_dir().join(format!("mcp-bridge-secret-{name}"));
        std::fs::write(&path, content).unwrap();
        SecretFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One replica process; restartable on the same ports with the same flags.
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    args: Vec<String>,
    rust_log: String,
    proc: Option<Proc>,
    /// The output of its earlier incarnations.
    earlier: String,
    /// How many times it was started.
    pub starts: usize,
}

impl Replica {
    /// Starts a replica on free ports; `flags` are everything but `--listen`,
    /// `--replica-address` and `--admin-listen`.
    fn start(name: String, flags: &[String], rust_log: &str) -> Replica {
        let mut last = String::new();
        // A port picked free may be taken before the replica binds it: try a few.
        for _ in 0..3 {
            let addr = free_port().unwrap();
            let admin = free_port().unwrap();
            let mut args = flags.to_vec();
            args.extend([
                "--listen".into(),
                addr.to_string(),
                "--replica-address".into(),
                format!("http://{addr}"),
                "--admin-listen".into(),
                admin.to_string(),
            ]);
            let mut r = Replica {
                name: name.clone(),
                addr,
                admin,
                args,
                rust_log: rust_log.to_owned(),
                proc: None,
                earlier: String::new(),
                starts: 0,
            };
            match r.spawn() {
                Ok(()) => return r,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("could not start {name}: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MCP_BRIDGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(&self.args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", &self.rust_log);
        let mut proc = Proc::spawn(&self.name, cmd, ProcOptions::default())?;
        self.starts += 1;
        match proc.wait_line(LISTENING, START_DEADLINE) {
            Ok(line) if line.ends_with(&self.addr.to_string()) => {
                self.proc = Some(proc);
                Ok(())
            }
            Ok(line) => Err(format!("{}: announced {line:?}", self.name)),
            Err(e) => Err(format!("{e}\n{}", proc.report(40))),
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("running").pid()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// kill -9, reaped; its output is kept.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
            self.earlier.push_str(&p.output());
        }
    }

    /// SIGTERM: the replica drains and exits by itself.
    pub fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("a pid fits");
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}");
    }

    /// Waits for the process to exit by itself; its output is kept. `None`: still running
    /// after `timeout` (it is then killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut p = self.proc.take().expect("running");
        let status = p.wait_exit(timeout);
        p.stop();
        self.earlier.push_str(&p.output());
        status
    }

    /// Starts again with the same ports and flags (after `kill9` or `wait_exit`).
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "{} is still running", self.name);
        if let Err(e) = self.spawn() {
            panic!("restarting {}: {e}", self.name);
        }
    }

    /// Its whole output so far, every incarnation, without colour codes.
    pub fn log(&self) -> String {
        let now = self.proc.as_ref().map(Proc::output).unwrap_or_default();
        strip_ansi(&format!("{}{now}", self.earlier))
    }

    /// Waits until its current incarnation has printed `needle`.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        self.proc
            .as_mut()
            .expect("running")
            .wait_output(needle, timeout)
    }

    /// The value of the Prometheus sample `series` (`name{labels}`, exact) on `/metrics`, 0
    /// when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let (status, body) = http_get(self.admin, "/metrics");
        assert_eq!(
            status, 200,
            "{}: /metrics answered {status}: {body}",
            self.name
        );
        body.lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum()
    }

    /// The sum of every sample of the metric `name` (all label sets).
    pub fn metric_sum(&self, name: &str) -> f64 {
        let (status, body) = http_get(self.admin, "/metrics");
        assert_eq!(status, 200, "{}: /metrics answered {status}", self.name);
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| matches!(l.as_bytes().get(name.len()), Some(b'{' | b' ')))
            .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .sum()
    }

    /// `GET /readyz` on the admin listener: (status, body).
    pub fn readyz(&self) -> (u16, String) {
        http_get(self.admin, "/readyz")
    }

    pub fn report(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "----- {} ({}), last {} lines -----\n{}\n----- end {} -----",
            self.name,
            self.addr,
            all.len() - start,
            all[start..].join("\n"),
            self.name
        )
    }
}

/// Redis, `n` replicas in front of one upstream, and haproxy rotating over them.
pub struct Group {
    pub redis: RedisServer,
    pub replicas: Vec<Replica>,
    pub lb: Haproxy,
    _secret: SecretFile,
}

impl Group {
    /// `flags`: the upstream and anything else every replica gets (`--upstream URL`, ...).
    pub fn start(n: usize, flags: &[&str], rust_log: &str) -> Group {
        let redis = RedisServer::start();
        let secret = SecretFile::new(SECRET);
        let mut common: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        common.extend([
            "--redis".into(),
            redis.url(),
            "--replica-secret-file".into(),
            secret.path().into(),
        ]);
        let replicas: Vec<Replica> = (0..n)
            .map(|i| Replica::start(format!("replica r{i}"), &common, rust_log))
            .collect();
        let backends: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
        let lb = Haproxy::start(&backends);
        Group {
            redis,
            replicas,
            lb,
            _secret: secret,
        }
    }

    /// Through haproxy: `http://LB` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lb.url())
    }

    /// Sessions held by each running replica (its `mcp_bridge_sessions` gauges).
    pub fn sessions(&self) -> Vec<f64> {
        self.replicas
            .iter()
            .map(|r| {
                if r.is_running() {
                    r.metric_sum("mcp_bridge_sessions")
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The one running replica holding sessions, when exactly one does.
    pub fn only_owner(&self) -> Option<usize> {
        let held: Vec<usize> = self
            .sessions()
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0.0)
            .map(|(i, _)| i)
            .collect();
        match held[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Everyone's recent output, for failure messages.
    pub fn report(&self) -> String {
        let mut out: Vec<String> = self.replicas.iter().map(|r| r.report(60)).collect();
        out.push(self.lb.report());
        let odd: Vec<String> = self
            .lb
            .requests()
            .into_iter()
            .filter(|l| !(200..300).contains(&l.status))
            .map(|l| l.line)
            .collect();
        out.push(format!(
            "----- haproxy: requests not answered 2xx -----\n{}",
            odd.join("\n")
        ));
        out.push(self.redis.report());
        out.join("\n")
    }
}

/// A blocking `GET` (HTTP/1.0, whole answer): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
