//! What the fake 2026-07-28 server checks before it serves a request, written from the spec
//! (`basic/transports/streamable-http.mdx`, "Server Validation"; `basic/versioning.mdx`) and
//! independent of the bridge's own `era` code, so each checks the other.
//!
//! The order follows the TypeScript SDK's inbound ladder, with one choice of ours: a header
//! naming a version this server does not serve is answered `-32022` before the body is read,
//! which is what a modern-only SDK server tells pre-2026 traffic.
//!
//! 1. `MCP-Protocol-Version` missing → 400 -32020.
//! 2. the header's version not served → 400 -32022 with `data.supported` / `data.requested`.
//! 3. `_meta` protocol version missing → 400 -32602; ≠ header → 400 -32020.
//! 4. `_meta` client capabilities missing → 400 -32602.
//! 5. `Mcp-Method` missing or ≠ `method`; `Mcp-Name` (Base64 sentinel decoded) ≠ its param →
//!    400 -32020.
//! 6. unknown method (`initialize`, `ping`, … included) → 404 -32601.
//! 7. `tools/call`: an `Mcp-Param-*` header of the tool missing or ≠ its argument → 400 -32020.

use actix_web::HttpRequest;
use serde_json::{json, Value};

use super::util::header;

pub(crate) const HEADER_MISMATCH: i64 = -32020;
pub(crate) const UNSUPPORTED_VERSION: i64 = -32022;
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The methods this server serves.
pub(crate) const METHODS: [&str; 4] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "subscriptions/listen",
];

/// A refusal: HTTP status and the JSON-RPC error body.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: u16,
    pub body: String,
}

pub(crate) fn refusal(
    status: u16,
    id: &Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Refusal {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    Refusal {
        status,
        body: json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string(),
    }
}

/// Checks one request (`msg` is the parsed body) against the ladder above. `supported` are the
/// versions served; `param_headers(tool)` the `(header suffix, argument)` pairs a tool declares.
pub(crate) fn check(
    req: &HttpRequest,
    msg: &Value,
    supported: &[&str],
    param_headers: impl Fn(&str) -> Vec<(&'static str, &'static str)>,
) -> Result<(), Refusal> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let mismatch = |m: String| refusal(400, &id, HEADER_MISMATCH, &m, None);
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = msg.get("params").cloned().unwrap_or(Value::Null);

    let Some(h_version) = header(req, "mcp-protocol-version") else {
        return Err(mismatch(
            "Header mismatch: MCP-Protocol-Version header is missing".into(),
        ));
    };
    if !supported.contains(&h_version) {
        let data = json!({"supported": supported, "requested": h_version});
        return Err(refusal(
            400,
            &id,
            UNSUPPORTED_VERSION,
            "Unsupported protocol version",
            Some(data),
        ));
    }
    let meta = params.get("_meta");
    let Some(b_version) = meta
        .and_then(|m| m.get(META_VERSION))
        .and_then(Value::as_str)
    else {
        return Err(refusal(
            400,
            &id,
            -32602,
            &format!("Invalid params: _meta[\"{META_VERSION}\"] is required"),
            None,
        ));
    };
    if b_version != h_version {
        return Err(mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{h_version}' does not match body value '{b_version}'"
        )));
    }
    if !meta
        .and_then(|m| m.get(META_CAPABILITIES))
        .is_some_and(Value::is_object)
    {
        return Err(refusal(
            400,
            &id,
            -32602,
            &format!("Invalid params: _meta[\"{META_CAPABILITIES}\"] is required"),
            None,
        ));
    }
    match header(req, "mcp-method") {
        Some(h) if h == method => {}
        Some(h) => {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Method '{h}' does not match body '{method}'"
            )))
        }
        None => {
            return Err(mismatch(
                "Header mismatch: Mcp-Method header is missing".into(),
            ))
        }
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field {
        let body = params.get(field).and_then(Value::as_str);
        let head = header(req, "mcp-name").map(decode_value);
        if head.as_ref().map(|h| h.as_deref()) != body.map(Some) {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Name {head:?} does not match body {body:?}"
            )));
        }
    }
    if !METHODS.contains(&method) {
        return Err(refusal(
            404,
            &id,
            -32601,
            &format!("Method not found: {method}"),
            None,
        ));
    }
    if method == "tools/call" {
        let tool = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for (suffix, arg) in param_headers(tool) {
            let want = params
                .pointer(&format!("/arguments/{arg}"))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            let got = header(req, &format!("mcp-param-{suffix}")).and_then(decode_value);
            if got != want {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Param-{suffix} {got:?} does not match argument {arg} {want:?}"
                )));
            }
        }
    }
    Ok(())
}

/// A header value as the spec's "Value Encoding" writes it: plain, or `=?base64?…?=` around
/// the Base64 of UTF-8 text. `None` when the sentinel form does not decode.
pub(crate) fn decode_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(base64_decode(b64)?).ok(),
        None => Some(raw.to_owned()),
    }
}

/// Standard Base64 with padding (RFC 4648 §4).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | ALPHABET.iter().position(|a| *a == c)? as u32;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_values_decode() {
        assert_eq!(decode_value("plain").as_deref(), Some("plain"));
        assert_eq!(decode_value("=?base64?w6ljaG8=?=").as_deref(), Some("écho"));
        assert_eq!(decode_value("=?base64?aGk=?=").as_deref(), Some("hi"));
        assert_eq!(decode_value("=?base64?YWJj?=").as_deref(), Some("abc"));
        assert_eq!(decode_value("=?base64?!!!!?="), None);
    }
}
