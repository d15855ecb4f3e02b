//! The per-request `_meta` envelope of the 2026-07-28 era: stamping it into a legacy
//! client's request by splice, and reading it from a modern request.
//!
//! Source: `schema/2026-07-28/schema.ts`, `RequestMetaObject` (key names, which are
//! required), `RequestParams` (`params._meta` is required on every request) and
//! `NotificationMetaObject` / `ResultMetaObject`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::splice::{self, SpliceError};

/// Required on every request: the protocol version of this request.
pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// Required on every request: the client's capabilities for this request (`{}` = none).
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// SHOULD be on every request: the client's `Implementation` (`name`, `version`).
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// Optional (deprecated with logging): the log level; absent → no `notifications/message`.
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// On results: the server's `Implementation` (`ResultMetaObject`).
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// On notifications of a `subscriptions/listen` stream, and on its closing result: the
/// JSON-RPC id of the listen request (`NotificationMetaObject`).
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The envelope to stamp, each value kept as JSON text (capabilities and client info come
/// from a legacy client's `initialize` and are passed on as it wrote them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The version as a plain string, e.g. `2026-07-28`.
    pub protocol_version: String,
    /// A JSON object.
    pub client_capabilities: String,
    /// A JSON object, when known.
    pub client_info: Option<String>,
    /// A `LoggingLevel` string (`debug` … `emergency`), when the client asked for logs.
    pub log_level: Option<String>,
}

impl Envelope {
    /// The `_meta` members this envelope sets, in the order they are written.
    fn members(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            PROTOCOL_VERSION,
            serde_json::to_string(&self.protocol_version).expect("a string serialises"),
        )];
        out.push((CLIENT_CAPABILITIES, self.client_capabilities.clone()));
        if let Some(info) = &self.client_info {
            out.push((CLIENT_INFO, info.clone()));
        }
        if let Some(level) = &self.log_level {
            out.push((
                LOG_LEVEL,
                serde_json::to_string(level).expect("a string serialises"),
            ));
        }
        out
    }
}

/// Stamp `env` into `params._meta` of the JSON-RPC request `body`, by splice: `params` and
/// `_meta` are created when absent, the envelope keys are inserted or replaced, and every
/// other byte stays as is. A key whose value is `None` in `env` is left untouched.
pub fn stamp(body: &[u8], env: &Envelope) -> Result<Vec<u8>, SpliceError> {
    let text = std::str::from_utf8(body).map_err(|e| SpliceError::NotJson(e.to_string()))?;
    splice::validate(text)?;
    let root = splice::root(text);
    if text.as_bytes()[root] != b'{' {
        return Err(SpliceError::NotAnObject("message"));
    }
    let (text, params) = splice::object_member(text, root, "params")?;
    let (mut text, meta) = splice::object_member(&text, params, "_meta")?;
    for (key, value) in env.members() {
        text = splice::set(&text, meta, key, &value);
    }
    Ok(text.into_bytes())
}

/// The envelope as read from a modern request (every field optional: validation decides).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RequestMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    pub client_capabilities: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    pub client_info: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    pub log_level: Option<Box<RawValue>>,
}

impl RequestMeta {
    /// The protocol version, when present and a string.
    pub fn protocol_version(&self) -> Option<String> {
        raw_string(self.protocol_version.as_deref())
    }

    /// The log level, when present and a string.
    pub fn log_level(&self) -> Option<String> {
        raw_string(self.log_level.as_deref())
    }

    /// Whether this request claims the modern envelope. As in the TypeScript SDK
    /// (`packages/core/src/shared/envelope.ts`), only the protocol-version key is the claim;
    /// a malformed envelope with the claim is a validation error, not a legacy request.
    pub fn is_modern(&self) -> bool {
        self.protocol_version.is_some()
    }

    /// The required keys that are missing or of the wrong JSON type (`protocolVersion` a
    /// string, `clientCapabilities` an object), in schema order.
    pub fn missing_required(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.protocol_version().is_none() {
            out.push(PROTOCOL_VERSION);
        }
        let caps_is_object = self
            .client_capabilities
            .as_deref()
            .is_some_and(|c| c.get().starts_with('{'));
        if !caps_is_object {
            out.push(CLIENT_CAPABILITIES);
        }
        out
    }

    /// The envelope, when every required key is present and well typed.
    pub fn envelope(&self) -> Option<Envelope> {
        if !self.missing_required().is_empty() {
            return None;
        }
        Some(Envelope {
            protocol_version: self.protocol_version()?,
            client_capabilities: self.client_capabilities.as_ref()?.get().to_owned(),
            client_info: self.client_info.as_ref().map(|i| i.get().to_owned()),
            log_level: self.log_level(),
        })
    }
}

fn raw_string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok()
}

/// Read `params._meta` of a request body. A body without `params` or `_meta` gives an
/// empty [`RequestMeta`]; a body that is not JSON, or whose `params`/`_meta` is not an
/// object, is an error.
pub fn read(body: &[u8]) -> Result<RequestMeta, serde_json::Error> {
    #[derive(Deserialize)]
    struct Msg {
        #[serde(default)]
        params: Option<Params>,
    }
    #[derive(Deserialize)]
    struct Params {
        #[serde(default, rename = "_meta")]
        meta: Option<RequestMeta>,
    }
    let msg: Msg = serde_json::from_slice(body)?;
    Ok(msg.params.and_then(|p| p.meta).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            protocol_version: "2026-07-28".into(),
            client_capabilities: r#"{"sampling":{}, "roots":{"listChanged":true}}"#.into(),
            client_info: Some(r#"{"name":"ExampleClient","version":"1.0.0"}"#.into()),
            log_level: None,
        }
    }

    fn stamped(body: &str, env: &Envelope) -> String {
        String::from_utf8(stamp(body.as_bytes(), env).unwrap()).unwrap()
    }

    #[test]
    fn stamps_a_tools_call_keeping_every_other_byte() {
        // A 2025 client's call: odd spacing, a float written as 1.0, an unknown field and a
        // progress token already in `_meta`.
        let body = r#"{"jsonrpc":"2.0", "id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":1.0,"b":2e0},"_meta":{"progressToken":"p1"}},"x-extra":true}"#;
        assert_eq!(
            stamped(body, &env()),
            concat!(
                r#"{"jsonrpc":"2.0", "id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":1.0,"b":2e0},"_meta":{"progressToken":"p1","#,
                r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
                r#""io.modelcontextprotocol/clientCapabilities":{"sampling":{}, "roots":{"listChanged":true}},"#,
                r#""io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"}}},"x-extra":true}"#
            )
        );
    }

    #[test]
    fn creates_params_and_meta_when_absent() {
        let out = stamped(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, &env());
        assert!(out.starts_with(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","#
        ));
        let out = stamped(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c2"}}"#,
            &env(),
        );
        assert!(out.starts_with(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c2","_meta":{"io.modelcontextprotocol/protocolVersion""#
        ));
        assert!(read(out.as_bytes()).unwrap().envelope().is_some());
    }

    #[test]
    fn replaces_existing_envelope_keys_in_place() {
        let body = r#"{"id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","k":1}}}"#;
        let mut e = env();
        e.client_info = None;
        e.log_level = Some("warning".into());
        assert_eq!(
            stamped(body, &e),
            r#"{"id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","k":1,"io.modelcontextprotocol/clientCapabilities":{"sampling":{}, "roots":{"listChanged":true}},"io.modelcontextprotocol/logLevel":"warning"}}}"#
        );
    }

    #[test]
    fn refuses_bodies_it_cannot_stamp_without_rewriting() {
        let e = env();
        assert!(matches!(
            stamp(b"{\"id\":1,", &e),
            Err(SpliceError::NotJson(_))
        ));
        assert_eq!(
            stamp(br#"{"id":1,"method":"m","params":[1,2]}"#, &e),
            Err(SpliceError::NotAnObject("params"))
        );
        assert_eq!(
            stamp(br#"{"id":1,"method":"m","params":{"_meta":null}}"#, &e),
            Err(SpliceError::NotAnObject("_meta"))
        );
        assert_eq!(stamp(b"[1]", &e), Err(SpliceError::NotAnObject("message")));
    }

    #[test]
    fn reads_the_envelope_of_the_spec_example() {
        // basic/transports/streamable-http.mdx, the `tools/call` example.
        let body = r#"{
          "jsonrpc": "2.0", "id": 1, "method": "tools/call",
          "params": {
            "name": "get_weather", "arguments": { "location": "Seattle, WA" },
            "_meta": {
              "io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientInfo": { "name": "ExampleClient", "version": "1.0.0" },
              "io.modelcontextprotocol/clientCapabilities": {}
            }
          }
        }"#;
        let meta = read(body.as_bytes()).unwrap();
        assert!(meta.is_modern());
        assert!(meta.missing_required().is_empty());
        let env = meta.envelope().unwrap();
        assert_eq!(env.protocol_version, "2026-07-28");
        assert_eq!(env.client_capabilities, "{}");
        assert_eq!(
            env.client_info.as_deref(),
            Some(r#"{ "name": "ExampleClient", "version": "1.0.0" }"#)
        );
        assert_eq!(env.log_level, None);
    }

    #[test]
    fn reports_missing_and_mistyped_required_keys() {
        let legacy = read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert!(!legacy.is_modern());
        assert_eq!(
            legacy.missing_required(),
            [PROTOCOL_VERSION, CLIENT_CAPABILITIES]
        );
        let bad = read(
            br#"{"id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728,"io.modelcontextprotocol/clientCapabilities":[]}}}"#,
        )
        .unwrap();
        assert!(bad.is_modern());
        assert_eq!(
            bad.missing_required(),
            [PROTOCOL_VERSION, CLIENT_CAPABILITIES]
        );
        assert!(bad.envelope().is_none());
        assert!(read(br#"{"id":1,"method":"m","params":{"_meta":3}}"#).is_err());
    }
}
