//! Upstream adapter for Streamable HTTP servers (2025-03-26 and later): one POST per
//! message, answers as JSON or as a per-request SSE stream, a standalone GET stream for
//! unsolicited messages, `Mcp-Session-Id` + `MCP-Protocol-Version` on everything after
//! `initialize`, resumption with `Last-Event-ID`, and transparent re-initialisation when
//! the server forgets the session.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use std::time::Duration;

use actix_web::http::header;
use awc::ClientResponse;
use tokio::task::JoinHandle;

use super::backoff::{self, Backoff};
use super::http::{self, EventReader, Media};
use super::session_loss::session_lost;
use super::{Connection, ForwardHeaders, Opening, Sink, UpstreamShared, Via};
use crate::error::UpstreamError;
use crate::jsonrpc::{self, Id, Kind, Message};
use crate::observe::Difference;
use crate::transport::Transport;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Consecutive failed attempts to resume a broken request stream before giving up.
const MAX_RESUME_ATTEMPTS: u32 = 5;

#[derive(Default)]
struct State {
    session_id: Option<String>,
    version: Option<String>,
    /// The client's `initialize` params and headers, to re-initialise an expired session.
    init_params: Option<String>,
    init_headers: ForwardHeaders,
}

pub struct Upstream {
    shared: Arc<UpstreamShared>,
    client: awc::Client,
    sink: Sink,
    /// The client's transport (it may not send `MCP-Protocol-Version` itself).
    client_transport: Transport,
    st: RefCell<State>,
    /// Readers of request streams, by the request they answer.
    tasks: RefCell<Vec<(Option<Id>, JoinHandle<()>)>>,
    get_task: RefCell<Option<JoinHandle<()>>>,
    reinit: tokio::sync::Mutex<()>,
    next_id: Cell<u64>,
    version_noted: Cell<bool>,
}

/// Open an upstream session with the first message (the client's `initialize`).
pub(super) async fn open(o: &Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let up = Rc::new(Upstream::new(o.shared.clone(), o.sink.clone(), o.client));
    Upstream::send(&up, o.first.clone(), o.headers.clone()).await?;
    Ok(up)
}

impl Connection for Upstream {
    fn send(
        self: Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> LocalBoxFuture<'static, Result<(), UpstreamError>> {
        Box::pin(async move { Upstream::send(&self, msg, headers).await })
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move { Upstream::close(&self).await })
    }
}

impl Upstream {
    fn new(shared: Arc<UpstreamShared>, sink: Sink, client_transport: Transport) -> Upstream {
        Upstream {
            client: http::client(&shared),
            shared,
            sink,
            client_transport,
            st: RefCell::default(),
            tasks: RefCell::default(),
            get_task: RefCell::default(),
            reinit: tokio::sync::Mutex::new(()),
            next_id: Cell::new(1),
            version_noted: Cell::new(false),
        }
    }

    async fn send(
        self: &Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        let init = msg.is_initialize();
        if init {
            let mut st = self.st.borrow_mut();
            st.init_params = msg.params_json();
            st.init_headers = headers.clone();
        }
        let mut reinitialised = false;
        loop {
            let used_session = self.st.borrow().session_id.clone();
            // Never a session header on initialize: SDK servers reject it.
            let resp = self.post(&msg, &headers, !init).await?;
            if !resp.status().is_success() {
                let err = http::status_error(resp, &self.shared.cfg).await;
                if session_lost(&err) && !init && used_session.is_some() && !reinitialised {
                    self.reinitialize(used_session, Some(&msg), &err).await?;
                    reinitialised = true;
                    continue;
                }
                return Err(err);
            }
            if init {
                self.capture_session(&resp);
            }
            self.accept(resp, &msg).await?;
            if msg.method() == Some("notifications/initialized") {
                self.start_get_stream();
            }
            if let Some(cancelled) = &msg.cancels {
                self.stop_reading(cancelled);
            }
            return Ok(());
        }
    }

    fn capture_session(&self, resp: &ClientResponse) {
        let sid = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(s) = self.sink.upgrade() {
            s.connected(Transport::Streamable, sid.as_deref());
        }
        self.st.borrow_mut().session_id = sid;
    }

    /// Handle a 2xx answer to `msg`: JSON body, SSE stream, or nothing.
    async fn accept(
        self: &Rc<Self>,
        mut resp: ClientResponse,
        msg: &Message,
    ) -> Result<(), UpstreamError> {
        let cfg = &self.shared.cfg;
        let request_id = msg.is_request().then(|| msg.id.clone()).flatten();
        match http::media(&resp) {
            Media::EventStream => {
                let me = self.clone();
                let reader = EventReader::new(resp, cfg.max_body + 64 * 1024);
                let task = actix_web::rt::spawn(me.read_request_stream(reader, request_id.clone()));
                self.track(request_id, task);
                Ok(())
            }
            Media::Json => {
                let body = http::body(&mut resp, cfg.max_body, cfg.upstream_timeout).await?;
                // Python SDK servers answer notifications with 202, a JSON content type and
                // no body: nothing to relay.
                if request_id.is_none() && body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(());
                }
                let messages = jsonrpc::parse_body(body)
                    .map_err(|e| UpstreamError::Protocol(format!("JSON answer: {e}")))?
                    .into_messages();
                let mut answered = request_id.is_none();
                for m in messages {
                    answered |= m.kind == Kind::Response
                        && (m.id.is_none() || m.id.as_ref() == request_id.as_ref());
                    if !self.deliver(m, request_id.as_ref()).await {
                        return Ok(()); // the session is gone: no one to answer
                    }
                }
                // A JSON answer is the whole answer: without the response in it, none follows.
                match answered {
                    true => Ok(()),
                    false => Err(UpstreamError::Protocol(
                        "the upstream's JSON answer to the request held no response to it".into(),
                    )),
                }
            }
            other => {
                let body = http::body(&mut resp, cfg.max_body, cfg.upstream_timeout).await?;
                match request_id {
                    // A request answered with neither JSON nor a stream would never get its
                    // response: say so now rather than let the client wait.
                    Some(_) => Err(UpstreamError::Protocol(format!(
                        "HTTP {} with content type {other:?} ({} bytes) to a request",
                        resp.status().as_u16(),
                        body.len()
                    ))),
                    None => Ok(()),
                }
            }
        }
    }

    fn track(&self, request: Option<Id>, task: JoinHandle<()>) {
        let mut tasks = self.tasks.borrow_mut();
        tasks.retain(|(_, t)| !t.is_finished());
        tasks.push((request, task));
    }

    /// The client cancelled `request`: stop reading its stream. Servers need not answer a
    /// cancelled request (the TypeScript SDK never does), and its stream would otherwise
    /// hold an upstream connection until the session ends.
    fn stop_reading(&self, request: &Id) {
        self.tasks.borrow_mut().retain(|(rid, t)| {
            if rid.as_ref() == Some(request) {
                t.abort();
                return false;
            }
            !t.is_finished()
        });
    }

    /// Hand one message to the session. False once the session is gone.
    async fn deliver(&self, m: Message, request: Option<&Id>) -> bool {
        let Some(sink) = self.sink.upgrade() else {
            return false;
        };
        let m = match request {
            Some(rid) if m.kind == Kind::Response && m.id.is_none() => {
                let fixed = m.readdressed(rid);
                sink.difference(
                    Difference::ErrorReaddressed,
                    Some(&fixed),
                    "upstream error response had no usable id; given the id of the request it answers",
                );
                fixed
            }
            _ => m,
        };
        if m.kind == Kind::Response {
            if let Some(v) = m.protocol_version() {
                self.st.borrow_mut().version = Some(v);
            }
        }
        let via = match request {
            Some(rid) => Via::RequestStream(rid.clone()),
            None => Via::StandaloneStream,
        };
        sink.deliver(m, via).await;
        true
    }

    /// Relay a request's SSE answer event by event; resume it if it breaks early.
    async fn read_request_stream(self: Rc<Self>, mut reader: EventReader, request: Option<Id>) {
        let mut answered = false;
        let mut failed_attempts = 0;
        let mut backoff = Backoff::default();
        loop {
            match reader.next().await {
                Ok(Some(ev)) => {
                    failed_attempts = 0;
                    backoff.healthy();
                    if !self.note_priming(&mut reader, request.as_ref())
                        || !self.relay_event(ev, request.as_ref(), &mut answered).await
                    {
                        return;
                    }
                }
                end => {
                    self.note_priming(&mut reader, request.as_ref());
                    if answered || request.is_none() {
                        return;
                    }
                    let Some(last_id) = reader.last_event_id().map(str::to_owned) else {
                        let why = match end {
                            Err(e) => format!("upstream stream broke before the response: {e}"),
                            _ => "upstream stream ended before the response, with no event id to resume from".into(),
                        };
                        return self.fail(request.as_ref(), &why);
                    };
                    if failed_attempts >= MAX_RESUME_ATTEMPTS {
                        return self.fail(request.as_ref(), "upstream stream could not be resumed");
                    }
                    failed_attempts += 1;
                    tokio::time::sleep(backoff.next_delay(reader.retry())).await;
                    match self.get(Some(&last_id)).await {
                        Ok(resp)
                            if resp.status().is_success()
                                && http::media(&resp) == Media::EventStream =>
                        {
                            reader.replace_response(resp);
                            if let Some(s) = self.sink.upgrade() {
                                s.request_difference(
                                    Difference::StreamResumed,
                                    request.as_ref(),
                                    &format!("upstream response stream broke; resumed with GET Last-Event-ID: {last_id}"),
                                );
                            }
                        }
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let err = http::status_error(resp, &self.shared.cfg).await;
                            if status == 405 || session_lost(&err) {
                                return self.fail(
                                    request.as_ref(),
                                    &format!(
                                        "upstream refused to resume the stream (HTTP {status})"
                                    ),
                                );
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }

    /// Count priming events the reader consumed (they are never relayed). False when the
    /// session is gone.
    fn note_priming(&self, reader: &mut EventReader, request: Option<&Id>) -> bool {
        let Some(s) = self.sink.upgrade() else {
            return false;
        };
        if reader.take_empty_events() > 0 {
            s.request_difference(
                Difference::PrimingDropped,
                request,
                &format!(
                    "upstream priming event (id {:?}, empty data) kept as resume cursor, not relayed",
                    reader.last_event_id().unwrap_or("")
                ),
            );
        }
        true
    }

    async fn relay_event(
        &self,
        ev: crate::sse::Event,
        request: Option<&Id>,
        answered: &mut bool,
    ) -> bool {
        if ev.event != "message" {
            return true;
        }
        match Message::parse(ev.data) {
            Ok(m) => {
                if m.kind == Kind::Response && (m.id.is_none() || m.id.as_ref() == request) {
                    *answered = true;
                }
                self.deliver(m, request).await
            }
            Err(e) => {
                if let Some(s) = self.sink.upgrade() {
                    s.difference(
                        Difference::MessageDropped,
                        None,
                        &format!("upstream event is not JSON-RPC: {e}"),
                    );
                }
                true
            }
        }
    }

    fn fail(&self, request: Option<&Id>, why: &str) {
        if let (Some(s), Some(id)) = (self.sink.upgrade(), request) {
            s.request_failed(id, UpstreamError::Protocol(why.to_owned()));
        }
    }

    fn start_get_stream(self: &Rc<Self>) {
        let mut slot = self.get_task.borrow_mut();
        if slot.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *slot = Some(actix_web::rt::spawn(self.clone().run_get_stream()));
    }

    /// The standalone stream: unsolicited messages. 405 = the server has none; 409 = another
    /// stream is registered (back off); a broken stream is reopened with `Last-Event-ID`.
    async fn run_get_stream(self: Rc<Self>) {
        let mut backoff = Backoff::default();
        // The server's `retry`, once it named one: it governs every later reconnect.
        let mut retry: Option<Duration> = None;
        let mut last_id: Option<String> = None;
        let mut opened = false;
        loop {
            if self.sink.strong_count() == 0 {
                return;
            }
            // Boxed: this task lives as long as the session, mostly waiting on the stream.
            let resp = match Box::pin(self.get(last_id.as_deref())).await {
                Ok(r) => r,
                Err(e) => {
                    let delay = backoff.next_delay(retry);
                    tracing::debug!("upstream GET stream: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            match resp.status().as_u16() {
                405 => {
                    tracing::info!("upstream offers no standalone GET stream (405)");
                    return;
                }
                s if !(200..300).contains(&s) => {
                    let err = http::status_error(resp, &self.shared.cfg).await;
                    if session_lost(&err) {
                        // The server forgot the session while the bridge listened (it
                        // restarted): re-initialise now, so that its unsolicited messages
                        // flow again without waiting for the client's next request. That
                        // starts a new GET task. Refused from the start: a re-initialisation
                        // on the POST path restarts it.
                        if opened {
                            let expired = self.st.borrow().session_id.clone();
                            if let Err(e) = self.reinitialize(expired, None, &err).await {
                                tracing::warn!("re-initialising the upstream session failed: {e}");
                            }
                        }
                        return;
                    }
                    let delay = backoff.next_delay(retry);
                    tracing::debug!("upstream GET stream: {err}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                s if http::media(&resp) != Media::EventStream => {
                    let delay = backoff.next_delay(retry);
                    tracing::debug!(
                        "upstream GET stream answered HTTP {s} without an event stream; retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
                _ => {}
            }
            if let Some(id) = &last_id {
                if let Some(s) = self.sink.upgrade() {
                    s.difference(
                        Difference::StreamResumed,
                        None,
                        &format!("upstream standalone stream reopened with Last-Event-ID: {id}"),
                    );
                }
            }
            // Opening is not health: a server may accept and close at once, over and over.
            opened = true;
            let opened_at = tokio::time::Instant::now();
            let mut delivered = false;
            let mut reader = EventReader::new(resp, self.shared.cfg.max_body + 64 * 1024);
            let mut ignored = false;
            while let Ok(Some(ev)) = reader.next().await {
                delivered = true;
                if !self.note_priming(&mut reader, None)
                    || !self.relay_event(ev, None, &mut ignored).await
                {
                    return;
                }
            }
            last_id = reader.last_event_id().map(str::to_owned).or(last_id);
            retry = reader.retry().or(retry);
            if delivered || opened_at.elapsed() >= backoff::HEALTHY_AFTER {
                backoff.healthy();
            }
            tokio::time::sleep(backoff.next_delay(retry)).await;
        }
    }

    fn post_request(&self, with_session: bool, headers: &ForwardHeaders) -> awc::ClientRequest {
        let st = self.st.borrow();
        let mut req = self
            .client
            .post(self.shared.url().as_str())
            .insert_header((header::ACCEPT, "application/json, text/event-stream"))
            .insert_header((header::CONTENT_TYPE, "application/json"));
        if with_session {
            if let Some(sid) = &st.session_id {
                req = req.insert_header((SESSION_HEADER, sid.as_str()));
            }
            if let Some(v) = &st.version {
                req = req.insert_header((VERSION_HEADER, v.as_str()));
                self.note_version_header(v);
            }
        }
        for (k, v) in headers {
            req = req.append_header((k.clone(), v.clone()));
        }
        req
    }

    /// Legacy clients send no `MCP-Protocol-Version`; the bridge adds the negotiated one.
    /// Recorded once per session.
    fn note_version_header(&self, version: &str) {
        if self.version_noted.replace(true) {
            return;
        }
        if let Some(s) = self.sink.upgrade() {
            if !self.client_transport.sends_version_header() {
                s.difference(
                    Difference::ProtocolVersionHeaderAdded,
                    None,
                    &format!("legacy client sends no MCP-Protocol-Version; upstream requests carry the negotiated {version}"),
                );
            }
        }
    }

    async fn post(
        &self,
        msg: &Message,
        headers: &ForwardHeaders,
        with_session: bool,
    ) -> Result<ClientResponse, UpstreamError> {
        let req = self.post_request(with_session, headers);
        http::within(
            self.shared.cfg.upstream_timeout,
            req.send_body(msg.raw().clone()),
        )
        .await
    }

    /// GET on the endpoint with the session: the standalone stream, or a resumption.
    async fn get(&self, last_event_id: Option<&str>) -> Result<ClientResponse, UpstreamError> {
        let req = {
            let st = self.st.borrow();
            let mut req = self
                .client
                .get(self.shared.url().as_str())
                .insert_header((header::ACCEPT, "text/event-stream"));
            if let Some(sid) = &st.session_id {
                req = req.insert_header((SESSION_HEADER, sid.as_str()));
            }
            if let Some(v) = &st.version {
                req = req.insert_header((VERSION_HEADER, v.as_str()));
            }
            if let Some(id) = last_event_id {
                req = req.insert_header(("last-event-id", id));
            }
            for (k, v) in &st.init_headers {
                req = req.append_header((k.clone(), v.clone()));
            }
            req
        };
        http::within(self.shared.cfg.upstream_timeout, req.send()).await
    }

    /// The server forgot the session ([`session_lost`]): replay the client's `initialize`
    /// and `notifications/initialized` so the next request works. The legacy client cannot
    /// do this itself; server-side state is lost, which the difference line says.
    async fn reinitialize(
        self: &Rc<Self>,
        expired: Option<String>,
        trigger: Option<&Message>,
        signal: &UpstreamError,
    ) -> Result<(), UpstreamError> {
        let _one_at_a_time = self.reinit.lock().await;
        if self.st.borrow().session_id != expired {
            return Ok(()); // another request already did it
        }
        let (params, headers) = {
            let st = self.st.borrow();
            (st.init_params.clone(), st.init_headers.clone())
        };
        let Some(params) = params else {
            return Err(UpstreamError::SessionGone);
        };
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        let id = Id::bridge(n);
        let init = Message::bridge_request(&id, "initialize", Some(&params));
        let cfg = &self.shared.cfg;
        let mut resp = self.post(&init, &headers, false).await?;
        if !resp.status().is_success() {
            return Err(http::status_error(resp, cfg).await);
        }
        let new_session = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The InitializeResult answers the bridge, not the client: read it and keep it here.
        match http::media(&resp) {
            Media::EventStream => {
                let mut reader = EventReader::new(resp, cfg.max_body + 64 * 1024);
                let answer = async {
                    while let Ok(Some(ev)) = reader.next().await {
                        if Message::parse(ev.data).is_ok_and(|m| m.id.as_ref() == Some(&id)) {
                            return true;
                        }
                    }
                    false
                };
                match tokio::time::timeout(cfg.upstream_timeout, answer).await {
                    Ok(true) => {}
                    Ok(false) => return Err(UpstreamError::StreamEnded),
                    Err(_) => return Err(UpstreamError::Timeout(cfg.upstream_timeout)),
                }
            }
            _ => {
                http::body(&mut resp, cfg.max_body, cfg.upstream_timeout).await?;
            }
        }
        self.st.borrow_mut().session_id = new_session.clone();
        let initialized = Message::bridge_notification("notifications/initialized");
        let resp = self.post(&initialized, &headers, true).await?;
        if !resp.status().is_success() {
            return Err(http::status_error(resp, cfg).await);
        }
        if let Some(t) = self.get_task.borrow_mut().take() {
            t.abort();
        }
        self.start_get_stream();
        if let Some(s) = self.sink.upgrade() {
            s.connected(Transport::Streamable, new_session.as_deref());
            s.difference(
                Difference::SessionReinitialised,
                trigger,
                &format!(
                    "{signal} for session {:?} (session unknown); replayed the client's initialize, new upstream session {:?}; server-side state of the old session is lost",
                    expired.unwrap_or_default(),
                    new_session.unwrap_or_default()
                ),
            );
        }
        Ok(())
    }

    /// End the upstream session: stop readers, then DELETE (405 is fine: not every server
    /// lets clients end sessions).
    async fn close(&self) {
        for (_, t) in self.tasks.borrow_mut().drain(..) {
            t.abort();
        }
        if let Some(t) = self.get_task.borrow_mut().take() {
            t.abort();
        }
        let req = {
            let st = self.st.borrow();
            let Some(sid) = &st.session_id else {
                return;
            };
            // Closed after use, not pooled: sessions often end in bursts (a client fleet
            // going away, shutdown), and awc reaps idle pooled connections only when it next
            // connects, so a burst of DELETEs would otherwise pin a connection (and its
            // buffers) each, indefinitely.
            let mut req = self
                .client
                .delete(self.shared.url().as_str())
                .force_close()
                .insert_header((SESSION_HEADER, sid.as_str()));
            if let Some(v) = &st.version {
                req = req.insert_header((VERSION_HEADER, v.as_str()));
            }
            for (k, v) in &st.init_headers {
                req = req.append_header((k.clone(), v.clone()));
            }
            req
        };
        match http::within(self.shared.cfg.upstream_timeout, req.send()).await {
            Ok(r) => tracing::debug!(status = r.status().as_u16(), "upstream session deleted"),
            Err(e) => tracing::debug!("upstream DELETE failed: {e}"),
        }
    }
}
