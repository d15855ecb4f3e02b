//! The upstream side: one connection per session to the MCP server, over whichever transport
//! the server speaks. Adapters share one interface (send a message; deliver what comes back
//! to the session; close) and know nothing about the client.
//!
//! awc clients are not `Send`, so each session's upstream connection lives on the worker
//! thread that created the session, driven by one task. The session holds only a `Send`
//! handle: a bounded command channel (policy when full: the client's request waits).

mod backoff;
pub mod headers;
mod http;
mod idle_watch;
mod legacy_sse;
mod process;
mod session_loss;
mod stdio;
mod streamable;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix_web::http::header::{HeaderName, HeaderValue};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::{Config, Upstream, UpstreamTransport};
use crate::error::UpstreamError;
use crate::jsonrpc::Message;
use crate::observe::Difference;
use crate::session::Session;

/// Headers that cross to the upstream with a client's message (see [`headers`]).
pub type ForwardHeaders = Vec<(HeaderName, HeaderValue)>;

/// What every session's upstream shares: the configuration, the TLS client settings and,
/// in `auto` mode, the transport detected for the upstream URL.
pub struct UpstreamShared {
    pub cfg: Arc<Config>,
    tls: Arc<rustls::ClientConfig>,
    detected: Mutex<Option<Kind>>,
    /// Driver tasks still running (each may owe its upstream a DELETE).
    live_drivers: AtomicUsize,
    /// The stdio server's processes (`--upstream-command`).
    processes: Option<process::Processes>,
}

impl UpstreamShared {
    pub fn new(
        cfg: Arc<Config>,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<UpstreamShared> {
        let processes = match &cfg.upstream {
            Upstream::Stdio(cmd) => Some(process::Processes::start(cmd.clone())?),
            Upstream::Http(_) => None,
        };
        Ok(UpstreamShared {
            cfg,
            tls,
            detected: Mutex::new(None),
            live_drivers: AtomicUsize::new(0),
            processes,
        })
    }

    /// The HTTP upstream's URL. HTTP adapters exist only for an HTTP upstream.
    fn url(&self) -> &url::Url {
        self.cfg
            .upstream
            .url()
            .expect("HTTP adapters run only for --upstream URL")
    }

    /// Stdio upstream: why no server process can start now (`None`: they do).
    pub fn stdio_problem(&self) -> Option<String> {
        self.processes.as_ref().and_then(|p| p.problem())
    }

    /// Stop and reap every stdio server process (after the server has stopped).
    pub fn shutdown(&self) {
        if let Some(p) = &self.processes {
            p.shutdown();
        }
    }

    /// Upstream connections still alive: one per session, until its upstream session is closed.
    pub fn live_drivers(&self) -> usize {
        self.live_drivers.load(Ordering::Acquire)
    }

    /// At shutdown, after every session was ended: wait (at most `deadline`) until the
    /// drivers have closed their upstream sessions.
    pub async fn drained(&self, deadline: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while self.live_drivers.load(Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    /// The upstream's transport as last seen (`unknown` before the first session).
    pub fn transport_name(&self) -> &'static str {
        if self.processes.is_some() {
            return "stdio";
        }
        match self.cfg.upstream_transport {
            UpstreamTransport::Streamable => "streamable",
            UpstreamTransport::Sse => "sse",
            UpstreamTransport::Auto => self.cached().map_or("unknown", Kind::as_str),
        }
    }

    fn cached(&self) -> Option<Kind> {
        *self.detected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember the detected transport; true when it changed.
    fn remember(&self, kind: Kind) -> bool {
        let mut d = self.detected.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *d != Some(kind);
        *d = Some(kind);
        changed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Streamable,
    Legacy,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Streamable => "streamable",
            Kind::Legacy => "sse",
        }
    }
}

/// Boxed: the channel preallocates a block of slots per session, and most sessions are idle.
enum Command {
    Send(Box<SendCommand>),
}

struct SendCommand {
    msg: Message,
    headers: ForwardHeaders,
    reply: oneshot::Sender<Result<(), UpstreamError>>,
}

#[derive(Default)]
struct CloseSignal {
    closed: AtomicBool,
    notify: Notify,
}

/// The session's `Send` handle on its upstream connection.
pub struct UpstreamHandle {
    tx: mpsc::Sender<Command>,
    close: Arc<CloseSignal>,
}

/// The other half of a handle, until the driver task is started.
pub struct Driver {
    rx: mpsc::Receiver<Command>,
    close: Arc<CloseSignal>,
}

/// Commands queued per session before a client's POST waits.
const COMMAND_QUEUE: usize = 64;

impl UpstreamHandle {
    pub fn new() -> (UpstreamHandle, Driver) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let close = Arc::new(CloseSignal::default());
        (
            UpstreamHandle {
                tx,
                close: close.clone(),
            },
            Driver { rx, close },
        )
    }

    /// Send one message; resolves when the upstream accepted it (HTTP 2xx), or with why not.
    pub async fn send(&self, msg: Message, headers: ForwardHeaders) -> Result<(), UpstreamError> {
        if self.close.closed.load(Ordering::Acquire) {
            return Err(UpstreamError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send(Box::new(SendCommand {
                msg,
                headers,
                reply,
            })))
            .await
            .map_err(|_| UpstreamError::Closed)?;
        rx.await.map_err(|_| UpstreamError::Closed)?
    }

    /// Close the upstream session (DELETE for Streamable, drop the stream for legacy).
    pub fn close(&self) {
        self.close.closed.store(true, Ordering::Release);
        self.close.notify.notify_one();
    }
}

impl Driver {
    /// Start the driver on the current worker thread.
    pub fn spawn(self, session: Weak<Session>, shared: Arc<UpstreamShared>) {
        actix_web::rt::spawn(drive(self, session, shared));
    }
}

/// Counts a driver as live for as long as it exists.
struct LiveDriver(Arc<UpstreamShared>);

impl LiveDriver {
    fn new(shared: &Arc<UpstreamShared>) -> LiveDriver {
        shared.live_drivers.fetch_add(1, Ordering::AcqRel);
        LiveDriver(shared.clone())
    }
}

impl Drop for LiveDriver {
    fn drop(&mut self) {
        self.0.live_drivers.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn drive(mut driver: Driver, session: Weak<Session>, shared: Arc<UpstreamShared>) {
    let _live = LiveDriver::new(&shared);
    let mut conn: Option<Conn> = None;
    loop {
        if driver.close.closed.load(Ordering::Acquire) {
            break;
        }
        let cmd = tokio::select! {
            cmd = driver.rx.recv() => cmd,
            _ = driver.close.notify.notified() => None,
        };
        let Some(Command::Send(send)) = cmd else {
            break;
        };
        let SendCommand {
            msg,
            headers,
            reply,
        } = *send;
        match &conn {
            Some(c) => {
                // Each send runs on its own so that a slow request never holds up the next.
                let c = c.clone();
                actix_web::rt::spawn(async move {
                    let _ = reply.send(c.send(msg, headers).await);
                });
            }
            // Boxed so that the idle driver (one per session) stays small.
            None => match Box::pin(connect(&shared, &session, msg, headers)).await {
                Ok(c) => {
                    conn = Some(c);
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }
    if let Some(c) = conn {
        Box::pin(c.close()).await;
    }
}

#[derive(Clone)]
enum Conn {
    Streamable(Rc<streamable::Upstream>),
    Legacy(Rc<legacy_sse::Upstream>),
    Stdio(Rc<stdio::Upstream>),
}

impl Conn {
    async fn send(&self, msg: Message, headers: ForwardHeaders) -> Result<(), UpstreamError> {
        match self {
            Conn::Streamable(u) => u.send(msg, headers).await,
            Conn::Legacy(u) => u.send(msg, headers).await,
            Conn::Stdio(u) => u.send(msg).await,
        }
    }

    async fn close(&self) {
        match self {
            Conn::Streamable(u) => u.close().await,
            Conn::Legacy(u) => u.close(),
            Conn::Stdio(u) => u.close(),
        }
    }
}

/// Connect with the session's first message (normally the client's `initialize`), choosing
/// the transport as configured. In `auto` mode this is the spec's backwards-compatibility
/// procedure: POST `initialize`; on 400/404/405 without a modern error body, GET the same
/// URL and wait for `endpoint`. The outcome is cached; when the cached choice stops
/// working (the server was upgraded or downgraded) the other is tried and cached instead.
async fn connect(
    shared: &Arc<UpstreamShared>,
    session: &Weak<Session>,
    first: Message,
    headers: ForwardHeaders,
) -> Result<Conn, UpstreamError> {
    if let Some(processes) = &shared.processes {
        return stdio::Upstream::open(shared.clone(), processes, session.clone(), first)
            .await
            .map(Conn::Stdio);
    }
    let order: &[Kind] = match shared.cfg.upstream_transport {
        UpstreamTransport::Streamable => &[Kind::Streamable],
        UpstreamTransport::Sse => &[Kind::Legacy],
        // Only an `initialize` can probe: anything else says nothing about the transport.
        UpstreamTransport::Auto if !first.is_initialize() => match shared.cached() {
            Some(Kind::Legacy) => &[Kind::Legacy],
            _ => &[Kind::Streamable],
        },
        UpstreamTransport::Auto => match shared.cached() {
            Some(Kind::Legacy) => &[Kind::Legacy, Kind::Streamable],
            _ => &[Kind::Streamable, Kind::Legacy],
        },
    };
    let mut evidence = Vec::new();
    for (i, kind) in order.iter().enumerate() {
        let last = i + 1 == order.len();
        let attempt = match kind {
            Kind::Streamable => {
                let up = Rc::new(streamable::Upstream::new(shared.clone(), session.clone()));
                match up.send(first.clone(), headers.clone()).await {
                    Ok(()) => Ok(Conn::Streamable(up)),
                    Err(e) => Err(e),
                }
            }
            Kind::Legacy => {
                match legacy_sse::Upstream::connect(shared.clone(), session.clone(), &headers).await
                {
                    Ok(up) => {
                        let up = Rc::new(up);
                        legacy_sse::Upstream::start_reader(&up);
                        up.send(first.clone(), headers.clone())
                            .await
                            .map(|()| Conn::Legacy(up))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match attempt {
            Ok(conn) => {
                if let Some(s) = session.upgrade() {
                    s.set_upstream(kind.as_str(), None);
                    if shared.cfg.upstream_transport == UpstreamTransport::Auto
                        && shared.remember(*kind)
                    {
                        let why = if evidence.is_empty() {
                            format!("{} answered the client's initialize", kind.as_str())
                        } else {
                            format!("{}; {} worked", evidence.join("; "), kind.as_str())
                        };
                        s.difference(
                            Difference::TransportDetected,
                            Some(&first),
                            &format!("upstream {} speaks {}: {why}", shared.url(), kind.as_str()),
                        );
                    }
                }
                return Ok(conn);
            }
            Err(e) if !last && suggests_other_transport(*kind, &e) => {
                evidence.push(format!("{} attempt failed: {e}", kind.as_str()));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// Whether a failed attempt means "wrong transport" rather than "server down".
fn suggests_other_transport(tried: Kind, e: &UpstreamError) -> bool {
    match (tried, e) {
        // A modern server that answers with a JSON-RPC error it recognises (2026: unknown
        // method, unsupported version, header mismatch) must not be treated as legacy.
        (Kind::Streamable, UpstreamError::Status { status, rpc_error }) => {
            matches!(status, 400 | 404 | 405)
                && !rpc_error
                    .as_ref()
                    .and_then(|m| m.error_code())
                    .is_some_and(|c| c == -32601 || (-32022..=-32020).contains(&c))
        }
        (Kind::Legacy, UpstreamError::Status { .. })
        | (Kind::Legacy, UpstreamError::NoEndpoint(_))
        | (Kind::Legacy, UpstreamError::Protocol(_)) => true,
        _ => false,
    }
}
