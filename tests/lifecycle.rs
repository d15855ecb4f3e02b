//! Session lifecycle paths: idle reaping, cancellation, large results through every pair.

mod support;

use support::*;

#[actix_rt::test]
async fn idle_session_is_reaped_and_its_upstream_session_deleted() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--session-idle-timeout", "300ms"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    assert_eq!(bridge.session_count(), 1);
    // No stream open, no traffic: the reaper ends it.
    assert!(
        server.wait_until(|s| s.deletes() == 1, WAIT).await,
        "upstream DELETE"
    );
    assert_eq!(bridge.session_count(), 0);
    // The DELETE's connection is closed, not pooled: a burst of ending sessions must not
    // leave an idle upstream connection behind for each.
    let delete = server
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("recorded DELETE");
    assert_eq!(delete.header("connection"), Some("close"));
    let later = client.request("tools/list", json!({})).await;
    assert!(format!("{later:?}").contains("404"), "{later:?}");
}

#[actix_rt::test]
async fn open_standalone_stream_keeps_a_session_alive() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--session-idle-timeout", "300ms"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    // Several idle periods pass with the GET open (keep-alive comments flow meanwhile).
    for _ in 0..4 {
        assert!(get.next_item(WAIT).await.is_some());
    }
    assert_eq!(bridge.session_count(), 1);
    assert_eq!(server.deletes(), 0);
}

#[actix_rt::test]
async fn cancelled_request_ends_its_stream_and_the_session_goes_on() {
    let server = FakeServer::start(ServerOptions::legacy());
    let bridge = bridge(&server.url(), &[]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let call = r#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"slow","arguments":{"ms":3000}}}"#;
    let mut stream = client
        .post_raw(call, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let status = client
        .notify(
            "notifications/cancelled",
            json!({"requestId": "slow-1", "reason": "user"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    // The stream closes with no response (the server may never answer a cancelled call).
    assert!(stream.next_event(WAIT).await.is_none());
    assert!(stream.is_closed());
    assert!(server
        .wait_for_request(
            |r| r.rpc_method().as_deref() == Some("notifications/cancelled"),
            WAIT
        )
        .await
        .is_some());
    let echo = client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "still here"}}),
        )
        .await
        .unwrap();
    assert_eq!(echo.text(), Some("still here"));
}

#[actix_rt::test]
async fn one_mebibyte_result_crosses_every_pair_intact() {
    const SIZE: usize = 1 << 20;
    for opts in [ServerOptions::legacy(), ServerOptions::streamable()] {
        let server = FakeServer::start(opts);
        let bridge = bridge(&server.url(), &[]);
        let call = json!({"name": "big", "arguments": {"bytes": SIZE}});

        let legacy = LegacyClient::connect(&bridge.url("/sse"), &[])
            .await
            .unwrap();
        legacy.initialize("2025-06-18").await.unwrap();
        let ex = legacy.request("tools/call", call.clone()).await.unwrap();
        assert_eq!(
            ex.text().map(str::len),
            Some(SIZE),
            "legacy → {:?}",
            server.transport()
        );

        let modern = StreamableClient::new(&bridge.url("/mcp"), &[]);
        modern.initialize("2025-06-18").await.unwrap();
        let ex = modern.request("tools/call", call).await.unwrap();
        assert_eq!(
            ex.text().map(str::len),
            Some(SIZE),
            "streamable → {:?}",
            server.transport()
        );
    }
}
