//! JSON-RPC 2.0 messages as the bridge sees them: the sender's exact bytes plus the few
//! fields routing needs. Nothing here re-serialises a body.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

mod id_key;

/// A JSON-RPC id (or progress token) kept as its exact JSON text, compared by JSON value:
/// SDK servers re-serialise ids (`1.0` → `1`, `"\u0041"` → `"A"`), and their answers must
/// still find the request. A string never equals a number: `1` and `"1"` differ.
#[derive(Clone, Debug)]
pub struct Id(Box<str>);

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.0 == other.0 || self.value_key() == other.value_key()
    }
}

impl Eq for Id {}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value_key().hash(state);
    }
}

impl Id {
    /// The id as JSON text, ready to splice into a message.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// An id the bridge mints for its own requests (a JSON string, never clashing with SDK
    /// counters, which are integers or UUIDs).
    pub fn bridge(n: u64) -> Id {
        Id(format!("\"mcp-bridge-{n}\"").into())
    }

    /// An id from its JSON text (a string or a number), as [`Id::json`] gave it.
    pub fn from_json_text(text: &str) -> Option<Id> {
        let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
        Id::from_raw(&raw)
    }

    /// A text that is equal for equal JSON values (see [`id_key`]).
    fn value_key(&self) -> Cow<'_, str> {
        id_key::of(&self.0)
    }

    fn from_raw(raw: &RawValue) -> Option<Id> {
        let text = raw.get();
        // Only strings and numbers are ids; null/objects/arrays/bools are not.
        match text.as_bytes().first()? {
            b'"' | b'-' | b'0'..=b'9' => Some(Id(text.into())),
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Request,
    Notification,
    /// A `result` or an `error` answering a request.
    Response,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Notification => "notification",
            Kind::Response => "response",
        }
    }
}

/// One JSON-RPC message: the bytes as written by its sender and a parsed envelope.
#[derive(Clone, Debug)]
pub struct Message {
    raw: Bytes,
    pub kind: Kind,
    /// Request or response id. `None` on notifications and on error responses whose id was
    /// null or absent.
    pub id: Option<Id>,
    pub method: Option<Box<str>>,
    /// Requests: `params._meta.progressToken`. `notifications/progress`: `params.progressToken`.
    pub progress_token: Option<Id>,
    /// `notifications/cancelled`: the request it cancels.
    pub cancels: Option<Id>,
    /// Responses: whether it is an `error` rather than a `result`.
    pub is_error: bool,
}

/// A POSTed body: one message, or a batch (a JSON array, allowed by 2025-03-26).
#[derive(Debug)]
pub enum Body {
    Single(Message),
    Batch(Vec<Message>),
}

impl Body {
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Body::Single(m) => vec![m],
            Body::Batch(v) => v,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("not a JSON-RPC 2.0 message: {0}")]
    Invalid(&'static str),
}

impl ParseError {
    /// The JSON-RPC error code that reports this to a client.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json(_) => codes::PARSE_ERROR,
            ParseError::Invalid(_) => codes::INVALID_REQUEST,
        }
    }
}

pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Transport-level failures (connection closed, upstream unreachable): what the SDKs use.
    pub const CONNECTION_CLOSED: i64 = -32000;
    /// TS SDK's "Session not found" / request timeout code.
    pub const SESSION_NOT_FOUND: i64 = -32001;
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    /// Present-but-null stays `Some("null")`, so a request with a null id can be refused.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RequestParams<'a> {
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ProgressParams<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<&'a RawValue>,
}

/// Parse a POSTed body: a single message or a batch.
pub fn parse_body(raw: Bytes) -> Result<Body, ParseError> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return Message::parse(raw).map(Body::Single);
    }
    let items: Vec<&RawValue> =
        serde_json::from_slice(&raw).map_err(|e| ParseError::Json(e.to_string()))?;
    if items.is_empty() {
        return Err(ParseError::Invalid("empty batch"));
    }
    let messages = items
        .into_iter()
        .map(|item| Message::parse(raw.slice_ref(item.get().as_bytes())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Body::Batch(messages))
}

impl Message {
    /// Parse one message, keeping `raw` as the message's bytes.
    pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
        let env: Envelope<'_> =
            serde_json::from_slice(&raw).map_err(|e| ParseError::Json(e.to_string()))?;
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        // Only an error response may carry a null id (it could not read the request's).
        let id = match env.id {
            Some(raw_id) if raw_id.get() == "null" && env.error.is_some() => None,
            Some(raw_id) => Some(
                Id::from_raw(raw_id).ok_or(ParseError::Invalid("id must be a string or number"))?,
            ),
            None => None,
        };
        let mut progress_token = None;
        let mut cancels = None;
        let (kind, is_error) = match (&env.method, env.result, env.error) {
            (Some(method), None, None) => {
                let params = env.params.map(RawValue::get).unwrap_or("");
                if id.is_some() {
                    // Cheap pre-check: most requests carry no `_meta`.
                    if params.contains("\"_meta\"") {
                        progress_token = serde_json::from_str::<RequestParams<'_>>(params)
                            .ok()
                            .and_then(|p| p.meta)
                            .and_then(|m| m.progress_token)
                            .and_then(Id::from_raw);
                    }
                    (Kind::Request, false)
                } else {
                    match method.as_ref() {
                        "notifications/progress" => {
                            progress_token = serde_json::from_str::<ProgressParams<'_>>(params)
                                .ok()
                                .and_then(|p| p.progress_token)
                                .and_then(Id::from_raw);
                        }
                        "notifications/cancelled" => {
                            cancels = serde_json::from_str::<CancelledParams<'_>>(params)
                                .ok()
                                .and_then(|p| p.request_id)
                                .and_then(Id::from_raw);
                        }
                        _ => {}
                    }
                    (Kind::Notification, false)
                }
            }
            (None, Some(_), None) if id.is_some() => (Kind::Response, false),
            (None, None, Some(_)) => (Kind::Response, true),
            (None, Some(_), None) => return Err(ParseError::Invalid("result without an id")),
            _ => {
                return Err(ParseError::Invalid(
                    "expected exactly one of method, result or error",
                ))
            }
        };
        let method = env.method.map(|m| Box::from(m.as_ref()));
        Ok(Message {
            raw,
            kind,
            id,
            method,
            progress_token,
            cancels,
            is_error,
        })
    }

    /// The bytes the sender wrote.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    pub fn is_request(&self) -> bool {
        self.kind == Kind::Request
    }

    pub fn is_initialize(&self) -> bool {
        self.is_request() && self.method() == Some("initialize")
    }

    /// A response made by the bridge: `result_json` is the `result` member's JSON text.
    pub fn result_response(id: &Id, result_json: &str) -> Message {
        let raw = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{result_json}}}",
            id.json()
        );
        Message::parse(Bytes::from(raw)).expect("a bridge-made response is well formed")
    }

    /// A JSON-RPC error response made by the bridge.
    pub fn error_response(id: Option<&Id>, code: i64, message: &str) -> Message {
        let id_json = id.map(Id::json).unwrap_or("null");
        let message = serde_json::to_string(message).expect("a string serialises");
        let raw = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id_json},\"error\":{{\"code\":{code},\"message\":{message}}}}}"
        );
        Message {
            raw: Bytes::from(raw),
            kind: Kind::Response,
            id: id.cloned(),
            method: None,
            progress_token: None,
            cancels: None,
            is_error: true,
        }
    }

    /// A request made by the bridge with its own id and someone's raw `params`.
    pub fn bridge_request(id: &Id, method: &str, params: Option<&str>) -> Message {
        let raw = match params {
            Some(p) => format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"{method}\",\"params\":{p}}}",
                id.json()
            ),
            None => format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"{method}\"}}",
                id.json()
            ),
        };
        Message::parse(Bytes::from(raw)).expect("bridge requests are well formed")
    }

    /// A notification made by the bridge.
    pub fn bridge_notification(method: &str) -> Message {
        let raw = format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\"}}");
        Message::parse(Bytes::from(raw)).expect("bridge notifications are well formed")
    }

    /// A response's `result` member as raw JSON text (parsed on demand).
    pub fn result_json(&self) -> Option<&str> {
        #[derive(Deserialize)]
        struct R<'a> {
            #[serde(borrow)]
            result: Option<&'a RawValue>,
        }
        let r: R<'_> = serde_json::from_slice(&self.raw).ok()?;
        r.result.map(RawValue::get)
    }

    /// This message's `params` as raw JSON (parsed on demand: only the re-initialise path needs it).
    pub fn params_json(&self) -> Option<String> {
        let env: Envelope<'_> = serde_json::from_slice(&self.raw).ok()?;
        env.params.map(|p| p.get().to_owned())
    }

    /// An error response with a null or missing id, re-addressed to the request it answers.
    /// Upstreams do this (TS: `null`, Python: `"server-error"`) when they could not read the id.
    pub fn readdressed(&self, id: &Id) -> Message {
        #[derive(Deserialize)]
        struct ErrorOnly<'a> {
            #[serde(borrow)]
            error: &'a RawValue,
        }
        let error = serde_json::from_slice::<ErrorOnly<'_>>(&self.raw)
            .map(|e| e.error.get().to_owned())
            .unwrap_or_else(|_| {
                "{\"code\":-32603,\"message\":\"upstream sent an unreadable error\"}".to_owned()
            });
        let raw = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{error}}}",
            id.json()
        );
        Message::parse(Bytes::from(raw)).expect("re-addressed error is well formed")
    }

    /// This message with its id written as `id` spells it (an equal value, other text):
    /// the id's bytes are replaced in place and every other byte is kept.
    pub fn with_id_text(&self, id: &Id) -> Message {
        let span = serde_json::from_slice::<Envelope<'_>>(&self.raw)
            .ok()
            .and_then(|env| env.id)
            .map(|raw_id| {
                let text = raw_id.get();
                let start = text.as_ptr() as usize - self.raw.as_ptr() as usize;
                start..start + text.len()
            });
        let Some(span) = span.filter(|s| s.end <= self.raw.len()) else {
            return self.clone();
        };
        let mut raw = Vec::with_capacity(self.raw.len() - span.len() + id.json().len());
        raw.extend_from_slice(&self.raw[..span.start]);
        raw.extend_from_slice(id.json().as_bytes());
        raw.extend_from_slice(&self.raw[span.end..]);
        Message {
            raw: Bytes::from(raw),
            id: Some(id.clone()),
            ..self.clone()
        }
    }

    /// For an `initialize` response: `result.protocolVersion`.
    pub fn protocol_version(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Res<'a> {
            #[serde(borrow)]
            result: Option<InitResult<'a>>,
        }
        #[derive(Deserialize)]
        struct InitResult<'a> {
            #[serde(borrow, rename = "protocolVersion")]
            protocol_version: Option<Cow<'a, str>>,
        }
        let res: Res<'_> = serde_json::from_slice(&self.raw).ok()?;
        res.result?.protocol_version.map(Cow::into_owned)
    }

    /// For an error response: `error.message`.
    pub fn error_message(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Res<'a> {
            #[serde(borrow)]
            error: Option<Err<'a>>,
        }
        #[derive(Deserialize)]
        struct Err<'a> {
            #[serde(borrow)]
            message: Cow<'a, str>,
        }
        serde_json::from_slice::<Res<'_>>(&self.raw)
            .ok()?
            .error
            .map(|e| e.message.into_owned())
    }

    /// For an error response: its code and message, for logs and re-addressing.
    pub fn error_code(&self) -> Option<i64> {
        #[derive(Deserialize)]
        struct Res {
            error: Option<Err>,
        }
        #[derive(Deserialize)]
        struct Err {
            code: i64,
        }
        serde_json::from_slice::<Res>(&self.raw)
            .ok()?
            .error
            .map(|e| e.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn request_keeps_exact_id_and_token() {
        let m = parse(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"t-1"}}}"#,
        );
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id.as_ref().unwrap().json(), "7");
        assert_eq!(m.progress_token.as_ref().unwrap().json(), "\"t-1\"");
        assert_eq!(m.method(), Some("tools/call"));
    }

    #[test]
    fn ids_of_different_json_types_differ() {
        let a = parse(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        let b = parse(r#"{"jsonrpc":"2.0","id":"1","result":{}}"#);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn progress_and_cancelled_notifications_carry_their_reference() {
        let p = parse(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":3,"progress":1}}"#,
        );
        assert_eq!(p.kind, Kind::Notification);
        assert_eq!(p.progress_token.unwrap().json(), "3");
        let c = parse(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}}"#,
        );
        assert_eq!(c.cancels.unwrap().json(), "\"a\"");
    }

    #[test]
    fn error_with_null_id_is_a_response_without_id() {
        let m = parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}"#);
        assert_eq!(m.kind, Kind::Response);
        assert!(m.is_error && m.id.is_none());
        let fixed = m.readdressed(&Id("5".into()));
        assert_eq!(
            fixed.raw().as_ref(),
            br#"{"jsonrpc":"2.0","id":5,"error":{"code":-32600,"message":"x"}}"#
        );
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        let bad = |s: &str| Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap_err();
        assert!(matches!(bad("{"), ParseError::Json(_)));
        assert!(matches!(
            bad(r#"{"id":1,"method":"x"}"#),
            ParseError::Invalid(_)
        ));
        assert!(matches!(
            bad(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
            ParseError::Invalid(_)
        ));
        assert!(matches!(
            bad(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
            ParseError::Invalid(_)
        ));
        assert!(matches!(
            bad(r#"{"jsonrpc":"2.0"}"#),
            ParseError::Invalid(_)
        ));
        assert!(matches!(
            bad("[1]"),
            ParseError::Json(_) | ParseError::Invalid(_)
        ));
    }

    #[test]
    fn batch_elements_keep_their_own_bytes() {
        let raw = Bytes::from_static(
            br#" [ {"jsonrpc":"2.0","id":1,"method":"a"} , {"jsonrpc":"2.0","method":"b", "params":{ }} ]"#,
        );
        let Body::Batch(ms) = parse_body(raw).unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(ms.len(), 2);
        assert_eq!(
            ms[1].raw().as_ref(),
            br#"{"jsonrpc":"2.0","method":"b", "params":{ }}"#
        );
        assert!(parse_body(Bytes::from_static(b"[]")).is_err());
    }

    #[test]
    fn bridge_made_messages_parse() {
        let e = Message::error_response(Some(&Id("\"x\"".into())), -32000, "a \"quoted\" reason");
        assert!(Message::parse(e.raw().clone()).unwrap().is_error);
        let r = Message::bridge_request(&Id::bridge(1), "initialize", Some("{\"a\":1}"));
        assert!(r.is_initialize());
    }

    #[test]
    fn ids_equal_by_json_value_keep_their_text() {
        let id = |s: &str| {
            parse(&format!(r#"{{"jsonrpc":"2.0","id":{s},"result":{{}}}}"#))
                .id
                .unwrap()
        };
        for (sent, echoed) in [
            ("1.0", "1"),
            ("1e3", "1000"),
            ("-0", "0"),
            (r#""\u0041""#, r#""A""#),
        ] {
            assert_eq!(id(sent), id(echoed), "{sent} vs {echoed}");
            assert_eq!(id(sent).json(), sent);
            let mut table = std::collections::HashMap::new();
            table.insert(id(sent), ());
            assert!(table.contains_key(&id(echoed)), "{sent} found by {echoed}");
        }
        assert_ne!(id("1"), id(r#""1""#));
        assert_ne!(id("9007199254740993"), id("9007199254740992"));
    }

    #[test]
    fn id_text_is_spliced_without_touching_other_bytes() {
        let m = parse(r#"{ "jsonrpc" : "2.0", "result":{"n":1.0e0, "id":7}, "id" : 1000 }"#);
        let client_id = parse(r#"{"jsonrpc":"2.0","id":1e3,"method":"x"}"#)
            .id
            .unwrap();
        let fixed = m.with_id_text(&client_id);
        assert_eq!(
            fixed.raw().as_ref(),
            br#"{ "jsonrpc" : "2.0", "result":{"n":1.0e0, "id":7}, "id" : 1e3 }"#
        );
        assert_eq!(fixed.id.as_ref().unwrap().json(), "1e3");
    }

    #[test]
    fn reads_protocol_version_of_initialize_result() {
        let m = parse(
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#,
        );
        assert_eq!(m.protocol_version().as_deref(), Some("2025-06-18"));
    }
}
