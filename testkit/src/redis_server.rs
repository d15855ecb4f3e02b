//! A real `redis-server` for tests: on a free 127.0.0.1 port, in its own temporary folder,
//! with no persistence (`--save ''`, no AOF), killed on drop. [`RedisServer::start`] returns
//! once the server answers `PING`.
//!
//! The binary is `$MCP_BRIDGE_REDIS_SERVER`, else `redis-server` on `PATH` (`make test`
//! installs the pinned Debian package: `tests/infra/install.sh`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::infra::TempDir;
use crate::proc::{Proc, ProcOptions};

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `redis-server`; killed and its folder removed on drop.
pub struct RedisServer {
    proc: Proc,
    addr: SocketAddr,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port. Panics (with the server's output) if it cannot.
    pub fn start() -> RedisServer {
        RedisServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start() -> Result<RedisServer, String> {
        let dir = TempDir::new("redis")?;
        // A port picked free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let addr = crate::infra::free_port()?;
            match RedisServer::spawn_on(addr, &dir.0) {
                Ok(proc) => return Ok(RedisServer { proc, addr, dir }),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts again on the same port (and folder) after [`RedisServer::kill`]: a restart.
    pub fn restart(&mut self) -> Result<(), String> {
        self.proc.stop();
        self.proc = RedisServer::spawn_on(self.addr, &self.dir.0)?;
        Ok(())
    }

    /// Kills the server (SIGKILL) and waits until it is gone; [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        self.proc.stop();
    }

    fn spawn_on(addr: SocketAddr, dir: &std::path::Path) -> Result<Proc, String> {
        let bin = crate::infra::binary("MCP_BRIDGE_REDIS_SERVER", "redis-server")?;
        let mut cmd = Command::new(&bin);
        cmd.current_dir(dir).args([
            "--bind",
            "127.0.0.1",
            "--port",
            &addr.port().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.to_string_lossy(),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
            "--loglevel",
            "notice",
        ]);
        let mut proc = Proc::spawn("redis-server", cmd, ProcOptions::default())?;
        if let Err(e) = proc.wait_output("Ready to accept connections", START_TIMEOUT) {
            return Err(format!("{e}\n{}", proc.report(30)));
        }
        ping(addr).map_err(|e| format!("redis-server on {addr}: {e}\n{}", proc.report(30)))?;
        Ok(proc)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The server's log so far, for failure messages.
    pub fn report(&self) -> String {
        self.proc.report(40)
    }
}

/// Sends an inline `PING` and expects `+PONG`.
pub fn ping(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"PING\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\r\n") && Instant::now() < deadline {
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    if got == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", String::from_utf8_lossy(&got)))
    }
}
