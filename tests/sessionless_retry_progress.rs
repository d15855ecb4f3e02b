//! A 2026-07-28 client's MRTR retry is a new request with its own progress token (the
//! Python SDK mints one per request): the progress the upstream call sends after the retry
//! must reach the client under the retry's token, or the client drops it as unknown.

mod support;

use mcp_testkit::{SseItem, SseParser};
use support::*;

const V: &str = "2026-07-28";

fn call(id: u64, token: &str, extra: Value) -> String {
    let mut params = json!({
        "name": "sample", "arguments": {"prompt": "p"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
            "progressToken": token,
        },
    });
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

async fn post(b: &Bridge, body: &str) -> Vec<Value> {
    let r = raw(
        "POST",
        &b.url("/mcp"),
        &[
            JSON,
            ACCEPT_BOTH,
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "sample"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    SseParser::new()
        .feed(r.body.as_bytes())
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => serde_json::from_str(&e.data).ok(),
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn progress_after_a_retry_comes_under_the_retrys_progress_token() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    let first = post(&b, &call(1, "first", json!({}))).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0]["params"]["progressToken"], "first", "{first:?}");
    assert_eq!(first[0]["params"]["progress"], 1);
    let result = &first[1]["result"];
    assert_eq!(result["resultType"], "input_required", "{first:?}");
    let key = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let answer =
        json!({"role": "assistant", "content": {"type": "text", "text": "s"}, "model": "m"});
    let retry = json!({
        "inputResponses": {key: answer},
        "requestState": result["requestState"],
    });
    let second = post(&b, &call(2, "second", retry)).await;
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(
        second[0],
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
               "params": {"progressToken": "second", "progress": 2, "total": 2}}),
        "the call's progress, under the retry's token"
    );
    assert_eq!(second[1]["id"], 2, "{second:?}");
    assert_eq!(second[1]["result"]["content"][0]["text"], "s", "{second:?}");
}
