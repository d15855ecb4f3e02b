//! The sessionless (2026-07-28) front of `/mcp`, end to end: a raw modern client (awc, the
//! era's headers and `_meta` envelope) through an in-process bridge to the test kit's fake
//! servers. Bad input gets the bodies that keep a modern client modern; `server/discover` is
//! answered in front of sessionful servers; a server's sampling request mid-call becomes
//! `input_required` and a sealed `requestState` that only one genuine, timely retry of the
//! same credential redeems; concurrent clients each get exactly their own notifications; and
//! a client closing its stream cancels the call upstream.

mod support;

use futures_util::future::join_all;
use futures_util::StreamExt;
use support::*;

const V: &str = "2026-07-28";
const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The required envelope (and clientInfo), plus `extra` keys (e.g. `logLevel`).
fn meta(extra: Value) -> Value {
    let mut m = json!({
        PROTOCOL_VERSION: V,
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    m
}

/// A request whose params get the envelope unless they carry a `_meta` already.
fn request(id: Value, method: &str, mut params: Value) -> String {
    if params.get("_meta").is_none() {
        params["_meta"] = meta(json!({}));
    }
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// A modern client: the era's headers on every POST, optionally a bearer token.
struct Modern {
    url: String,
    bearer: Option<String>,
}

impl Modern {
    fn new(bridge: &Bridge) -> Modern {
        Modern {
            url: bridge.url("/mcp"),
            bearer: None,
        }
    }

    fn with_token(bridge: &Bridge, token: &str) -> Modern {
        Modern {
            url: bridge.url("/mcp"),
            bearer: Some(format!("Bearer {token}")),
        }
    }

    /// POST `body` with `MCP-Protocol-Version: version` (none when `None`), `Mcp-Method`
    /// and `Mcp-Name` (when given).
    async fn post_as(
        &self,
        version: Option<&str>,
        method: &str,
        name: Option<&str>,
        body: &str,
    ) -> Raw {
        let mut headers = vec![JSON, ACCEPT_BOTH, ("mcp-method", method)];
        if let Some(v) = version {
            headers.push(("mcp-protocol-version", v));
        }
        if let Some(n) = name {
            headers.push(("mcp-name", n));
        }
        if let Some(b) = &self.bearer {
            headers.push(("authorization", b));
        }
        raw("POST", &self.url, &headers, body).await
    }

    async fn post(&self, method: &str, name: Option<&str>, body: &str) -> Raw {
        self.post_as(Some(V), method, name, body).await
    }

    async fn call_tool(&self, id: Value, tool: &str, params: Value) -> Raw {
        let mut params = params;
        params["name"] = json!(tool);
        self.post("tools/call", Some(tool), &request(id, "tools/call", params))
            .await
    }
}

/// Every JSON-RPC message of an answer, whether one JSON body or an SSE stream.
fn messages(r: &Raw) -> Vec<Value> {
    let sse = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse {
        return vec![r.json()];
    }
    r.body
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).expect("JSON data"))
        })
        .collect()
}

/// The response (result or error) among an answer's messages.
fn answer(r: &Raw) -> Value {
    let all = messages(r);
    let mut responses = all
        .iter()
        .filter(|m| m.get("result").is_some() || m.get("error").is_some());
    let first = responses
        .next()
        .unwrap_or_else(|| panic!("no response in HTTP {} {:?}", r.status, r.body))
        .clone();
    assert!(responses.next().is_none(), "one response: {:?}", r.body);
    first
}

/// The notifications of an answer, in order.
fn notifications(r: &Raw) -> Vec<Value> {
    messages(r)
        .into_iter()
        .filter(|m| m.get("id").is_none())
        .collect()
}

/// HTTP status and JSON-RPC error code of a refusal.
fn refusal(r: &Raw) -> (u16, i64) {
    let code = r.json()["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("HTTP {} without a JSON-RPC error: {:?}", r.status, r.body));
    (r.status, code)
}

#[actix_rt::test]
async fn bad_input_gets_the_answers_that_keep_a_modern_client_modern() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let list = request(json!(1), "tools/list", json!({}));

    let no_header = c.post_as(None, "tools/list", None, &list).await;
    assert_eq!(refusal(&no_header), (400, -32020), "header missing");
    assert_eq!(no_header.json()["id"], json!(1));

    let mismatch = c
        .post_as(Some("2027-01-01"), "tools/list", None, &list)
        .await;
    assert_eq!(refusal(&mismatch), (400, -32020), "header ≠ body version");

    let future = request(
        json!(2),
        "tools/list",
        json!({"_meta": meta(json!({PROTOCOL_VERSION: "2027-01-01"}))}),
    );
    let unsupported = c
        .post_as(Some("2027-01-01"), "tools/list", None, &future)
        .await;
    assert_eq!(refusal(&unsupported), (400, -32022), "unsupported version");
    assert_eq!(
        unsupported.json()["error"]["data"]["supported"],
        json!([V]),
        "{}",
        unsupported.body
    );

    let bare = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}).to_string();
    let no_meta = c.post("tools/list", None, &bare).await;
    assert_eq!(refusal(&no_meta), (400, -32602), "missing _meta");
    assert_eq!(no_meta.json()["id"], json!(3));

    let no_method = c.post_as(Some(V), "", None, &list).await;
    let no_method_headers: Vec<_> = vec![JSON, ACCEPT_BOTH, ("mcp-protocol-version", V)];
    let no_method_header = raw("POST", &c.url, &no_method_headers, &list).await;
    assert_eq!(
        refusal(&no_method_header),
        (400, -32020),
        "Mcp-Method missing"
    );
    assert_eq!(refusal(&no_method), (400, -32020), "Mcp-Method empty");
    let echo = request(
        json!(6),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let wrong_name = c.post("tools/call", Some("big"), &echo).await;
    assert_eq!(refusal(&wrong_name), (400, -32020), "Mcp-Name ≠ body name");
    let no_name = c.post("tools/call", None, &echo).await;
    assert_eq!(refusal(&no_name), (400, -32020), "Mcp-Name missing");

    let unknown = c
        .post("foo/bar", None, &request(json!(4), "foo/bar", json!({})))
        .await;
    assert_eq!(refusal(&unknown), (404, -32601), "unknown method");

    let init = request(
        json!(5),
        "initialize",
        json!({"protocolVersion": V, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let initialize = c.post("initialize", None, &init).await;
    assert_eq!(refusal(&initialize), (404, -32601), "initialize, modern");
    assert_eq!(initialize.json()["id"], json!(5));

    for method in ["GET", "DELETE"] {
        let r = raw(
            method,
            &c.url,
            &[("accept", "text/event-stream"), ("mcp-protocol-version", V)],
            "",
        )
        .await;
        assert_eq!(r.status, 405, "{method} from a modern client");
    }
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !matches!(r.rpc_method().as_deref(), Some("tools/list" | "tools/call"))),
        "no refused request reached the server"
    );
}

#[actix_rt::test]
async fn server_discover_is_answered_in_front_of_sessionful_servers() {
    for opts in [ServerOptions::legacy(), ServerOptions::streamable()] {
        let kind = format!("{:?}", opts.transport);
        let server = FakeServer::start(opts);
        let b = bridge(&server.url(), &[]);
        let r = Modern::new(&b)
            .post(
                "server/discover",
                None,
                &request(json!("d"), "server/discover", json!({})),
            )
            .await;
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        let a = answer(&r);
        assert_eq!(a["id"], json!("d"), "{kind}");
        let result = &a["result"];
        assert_eq!(result["resultType"], "complete", "{kind}: {result}");
        assert_eq!(result["supportedVersions"], json!([V]), "{kind}");
        assert_eq!(
            result["capabilities"],
            json!({
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "logging": {},
            }),
            "{kind}: the server's own capabilities"
        );
        assert!(
            result["_meta"][SERVER_INFO]["name"].is_string(),
            "{kind}: serverInfo in _meta: {result}"
        );
    }
}

/// The sampling answer the test's client gives.
fn sampled() -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": "sampled by the client"},
           "model": "test-model"})
}

fn sample_params() -> Value {
    json!({"arguments": {"prompt": "write a haiku"}})
}

/// Calls `sample` with id `id`: the `inputRequests` key of the sampling request and the
/// `requestState` of the `input_required` answer.
async fn ask_sampling(c: &Modern, id: Value) -> (String, String) {
    let r = c.call_tool(id.clone(), "sample", sample_params()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = answer(&r);
    assert_eq!(a["id"], id);
    let result = &a["result"];
    assert_eq!(result["resultType"], "input_required", "{result}");
    let requests = result["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("inputRequests: {result}"));
    assert_eq!(requests.len(), 1, "{result}");
    let (key, req) = requests.iter().next().unwrap();
    assert_eq!(req["method"], "sampling/createMessage", "{result}");
    assert_eq!(
        req["params"]["messages"][0]["content"]["text"],
        "write a haiku"
    );
    let state = result["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("requestState: {result}"))
        .to_owned();
    (key.clone(), state)
}

async fn retry(c: &Modern, id: Value, key: &str, state: &str) -> Raw {
    let mut params = sample_params();
    params["inputResponses"] = json!({ key: sampled() });
    params["requestState"] = json!(state);
    c.call_tool(id, "sample", params).await
}

/// The retry completed the original call: the tool's result, under the retry's id.
fn assert_completed(r: &Raw, id: Value) {
    assert_eq!(r.status, 200, "{}", r.body);
    let a = answer(r);
    assert_eq!(a["id"], id, "{}", r.body);
    assert_eq!(a["result"]["resultType"], "complete", "{}", r.body);
    assert_eq!(
        a["result"]["content"][0]["text"], "sampled by the client",
        "{}",
        r.body
    );
}

fn assert_refused_state(r: &Raw, what: &str) {
    assert_eq!(refusal(r), (400, -32602), "{what}: {}", r.body);
}

#[actix_rt::test]
async fn sampling_mid_call_becomes_input_required_and_the_retry_completes_the_call() {
    for opts in [ServerOptions::legacy(), ServerOptions::streamable()] {
        let server = FakeServer::start(opts);
        let b = bridge(&server.url(), &[]);
        let c = Modern::new(&b);
        let (key, state) = ask_sampling(&c, json!(1)).await;
        assert_completed(&retry(&c, json!(2), &key, &state).await, json!(2));
    }
}

/// One hex digit of the seal changed.
fn forge(state: &str) -> String {
    let mut s = state.to_owned();
    let last = s.pop().expect("a non-empty state");
    s.push(if last == '0' { '1' } else { '0' });
    s
}

#[actix_rt::test]
async fn a_forged_request_state_is_refused_and_the_genuine_one_still_works() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    assert_refused_state(&retry(&c, json!(2), &key, &forge(&state)).await, "forged");
    assert_completed(&retry(&c, json!(3), &key, &state).await, json!(3));
}

/// A retry that leaves an input request unanswered is refused at once (the server would wait
/// for that answer until its own timeout); the call stays waiting, and a complete retry with
/// the same state finishes it.
#[actix_rt::test]
async fn a_retry_missing_an_answer_is_refused_and_the_call_still_waits() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    let wrong = retry(&c, json!(2), "\"not-asked\"", &state).await;
    assert_eq!(refusal(&wrong), (400, -32602), "{}", wrong.body);
    assert!(wrong.body.contains("missing"), "{}", wrong.body);
    assert_completed(&retry(&c, json!(3), &key, &state).await, json!(3));
}

#[actix_rt::test]
async fn a_replayed_request_state_is_refused() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    assert_completed(&retry(&c, json!(2), &key, &state).await, json!(2));
    assert_refused_state(&retry(&c, json!(3), &key, &state).await, "replayed");
}

#[actix_rt::test]
async fn a_request_state_presented_with_another_credential_is_refused() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--auth-token", "alpha,beta"]);
    let alpha = Modern::with_token(&b, "alpha");
    let beta = Modern::with_token(&b, "beta");
    let (key, state) = ask_sampling(&alpha, json!(1)).await;
    assert_refused_state(
        &retry(&beta, json!(2), &key, &state).await,
        "another credential",
    );
    assert_completed(&retry(&alpha, json!(3), &key, &state).await, json!(3));
}

#[actix_rt::test]
async fn a_retry_after_the_idle_deadline_is_refused() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--sessionless-idle", "1s"]);
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    assert_eq!(server.session_count(), 1, "the call waits in its session");
    // The abandoned call's upstream session is closed once the deadline passes.
    assert!(
        server.wait_until(|s| s.session_count() == 0, WAIT).await,
        "the waiting call is closed after --sessionless-idle"
    );
    assert_refused_state(&retry(&c, json!(2), &key, &state).await, "expired");
}

#[actix_rt::test]
async fn sixteen_concurrent_clients_each_get_exactly_their_own_notifications() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    concurrent_clients_get_their_own_notifications(&b, 16).await;
}

/// `clients` modern clients at once, all with id 1, each calling `process_items` with
/// items, a progress token and `logLevel` of its own: each answer holds exactly its own.
async fn concurrent_clients_get_their_own_notifications(b: &Bridge, clients: usize) {
    const ITEMS: usize = 5;
    let calls = (0..clients).map(|i| {
        let c = Modern::new(b);
        async move {
            let items: Vec<String> = (1..=ITEMS).map(|k| format!("c{i}-{k}")).collect();
            let params = json!({
                "arguments": {"items": items, "delay_ms": 20},
                // Every client uses id 1: only the bridge's attribution tells them apart.
                "_meta": meta(json!({
                    "progressToken": format!("tok-{i}"),
                    "io.modelcontextprotocol/logLevel": "debug",
                })),
            });
            c.call_tool(json!(1), "process_items", params).await
        }
    });
    let answers = join_all(calls).await;
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(r.status, 200, "client {i}: {}", r.body);
        let a = answer(r);
        assert_eq!(a["id"], json!(1), "client {i}");
        assert_eq!(
            a["result"]["content"][0]["text"],
            format!("processed {ITEMS} items"),
            "client {i}: {}",
            r.body
        );
        let notes = notifications(r);
        let progress: Vec<(Value, Value)> = notes
            .iter()
            .filter(|n| n["method"] == "notifications/progress")
            .map(|n| {
                (
                    n["params"]["progressToken"].clone(),
                    n["params"]["progress"].clone(),
                )
            })
            .collect();
        let expected: Vec<(Value, Value)> = (1..=ITEMS)
            .map(|k| (json!(format!("tok-{i}")), json!(k)))
            .collect();
        assert_eq!(
            progress, expected,
            "client {i}: its own progress, all of it"
        );
        let logs: Vec<Value> = notes
            .iter()
            .filter(|n| n["method"] == "notifications/message")
            .map(|n| n["params"]["data"].clone())
            .collect();
        let expected: Vec<Value> = (1..=ITEMS)
            .map(|k| json!(format!("processed c{i}-{k}")))
            .collect();
        assert_eq!(logs, expected, "client {i}: its own log lines, all of them");
        assert_eq!(
            notes.len(),
            2 * ITEMS,
            "client {i}: nothing else: {notes:?}"
        );
    }
}

#[actix_rt::test]
async fn a_client_closing_its_stream_cancels_the_call_upstream() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let params = json!({
        "name": "progress",
        "arguments": {"steps": 200, "delay_ms": 50},
        "_meta": meta(json!({"progressToken": "cut"})),
    });
    let body = request(json!(7), "tools/call", params);
    {
        let client = awc::Client::builder().disable_timeout().finish();
        let mut resp = client
            .post(&c.url)
            .insert_header(JSON)
            .insert_header(ACCEPT_BOTH)
            .insert_header(("mcp-protocol-version", V))
            .insert_header(("mcp-method", "tools/call"))
            .insert_header(("mcp-name", "progress"))
            .send_body(body)
            .await
            .expect("request sent");
        assert_eq!(resp.status().as_u16(), 200);
        // The call is running upstream: its first progress frame arrived.
        let first = tokio::time::timeout(WAIT, resp.next())
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("readable");
        assert!(
            String::from_utf8_lossy(&first).contains("notifications/progress"),
            "{first:?}"
        );
        assert_eq!(server.session_count(), 1);
        // Dropped here: the client closes its response stream mid-call.
    }
    let cancelled = |s: &FakeServer| {
        s.notifications().iter().any(|n| {
            n["method"] == "notifications/cancelled" && n["params"]["requestId"] == json!(7)
        })
    };
    assert!(
        server.wait_until(cancelled, WAIT).await,
        "the server got notifications/cancelled for request 7: {:?}",
        server.notifications()
    );
    assert!(
        server.wait_until(|s| s.session_count() == 0, WAIT).await,
        "the session that carried the cut call is closed, not lent again"
    );
    // The next request is served (by a session of its own).
    let r = c
        .call_tool(json!(8), "echo", json!({"arguments": {"text": "after"}}))
        .await;
    assert_eq!(
        answer(&r)["result"]["content"][0]["text"],
        "after",
        "{}",
        r.body
    );
}

#[actix_rt::test]
async fn roots_list_mid_call_becomes_input_required_too() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    let r = c.call_tool(json!(1), "roots", json!({})).await;
    let result = answer(&r)["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    let (key, req) = result["inputRequests"]
        .as_object()
        .and_then(|m| m.iter().next())
        .unwrap_or_else(|| panic!("inputRequests: {result}"));
    assert_eq!(req["method"], "roots/list", "{result}");
    let roots = json!({"roots": [{"uri": "file:///work", "name": "work"}]});
    let params =
        json!({"inputResponses": { key.as_str(): roots }, "requestState": result["requestState"]});
    let r = c.call_tool(json!(2), "roots", params).await;
    let a = answer(&r);
    assert_eq!(a["id"], json!(2), "{}", r.body);
    let text = a["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(text).ok(),
        Some(roots["roots"].clone()),
        "{}",
        r.body
    );
}

/// Log lines reach a request only at or above its `logLevel`, none without one; progress
/// is not filtered.
#[actix_rt::test]
async fn log_messages_are_filtered_by_each_requests_log_level() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let c = Modern::new(&b);
    // The fake server logs each step at `info`.
    for (level, logs) in [
        (None, 0),
        (Some("warning"), 0),
        (Some("info"), 2),
        (Some("debug"), 2),
    ] {
        let mut extra = json!({"progressToken": "p"});
        if let Some(l) = level {
            extra["io.modelcontextprotocol/logLevel"] = json!(l);
        }
        let params = json!({"arguments": {"steps": 2}, "_meta": meta(extra)});
        let r = c.call_tool(json!(1), "progress", params).await;
        let notes = notifications(&r);
        let count = |m: &str| notes.iter().filter(|n| n["method"] == m).count();
        assert_eq!(
            count("notifications/message"),
            logs,
            "logLevel {level:?}: {notes:?}"
        );
        assert_eq!(
            count("notifications/progress"),
            2,
            "logLevel {level:?}: {notes:?}"
        );
        assert_eq!(answer(&r)["result"]["content"][0]["text"], "done 2 steps");
    }
}

#[actix_rt::test]
async fn kept_upstream_sessions_are_never_shared_between_credentials() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--auth-token", "alpha,beta"]);
    let discover = request(json!(1), "server/discover", json!({}));
    for token in ["alpha", "beta", "alpha", "beta"] {
        let r = Modern::with_token(&b, token)
            .post("server/discover", None, &discover)
            .await;
        assert_eq!(r.status, 200, "{token}: {}", r.body);
    }
    assert_eq!(
        server.session_count(),
        2,
        "one kept session per credential, each reused"
    );
}

/// `--sessionless-max`: a request finding every kept session lent (here: one call waiting
/// for its retry) gets 503; once the call completes, the session serves again.
#[actix_rt::test]
async fn a_request_finding_every_kept_session_lent_gets_503() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--sessionless-max", "1"]);
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    let echo = json!({"arguments": {"text": "hi"}});
    let busy = c.call_tool(json!(2), "echo", echo.clone()).await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(
        busy.body.contains(r#""id":"#) && !busy.body.contains(r#""id":null"#),
        "the refusal names the request: {}",
        busy.body
    );
    assert!(
        busy.headers.contains_key("retry-after"),
        "{:?}",
        busy.headers
    );
    assert_completed(&retry(&c, json!(3), &key, &state).await, json!(3));
    let r = c.call_tool(json!(4), "echo", echo).await;
    assert_eq!(
        answer(&r)["result"]["content"][0]["text"],
        "hi",
        "{}",
        r.body
    );
}

/// At `--sessionless-max`, an idle kept session of another client declaration is not "lent":
/// a new client must be served (README: only "a request finding all lent gets 503").
#[actix_rt::test]
async fn an_idle_session_of_another_declaration_does_not_block_a_new_client() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--sessionless-max", "1"]);
    let c = Modern::new(&b);
    for name in ["client-a", "client-b"] {
        let info = json!({"io.modelcontextprotocol/clientInfo": {"name": name, "version": "1"}});
        let body = request(json!(1), "server/discover", json!({"_meta": meta(info)}));
        let r = c.post("server/discover", None, &body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
}

/// In front of a 2026-07-28 upstream too: discover and a tool call with its notifications.
#[actix_rt::test]
async fn a_modern_client_is_served_in_front_of_a_modern_upstream() {
    let server = FakeServer::start(ServerOptions::modern());
    let b = bridge(&server.url(), &["--upstream-transport", "streamable-2026"]);
    let c = Modern::new(&b);
    let r = c
        .post(
            "server/discover",
            None,
            &request(json!(1), "server/discover", json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        answer(&r)["result"]["supportedVersions"],
        json!([V]),
        "{}",
        r.body
    );
    let params = json!({
        "arguments": {"steps": 2},
        "_meta": meta(json!({"progressToken": "m", "io.modelcontextprotocol/logLevel": "debug"})),
    });
    let r = c.call_tool(json!(2), "progress", params).await;
    let a = answer(&r);
    assert_eq!(a["id"], json!(2), "{}", r.body);
    assert_eq!(
        a["result"]["content"][0]["text"], "done 2 steps",
        "{}",
        r.body
    );
    let progress = notifications(&r)
        .iter()
        .filter(|n| n["method"] == "notifications/progress" && n["params"]["progressToken"] == "m")
        .count();
    assert_eq!(progress, 2, "{}", r.body);
}

/// The test kit's stdio MCP server (examples/stdio_server.rs), built on demand.
fn stdio_server() -> String {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mcp-bridge"));
    let path = bin.with_file_name("examples").join("stdio_server");
    BUILD.call_once(|| {
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
            let ok = std::process::Command::new(cargo)
                .args(["build", "--example", "stdio_server"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(ok.success(), "cargo build --example stdio_server");
        }
    });
    path.to_string_lossy().into_owned()
}

/// A stdio server names no request in its notifications either: attribution and MRTR hold.
#[actix_rt::test]
async fn in_front_of_a_stdio_server_attribution_and_mrtr_hold() {
    init_logs();
    let command = stdio_server();
    let args = [
        "mcp-bridge",
        "--upstream-command",
        &command,
        "--listen",
        "127.0.0.1:0",
        "--upstream-timeout",
        "5s",
        "--upstream-stop-grace",
        "300ms",
    ];
    let b = mcp_bridge::spawn(mcp_bridge::Config::from_args(args).expect("valid config"))
        .expect("starts");
    concurrent_clients_get_their_own_notifications(&b, 4).await;
    let c = Modern::new(&b);
    let (key, state) = ask_sampling(&c, json!(1)).await;
    assert_completed(&retry(&c, json!(2), &key, &state).await, json!(2));
}
