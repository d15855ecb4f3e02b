//! A sessionless (2026-07-28) client in front of an upstream that cannot be reached, or that
//! dies under a call: every request gets a prompt answer naming its id (a JSON-RPC error,
//! with an HTTP status that says what happened), never a hang; the failure is counted in
//! the bridge's metrics.

mod support;

use futures_util::StreamExt;
use mcp_testkit::{SseItem, SseParser};
use support::*;

const V: &str = "2026-07-28";

fn call(id: u64, tool: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": tool, "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": V,
                "io.modelcontextprotocol/clientCapabilities": {},
                "progressToken": "t",
            },
        },
    })
    .to_string()
}

fn headers(tool: &str) -> [(&'static str, &str); 5] {
    [
        JSON,
        ACCEPT_BOTH,
        ("mcp-protocol-version", V),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ]
}

async fn upstream_errors(b: &Bridge) -> u64 {
    let r = raw("GET", &b.admin_url("/metrics"), &[], "").await;
    r.body
        .lines()
        .filter(|l| l.starts_with("mcp_bridge_upstream_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The JSON-RPC messages of an SSE body, in order.
fn sse_messages(body: &str) -> Vec<Value> {
    SseParser::new()
        .feed(body.as_bytes())
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => serde_json::from_str(&e.data).ok(),
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn an_unreachable_upstream_answers_each_request_at_once_with_its_id() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/sse");
    let b = bridge(
        &url,
        &[
            "--upstream-transport",
            "sse",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    for id in [1, 2] {
        let started = std::time::Instant::now();
        let r = raw(
            "POST",
            &b.url("/mcp"),
            &headers("echo"),
            &call(id, "echo", json!({"text": "hi"})),
        )
        .await;
        assert!(
            r.status >= 500,
            "a server-side failure: HTTP {} {}",
            r.status,
            r.body
        );
        let answer = r.json();
        assert_eq!(
            answer["id"],
            json!(id),
            "the error names the request: {}",
            r.body
        );
        assert!(answer["error"]["code"].is_i64(), "{}", r.body);
        assert!(
            started.elapsed() < WAIT,
            "answered promptly, not at a client timeout"
        );
    }
    assert!(upstream_errors(&b).await >= 2, "each failure counted");
}

#[actix_rt::test]
async fn an_upstream_dying_under_a_call_ends_it_with_an_error_naming_the_request() {
    let mut server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let client = awc::Client::builder().disable_timeout().finish();
    let mut req = client.post(b.url("/mcp"));
    for h in headers("progress") {
        req = req.insert_header(h);
    }
    let mut resp = req
        .send_body(call(7, "progress", json!({"steps": 200, "delay_ms": 50})))
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
    server.stop();
    // The rest of the stream comes promptly and ends with an error for request 7.
    let rest = tokio::time::timeout(WAIT, resp.body().limit(16 << 20))
        .await
        .expect("the stream ends promptly once the upstream is gone")
        .expect("readable");
    let messages = sse_messages(&String::from_utf8_lossy(&rest));
    let last = messages.last().expect("an answer after the progress");
    assert_eq!(last["id"], json!(7), "{messages:?}");
    assert!(last["error"]["code"].is_i64(), "{last}");
}

#[actix_rt::test]
async fn a_listen_whose_upstream_dies_ends_with_an_error_naming_it() {
    let mut server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let body = json!({
        "jsonrpc": "2.0", "id": "listen-9", "method": "subscriptions/listen",
        "params": {
            "notifications": {"toolsListChanged": true},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": V,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    let client = awc::Client::builder().disable_timeout().finish();
    let mut resp = client
        .post(b.url("/mcp"))
        .insert_header(JSON)
        .insert_header(ACCEPT_BOTH)
        .insert_header(("mcp-protocol-version", V))
        .insert_header(("mcp-method", "subscriptions/listen"))
        .send_body(body.to_string())
        .await
        .expect("request sent");
    assert_eq!(resp.status().as_u16(), 200);
    let ack = tokio::time::timeout(WAIT, resp.next())
        .await
        .expect("the acknowledgement in time")
        .expect("a frame")
        .expect("readable");
    assert!(
        String::from_utf8_lossy(&ack).contains("notifications/subscriptions/acknowledged"),
        "{ack:?}"
    );
    server.stop();
    let rest = tokio::time::timeout(WAIT, resp.body().limit(1 << 20))
        .await
        .expect("the listen ends promptly once the upstream is gone")
        .expect("readable");
    let messages = sse_messages(&String::from_utf8_lossy(&rest));
    let last = messages.last().expect("an answer closing the listen");
    assert_eq!(last["id"], "listen-9", "{messages:?}");
    assert!(last["error"]["code"].is_i64(), "{last}");
}
