//! The 2026-07-28 upstream adapter against the test kit's modern fake server, under faults:
//! a server of another revision, a server that never stops asking for input, a listen
//! stream that ends, a header-mismatch refusal — and what the adapter must do on every
//! request (answer the removed methods itself, stamp `_meta` and the era's headers).
//! Each test asserts what the client sees and what reached the server.

mod support;

use std::time::Instant;

use mcp_testkit::{Exchange, RecordedRequest};
use support::*;

const MODERN: &[&str] = &["--upstream-transport", "streamable-2026"];
/// A revision the bridge does not speak.
const FUTURE: &[&str] = &["2027-01-01"];

/// The JSON-RPC error a client got, whether it came as an HTTP refusal or in an answer.
fn rpc_error(outcome: mcp_testkit::Result<Exchange>) -> Value {
    match outcome {
        Ok(ex) => ex
            .error()
            .cloned()
            .unwrap_or_else(|| panic!("an error, got {}", ex.response)),
        Err(mcp_testkit::Error::Status { status, body }) => {
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("HTTP {status} without a JSON-RPC body: {body:?}"));
            v.get("error")
                .cloned()
                .unwrap_or_else(|| panic!("HTTP {status} body is no error: {body}"))
        }
        Err(e) => panic!("no answer: {e}"),
    }
}

fn posts_of(server: &FakeServer, method: &str) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.rpc_method().as_deref() == Some(method))
        .collect()
}

fn init_params() -> Value {
    json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}, "roots": {}},
           "clientInfo": {"name": "t", "version": "1"}})
}

/// A server of another revision (everything refused with -32022, or a discover listing only
/// that revision): the client's initialize fails at once with an error naming the cause; the
/// bridge neither hangs nor probes in a loop.
#[actix_rt::test]
async fn a_server_of_another_revision_fails_initialize_promptly() {
    let servers = [
        (
            "refuses with -32022",
            ServerOptions::modern().modern_versions(FUTURE),
        ),
        (
            "discover lists only 2027-01-01",
            ServerOptions::modern().discover_versions(Some(FUTURE)),
        ),
    ];
    for (what, opts) in servers {
        for mode in [MODERN, &["--upstream-transport", "auto"][..]] {
            let server = FakeServer::start(opts.clone());
            let bridge = bridge(&server.url(), mode);
            let started = Instant::now();

            let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
            client.set_timeout(WAIT);
            let error = rpc_error(client.request("initialize", init_params()).await);
            assert!(
                error.to_string().contains("2027-01-01"),
                "{what} {mode:?}: the error names what the server supports: {error}"
            );

            let legacy = LegacyClient::connect(&bridge.url("/sse"), &[])
                .await
                .unwrap();
            legacy.set_timeout(WAIT);
            let error = rpc_error(legacy.request("initialize", init_params()).await);
            assert!(
                error.to_string().contains("2027-01-01"),
                "{what} {mode:?}: {error}"
            );

            assert!(
                started.elapsed() < WAIT / 2,
                "{what} {mode:?}: answered promptly, not after a timeout"
            );
            // Two clients, each at most one try per transport the bridge knows: never a loop.
            let posts = server.requests().len();
            assert!(posts <= 6, "{what} {mode:?}: {posts} upstream requests");
        }
    }
}

/// `input_required` on every round: the call ends in an error after a bounded number of
/// rounds, within seconds.
#[actix_rt::test]
async fn input_required_forever_ends_in_an_error() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();

    let started = Instant::now();
    let outcome = client
        .request(
            "tools/call",
            json!({"name": "ask_forever", "arguments": {}}),
        )
        .await;
    let rounds = posts_of(&server, "tools/call").len();
    assert!(
        rounds <= 10,
        "at most 10 rounds upstream, got {rounds} (outcome {outcome:?})"
    );
    let error = rpc_error(outcome);
    assert!(error["message"].is_string(), "{error}");
    assert!(started.elapsed() < WAIT / 2, "an error within seconds");
}

/// Each listen stream ends after one notification: the bridge opens another, and a later
/// list_changed still reaches the client (Streamable GET stream, legacy SSE stream).
#[actix_rt::test]
async fn a_dropped_listen_stream_is_reopened() {
    const CHANGED: &str = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    let server = FakeServer::start(ServerOptions::modern().listen_drop_after(Some(1)));
    let bridge = bridge(&server.url(), MODERN);

    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    let listens = |n: usize| {
        move |s: &FakeServer| posts_of(s, "subscriptions/listen").len() >= n && s.get_streams() == 1
    };
    for round in 1..=2 {
        assert!(
            server.wait_until(listens(round), WAIT).await,
            "listen #{round}"
        );
        assert_eq!(server.send_unsolicited(CHANGED), 1);
        let ev = get
            .next_event(WAIT)
            .await
            .expect("list_changed on the GET stream");
        let msg: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            msg["method"], "notifications/tools/list_changed",
            "round {round}"
        );
    }
    drop(get);
    drop(client);

    let server = FakeServer::start(ServerOptions::modern().listen_drop_after(Some(1)));
    let bridge = support::bridge(&server.url(), MODERN);
    let legacy = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    legacy.initialize("2025-06-18").await.unwrap();
    for round in 1..=2 {
        assert!(
            server.wait_until(listens(round), WAIT).await,
            "listen #{round}"
        );
        assert_eq!(server.send_unsolicited(CHANGED), 1);
        let data = legacy
            .next_message(WAIT)
            .await
            .expect("list_changed on the SSE stream");
        let msg: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            msg["method"], "notifications/tools/list_changed",
            "round {round}"
        );
    }
}

/// A server that refuses every tools/call with -32020: the call fails with that error, and
/// the bridge sent it exactly once.
#[actix_rt::test]
async fn a_header_mismatch_fails_the_call_once() {
    let server = FakeServer::start(ServerOptions::modern().header_mismatch_on_tool_calls(true));
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();

    let error = rpc_error(
        client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "hi"}}),
            )
            .await,
    );
    assert!(
        error.to_string().contains("32020") || error.to_string().contains("eader mismatch"),
        "the server's verdict reaches the client: {error}"
    );
    // A later request is served: by then any retry of the call would have been sent.
    let ex = client.request("tools/list", json!({})).await.unwrap();
    assert!(ex.result().is_some(), "{}", ex.response);
    assert_eq!(posts_of(&server, "tools/call").len(), 1, "never a loop");
}

/// The methods 2026-07-28 removed are answered by the bridge; the log level rides on later
/// requests; `Mcp-Name` uses the Base64 sentinel for a non-ASCII name; an `x-mcp-header`
/// parameter travels as `Mcp-Param-*` once tools/list declared it.
#[actix_rt::test]
async fn removed_methods_stay_local_and_requests_are_stamped() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();

    let pong = client.request("ping", json!({})).await.unwrap();
    assert_eq!(pong.result(), Some(&json!({})));
    let set = client
        .request("logging/setLevel", json!({"level": "error"}))
        .await
        .unwrap();
    assert!(set.result().is_some(), "{}", set.response);
    let list = client.request("tools/list", json!({})).await.unwrap();
    let names: Vec<&str> = list.result().unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"écho") && names.contains(&"regional_echo"),
        "{names:?}"
    );

    let echo = client
        .request(
            "tools/call",
            json!({"name": "écho", "arguments": {"text": "salut"}}),
        )
        .await
        .unwrap();
    assert_eq!(echo.text(), Some("salut"), "{}", echo.response);
    let regional = client
        .request(
            "tools/call",
            json!({"name": "regional_echo", "arguments": {"region": "eu-west", "text": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        regional.text(),
        Some("eu-west: hi"),
        "{}",
        regional.response
    );

    for r in server.requests() {
        let m = r.rpc_method().unwrap_or_default();
        assert!(
            ![
                "ping",
                "notifications/initialized",
                "logging/setLevel",
                "initialize"
            ]
            .contains(&m.as_str()),
            "{m} reached the server"
        );
    }
    assert!(
        server.notifications().is_empty(),
        "{:?}",
        server.notifications()
    );

    let list_sent = &posts_of(&server, "tools/list")[0];
    let meta = &list_sent.json().unwrap()["params"]["_meta"];
    assert_eq!(meta["io.modelcontextprotocol/logLevel"], "error", "{meta}");
    assert_eq!(list_sent.header("mcp-method"), Some("tools/list"));
    assert_eq!(list_sent.header("mcp-protocol-version"), Some("2026-07-28"));

    let zurich = client
        .request(
            "tools/call",
            json!({"name": "regional_echo", "arguments": {"region": "Zürich", "text": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(zurich.text(), Some("Zürich: hi"), "{}", zurich.response);

    let calls = posts_of(&server, "tools/call");
    assert_eq!(calls[0].header("mcp-name"), Some("=?base64?w6ljaG8=?="));
    assert_eq!(calls[1].header("mcp-name"), Some("regional_echo"));
    assert_eq!(calls[1].header("mcp-param-region"), Some("eu-west"));
    assert_eq!(
        calls[2].header("mcp-param-region"),
        Some("=?base64?WsO8cmljaA==?=")
    );
}

/// A client that calls a tool straight away (it knows the tools from an earlier session):
/// the tool's `x-mcp-header` parameter must still travel as `Mcp-Param-*`, or the server
/// refuses the call with -32020.
#[actix_rt::test]
async fn a_header_parameter_travels_without_a_prior_tools_list() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "regional_echo", "arguments": {"region": "eu-west", "text": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("eu-west: hi"), "{}", ex.response);
}

/// Logs flow as from a 2025 server until the client sets a level; after `logging/setLevel`
/// "error" the server sends only what that level lets through (here: no info messages).
#[actix_rt::test]
async fn log_messages_follow_the_level_the_client_set() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();

    let before = client
        .request("tools/call", progress_call(2, json!("t1")))
        .await
        .unwrap();
    assert_eq!(
        notification_trace(&before.notifications),
        ["log:step 1", "progress:1/2", "log:step 2", "progress:2/2"]
    );
    client
        .request("logging/setLevel", json!({"level": "error"}))
        .await
        .unwrap();
    let after = client
        .request("tools/call", progress_call(2, json!("t2")))
        .await
        .unwrap();
    assert_eq!(
        notification_trace(&after.notifications),
        ["progress:1/2", "progress:2/2"]
    );
    assert_eq!(after.text(), Some("done 2 steps"));
}

/// `elicitation/create` to a client without that capability: the client's error fails the
/// call at once (no hang, no further round upstream).
#[actix_rt::test]
async fn an_input_request_the_client_cannot_serve_fails_the_call() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let legacy = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    legacy.set_timeout(WAIT);
    legacy.initialize("2024-11-05").await.unwrap();
    let ex = legacy
        .request(
            "tools/call",
            json!({"name": "elicit", "arguments": {"message": "ok?"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.server_requests[0]["method"], "elicitation/create");
    assert_eq!(
        ex.error().expect("an error")["code"],
        -32601,
        "{}",
        ex.response
    );
    assert_eq!(posts_of(&server, "tools/call").len(), 1);
}

/// `resources/subscribe` is answered by the bridge and becomes the listen stream's
/// `resourceSubscriptions`: the update reaches the client's GET stream. The listen stream
/// ends with the session.
#[actix_rt::test]
async fn resource_subscriptions_ride_the_listen_stream_and_end_with_the_session() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    let ok = client
        .request("resources/subscribe", json!({"uri": "file:///a"}))
        .await
        .unwrap();
    assert_eq!(ok.result(), Some(&json!({})));
    let subscribed = |s: &FakeServer| {
        s.get_streams() == 1
            && posts_of(s, "subscriptions/listen").last().is_some_and(|r| {
                r.json().unwrap()["params"]["notifications"]["resourceSubscriptions"]
                    == json!(["file:///a"])
            })
    };
    assert!(
        server.wait_until(subscribed, WAIT).await,
        "listen re-opened with the URI"
    );
    let updated = r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#;
    assert_eq!(server.send_unsolicited(updated), 1);
    let ev = get
        .next_event(WAIT)
        .await
        .expect("resources/updated on the GET stream");
    let msg: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(msg["method"], "notifications/resources/updated");
    assert_eq!(msg["params"]["uri"], "file:///a");

    drop(get);
    assert_eq!(client.delete().await.unwrap(), 200);
    assert!(
        server.wait_until(|s| s.get_streams() == 0, WAIT).await,
        "the listen stream ends with the session"
    );
}

/// MRTR through the bridge: the server's `input_required` becomes a sampling request on the
/// call's own stream, answered by the client; the client sees one call and its result.
#[actix_rt::test]
async fn input_required_becomes_a_client_request() {
    let server = FakeServer::start(ServerOptions::modern());
    let bridge = bridge(&server.url(), MODERN);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.set_timeout(WAIT);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        ex.text(),
        Some(mcp_testkit::SAMPLING_REPLY_TEXT),
        "{}",
        ex.response
    );
    assert_eq!(ex.server_requests.len(), 1);
    assert_eq!(ex.server_requests[0]["method"], "sampling/createMessage");
    let calls = posts_of(&server, "tools/call");
    assert_eq!(calls.len(), 2, "the call and its retry");
    let retry = calls[1].json().unwrap();
    assert_eq!(retry["params"]["requestState"], "sample");
    assert!(
        retry["params"]["inputResponses"]["sample"].is_object(),
        "{retry}"
    );
}
