//! Restarting on the same port, with the other transport: what a bridge test does to change
//! its upstream under a running bridge.

use std::time::Duration;

use mcp_testkit::{FakeServer, LegacyClient, ServerOptions, StreamableClient, Transport};
use serde_json::json;

#[actix_rt::test]
async fn restart_on_the_same_port_with_the_other_transport() {
    let mut streamable = FakeServer::start(ServerOptions::streamable());
    let addr = streamable.addr();
    let client = StreamableClient::new(&streamable.url(), &[]);
    client.initialize("2025-06-18").await.unwrap();
    // An open stream must not keep the port (or the thread) alive.
    let _get = client.open_get(None).await.unwrap();
    streamable.stop();

    let legacy = FakeServer::start(ServerOptions::legacy().addr(addr));
    assert_eq!(legacy.addr(), addr);
    assert_eq!(legacy.transport(), Transport::Legacy);
    let lc = LegacyClient::connect(&legacy.url(), &[]).await.unwrap();
    lc.initialize("2024-11-05").await.unwrap();
    let ex = lc
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "again"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("again"));
    drop(legacy); // Drop stops too.
    assert!(lc.wait_closed(Duration::from_secs(5)).await);

    let back = FakeServer::start(ServerOptions::streamable().addr(addr));
    let client = StreamableClient::new(&back.url(), &[]);
    assert_eq!(
        client.initialize("2025-11-25").await.unwrap()["protocolVersion"],
        "2025-11-25"
    );
}

#[actix_rt::test]
async fn requests_are_waited_for_not_polled() {
    let server = FakeServer::start(ServerOptions::streamable());
    let url = server.url();
    let waiter = server.wait_for_request(
        |r| r.rpc_method().as_deref() == Some("tools/list"),
        Duration::from_secs(5),
    );
    let driver = async {
        let client = StreamableClient::new(&url, &[]);
        client.initialize("2025-06-18").await.unwrap();
        client
            .request("tools/list", serde_json::Value::Null)
            .await
            .unwrap();
    };
    let (found, ()) = tokio::join!(waiter, driver);
    assert_eq!(found.unwrap().method, "POST");
    let none = server
        .wait_for_request(|r| r.method == "PUT", Duration::from_millis(50))
        .await;
    assert!(none.is_none());
}
