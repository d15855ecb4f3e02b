//! Upstream adapter for 2026-07-28 servers (Streamable HTTP, sessionless), serving clients of
//! the earlier revisions. The era removed what those clients rely on, so the adapter stands
//! in for it, using the pure envelope code of [`crate::era`]:
//!
//! - the handshake: the client's `initialize` is answered from `server/discover`;
//!   `notifications/initialized`, `ping` and `logging/setLevel` are answered here;
//! - every request is stamped (a splice) with `params._meta` (protocol version, the client's
//!   capabilities and info from its `initialize`, the log level it asked for) and gets the
//!   era's headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` for tool
//!   parameters marked `x-mcp-header` in the last `tools/list`);
//! - an `input_required` result (MRTR) becomes the server-to-client requests it stands for,
//!   on the request's stream; once the client answered them all, the bridge retries the
//!   request with `inputResponses` and `requestState` — the client sees one call;
//! - the unsolicited stream is a `subscriptions/listen` POST, opened after
//!   `notifications/initialized` with the list-changed notifications the server offers.
//!
//! Cancellation is closing the request's stream; there is no resumption.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::header;
use awc::ClientResponse;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::http::{self, EventReader, Media};
use super::{Connection, ForwardHeaders, Opening, Sink, UpstreamShared, Via};
use crate::era::codes::MODERN_VERSION;
use crate::era::discover;
use crate::era::headers::{self as era_headers, ParamHeader};
use crate::era::listen::{self, SubscriptionFilter};
use crate::era::meta::{self, Envelope};
use crate::era::mrtr::{self, InputRequired, InputResponses};
use crate::era::result::{self, ResultType};
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::Difference;
use crate::transport::Transport;

/// Who the bridge says it is when the server names itself nowhere.
const BRIDGE_INFO: &str = concat!(
    r#"{"name":"mcp-bridge","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}"#
);

/// The log level requested until the client sets one: every message, as a 2025 server sends.
const DEFAULT_LOG_LEVEL: &str = "debug";

/// `input_required` answers to one request before the bridge gives up on it: a server that
/// keeps asking is broken, and the client must not wait forever.
const MAX_INPUT_ROUNDS: u32 = 8;

/// An `input_required` round in progress: the client's request, what the server asked, the
/// answers so far.
struct Round {
    /// The request as last sent upstream (stamped), the base of every retry.
    sent: Vec<u8>,
    method: Box<str>,
    asked: InputRequired,
    answers: InputResponses,
    /// 1 for the first `input_required` answer to the request.
    round: u32,
}

#[derive(Default)]
struct State {
    /// `x-mcp-header` parameters per tool, from the last `tools/list`.
    tool_headers: HashMap<String, Vec<ParamHeader>>,
    /// Whether the bridge fetched the tool list itself (for a call naming a tool it had not
    /// seen listed: its `Mcp-Param-*` headers are required).
    tools_fetched: bool,
    /// Bridge-minted server-to-client request id → (the client's request, the input key).
    asked: HashMap<Id, (Id, String)>,
    rounds: HashMap<Id, Round>,
    filter: SubscriptionFilter,
    /// Which one-per-session differences were recorded.
    noted: Vec<Difference>,
}

pub struct Upstream {
    shared: Arc<UpstreamShared>,
    client: awc::Client,
    sink: Sink,
    env: RefCell<Envelope>,
    /// The client's headers that cross (authorization), for the bridge's own requests.
    headers: ForwardHeaders,
    st: RefCell<State>,
    /// Readers of request streams, by the client request they answer.
    tasks: RefCell<Vec<(Id, JoinHandle<()>)>>,
    listen_task: RefCell<Option<JoinHandle<()>>>,
    next_id: Cell<u64>,
}

/// Open: answer the client's `initialize` from the server's `server/discover`.
pub(super) async fn open(o: &Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let init = &o.first;
    let Some(init_id) = init.id.clone().filter(|_| init.is_initialize()) else {
        return Err(UpstreamError::Protocol(
            "a 2026-07-28 upstream session opens with the client's initialize".into(),
        ));
    };
    let params = init.params_json().unwrap_or_else(|| "{}".into());
    let mut env = discover::envelope_from_initialize(&params, MODERN_VERSION)
        .map_err(|e| UpstreamError::Protocol(format!("initialize params: {e}")))?;
    // A 2025 server sends log messages before any `logging/setLevel`; a 2026 one only when
    // asked. Asking for everything keeps what the client would get directly.
    env.log_level = Some(DEFAULT_LOG_LEVEL.into());
    let client = http::client(&o.shared);
    let shared = o.shared.clone();
    let discover_id = Id::bridge(0);
    let body = discover::discover_request(discover_id.json(), &env);
    let resp = post(
        &client,
        &shared,
        body.as_bytes(),
        &era_headers_of(body.as_bytes(), &[]),
        &o.headers,
    )
    .await?;
    let answer = read_answer(resp, &shared, &discover_id).await?;
    let found = match answer.result_json() {
        Some(r) => discover::parse_discover_result(r)
            .map_err(|e| UpstreamError::Protocol(format!("server/discover answer: {e}")))?,
        None => return Err(rejection(&answer, "server/discover")),
    };
    if found.pick_version(&[MODERN_VERSION]).is_none() {
        return Err(UpstreamError::Incompatible(format!(
            "it supports {:?}, the bridge {MODERN_VERSION}",
            found.supported_versions
        )));
    }
    let requested = requested_version(&params);
    let result = discover::initialize_result(&found, &requested, BRIDGE_INFO);
    let up = Rc::new(Upstream {
        shared,
        client,
        sink: o.sink.clone(),
        env: RefCell::new(env),
        headers: o.headers.clone(),
        st: RefCell::new(State {
            filter: SubscriptionFilter::from_capabilities(&found.capabilities),
            ..State::default()
        }),
        tasks: RefCell::default(),
        listen_task: RefCell::default(),
        next_id: Cell::new(1),
    });
    if let Some(sink) = up.sink.upgrade() {
        sink.connected(Transport::Streamable2026, None);
        let reply = Message::result_response(&init_id, &result);
        sink.difference(
            Difference::HandshakeTranslated,
            Some(&reply),
            &format!(
                "{MODERN_VERSION} upstream has no initialize: answered from its server/discover (protocol version {}, the client's own where the bridge speaks it)",
                discover::legacy_version_for(&requested)
            ),
        );
        sink.deliver(reply, Via::RequestStream(init_id)).await;
    }
    Ok(up)
}

impl Connection for Upstream {
    fn send(
        self: Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> LocalBoxFuture<'static, Result<(), UpstreamError>> {
        Box::pin(async move { self.dispatch(msg, headers).await })
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        for (_, t) in self.tasks.borrow_mut().drain(..) {
            t.abort();
        }
        if let Some(t) = self.listen_task.borrow_mut().take() {
            t.abort();
        }
        // Sessionless: there is nothing to end upstream.
        Box::pin(async {})
    }
}

impl Upstream {
    async fn dispatch(
        self: &Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        match (msg.kind, msg.method()) {
            (Kind::Notification, Some("notifications/initialized")) => {
                self.note_once(Difference::AnsweredLocally, &msg, "notifications/initialized is gone in 2026-07-28: swallowed; the listen stream opens instead");
                self.start_listen();
                Ok(())
            }
            (Kind::Notification, Some("notifications/cancelled")) => {
                // Cancelling is closing the request's stream in this era.
                if let Some(id) = &msg.cancels {
                    self.stop_reading(id);
                }
                Ok(())
            }
            (Kind::Notification, _) => {
                self.difference(
                    Difference::MessageDropped,
                    Some(&msg),
                    &format!("{MODERN_VERSION} has no client notifications besides cancellation: not sent upstream"),
                );
                Ok(())
            }
            (Kind::Request, Some("ping")) => {
                self.answer_locally(
                    &msg,
                    "{}",
                    "ping is gone in 2026-07-28: answered by the bridge",
                )
                .await
            }
            (Kind::Request, Some("logging/setLevel")) => {
                let level = msg
                    .params_json()
                    .and_then(|p| discover::log_level_from_set_level(&p));
                self.env.borrow_mut().log_level = level.clone();
                self.answer_locally(&msg, "{}", &format!("logging/setLevel is gone in 2026-07-28: level {level:?} rides on every later request as _meta logLevel")).await
            }
            (Kind::Request, Some(m @ ("resources/subscribe" | "resources/unsubscribe"))) => {
                let uri = msg.params_json().and_then(|p| uri_of(&p));
                let changed = uri.is_some_and(|uri| {
                    let mut st = self.st.borrow_mut();
                    if m == "resources/subscribe" {
                        st.filter.subscribe(&uri)
                    } else {
                        st.filter.unsubscribe(&uri)
                    }
                });
                if changed {
                    self.restart_listen();
                }
                self.answer_locally(&msg, "{}", &format!("{m} is gone in 2026-07-28: the listen stream's resourceSubscriptions were changed instead")).await
            }
            (Kind::Request, _) => self.forward_request(msg, headers).await,
            (Kind::Response, _) => self.input_answer(msg, headers).await,
        }
    }

    async fn answer_locally(
        &self,
        msg: &Message,
        result: &str,
        why: &str,
    ) -> Result<(), UpstreamError> {
        let Some(id) = msg.id.clone() else {
            return Ok(());
        };
        self.note_once(Difference::AnsweredLocally, msg, why);
        if let Some(sink) = self.sink.upgrade() {
            sink.deliver(
                Message::result_response(&id, result),
                Via::RequestStream(id),
            )
            .await;
        }
        Ok(())
    }

    /// A client request: stamped, sent, its answer read on a task of its own.
    async fn forward_request(
        self: &Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        let id = msg.id.clone().expect("requests have ids");
        let env = self.env.borrow().clone();
        let stamped = meta::stamp(msg.raw(), &env)
            .map_err(|e| UpstreamError::Protocol(format!("cannot stamp _meta: {e}")))?;
        self.note_once(
            Difference::RequestStamped,
            &msg,
            &format!("requests carry params._meta (protocol version {MODERN_VERSION}, the client's capabilities and info from its initialize, its log level — {DEFAULT_LOG_LEVEL} until it sets one) and MCP-Protocol-Version/Mcp-Method/Mcp-Name headers"),
        );
        let method: Box<str> = msg.method().unwrap_or_default().into();
        self.send_request(stamped, method, id.clone(), id, headers)
            .await
    }

    /// POST a request whose answer belongs to the client's request `client_id` (`wire_id`
    /// differs on retries). Accepted (2xx) means its answer is read on a task.
    async fn send_request(
        self: &Rc<Self>,
        body: Vec<u8>,
        method: Box<str>,
        wire_id: Id,
        client_id: Id,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        if self.needs_tool_list(&body) {
            self.fetch_tools(&headers).await;
        }
        let tool = self.tool_headers_for(&body);
        let era = era_headers_of(&body, &tool);
        let resp = post(&self.client, &self.shared, &body, &era, &headers).await?;
        if !resp.status().is_success() {
            return Err(http::status_error(resp, &self.shared.cfg).await);
        }
        let me = self.clone();
        let key = client_id.clone();
        let task = actix_web::rt::spawn(async move {
            me.read_answer_stream(resp, body, method, wire_id, client_id)
                .await
        });
        let mut tasks = self.tasks.borrow_mut();
        tasks.retain(|(_, t)| !t.is_finished());
        tasks.push((key, task));
        Ok(())
    }

    /// Relay a request's answer: JSON, or SSE carrying its progress and log messages first.
    async fn read_answer_stream(
        self: Rc<Self>,
        resp: ClientResponse,
        sent: Vec<u8>,
        method: Box<str>,
        wire_id: Id,
        client_id: Id,
    ) {
        let cfg = &self.shared.cfg;
        let why = match http::media(&resp) {
            Media::EventStream => {
                let mut reader = EventReader::new(resp, cfg.max_body + 64 * 1024);
                loop {
                    match reader.next().await {
                        Ok(Some(ev)) if ev.event == "message" || ev.event.is_empty() => {
                            if ev.data.is_empty() {
                                continue;
                            }
                            match Message::parse(ev.data) {
                                Ok(m)
                                    if m.kind == Kind::Response
                                        && m.id.as_ref() == Some(&wire_id) =>
                                {
                                    return self.answered(m, sent, method, client_id).await;
                                }
                                Ok(m) => {
                                    if !self.deliver(m, Via::RequestStream(client_id.clone())).await
                                    {
                                        return;
                                    }
                                }
                                Err(e) => self.difference(
                                    Difference::MessageDropped,
                                    None,
                                    &format!("upstream event is not JSON-RPC: {e}"),
                                ),
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            break "the upstream ended the request's stream before its answer"
                                .to_owned()
                        }
                        Err(e) => break format!("the upstream request stream broke: {e}"),
                    }
                }
            }
            _ => {
                let mut resp = resp;
                match http::body(&mut resp, cfg.max_body, cfg.upstream_timeout).await {
                    Ok(b) => match Message::parse(b) {
                        Ok(m) if m.kind == Kind::Response => {
                            return self.answered(m, sent, method, client_id).await;
                        }
                        Ok(_) => {
                            "the upstream answered with JSON that is not a response".to_owned()
                        }
                        Err(e) => format!("the upstream answer is not JSON-RPC: {e}"),
                    },
                    Err(e) => e.to_string(),
                }
            }
        };
        if let Some(sink) = self.sink.upgrade() {
            sink.request_failed(&client_id, UpstreamError::Protocol(why));
        }
    }

    /// The answer to the client's request (or to a retry of it).
    async fn answered(self: &Rc<Self>, m: Message, sent: Vec<u8>, method: Box<str>, client_id: Id) {
        let result = if m.is_error {
            None
        } else {
            m.result_json().map(str::to_owned)
        };
        if let Some(r) = &result {
            if matches!(result::result_type(r), Ok(ResultType::InputRequired)) {
                return self.input_required(r, sent, method, client_id).await;
            }
            if &*method == "tools/list" {
                self.learn_tools(r);
            }
        }
        self.st.borrow_mut().rounds.remove(&client_id);
        // The answer to a retry carries the bridge's id: the client gets its own back.
        let m = if m.id.as_ref().map(Id::json) != Some(client_id.json()) {
            m.with_id_text(&client_id)
        } else {
            m
        };
        self.deliver(m, Via::RequestStream(client_id)).await;
    }

    /// MRTR: the server needs input before it can answer. Each input request goes to the
    /// client as the request it stands for, on the request's stream.
    async fn input_required(
        self: &Rc<Self>,
        result: &str,
        sent: Vec<u8>,
        method: Box<str>,
        client_id: Id,
    ) {
        let round = self
            .st
            .borrow()
            .rounds
            .get(&client_id)
            .map_or(1, |r| r.round + 1);
        let asked = match mrtr::parse_input_required(result) {
            Ok(_) if round > MAX_INPUT_ROUNDS => Err(format!(
                "the upstream still asked for input after {MAX_INPUT_ROUNDS} rounds; giving up"
            )),
            Ok(a) => Ok(a),
            Err(e) => Err(format!("unreadable input_required result: {e}")),
        };
        let asked = match asked {
            Ok(a) => a,
            Err(why) => {
                self.st.borrow_mut().rounds.remove(&client_id);
                if let Some(sink) = self.sink.upgrade() {
                    sink.request_failed(&client_id, UpstreamError::Protocol(why));
                }
                return;
            }
        };
        let mut out = Vec::new();
        {
            let mut st = self.st.borrow_mut();
            for r in &asked.requests {
                let id = self.mint_id();
                st.asked
                    .insert(id.clone(), (client_id.clone(), r.key.clone()));
                out.push(Message::parse(r.legacy_request(id.json()).into()).expect("well formed"));
            }
            st.rounds.insert(
                client_id.clone(),
                Round {
                    sent,
                    method,
                    asked: asked.clone(),
                    answers: InputResponses::new(),
                    round,
                },
            );
        }
        self.difference(
            Difference::InputRequired,
            None,
            &format!(
                "request {client_id} answered input_required ({}): sent to the client as server-to-client requests; the bridge retries once it answered",
                asked.requests.iter().map(|r| r.method.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
        if asked.requests.is_empty() {
            // State only: retry at once.
            return self.retry(&client_id, self.headers.clone()).await;
        }
        for m in out {
            if !self.deliver(m, Via::RequestStream(client_id.clone())).await {
                return;
            }
        }
    }

    /// The client answered one of the input requests.
    async fn input_answer(
        self: &Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        let asked = msg
            .id
            .as_ref()
            .and_then(|id| self.st.borrow_mut().asked.remove(id));
        let Some((client_id, key)) = asked else {
            self.difference(
                Difference::MessageDropped,
                Some(&msg),
                "a response to no request the bridge asked for: the 2026-07-28 upstream takes none",
            );
            return Ok(());
        };
        let outcome = {
            let mut st = self.st.borrow_mut();
            let Some(round) = st.rounds.get_mut(&client_id) else {
                return Ok(());
            };
            match round.answers.insert_response(&key, msg.raw()) {
                Ok(()) => Ok(round.answers.answers_all(&round.asked)),
                Err(e) => Err(e.error),
            }
        };
        match outcome {
            Ok(true) => {
                let me = self.clone();
                actix_web::rt::spawn(async move { me.retry(&client_id, headers).await });
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => {
                // The spec gives an error no place among the answers: the call fails with it.
                self.st.borrow_mut().rounds.remove(&client_id);
                let reply = Message::parse(
                    format!(
                        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{error}}}",
                        client_id.json()
                    )
                    .into(),
                )
                .expect("well formed");
                self.deliver(reply, Via::RequestStream(client_id)).await;
                Ok(())
            }
        }
    }

    /// Send the request again with the answers and the server's state, under a new id.
    async fn retry(self: &Rc<Self>, client_id: &Id, headers: ForwardHeaders) {
        let wire_id = self.mint_id();
        let next = {
            let st = self.st.borrow();
            st.rounds.get(client_id).map(|r| {
                (
                    mrtr::retry_request(
                        &r.sent,
                        wire_id.json(),
                        &r.answers,
                        r.asked.request_state.as_deref(),
                    ),
                    r.method.clone(),
                )
            })
        };
        let Some((body, method)) = next else { return };
        let result = match body {
            Ok(body) => {
                if let Some(r) = self.st.borrow_mut().rounds.get_mut(client_id) {
                    r.sent = body.clone();
                }
                self.send_request(body, method, wire_id, client_id.clone(), headers)
                    .await
            }
            Err(e) => Err(UpstreamError::Protocol(format!(
                "cannot build the retry: {e}"
            ))),
        };
        if let Err(e) = result {
            if let Some(sink) = self.sink.upgrade() {
                sink.request_failed(client_id, e);
            }
        }
    }

    fn learn_tools(&self, list_result: &str) {
        #[derive(Deserialize)]
        struct List {
            tools: Vec<Tool>,
        }
        #[derive(Deserialize)]
        struct Tool {
            name: String,
            #[serde(rename = "inputSchema")]
            input_schema: Option<serde_json::Value>,
        }
        let Ok(list) = serde_json::from_str::<List>(list_result) else {
            return;
        };
        let mut st = self.st.borrow_mut();
        for t in list.tools {
            let headers = t
                .input_schema
                .as_ref()
                .and_then(|s| era_headers::param_headers(s).ok())
                .unwrap_or_default();
            st.tool_headers.insert(t.name, headers);
        }
    }

    /// A `tools/call` of a tool this session never saw listed (a client may reuse a list
    /// from an earlier session): its header parameters are unknown.
    fn needs_tool_list(&self, body: &[u8]) -> bool {
        let st = self.st.borrow();
        !st.tools_fetched
            && tool_name(body).is_some_and(|name| !st.tool_headers.contains_key(&name))
    }

    /// Fetch the server's tool list (every page) to learn the tools' header parameters.
    /// Best effort: without it the call goes out without them and the server says so.
    async fn fetch_tools(&self, headers: &ForwardHeaders) {
        self.st.borrow_mut().tools_fetched = true;
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let id = self.mint_id();
            let params = match &cursor {
                Some(c) => format!(
                    "{{\"cursor\":{}}}",
                    serde_json::to_string(c).expect("a string")
                ),
                None => "{}".into(),
            };
            let bare = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/list\",\"params\":{params}}}",
                id.json()
            );
            let env = self.env.borrow().clone();
            let Ok(body) = meta::stamp(bare.as_bytes(), &env) else {
                return;
            };
            let answer = match post(
                &self.client,
                &self.shared,
                &body,
                &era_headers_of(&body, &[]),
                headers,
            )
            .await
            {
                Ok(resp) => read_answer(resp, &self.shared, &id).await,
                Err(e) => Err(e),
            };
            let Some(result) = answer
                .ok()
                .as_ref()
                .and_then(Message::result_json)
                .map(str::to_owned)
            else {
                return;
            };
            self.learn_tools(&result);
            cursor = next_cursor(&result);
            if cursor.is_none() {
                return;
            }
        }
    }

    fn tool_headers_for(&self, body: &[u8]) -> Vec<ParamHeader> {
        tool_name(body)
            .and_then(|name| self.st.borrow().tool_headers.get(&name).cloned())
            .unwrap_or_default()
    }

    fn start_listen(self: &Rc<Self>) {
        let mut slot = self.listen_task.borrow_mut();
        if slot.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *slot = Some(actix_web::rt::spawn(self.clone().listen()));
    }

    fn restart_listen(self: &Rc<Self>) {
        if let Some(t) = self.listen_task.borrow_mut().take() {
            t.abort();
        }
        self.start_listen();
    }

    /// The unsolicited stream: `subscriptions/listen`, reopened with backoff when it ends.
    async fn listen(self: Rc<Self>) {
        let mut backoff = Backoff::default();
        loop {
            if self.sink.strong_count() == 0 {
                return;
            }
            let id = self.mint_id();
            let body = {
                let filter = self.st.borrow().filter.clone();
                listen::listen_request(id.json(), &self.env.borrow(), &filter)
            };
            let resp = post(
                &self.client,
                &self.shared,
                body.as_bytes(),
                &era_headers_of(body.as_bytes(), &[]),
                &self.headers,
            )
            .await;
            match resp {
                Ok(r) if r.status().is_success() && http::media(&r) == Media::EventStream => {
                    let mut reader = EventReader::new(r, self.shared.cfg.max_body + 64 * 1024);
                    while let Ok(Some(ev)) = reader.next().await {
                        backoff.healthy();
                        let Ok(m) = Message::parse(ev.data) else {
                            continue;
                        };
                        if m.method() == Some(listen::ACKNOWLEDGED) {
                            self.note_once(
                                Difference::ListenOpened,
                                &m,
                                "the upstream has no GET stream: unsolicited messages come from subscriptions/listen (filter: the server's list-changed capabilities and the client's resources/subscribe); its acknowledgement is not forwarded",
                            );
                            continue;
                        }
                        if m.kind == Kind::Response {
                            continue;
                        }
                        if !self.deliver(m, Via::StandaloneStream).await {
                            return;
                        }
                    }
                }
                Ok(r) if matches!(r.status().as_u16(), 400 | 404 | 405) => {
                    tracing::info!(
                        status = r.status().as_u16(),
                        "upstream offers no subscriptions/listen stream"
                    );
                    return;
                }
                Ok(r) => tracing::debug!(
                    status = r.status().as_u16(),
                    "upstream listen stream refused"
                ),
                Err(e) => tracing::debug!("upstream listen stream: {e}"),
            }
            tokio::time::sleep(backoff.next_delay(None)).await;
        }
    }

    fn stop_reading(&self, request: &Id) {
        self.tasks.borrow_mut().retain(|(rid, t)| {
            if rid == request {
                t.abort();
                return false;
            }
            !t.is_finished()
        });
        self.st.borrow_mut().rounds.remove(request);
    }

    fn mint_id(&self) -> Id {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        Id::bridge(n)
    }

    async fn deliver(&self, m: Message, via: Via) -> bool {
        let Some(sink) = self.sink.upgrade() else {
            return false;
        };
        sink.deliver(m, via).await;
        true
    }

    fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        if let Some(sink) = self.sink.upgrade() {
            sink.difference(kind, msg, reason);
        }
    }

    /// Record `kind` the first time only: it holds for the whole session.
    fn note_once(&self, kind: Difference, msg: &Message, reason: &str) {
        let first = {
            let mut st = self.st.borrow_mut();
            let first = !st.noted.contains(&kind);
            if first {
                st.noted.push(kind);
            }
            first
        };
        if first {
            self.difference(kind, Some(msg), reason);
        }
    }
}

/// Pages of `tools/list` the bridge reads on its own before giving up.
const MAX_TOOL_PAGES: usize = 16;

/// The tool a `tools/call` body names.
fn tool_name(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Call<'a> {
        method: Option<&'a str>,
        params: Option<Named>,
    }
    #[derive(Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let call = serde_json::from_slice::<Call<'_>>(body).ok()?;
    (call.method == Some("tools/call"))
        .then_some(call.params?.name)
        .flatten()
}

fn next_cursor(list_result: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(rename = "nextCursor")]
        next_cursor: Option<String>,
    }
    serde_json::from_str::<Page>(list_result).ok()?.next_cursor
}

/// POST a body with the era's headers and the client's forwarded ones.
async fn post(
    client: &awc::Client,
    shared: &UpstreamShared,
    body: &[u8],
    era: &[(String, String)],
    forwarded: &ForwardHeaders,
) -> Result<ClientResponse, UpstreamError> {
    let cfg = &shared.cfg;
    let mut req = client
        .post(shared.url().as_str())
        .insert_header((header::ACCEPT, "application/json, text/event-stream"))
        .insert_header((header::CONTENT_TYPE, "application/json"));
    for (k, v) in era {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    for (k, v) in forwarded {
        req = req.append_header((k.clone(), v.clone()));
    }
    http::within(
        cfg.upstream_timeout,
        req.send_body(bytes::Bytes::copy_from_slice(body)),
    )
    .await
}

/// The era's headers for a stamped body (none when it cannot be read: the server says so).
fn era_headers_of(body: &[u8], tool: &[ParamHeader]) -> Vec<(String, String)> {
    era_headers::request_headers(body, tool).unwrap_or_default()
}

/// Read the answer to the bridge's own request `id` (JSON or SSE), whatever its status.
async fn read_answer(
    resp: ClientResponse,
    shared: &UpstreamShared,
    id: &Id,
) -> Result<Message, UpstreamError> {
    let cfg = &shared.cfg;
    if !resp.status().is_success() {
        return Err(http::status_error(resp, cfg).await);
    }
    match http::media(&resp) {
        Media::EventStream => {
            let mut reader = EventReader::new(resp, cfg.max_body + 64 * 1024);
            let answer = async {
                while let Ok(Some(ev)) = reader.next().await {
                    if let Ok(m) = Message::parse(ev.data) {
                        if m.kind == Kind::Response && m.id.as_ref() == Some(id) {
                            return Some(m);
                        }
                    }
                }
                None
            };
            match tokio::time::timeout(cfg.upstream_timeout, answer).await {
                Ok(Some(m)) => Ok(m),
                Ok(None) => Err(UpstreamError::StreamEnded),
                Err(_) => Err(UpstreamError::Timeout(cfg.upstream_timeout)),
            }
        }
        _ => {
            let mut resp = resp;
            let b = http::body(&mut resp, cfg.max_body, cfg.upstream_timeout).await?;
            Message::parse(b)
                .map_err(|e| UpstreamError::Protocol(format!("answer is not JSON-RPC: {e}")))
        }
    }
}

fn rejection(answer: &Message, what: &str) -> UpstreamError {
    UpstreamError::Protocol(format!(
        "{what} failed: {}",
        answer.error_message().unwrap_or_else(|| "no result".into())
    ))
}

fn requested_version(init_params: &str) -> String {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_str::<P>(init_params)
        .ok()
        .and_then(|p| p.protocol_version)
        .unwrap_or_default()
}

fn uri_of(params: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        uri: String,
    }
    serde_json::from_str::<P>(params).ok().map(|p| p.uri)
}
