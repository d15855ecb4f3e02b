//! The fake MCP server: one actix-web server on its own OS thread, speaking either transport.
//!
//! The transport modules only translate HTTP; MCP behaviour lives in [`crate::mcp`]. This module
//! owns what both share: options, the request journal, counters, and the thread's lifecycle.

mod conn;
mod legacy;
mod modern;
mod modern_check;
pub mod stdio;
mod streamable;
pub(crate) mod util;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpServer};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;

/// Which transport the fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later): POST/GET/DELETE on `/mcp`.
    #[default]
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05): `GET /sse` + `POST /messages…`.
    Legacy,
}

/// Which revision of Streamable HTTP the fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25: sessions, `initialize`, a GET stream.
    #[default]
    Sessionful,
    /// 2026-07-28 only: sessionless, `server/discover`, MRTR, `subscriptions/listen`; every
    /// earlier request is refused as the spec says (see `modern.rs`).
    Modern,
}

/// How the legacy server writes its `endpoint` event and stream, after a real SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointStyle {
    /// TypeScript SDK: `/messages?sessionId=<uuid>`, LF line ends, no keep-alives.
    #[default]
    Ts,
    /// Python SDK (sse-starlette): `/messages/?session_id=<32 hex>`, CRLF line ends, a
    /// `: ping - <time>` comment every `ping_interval`, and `POST /messages` → 307.
    Py,
}

/// Everything that shapes a [`FakeServer`]. Start from `Default` (or [`ServerOptions::streamable`]
/// / [`ServerOptions::legacy`]) and chain the setters.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub transport: Transport,
    /// Bind here instead of `127.0.0.1:0` (to restart on a port a bridge already points at).
    pub addr: Option<SocketAddr>,
    /// actix workers (threads). 1 is plenty for tests; a benchmark may want more.
    pub workers: usize,
    /// Keep every HTTP request for [`FakeServer::requests`]. Turn off under load.
    pub record_requests: bool,
    /// How long a tool waits for the client's answer to a server→client request.
    pub client_response_timeout: Duration,
    /// Write response ids the way JavaScript re-serialises them (`1.0` → `1`, `1e3` → `1000`,
    /// `-0` → `0`, `"\u0041"` → `"A"`), as SDK servers do.
    pub reserialize_ids: bool,

    // --- Streamable HTTP ---
    /// Answer requests with one `application/json` body instead of an SSE stream. Related
    /// notifications and server→client requests are then dropped, as the SDKs do.
    pub json_response: bool,
    /// Put ids on SSE events and keep a per-stream event store, so `GET` + `Last-Event-ID`
    /// resumes that stream (as the TS SDK with an event store does).
    pub event_ids: bool,
    /// When the request's protocol version (header, else the session's) is >= 2025-11-25,
    /// start each POST stream with a priming event `id: X\ndata: \n\n`. Meant for use with
    /// `event_ids` (the TS SDK primes only when it has an event store); without it the cursor
    /// cannot be resumed.
    pub priming: bool,
    /// `retry:` (ms) written in the priming event (2025-11-25 polling: the client must wait
    /// that long before resuming).
    pub retry_ms: Option<u64>,
    /// Close each POST response stream after this many message events (priming not counted),
    /// once per request, so the client has to resume with `Last-Event-ID`.
    pub drop_post_stream_after: Option<usize>,
    /// Status for an unknown `Mcp-Session-Id`: 404 (Python SDK, spec) or 400 (TS example apps).
    pub unknown_session_status: u16,
    /// Serve the standalone GET stream; `false` answers GET with 405.
    pub get_stream: bool,
    /// Answer each standalone GET with a `retry: 0` field and end the stream at once (a
    /// server that asks for instant reconnects).
    pub get_retry_zero_and_close: bool,
    /// Answer a request with this JSON body (`application/json`) instead of its response:
    /// a server that never answers on the request's own HTTP response.
    pub json_answer_without_response: Option<&'static str>,
    /// Write a `: keepalive` comment on standalone GET streams at this interval.
    pub keepalive_interval: Option<Duration>,

    /// Answer every request without `Authorization: Bearer <token>` with 401 and a
    /// `WWW-Authenticate` challenge (an OAuth-protected server).
    pub require_bearer: Option<&'static str>,

    /// Serve the MCP endpoint (Streamable) or the SSE stream (legacy) at this path instead
    /// of `/mcp` / `/sse`: one URL that can change transport when the server is "upgraded".
    pub path: Option<&'static str>,

    // --- Streamable HTTP, 2026-07-28 (`era: Era::Modern`) ---
    pub era: Era,
    /// Versions the modern server serves; a request for another gets 400 -32022.
    pub modern_versions: &'static [&'static str],
    /// What `server/discover` lists, when it should differ from `modern_versions`.
    pub discover_versions: Option<&'static [&'static str]>,
    /// End each `subscriptions/listen` stream cleanly after this many notifications (the
    /// acknowledgement not counted).
    pub listen_drop_after: Option<usize>,
    /// Refuse every `tools/call` with 400 -32020 (header mismatch), whatever its headers.
    pub header_mismatch_on_tool_calls: bool,

    // --- Legacy HTTP+SSE ---
    pub endpoint_style: EndpointStyle,
    /// Py style only: interval of the `: ping - <time>` comments.
    pub ping_interval: Duration,
    /// `false` never sends the `endpoint` event (to test a client's deadline).
    pub send_endpoint: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            transport: Transport::Streamable,
            addr: None,
            workers: 1,
            record_requests: true,
            client_response_timeout: Duration::from_secs(30),
            reserialize_ids: false,
            get_retry_zero_and_close: false,
            json_answer_without_response: None,
            json_response: false,
            event_ids: false,
            priming: false,
            retry_ms: None,
            drop_post_stream_after: None,
            unknown_session_status: 404,
            get_stream: true,
            keepalive_interval: None,
            require_bearer: None,
            path: None,
            era: Era::Sessionful,
            modern_versions: &["2026-07-28"],
            discover_versions: None,
            listen_drop_after: None,
            header_mismatch_on_tool_calls: false,
            endpoint_style: EndpointStyle::Ts,
            ping_interval: Duration::from_secs(15),
            send_endpoint: true,
        }
    }
}

macro_rules! setters {
    ($($(#[$m:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $( $(#[$m])* pub fn $name(mut self, v: $ty) -> Self { self.$name = v; self } )*
    };
}

impl ServerOptions {
    /// Streamable HTTP with defaults.
    pub fn streamable() -> Self {
        Self::default()
    }

    /// Legacy HTTP+SSE with defaults (TS endpoint style).
    pub fn legacy() -> Self {
        Self {
            transport: Transport::Legacy,
            ..Self::default()
        }
    }

    /// A 2026-07-28-only Streamable HTTP server (sessionless, `POST /mcp`).
    pub fn modern() -> Self {
        Self {
            era: Era::Modern,
            ..Self::default()
        }
    }

    setters! {
        transport: Transport,
        era: Era,
        modern_versions: &'static [&'static str],
        discover_versions: Option<&'static [&'static str]>,
        listen_drop_after: Option<usize>,
        header_mismatch_on_tool_calls: bool,
        workers: usize,
        record_requests: bool,
        client_response_timeout: Duration,
        json_response: bool,
        event_ids: bool,
        priming: bool,
        drop_post_stream_after: Option<usize>,
        unknown_session_status: u16,
        get_stream: bool,
        endpoint_style: EndpointStyle,
        ping_interval: Duration,
        send_endpoint: bool,
        keepalive_interval: Option<Duration>,
        retry_ms: Option<u64>,
        path: Option<&'static str>,
        require_bearer: Option<&'static str>,
        reserialize_ids: bool,
        get_retry_zero_and_close: bool,
        json_answer_without_response: Option<&'static str>,
    }

    /// The path of the MCP endpoint (Streamable) or SSE stream (legacy).
    pub fn endpoint_path(&self) -> &'static str {
        self.path.unwrap_or(match self.transport {
            Transport::Streamable => "/mcp",
            Transport::Legacy => "/sse",
        })
    }

    /// Binds to this address instead of an ephemeral port.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }
}

/// One HTTP request as the fake server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Lowercase names; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON-RPC `method` of the body (of its first element for a batch).
    pub fn rpc_method(&self) -> Option<String> {
        let v = self.json()?;
        let msg = if v.is_array() { v.get(0)? } else { &v };
        msg.get("method")?.as_str().map(str::to_string)
    }
}

/// State shared by the transport, the MCP logic and the test thread.
pub(crate) struct Shared {
    pub opts: ServerOptions,
    requests: Mutex<Vec<RecordedRequest>>,
    notifications: Mutex<Vec<Value>>,
    pub deletes: AtomicUsize,
    pub dropped: AtomicUsize,
    pub open_streams: AtomicUsize,
    /// Woken on every observable change, so waits are notified instead of polled.
    changed: Notify,
}

impl Shared {
    fn new(opts: ServerOptions) -> Self {
        Shared {
            opts,
            requests: Mutex::new(Vec::new()),
            notifications: Mutex::new(Vec::new()),
            deletes: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    pub fn record(&self, req: &HttpRequest, body: &Bytes) {
        if !self.opts.record_requests {
            return;
        }
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let path_and_query = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_string(),
            None => req.path().to_string(),
        };
        self.requests.lock().unwrap().push(RecordedRequest {
            method: req.method().as_str().to_string(),
            path_and_query,
            headers,
            body: body.clone(),
        });
        self.changed();
    }

    pub fn note_notification(&self, v: Value) {
        self.notifications.lock().unwrap().push(v);
        self.changed();
    }

    pub fn changed(&self) {
        self.changed.notify_waiters();
    }
}

/// What the transport modules provide to [`FakeServer`].
pub(crate) trait Backend: Send + Sync {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig);
    fn session_count(&self) -> usize;
    fn expire_sessions(&self);
    fn kill_streams(&self);
    /// Returns how many streams got the message.
    fn send_unsolicited(&self, json: &str) -> usize;
    /// Streams unsolicited messages can go to right now.
    fn get_streams(&self) -> usize;
    /// Legacy only: send the `endpoint` event again on every session stream.
    fn announce_endpoint_again(&self) -> usize {
        0
    }
}

/// A running fake MCP server. Stopped by [`FakeServer::stop`] or on drop.
pub struct FakeServer {
    addr: SocketAddr,
    transport: Transport,
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts the server on its own thread and actix System; returns once it is listening.
    pub fn start(opts: ServerOptions) -> FakeServer {
        let transport = opts.transport;
        let workers = opts.workers.max(1);
        let listener = bind(opts.addr);
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let bearer = opts.require_bearer;
        let shared = Arc::new(Shared::new(opts));
        let backend: Arc<dyn Backend> = match (transport, shared.opts.era) {
            (Transport::Streamable, Era::Modern) => Arc::new(modern::Modern::new(shared.clone())),
            (Transport::Streamable, Era::Sessionful) => {
                Arc::new(streamable::Streamable::new(shared.clone()))
            }
            (Transport::Legacy, _) => Arc::new(legacy::Legacy::new(shared.clone())),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let app_backend = backend.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-mcp-{}", addr.port()))
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        let b = app_backend.clone();
                        App::new()
                            .app_data(web::PayloadConfig::new(256 << 20))
                            .wrap_fn(move |req, srv| {
                                use actix_web::dev::Service;
                                use futures_util::future::{ready, Either};
                                let authorized = bearer.is_none_or(|t| {
                                    req.headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok())
                                        == Some(format!("Bearer {t}").as_str())
                                });
                                if authorized {
                                    Either::Left(srv.call(req))
                                } else {
                                    let res = actix_web::HttpResponse::Unauthorized()
                                        .insert_header((
                                            "www-authenticate",
                                            "Bearer resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource\"",
                                        ))
                                        .body("unauthorized");
                                    Either::Right(ready(Ok(req.into_response(res))))
                                }
                            })
                            .configure(move |cfg| b.configure(cfg))
                    })
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(0)
                    // A client closing its socket must end its SSE response (and so its legacy
                    // session) at once, not at the next write.
                    .h1_allow_half_closed(false)
                    // SSE writes an event and then the final chunk as separate small segments;
                    // with Nagle the second waits for a delayed ACK (~40 ms) on a reused
                    // connection.
                    .tcp_nodelay(true)
                    .listen(listener)
                    .expect("listen")
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .expect("spawn server thread");
        let handle = rx.recv().expect("server started");
        FakeServer {
            addr,
            transport,
            shared,
            backend,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    /// The URL a client or bridge points at: `…/mcp` (Streamable) or `…/sse` (legacy).
    pub fn url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.opts.endpoint_path())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn options(&self) -> &ServerOptions {
        &self.shared.opts
    }

    /// Stops the server (no graceful drain: open streams are cut) and waits for its thread, so
    /// the port is free when this returns.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The command is sent eagerly; the returned future is only a completion signal.
            drop(handle.stop(false));
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            self.shared.changed();
        }
    }

    /// Every HTTP request received so far (when `record_requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The first recorded request (old or new) matching `pred`, waiting up to `timeout`.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        let mut seen = 0;
        let mut found = None;
        self.wait_until(
            |_| {
                let reqs = self.shared.requests.lock().unwrap();
                found = reqs[seen..].iter().find(|r| pred(r)).cloned();
                seen = reqs.len();
                found.is_some()
            },
            timeout,
        )
        .await;
        found
    }

    /// Waits until `cond(self)` holds, re-checking on every change (request, session, stream,
    /// notification). Returns whether it held before the timeout.
    pub async fn wait_until(&self, mut cond: impl FnMut(&Self) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a change between check and wait is not missed.
            notified.as_mut().enable();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return cond(self);
            }
        }
    }

    /// Client notifications received, as `{"method", "params"}`, in order.
    pub fn notifications(&self) -> Vec<Value> {
        self.shared.notifications.lock().unwrap().clone()
    }

    /// Sends a server-initiated message. Streamable: on every session's standalone GET stream
    /// (sessions without one count as dropped); legacy: on every session stream. Returns how
    /// many streams got it.
    pub fn send_unsolicited(&self, json: &str) -> usize {
        self.backend.send_unsolicited(json)
    }

    /// Legacy: repeat the `endpoint` event on every session stream (a client must accept a
    /// repeated endpoint). Returns how many streams got it; 0 for Streamable.
    pub fn announce_endpoint_again(&self) -> usize {
        self.backend.announce_endpoint_again()
    }

    /// Unrelated messages (unsolicited or from the `notify` tool) and JSON-mode related
    /// messages that had no stream to go to.
    pub fn dropped_unsolicited(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Forgets every session: their streams end cleanly and the next request carrying an old
    /// session id gets the unknown-session status (legacy: 404).
    pub fn expire_sessions(&self) {
        self.backend.expire_sessions();
        self.shared.changed();
    }

    /// Abruptly ends every open SSE response: the connection is closed without the final
    /// chunk, as if the server died mid-call (awc clients see that as a plain end of body).
    /// Streamable sessions survive (with `event_ids` a client can resume); legacy sessions die
    /// with their stream.
    pub fn kill_streams(&self) {
        self.backend.kill_streams();
        self.shared.changed();
    }

    pub fn session_count(&self) -> usize {
        self.backend.session_count()
    }

    /// Successful DELETEs (sessions terminated by the client).
    pub fn deletes(&self) -> usize {
        self.shared.deletes.load(Ordering::SeqCst)
    }

    /// Streams that [`FakeServer::send_unsolicited`] would reach right now: Streamable sessions
    /// with their standalone GET stream attached; legacy session streams; 2026-07-28
    /// `subscriptions/listen` streams.
    pub fn get_streams(&self) -> usize {
        self.backend.get_streams()
    }

    /// SSE responses currently open (POST streams, GET streams, legacy streams).
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the listener. A fixed address may still be held for a moment by a server that was
/// just stopped on it, so that case retries briefly (restart path only, never hot).
fn bind(addr: Option<SocketAddr>) -> TcpListener {
    let Some(addr) = addr else {
        return TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A bridge test may park a server in a static or hand it to another thread.
    #[test]
    fn fake_server_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::FakeServer>();
        check::<super::RecordedRequest>();
    }
}
