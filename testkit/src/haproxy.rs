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

    /// Every request haproxy has logged so far (it logs one when its answer ends), in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.proc
            .output()
            .lines()
            .filter_map(Logged::parse)
            .collect()
    }
}

/// One request as haproxy logged it (`option httplog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The backend's index, in the order given to [`Haproxy::start`]; `None` when no server
    /// took it (`<NOSRV>`).
    pub server: Option<usize>,
    /// The HTTP status haproxy answered with (its own 503 when no backend could be reached;
    /// -1 when it closed the client's connection without an answer).
    pub status: i32,
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The line as logged.
    pub line: String,
}

impl Logged {
    /// `IP:PORT [DATE] bridge replicas/rN Tq/Tw/Tc/Tr/Ta STATUS BYTES ... "METHOD URI HTTP/1.1"`
    pub fn parse(line: &str) -> Option<Logged> {
        let mut words = line.split_whitespace();
        let backend = words.find(|w| w.starts_with("replicas/"))?;
        let server = backend
            .strip_prefix("replicas/r")
            .and_then(|n| n.parse().ok());
        let _timers = words.next()?;
        let status = words.next()?.parse().ok()?;
        let request = line.rsplit_once(" \"")?.1.trim_end_matches('"');
        let mut parts = request.split(' ');
        Some(Logged {
            server,
            status,
            method: parts.next()?.to_owned(),
            uri: parts.next()?.to_owned(),
            line: line.to_owned(),
        })
    }
}

/// The generated configuration: one frontend on `listen`, one round-robin backend.
pub fn config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "global\n\
         \x20   maxconn 4096\n\
         # One line per request on stdout (collected by the test): which replica served it.\n\
         \x20   log stdout format raw local0\n\
         defaults\n\
         \x20   mode http\n\
         \x20   log global\n\
         \x20   option httplog\n\
         \x20   timeout connect 5s\n\
         # A replica that is down (killed, or restarting) refuses the connection: try another\n\
         # one at once instead of answering 503.\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         # A replica that stops (its drain ends) resets the connections still queued in its\n\
         # listen backlog, and may close an idle keep-alive connection as haproxy reuses it:\n\
         # the request got no answer at all. Without a retry haproxy closes the client's\n\
         # connection silently. Retried elsewhere instead; the cost: a request whose replica\n\
         # died (kill -9) before answering anything is sent again to another one.\n\
         \x20   retry-on conn-failure empty-response\n\
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_request_names_its_replica_status_and_request_line() {
        let l = Logged::parse(r#"127.0.0.1:40000 [03/Dec/2026:09:51:20.123] bridge replicas/r2 0/0/0/2/2 202 98 - - ---- 2/2/1/1/0 0/0 "POST /messages?sessionId=ab HTTP/1.1""#).unwrap();
        assert_eq!(l.server, Some(2));
        assert_eq!(l.status, 202);
        assert_eq!(
            (l.method.as_str(), l.uri.as_str()),
            ("POST", "/messages?sessionId=ab")
        );
        let none = Logged::parse(r#"127.0.0.1:40000 [03/Dec/2026:09:51:20.123] bridge replicas/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/3 0/0 "GET /mcp HTTP/1.1""#).unwrap();
        assert_eq!((none.server, none.status), (None, 503));
        assert_eq!(Logged::parse("[NOTICE] haproxy started"), None);
    }
}
