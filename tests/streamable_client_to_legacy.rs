//! Streamable HTTP clients reach a legacy HTTP+SSE server through the bridge, with the
//! resumability the legacy server lacks.

mod support;

use mcp_testkit::{SseEvent, SseItem, SAMPLING_REPLY_TEXT};
use support::*;

fn legacy(style: EndpointStyle) -> FakeServer {
    FakeServer::start(ServerOptions::legacy().endpoint_style(style))
}

fn front(server: &FakeServer) -> (Bridge, StreamableClient) {
    let bridge = bridge(&server.url(), &["--upstream-transport", "sse"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    (bridge, client)
}

fn data(ev: &SseEvent) -> Value {
    serde_json::from_str(&ev.data).unwrap()
}

#[actix_rt::test]
async fn whole_lifecycle_with_both_legacy_endpoint_styles() {
    for style in [EndpointStyle::Ts, EndpointStyle::Py] {
        let server = legacy(style);
        let (bridge, client) = front(&server);
        let init = client.initialize("2025-06-18").await.unwrap();
        assert_eq!(init["serverInfo"]["name"], "fake-legacy");
        let sid = client.session_id().expect("Mcp-Session-Id minted");
        assert_eq!(sid.len(), 32);
        assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let tools = client.request("tools/list", json!({})).await.unwrap();
        assert!(tools.result().unwrap()["tools"].as_array().unwrap().len() >= 5);
        assert_eq!(client.delete().await.unwrap(), 200);
        assert!(eventually(|| bridge.session_count() == 0).await);
        let after = client.request("tools/list", json!({})).await;
        assert!(format!("{after:?}").contains("404"), "{after:?}");
        // The legacy upstream session ends with its stream.
        assert!(
            server.wait_until(|s| s.session_count() == 0, WAIT).await,
            "{style:?}"
        );
    }
}

#[actix_rt::test]
async fn tool_call_progress_and_logs_on_its_own_stream() {
    let server = legacy(EndpointStyle::Py);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request("tools/call", progress_call(3, json!("p")))
        .await
        .unwrap();
    assert_eq!(
        notification_trace(&ex.notifications),
        [
            "log:step 1",
            "progress:1/3",
            "log:step 2",
            "progress:2/3",
            "log:step 3",
            "progress:3/3"
        ]
    );
    assert!(ex.result().is_some());
}

#[actix_rt::test]
async fn unsolicited_notification_goes_to_the_get_stream() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let mut get = client
        .open_get(None)
        .await
        .unwrap()
        .into_sse()
        .expect("SSE");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#;
    assert_eq!(server.send_unsolicited(note), 1);
    let ev = get
        .next_event(WAIT)
        .await
        .expect("relayed on the GET stream");
    assert_eq!(ev.data, note, "byte for byte");
    assert!(
        ev.id.as_deref().is_some_and(|id| id.starts_with("0-")),
        "{ev:?}"
    );
}

#[actix_rt::test]
async fn notification_before_any_get_stream_waits_for_it() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    server.send_unsolicited(note);
    // Nothing carries it yet; the GET stream, once opened, gets it.
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    assert_eq!(get.next_event(WAIT).await.unwrap().data, note);
}

#[actix_rt::test]
async fn sampling_round_trip() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "x"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.server_requests[0]["method"], "sampling/createMessage");
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
}

#[actix_rt::test]
async fn batch_is_split_and_answered_on_one_stream() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-03-26").await.unwrap();
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}},
        {"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]"#;
    let resp = client.post_raw(batch, &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    let mut stream = resp.into_sse().unwrap();
    let mut ids = vec![];
    while let Some(ev) = stream.next_event(WAIT).await {
        ids.push(data(&ev)["id"].clone());
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&json!("a")) && ids.contains(&json!(2)),
        "ids exact: {ids:?}"
    );
    let only_notes = r#"[{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]"#;
    assert_eq!(client.post_raw(only_notes, &[]).await.unwrap().status, 202);
}

#[actix_rt::test]
async fn dropped_post_stream_resumes_with_every_remaining_event_once() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let call = json!({"jsonrpc":"2.0","id":"call-1","method":"tools/call",
        "params":{"name":"progress","arguments":{"steps":4,"delay_ms":100},"_meta":{"progressToken":"t"}}});
    let resp = client.post_raw(&call.to_string(), &[]).await.unwrap();
    let mut stream = resp.into_sse().unwrap();
    let mut seen = vec![];
    for _ in 0..2 {
        seen.push(data(&stream.next_event(WAIT).await.unwrap()));
    }
    let last_id = stream.last_event_id().unwrap().to_owned();
    drop(stream); // the client's connection breaks mid-call

    let resumed = client.open_get(Some(&last_id)).await.unwrap();
    assert_eq!(resumed.status, 200);
    let mut stream = resumed.into_sse().unwrap();
    while let Some(ev) = stream.next_event(WAIT).await {
        seen.push(data(&ev));
    }
    assert!(stream.is_closed(), "the stream ends after the response");
    let trace = notification_trace(&seen[..seen.len() - 1]);
    assert_eq!(
        trace,
        [
            "log:step 1",
            "progress:1/4",
            "log:step 2",
            "progress:2/4",
            "log:step 3",
            "progress:3/4",
            "log:step 4",
            "progress:4/4"
        ]
    );
    assert_eq!(seen.last().unwrap()["id"], "call-1");
}

#[actix_rt::test]
async fn priming_event_only_for_2025_11_25_clients() {
    for (version, primed) in [("2025-11-25", true), ("2025-06-18", false)] {
        let server = legacy(EndpointStyle::Ts);
        let (_bridge, client) = front(&server);
        client.initialize(version).await.unwrap();
        let resp = client
            .post_raw(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#, &[])
            .await
            .unwrap();
        let mut stream = resp.into_sse().unwrap();
        let first = stream.next_item(WAIT).await.unwrap();
        assert_eq!(
            matches!(first, SseItem::Undispatched(_)),
            primed,
            "{version}: {first:?}"
        );
        // The standalone stream too (its first item is otherwise a keep-alive comment).
        let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
        let first = get.next_item(WAIT).await.unwrap();
        assert_eq!(
            matches!(&first, SseItem::Undispatched(e) if e.id.as_deref() == Some("0-0")),
            primed,
            "GET {version}: {first:?}"
        );
    }
}

#[actix_rt::test]
async fn upstream_that_never_sends_endpoint_fails_initialize_promptly() {
    let server = FakeServer::start(ServerOptions::legacy().send_endpoint(false));
    let (bridge, client) = front(&server);
    let resp = client.post_raw(INIT, &[]).await.unwrap();
    assert_eq!(resp.status, 504);
    assert_eq!(resp.json().unwrap()["error"]["code"], -32000);
    assert_eq!(
        bridge.session_count(),
        0,
        "no session for a failed initialize"
    );
}

#[actix_rt::test]
async fn upstream_stream_dying_mid_call_errors_the_call_and_ends_the_session() {
    let server = legacy(EndpointStyle::Ts);
    let (bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let resp = client
        .post_raw(
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow","arguments":{"ms":5000}}}"#,
            &[],
        )
        .await
        .unwrap();
    let mut stream = resp.into_sse().unwrap();
    server.kill_streams();
    let ev = stream.next_event(WAIT).await.expect("an error, not a hang");
    let err = data(&ev);
    assert_eq!(err["id"], 9);
    assert_eq!(err["error"]["code"], -32000);
    assert!(eventually(|| bridge.session_count() == 0).await);
    let later = client
        .post_raw(r#"{"jsonrpc":"2.0","id":10,"method":"tools/list"}"#, &[])
        .await
        .unwrap();
    assert_eq!(later.status, 404);
}

#[actix_rt::test]
async fn second_get_takes_the_standalone_stream_over() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let mut first = client.open_get(None).await.unwrap().into_sse().unwrap();
    let mut second = client.open_get(None).await.unwrap().into_sse().unwrap();
    assert!(
        first.next_event(WAIT).await.is_none() && first.is_closed(),
        "older GET ends"
    );
    let note = r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#;
    server.send_unsolicited(note);
    assert_eq!(second.next_event(WAIT).await.unwrap().data, note);
}

#[actix_rt::test]
async fn json_ids_keep_their_type() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    for id in [json!("1"), json!(1)] {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"ping"}).to_string();
        let mut s = client
            .post_raw(&body, &[])
            .await
            .unwrap()
            .into_sse()
            .unwrap();
        assert_eq!(data(&s.next_event(WAIT).await.unwrap())["id"], id);
    }
}

/// Two calls in flight at once, with ids `"1"` and `1`: each response reaches the stream of
/// the request with exactly its id, each progress notification the stream owning its token.
/// Log lines, which a legacy server relates to nothing, go to the only call in flight or,
/// while both run, wait for the GET stream: none is lost.
#[actix_rt::test]
async fn concurrent_calls_are_routed_by_exact_id_and_progress_token() {
    let server = legacy(EndpointStyle::Ts);
    let (_bridge, client) = front(&server);
    client.initialize("2025-06-18").await.unwrap();
    let call = |id: Value, token: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "progress", "arguments": {"steps": 3, "delay_ms": 40},
            "_meta": {"progressToken": token}}})
        .to_string()
    };
    let a = client.post_raw(&call(json!("1"), "a"), &[]).await.unwrap();
    let b = client.post_raw(&call(json!(1), "b"), &[]).await.unwrap();
    let (a, b) = tokio::join!(
        client.read_exchange(json!("1"), a),
        client.read_exchange(json!(1), b)
    );
    let mut logs = Vec::new();
    for (ex, token) in [(a.unwrap(), "a"), (b.unwrap(), "b")] {
        assert_eq!(ex.text(), Some("done 3 steps"));
        let (progress, other): (Vec<Value>, Vec<Value>) = ex
            .notifications
            .into_iter()
            .partition(|n| n["method"] == "notifications/progress");
        assert_eq!(
            notification_trace(&progress),
            ["progress:1/3", "progress:2/3", "progress:3/3"],
            "stream of token {token}"
        );
        assert!(progress
            .iter()
            .all(|n| n["params"]["progressToken"] == token));
        logs.extend(other.iter().map(|n| n["params"]["data"].clone()));
    }
    // The rest of the six log lines were kept for the standalone stream.
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    while logs.len() < 6 {
        let ev = get.next_event(WAIT).await.expect("buffered log line");
        logs.push(data(&ev)["params"]["data"].clone());
    }
    let mut logs: Vec<String> = logs
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    logs.sort();
    assert_eq!(
        logs,
        ["step 1", "step 1", "step 2", "step 2", "step 3", "step 3"]
    );
}
