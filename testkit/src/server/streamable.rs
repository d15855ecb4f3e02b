//! Streamable HTTP transport of the fake server: POST / GET / DELETE on `/mcp`.
//!
//! Each session keeps its streams in one table: POST streams (one per POST that carried
//! requests) and the standalone GET stream. A stream outlives its HTTP connection: with
//! `event_ids` its events are stored, so `GET` + `Last-Event-ID` can replay what followed and
//! re-attach a new connection to it, which is how the TS SDK's event store behaves.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::conn::{self, Conn, SseBody};
use super::util::{accepts, header, is_json_content, rpc_error, uuid, Reject};
use super::{Backend, Shared};
use crate::mcp::{self, BodyError, Kind, McpState, Outlet, SUPPORTED_VERSIONS};
use crate::sse::{encode_comment, encode_event, LineEnd};

/// Finished streams kept per session for replay (bounds memory under load).
const KEEP_FINISHED_STREAMS: usize = 256;

pub(crate) struct Streamable {
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

struct Session {
    id: String,
    mcp: Arc<McpState>,
    shared: Arc<Shared>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<u64, StreamState>,
    standalone: Option<u64>,
    finished: VecDeque<u64>,
}

struct StreamState {
    /// `(seq, json)` of every message event, when `event_ids` is on.
    events: Vec<(u64, String)>,
    next_seq: u64,
    conn: Option<Conn>,
    /// Responses still owed on this POST stream (0 for the standalone stream).
    owed: usize,
    /// Message events left before the one-time `drop_post_stream_after` cut.
    drop_after: Option<usize>,
    post: bool,
}

/// Stream ids are global so event ids (`<stream>_<seq>`) are unique across all sessions.
fn next_stream_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Streamable {
    pub fn new(shared: Arc<Shared>) -> Self {
        Streamable {
            shared,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn session(&self, req: &HttpRequest) -> Result<Arc<Session>, Reject> {
        let Some(id) = header(req, "mcp-session-id") else {
            return Err(Reject::new(
                400,
                -32000,
                "Bad Request: Mcp-Session-Id header is required",
            ));
        };
        match self.sessions.lock().unwrap().get(id) {
            Some(s) => Ok(s.clone()),
            None => Err(self.unknown_session()),
        }
    }

    fn unknown_session(&self) -> Reject {
        match self.shared.opts.unknown_session_status {
            400 => Reject::new(400, -32000, "Bad Request: No valid session ID provided"),
            status => Reject::new(status, -32001, "Session not found"),
        }
    }

    /// `MCP-Protocol-Version`, when present, must be one we support (2025-06-18 rule).
    fn check_version(req: &HttpRequest) -> Result<Option<&str>, Reject> {
        match header(req, "mcp-protocol-version") {
            Some(v) if !SUPPORTED_VERSIONS.contains(&v) => Err(Reject::new(
                400,
                -32000,
                "Bad Request: Unsupported protocol version",
            )),
            v => Ok(v),
        }
    }

    async fn post(self: Arc<Self>, req: HttpRequest, body: Bytes) -> HttpResponse {
        self.shared.record(&req, &body);
        if !(accepts(&req, "application/json") && accepts(&req, "text/event-stream")) {
            return rpc_error(
                406,
                -32000,
                "Not Acceptable: Client must accept both application/json and text/event-stream",
            );
        }
        if !is_json_content(&req) {
            return rpc_error(
                415,
                -32000,
                "Unsupported Media Type: Content-Type must be application/json",
            );
        }
        let parsed = match mcp::parse_body(&body) {
            Ok(p) => p,
            Err(BodyError::Json) => return rpc_error(400, -32700, "Parse error"),
            Err(BodyError::Invalid) => return rpc_error(400, -32600, "Invalid Request"),
        };
        let version_header = match Self::check_version(&req) {
            Ok(v) => v.map(str::to_string),
            Err(reject) => return reject.into(),
        };
        let init = parsed.messages.iter().any(|m| m.is_initialize());
        let session = if init {
            if parsed.batch {
                return rpc_error(
                    400,
                    -32600,
                    "Invalid Request: initialize must not be batched",
                );
            }
            if header(&req, "mcp-session-id").is_some() {
                // TS example servers reject an initialize that carries a (stale) session id.
                return rpc_error(
                    400,
                    -32600,
                    "Invalid Request: initialize must not carry a session id",
                );
            }
            self.create_session()
        } else {
            match self.session(&req) {
                Ok(s) => s,
                Err(reject) => return reject.into(),
            }
        };
        let session_header: Vec<(&str, String)> = match init {
            true => vec![("mcp-session-id", session.id.clone())],
            false => vec![],
        };

        // Notifications and responses are handled before answering, so their effect (a
        // cancellation, a sampling answer) is in place when the 202 is seen.
        let mut requests = Vec::new();
        for m in parsed.messages {
            match m.kind() {
                Kind::Request => requests.push(m),
                Kind::Notification => session.mcp.on_notification(&m),
                Kind::Response => {
                    session.mcp.on_response(m);
                }
                Kind::Invalid => {}
            }
        }
        if requests.is_empty() {
            return HttpResponse::Accepted().finish();
        }
        if let Some(body) = self.shared.opts.json_answer_without_response {
            if !init {
                return HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body);
            }
        }

        if self.shared.opts.json_response {
            let out: Rc<dyn Outlet> = Rc::new(JsonOutlet(session.clone()));
            let calls = requests
                .into_iter()
                .map(|m| session.mcp.clone().on_request(m, out.clone()));
            let responses: Vec<String> = futures_util::future::join_all(calls)
                .await
                .into_iter()
                .flatten()
                .collect();
            if responses.is_empty() {
                // Every request was cancelled: like the TS SDK, never answer.
                std::future::pending::<()>().await;
            }
            let body = match parsed.batch {
                true => format!("[{}]", responses.join(",")),
                false => responses.into_iter().next().unwrap_or_default(),
            };
            let mut resp = HttpResponse::Ok();
            resp.content_type("application/json");
            for (k, v) in &session_header {
                resp.insert_header((*k, v.as_str()));
            }
            return resp.body(body);
        }

        // Priming follows the version of this request: its header, else the session's.
        // An initialize POST has neither, so it is never primed (as in the TS SDK).
        let version = match init {
            true => version_header,
            false => version_header.or_else(|| session.mcp.protocol_version()),
        };
        let (stream_id, body) = session.open_post_stream(requests.len(), version.as_deref());
        for m in requests {
            let session = session.clone();
            actix_rt::spawn(async move {
                let out: Rc<dyn Outlet> = Rc::new(PostOutlet {
                    session: session.clone(),
                    stream_id,
                });
                if let Some(resp) = session.mcp.clone().on_request(m, out).await {
                    session.emit(stream_id, &resp, true);
                }
            });
        }
        conn::sse_response(body, &session_header)
    }

    async fn get(self: Arc<Self>, req: HttpRequest) -> HttpResponse {
        self.shared.record(&req, &Bytes::new());
        if !self.shared.opts.get_stream {
            return HttpResponse::MethodNotAllowed()
                .insert_header(("allow", "POST, DELETE"))
                .finish();
        }
        if !accepts(&req, "text/event-stream") {
            return rpc_error(
                406,
                -32000,
                "Not Acceptable: Client must accept text/event-stream",
            );
        }
        let session = match self.session(&req) {
            Ok(s) => s,
            Err(reject) => return reject.into(),
        };
        if let Err(reject) = Self::check_version(&req) {
            return reject.into();
        }
        if self.shared.opts.get_retry_zero_and_close {
            return HttpResponse::Ok()
                .content_type("text/event-stream")
                .body(": bye\nretry: 0\n\n");
        }
        let last = header(&req, "last-event-id");
        let opened = match last {
            // Without an event store the header is ignored and a fresh stream opens (TS).
            Some(last) if self.shared.opts.event_ids => session.resume(last),
            _ => session.open_standalone(),
        };
        match opened {
            Ok(body) => conn::sse_response(body, &[]),
            Err(reject) => reject.into(),
        }
    }

    async fn delete(self: Arc<Self>, req: HttpRequest) -> HttpResponse {
        self.shared.record(&req, &Bytes::new());
        let session = match self.session(&req) {
            Ok(s) => s,
            Err(reject) => return reject.into(),
        };
        self.sessions.lock().unwrap().remove(&session.id);
        session.close_all();
        self.shared.deletes.fetch_add(1, Ordering::SeqCst);
        self.shared.changed();
        HttpResponse::Ok().finish()
    }

    fn create_session(&self) -> Arc<Session> {
        let session = Arc::new(Session {
            id: uuid(),
            mcp: Arc::new(McpState::new("fake-streamable", self.shared.clone())),
            shared: self.shared.clone(),
            inner: Mutex::new(Inner::default()),
        });
        self.sessions
            .lock()
            .unwrap()
            .insert(session.id.clone(), session.clone());
        self.shared.changed();
        session
    }
}

impl Session {
    fn event_ids(&self) -> bool {
        self.shared.opts.event_ids
    }

    /// A new connection whose drop detaches it from `stream_id` (if still attached).
    fn connect(self: &Arc<Self>, stream_id: u64) -> (Conn, SseBody) {
        let weak: Weak<Session> = Arc::downgrade(self);
        conn::open(&self.shared, move |gen| {
            if let Some(s) = weak.upgrade() {
                let mut inner = s.inner.lock().unwrap();
                if let Some(st) = inner.streams.get_mut(&stream_id) {
                    if st.conn.as_ref().map(|c| c.gen) == Some(gen) {
                        st.conn = None;
                    }
                }
            }
        })
    }

    fn open_post_stream(self: &Arc<Self>, owed: usize, version: Option<&str>) -> (u64, SseBody) {
        let opts = &self.shared.opts;
        let stream_id = next_stream_id();
        let (conn, body) = self.connect(stream_id);
        if opts.priming && version.is_some_and(|v| v >= "2025-11-25") {
            let id = format!("{stream_id}_0");
            conn.send(encode_event(
                None,
                Some(&id),
                opts.retry_ms,
                "",
                LineEnd::Lf,
            ));
        }
        let mut state = StreamState {
            events: Vec::new(),
            next_seq: 1,
            conn: Some(conn),
            owed,
            drop_after: opts.drop_post_stream_after,
            post: true,
        };
        if state.drop_after == Some(0) {
            state.drop_after = None;
            if let Some(c) = state.conn.take() {
                c.close();
            }
        }
        self.inner.lock().unwrap().streams.insert(stream_id, state);
        (stream_id, body)
    }

    fn open_standalone(self: &Arc<Self>) -> Result<SseBody, Reject> {
        let mut inner = self.inner.lock().unwrap();
        let stream_id = *inner.standalone.get_or_insert_with(next_stream_id);
        let state = inner
            .streams
            .entry(stream_id)
            .or_insert_with(|| StreamState {
                events: Vec::new(),
                next_seq: 1,
                conn: None,
                owed: 0,
                drop_after: None,
                post: false,
            });
        if state.conn.is_some() {
            return Err(Reject::new(
                409,
                -32000,
                "Conflict: Only one SSE stream is allowed per session",
            ));
        }
        drop(inner);
        let (conn, body) = self.connect(stream_id);
        if let Some(every) = self.shared.opts.keepalive_interval {
            conn::keepalive(conn.writer(), every, || {
                encode_comment("keepalive", LineEnd::Lf)
            });
        }
        let mut inner = self.inner.lock().unwrap();
        if let Some(st) = inner.streams.get_mut(&stream_id) {
            st.conn = Some(conn);
        }
        Ok(body)
    }

    /// `GET` + `Last-Event-ID`: replay what followed on that stream, then attach.
    fn resume(self: &Arc<Self>, last: &str) -> Result<SseBody, Reject> {
        let parsed = last
            .rsplit_once('_')
            .and_then(|(s, q)| Some((s.parse::<u64>().ok()?, q.parse::<u64>().ok()?)));
        let Some((stream_id, cursor)) = parsed else {
            return Err(Reject::new(
                400,
                -32000,
                "Bad Request: invalid Last-Event-ID",
            ));
        };
        let check = |inner: &Inner| match inner.streams.get(&stream_id) {
            // Only this session's streams: replay must never leak another session's events.
            None => Err(Reject::new(
                400,
                -32000,
                "Bad Request: unknown Last-Event-ID",
            )),
            Some(st) if st.conn.is_some() => Err(Reject::new(
                409,
                -32000,
                "Conflict: stream already has an active connection",
            )),
            Some(_) => Ok(()),
        };
        check(&self.inner.lock().unwrap())?;
        let (conn, body) = self.connect(stream_id);
        let mut inner = self.inner.lock().unwrap();
        check(&inner)?;
        let st = inner.streams.get_mut(&stream_id).expect("checked");
        for (seq, json) in st.events.iter().filter(|(seq, _)| *seq > cursor) {
            let id = format!("{stream_id}_{seq}");
            conn.send(encode_event(
                Some("message"),
                Some(&id),
                None,
                json,
                LineEnd::Lf,
            ));
        }
        if st.post && st.owed == 0 {
            conn.close();
        } else {
            st.conn = Some(conn);
        }
        drop(inner);
        Ok(body)
    }

    /// Writes one message on a stream (storing it when `event_ids`), and finishes a POST
    /// stream once its last response is out. Returns whether a connection got it.
    fn emit(&self, stream_id: u64, json: &str, is_response: bool) -> bool {
        let event_ids = self.event_ids();
        let mut inner = self.inner.lock().unwrap();
        let Some(st) = inner.streams.get_mut(&stream_id) else {
            return false;
        };
        let seq = st.next_seq;
        st.next_seq += 1;
        let id = event_ids.then(|| format!("{stream_id}_{seq}"));
        if event_ids {
            st.events.push((seq, json.to_string()));
        }
        let frame = encode_event(Some("message"), id.as_deref(), None, json, LineEnd::Lf);
        let delivered = st.conn.as_ref().is_some_and(|c| c.send(frame));
        if !delivered {
            st.conn = None;
        } else if let Some(left) = st.drop_after.as_mut() {
            *left -= 1;
            if *left == 0 {
                st.drop_after = None;
                if let Some(c) = st.conn.take() {
                    c.close();
                }
            }
        }
        if is_response {
            st.owed = st.owed.saturating_sub(1);
            if st.owed == 0 {
                if let Some(c) = st.conn.take() {
                    c.close();
                }
                if event_ids {
                    inner.finished.push_back(stream_id);
                    if inner.finished.len() > KEEP_FINISHED_STREAMS {
                        if let Some(old) = inner.finished.pop_front() {
                            inner.streams.remove(&old);
                        }
                    }
                } else {
                    inner.streams.remove(&stream_id);
                }
            }
        }
        delivered
    }

    /// A message for the standalone GET stream; false (and counted) when none is open.
    fn emit_unrelated(&self, json: &str) -> bool {
        let target = {
            let inner = self.inner.lock().unwrap();
            inner
                .standalone
                .filter(|id| inner.streams.get(id).is_some_and(|s| s.conn.is_some()))
        };
        let delivered = target.is_some_and(|id| self.emit(id, json, false));
        if !delivered {
            self.shared.dropped.fetch_add(1, Ordering::SeqCst);
        }
        delivered
    }

    /// Ends every connection of the session cleanly (DELETE, expiry).
    fn close_all(&self) {
        let mut inner = self.inner.lock().unwrap();
        for st in inner.streams.values_mut() {
            if let Some(c) = st.conn.take() {
                c.close();
            }
        }
        inner.streams.clear();
    }

    fn kill_all(&self) {
        let mut inner = self.inner.lock().unwrap();
        for st in inner.streams.values_mut() {
            if let Some(c) = st.conn.take() {
                c.kill();
            }
        }
    }
}

/// Related messages go on the request's own POST stream.
struct PostOutlet {
    session: Arc<Session>,
    stream_id: u64,
}

impl Outlet for PostOutlet {
    fn related(&self, json: String) {
        self.session.emit(self.stream_id, &json, false);
    }
    fn unrelated(&self, json: String) {
        self.session.emit_unrelated(&json);
    }
}

/// JSON-response mode: a related message has nowhere to go and is dropped (SDK behaviour).
struct JsonOutlet(Arc<Session>);

impl Outlet for JsonOutlet {
    fn related(&self, _json: String) {
        self.0.shared.dropped.fetch_add(1, Ordering::SeqCst);
    }
    fn unrelated(&self, json: String) {
        self.0.emit_unrelated(&json);
    }
}

impl Backend for Streamable {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let (p, g, d) = (self.clone(), self.clone(), self.clone());
        let shared = self.shared.clone();
        cfg.service(
            web::resource(shared.opts.endpoint_path())
                .route(
                    web::post().to(move |req: HttpRequest, body: Bytes| p.clone().post(req, body)),
                )
                .route(web::get().to(move |req: HttpRequest| g.clone().get(req)))
                .route(web::delete().to(move |req: HttpRequest| d.clone().delete(req)))
                .default_service(web::to(move |req: HttpRequest, body: Bytes| {
                    shared.record(&req, &body);
                    async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header(("allow", "GET, POST, DELETE"))
                            .finish()
                    }
                })),
        );
    }

    fn session_count(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    fn expire_sessions(&self) {
        let sessions: Vec<_> = self
            .sessions
            .lock()
            .unwrap()
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in sessions {
            s.close_all();
        }
    }

    fn kill_streams(&self) {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        for s in sessions {
            s.kill_all();
        }
    }

    fn get_streams(&self) -> usize {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        sessions
            .iter()
            .filter(|s| {
                let inner = s.inner.lock().unwrap();
                inner
                    .standalone
                    .and_then(|id| inner.streams.get(&id))
                    .is_some_and(|st| st.conn.is_some())
            })
            .count()
    }

    fn send_unsolicited(&self, json: &str) -> usize {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        sessions.iter().filter(|s| s.emit_unrelated(json)).count()
    }
}
