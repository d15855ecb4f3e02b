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
pub mod era;
pub mod error;
pub mod hex;
pub mod jsonrpc;
pub mod observe;
pub mod replica;
pub mod session;
pub mod sessionless;
pub mod sse;
pub mod tls;
pub mod transport;
pub mod upstream;

#[cfg(test)]
mod fuzz;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

pub use config::Config;
use downstream::AppState;
use observe::admin::Admin;
use observe::Observer;
use replica::membership::Membership;
use session::{EndReason, SessionMap};
use upstream::UpstreamShared;

/// A bound bridge, not yet running.
struct Built {
    server: Server,
    addr: SocketAddr,
    admin: Option<(Server, SocketAddr)>,
    sessions: Arc<SessionMap>,
    observer: Arc<Observer>,
    upstream: Arc<UpstreamShared>,
    sessionless: Arc<sessionless::Pool>,
    replicas: Option<Arc<Membership>>,
}

/// Bind and build the servers; nothing runs until they are awaited.
fn build(cfg: Config) -> std::io::Result<Built> {
    let cfg = Arc::new(cfg);
    let server_tls = tls::server_config(&cfg.deploy)?;
    let sessions = Arc::new(SessionMap::new(cfg.max_sessions, cfg.replay.total_bytes));
    let observer = Arc::new(Observer::new(&cfg));
    let upstream = Arc::new(UpstreamShared::new(
        cfg.clone(),
        tls::client_config(&cfg.deploy)?,
    )?);
    let replicas = match &cfg.replicas {
        Some(r) => Some(Membership::start(
            r,
            sessions.clone(),
            cfg.replay.events * 8,
        )?),
        None => None,
    };
    let sessionless = Arc::new(sessionless::Pool::new(
        upstream.clone(),
        observer.clone(),
        cfg.sessionless_max,
        cfg.sessionless_idle,
        replicas
            .as_ref()
            .map_or_else(Default::default, |m| m.state_sealer()),
    ));
    let admin = match cfg.admin_listen {
        Some(listen) => Some(build_admin(
            Admin {
                cfg: cfg.clone(),
                observer: observer.clone(),
                sessions: sessions.clone(),
                upstream: upstream.clone(),
                replicas: replicas.clone(),
            },
            listen,
        )?),
        None => None,
    };
    let state = web::Data::new(AppState {
        cfg: cfg.clone(),
        sessions: sessions.clone(),
        upstream: upstream.clone(),
        observer: observer.clone(),
        policy: Arc::new(downstream::Policy::load(&cfg)?),
        sessionless: sessionless.clone(),
        replicas: replicas.clone(),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(downstream::dispatch))
    })
    // SSE streams are long-lived: never time a response out, and let shutdown be quick.
    .keep_alive(actix_web::http::KeepAlive::Os)
    .client_request_timeout(Duration::from_secs(30))
    // A replica's drain keeps serving the connections it has while it stops taking new ones.
    .shutdown_timeout(
        cfg.replicas
            .as_ref()
            .map_or(1, |r| r.drain_timeout.as_secs() + 5),
    )
    // Small SSE frames must not wait for ACKs (Nagle): latency is the product.
    .tcp_nodelay(true)
    // A client closing its socket ends its SSE response (and a legacy session with its
    // upstream session) at once, not at the next keep-alive write.
    .h1_allow_half_closed(false)
    .disable_signals();
    if cfg.workers > 0 {
        server = server.workers(cfg.workers);
    }
    let server = match server_tls {
        Some(tls) => server.bind_rustls_0_23(cfg.listen, tls)?,
        None => server.bind(cfg.listen)?,
    };
    let addr = *server.addrs().first().expect("bound one address");
    Ok(Built {
        server: server.run(),
        addr,
        admin,
        sessions,
        observer,
        upstream,
        sessionless,
        replicas,
    })
}

fn build_admin(admin: Admin, listen: SocketAddr) -> std::io::Result<(Server, SocketAddr)> {
    let admin = web::Data::new(admin);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(admin.clone())
            .configure(observe::admin::routes)
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals()
    .bind(listen)?;
    let addr = *server.addrs().first().expect("bound one address");
    Ok((server.run(), addr))
}

/// Run the admin listener (if any) beside the bridge, and return the bridge's server.
fn start(built: Built, idle: Duration, lifetime: Duration) -> Server {
    spawn_reaper(
        built.sessions.clone(),
        built.sessionless.clone(),
        built.upstream.clone(),
        idle,
        lifetime,
    );
    if let Some((admin, addr)) = built.admin {
        tracing::info!(%addr, "admin listener: /healthz /readyz /metrics");
        actix_web::rt::spawn(admin);
    }
    built.server
}

/// Reap idle and too old sessions, and expired streams, on an interval.
fn spawn_reaper(
    sessions: Arc<SessionMap>,
    sessionless: Arc<sessionless::Pool>,
    upstream: Arc<UpstreamShared>,
    idle: Duration,
    lifetime: Duration,
) {
    let every = (idle.min(lifetime) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let (mut high, mut trims_left) = (0, 0);
        loop {
            tick.tick().await;
            sessions.sweep(idle, lifetime);
            sessionless.sweep(std::time::Instant::now());
            // After a burst of sessions has ended, hand the freed memory back to the OS
            // (the allocator keeps it otherwise, and RSS would stay at the peak). Counted by
            // upstream drivers, which outlive their session until the upstream session is
            // closed (a DELETE away); connections and tasks are freed a moment later still,
            // so the release is repeated on the next few ticks.
            let open = upstream.live_drivers().max(sessions.len());
            high = high.max(open);
            if high >= RELEASE_AFTER && open <= high / 2 {
                sessions.shrink();
                high = open;
                trims_left = RELEASE_TICKS;
            }
            if trims_left > 0 {
                trims_left -= 1;
                release_free_memory();
            }
        }
    });
}

/// Sessions that must have come and gone before freed memory is returned to the OS.
const RELEASE_AFTER: usize = 64;
/// Reaper ticks on which the memory freed after such a burst is returned.
const RELEASE_TICKS: u32 = 3;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Run the bridge until Ctrl-C / SIGTERM. Prints `mcp-bridge listening on http(s)://ADDR`.
pub async fn run(cfg: Config) -> std::io::Result<()> {
    let (idle, lifetime) = (cfg.session_idle_timeout, cfg.deploy.session_max_lifetime);
    let scheme = if cfg.deploy.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let built = build(cfg)?;
    let (addr, sessions, observer) = (built.addr, built.sessions.clone(), built.observer.clone());
    let upstream = built.upstream.clone();
    let built_upstream = built.upstream.clone();
    let kept = built.sessionless.clone();
    let replicas = built.replicas.clone();
    let drain_timeout = built_drain_timeout(&built);
    println!("mcp-bridge listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "listening");
    let server = start(built, idle, lifetime);
    let handle = server.handle();
    let ending = sessions.clone();
    let leaving = replicas.clone();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        if let Some(m) = &leaving {
            drain(m, &ending, drain_timeout).await;
        }
        // End sessions while the workers that own the upstream connections still run, so
        // every upstream session is closed (DELETE) before the process goes.
        let open = ending.len();
        tracing::info!(sessions = open, "shutting down: closing sessions");
        ending.end_all();
        kept.close_all();
        if !upstream.drained(Duration::from_secs(3)).await {
            tracing::warn!("some upstream sessions were not closed within 3s");
        }
        // No new connections from here on (a load balancer retries them elsewhere); the
        // open ones are served until they end.
        handle.stop(true).await;
    });
    let served = server.await;
    sessions.end_all();
    built_upstream.shutdown();
    if let Some(m) = &replicas {
        m.stop();
    }
    observer.close();
    served
}

fn built_drain_timeout(built: &Built) -> Duration {
    built
        .replicas
        .as_ref()
        .map_or(Duration::ZERO, |m| m.drain_timeout())
}

/// A replica's graceful exit: no new sessions, leave the group (the other replicas take this
/// one's Streamable sessions over at their next request), let requests in flight finish
/// while ending each Streamable session as soon as it is idle — still accepting connections
/// until no other replica can hold a route to this one — and then (the caller) stop
/// listening and end the legacy streams last (their clients reconnect to another replica).
async fn drain(m: &Membership, sessions: &SessionMap, timeout: Duration) {
    m.drain();
    m.leave().await;
    tracing::info!(sessions = sessions.len(), ?timeout, "draining");
    let now = tokio::time::Instant::now();
    let deadline = now + timeout;
    let routes_gone = now + replica::membership::ROUTE_TTL + Duration::from_millis(500);
    loop {
        let busy = sessions.end_idle_streamable(EndReason::Shutdown);
        let now = tokio::time::Instant::now();
        if (busy == 0 && now >= routes_gone) || now >= deadline {
            if busy > 0 {
                tracing::warn!(
                    sessions = busy,
                    "drain timeout: ending sessions with requests in flight"
                );
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A bridge running on its own thread (for tests and embedding). Stops when dropped.
pub struct Bridge {
    pub addr: SocketAddr,
    /// The admin listener's address, when `--admin-listen` was given.
    pub admin_addr: Option<SocketAddr>,
    sessions: Arc<SessionMap>,
    observer: Arc<Observer>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN_ADDR` + `path` (panics without `--admin-listen`).
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.admin_addr.expect("--admin-listen given")
        )
    }

    /// Flush the journal now (it is also flushed when the bridge stops).
    pub fn close_journal(&self) {
        self.observer.close();
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// Start a bridge on a thread of its own with its own actix system.
pub fn spawn(cfg: Config) -> std::io::Result<Bridge> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (idle, lifetime) = (cfg.session_idle_timeout, cfg.deploy.session_max_lifetime);
    let thread = std::thread::Builder::new()
        .name("mcp-bridge".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match build(cfg) {
                    Ok(built) => {
                        let info = (
                            built.addr,
                            built.admin.as_ref().map(|a| a.1),
                            built.sessions.clone(),
                            built.observer.clone(),
                        );
                        let upstream = built.upstream.clone();
                        let replicas = built.replicas.clone();
                        let server = start(built, idle, lifetime);
                        let _ = tx.send(Ok((info, server.handle())));
                        let _ = server.await;
                        // No stdio server outlives the bridge, nor stays a zombie.
                        upstream.shutdown();
                        if let Some(m) = replicas {
                            m.stop();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        })?;
    let ((addr, admin_addr, sessions, observer), handle) = rx
        .recv()
        .map_err(|_| std::io::Error::other("bridge thread died while starting"))??;
    Ok(Bridge {
        addr,
        admin_addr,
        sessions,
        observer,
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
        self.observer.close();
    }
}
