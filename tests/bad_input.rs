//! Every bad input gets a clear HTTP status and, where an id is known, a JSON-RPC error.

mod support;

use support::*;

async fn legacy_session(bridge: &Bridge) -> LegacyClient {
    LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap()
}

#[actix_rt::test]
async fn legacy_post_statuses() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--max-body", "1KiB"]);
    let client = legacy_session(&bridge).await;
    let endpoint = client.endpoint_url();
    let messages = bridge.url("/messages");

    let missing = raw("POST", &messages, &[JSON], INIT).await;
    assert_eq!(missing.status, 400);
    let unknown = raw("POST", &format!("{messages}?sessionId=nope"), &[JSON], INIT).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], -32001);

    let not_json = raw("POST", &endpoint, &[JSON], "{oops").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error"]["code"], -32700);
    let not_rpc = raw("POST", &endpoint, &[JSON], r#"{"hello":1}"#).await;
    assert_eq!(not_rpc.status, 400);
    assert_eq!(not_rpc.json()["error"]["code"], -32600);

    let wrong_type = raw("POST", &endpoint, &[("content-type", "text/plain")], INIT).await;
    assert_eq!(wrong_type.status, 415);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","method":"x","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2048)
    );
    assert_eq!(raw("POST", &endpoint, &[JSON], &huge).await.status, 413);

    // The other query spelling and a trailing slash both reach the session.
    let alt = endpoint.replace("/messages?sessionId=", "/messages/?session_id=");
    assert_eq!(raw("POST", &alt, &[JSON], INIT).await.status, 202);
}

#[actix_rt::test]
async fn full_session_table_answers_503() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--max-sessions", "1"]);
    let _first = legacy_session(&bridge).await;
    let second = raw(
        "GET",
        &bridge.url("/sse"),
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(second.status, 503);
    assert!(second.headers.contains_key("retry-after"));
    let modern = raw("POST", &bridge.url("/mcp"), &[JSON, ACCEPT_BOTH], INIT).await;
    assert_eq!(modern.status, 503);
}

#[actix_rt::test]
async fn foreign_origin_and_host_are_refused_everywhere() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &[]);
    let evil = ("origin", "http://evil.example");
    for (method, path) in [
        ("GET", "/sse"),
        ("POST", "/messages?sessionId=x"),
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("DELETE", "/mcp"),
    ] {
        let r = raw(method, &bridge.url(path), &[evil, JSON, ACCEPT_BOTH], INIT).await;
        assert_eq!(r.status, 403, "{method} {path}");
    }
    // DNS rebinding: a foreign Host on a loopback bind.
    let r = raw(
        "GET",
        &bridge.url("/sse"),
        &[("host", "evil.example:80")],
        "",
    )
    .await;
    assert_eq!(r.status, 421);
    // A listed origin passes.
    let allowed = support::bridge(
        &server.url(),
        &["--allowed-origin", "http://localhost:6274"],
    );
    let r = raw(
        "POST",
        &allowed.url("/mcp"),
        &[("origin", "http://localhost:6274"), JSON, ACCEPT_BOTH],
        r#"{"jsonrpc":"2.0","method":"x"}"#,
    )
    .await;
    assert_ne!(r.status, 403);
}

#[actix_rt::test]
async fn streamable_front_statuses() {
    let server = FakeServer::start(ServerOptions::legacy());
    let bridge = bridge(&server.url(), &["--upstream-transport", "sse"]);
    let mcp = bridge.url("/mcp");

    let no_accept = raw("POST", &mcp, &[JSON, ("accept", "application/json")], INIT).await;
    assert_eq!(no_accept.status, 406);
    let bad_type = raw(
        "POST",
        &mcp,
        &[ACCEPT_BOTH, ("content-type", "text/plain")],
        INIT,
    )
    .await;
    assert_eq!(bad_type.status, 415);
    let bad_json = raw("POST", &mcp, &[JSON, ACCEPT_BOTH], "[").await;
    assert_eq!(
        (bad_json.status, bad_json.json()["error"]["code"].clone()),
        (400, json!(-32700))
    );

    // Before any session: a request other than initialize (the `server/discover` probe of
    // newer clients) gets a prompt 400 carrying its id.
    let probe = raw(
        "POST",
        &mcp,
        &[JSON, ACCEPT_BOTH, ("mcp-protocol-version", "2026-07-28")],
        r#"{"jsonrpc":"2.0","id":"d1","method":"server/discover","params":{}}"#,
    )
    .await;
    assert_eq!(probe.status, 400);
    assert_eq!(probe.json()["id"], "d1");

    let unknown = raw(
        "POST",
        &mcp,
        &[JSON, ACCEPT_BOTH, ("mcp-session-id", "nope")],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(unknown.status, 404);
    let get_without = raw("GET", &mcp, &[("accept", "text/event-stream")], "").await;
    assert_eq!(get_without.status, 400);
    let get_unknown = raw(
        "GET",
        &mcp,
        &[("accept", "text/event-stream"), ("mcp-session-id", "nope")],
        "",
    )
    .await;
    assert_eq!(get_unknown.status, 404);
    let delete_unknown = raw("DELETE", &mcp, &[("mcp-session-id", "nope")], "").await;
    assert_eq!(delete_unknown.status, 404);
    let put = raw("PUT", &mcp, &[], "").await;
    assert_eq!(put.status, 405);
    assert_eq!(put.headers.get("allow").unwrap(), "GET, POST, DELETE");
    assert_eq!(raw("POST", &bridge.url("/sse"), &[], "").await.status, 405);
    assert_eq!(
        raw("GET", &bridge.url("/nowhere"), &[], "").await.status,
        404
    );

    // With a session: a bad version header, and a second initialize.
    let client = StreamableClient::new(&mcp, &[]);
    client.initialize("2025-06-18").await.unwrap();
    let sid = client.session_id().unwrap();
    let bad_version = raw(
        "POST",
        &mcp,
        &[
            JSON,
            ACCEPT_BOTH,
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(bad_version.status, 400);
    let reinit = raw(
        "POST",
        &mcp,
        &[JSON, ACCEPT_BOTH, ("mcp-session-id", &sid)],
        INIT,
    )
    .await;
    assert_eq!(reinit.status, 400);
    assert_eq!(reinit.json()["id"], 1);
}
