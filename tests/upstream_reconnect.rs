//! A Streamable upstream whose standalone GET stream says `retry: 0` and closes at once: the
//! bridge reconnects with a floor and a growing backoff, not in a tight loop.

mod support;

use std::time::Duration;

use support::*;

fn gets(server: &FakeServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count()
}

#[actix_rt::test]
async fn retry_zero_and_instant_close_do_not_make_a_reconnect_storm() {
    let server = FakeServer::start(ServerOptions::streamable().get_retry_zero_and_close(true));
    let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    assert!(
        server.wait_until(|s| gets(s) >= 1, WAIT).await,
        "the bridge opens the upstream GET stream"
    );
    let first = gets(&server);
    // A counting window, not a synchronisation: how many times the idle session reopened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opens = gets(&server) - first;
    assert!(
        opens <= 10,
        "{opens} GET stream opens in 2 s from one idle session"
    );
    // The session still works.
    let ex = client.request("tools/list", json!({})).await.unwrap();
    assert!(ex.result().is_some(), "{:?}", ex.response);
}
