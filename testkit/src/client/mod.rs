//! Raw MCP clients on awc, for tests and load generation.
//!
//! They add nothing a test did not ask for: every status, header and SSE event stays visible.
//! `request()` on either client drives one whole call (posting answers to server→client
//! requests when auto-answer is on) and returns the [`Exchange`] it saw.

pub mod any;
pub mod legacy;
pub mod stream;
pub mod streamable;

use std::collections::BTreeMap;
use std::time::Duration;

use awc::http::header::HeaderMap;
use serde_json::{json, Value};

/// Lowercase header names → values (repeated headers joined with `, `).
pub type Headers = BTreeMap<String, String>;

/// Text of the assistant message the clients answer `sampling/createMessage` with.
pub const SAMPLING_REPLY_TEXT: &str = "testkit sampled reply";
/// The roots the clients answer `roots/list` with (JSON of the `roots` array).
pub const ROOTS_REPLY: &str = r#"[{"uri":"file:///testkit/root","name":"testkit-root"}]"#;

/// Default deadline for one HTTP exchange or one `request()`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One awc client per raw client: no timeout of its own (deadlines are explicit), no pool limit
/// (a load generator opens many streams), no redirects (tests must see a 307).
pub(crate) fn http_client() -> awc::Client {
    awc::Client::builder()
        .disable_timeout()
        .disable_redirects()
        .connector(awc::Connector::new().limit(0))
        .finish()
}

pub(crate) fn headers_of(map: &HeaderMap) -> Headers {
    let mut out = Headers::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// Sets headers in order (later ones replace earlier ones of the same name); an empty value
/// removes the header, so a test can drop a default such as `accept`.
pub(crate) fn apply_headers(
    mut req: awc::ClientRequest,
    headers: impl IntoIterator<Item = (String, String)>,
) -> awc::ClientRequest {
    for (name, value) in headers {
        if value.is_empty() {
            req.headers_mut().remove(name.as_str());
        } else {
            req = req.insert_header((name, value));
        }
    }
    req
}

pub(crate) fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// A plain HTTP answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: String,
}

/// What one `request()` saw: the response, and everything that arrived before it, in order.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub response: Value,
    /// Notifications received before the response.
    pub notifications: Vec<Value>,
    /// Server→client requests received before the response (answered when auto-answer is on).
    pub server_requests: Vec<Value>,
    /// All messages before the response, in arrival order.
    pub messages: Vec<Value>,
    /// Streamable only: how many times the stream was resumed with `Last-Event-ID`.
    pub resumptions: usize,
}

impl Exchange {
    pub fn result(&self) -> Option<&Value> {
        self.response.get("result")
    }

    pub fn error(&self) -> Option<&Value> {
        self.response.get("error")
    }

    /// `result.content[0].text` of a tool call.
    pub fn text(&self) -> Option<&str> {
        self.response.pointer("/result/content/0/text")?.as_str()
    }

    /// Methods of the notifications, in order (handy in assertions).
    pub fn notification_methods(&self) -> Vec<&str> {
        self.notifications
            .iter()
            .filter_map(|n| n.get("method")?.as_str())
            .collect()
    }

    pub(crate) fn observe(&mut self, msg: Value) {
        match classify(&msg) {
            Inbound::Request => self.server_requests.push(msg.clone()),
            Inbound::Notification => self.notifications.push(msg.clone()),
            Inbound::Response | Inbound::Other => {}
        }
        self.messages.push(msg);
    }
}

pub(crate) enum Inbound {
    Response,
    Request,
    Notification,
    Other,
}

pub(crate) fn classify(msg: &Value) -> Inbound {
    let has_id = msg.get("id").is_some_and(|i| !i.is_null());
    match (msg.get("method").is_some(), has_id) {
        (true, true) => Inbound::Request,
        (true, false) => Inbound::Notification,
        (false, true) if msg.get("result").is_some() || msg.get("error").is_some() => {
            Inbound::Response
        }
        _ => Inbound::Other,
    }
}

pub(crate) fn request_body(id: u64, method: &str, params: &Value) -> String {
    match params {
        Value::Null => json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string(),
        p => json!({"jsonrpc": "2.0", "id": id, "method": method, "params": p}).to_string(),
    }
}

pub(crate) fn notification_body(method: &str, params: &Value) -> String {
    match params {
        Value::Null => json!({"jsonrpc": "2.0", "method": method}).to_string(),
        p => json!({"jsonrpc": "2.0", "method": method, "params": p}).to_string(),
    }
}

pub(crate) fn initialize_params(protocol_version: &str) -> Value {
    json!({
        "protocolVersion": protocol_version,
        "capabilities": {"sampling": {}, "roots": {"listChanged": false}},
        "clientInfo": {"name": "mcp-testkit", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The response a client with auto-answer sends to a server→client request.
pub(crate) fn auto_answer(request: &Value) -> String {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let result = match request.get("method").and_then(Value::as_str) {
        Some("sampling/createMessage") => json!({
            "role": "assistant",
            "content": {"type": "text", "text": SAMPLING_REPLY_TEXT},
            "model": "testkit-model",
            "stopReason": "endTurn",
        }),
        Some("roots/list") => {
            json!({"roots": serde_json::from_str::<Value>(ROOTS_REPLY).unwrap_or_default()})
        }
        Some("ping") => json!({}),
        other => {
            let message = format!("Method not found: {}", other.unwrap_or_default());
            return json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": message}})
                .to_string();
        }
    };
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// Reads a whole (non-streaming) body with a deadline.
pub(crate) async fn read_body(
    resp: &mut awc::ClientResponse,
    timeout: Duration,
) -> crate::Result<String> {
    let body = tokio::time::timeout(timeout, resp.body().limit(512 << 20))
        .await
        .map_err(|_| crate::Error::Timeout("response body"))?
        .map_err(|e| crate::Error::Http(e.to_string()))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_answers_keep_the_id_and_know_the_methods() {
        let a: Value = serde_json::from_str(&auto_answer(
            &json!({"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage"}),
        ))
        .unwrap();
        assert_eq!(a["id"], "srv-1");
        assert_eq!(a["result"]["content"]["text"], SAMPLING_REPLY_TEXT);
        let r: Value =
            serde_json::from_str(&auto_answer(&json!({"id":7,"method":"roots/list"}))).unwrap();
        assert_eq!(r["id"], 7);
        assert_eq!(r["result"]["roots"][0]["name"], "testkit-root");
        let e: Value = serde_json::from_str(&auto_answer(&json!({"id":1,"method":"x"}))).unwrap();
        assert_eq!(e["error"]["code"], -32601);
    }

    #[test]
    fn bodies_omit_null_params() {
        let v: Value = serde_json::from_str(&request_body(1, "ping", &Value::Null)).unwrap();
        assert_eq!(v, json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    }
}
