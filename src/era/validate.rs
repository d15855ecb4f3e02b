//! What a modern server checks before it serves a 2026-07-28 request on Streamable HTTP, as
//! a pure function from (body, headers, server facts) to "serve it" or the error to send.
//!
//! Sources: `docs/specification/2026-07-28/basic/transports/streamable-http.mdx` ("Protocol
//! Version Header", "Server Validation", "Server Behavior for Custom Headers"),
//! `basic/versioning.mdx` (`UnsupportedProtocolVersionError`), `schema/2026-07-28/schema.ts`
//! (`RequestParams._meta` required).
//!
//! The spec fixes the codes but not the order of the checks. The order here follows the
//! TypeScript SDK's inbound validation ladder (`packages/core/src/shared/inboundClassification.ts`:
//! era/version and header cross-checks, then the envelope, then the method registry, then
//! `Mcp-Param-*`), so a request failing several checks gets the answer a real server gives:
//!
//! 1. `MCP-Protocol-Version` header missing → 400, -32020.
//! 2. `_meta` protocol version missing (or not a string) → 400, -32602.
//! 3. header ≠ `_meta` version → 400, -32020.
//! 4. version not supported → 400, -32022 with `data.supported` and `data.requested`.
//! 5. `clientCapabilities` missing (or not an object) → 400, -32602.
//! 6. `Mcp-Method` missing or ≠ `method`; `Mcp-Name` missing, malformed or ≠ its param → 400, -32020.
//! 7. method unknown → 404, -32601.
//! 8. `tools/call`: an `Mcp-Param-*` header of the tool missing, malformed or ≠ its argument → 400, -32020.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::codes::{self, HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND};
use super::headers::{self, ParamHeader, ParamKind};
use super::meta::{self, Envelope, RequestMeta};

/// Case-insensitive header lookup over whatever the HTTP layer holds.
pub trait HeaderSource {
    /// The value of header `name` (any case), if present and readable as text.
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderSource for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl HeaderSource for actix_web::http::header::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the server knows: the versions it serves, its methods, and its tools' headers.
pub struct ServerFacts<'a> {
    /// Modern versions served, e.g. `["2026-07-28"]`.
    pub supported: &'a [&'a str],
    /// Whether the server implements `method`.
    pub knows_method: &'a dyn Fn(&str) -> bool,
    /// The `x-mcp-header` annotations of tool `name` (`None`: unknown tool — left to the
    /// server's own `-32602`, answered in-band).
    pub tool_headers: &'a dyn Fn(&str) -> Option<Vec<ParamHeader>>,
}

/// A request that passed: its id (JSON text), method and envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub method: String,
    pub envelope: Envelope,
}

/// The answer to send instead of serving the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status: 400, or 404 for an unknown method.
    pub status: u16,
    pub code: i64,
    pub message: String,
    /// `error.data` as JSON text.
    pub data: Option<String>,
    /// The request's id as JSON text, when it could be read.
    pub id: Option<String>,
}

impl Rejection {
    /// The JSON-RPC error response body.
    pub fn body(&self) -> String {
        codes::error_body(
            self.id.as_deref(),
            self.code,
            &self.message,
            self.data.as_deref(),
        )
    }
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    name: Option<Value>,
    uri: Option<Value>,
    arguments: Option<Value>,
    #[serde(rename = "_meta")]
    meta: Option<RequestMeta>,
}

/// Validate one POSTed JSON-RPC request of the modern era (see the module doc for the order
/// and the answers). A body that is not a request (no `id` or no `method`) is refused with
/// 400 / -32600: notifications have no header rules in this revision and are not for this
/// function.
pub fn validate(
    body: &[u8],
    headers: &(impl HeaderSource + ?Sized),
    server: &ServerFacts<'_>,
) -> Result<Accepted, Rejection> {
    let req: Request<'_> = serde_json::from_slice(body).map_err(|e| {
        // Valid JSON of the wrong shape is an invalid request, not a parse error.
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        let (code, what) = if json {
            (-32600, "Invalid Request")
        } else {
            (-32700, "Parse error")
        };
        Rejection {
            status: 400,
            code,
            message: format!("{what}: {e}"),
            data: None,
            id: None,
        }
    })?;
    let id = req.id.map(|i| i.get().to_owned());
    let reject = |status: u16, code: i64, message: String, data: Option<String>| Rejection {
        status,
        code,
        message,
        data,
        id: id.clone(),
    };
    let mismatch = |message: String| reject(400, HEADER_MISMATCH, message, None);
    let (Some(rid), Some(method)) = (id.clone(), req.method) else {
        return Err(reject(400, -32600, "Invalid Request".into(), None));
    };
    let params = req.params;
    let meta: RequestMeta = params
        .as_ref()
        .and_then(|p| p.meta.clone())
        .unwrap_or_default();

    // 1–4: the version, in the header and in the body.
    let Some(header_version) = headers.header(headers::PROTOCOL_VERSION) else {
        return Err(mismatch(
            "Header mismatch: MCP-Protocol-Version header is missing".into(),
        ));
    };
    let Some(body_version) = meta.protocol_version() else {
        return Err(missing_meta(&reject, meta::PROTOCOL_VERSION));
    };
    if header_version != body_version {
        return Err(mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{header_version}' does not match body value '{body_version}'"
        )));
    }
    if !server.supported.contains(&body_version.as_str()) {
        return Err(reject(
            400,
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version".into(),
            Some(codes::unsupported_version_data(
                server.supported,
                &body_version,
            )),
        ));
    }
    // 5: the rest of the required envelope.
    if let Some(key) = meta.missing_required().first() {
        return Err(missing_meta(&reject, key));
    }
    let envelope = meta.envelope().expect("required keys checked");

    // 6: the standard headers.
    match headers.header(headers::METHOD) {
        None => {
            return Err(mismatch(
                "Header mismatch: Mcp-Method header is missing".into(),
            ))
        }
        Some(h) if h != method => {
            return Err(mismatch(format!(
            "Header mismatch: Mcp-Method header value '{h}' does not match body value '{method}'"
        )))
        }
        Some(_) => {}
    }
    if let Some(field) = headers::name_field(&method) {
        let body_name = params.as_ref().and_then(|p| match field {
            "uri" => p.uri.as_ref(),
            _ => p.name.as_ref(),
        });
        let body_name = body_name.and_then(Value::as_str);
        match (headers.header(headers::NAME), body_name) {
            // No name anywhere: the params are invalid, which the server answers itself.
            (None, None) => {}
            (None, Some(_)) => {
                return Err(mismatch(
                    "Header mismatch: Mcp-Name header is missing".into(),
                ))
            }
            (Some(raw), body_name) => {
                let decoded = headers::decode_value(raw)
                    .map_err(|e| mismatch(format!("Header mismatch: Mcp-Name: {e}")))?;
                if Some(decoded.as_str()) != body_name {
                    return Err(mismatch(format!(
                        "Header mismatch: Mcp-Name header value '{decoded}' does not match body value '{}'",
                        body_name.unwrap_or("(absent)")
                    )));
                }
            }
        }
    }

    // 7: the method.
    if !(server.knows_method)(&method) {
        return Err(reject(
            404,
            METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
            None,
        ));
    }

    // 8: the tool's parameter headers.
    if method == "tools/call" {
        let tool = params
            .as_ref()
            .and_then(|p| p.name.as_ref())
            .and_then(Value::as_str);
        if let Some(declared) = tool.and_then(|t| (server.tool_headers)(t)) {
            let args = params.as_ref().and_then(|p| p.arguments.as_ref());
            for h in &declared {
                check_param(h, headers.header(&h.header_name()), args).map_err(mismatch)?;
            }
        }
    }

    Ok(Accepted {
        id: rid,
        method,
        envelope,
    })
}

fn missing_meta(
    reject: &impl Fn(u16, i64, String, Option<String>) -> Rejection,
    key: &str,
) -> Rejection {
    reject(
        400,
        INVALID_PARAMS,
        format!("Invalid params: params._meta[\"{key}\"] is required"),
        None,
    )
}

/// One `Mcp-Param-*` header against its argument ("Server Behavior for Custom Headers").
/// A header with no (or a null) argument is a mismatch too: it does not match the body.
fn check_param(h: &ParamHeader, header: Option<&str>, args: Option<&Value>) -> Result<(), String> {
    let name = h.header_name();
    let value = headers::argument_at(args, &h.path).filter(|v| !v.is_null());
    let (header, value) = match (header, value) {
        (None, None) => return Ok(()),
        (None, Some(_)) => return Err(format!("Header mismatch: {name} header is missing")),
        (Some(_), None) => {
            return Err(format!(
                "Header mismatch: {name} header is present but the argument is not"
            ))
        }
        (Some(header), Some(value)) => (header, value),
    };
    let decoded =
        headers::decode_value(header).map_err(|e| format!("Header mismatch: {name}: {e}"))?;
    let equal = match (h.kind, value) {
        (ParamKind::String, Value::String(s)) => decoded == *s,
        (ParamKind::Boolean, Value::Bool(b)) => decoded == b.to_string(),
        // Integers compare numerically: `42` and `42.0` are equal ("Server Validation").
        (ParamKind::Integer, Value::Number(n)) => decoded
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        _ => false,
    };
    if equal {
        Ok(())
    } else {
        Err(format!(
            "Header mismatch: {name} header value '{decoded}' does not match body value {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn call(params: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{params},{META}}}}}"#)
    }

    fn facts_check(body: &str, headers: &[(&str, &str)]) -> Result<Accepted, Rejection> {
        let knows = |m: &str| {
            [
                "tools/call",
                "tools/list",
                "resources/read",
                "prompts/get",
                "server/discover",
            ]
            .contains(&m)
        };
        let tools = |t: &str| {
            (t == "execute_sql").then(|| {
                headers::param_headers(&json!({"type":"object","properties":{
                    "region":{"type":"string","x-mcp-header":"Region"},
                    "shard":{"type":"integer","x-mcp-header":"Shard"}}}))
                .unwrap()
            })
        };
        let facts = ServerFacts {
            supported: &["2026-07-28"],
            knows_method: &knows,
            tool_headers: &tools,
        };
        validate(body.as_bytes(), headers, &facts)
    }

    const GOOD: [(&str, &str); 4] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("MCP-METHOD", "tools/call"),
        ("Mcp-Name", "execute_sql"),
        ("Mcp-Param-Region", "us-west1"),
    ];

    fn code_of(r: Result<Accepted, Rejection>) -> (u16, i64) {
        let r = r.unwrap_err();
        (r.status, r.code)
    }

    #[test]
    fn accepts_the_spec_example_with_any_header_case() {
        let body =
            call(r#""name":"execute_sql","arguments":{"region":"us-west1","query":"SELECT 1"}"#);
        let ok = facts_check(&body, &GOOD).unwrap();
        assert_eq!(ok.id, "1");
        assert_eq!(ok.method, "tools/call");
        assert_eq!(ok.envelope.protocol_version, "2026-07-28");
    }

    #[test]
    fn version_header_checks() {
        let body = call(r#""name":"execute_sql","arguments":{"region":"us-west1"}"#);
        assert_eq!(code_of(facts_check(&body, &GOOD[1..])), (400, -32020));
        let mut h = GOOD;
        h[0].1 = "2025-11-25";
        assert_eq!(code_of(facts_check(&body, &h)), (400, -32020));
    }

    #[test]
    fn unsupported_version_lists_the_supported_ones() {
        let body = call(r#""name":"execute_sql""#).replace("2026-07-28", "1900-01-01");
        let mut h = GOOD;
        h[0].1 = "1900-01-01";
        let r = facts_check(&body, &h).unwrap_err();
        assert_eq!((r.status, r.code), (400, -32022));
        let sent: Value = serde_json::from_str(&r.body()).unwrap();
        assert_eq!(
            sent,
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version",
                "data":{"supported":["2026-07-28"],"requested":"1900-01-01"}}})
        );
    }

    #[test]
    fn missing_meta_is_invalid_params() {
        // A legacy-shaped body sent with a modern header.
        let body = r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#;
        let h = [
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ];
        let r = facts_check(body, &h).unwrap_err();
        assert_eq!(
            (r.status, r.code, r.id.as_deref()),
            (400, -32602, Some("\"a\""))
        );
        assert!(r
            .message
            .contains("io.modelcontextprotocol/protocolVersion"));
        let no_caps = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let r = facts_check(no_caps, &h).unwrap_err();
        assert_eq!(r.code, -32602);
        assert!(r.message.contains("clientCapabilities"));
    }

    #[test]
    fn method_and_name_headers_must_match() {
        let body = call(r#""name":"execute_sql","arguments":{"region":"us-west1"}"#);
        let mut h = GOOD;
        h[1].1 = "tools/list";
        assert_eq!(code_of(facts_check(&body, &h)), (400, -32020));
        let mut h = GOOD;
        h[2].1 = "foo";
        let r = facts_check(&body, &h).unwrap_err();
        assert_eq!(r.code, -32020);
        assert_eq!(
            r.message,
            "Header mismatch: Mcp-Name header value 'foo' does not match body value 'execute_sql'"
        );
        let no_name = [GOOD[0], GOOD[1], GOOD[3]];
        assert_eq!(code_of(facts_check(&body, &no_name)), (400, -32020));
        let no_method = [GOOD[0], GOOD[2], GOOD[3]];
        assert_eq!(code_of(facts_check(&body, &no_method)), (400, -32020));
    }

    #[test]
    fn encoded_name_is_decoded_before_comparing() {
        let body = call(r#""name":"héllo""#);
        let h = [GOOD[0], GOOD[1], ("Mcp-Name", "=?base64?aMOpbGxv?=")];
        // Unknown tool: accepted here; the server answers -32602 itself.
        assert!(facts_check(&body, &h).is_ok());
        let bad = [GOOD[0], GOOD[1], ("Mcp-Name", "=?base64?%%?=")];
        assert_eq!(code_of(facts_check(&body, &bad)), (400, -32020));
    }

    #[test]
    fn unknown_method_is_404() {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":9,"method":"initialize","params":{{{META}}}}}"#);
        let h = [
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "initialize"),
        ];
        let r = facts_check(&body, &h).unwrap_err();
        assert_eq!((r.status, r.code), (404, -32601));
        assert_eq!(
            serde_json::from_str::<Value>(&r.body()).unwrap()["id"],
            json!(9)
        );
    }

    #[test]
    fn param_headers_are_checked_per_the_scenario_table() {
        let with = |args: &str| call(&format!(r#""name":"execute_sql","arguments":{args}"#));
        // Value provided, header missing → reject.
        let missing = [GOOD[0], GOOD[1], GOOD[2]];
        assert_eq!(
            code_of(facts_check(&with(r#"{"region":"eu"}"#), &missing)),
            (400, -32020)
        );
        // Null or absent value, header absent → fine.
        assert!(facts_check(&with(r#"{"region":null}"#), &missing).is_ok());
        assert!(facts_check(&with("{}"), &missing).is_ok());
        // Header disagrees with the body.
        assert_eq!(
            code_of(facts_check(&with(r#"{"region":"eu"}"#), &GOOD)),
            (400, -32020)
        );
        // Integers compare numerically.
        let shard = [GOOD[0], GOOD[1], GOOD[2], ("mcp-param-shard", "42")];
        assert!(facts_check(&with(r#"{"shard":42.0}"#), &shard).is_ok());
        assert_eq!(
            code_of(facts_check(&with(r#"{"shard":43}"#), &shard)),
            (400, -32020)
        );
        // Header with invalid characters.
        let bad = [GOOD[0], GOOD[1], GOOD[2], ("Mcp-Param-Region", "caf\u{e9}")];
        assert_eq!(
            code_of(facts_check(&with(r#"{"region":"café"}"#), &bad)),
            (400, -32020)
        );
        let encoded = [
            GOOD[0],
            GOOD[1],
            GOOD[2],
            ("Mcp-Param-Region", "=?base64?Y2Fmw6k=?="),
        ];
        assert!(facts_check(&with(r#"{"region":"café"}"#), &encoded).is_ok());
    }

    #[test]
    fn notifications_and_garbage_are_not_requests() {
        let n = r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#;
        assert_eq!(code_of(facts_check(n, &GOOD)), (400, -32600));
        assert_eq!(code_of(facts_check("{", &GOOD)), (400, -32700));
        let wrong_shape = r#"{"jsonrpc":"2.0","id":1,"method":7}"#;
        assert_eq!(code_of(facts_check(wrong_shape, &GOOD)), (400, -32600));
    }
}
