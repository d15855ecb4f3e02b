//! What the real-infrastructure helpers ([`crate::redis_server`], [`crate::haproxy`]) share:
//! finding their binaries, a free loopback port and a temporary folder.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `$env_var` when set, else `name` on `PATH` or in the sbin folders (Debian puts haproxy in
/// /usr/sbin, which a non-root `PATH` often lacks).
pub fn binary(env_var: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{name} not found: run `make infra-deps` (as root: `bash tests/infra/install.sh`) \
                 or set {env_var} to a {name} binary"
            )
        })
}

/// A 127.0.0.1 port that was free a moment ago (the caller retries if it is taken by then).
pub fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until `addr` accepts a TCP connection, within `timeout`.
pub fn wait_accepting(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let until = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= until => {
                return Err(format!("{addr} not accepting within {timeout:?}: {e}"))
            }
            // Connection refused comes back at once: pace the retries.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A temporary folder removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> Result<TempDir, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-bridge-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
