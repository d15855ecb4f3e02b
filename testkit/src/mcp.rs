//! The fake server's MCP behaviour, shared by both transports.
//!
//! A transport parses HTTP into [`Message`]s and hands them to a per-session [`McpState`]. The
//! state never knows how messages travel: a request handler writes through an [`Outlet`], which
//! the transport implements (the request's SSE stream or the session stream). So every tool
//! behaves the same over legacy SSE and Streamable HTTP, and only routing differs.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::server::Shared;

/// Protocol versions the fake server accepts (echoed back in `initialize`).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// What the fake server offers when the client asks for an unknown version.
pub const LATEST_VERSION: &str = "2025-11-25";

/// One JSON-RPC message as received. The `id` keeps the exact JSON the sender wrote, so a
/// response can repeat it byte for byte (`1` stays `1`, `"1"` stays `"1"`).
#[derive(Debug)]
pub(crate) struct Message {
    pub id: Option<Box<RawValue>>,
    pub method: Option<String>,
    pub params: Value,
    pub result: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

impl Message {
    pub fn kind(&self) -> Kind {
        match (&self.method, &self.id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, Some(_)) if self.result.is_some() || self.error.is_some() => Kind::Response,
            _ => Kind::Invalid,
        }
    }

    pub fn is_initialize(&self) -> bool {
        self.kind() == Kind::Request && self.method.as_deref() == Some("initialize")
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    id: Option<Box<RawValue>>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
    result: Option<Value>,
    error: Option<Value>,
}

impl From<Wire> for Message {
    fn from(w: Wire) -> Self {
        Message {
            id: w.id,
            method: w.method,
            params: w.params,
            result: w.result,
            error: w.error,
        }
    }
}

/// Why a body could not be turned into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not JSON at all (-32700).
    Json,
    /// JSON, but not a JSON-RPC message or a non-empty array of them (-32600).
    Invalid,
}

/// A parsed POST body.
#[derive(Debug)]
pub(crate) struct Body {
    pub messages: Vec<Message>,
    pub batch: bool,
}

/// Parses a POST body: one message or (Streamable 2025-03-26) a batch.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Body, BodyError> {
    // Syntax first, so "not JSON" and "not JSON-RPC" get different errors.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|_| BodyError::Json)?;
    let batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let messages: Vec<Message> = if batch {
        let v: Vec<Wire> = serde_json::from_slice(bytes).map_err(|_| BodyError::Invalid)?;
        v.into_iter().map(Message::from).collect()
    } else {
        let w: Wire = serde_json::from_slice(bytes).map_err(|_| BodyError::Invalid)?;
        vec![w.into()]
    };
    if messages.is_empty() || messages.iter().any(|m| m.kind() == Kind::Invalid) {
        return Err(BodyError::Invalid);
    }
    Ok(Body { messages, batch })
}

/// Canonical key for an id (`1` and `"1"` stay distinct; whitespace does not matter).
pub(crate) fn id_key(id: &RawValue) -> String {
    serde_json::from_str::<Value>(id.get())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| id.get().to_string())
}

/// `id` as JavaScript's `JSON.stringify(JSON.parse(id))` writes it.
fn js_reserialized(id: &RawValue) -> Box<RawValue> {
    let text = match serde_json::from_str::<Value>(id.get()) {
        Ok(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            Some(f) => format!("{f}"),
            None => id.get().to_owned(),
        },
        Ok(Value::String(s)) => serde_json::to_string(&s).expect("a string serialises"),
        _ => id.get().to_owned(),
    };
    RawValue::from_string(text).expect("valid JSON")
}

/// `{"jsonrpc":"2.0","id":<id as sent>,"result":...}`.
pub(crate) fn result_response(id: &RawValue, result: &Value) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.get(),
        result
    )
}

/// A JSON-RPC error; `id: None` writes `null` (the TS SDK's choice for unreadable ids).
pub(crate) fn error_response(id: Option<&RawValue>, code: i64, message: &str) -> String {
    let id = id.map_or("null", |i| i.get());
    let message = Value::from(message);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

pub(crate) fn notification(method: &str, params: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#)
}

/// Where a request handler's messages go; implemented by each transport.
pub(crate) trait Outlet {
    /// A message about the request being handled (Streamable: that request's stream).
    fn related(&self, json: String);
    /// A message about no request in particular (Streamable: the standalone GET stream).
    fn unrelated(&self, json: String);
}

type RpcResult = Result<Value, (i64, String)>;

/// Per-session MCP state, identical for both transports.
pub(crate) struct McpState {
    server_name: &'static str,
    shared: Arc<Shared>,
    protocol_version: Mutex<Option<String>>,
    next_server_id: AtomicU64,
    /// Server→client requests waiting for the client's answer, by id string.
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Client requests in flight, by [`id_key`], so `notifications/cancelled` can stop them.
    inflight: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl McpState {
    pub fn new(server_name: &'static str, shared: Arc<Shared>) -> Self {
        McpState {
            server_name,
            shared,
            protocol_version: Mutex::new(None),
            next_server_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// The version agreed in `initialize`, if any.
    pub fn protocol_version(&self) -> Option<String> {
        self.protocol_version.lock().unwrap().clone()
    }

    /// The version `initialize` with these params would negotiate.
    pub fn negotiate(params: &Value) -> &'static str {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        SUPPORTED_VERSIONS
            .iter()
            .find(|v| Some(**v) == asked)
            .copied()
            .unwrap_or(LATEST_VERSION)
    }

    /// Handles a client notification (records it; `notifications/cancelled` stops a call).
    pub fn on_notification(&self, msg: &Message) {
        let method = msg.method.as_deref().unwrap_or_default();
        self.shared
            .note_notification(json!({"method": method, "params": msg.params}));
        if method == "notifications/cancelled" {
            if let Some(req) = msg.params.get("requestId") {
                if let Some(stop) = self.inflight.lock().unwrap().remove(&req.to_string()) {
                    let _ = stop.send(());
                }
            }
        }
    }

    /// Handles a client response to one of our requests. Returns whether anyone was waiting.
    pub fn on_response(&self, msg: Message) -> bool {
        let Some(id) = msg.id.as_deref() else {
            return false;
        };
        let key = match serde_json::from_str::<Value>(id.get()) {
            Ok(Value::String(s)) => s,
            _ => return false,
        };
        let waiter = self.pending.lock().unwrap().remove(&key);
        let body = match (msg.result, msg.error) {
            (Some(r), _) => json!({"result": r}),
            (None, e) => json!({"error": e}),
        };
        waiter.is_some_and(|w| w.send(body).is_ok())
    }

    /// Handles a client request; returns the response to write, or `None` when the request was
    /// cancelled (like the TS SDK, a cancelled request gets no response at all).
    pub async fn on_request(self: Arc<Self>, msg: Message, out: Rc<dyn Outlet>) -> Option<String> {
        let id = msg.id.expect("a request has an id");
        let key = id_key(&id);
        let (stop_tx, stop_rx) = oneshot::channel();
        self.inflight.lock().unwrap().insert(key.clone(), stop_tx);
        let method = msg.method.unwrap_or_default();
        let outcome = tokio::select! {
            r = self.dispatch(&method, msg.params, out) => Some(r),
            // A dropped sender (duplicate id) is not a cancellation: that branch just disables.
            Ok(()) = stop_rx => None,
        };
        self.inflight.lock().unwrap().remove(&key);
        let id = match self.shared.opts.reserialize_ids {
            true => js_reserialized(&id),
            false => id,
        };
        match outcome? {
            Ok(result) => Some(result_response(&id, &result)),
            Err((code, message)) => Some(error_response(Some(&id), code, &message)),
        }
    }

    async fn dispatch(&self, method: &str, params: Value, out: Rc<dyn Outlet>) -> RpcResult {
        match method {
            "initialize" => Ok(self.initialize(&params)),
            "ping" | "logging/setLevel" => Ok(json!({})),
            // Updates are sent by the test (`send_unsolicited`); the requests are in the journal.
            "resources/subscribe" | "resources/unsubscribe" => Ok(json!({})),
            "tools/list" => Ok(tools_list()),
            "tools/call" => self.call_tool(params, &*out).await,
            _ => Err((-32601, format!("Method not found: {method}"))),
        }
    }

    fn initialize(&self, params: &Value) -> Value {
        let version = Self::negotiate(params);
        *self.protocol_version.lock().unwrap() = Some(version.to_string());
        json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "logging": {},
            },
            "serverInfo": {"name": self.server_name, "version": env!("CARGO_PKG_VERSION")},
        })
    }

    async fn call_tool(&self, params: Value, out: &dyn Outlet) -> RpcResult {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let args = params.get("arguments").cloned().unwrap_or(Value::Null);
        let str_arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let num_arg = |k: &str, d: u64| args.get(k).and_then(Value::as_u64).unwrap_or(d);
        match name {
            "echo" => Ok(text_result(&str_arg("text"))),
            // One log message (and, when asked, one progress notification) per item.
            "progress" | "process_items" => {
                let token = params.pointer("/_meta/progressToken").cloned();
                let delay = num_arg("delay_ms", 0);
                let items: Vec<String> = match name {
                    // `pad`: that many spaces after each step's text (large notifications).
                    "progress" => (1..=num_arg("steps", 3))
                        .map(|i| format!("step {i}{}", " ".repeat(num_arg("pad", 0) as usize)))
                        .collect(),
                    _ => args
                        .get("items")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|v| {
                                    v.as_str()
                                        .map(str::to_owned)
                                        .unwrap_or_else(|| v.to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let total = items.len();
                for (i, item) in items.iter().enumerate() {
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let msg = match name {
                        "progress" => item.clone(),
                        _ => format!("processed {item}"),
                    };
                    let log = json!({"level": "info", "data": msg});
                    out.related(notification("notifications/message", &log));
                    if let Some(token) = &token {
                        let p = json!({"progressToken": token, "progress": i + 1, "total": total, "message": msg});
                        out.related(notification("notifications/progress", &p));
                    }
                }
                Ok(text_result(&match name {
                    "progress" => format!("done {total} steps"),
                    _ => format!("processed {total} items"),
                }))
            }
            "sample" => {
                let p = json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": str_arg("prompt")}}],
                    "maxTokens": 100,
                });
                // With a progress token: progress 1/2 before asking, 2/2 after the answer.
                let token = params.pointer("/_meta/progressToken").cloned();
                let progress = |n: u64| {
                    if let Some(t) = &token {
                        let p = json!({"progressToken": t, "progress": n, "total": 2});
                        out.related(notification("notifications/progress", &p));
                    }
                };
                progress(1);
                let answer = self.ask_client("sampling/createMessage", p, out).await;
                progress(2);
                match answer {
                    Ok(r) => Ok(text_result(
                        r.pointer("/content/text")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    )),
                    Err(e) => Ok(error_result(&format!("sampling failed: {e}"))),
                }
            }
            "roots" => match self.ask_client("roots/list", json!({}), out).await {
                Ok(r) => Ok(text_result(
                    &r.get("roots").unwrap_or(&Value::Null).to_string(),
                )),
                Err(e) => Ok(error_result(&format!("roots/list failed: {e}"))),
            },
            "notify" => {
                let log = json!({"level": "info", "data": str_arg("text")});
                out.unrelated(notification("notifications/message", &log));
                Ok(text_result("notified"))
            }
            "slow" => {
                let ms = num_arg("ms", 1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(text_result(&format!("slept {ms} ms")))
            }
            "big" => Ok(text_result(&"x".repeat(num_arg("bytes", 1024) as usize))),
            _ => Err((-32602, format!("Unknown tool: {name}"))),
        }
    }

    /// Sends a server→client request (string id `srv-N`) and waits for the client's answer.
    async fn ask_client(
        &self,
        method: &str,
        params: Value,
        out: &dyn Outlet,
    ) -> Result<Value, String> {
        let id = format!(
            "srv-{}",
            self.next_server_id.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id.clone(), tx);
        out.related(format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","method":"{method}","params":{params}}}"#
        ));
        let wait = self.shared.opts.client_response_timeout;
        let answer = tokio::time::timeout(wait, rx).await;
        self.pending.lock().unwrap().remove(&id);
        match answer {
            Ok(Ok(body)) => match body.get("result") {
                Some(r) => Ok(r.clone()),
                None => Err(format!("client error {}", body["error"])),
            },
            Ok(Err(_)) => Err("session ended".into()),
            Err(_) => Err("client did not answer in time".into()),
        }
    }
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn error_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

pub(crate) fn tools_list() -> Value {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let int = json!({"type": "integer", "minimum": 0});
    let string = json!({"type": "string"});
    let tool = |name: &str, description: &str, schema: Value| json!({"name": name, "description": description, "inputSchema": schema});
    json!({"tools": [
        tool("echo", "Returns its text", obj(json!({"text": string}), &["text"])),
        tool("progress", "Sends a log message (and a progress notification when asked) per step, then returns",
            obj(json!({"steps": int, "delay_ms": int, "pad": int}), &[])),
        tool("sample", "Asks the client to sample (sampling/createMessage) and returns the sampled text; with a progress token, progress 1/2 before asking and 2/2 after",
            obj(json!({"prompt": string}), &["prompt"])),
        tool("roots", "Asks the client for its roots (roots/list) and returns them as JSON", obj(json!({}), &[])),
        tool("notify", "Sends an unrelated notifications/message, then returns",
            obj(json!({"text": string}), &["text"])),
        tool("slow", "Sleeps for ms milliseconds, then returns", obj(json!({"ms": int}), &["ms"])),
        tool("process_items", "Processes each item: one log message and one progress notification per item",
            obj(json!({"items": {"type": "array", "items": string}, "delay_ms": int}), &["items"])),
        tool("big", "Returns a text of that many 'x'", obj(json!({"bytes": int}), &["bytes"])),
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_exact_ids_and_detects_batches() {
        let b = parse_body(br#"{"jsonrpc":"2.0","id": "1","method":"ping"}"#).unwrap();
        assert!(!b.batch);
        let id = b.messages[0].id.as_deref().unwrap();
        assert_eq!(id.get(), r#""1""#);
        assert_eq!(
            result_response(id, &json!({})),
            r#"{"jsonrpc":"2.0","id":"1","result":{}}"#
        );
        assert_eq!(id_key(id), r#""1""#);

        let b = parse_body(
            br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#,
        )
        .unwrap();
        assert!(b.batch);
        assert_eq!(b.messages[0].kind(), Kind::Request);
        assert_eq!(b.messages[1].kind(), Kind::Notification);
        assert_eq!(id_key(b.messages[0].id.as_deref().unwrap()), "1");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_body(b"{nope").unwrap_err(), BodyError::Json);
        assert_eq!(parse_body(b"[]").unwrap_err(), BodyError::Invalid);
        assert_eq!(parse_body(b"42").unwrap_err(), BodyError::Invalid);
        assert_eq!(
            parse_body(br#"{"jsonrpc":"2.0"}"#).unwrap_err(),
            BodyError::Invalid
        );
    }

    #[test]
    fn responses_are_classified() {
        let b = parse_body(br#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#).unwrap();
        assert_eq!(b.messages[0].kind(), Kind::Response);
    }

    #[test]
    fn negotiation_echoes_known_versions_only() {
        assert_eq!(
            McpState::negotiate(&json!({"protocolVersion": "2024-11-05"})),
            "2024-11-05"
        );
        assert_eq!(
            McpState::negotiate(&json!({"protocolVersion": "1999-01-01"})),
            LATEST_VERSION
        );
        assert_eq!(McpState::negotiate(&json!({})), LATEST_VERSION);
    }

    #[test]
    fn error_response_escapes_message() {
        assert_eq!(
            error_response(None, -32601, "a \"b\""),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"a \"b\""}}"#
        );
    }
}
