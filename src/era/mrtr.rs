//! Multi Round-Trip Requests (MRTR): the 2026-07-28 replacement for server-to-client
//! requests, converted in both directions.
//!
//! Sources: `docs/specification/2026-07-28/basic/patterns/mrtr.mdx` (flow, server and client
//! requirements, supported requests) and `schema/2026-07-28/schema.ts` (`InputRequiredResult`:
//! `resultType: "input_required"`, `inputRequests?`, `requestState?`, at least one present;
//! `InputRequests`/`InputResponses`: maps keyed by server-assigned strings;
//! `InputResponseRequestParams`: the retry carries `params.inputResponses` and
//! `params.requestState`; `InputRequest` = `{method, params}` without `jsonrpc`/`id`).
//!
//! - Upstream (old client → modern server): [`parse_input_required`] reads the server's
//!   result, [`InputRequest::legacy_request`] makes each input request a JSON-RPC request for
//!   the 2025 client, [`InputResponses`] collects its answers and [`retry_request`] builds the
//!   retry (new id, original params, `inputResponses`, `requestState`).
//! - Downstream (modern client → legacy server): [`InputRequiredBuilder`] collects the legacy
//!   server's requests into an `InputRequiredResult` with a bridge-minted `requestState`, and
//!   [`read_retry`] / [`legacy_response`] turn the client's retry into JSON-RPC responses for
//!   the legacy server.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::result::INPUT_REQUIRED;
use super::splice::{self, SpliceError};

/// The requests a server may embed as input requests.
pub const INPUT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

/// The client requests a server may answer with an `InputRequiredResult` ("Supported
/// Requests"); no other request may get one.
pub const MRTR_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Why an MRTR shape could not be read or built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MrtrError {
    #[error("not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error("result is not `resultType: \"input_required\"`")]
    NotInputRequired,
    #[error("an InputRequiredResult needs inputRequests or requestState")]
    Empty,
    #[error("`{0}` cannot be an input request")]
    NotAnInputMethod(String),
    #[error(transparent)]
    Splice(#[from] SpliceError),
}

fn shape(e: impl std::fmt::Display) -> MrtrError {
    MrtrError::Shape(e.to_string())
}

/// One entry of `inputRequests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRequest {
    /// The server-assigned key; the answer goes under the same key in `inputResponses`.
    pub key: String,
    pub method: String,
    /// `params` as the server wrote them (absent for e.g. `roots/list`).
    pub params: Option<String>,
}

/// A parsed `InputRequiredResult`, with input requests in the order the server wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRequired {
    pub requests: Vec<InputRequest>,
    /// The opaque state, to echo back exactly; never inspected.
    pub request_state: Option<String>,
}

/// `{method, params}` of an input request or a legacy request.
#[derive(Deserialize)]
struct MethodParams<'a> {
    method: String,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// Read an `InputRequiredResult` (the `result` member's JSON text).
pub fn parse_input_required(result: &str) -> Result<InputRequired, MrtrError> {
    #[derive(Deserialize)]
    struct R {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
        #[serde(rename = "requestState")]
        request_state: Option<String>,
    }
    splice::validate(result)?;
    let r: R = serde_json::from_str(result).map_err(shape)?;
    if r.result_type.as_deref() != Some(INPUT_REQUIRED) {
        return Err(MrtrError::NotInputRequired);
    }
    let root = splice::root(result);
    let mut requests = Vec::new();
    if let Some(span) = splice::find(result, root, "inputRequests") {
        if result.as_bytes()[span.start] != b'{' {
            return Err(SpliceError::NotAnObject("inputRequests").into());
        }
        // Scanned rather than deserialised into a map: keeps the server's order.
        for m in splice::members(result, span.start).0 {
            let req: MethodParams<'_> =
                serde_json::from_str(&result[m.value.clone()]).map_err(shape)?;
            if !INPUT_METHODS.contains(&req.method.as_str()) {
                return Err(MrtrError::NotAnInputMethod(req.method));
            }
            requests.push(InputRequest {
                key: m.key,
                method: req.method,
                params: req.params.map(|p| p.get().to_owned()),
            });
        }
    }
    if requests.is_empty() && r.request_state.is_none() {
        return Err(MrtrError::Empty);
    }
    Ok(InputRequired {
        requests,
        request_state: r.request_state,
    })
}

impl InputRequest {
    /// This input request as a JSON-RPC request to a 2025 client, with the bridge's `id_json`.
    ///
    /// A URL-mode `elicitation/create` gets an `elicitationId` when it has none: 2025-11-25
    /// requires it, 2026-07-28 dropped it (the TypeScript SDK's `inputRequired.elicitUrl`
    /// omits it; correlation lives in `requestState`). The bridge's request id is unique among
    /// its in-flight requests, so its text serves.
    pub fn legacy_request(&self, id_json: &str) -> String {
        let method = serde_json::to_string(&self.method).expect("a string");
        let params = match self.params.as_deref() {
            Some(p) if self.method == "elicitation/create" => {
                let p = url_elicitation_with_id(p, id_json);
                format!(",\"params\":{p}")
            }
            Some(p) => format!(",\"params\":{p}"),
            None => String::new(),
        };
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id_json},\"method\":{method}{params}}}")
    }
}

fn url_elicitation_with_id(params: &str, id_json: &str) -> String {
    let root = splice::root(params);
    let is_url = splice::find(params, root, "mode").is_some_and(|m| &params[m] == "\"url\"");
    if !is_url || splice::find(params, root, "elicitationId").is_some() {
        return params.to_owned();
    }
    let id_text: String = serde_json::from_str(id_json).unwrap_or_else(|_| id_json.to_owned());
    let id = serde_json::to_string(&id_text).expect("a string");
    splice::set(params, root, "elicitationId", &id)
}

/// A legacy client's answer that cannot go into `inputResponses` (which holds results only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    /// The JSON-RPC `error` object's text.
    pub error: String,
}

/// The answers to one `InputRequiredResult`, keyed as its `inputRequests` were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputResponses {
    entries: Vec<(String, String)>,
}

impl InputResponses {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the `result` JSON text answering input request `key`.
    pub fn insert(&mut self, key: &str, result_json: &str) {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_owned(), result_json.to_owned()));
    }

    /// Add a 2025 client's JSON-RPC response for input request `key`. Its `result` is taken
    /// byte for byte. An `error` is returned instead: the spec gives it no place
    /// (`InputResponses` values are results) and leaves the choice to the client; leaving the
    /// key out would only make the server ask again ("Error Handling"), so the adapter should
    /// fail the original request with that error.
    pub fn insert_response(&mut self, key: &str, response: &[u8]) -> Result<(), AnswerError> {
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            result: Option<&'a RawValue>,
            #[serde(borrow)]
            error: Option<&'a RawValue>,
        }
        let resp: Resp<'_> = serde_json::from_slice(response).map_err(|e| AnswerError {
            error: crate::era::codes::error_body(None, -32603, &e.to_string(), None),
        })?;
        match (resp.result, resp.error) {
            (Some(result), None) => {
                self.insert(key, result.get());
                Ok(())
            }
            (_, Some(error)) => Err(AnswerError {
                error: error.get().to_owned(),
            }),
            (None, None) => Err(AnswerError {
                error: r#"{"code":-32603,"message":"answer has neither result nor error"}"#
                    .to_owned(),
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every request of `asked` has an answer.
    pub fn answers_all(&self, asked: &InputRequired) -> bool {
        asked
            .requests
            .iter()
            .all(|r| self.entries.iter().any(|(k, _)| *k == r.key))
    }

    /// The `inputResponses` object's JSON text.
    pub fn to_json(&self) -> String {
        let members: Vec<String> = self
            .entries
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).expect("a string")))
            .collect();
        format!("{{{}}}", members.join(","))
    }
}

/// The retry of `original` (the client's request body as first sent): a new `id` (MUST
/// differ from the first attempt's), the original params, `inputResponses` when there are
/// answers, and `requestState` exactly as the server gave it — or none if it gave none
/// (a stale one from an earlier round is removed, as the client MUST NOT send one then).
pub fn retry_request(
    original: &[u8],
    new_id_json: &str,
    responses: &InputResponses,
    request_state: Option<&str>,
) -> Result<Vec<u8>, MrtrError> {
    let text = std::str::from_utf8(original).map_err(shape)?;
    splice::validate(text)?;
    let root = splice::root(text);
    if text.as_bytes()[root] != b'{' {
        return Err(SpliceError::NotAnObject("message").into());
    }
    let text = splice::set(text, root, "id", new_id_json);
    let (mut text, params) = splice::object_member(&text, root, "params")?;
    for key in ["inputResponses", "requestState"] {
        text = splice::remove(&text, params, key);
    }
    if !responses.is_empty() {
        text = splice::set(&text, params, "inputResponses", &responses.to_json());
    }
    if let Some(state) = request_state {
        let state = serde_json::to_string(state).expect("a string");
        text = splice::set(&text, params, "requestState", &state);
    }
    Ok(text.into_bytes())
}

/// The `inputRequests` key for a legacy server's request id: the id's exact JSON text (`3`,
/// `"abc"`), so distinct ids give distinct keys and the id comes back from the key alone.
/// The spec lets the server choose keys freely ("server-assigned identifiers").
pub fn key_for_id(id_json: &str) -> String {
    id_json.to_owned()
}

/// The legacy request id (JSON text) a key of [`key_for_id`] stands for; `None` for a key
/// the bridge did not mint.
pub fn id_for_key(key: &str) -> Option<String> {
    let id: &RawValue = serde_json::from_str(key).ok()?;
    let first = id.get().as_bytes().first()?;
    matches!(first, b'"' | b'-' | b'0'..=b'9').then(|| key.to_owned())
}

/// Collects a legacy server's server-to-client requests into one `InputRequiredResult`.
#[derive(Debug, Clone, Default)]
pub struct InputRequiredBuilder {
    requests: Vec<InputRequest>,
}

impl InputRequiredBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a legacy server's JSON-RPC request (`sampling/createMessage`, `elicitation/create`
    /// or `roots/list`), keyed by its id. Other requests (e.g. `ping`) have no MRTR form and
    /// are refused: the bridge answers those itself. Params pass on byte for byte.
    pub fn push_legacy_request(&mut self, body: &[u8]) -> Result<String, MrtrError> {
        #[derive(Deserialize)]
        struct Req<'a> {
            #[serde(borrow)]
            id: &'a RawValue,
            method: String,
            #[serde(borrow)]
            params: Option<&'a RawValue>,
        }
        let req: Req<'_> = serde_json::from_slice(body).map_err(shape)?;
        if !INPUT_METHODS.contains(&req.method.as_str()) {
            return Err(MrtrError::NotAnInputMethod(req.method));
        }
        let key = key_for_id(req.id.get());
        self.requests.retain(|r| r.key != key);
        self.requests.push(InputRequest {
            key: key.clone(),
            method: req.method,
            params: req.params.map(|p| p.get().to_owned()),
        });
        Ok(key)
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The `InputRequiredResult` JSON text, with the bridge-minted opaque `request_state`.
    pub fn build(&self, request_state: Option<&str>) -> Result<String, MrtrError> {
        if self.requests.is_empty() && request_state.is_none() {
            return Err(MrtrError::Empty);
        }
        let mut out = format!("{{\"resultType\":\"{INPUT_REQUIRED}\"");
        if !self.requests.is_empty() {
            let entries: Vec<String> = self
                .requests
                .iter()
                .map(|r| {
                    let params = r
                        .params
                        .as_deref()
                        .map(|p| format!(",\"params\":{p}"))
                        .unwrap_or_default();
                    format!(
                        "{}:{{\"method\":{}{params}}}",
                        serde_json::to_string(&r.key).expect("a string"),
                        serde_json::to_string(&r.method).expect("a string"),
                    )
                })
                .collect();
            out.push_str(&format!(",\"inputRequests\":{{{}}}", entries.join(",")));
        }
        if let Some(state) = request_state {
            let state = serde_json::to_string(state).expect("a string");
            out.push_str(&format!(",\"requestState\":{state}"));
        }
        out.push('}');
        Ok(out)
    }
}

/// What a modern client's retry carries for the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// `(key, result JSON text)` in the client's order.
    pub input_responses: Vec<(String, String)>,
    pub request_state: Option<String>,
}

/// Read `params.inputResponses` and `params.requestState` of a retried request.
pub fn read_retry(body: &[u8]) -> Result<Retry, MrtrError> {
    let text = std::str::from_utf8(body).map_err(shape)?;
    splice::validate(text)?;
    #[derive(Deserialize)]
    struct Req {
        params: Option<P>,
    }
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "requestState")]
        request_state: Option<String>,
    }
    let req: Req = serde_json::from_str(text).map_err(shape)?;
    let root = splice::root(text);
    let mut input_responses = Vec::new();
    if let Some(params) = splice::find(text, root, "params") {
        if let Some(span) = splice::find(text, params.start, "inputResponses") {
            if text.as_bytes()[span.start] != b'{' {
                return Err(SpliceError::NotAnObject("inputResponses").into());
            }
            for m in splice::members(text, span.start).0 {
                input_responses.push((m.key, text[m.value].to_owned()));
            }
        }
    }
    Ok(Retry {
        input_responses,
        request_state: req.params.and_then(|p| p.request_state),
    })
}

/// The JSON-RPC response to the legacy server's request behind `key`, carrying the modern
/// client's answer (`result_json`) byte for byte; `None` for a key the bridge did not mint.
pub fn legacy_response(key: &str, result_json: &str) -> Option<String> {
    let id = id_for_key(key)?;
    Some(format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result_json}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// basic/patterns/mrtr.mdx, "InputRequiredResult" (comments removed).
    const SPEC_RESULT: &str = r#"{
    "resultType": "input_required",
    "inputRequests": {
      "github_login": {
        "method": "elicitation/create",
        "params": {
          "mode": "form",
          "message": "Please provide your GitHub username",
          "requestedSchema": {
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"]
          }
        }
      },
      "capital_of_france": {
        "method": "sampling/createMessage",
        "params": {
          "messages": [ { "role": "user", "content": { "type": "text", "text": "What is the capital of France?" } } ],
          "modelPreferences": { "hints": [{ "name": "claude-3-sonnet" }], "intelligencePriority": 0.8, "speedPriority": 0.5 },
          "systemPrompt": "You are a helpful assistant.",
          "maxTokens": 100
        }
      }
    },
    "requestState": "AEAD-protected blob"
  }"#;

    #[test]
    fn parses_the_spec_example_in_server_order() {
        let ir = parse_input_required(SPEC_RESULT).unwrap();
        let keys: Vec<_> = ir.requests.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["github_login", "capital_of_france"]);
        assert_eq!(ir.requests[0].method, "elicitation/create");
        assert_eq!(ir.requests[1].method, "sampling/createMessage");
        assert!(ir.requests[1]
            .params
            .as_deref()
            .unwrap()
            .contains("\"intelligencePriority\": 0.8"));
        assert_eq!(ir.request_state.as_deref(), Some("AEAD-protected blob"));
    }

    #[test]
    fn refuses_malformed_input_required_results() {
        assert_eq!(
            parse_input_required(r#"{"resultType":"complete","content":[]}"#),
            Err(MrtrError::NotInputRequired)
        );
        assert_eq!(
            parse_input_required(r#"{"resultType":"input_required"}"#),
            Err(MrtrError::Empty)
        );
        assert_eq!(
            parse_input_required(
                r#"{"resultType":"input_required","inputRequests":{"p":{"method":"ping"}}}"#
            ),
            Err(MrtrError::NotAnInputMethod("ping".into()))
        );
        // Load shedding: requestState only is valid (schema.ts example).
        let only_state =
            parse_input_required(r#"{"resultType":"input_required","requestState":"retry-later"}"#)
                .unwrap();
        assert!(only_state.requests.is_empty());
    }

    #[test]
    fn input_requests_become_2025_requests() {
        let ir = parse_input_required(SPEC_RESULT).unwrap();
        let elicit = ir.requests[0].legacy_request("\"mcp-bridge-7\"");
        let v: Value = serde_json::from_str(&elicit).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], "mcp-bridge-7");
        assert_eq!(v["method"], "elicitation/create");
        assert_eq!(v["params"]["mode"], "form");
        assert!(v["params"].get("elicitationId").is_none());
        // Params pass byte for byte.
        assert!(elicit.contains(ir.requests[0].params.as_deref().unwrap()));

        let roots = InputRequest {
            key: "r".into(),
            method: "roots/list".into(),
            params: None,
        };
        assert_eq!(
            roots.legacy_request("8"),
            r#"{"jsonrpc":"2.0","id":8,"method":"roots/list"}"#
        );
        let url = InputRequest {
            key: "login".into(),
            method: "elicitation/create".into(),
            params: Some(
                r#"{"mode":"url","message":"Sign in","url":"https://example.com/auth"}"#.into(),
            ),
        };
        assert_eq!(
            url.legacy_request("\"mcp-bridge-9\""),
            r#"{"jsonrpc":"2.0","id":"mcp-bridge-9","method":"elicitation/create","params":{"mode":"url","message":"Sign in","url":"https://example.com/auth","elicitationId":"mcp-bridge-9"}}"#
        );
    }

    #[test]
    fn answers_become_the_retry() {
        let ir = parse_input_required(SPEC_RESULT).unwrap();
        let mut answers = InputResponses::new();
        answers
            .insert_response(
                "github_login",
                br#"{"jsonrpc":"2.0","id":"mcp-bridge-7","result":{"action":"accept","content":{"name":"octocat"}}}"#,
            )
            .unwrap();
        assert!(!answers.answers_all(&ir));
        answers
            .insert_response(
                "capital_of_france",
                br#"{"jsonrpc":"2.0","id":"mcp-bridge-8","result":{"role":"assistant","content":{"type":"text","text":"The capital of France is Paris."},"model":"claude-3-sonnet-20240307","stopReason":"endTurn"}}"#,
            )
            .unwrap();
        assert!(answers.answers_all(&ir));
        let original = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"env":"prod"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{},"sampling":{}}}}}"#;
        let retry = retry_request(
            original,
            "\"mcp-bridge-10\"",
            &answers,
            ir.request_state.as_deref(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(retry).unwrap(),
            concat!(
                r#"{"jsonrpc":"2.0","id":"mcp-bridge-10","method":"tools/call","params":{"name":"deploy","arguments":{"env":"prod"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{},"sampling":{}}},"#,
                r#""inputResponses":{"github_login":{"action":"accept","content":{"name":"octocat"}},"capital_of_france":{"role":"assistant","content":{"type":"text","text":"The capital of France is Paris."},"model":"claude-3-sonnet-20240307","stopReason":"endTurn"}},"#,
                r#""requestState":"AEAD-protected blob"}}"#
            )
        );
    }

    #[test]
    fn a_later_round_replaces_answers_and_drops_a_stale_state() {
        let earlier = br#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","inputResponses":{"a":{}},"requestState":"old"}}"#;
        let retry = retry_request(earlier, "3", &InputResponses::new(), None).unwrap();
        assert_eq!(
            String::from_utf8(retry).unwrap(),
            r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}"#
        );
    }

    #[test]
    fn an_error_answer_is_handed_back() {
        let mut answers = InputResponses::new();
        let err = answers
            .insert_response(
                "k",
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"User rejected sampling request"}}"#,
            )
            .unwrap_err();
        assert_eq!(
            err.error,
            r#"{"code":-1,"message":"User rejected sampling request"}"#
        );
        assert!(answers.is_empty());
    }

    #[test]
    fn legacy_server_requests_become_an_input_required_result_and_back() {
        // A 2025 server (server-everything style) asking its client.
        let mut b = InputRequiredBuilder::new();
        let k1 = b
            .push_legacy_request(br#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"maxTokens":100}}"#)
            .unwrap();
        let k2 = b
            .push_legacy_request(br#"{"jsonrpc":"2.0","id":"e-1","method":"roots/list"}"#)
            .unwrap();
        assert_eq!((k1.as_str(), k2.as_str()), ("0", "\"e-1\""));
        assert_eq!(
            b.push_legacy_request(br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#),
            Err(MrtrError::NotAnInputMethod("ping".into()))
        );
        let result = b.build(Some("bridge:abc123")).unwrap();
        assert_eq!(
            result,
            r#"{"resultType":"input_required","inputRequests":{"0":{"method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"maxTokens":100}},"\"e-1\"":{"method":"roots/list"}},"requestState":"bridge:abc123"}"#
        );
        // What we build, we parse.
        let back = parse_input_required(&result).unwrap();
        assert_eq!(back.requests.len(), 2);
        assert_eq!(back.requests[1].key, "\"e-1\"");

        // The modern client's retry answers both.
        let retry = br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"sampleLLM","arguments":{},"inputResponses":{"\"e-1\"":{"roots":[{"uri":"file:///w","name":"w"}]},"0":{"role":"assistant","content":{"type":"text","text":"hello"},"model":"m"}},"requestState":"bridge:abc123","_meta":{}}}"#;
        let r = read_retry(retry).unwrap();
        assert_eq!(r.request_state.as_deref(), Some("bridge:abc123"));
        assert_eq!(r.input_responses[0].0, "\"e-1\"");
        assert_eq!(
            legacy_response(&r.input_responses[0].0, &r.input_responses[0].1).unwrap(),
            r#"{"jsonrpc":"2.0","id":"e-1","result":{"roots":[{"uri":"file:///w","name":"w"}]}}"#
        );
        assert_eq!(
            legacy_response(&r.input_responses[1].0, &r.input_responses[1].1).unwrap(),
            r#"{"jsonrpc":"2.0","id":0,"result":{"role":"assistant","content":{"type":"text","text":"hello"},"model":"m"}}"#
        );
        assert_eq!(legacy_response("github_login", "{}"), None);
        assert_eq!(
            InputRequiredBuilder::new().build(None),
            Err(MrtrError::Empty)
        );
        let v: Value =
            serde_json::from_str(&InputRequiredBuilder::new().build(Some("s")).unwrap()).unwrap();
        assert_eq!(v, json!({"resultType":"input_required","requestState":"s"}));
    }
}
