//! The front door: request bodies that stall, batches that smuggle `initialize`, and
//! forwarded headers that would point legacy clients elsewhere.

mod support;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

const MIB: usize = 1 << 20;

/// Send `head` (request line and headers, without the blank line) declaring a 4 MiB body,
/// then only a few bytes of it, and stall. Returns all the bridge answered until it
/// closed the connection.
async fn stalled_post(bridge: &Bridge, head: &str) -> String {
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{{\"jsonrpc\"",
        bridge.addr,
        4 * MIB
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the bridge answers and closes the connection in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_rt::test]
async fn a_stalled_streamable_body_gets_408_and_the_connection_is_closed() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--body-timeout", "300ms"]);
    let answer = stalled_post(&bridge, "POST /mcp HTTP/1.1").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(bridge.session_count(), 0);
}

#[actix_rt::test]
async fn a_stalled_legacy_body_gets_408_and_the_connection_is_closed() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--body-timeout", "300ms"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    let endpoint = client.endpoint_url();
    let path = &endpoint[endpoint.find("/messages").unwrap()..];
    let answer = stalled_post(&bridge, &format!("POST {path} HTTP/1.1")).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[actix_rt::test]
async fn a_streamable_post_for_an_unknown_session_is_refused_before_its_body() {
    let server = FakeServer::start(ServerOptions::streamable());
    // The default body deadline (30 s) is far beyond WAIT: only a refusal from the headers
    // answers in time.
    let bridge = bridge(&server.url(), &[]);
    let answer = stalled_post(
        &bridge,
        "POST /mcp HTTP/1.1\r\nMcp-Session-Id: no-such-session\r\nConnection: close",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

fn batch_with_initialize() -> String {
    format!(r#"[{INIT}]"#)
}

#[actix_rt::test]
async fn a_batch_holding_initialize_opens_no_streamable_session() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &[]);
    for body in [
        batch_with_initialize(),
        format!(r#"[{INIT},{{"jsonrpc":"2.0","method":"notifications/initialized"}}]"#),
    ] {
        let r = raw("POST", &bridge.url("/mcp"), &[JSON, ACCEPT_BOTH], &body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], -32600, "{}", r.body);
        assert_eq!(r.json()["id"], 1, "{}", r.body);
        assert!(r.headers.get("mcp-session-id").is_none());
    }
    assert_eq!(bridge.session_count(), 0);
    assert_eq!(server.session_count(), 0);
}

#[actix_rt::test]
async fn a_batch_holding_initialize_is_refused_on_the_legacy_front() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &[]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    let r = client.post_raw(&batch_with_initialize()).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let err: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(err["error"]["code"], -32600, "{}", r.body);
    assert_eq!(err["id"], 1, "{}", r.body);
    assert_eq!(server.session_count(), 0);
}

/// The `endpoint` event a legacy client gets with `headers` from a trusted proxy.
async fn endpoint_with(bridge: &Bridge, headers: &[(&str, &str)]) -> String {
    let mut req = awc::Client::default()
        .get(bridge.url("/sse"))
        .insert_header(("accept", "text/event-stream"));
    for h in headers {
        req = req.insert_header(*h);
    }
    let mut resp = req.send().await.unwrap();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, resp.next())
            .await
            .expect("endpoint event in time")
            .expect("a chunk")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    data.split("?sessionId=").next().unwrap().to_owned()
}

#[actix_rt::test]
async fn malformed_forwarded_prefixes_are_ignored() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &["--trust-forwarded-headers", "--public-prefix", "/tools"],
    );
    assert_eq!(
        endpoint_with(&bridge, &[("x-forwarded-prefix", "/edge/v1")]).await,
        "/edge/v1/messages"
    );
    for bad in [
        "/\\evil.example",
        "//evil.example",
        "/edge//evil.example",
        "/edge/../../x",
        "/edge/%2e%2e/x",
        "/edge\tx",
        "/edge?x=",
        "/edge#x",
        "evil.example",
    ] {
        assert_eq!(
            endpoint_with(&bridge, &[("x-forwarded-prefix", bad)]).await,
            "/tools/messages",
            "X-Forwarded-Prefix {bad:?}"
        );
    }
}

#[actix_rt::test]
async fn malformed_forwarded_hosts_are_ignored() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--trust-forwarded-headers"]);
    let proto = ("x-forwarded-proto", "https");
    assert_eq!(
        endpoint_with(
            &bridge,
            &[("x-forwarded-host", "mcp.example.com:8443"), proto]
        )
        .await,
        "https://mcp.example.com:8443/messages"
    );
    for bad in [
        "evil.example/x",
        "evil.example\\x",
        "user@evil.example",
        "evil.example:http",
        "evil.example:99999",
        "[::1",
        "evil example",
        "evil.example%2f",
    ] {
        assert_eq!(
            endpoint_with(&bridge, &[("x-forwarded-host", bad), proto]).await,
            "/messages",
            "X-Forwarded-Host {bad:?}"
        );
    }
}
