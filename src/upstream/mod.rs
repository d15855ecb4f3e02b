//! The upstream side: one connection per session to the MCP server, over whichever transport
//! the server speaks. An adapter (one file per transport) knows nothing about the session or
//! the client: it is driven by commands and pushes what the server sends into an
//! [`UpstreamSink`]. Adding a transport is one adapter file plus its line in [`open`].
//!
//! awc clients are not `Send`, so each session's upstream connection lives on the worker
//! thread that created the session, driven by one task. The session holds only a `Send`
//! handle: a bounded command channel (policy when full: the client's request waits).

mod backoff;
mod detect;
pub mod headers;
pub(crate) mod http;
mod idle_watch;
mod legacy_sse;
mod modern;
mod process;
mod session_loss;
mod stdio;
mod streamable;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::{Config, Upstream};
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Message};
use crate::observe::Difference;
use crate::transport::{Transport, UpstreamTransport};

/// Headers that cross to the upstream with a client's message (see [`headers`]).
pub type ForwardHeaders = Vec<(HeaderName, HeaderValue)>;

/// Where the upstream delivered a message: all the relation metadata the bridge gets.
#[derive(Clone, Debug)]
pub enum Via {
    /// On the response stream of the client's request with this id (Streamable upstream).
    RequestStream(Id),
    /// On the upstream's standalone GET stream: unrelated to any request.
    StandaloneStream,
    /// On a legacy upstream's only stream: no relation metadata at all.
    SharedStream,
}

/// Resolves when the producer may deliver its next message (the client's backpressure).
pub type Backpressure = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// The port an adapter pushes into: everything the upstream side tells the rest of the
/// bridge. Implemented by the session; adapters hold it weakly (a gone session means stop).
pub trait UpstreamSink: Send + Sync {
    /// The upstream session is open (or was opened again): its transport and session id.
    fn connected(&self, transport: Transport, upstream_session: Option<&str>);
    /// A message from the server. Await the result before delivering the next message of
    /// the same source.
    fn deliver(self: Arc<Self>, msg: Message, via: Via) -> Backpressure;
    /// Record a difference about `msg` (or about nothing in particular).
    fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str);
    /// Record a difference about the client's request `id`.
    fn request_difference(&self, kind: Difference, id: Option<&Id>, reason: &str);
    /// The answer to the client's request `id` is lost (a stream broke for good).
    fn request_failed(&self, id: &Id, err: UpstreamError);
    /// The upstream session is over.
    fn gone(&self, why: &str);
    /// The span the adapter's own log lines belong to (e.g. a stdio server's stderr).
    fn span(&self) -> tracing::Span;
}

/// An adapter's hold on its session.
pub type Sink = Weak<dyn UpstreamSink>;

/// What every session's upstream shares: the configuration, the TLS client settings and,
/// in `auto` mode, the transport detected for the upstream URL.
pub struct UpstreamShared {
    pub cfg: Arc<Config>,
    tls: Arc<rustls::ClientConfig>,
    detected: Mutex<Option<Transport>>,
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

    /// The upstream's transport as configured or last detected (`None` before the first
    /// session in `auto` mode).
    pub fn transport(&self) -> Option<Transport> {
        match self.cfg.upstream_transport {
            UpstreamTransport::Fixed(t) => Some(t),
            UpstreamTransport::Auto => self.cached(),
        }
    }

    fn cached(&self) -> Option<Transport> {
        *self.detected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember the detected transport; true when it changed.
    fn remember(&self, t: Transport) -> bool {
        let mut d = self.detected.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *d != Some(t);
        *d = Some(t);
        changed
    }
}

/// Boxed: the channel preallocates a block of slots per session, and most sessions are idle.
enum Command {
    Send(Box<SendCommand>),
}

struct SendCommand {
    msg: Message,
    headers: ForwardHeaders,
    /// The client's transport: what an adapter may need to know about the client (e.g.
    /// whether it sends `MCP-Protocol-Version` itself).
    client: Transport,
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
    pub async fn send(
        &self,
        msg: Message,
        headers: ForwardHeaders,
        client: Transport,
    ) -> Result<(), UpstreamError> {
        if self.close.closed.load(Ordering::Acquire) {
            return Err(UpstreamError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send(Box::new(SendCommand {
                msg,
                headers,
                client,
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
    pub fn spawn(self, sink: Sink, shared: Arc<UpstreamShared>) {
        actix_web::rt::spawn(drive(self, sink, shared));
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

async fn drive(mut driver: Driver, sink: Sink, shared: Arc<UpstreamShared>) {
    let _live = LiveDriver::new(&shared);
    let mut conn: Option<Rc<dyn Connection>> = None;
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
            client,
            reply,
        } = *send;
        match &conn {
            Some(c) => {
                // Each send runs on its own so that a slow request never holds up the next.
                let send = c.clone().send(msg, headers);
                actix_web::rt::spawn(async move {
                    let _ = reply.send(send.await);
                });
            }
            None => {
                let opening = Opening {
                    shared: shared.clone(),
                    sink: sink.clone(),
                    first: msg,
                    headers,
                    client,
                };
                // Boxed so that the idle driver (one per session) stays small.
                match Box::pin(detect::connect(opening)).await {
                    Ok(c) => {
                        conn = Some(c);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
    if let Some(c) = conn {
        c.close().await;
    }
}

/// One open upstream session, whatever its transport. Lives on its worker thread.
trait Connection {
    /// Send one message; resolves when the upstream accepted it (HTTP 2xx), or with why not.
    fn send(
        self: Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> LocalBoxFuture<'static, Result<(), UpstreamError>>;
    /// End the upstream session (stop readers; tell the server where the transport can).
    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()>;
}

/// Everything an adapter gets to open an upstream session: the session's first message
/// (normally the client's `initialize`) goes out as part of opening.
struct Opening {
    shared: Arc<UpstreamShared>,
    sink: Sink,
    first: Message,
    headers: ForwardHeaders,
    client: Transport,
}

/// Open an upstream session over `transport`. Each adapter registers here, with one line.
async fn open(transport: Transport, o: &Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    match transport {
        Transport::Streamable => streamable::open(o).await,
        Transport::LegacySse => legacy_sse::open(o).await,
        Transport::Streamable2026 => modern::open(o).await,
        Transport::Stdio => stdio::open(o).await,
    }
}
