//! The raw Streamable client against the Streamable fake server: proves both before the bridge
//! relies on them.

use std::time::Duration;

use mcp_testkit::{
    Error, FakeServer, ResponseKind, ServerOptions, SseItem, StreamableClient, ROOTS_REPLY,
    SAMPLING_REPLY_TEXT,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);

async fn session(server: &FakeServer, version: &str) -> StreamableClient {
    let client = StreamableClient::new(&server.url(), &[]);
    client.initialize(version).await.expect("initialize");
    client
}

fn call(name: &str, args: Value) -> Value {
    json!({"name": name, "arguments": args})
}

#[actix_rt::test]
async fn initialize_and_list_tools() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = StreamableClient::new(&server.url(), &[("authorization", "Bearer t")]);
    let result = client.initialize("2025-06-18").await.unwrap();
    assert_eq!(result["protocolVersion"], "2025-06-18");
    assert_eq!(result["serverInfo"]["name"], "fake-streamable");
    assert_eq!(
        result["capabilities"],
        json!({
            "tools": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "logging": {},
        })
    );
    assert_eq!(client.protocol_version().as_deref(), Some("2025-06-18"));
    let sid = client.session_id().expect("session id");
    assert_eq!(server.session_count(), 1);

    let tools = client.request("tools/list", Value::Null).await.unwrap();
    let names: Vec<&str> = tools.result().unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "echo",
            "progress",
            "sample",
            "roots",
            "notify",
            "slow",
            "process_items",
            "big"
        ]
    );
    assert!(tools.result().unwrap()["tools"][0]["inputSchema"].is_object());

    let reqs = server.requests();
    assert_eq!(reqs[0].rpc_method().as_deref(), Some("initialize"));
    assert_eq!(reqs[0].header("mcp-session-id"), None);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer t"));
    assert_eq!(
        reqs[1].rpc_method().as_deref(),
        Some("notifications/initialized")
    );
    assert_eq!(reqs[1].header("mcp-session-id"), Some(sid.as_str()));
    assert_eq!(reqs[1].header("mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(
        server.notifications()[0]["method"],
        "notifications/initialized"
    );

    let echo = client
        .request("tools/call", call("echo", json!({"text": "hé"})))
        .await
        .unwrap();
    assert_eq!(echo.text(), Some("hé"));
    let unknown = client.request("nope", Value::Null).await.unwrap();
    assert_eq!(unknown.error().unwrap()["code"], -32601);
}

#[actix_rt::test]
async fn unknown_protocol_version_gets_the_latest() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2099-01-01").await;
    assert_eq!(client.protocol_version().as_deref(), Some("2025-11-25"));
}

#[actix_rt::test]
async fn ids_are_echoed_exactly() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-03-26").await;
    for id in [r#""1""#, "1", r#""x y""#] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let resp = client.post_raw(&body, &[]).await.unwrap();
        let mut stream = resp.into_sse().expect("sse");
        let event = stream.next_event(T).await.unwrap();
        assert_eq!(
            event.data,
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)
        );
        assert!(stream.next_event(T).await.is_none() && stream.is_closed());
    }
}

#[actix_rt::test]
async fn progress_notifications_arrive_in_order_before_the_result() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;
    let mut params = call("progress", json!({"steps": 3}));
    params["_meta"] = json!({"progressToken": "tok-1"});
    let ex = client.request("tools/call", params).await.unwrap();
    assert_eq!(
        ex.notification_methods(),
        [
            "notifications/message",
            "notifications/progress",
            "notifications/message",
            "notifications/progress",
            "notifications/message",
            "notifications/progress"
        ]
    );
    assert_eq!(
        ex.notifications[0]["params"],
        json!({"level": "info", "data": "step 1"})
    );
    assert_eq!(
        ex.notifications[5]["params"],
        json!({"progressToken": "tok-1", "progress": 3, "total": 3, "message": "step 3"})
    );
    assert_eq!(ex.text(), Some("done 3 steps"));

    // Without a token: log messages only; an integer token keeps its type.
    let ex = client
        .request("tools/call", call("progress", json!({"steps": 2})))
        .await
        .unwrap();
    assert_eq!(ex.notification_methods(), ["notifications/message"; 2]);
    let mut params = call("progress", json!({"steps": 1}));
    params["_meta"] = json!({"progressToken": 7});
    let ex = client.request("tools/call", params).await.unwrap();
    assert_eq!(ex.notifications[1]["params"]["progressToken"], 7);
}

#[actix_rt::test]
async fn sampling_and_roots_round_trip() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;
    let ex = client
        .request("tools/call", call("sample", json!({"prompt": "hi"})))
        .await
        .unwrap();
    assert_eq!(ex.server_requests.len(), 1);
    assert_eq!(ex.server_requests[0]["method"], "sampling/createMessage");
    assert_eq!(ex.server_requests[0]["id"], "srv-1");
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
    // The answer was POSTed with the session id and got 202.
    let answer = server
        .wait_for_request(|r| r.body_str().contains(r#""id":"srv-1""#), T)
        .await
        .unwrap();
    assert!(answer.header("mcp-session-id").is_some());

    let ex = client
        .request("tools/call", call("roots", json!({})))
        .await
        .unwrap();
    assert_eq!(ex.server_requests[0]["method"], "roots/list");
    let roots: Value = serde_json::from_str(ex.text().unwrap()).unwrap();
    assert_eq!(roots, serde_json::from_str::<Value>(ROOTS_REPLY).unwrap());
}

#[actix_rt::test]
async fn manual_sampling_answer() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;
    let body = json!({"jsonrpc": "2.0", "id": 50, "method": "tools/call",
        "params": call("sample", json!({"prompt": "p"}))});
    let mut stream = client
        .post_raw(&body.to_string(), &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let ask: Value = serde_json::from_str(&stream.next_event(T).await.unwrap().data).unwrap();
    assert_eq!(ask["params"]["messages"][0]["content"]["text"], "p");
    let status = client
        .respond(
            &ask["id"],
            json!({"role": "assistant", "content": {"type": "text", "text": "mine"}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    let done: Value = serde_json::from_str(&stream.next_event(T).await.unwrap().data).unwrap();
    assert_eq!(done["id"], 50);
    assert_eq!(done["result"]["content"][0]["text"], "mine");
}

#[actix_rt::test]
async fn unsolicited_messages_use_the_get_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;

    // No GET stream yet: unrelated messages are dropped (and counted).
    assert_eq!(
        server.send_unsolicited(r#"{"jsonrpc":"2.0","method":"a"}"#),
        0
    );
    let ex = client
        .request("tools/call", call("notify", json!({"text": "lost"})))
        .await
        .unwrap();
    assert!(ex.notifications.is_empty());
    assert_eq!(server.dropped_unsolicited(), 2);

    let get = client.open_get(None).await.unwrap();
    assert_eq!(get.status, 200);
    let mut get = get.into_sse().unwrap();
    assert_eq!(server.get_streams(), 1);
    assert_eq!(server.open_streams(), 1);
    let second = client.open_get(None).await.unwrap();
    assert_eq!(second.status, 409);

    let ex = client
        .request("tools/call", call("notify", json!({"text": "hi"})))
        .await
        .unwrap();
    assert!(
        ex.notifications.is_empty(),
        "unrelated message must not be on the POST stream"
    );
    assert_eq!(ex.text(), Some("notified"));
    let event = get.next_event(T).await.unwrap();
    let msg: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(msg["params"], json!({"level": "info", "data": "hi"}));

    assert_eq!(
        server.send_unsolicited(r#"{"jsonrpc":"2.0","method":"x/y"}"#),
        1
    );
    assert_eq!(
        get.next_event(T).await.unwrap().data,
        r#"{"jsonrpc":"2.0","method":"x/y"}"#
    );

    // Once the GET is gone, a new one may open.
    drop(get);
    assert!(server.wait_until(|s| s.get_streams() == 0, T).await);
    assert_eq!(client.open_get(None).await.unwrap().status, 200);
}

#[actix_rt::test]
async fn resume_with_last_event_id_after_a_dropped_post_stream() {
    let opts = ServerOptions::streamable()
        .event_ids(true)
        .priming(true)
        .drop_post_stream_after(Some(2));
    let server = FakeServer::start(opts);
    let client = session(&server, "2025-11-25").await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": 9}}});
    let resp = client.post_raw(&body.to_string(), &[]).await.unwrap();
    let mut stream = resp.into_sse().unwrap();
    let items = stream.collect_items(T).await;
    assert!(stream.is_closed() && stream.error().is_none());
    assert_eq!(items.len(), 3, "{items:?}");
    let SseItem::Undispatched(priming) = &items[0] else {
        panic!("first item must be the priming event: {items:?}");
    };
    let priming_id = priming.id.clone().unwrap();
    assert!(priming_id.ends_with("_0"));
    let SseItem::Event(second) = &items[2] else {
        panic!()
    };
    let last = stream.last_event_id().unwrap().to_string();
    assert_eq!(second.id.as_deref(), Some(last.as_str()));

    // Resume: the rest of this stream (2 notifications + ... + response), then it closes.
    let resumed = client.open_get(Some(&last)).await.unwrap();
    assert_eq!(resumed.status, 200);
    let mut resumed = resumed.into_sse().unwrap();
    let mut rest = Vec::new();
    while let Some(e) = resumed.next_event(T).await {
        rest.push(serde_json::from_str::<Value>(&e.data).unwrap());
    }
    assert!(resumed.is_closed());
    assert_eq!(rest.len(), 5);
    assert_eq!(rest[4]["id"], 9);
    assert_eq!(rest[4]["result"]["content"][0]["text"], "done 3 steps");

    // Resuming from the priming id replays everything; a foreign cursor is refused.
    let mut all = client
        .open_get(Some(&priming_id))
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let mut n = 0;
    while all.next_event(T).await.is_some() {
        n += 1;
    }
    assert_eq!(n, 7);
    assert_eq!(client.open_get(Some("999999_1")).await.unwrap().status, 400);

    // request() resumes on its own.
    let mut params = call("progress", json!({"steps": 2}));
    params["_meta"] = json!({"progressToken": "p"});
    let ex = client.request("tools/call", params).await.unwrap();
    assert_eq!(ex.resumptions, 1);
    assert_eq!(ex.notifications.len(), 4);
    assert_eq!(ex.text(), Some("done 2 steps"));
    let get = server
        .wait_for_request(
            |r| r.method == "GET" && r.header("last-event-id").is_some(),
            T,
        )
        .await;
    assert!(get.is_some());
}

#[actix_rt::test]
async fn no_priming_before_2025_11_25_and_no_resume_without_ids() {
    let server = FakeServer::start(ServerOptions::streamable().event_ids(true).priming(true));
    let client = session(&server, "2025-06-18").await;
    let mut s = client
        .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let items = s.collect_items(T).await;
    assert!(
        matches!(&items[..], [SseItem::Event(e)] if e.id.is_some()),
        "{items:?}"
    );

    let server = FakeServer::start(ServerOptions::streamable().drop_post_stream_after(Some(1)));
    let client = session(&server, "2025-11-25").await;
    let err = client
        .request("tools/call", call("progress", json!({"steps": 2})))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Closed("response"));
}

#[actix_rt::test]
async fn delete_then_unknown_session() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;
    assert_eq!(client.delete().await.unwrap(), 200);
    assert_eq!(server.deletes(), 1);
    assert_eq!(server.session_count(), 0);
    let resp = client
        .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#, &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json().unwrap()["error"]["code"], -32001);
    assert_eq!(client.delete().await.unwrap(), 404);
    assert_eq!(server.deletes(), 1);
    let err = client.request("ping", Value::Null).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err:?}");

    let server = FakeServer::start(ServerOptions::streamable().unknown_session_status(400));
    let client = session(&server, "2025-06-18").await;
    server.expire_sessions();
    let resp = client
        .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#, &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 400);
    // Re-initializing (without the stale id) works.
    session(&server, "2025-06-18").await;
    assert_eq!(server.session_count(), 1);
}

#[actix_rt::test]
async fn http_level_validation() {
    let server = FakeServer::start(ServerOptions::streamable().get_stream(false));
    let client = StreamableClient::new(&server.url(), &[]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let status = |r: mcp_testkit::Result<mcp_testkit::StreamableResponse>| r.unwrap().status;

    assert_eq!(
        status(
            client
                .post_raw(init, &[("accept", "application/json")])
                .await
        ),
        406
    );
    assert_eq!(status(client.post_raw(init, &[("accept", "")]).await), 406);
    assert_eq!(
        status(
            client
                .post_raw(init, &[("content-type", "text/plain")])
                .await
        ),
        415
    );
    assert_eq!(status(client.post_raw("{oops", &[]).await), 400);
    assert_eq!(
        status(client.post_raw(init, &[("mcp-session-id", "stale")]).await),
        400
    );
    assert_eq!(
        status(client.post_raw(ping, &[]).await),
        400,
        "no session header"
    );

    client.initialize("2025-06-18").await.unwrap();
    assert_eq!(
        status(
            client
                .post_raw(ping, &[("mcp-protocol-version", "1.0")])
                .await
        ),
        400
    );
    assert_eq!(
        status(client.post_raw(ping, &[("mcp-protocol-version", "")]).await),
        200
    );
    assert_eq!(status(client.open_get(None).await), 405);

    let put = awc::Client::new().put(server.url()).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 405);
    assert_eq!(put.headers().get("allow").unwrap(), "GET, POST, DELETE");
}

#[actix_rt::test]
async fn batches_are_answered_on_one_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-03-26").await;
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/x"},
        {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"text":"t"}}}]"#;
    let mut s = client
        .post_raw(batch, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let mut ids = Vec::new();
    while let Some(e) = s.next_event(T).await {
        ids.push(serde_json::from_str::<Value>(&e.data).unwrap()["id"].clone());
    }
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, [json!("a"), json!("b")]);
    assert!(server
        .notifications()
        .iter()
        .any(|n| n["method"] == "notifications/x"));

    let only_notes = r#"[{"jsonrpc":"2.0","method":"n/1"},{"jsonrpc":"2.0","method":"n/2"}]"#;
    let resp = client.post_raw(only_notes, &[]).await.unwrap();
    assert_eq!(resp.status, 202);
    assert!(matches!(resp.kind, ResponseKind::Empty));
}

#[actix_rt::test]
async fn json_response_mode() {
    let server = FakeServer::start(ServerOptions::streamable().json_response(true));
    let client = session(&server, "2025-06-18").await;
    let mut params = call("progress", json!({"steps": 2}));
    params["_meta"] = json!({"progressToken": 1});
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
    let resp = client.post_raw(&body.to_string(), &[]).await.unwrap();
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.json().unwrap()["result"]["content"][0]["text"],
        "done 2 steps"
    );
    assert_eq!(
        server.dropped_unsolicited(),
        4,
        "related messages have nowhere to go"
    );
    let ex = client
        .request("tools/call", call("big", json!({"bytes": 100_000})))
        .await
        .unwrap();
    assert_eq!(ex.text().unwrap().len(), 100_000);
}

#[actix_rt::test]
async fn cancelled_call_gets_no_response_and_its_stream_stays_open() {
    let server = FakeServer::start(ServerOptions::streamable());
    let client = session(&server, "2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"slow","arguments":{"ms":300}}}"#;
    let mut s = client
        .post_raw(body, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let status = client
        .notify(
            "notifications/cancelled",
            json!({"requestId": "c1", "reason": "test"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    // Longer than the call would have taken: still nothing, still open.
    assert!(s.next_event(Duration::from_millis(800)).await.is_none());
    assert!(!s.is_closed());
    assert!(server
        .notifications()
        .iter()
        .any(|n| n["method"] == "notifications/cancelled"));
    // Deleting the session ends the orphaned stream.
    client.delete().await.unwrap();
    assert!(s.next_event(T).await.is_none() && s.is_closed());
}

#[actix_rt::test]
async fn kill_streams_cuts_connections_mid_body() {
    let server = FakeServer::start(ServerOptions::streamable().event_ids(true).priming(true));
    let client = session(&server, "2025-11-25").await;
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":200}}}"#;
    let mut post = client
        .post_raw(body, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    assert!(matches!(
        post.next_item(T).await,
        Some(SseItem::Undispatched(_))
    ));
    let cursor = post.last_event_id().unwrap().to_string();
    assert!(server.wait_until(|s| s.open_streams() == 2, T).await);
    server.kill_streams();
    // (awc reports a cut chunked body as a plain end; tests/legacy.rs checks the raw bytes.)
    assert!(post.next_event(T).await.is_none() && post.is_closed());
    assert!(get.next_event(T).await.is_none() && get.is_closed());
    // The session survived; with event ids the call's stream can be resumed.
    assert_eq!(server.session_count(), 1);
    let mut resumed = client
        .open_get(Some(&cursor))
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let done: Value = serde_json::from_str(&resumed.next_event(T).await.unwrap().data).unwrap();
    assert_eq!(done["result"]["content"][0]["text"], "slept 200 ms");
}

#[actix_rt::test]
async fn keepalive_comments_on_the_get_stream() {
    let opts = ServerOptions::streamable().keepalive_interval(Some(Duration::from_millis(20)));
    let server = FakeServer::start(opts);
    let client = session(&server, "2025-06-18").await;
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    assert_eq!(
        get.next_item(T).await,
        Some(SseItem::Comment("keepalive".into()))
    );
}
