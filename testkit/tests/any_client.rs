//! `McpClient`: one scenario drives either client straight against the fake server of its
//! own transport (no bridge), and each ends its session the way its transport does.

use std::time::Duration;

use mcp_testkit::{connect, FakeServer, McpClient, ServerOptions, Transport, SAMPLING_REPLY_TEXT};
use serde_json::json;

const T: Duration = Duration::from_secs(5);

async fn scenario(client: &dyn McpClient, server: &FakeServer) {
    let init = client.initialize("2025-06-18").await.expect("initialize");
    assert!(init["serverInfo"]["name"]
        .as_str()
        .unwrap()
        .starts_with("fake-"));
    let params = json!({"name": "progress", "arguments": {"steps": 2},
                        "_meta": {"progressToken": "t"}});
    let call = client.request("tools/call", params).await.unwrap();
    assert_eq!(call.text(), Some("done 2 steps"));
    assert_eq!(call.notifications.len(), 4);
    let sample = json!({"name": "sample", "arguments": {"prompt": "?"}});
    let sample = client.request("tools/call", sample).await.unwrap();
    assert_eq!(sample.text(), Some(SAMPLING_REPLY_TEXT));
    let closed = client.close().await.unwrap();
    let ended = match client.transport() {
        Transport::Streamable => {
            assert_eq!(closed, Some(200), "DELETE answered");
            server.wait_until(|s| s.deletes() == 1, T).await
        }
        Transport::Legacy => {
            assert_eq!(closed, None, "no status: the stream is dropped");
            server.wait_until(|s| s.session_count() == 0, T).await
        }
    };
    assert!(
        ended,
        "{:?}: the server saw the session end",
        client.transport()
    );
}

#[actix_rt::test]
async fn one_scenario_drives_both_clients() {
    for (transport, opts) in [
        (Transport::Legacy, ServerOptions::legacy()),
        (Transport::Streamable, ServerOptions::streamable()),
    ] {
        let server = FakeServer::start(opts);
        let client = connect(transport, &server.url(), &[]).await.unwrap();
        assert_eq!(client.transport(), transport);
        scenario(&*client, &server).await;
    }
}
