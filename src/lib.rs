//! mcp-bridge: lets MCP clients and servers of the legacy HTTP+SSE transport (2024-11-05)
//! and of Streamable HTTP (2025-03-26 and later) talk to each other.
//!
//! ```text
//! client ─HTTP─▶ downstream ─Message─▶ Session ─Message─▶ upstream ─HTTP─▶ server
//!        ◀─SSE──  (legacy_sse |  ◀─────  (router,  ◀───── (streamable |  ◀─SSE/JSON─
//!                  streamable)            streams)          legacy_sse | auto)
//! ```

pub mod config;
pub mod downstream;
pub mod error;
pub mod jsonrpc;
pub mod observe;
pub mod session;
pub mod sse;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

pub use config::Config;
use downstream::AppState;
use session::SessionMap;
use upstream::UpstreamShared;

/// Bind and build the server; nothing runs until the returned future is awaited.
fn build(cfg: Config) -> std::io::Result<(Server, SocketAddr, Arc<SessionMap>)> {
    let cfg = Arc::new(cfg);
    let sessions = Arc::new(SessionMap::new(cfg.max_sessions));
    let state = web::Data::new(AppState {
        cfg: cfg.clone(),
        sessions: sessions.clone(),
        upstream: Arc::new(UpstreamShared::new(cfg.clone())),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(downstream::dispatch))
    })
    // SSE streams are long-lived: never time a response out, and let shutdown be quick.
    .keep_alive(actix_web::http::KeepAlive::Os)
    .client_request_timeout(Duration::from_secs(30))
    .shutdown_timeout(1)
    // Small SSE frames must not wait for ACKs (Nagle): latency is the product.
    .tcp_nodelay(true)
    .disable_signals();
    if cfg.workers > 0 {
        server = server.workers(cfg.workers);
    }
    let server = server.bind(cfg.listen)?;
    let addr = *server.addrs().first().expect("bound one address");
    Ok((server.run(), addr, sessions))
}

/// Reap idle sessions and expired streams on an interval.
fn spawn_reaper(sessions: Arc<SessionMap>, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            sessions.sweep(idle);
        }
    });
}

/// Run the bridge until Ctrl-C / SIGTERM. Prints `mcp-bridge listening on http://ADDR`.
pub async fn run(cfg: Config) -> std::io::Result<()> {
    let idle = cfg.session_idle_timeout;
    let (server, addr, sessions) = build(cfg)?;
    println!("mcp-bridge listening on http://{addr}");
    tracing::info!(%addr, "listening");
    spawn_reaper(sessions.clone(), idle);
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
    server.await?;
    sessions.end_all();
    Ok(())
}

/// A bridge running on its own thread (for tests and embedding). Stops when dropped.
pub struct Bridge {
    pub addr: SocketAddr,
    sessions: Arc<SessionMap>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// Start a bridge on a thread of its own with its own actix system.
pub fn spawn(cfg: Config) -> std::io::Result<Bridge> {
    let (tx, rx) = std::sync::mpsc::channel();
    let idle = cfg.session_idle_timeout;
    let thread = std::thread::Builder::new()
        .name("mcp-bridge".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match build(cfg) {
                    Ok((server, addr, sessions)) => {
                        spawn_reaper(sessions.clone(), idle);
                        let _ = tx.send(Ok((addr, sessions, server.handle())));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        })?;
    let (addr, sessions, handle) = rx
        .recv()
        .map_err(|_| std::io::Error::other("bridge thread died while starting"))??;
    Ok(Bridge {
        addr,
        sessions,
        handle,
        thread: Some(thread),
    })
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; its future only reports
        // completion, which joining the thread covers — so no runtime is needed here.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
