//! Legacy HTTP+SSE clients reach a Streamable HTTP server through the bridge.

mod support;

use mcp_testkit::SAMPLING_REPLY_TEXT;
use support::*;

async fn connected(server: &FakeServer) -> (Bridge, LegacyClient) {
    let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .expect("legacy client connects");
    (bridge, client)
}

#[actix_rt::test]
async fn initialize_then_tools_list_with_upstream_session_headers() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    assert!(
        client.endpoint_url().contains("/messages?sessionId="),
        "{}",
        client.endpoint_url()
    );

    let init = client.initialize("2025-06-18").await.unwrap();
    assert_eq!(init["protocolVersion"], "2025-06-18");
    assert_eq!(init["serverInfo"]["name"], "fake-streamable");
    let tools = client.request("tools/list", json!({})).await.unwrap();
    let names: Vec<&str> = tools.result().unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"progress") && names.contains(&"echo"),
        "{names:?}"
    );

    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts[0].rpc_method().as_deref(), Some("initialize"));
    assert_eq!(
        posts[0].header("mcp-session-id"),
        None,
        "never a session id on initialize"
    );
    for later in &posts[1..] {
        assert!(later.header("mcp-session-id").is_some(), "{later:?}");
        assert_eq!(later.header("mcp-protocol-version"), Some("2025-06-18"));
        let accept = later.header("accept").unwrap_or_default();
        assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
    }
}

#[actix_rt::test]
async fn progress_and_logs_arrive_in_order_before_the_result() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request("tools/call", progress_call(3, json!("tok-1")))
        .await
        .unwrap();
    assert_eq!(
        notification_trace(&ex.notifications),
        [
            "log:step 1",
            "progress:1/3",
            "log:step 2",
            "progress:2/3",
            "log:step 3",
            "progress:3/3"
        ]
    );
    assert!(ex.result().is_some(), "{:?}", ex.response);
}

#[actix_rt::test]
async fn sampling_request_reaches_the_client_and_its_answer_goes_back() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    // The server waits for the client's answer before it can finish the call, so this also
    // proves events are relayed as they arrive, not when the upstream stream ends.
    let ex = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.server_requests.len(), 1);
    assert_eq!(ex.server_requests[0]["method"], "sampling/createMessage");
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
}

#[actix_rt::test]
async fn unsolicited_notifications_come_from_the_upstream_get_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    assert!(
        server.wait_until(|s| s.get_streams() >= 1, WAIT).await,
        "the bridge opens the upstream GET stream after initialized"
    );
    let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    assert_eq!(server.send_unsolicited(note), 1);
    let got = client.next_message(WAIT).await.expect("relayed");
    assert_eq!(got, note, "byte for byte");
}

/// The server forgets the session while the bridge listens on its GET stream (a restart):
/// the bridge re-initialises at once, and unsolicited messages flow again without waiting
/// for the client's next request.
#[actix_rt::test]
async fn upstream_forgetting_the_session_under_the_get_stream_is_reinitialised() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    assert!(server.wait_until(|s| s.get_streams() == 1, WAIT).await);
    let initializes = |s: &FakeServer| {
        s.requests()
            .iter()
            .filter(|r| r.rpc_method().as_deref() == Some("initialize"))
            .count()
    };
    server.expire_sessions();
    assert!(
        server
            .wait_until(|s| initializes(s) == 2 && s.get_streams() == 1, WAIT)
            .await,
        "re-initialised and listening again"
    );
    let note = r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#;
    assert_eq!(server.send_unsolicited(note), 1);
    assert_eq!(client.next_message(WAIT).await.as_deref(), Some(note));
}

#[actix_rt::test]
async fn expired_upstream_session_is_reinitialised_transparently() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    server.expire_sessions();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "again"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("again"));
    let inits: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("initialize"))
        .collect();
    assert_eq!(inits.len(), 2, "the client's initialize was replayed once");
    assert_eq!(
        inits[1].json().unwrap()["params"],
        inits[0].json().unwrap()["params"]
    );
    let initialized = server
        .requests()
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("notifications/initialized"))
        .count();
    assert_eq!(initialized, 2);
}

#[actix_rt::test]
async fn unreachable_upstream_answers_the_request_with_an_error() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let bridge = bridge(
        &format!("http://{dead}/mcp"),
        &["--upstream-transport", "streamable"],
    );
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    let ex = tokio::time::timeout(
        WAIT,
        client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        ),
    )
    .await
    .expect("no hang")
    .unwrap();
    let err = ex.error().expect("a JSON-RPC error");
    assert_eq!(err["code"], -32000);
    assert!(
        err["message"].as_str().unwrap().contains("upstream"),
        "{err}"
    );
}

#[actix_rt::test]
async fn upstream_dying_mid_session_answers_with_an_error() {
    let mut server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    server.stop();
    let ex = tokio::time::timeout(WAIT, client.request("tools/list", json!({})))
        .await
        .expect("no hang")
        .unwrap();
    assert!(ex.error().is_some(), "{:?}", ex.response);
}

#[actix_rt::test]
async fn upstream_stream_broken_mid_call_is_resumed_with_last_event_id() {
    let server = FakeServer::start(
        ServerOptions::streamable()
            .event_ids(true)
            .drop_post_stream_after(Some(2))
            .retry_ms(Some(50)),
    );
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request("tools/call", progress_call(3, json!(7)))
        .await
        .unwrap();
    assert_eq!(
        notification_trace(&ex.notifications).len(),
        6,
        "{:?}",
        ex.notifications
    );
    assert!(ex.result().is_some());
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.header("last-event-id").is_some()),
        "resumed with Last-Event-ID"
    );
}

#[actix_rt::test]
async fn client_disconnect_deletes_the_upstream_session() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    client.close();
    assert!(
        server.wait_until(|s| s.deletes() == 1, WAIT).await,
        "upstream DELETE after the legacy stream closed"
    );
    assert!(eventually(|| bridge.session_count() == 0).await);
}

#[actix_rt::test]
async fn cancellation_passes_through() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    let status = client
        .notify(
            "notifications/cancelled",
            json!({"requestId": 99, "reason": "test"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert!(server
        .wait_for_request(
            |r| r.rpc_method().as_deref() == Some("notifications/cancelled"),
            WAIT
        )
        .await
        .is_some());
}

/// A cancelled call's upstream stream is closed at once: the server (like the TypeScript SDK)
/// never answers it, and it would otherwise hold a connection until the session ends.
#[actix_rt::test]
async fn cancelled_call_releases_its_upstream_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    client.initialize("2025-06-18").await.unwrap();
    assert!(
        server.wait_until(|s| s.open_streams() == 1, WAIT).await,
        "the GET stream"
    );
    let slow = r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"slow","arguments":{"ms":20000}}}"#;
    assert_eq!(client.post_raw(slow).await.unwrap().status, 202);
    assert!(
        server.wait_until(|s| s.open_streams() == 2, WAIT).await,
        "the call's stream"
    );
    let status = client
        .notify("notifications/cancelled", json!({"requestId": 41}))
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert!(
        server.wait_until(|s| s.open_streams() == 1, WAIT).await,
        "the cancelled call's stream is closed; the GET stream stays"
    );
}

#[actix_rt::test]
async fn keepalive_comments_flow_on_an_idle_legacy_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (_bridge, client) = connected(&server).await;
    // The bridge under test sends a keep-alive comment every 300 ms on an idle stream.
    let has_comment = || {
        client
            .raw_events()
            .iter()
            .any(|e| matches!(e, mcp_testkit::SseItem::Comment(_)))
    };
    assert!(eventually(has_comment).await, "{:?}", client.raw_events());
}

#[actix_rt::test]
async fn upstream_401_reaches_both_client_generations_as_http() {
    let server = FakeServer::start(ServerOptions::streamable().require_bearer(Some("s3cret")));
    // A same-resource front end: the clients' tokens are the upstream's, so they cross.
    let bridge = bridge(
        &server.url(),
        &[
            "--upstream-transport",
            "streamable",
            "--forward-header",
            "authorization",
        ],
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    // Legacy: the POST itself answers 401 with the upstream's challenge, so OAuth can start.
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    let refused = client.post_raw(init).await.unwrap();
    assert_eq!(refused.status, 401);
    assert!(refused
        .headers
        .get("www-authenticate")
        .is_some_and(|v| v.contains("resource_metadata")));

    // Streamable: the initialize POST answers 401 and no session is created.
    let modern = StreamableClient::new(&bridge.url("/mcp"), &[]);
    let refused = modern.post_raw(init, &[]).await.unwrap();
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").is_some());
    assert!(refused.header("mcp-session-id").is_none());

    // With the token, the same client works.
    let authed = LegacyClient::connect(&bridge.url("/sse"), &[("authorization", "Bearer s3cret")])
        .await
        .unwrap();
    let result = authed.initialize("2025-06-18").await.unwrap();
    assert_eq!(result["serverInfo"]["name"], "fake-streamable");
}

/// When the clients' tokens do not cross, an upstream 401 refuses the bridge's own
/// credential: no client can fix that with OAuth, so it is a gateway failure — a JSON-RPC
/// error for the request, and no challenge passed on.
#[actix_rt::test]
async fn upstream_401_of_the_bridges_own_credential_is_a_gateway_error() {
    let server = FakeServer::start(ServerOptions::streamable().require_bearer(Some("s3cret")));
    let bridge = bridge(
        &server.url(),
        &[
            "--upstream-transport",
            "streamable",
            "--upstream-header",
            "Authorization: Bearer stale",
        ],
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    // Legacy: the POST is accepted and the request answered with an error on the stream.
    let client = LegacyClient::connect(&bridge.url("/sse"), &[("authorization", "Bearer s3cret")])
        .await
        .unwrap();
    assert_eq!(client.post_raw(init).await.unwrap().status, 202);
    let reply: Value = serde_json::from_str(&client.next_message(WAIT).await.unwrap()).unwrap();
    assert_eq!(reply["id"], 1);
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("401"),
        "{reply}"
    );

    // Streamable: 502 with the JSON-RPC error, no challenge, no session.
    let modern = StreamableClient::new(&bridge.url("/mcp"), &[]);
    let refused = modern.post_raw(init, &[]).await.unwrap();
    assert_eq!(refused.status, 502);
    assert!(refused.header("www-authenticate").is_none());
    assert!(refused.header("mcp-session-id").is_none());
    assert_eq!(refused.json().unwrap()["id"], 1);
}
