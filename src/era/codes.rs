//! Protocol versions and error codes of the 2026-07-28 era, and the JSON-RPC error bodies
//! a modern peer sends.
//!
//! Source: `schema/2026-07-28/schema.ts` ("MCP error codes"), and
//! `docs/specification/2026-07-28/basic/versioning.mdx`.

/// The modern revision (`LATEST_PROTOCOL_VERSION` in `schema/2026-07-28/schema.ts`).
pub const MODERN_VERSION: &str = "2026-07-28";

/// The initialize-based revisions, newest first (`basic/versioning.mdx`, "Legacy").
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Whether `version` is a legacy (initialize-based) revision the bridge knows.
pub fn is_legacy_version(version: &str) -> bool {
    LEGACY_VERSIONS.contains(&version)
}

/// JSON-RPC "Method not found"; on Streamable HTTP sent with HTTP 404
/// (`basic/transports/streamable-http.mdx`, "Protocol Version Header").
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "Invalid params"; what a modern server answers when required `_meta` is missing
/// (`RequestParams._meta` is required in `schema.ts`).
pub const INVALID_PARAMS: i64 = -32602;
/// `HEADER_MISMATCH`: headers disagree with the body, or are missing/malformed (HTTP 400).
pub const HEADER_MISMATCH: i64 = -32020;
/// `MISSING_REQUIRED_CLIENT_CAPABILITY`, with `data.requiredCapabilities` (HTTP 400).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// `UNSUPPORTED_PROTOCOL_VERSION`, with `data.supported` and `data.requested` (HTTP 400).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// `-32000..=-32019`: implementation-defined; no cross-implementation meaning (`schema.ts`).
pub fn is_implementation_defined(code: i64) -> bool {
    (-32019..=-32000).contains(&code)
}

/// `-32020..=-32099`: reserved for codes the MCP specification defines (`schema.ts`).
pub fn is_spec_reserved(code: i64) -> bool {
    (-32099..=-32020).contains(&code)
}

/// Whether an HTTP error answer to a modern request identifies a modern server.
///
/// `basic/transports/streamable-http.mdx`, "Backward Compatibility": a 400 whose body is a
/// recognised modern error (unsupported version, missing capability, header validation), or a
/// 404 carrying JSON-RPC `-32601`, means "modern — correct the request", anything else means
/// "legacy — fall back to `initialize`".
pub fn is_modern_rejection(status: u16, error_code: Option<i64>) -> bool {
    let modern_400 = [
        HEADER_MISMATCH,
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        UNSUPPORTED_PROTOCOL_VERSION,
    ];
    match error_code {
        Some(code) if status == 400 => modern_400.contains(&code),
        Some(code) if status == 404 => code == METHOD_NOT_FOUND,
        _ => false,
    }
}

/// A JSON-RPC error response body. `id_json` is the request id as JSON text (`None` → the
/// `id` member is omitted, as `JSONRPCErrorResponse.id` is optional); `data_json` is raw JSON.
pub fn error_body(
    id_json: Option<&str>,
    code: i64,
    message: &str,
    data_json: Option<&str>,
) -> String {
    let message = serde_json::to_string(message).expect("a string serialises");
    let id = id_json
        .map(|id| format!("\"id\":{id},"))
        .unwrap_or_default();
    let data = data_json
        .map(|d| format!(",\"data\":{d}"))
        .unwrap_or_default();
    format!("{{\"jsonrpc\":\"2.0\",{id}\"error\":{{\"code\":{code},\"message\":{message}{data}}}}}")
}

/// `data` of an `UnsupportedProtocolVersionError`: `{"supported":[…],"requested":"…"}`
/// (`schema.ts`: both members are required).
pub fn unsupported_version_data(supported: &[&str], requested: &str) -> String {
    serde_json::json!({ "supported": supported, "requested": requested }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_the_server_error_block() {
        assert!(is_implementation_defined(-32000));
        assert!(is_implementation_defined(-32019));
        assert!(!is_implementation_defined(-32020));
        assert!(is_spec_reserved(HEADER_MISMATCH));
        assert!(is_spec_reserved(UNSUPPORTED_PROTOCOL_VERSION));
        assert!(is_spec_reserved(-32099));
        assert!(!is_spec_reserved(-32100));
        assert!(!is_spec_reserved(METHOD_NOT_FOUND));
    }

    #[test]
    fn modern_rejections_are_recognised_and_legacy_ones_are_not() {
        assert!(is_modern_rejection(400, Some(-32022)));
        assert!(is_modern_rejection(400, Some(-32020)));
        assert!(is_modern_rejection(404, Some(-32601)));
        // server-everything's "No valid session ID provided" (400, -32000) is legacy.
        assert!(!is_modern_rejection(400, Some(-32000)));
        assert!(!is_modern_rejection(404, None));
        assert!(!is_modern_rejection(405, None));
    }

    #[test]
    fn unsupported_version_error_matches_the_spec_example() {
        // basic/versioning.mdx, "Protocol Version Negotiation".
        let body = error_body(
            Some("1"),
            UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            Some(&unsupported_version_data(
                &["2026-07-28", "2025-11-25"],
                "1900-01-01",
            )),
        );
        let got: serde_json::Value = serde_json::from_str(&body).unwrap();
        let want = serde_json::json!({
            "jsonrpc": "2.0", "id": 1,
            "error": {
                "code": -32022, "message": "Unsupported protocol version",
                "data": { "supported": ["2026-07-28", "2025-11-25"], "requested": "1900-01-01" }
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn error_without_id_omits_it() {
        assert_eq!(
            error_body(None, HEADER_MISMATCH, "a \"b\"", None),
            r#"{"jsonrpc":"2.0","error":{"code":-32020,"message":"a \"b\""}}"#
        );
    }
}
