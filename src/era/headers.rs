//! Request headers of the 2026-07-28 era: `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`
//! and `Mcp-Param-{Name}`, with the Base64 sentinel encoding of values.
//!
//! Source: `docs/specification/2026-07-28/basic/transports/streamable-http.mdx`, "Request
//! Metadata" (standard headers, "Custom Headers from Tool Parameters", "Value Encoding").

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::base64;
use super::meta;

/// MUST be on every POST; equals `_meta["io.modelcontextprotocol/protocolVersion"]`.
pub const PROTOCOL_VERSION: &str = "MCP-Protocol-Version";
/// Required on all requests: the JSON-RPC `method`.
pub const METHOD: &str = "Mcp-Method";
/// Required on `tools/call`, `prompts/get` (`params.name`) and `resources/read` (`params.uri`).
pub const NAME: &str = "Mcp-Name";
/// Prefix of the headers mirrored from tool arguments marked with `x-mcp-header`.
pub const PARAM_PREFIX: &str = "Mcp-Param-";
/// The JSON Schema extension property naming a parameter's header.
pub const X_MCP_HEADER: &str = "x-mcp-header";

/// Prefix and suffix of a Base64-encoded value; case-sensitive, exactly as written.
pub const SENTINEL_PREFIX: &str = "=?base64?";
/// See [`SENTINEL_PREFIX`].
pub const SENTINEL_SUFFIX: &str = "?=";

/// The params member `Mcp-Name` mirrors for `method`, if the method needs the header.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Whether `value` may go into a header as it is: only visible ASCII and space, no leading or
/// trailing whitespace, and not looking like the sentinel form ("Value Encoding").
fn is_plain(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !looks_encoded(value)
}

/// The sentinel pattern: starts with `=?base64?` and ends with `?=`.
fn looks_encoded(value: &str) -> bool {
    value.starts_with(SENTINEL_PREFIX) && value.ends_with(SENTINEL_SUFFIX)
}

/// Encode a value for `Mcp-Name` / `Mcp-Param-*`: as is when plain, else
/// `=?base64?{Base64 of the UTF-8 bytes}?=` (non-ASCII, control characters such as tab, CR
/// or LF, leading/trailing whitespace, or a plain value that matches the sentinel pattern).
///
/// The TypeScript SDK (`packages/core/src/shared/httpHeaders.ts`) encodes only values outside
/// `[ -~]`; values it sends plain are plain here too, so the two agree on its output.
pub fn encode_value(value: &str) -> String {
    if is_plain(value) {
        value.to_owned()
    } else {
        format!(
            "{SENTINEL_PREFIX}{}{SENTINEL_SUFFIX}",
            base64::encode(value.as_bytes())
        )
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("header value contains characters not allowed in a header")]
    InvalidCharacters,
    #[error("header value is not canonical Base64 of UTF-8 text")]
    BadBase64,
}

/// Decode an `Mcp-Name` / `Mcp-Param-*` value: the sentinel form is Base64-decoded (it must
/// be canonical Base64 of valid UTF-8, as the TypeScript SDK's server checks); a plain value
/// may hold only visible ASCII, space and tab (RFC 9110 field values).
pub fn decode_value(value: &str) -> Result<String, ValueError> {
    if looks_encoded(value) {
        let inner = value
            .get(SENTINEL_PREFIX.len()..value.len() - SENTINEL_SUFFIX.len())
            .ok_or(ValueError::BadBase64)?;
        let bytes = base64::decode(inner).ok_or(ValueError::BadBase64)?;
        return String::from_utf8(bytes).map_err(|_| ValueError::BadBase64);
    }
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        Ok(value.to_owned())
    } else {
        Err(ValueError::InvalidCharacters)
    }
}

/// One `x-mcp-header` annotation of a tool's `inputSchema`: the header name part and the
/// chain of `properties` keys leading to the annotated argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The `{Name}` of `Mcp-Param-{Name}`, as the schema spells it.
    pub name: String,
    /// Property path from the arguments object, e.g. `["region"]` or `["target","zone"]`.
    pub path: Vec<String>,
    /// `string`, `integer` or `boolean`.
    pub kind: ParamKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Boolean,
}

impl ParamHeader {
    /// The full header name, `Mcp-Param-{Name}`.
    pub fn header_name(&self) -> String {
        format!("{PARAM_PREFIX}{}", self.name)
    }
}

/// Why a tool definition's `x-mcp-header` annotations are invalid; a client MUST then drop
/// the tool from `tools/list` ("Schema Extension").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("x-mcp-header at {0} is not a non-empty HTTP token")]
    BadName(String),
    #[error("x-mcp-header {0:?} is used more than once (names compare case-insensitively)")]
    Duplicate(String),
    #[error("x-mcp-header at {0} is not on a string, integer or boolean property")]
    NotPrimitive(String),
    #[error("x-mcp-header at {0} is not reachable from the root through `properties` alone")]
    NotStaticallyReachable(String),
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn kind_of(schema: &serde_json::Map<String, Value>) -> Option<ParamKind> {
    let kind = |t: &str| match t {
        "string" => Some(ParamKind::String),
        "integer" => Some(ParamKind::Integer),
        "boolean" => Some(ParamKind::Boolean),
        _ => None,
    };
    match schema.get("type")? {
        Value::String(t) => kind(t),
        // `["string","null"]`: one primitive type, optionally nullable (null omits the header).
        Value::Array(types) => {
            let mut kinds = types.iter().filter(|t| t.as_str() != Some("null"));
            let only = kinds.next()?.as_str().and_then(kind)?;
            kinds.next().is_none().then_some(only)
        }
        _ => None,
    }
}

/// The `x-mcp-header` annotations of a tool's `inputSchema`, validated per "Schema
/// Extension": every annotation anywhere in the schema is found (fail closed), and one that
/// is not statically reachable through `properties` keys only, is not a token, repeats
/// case-insensitively, or sits on a non-primitive (or `number`) property makes the whole
/// tool invalid.
pub fn param_headers(input_schema: &Value) -> Result<Vec<ParamHeader>, SchemaError> {
    let mut out = Vec::new();
    walk(input_schema, &mut Vec::new(), true, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for h in &out {
        if !seen.insert(h.name.to_ascii_lowercase()) {
            return Err(SchemaError::Duplicate(h.name.clone()));
        }
    }
    Ok(out)
}

fn walk(
    node: &Value,
    path: &mut Vec<String>,
    reachable: bool,
    out: &mut Vec<ParamHeader>,
) -> Result<(), SchemaError> {
    match node {
        Value::Array(items) => {
            for item in items {
                walk(item, path, false, out)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let at = || format!("/{}", path.join("/"));
            if let Some(name) = map.get(X_MCP_HEADER) {
                // The root itself (the arguments object) cannot be mirrored.
                if !reachable || path.is_empty() {
                    return Err(SchemaError::NotStaticallyReachable(at()));
                }
                let name = match name.as_str() {
                    Some(n) if !n.is_empty() && n.bytes().all(is_tchar) => n,
                    _ => return Err(SchemaError::BadName(at())),
                };
                let kind = kind_of(map).ok_or_else(|| SchemaError::NotPrimitive(at()))?;
                out.push(ParamHeader {
                    name: name.to_owned(),
                    path: path.clone(),
                    kind,
                });
            }
            for (key, child) in map {
                if key == "properties" {
                    if let Value::Object(props) = child {
                        for (prop, schema) in props {
                            path.push(prop.clone());
                            walk(schema, path, reachable, out)?;
                            path.pop();
                        }
                        continue;
                    }
                }
                // Any other keyword (items, oneOf, $defs, if/then/else, …) leaves the chain.
                walk(child, path, false, out)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Largest integer JavaScript represents exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Why an argument cannot be mirrored into its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("argument for {0} does not have the type its schema declares")]
    WrongType(String),
    #[error("integer argument for {0} is outside the JavaScript safe range")]
    UnsafeInteger(String),
}

/// The header text of an argument value ("Value Encoding", type conversion), before the
/// Base64 step: strings as they are, integers in decimal, booleans `true`/`false`. `null`
/// and absent values give `None` (the header is omitted).
pub fn argument_text(
    h: &ParamHeader,
    value: Option<&Value>,
) -> Result<Option<String>, ArgumentError> {
    let wrong = || ArgumentError::WrongType(h.header_name());
    match (h.kind, value) {
        (_, None | Some(Value::Null)) => Ok(None),
        (ParamKind::String, Some(Value::String(s))) => Ok(Some(s.clone())),
        (ParamKind::Boolean, Some(Value::Bool(b))) => Ok(Some(b.to_string())),
        (ParamKind::Integer, Some(Value::Number(n))) => {
            let i = integer_of(n).ok_or_else(wrong)?;
            if i.abs() > MAX_SAFE_INTEGER {
                return Err(ArgumentError::UnsafeInteger(h.header_name()));
            }
            Ok(Some(i.to_string()))
        }
        _ => Err(wrong()),
    }
}

/// An integral JSON number (`42` or `42.0`) as i64.
fn integer_of(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64).then_some(f as i64)
}

/// The value at `path` inside the `arguments` object.
pub fn argument_at<'a>(arguments: Option<&'a Value>, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments?, |node, key| node.as_object()?.get(key))
}

/// The envelope fields of a request that its headers mirror.
#[derive(Debug, Deserialize)]
struct Mirrored<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    params: Option<MirroredParams>,
}

#[derive(Debug, Deserialize)]
struct MirroredParams {
    name: Option<Value>,
    uri: Option<Value>,
    arguments: Option<Value>,
    #[serde(rename = "_meta")]
    meta: Option<meta::RequestMeta>,
}

/// Why headers could not be derived from a body.
#[derive(Debug, thiserror::Error)]
pub enum HeadersError {
    #[error("body is not a JSON-RPC request: {0}")]
    NotARequest(String),
    #[error("request has no protocol version in params._meta")]
    NoVersion,
    #[error(transparent)]
    Argument(#[from] ArgumentError),
}

/// The era's headers for a request body, as (name, value) pairs in the order the spec lists
/// them: `MCP-Protocol-Version` (from `_meta`), `Mcp-Method`, `Mcp-Name` when the method
/// needs it, and, for `tools/call`, one `Mcp-Param-{Name}` per annotation of the called
/// tool (`tool_headers`, from its `inputSchema`) whose argument is present and not null.
pub fn request_headers(
    body: &[u8],
    tool_headers: &[ParamHeader],
) -> Result<Vec<(String, String)>, HeadersError> {
    let m: Mirrored<'_> =
        serde_json::from_slice(body).map_err(|e| HeadersError::NotARequest(e.to_string()))?;
    let method = m
        .method
        .ok_or_else(|| HeadersError::NotARequest("no method".into()))?;
    let params = m.params;
    let version = params
        .as_ref()
        .and_then(|p| p.meta.as_ref())
        .and_then(|meta| meta.protocol_version())
        .ok_or(HeadersError::NoVersion)?;
    let mut out = vec![
        (PROTOCOL_VERSION.to_owned(), version),
        (METHOD.to_owned(), method.to_string()),
    ];
    if let Some(field) = name_field(&method) {
        let value = params.as_ref().and_then(|p| match field {
            "uri" => p.uri.as_ref(),
            _ => p.name.as_ref(),
        });
        if let Some(Value::String(name)) = value {
            out.push((NAME.to_owned(), encode_value(name)));
        }
    }
    if method == "tools/call" {
        let args = params.as_ref().and_then(|p| p.arguments.as_ref());
        for h in tool_headers {
            if let Some(text) = argument_text(h, argument_at(args, &h.path))? {
                out.push((h.header_name(), encode_value(&text)));
            }
        }
    }
    Ok(out)
}

/// The tools of a `tools/list` result (`result` JSON text) whose `x-mcp-header` annotations
/// are invalid, with the reason: a client on Streamable HTTP MUST drop these from the list
/// and SHOULD log a warning naming the tool ("Schema Extension").
pub fn invalid_tools(list_result: &str) -> Result<Vec<(String, SchemaError)>, serde_json::Error> {
    #[derive(Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        tools: Vec<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Tool {
        name: String,
        #[serde(rename = "inputSchema", default)]
        input_schema: Value,
    }
    let list: List<'_> = serde_json::from_str(list_result)?;
    let mut out = Vec::new();
    for raw in list.tools {
        let tool: Tool = serde_json::from_str(raw.get())?;
        if let Err(e) = param_headers(&tool.input_schema) {
            out.push((tool.name, e));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_the_spec_examples_exactly() {
        // streamable-http.mdx, "Encoding examples".
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(
            encode_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            encode_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }

    #[test]
    fn encodes_tabs_and_keeps_interior_spaces_and_uris_plain() {
        assert_eq!(encode_value("a\tb"), "=?base64?YQli?=");
        assert_eq!(encode_value("two words"), "two words");
        assert_eq!(
            encode_value("file:///projects/myapp/config.json"),
            "file:///projects/myapp/config.json"
        );
    }

    #[test]
    fn decoding_inverts_encoding_and_rejects_bad_values() {
        for v in [
            "us-west1",
            "Hello, 世界",
            " padded ",
            "line1\nline2",
            "=?base64?literal?=",
            "",
        ] {
            assert_eq!(decode_value(&encode_value(v)).as_deref(), Ok(v));
        }
        assert_eq!(decode_value("=?base64?%%%?="), Err(ValueError::BadBase64));
        // Canonical Base64 only: missing padding, and valid Base64 that is not UTF-8.
        assert_eq!(decode_value("=?base64?YQ?="), Err(ValueError::BadBase64));
        assert_eq!(decode_value("=?base64?//4=?="), Err(ValueError::BadBase64));
        assert_eq!(decode_value("=?base64?="), Err(ValueError::BadBase64));
        assert_eq!(decode_value("a\u{7f}b"), Err(ValueError::InvalidCharacters));
        assert_eq!(
            decode_value("caf\u{e9}"),
            Err(ValueError::InvalidCharacters)
        );
    }

    #[test]
    fn standard_headers_of_the_spec_examples() {
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/myapp/config.json","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let h = request_headers(body, &[]).unwrap();
        assert_eq!(
            h,
            [
                ("MCP-Protocol-Version".to_owned(), "2026-07-28".to_owned()),
                ("Mcp-Method".to_owned(), "resources/read".to_owned()),
                (
                    "Mcp-Name".to_owned(),
                    "file:///projects/myapp/config.json".to_owned()
                ),
            ]
        );
        let list = br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        assert_eq!(request_headers(list, &[]).unwrap().len(), 2);
        let legacy = br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
        assert!(matches!(
            request_headers(legacy, &[]),
            Err(HeadersError::NoVersion)
        ));
    }

    fn execute_sql() -> Value {
        // streamable-http.mdx, "Example tool definition".
        json!({
            "type": "object",
            "properties": {
                "region": { "type": "string", "description": "The region", "x-mcp-header": "Region" },
                "query": { "type": "string" }
            },
            "required": ["region", "query"]
        })
    }

    #[test]
    fn param_headers_of_the_spec_example_tool_call() {
        let hs = param_headers(&execute_sql()).unwrap();
        assert_eq!(
            hs,
            [ParamHeader {
                name: "Region".into(),
                path: vec!["region".into()],
                kind: ParamKind::String
            }]
        );
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}},"name":"execute_sql","arguments":{"region":"us-west1","query":"SELECT * FROM users"}}}"#;
        let h = request_headers(body.as_bytes(), &hs).unwrap();
        assert_eq!(h[2], ("Mcp-Name".to_owned(), "execute_sql".to_owned()));
        assert_eq!(h[3], ("Mcp-Param-Region".to_owned(), "us-west1".to_owned()));
        assert_eq!(h.len(), 4);
        // Null or absent argument: the header is omitted.
        let null = body.replace(r#""region":"us-west1""#, r#""region":null"#);
        assert_eq!(request_headers(null.as_bytes(), &hs).unwrap().len(), 3);
    }

    #[test]
    fn nested_integer_and_boolean_parameters() {
        let schema = json!({
            "type": "object",
            "properties": {
                "target": { "type": "object", "properties": {
                    "shard": { "type": "integer", "x-mcp-header": "Shard" },
                    "dry": { "type": ["boolean", "null"], "x-mcp-header": "Dry-Run" }
                }}
            }
        });
        let mut hs = param_headers(&schema).unwrap();
        // serde_json's map is ordered by key; put Shard first for the checks below.
        hs.sort_by(|a, b| b.name.cmp(&a.name));
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].path, ["target", "shard"]);
        let args = json!({ "target": { "shard": 42.0, "dry": false } });
        assert_eq!(
            argument_text(&hs[0], argument_at(Some(&args), &hs[0].path)),
            Ok(Some("42".into()))
        );
        assert_eq!(
            argument_text(&hs[1], argument_at(Some(&args), &hs[1].path)),
            Ok(Some("false".into()))
        );
        let big = json!({ "target": { "shard": 9007199254740992_i64 } });
        assert_eq!(
            argument_text(&hs[0], argument_at(Some(&big), &hs[0].path)),
            Err(ArgumentError::UnsafeInteger("Mcp-Param-Shard".into()))
        );
        let wrong = json!({ "target": { "shard": "7" } });
        assert!(argument_text(&hs[0], argument_at(Some(&wrong), &hs[0].path)).is_err());
    }

    #[test]
    fn invalid_annotations_invalidate_the_tool() {
        let cases = [
            json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":""}}}),
            json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"A B"}}}),
            json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"X\r\n"}}}),
            json!({"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}),
            json!({"type":"object","properties":{"a":{"type":"array","x-mcp-header":"A"}}}),
            json!({"type":"object","properties":{"a":{"x-mcp-header":"A"}}}),
            json!({"type":"object","properties":{
                "a":{"type":"string","x-mcp-header":"Tenant"},
                "b":{"type":"string","x-mcp-header":"tenant"}}}),
            json!({"type":"object","properties":{"l":{"type":"array",
                "items":{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"A"}}}}}}),
            json!({"type":"object","oneOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]}),
            json!({"type":"object","$defs":{"d":{"type":"string","x-mcp-header":"A"}},
                "properties":{"a":{"$ref":"#/$defs/d"}}}),
            json!({"type":"object","x-mcp-header":"Root"}),
        ];
        for schema in cases {
            assert!(param_headers(&schema).is_err(), "accepted {schema}");
        }
    }

    #[test]
    fn invalid_tools_names_the_tools_to_drop() {
        let result = json!({
            "tools": [
                { "name": "execute_sql", "inputSchema": execute_sql() },
                { "name": "bad", "inputSchema": {"type":"object","properties":{"n":{"type":"number","x-mcp-header":"N"}}} }
            ],
            "resultType": "complete", "ttlMs": 0, "cacheScope": "private"
        })
        .to_string();
        let bad = invalid_tools(&result).unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "bad");
    }
}
