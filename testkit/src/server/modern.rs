//! The 2026-07-28 revision of Streamable HTTP: sessionless, `POST /mcp` only.
//!
//! Every request is checked as the spec says ([`super::modern_check`]), `server/discover`
//! replaces `initialize`, tools answer with one JSON body (or an SSE stream when a progress or
//! log message comes first), server-to-client requests are `input_required` results (MRTR),
//! and unsolicited notifications ride `subscriptions/listen` streams. The tools are
//! [`crate::mcp`]'s, so a call behaves as it does over the other transports; the ones that
//! need the client (`sample`, `roots`, and `elicit` here only) ask through MRTR.
//!
//! Fault knobs ([`super::ServerOptions`]): `modern_versions` / `discover_versions` (a server
//! of another revision), `listen_drop_after` (listen streams that end), `header_mismatch_on_tool_calls`
//! (every `tools/call` refused with -32020); the tool `ask_forever` never stops asking.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::conn::{self, Conn};
use super::modern_check::{self, Refusal, HEADER_MISMATCH};
use super::util::{accepts, is_json_content, rpc_error};
use super::{Backend, Shared};
use crate::mcp::{self, McpState, Outlet};
use crate::sse::{encode_event, LineEnd};

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// RFC 5424 severities, lowest first, as MCP orders log levels.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub(crate) struct Modern {
    shared: Arc<Shared>,
    mcp: Arc<McpState>,
    listens: Mutex<Vec<Listen>>,
}

/// One open `subscriptions/listen` stream.
struct Listen {
    /// The listen request's id: the tag on every message of the stream.
    id: Value,
    filter: Value,
    conn: Conn,
    /// Notifications left before the `listen_drop_after` cut.
    left: Option<usize>,
}

impl Modern {
    pub fn new(shared: Arc<Shared>) -> Self {
        Modern {
            mcp: Arc::new(McpState::new("fake-modern", shared.clone())),
            shared,
            listens: Mutex::new(Vec::new()),
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
            Ok(p) if p.batch => return rpc_error(400, -32600, "Invalid Request: no batches"),
            Ok(p) => p,
            Err(mcp::BodyError::Json) => return rpc_error(400, -32700, "Parse error"),
            Err(mcp::BodyError::Invalid) => return rpc_error(400, -32600, "Invalid Request"),
        };
        let msg = parsed.messages.into_iter().next().expect("one message");
        match msg.kind() {
            mcp::Kind::Request => {}
            mcp::Kind::Notification => {
                // No client notification means anything in this era; kept for the tests.
                let method = msg.method.as_deref().unwrap_or_default();
                self.shared
                    .note_notification(json!({"method": method, "params": msg.params}));
                return HttpResponse::Accepted().finish();
            }
            _ => {
                return rpc_error(
                    400,
                    -32600,
                    "Invalid Request: this server sends no requests to answer",
                );
            }
        }
        let value: Value = serde_json::from_slice(&body).unwrap_or_default();
        let opts = &self.shared.opts;
        if let Err(r) = modern_check::check(&req, &value, opts.modern_versions, tool_param_headers)
        {
            return refused(r);
        }
        let method = msg.method.clone().unwrap_or_default();
        let id = msg.id.clone().expect("a request has an id");
        if method == "tools/call" && opts.header_mismatch_on_tool_calls {
            let id: Value = serde_json::from_str(id.get()).unwrap_or_default();
            return refused(modern_check::refusal(
                400,
                &id,
                HEADER_MISMATCH,
                "Header mismatch: this server refuses every tools/call (test fault)",
                None,
            ));
        }
        match method.as_str() {
            "server/discover" => json_body(mcp::result_response(&id, &self.discover())),
            "tools/list" => json_body(mcp::result_response(&id, &tools_list())),
            "subscriptions/listen" => self.listen(&value),
            _ => match mrtr_tool(&msg.params) {
                Some(result) => json_body(mcp::result_response(&id, &result)),
                None => self.call(msg).await,
            },
        }
    }

    fn discover(&self) -> Value {
        let opts = &self.shared.opts;
        json!({
            "resultType": "complete",
            "supportedVersions": opts.discover_versions.unwrap_or(opts.modern_versions),
            "capabilities": {"tools": {"listChanged": true}, "logging": {}},
            "instructions": "A fake 2026-07-28 MCP server (mcp-testkit).",
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo":
                {"name": "fake-modern", "version": env!("CARGO_PKG_VERSION")}},
        })
    }

    /// A tool of [`crate::mcp`]: one JSON answer, or an SSE stream once a message precedes it.
    async fn call(&self, msg: mcp::Message) -> HttpResponse {
        let min_level = msg
            .params
            .pointer(&format!("/_meta/{}", LOG_LEVEL.replace('/', "~1")))
            .and_then(Value::as_str)
            .and_then(severity);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out: Rc<dyn Outlet> = Rc::new(RequestOutlet {
            tx: tx.clone(),
            min_level,
            shared: self.shared.clone(),
        });
        let mcp = self.mcp.clone();
        actix_rt::spawn(async move {
            let answer = mcp.on_request(msg, out).await;
            let _ = tx.send(Out::Done(answer));
        });
        let first = match rx.recv().await {
            Some(Out::Done(Some(answer))) => return json_body(answer),
            Some(Out::Related(first)) => first,
            Some(Out::Done(None)) | None => return HttpResponse::InternalServerError().finish(),
        };
        let (conn, body) = conn::open(&self.shared, |_| {});
        conn.send(event(&first));
        actix_rt::spawn(async move {
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Related(json) if conn.send(event(&json)) => {}
                    Out::Related(_) => return,
                    Out::Done(answer) => {
                        if let Some(answer) = answer {
                            conn.send(event(&answer));
                        }
                        return conn.close();
                    }
                }
            }
        });
        conn::sse_response(body, &[])
    }

    /// `subscriptions/listen`: acknowledged at once, then the notifications its filter asks for.
    fn listen(self: Arc<Self>, request: &Value) -> HttpResponse {
        let id = request.get("id").cloned().unwrap_or_default();
        let filter = request
            .pointer("/params/notifications")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let weak: Weak<Modern> = Arc::downgrade(&self);
        let (conn, body) = conn::open(&self.shared, move |gen| {
            if let Some(me) = weak.upgrade() {
                me.listens.lock().unwrap().retain(|l| l.conn.gen != gen);
                me.shared.changed();
            }
        });
        let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": filter, "_meta": {SUBSCRIPTION_ID: id}}});
        conn.send(event(&ack.to_string()));
        let listen = Listen {
            id,
            filter,
            conn,
            left: self.shared.opts.listen_drop_after,
        };
        if listen.left == Some(0) {
            listen.conn.close();
        } else {
            self.listens.lock().unwrap().push(listen);
        }
        self.shared.changed();
        conn::sse_response(body, &[])
    }

    /// Sends a notification on every listen stream that asked for it; returns how many.
    fn broadcast(&self, json: &str) -> usize {
        let Ok(msg) = serde_json::from_str::<Value>(json) else {
            return 0;
        };
        let mut sent = 0;
        let mut listens = self.listens.lock().unwrap();
        listens.retain_mut(|l| {
            if !wants(&l.filter, &msg) {
                return true;
            }
            let mut tagged = msg.clone();
            if !tagged.get("params").is_some_and(Value::is_object) {
                tagged["params"] = json!({});
            }
            if !tagged["params"].get("_meta").is_some_and(Value::is_object) {
                tagged["params"]["_meta"] = json!({});
            }
            tagged["params"]["_meta"][SUBSCRIPTION_ID] = l.id.clone();
            if !l.conn.send(event(&tagged.to_string())) {
                return false;
            }
            sent += 1;
            match l.left.as_mut() {
                Some(left) if *left <= 1 => false,
                Some(left) => {
                    *left -= 1;
                    true
                }
                None => true,
            }
        });
        // Streams cut by `listen_drop_after` were dropped from the list: end them cleanly.
        drop(listens);
        self.shared.changed();
        sent
    }
}

/// Whether a listen stream with this `SubscriptionFilter` gets the notification.
fn wants(filter: &Value, msg: &Value) -> bool {
    let on = |key: &str| filter.get(key).and_then(Value::as_bool) == Some(true);
    match msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "notifications/tools/list_changed" => on("toolsListChanged"),
        "notifications/prompts/list_changed" => on("promptsListChanged"),
        "notifications/resources/list_changed" => on("resourcesListChanged"),
        "notifications/resources/updated" => {
            let uri = msg.pointer("/params/uri");
            filter
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .is_some_and(|uris| uri.is_some_and(|u| uris.contains(u)))
        }
        _ => true,
    }
}

enum Out {
    Related(String),
    Done(Option<String>),
}

/// A request's messages: to its own answer, log messages only at or above the level the
/// request's `_meta` asked for (none without one, as the era says).
struct RequestOutlet {
    tx: mpsc::UnboundedSender<Out>,
    min_level: Option<usize>,
    shared: Arc<Shared>,
}

impl Outlet for RequestOutlet {
    fn related(&self, json: String) {
        if let Ok(v) = serde_json::from_str::<Value>(&json) {
            if v.get("method").and_then(Value::as_str) == Some("notifications/message") {
                let level = v.pointer("/params/level").and_then(Value::as_str);
                if self
                    .min_level
                    .is_none_or(|min| level.and_then(severity) < Some(min))
                {
                    self.shared.dropped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
        let _ = self.tx.send(Out::Related(json));
    }

    /// Log messages never ride a listen stream: a message about no request has nowhere to go.
    fn unrelated(&self, _json: String) {
        self.shared.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn severity(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

/// The tools that differ in this era: `sample`, `roots` and `elicit` ask through MRTR, `ask_forever`
/// never stops asking, `écho` has a non-ASCII name and `regional_echo` an `x-mcp-header`.
fn mrtr_tool(params: &Value) -> Option<Value> {
    let name = params.get("name").and_then(Value::as_str)?;
    let arg = |k: &str| {
        params
            .pointer(&format!("/arguments/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let answer = |key: &str| params.pointer(&format!("/inputResponses/{key}"));
    let roots = json!({"roots": {"method": "roots/list", "params": {}}});
    Some(match name {
        "sample" => match answer("sample") {
            Some(r) => text_result(
                r.pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            None => input_required(
                json!({"sample": {"method": "sampling/createMessage", "params": {
                    "messages": [{"role": "user", "content": {"type": "text", "text": arg("prompt")}}],
                    "maxTokens": 100}}}),
                "sample",
            ),
        },
        "roots" => match answer("roots") {
            Some(r) => text_result(&r.get("roots").unwrap_or(&Value::Null).to_string()),
            None => input_required(roots, "roots"),
        },
        "elicit" => match answer("elicit") {
            Some(r) => text_result(&r.get("action").unwrap_or(&Value::Null).to_string()),
            None => input_required(
                json!({"elicit": {"method": "elicitation/create", "params": {
                    "mode": "form", "message": arg("message"),
                    "requestedSchema": {"type": "object", "properties": {}}}}}),
                "elicit",
            ),
        },
        "ask_forever" => {
            let round = params
                .get("requestState")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix("round-")?.parse::<u64>().ok())
                .unwrap_or(0);
            input_required(roots, &format!("round-{}", round + 1))
        }
        "écho" => text_result(&arg("text")),
        "regional_echo" => text_result(&format!("{}: {}", arg("region"), arg("text"))),
        _ => return None,
    })
}

/// The `x-mcp-header` parameters of a tool: `(header suffix, argument)`.
fn tool_param_headers(tool: &str) -> Vec<(&'static str, &'static str)> {
    match tool {
        "regional_echo" => vec![("Region", "region")],
        _ => vec![],
    }
}

fn input_required(requests: Value, state: &str) -> Value {
    json!({"resultType": "input_required", "inputRequests": requests, "requestState": state})
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

/// [`crate::mcp`]'s tools plus this era's own, with the cache hints the era requires.
fn tools_list() -> Value {
    let mut list = mcp::tools_list();
    let string = json!({"type": "string"});
    let tools = list["tools"].as_array_mut().expect("a tool array");
    tools.push(json!({"name": "elicit", "description": "Asks the user (elicitation/create) and returns the action",
        "inputSchema": {"type": "object", "properties": {"message": string}}}));
    tools.push(json!({"name": "ask_forever", "description": "Answers input_required (roots/list) on every round",
        "inputSchema": {"type": "object", "properties": {}}}));
    tools.push(
        json!({"name": "écho", "description": "Returns its text (a tool name that is not ASCII)",
        "inputSchema": {"type": "object", "properties": {"text": string}, "required": ["text"]}}),
    );
    tools.push(json!({"name": "regional_echo", "description": "Returns region: text; region travels as Mcp-Param-Region",
        "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"}, "text": string},
            "required": ["region", "text"]}}));
    list["resultType"] = json!("complete");
    list["ttlMs"] = json!(0);
    list["cacheScope"] = json!("private");
    list
}

fn event(json: &str) -> String {
    encode_event(Some("message"), None, None, json, LineEnd::Lf)
}

fn json_body(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

fn refused(r: Refusal) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(r.status).expect("a valid status");
    HttpResponse::build(status)
        .content_type("application/json")
        .body(r.body)
}

impl Backend for Modern {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let p = self.clone();
        let shared = self.shared.clone();
        cfg.service(
            web::resource(shared.opts.endpoint_path())
                .route(
                    web::post().to(move |req: HttpRequest, body: Bytes| p.clone().post(req, body)),
                )
                .default_service(web::to(move |req: HttpRequest, body: Bytes| {
                    // No GET stream and no session to DELETE in this era.
                    shared.record(&req, &body);
                    async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header(("allow", "POST"))
                            .finish()
                    }
                })),
        );
    }

    fn session_count(&self) -> usize {
        0
    }

    /// Sessionless: the closest thing is ending every listen stream cleanly.
    fn expire_sessions(&self) {
        for l in self.listens.lock().unwrap().drain(..) {
            l.conn.close();
        }
    }

    fn kill_streams(&self) {
        for l in self.listens.lock().unwrap().drain(..) {
            l.conn.kill();
        }
    }

    fn send_unsolicited(&self, json: &str) -> usize {
        let sent = self.broadcast(json);
        if sent == 0 {
            self.shared.dropped.fetch_add(1, Ordering::SeqCst);
        }
        sent
    }

    /// Open listen streams.
    fn get_streams(&self) -> usize {
        self.listens.lock().unwrap().len()
    }
}
