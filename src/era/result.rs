//! Result envelope fields of the 2026-07-28 era: `resultType` on every result, and
//! `ttlMs`/`cacheScope` on the cacheable ones — read from a modern server's answer, or
//! spliced into a legacy server's answer for a modern client.
//!
//! Source: `schema/2026-07-28/schema.ts`, `Result.resultType` ("Servers implementing this
//! protocol version MUST include this field"; absent → `complete` for results of earlier
//! versions) and `CacheableResult` (`ListToolsResult`, `ListPromptsResult`,
//! `ListResourcesResult`, `ListResourceTemplatesResult`, `ReadResourceResult`,
//! `DiscoverResult`).

use serde::Deserialize;

use super::discover::CacheHint;
use super::splice::{self, SpliceError};

/// `resultType` of a final result.
pub const COMPLETE: &str = "complete";
/// `resultType` of an `InputRequiredResult` (MRTR).
pub const INPUT_REQUIRED: &str = "input_required";

/// The methods whose results are `CacheableResult`s.
pub const CACHEABLE_METHODS: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// What kind of result a `result` object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultType {
    Complete,
    InputRequired,
    /// Another value (`ResultType` is an open string; extensions add e.g. `task`).
    Other(String),
}

/// The `resultType` of a `result` object's JSON text; absent means `complete`.
pub fn result_type(result: &str) -> Result<ResultType, serde_json::Error> {
    #[derive(Deserialize)]
    struct R {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
    }
    let r: R = serde_json::from_str(result)?;
    Ok(match r.result_type.as_deref() {
        None | Some(COMPLETE) => ResultType::Complete,
        Some(INPUT_REQUIRED) => ResultType::InputRequired,
        Some(other) => ResultType::Other(other.to_owned()),
    })
}

/// Splice the modern result fields into a legacy server's response `body` to a `method`
/// request: `resultType: "complete"` and, for cacheable methods, `ttlMs` and `cacheScope`
/// from `hint` — each only when absent. Error responses pass unchanged.
pub fn modernize_response(
    body: &[u8],
    method: &str,
    hint: CacheHint,
) -> Result<Vec<u8>, SpliceError> {
    let text = std::str::from_utf8(body).map_err(|e| SpliceError::NotJson(e.to_string()))?;
    splice::validate(text)?;
    let root = splice::root(text);
    if text.as_bytes()[root] != b'{' {
        return Err(SpliceError::NotAnObject("message"));
    }
    let Some(result) = splice::find(text, root, "result") else {
        return Ok(body.to_vec());
    };
    if text.as_bytes()[result.start] != b'{' {
        return Err(SpliceError::NotAnObject("result"));
    }
    let mut out = text.to_owned();
    let mut add = |key: &str, value: &str| {
        if splice::find(&out, result.start, key).is_none() {
            out = splice::set(&out, result.start, key, value);
        }
    };
    add("resultType", "\"complete\"");
    if CACHEABLE_METHODS.contains(&method) {
        add("ttlMs", &hint.ttl_ms.to_string());
        add("cacheScope", &format!("\"{}\"", hint.scope.as_str()));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(body: &str, method: &str) -> String {
        String::from_utf8(
            modernize_response(body.as_bytes(), method, CacheHint::default()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn reads_result_types() {
        assert_eq!(
            result_type(r#"{"content":[]}"#).unwrap(),
            ResultType::Complete
        );
        assert_eq!(
            result_type(r#"{"resultType":"input_required","requestState":"x"}"#).unwrap(),
            ResultType::InputRequired
        );
        assert_eq!(
            result_type(r#"{"resultType":"task"}"#).unwrap(),
            ResultType::Other("task".into())
        );
    }

    #[test]
    fn adds_what_is_missing_and_keeps_the_rest() {
        assert_eq!(
            modern(
                r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}}],"nextCursor":"2"}}"#,
                "tools/list"
            ),
            r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}}],"nextCursor":"2","resultType":"complete","ttlMs":0,"cacheScope":"private"}}"#
        );
        assert_eq!(
            modern(
                r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"3"}],"isError":false}}"#,
                "tools/call"
            ),
            r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"3"}],"isError":false,"resultType":"complete"}}"#
        );
        let already = r#"{"jsonrpc":"2.0","id":6,"result":{"resultType":"complete","contents":[],"ttlMs":5,"cacheScope":"public"}}"#;
        assert_eq!(modern(already, "resources/read"), already);
        let error = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool"}}"#;
        assert_eq!(modern(error, "tools/call"), error);
    }
}
