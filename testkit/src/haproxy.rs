//! A real HAProxy for tests: round-robin in HTTP mode in front of N backends, every request
//! balanced on its own (no stickiness, no preference for the last server, so requests on one
//! keep-alive connection still rotate), with long timeouts so SSE streams stay open. The
//! configuration is generated into a temporary folder; the process is killed on drop.
//!
//! The binary is `$MCP_BRIDGE_HAPROXY`, else `haproxy` on `PATH` or in /usr/sbin (`make test`
//! installs the pinned Debian package: `tests/infra/install.sh`).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::infra::{self, TempDir};
use crate::proc::{Proc, ProcOptions};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running haproxy; killed and its folder removed on drop.
pub struct Haproxy {
    proc: Proc,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts haproxy on a free port in front of `backends`. Panics (with its output) if it
    /// cannot.
    pub fn start(backends: &[SocketAddr]) -> Haproxy {
        Haproxy::try_start(backends).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(backends: &[SocketAddr]) -> Result<Haproxy, String> {
        if backends.is_empty() {
            return Err("haproxy needs at least one backend".into());
        }
        let bin = infra::binary("MCP_BRIDGE_HAPROXY", "haproxy")?;
        let dir = TempDir::new("haproxy")?;
        let mut last = String::new();
        // A port picked free may be taken before haproxy binds it: try a few.
        for _ in 0..5 {
            let addr = infra::free_port()?;
            let cfg = dir.0.join("haproxy.cfg");
            std::fs::write(&cfg, config(addr, backends))
                .map_err(|e| format!("{}: {e}", cfg.display()))?;
            let mut cmd = Command::new(&bin);
            // -db: foreground, no daemon; -f: our configuration only.
            cmd.current_dir(&dir.0).arg("-db").arg("-f").arg(&cfg);
            let mut proc = Proc::spawn("haproxy", cmd, ProcOptions::default())?;
            let up = infra::wait_accepting(addr, START_TIMEOUT);
            // A failed bind makes haproxy exit: then the port answering was someone else's.
            match (up, proc.exited()) {
                (Ok(()), None) => {
                    return Ok(Haproxy {
                        proc,
                        addr,
                        _dir: dir,
                    })
                }
                (up, status) => {
                    last = format!(
                        "haproxy did not come up on {addr} ({up:?}, exit {status:?})\n{}",
                        proc.report(30)
                    )
                }
            }
        }
        Err(last)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn report(&self) -> String {
        self.proc.report(40)
    }
}

/// The generated configuration: one frontend on `listen`, one round-robin backend.
pub fn config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "global\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 5s\n\
         \x20   timeout http-request 30s\n\
         # SSE streams stay open for as long as a test runs.\n\
         \x20   timeout client 1h\n\
         \x20   timeout server 1h\n\
         \x20   timeout tunnel 1h\n\
         # Each event goes out as soon as it arrives.\n\
         \x20   option http-no-delay\n\
         frontend bridge\n\
         \x20   bind {listen}\n\
         \x20   default_backend replicas\n\
         backend replicas\n\
         \x20   balance roundrobin\n\
         \x20   no option prefer-last-server\n"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!("    server r{i} {b}\n"));
    }
    cfg
}
