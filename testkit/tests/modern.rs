//! The fake 2026-07-28 server on its own, driven by raw requests: the spec's refusals, the
//! discover answer, JSON vs SSE answers and the log level, MRTR, listen streams and the
//! fault knobs. (The bridge's use of it is in the root crate's `tests/upstream_modern.rs`.)

use std::time::Duration;

use mcp_testkit::{FakeServer, ServerOptions, StreamableClient, StreamableResponse};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);
const V: &str = "2026-07-28";

fn meta(version: &str) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": version,
           "io.modelcontextprotocol/clientCapabilities": {}})
}

/// A stamped request body.
fn stamped(method: &str, mut params: Value) -> String {
    params["_meta"] = meta(V);
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string()
}

/// POSTs `body` with the version header and `Mcp-Method` (plus `extra`).
async fn post(
    c: &StreamableClient,
    body: &str,
    method: &str,
    extra: &[(&str, &str)],
) -> StreamableResponse {
    let mut h = vec![("mcp-protocol-version", V), ("mcp-method", method)];
    h.extend_from_slice(extra);
    c.post_raw(body, &h).await.unwrap()
}

fn error_of(r: &StreamableResponse) -> (u16, i64, Value) {
    let v = r
        .json()
        .unwrap_or_else(|| panic!("JSON body: {}", r.text()));
    (
        r.status,
        v["error"]["code"].as_i64().unwrap_or_default(),
        v["error"].clone(),
    )
}

#[actix_rt::test]
async fn refuses_what_the_spec_refuses() {
    let server = FakeServer::start(ServerOptions::modern());
    let c = StreamableClient::new(&server.url(), &[]);
    assert_eq!(c.open_get(None).await.unwrap().status, 405);
    assert_eq!(c.delete().await.unwrap(), 405);

    let legacy_init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = c.post_raw(legacy_init, &[]).await.unwrap();
    assert_eq!(
        (error_of(&r).0, error_of(&r).1),
        (400, -32020),
        "no version header"
    );
    let r = c
        .post_raw(legacy_init, &[("mcp-protocol-version", "2025-06-18")])
        .await
        .unwrap();
    let (status, code, error) = error_of(&r);
    assert_eq!((status, code), (400, -32022));
    assert_eq!(error["data"]["supported"], json!([V]));
    assert_eq!(error["data"]["requested"], "2025-06-18");

    let no_meta = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = post(&c, no_meta, "tools/list", &[]).await;
    assert_eq!(error_of(&r).0, 400);
    assert_eq!(error_of(&r).1, -32602);

    let other_meta = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                            "params": {"_meta": meta("2025-11-25")}})
    .to_string();
    let r = post(&c, &other_meta, "tools/list", &[]).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (400, -32020));

    let list = stamped("tools/list", json!({}));
    let r = post(&c, &list, "tools/call", &[]).await;
    assert_eq!(
        (error_of(&r).0, error_of(&r).1),
        (400, -32020),
        "Mcp-Method"
    );

    let call = stamped(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let r = post(&c, &call, "tools/call", &[("mcp-name", "other")]).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (400, -32020), "Mcp-Name");

    let init = stamped("initialize", json!({}));
    let r = post(&c, &init, "initialize", &[]).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (404, -32601));
    let ping = stamped("ping", json!({}));
    let r = post(&c, &ping, "ping", &[]).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (404, -32601));

    let regional = stamped(
        "tools/call",
        json!({"name": "regional_echo", "arguments": {"region": "eu", "text": "x"}}),
    );
    let r = post(
        &c,
        &regional,
        "tools/call",
        &[("mcp-name", "regional_echo")],
    )
    .await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (400, -32020), "Mcp-Param");
    let r = post(
        &c,
        &regional,
        "tools/call",
        &[("mcp-name", "regional_echo"), ("mcp-param-region", "eu")],
    )
    .await;
    assert_eq!(r.json().unwrap()["result"]["content"][0]["text"], "eu: x");
}

#[actix_rt::test]
async fn discovers_and_answers_json_or_sse_by_what_comes_first() {
    let server = FakeServer::start(ServerOptions::modern());
    let c = StreamableClient::new(&server.url(), &[]);
    let r = post(
        &c,
        &stamped("server/discover", json!({})),
        "server/discover",
        &[],
    )
    .await;
    let result = r.json().unwrap()["result"].clone();
    assert_eq!(result["supportedVersions"], json!([V]));
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "fake-modern"
    );
    assert!(result["capabilities"]["tools"]["listChanged"] == true);

    let echo = stamped(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let r = post(&c, &echo, "tools/call", &[("mcp-name", "echo")]).await;
    assert_eq!(r.json().unwrap()["result"]["content"][0]["text"], "hi");

    // No logLevel: no log messages, only progress, on an SSE stream.
    let progress = |level: Option<&str>| {
        let mut params = json!({"name": "progress", "arguments": {"steps": 2}});
        params["_meta"] = meta(V);
        params["_meta"]["progressToken"] = json!("t");
        if let Some(l) = level {
            params["_meta"]["io.modelcontextprotocol/logLevel"] = json!(l);
        }
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}).to_string()
    };
    for (level, methods) in [
        (None, vec!["notifications/progress"; 2]),
        (Some("warning"), vec!["notifications/progress"; 2]),
        (
            Some("info"),
            vec![
                "notifications/message",
                "notifications/progress",
                "notifications/message",
                "notifications/progress",
            ],
        ),
    ] {
        let r = post(
            &c,
            &progress(level),
            "tools/call",
            &[("mcp-name", "progress")],
        )
        .await;
        let ex = c.read_exchange(json!(9), r).await.unwrap();
        assert_eq!(ex.notification_methods(), methods, "{level:?}");
        assert_eq!(ex.text(), Some("done 2 steps"));
    }
}

#[actix_rt::test]
async fn asks_through_input_required() {
    let server = FakeServer::start(ServerOptions::modern());
    let c = StreamableClient::new(&server.url(), &[]);
    let call = |params: Value| stamped("tools/call", params);
    let h = [("mcp-name", "sample")];
    let r = post(
        &c,
        &call(json!({"name": "sample", "arguments": {"prompt": "p"}})),
        "tools/call",
        &h,
    )
    .await;
    let result = r.json().unwrap()["result"].clone();
    assert_eq!(result["resultType"], "input_required");
    assert_eq!(
        result["inputRequests"]["sample"]["method"],
        "sampling/createMessage"
    );
    let state = result["requestState"].clone();
    let retry = call(
        json!({"name": "sample", "arguments": {"prompt": "p"}, "requestState": state,
        "inputResponses": {"sample": {"role": "assistant", "content": {"type": "text", "text": "ok"}}}}),
    );
    let r = post(&c, &retry, "tools/call", &h).await;
    assert_eq!(r.json().unwrap()["result"]["content"][0]["text"], "ok");

    let h = [("mcp-name", "ask_forever")];
    let mut state = Value::Null;
    for round in 1..=3 {
        let mut params = json!({"name": "ask_forever", "arguments": {}});
        if !state.is_null() {
            params["requestState"] = state.clone();
            params["inputResponses"] = json!({"roots": {"roots": []}});
        }
        let r = post(&c, &call(params), "tools/call", &h).await;
        let result = r.json().unwrap()["result"].clone();
        assert_eq!(result["resultType"], "input_required", "round {round}");
        state = result["requestState"].clone();
    }
    assert_eq!(state, "round-3");
}

#[actix_rt::test]
async fn listen_streams_are_tagged_filtered_and_can_drop() {
    let server = FakeServer::start(ServerOptions::modern().listen_drop_after(Some(1)));
    let c = StreamableClient::new(&server.url(), &[]);
    let listen = stamped(
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let r = post(&c, &listen, "subscriptions/listen", &[]).await;
    let mut stream = r.into_sse().expect("an SSE stream");
    let ack: Value = serde_json::from_str(&stream.next_event(T).await.unwrap().data).unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    assert!(server.wait_until(|s| s.get_streams() == 1, T).await);

    let prompts = r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#;
    assert_eq!(server.send_unsolicited(prompts), 0, "not asked for");
    let tools = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    assert_eq!(server.send_unsolicited(tools), 1);
    let n: Value = serde_json::from_str(&stream.next_event(T).await.unwrap().data).unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    assert!(stream.next_event(T).await.is_none(), "dropped after one");
    assert!(stream.error().is_none(), "a clean end");
    assert_eq!(server.get_streams(), 0);
}

#[actix_rt::test]
async fn fault_knobs() {
    let server = FakeServer::start(ServerOptions::modern().header_mismatch_on_tool_calls(true));
    let c = StreamableClient::new(&server.url(), &[]);
    let echo = stamped(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let r = post(&c, &echo, "tools/call", &[("mcp-name", "echo")]).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (400, -32020));
    assert_eq!(r.json().unwrap()["id"], 7);

    let server =
        FakeServer::start(ServerOptions::modern().discover_versions(Some(&["2027-01-01"])));
    let c = StreamableClient::new(&server.url(), &[]);
    let r = post(
        &c,
        &stamped("server/discover", json!({})),
        "server/discover",
        &[],
    )
    .await;
    assert_eq!(
        r.json().unwrap()["result"]["supportedVersions"],
        json!(["2027-01-01"])
    );
}
