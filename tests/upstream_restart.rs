//! A Streamable upstream restarted under a running bridge, answering the old session the way
//! server-everything does (400 `-32000 "Bad Request: No valid session ID provided"`, not 404):
//! the bridge re-initialises at once from its standalone GET loop, and the client's next call
//! works, for both client generations.

mod support;

use support::*;

fn server_everything_style() -> ServerOptions {
    ServerOptions::streamable().unknown_session_status(400)
}

fn initializes(s: &FakeServer) -> usize {
    s.requests()
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("initialize"))
        .count()
}

/// Stop `server` and start a fresh one (no sessions) on the same port.
fn restart(mut server: FakeServer) -> FakeServer {
    let addr = server.addr();
    server.stop();
    FakeServer::start(server_everything_style().addr(addr))
}

/// The restarted server saw the bridge's replayed `initialize` and its GET stream again,
/// before any client request: the standalone GET loop recovered on its own.
async fn relistening(server: &FakeServer) {
    assert!(
        server
            .wait_until(|s| initializes(s) == 1 && s.get_streams() == 1, WAIT)
            .await,
        "the bridge re-initialised and listens again; requests: {:?}",
        server
            .requests()
            .iter()
            .map(|r| format!("{} {:?}", r.method, r.rpc_method()))
            .collect::<Vec<_>>()
    );
}

#[actix_rt::test]
async fn legacy_client_keeps_working_across_an_upstream_restart() {
    let server = FakeServer::start(server_everything_style());
    let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    assert!(server.wait_until(|s| s.get_streams() == 1, WAIT).await);

    let server = restart(server);
    relistening(&server).await;
    let ex = client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "after restart"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("after restart"), "{:?}", ex.response);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    assert_eq!(server.send_unsolicited(note), 1);
    assert_eq!(client.next_message(WAIT).await.as_deref(), Some(note));
}

#[actix_rt::test]
async fn streamable_client_keeps_working_across_an_upstream_restart() {
    let server = FakeServer::start(server_everything_style());
    let bridge = bridge(&server.url(), &[]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    assert!(server.wait_until(|s| s.get_streams() == 1, WAIT).await);

    let server = restart(server);
    relistening(&server).await;
    let ex = client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "after restart"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("after restart"), "{:?}", ex.response);
}

/// The POST path decides the same way: a request that meets the 400 (the GET loop has not
/// noticed yet) re-initialises and is retried.
#[actix_rt::test]
async fn a_request_meeting_the_400_reinitialises_and_is_retried() {
    let server = FakeServer::start(server_everything_style().get_stream(false));
    let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    server.expire_sessions();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "again"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("again"), "{:?}", ex.response);
    assert_eq!(initializes(&server), 2);
}
