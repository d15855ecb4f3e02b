//! The raw legacy client against the legacy fake server, in both endpoint styles.

use std::io::{Read, Write};
use std::time::Duration;

use mcp_testkit::{
    EndpointStyle, Error, FakeServer, LegacyClient, LegacyOptions, ServerOptions, SseItem,
    ROOTS_REPLY, SAMPLING_REPLY_TEXT,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);

fn call(name: &str, args: Value) -> Value {
    json!({"name": name, "arguments": args})
}

async fn session(server: &FakeServer) -> LegacyClient {
    let client = LegacyClient::connect(&server.url(), &[])
        .await
        .expect("connect");
    client.initialize("2024-11-05").await.expect("initialize");
    client
}

#[actix_rt::test]
async fn ts_style_initialize_and_list_tools() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = LegacyClient::connect(&server.url(), &[("authorization", "Bearer t")])
        .await
        .unwrap();
    let endpoint = client.endpoint_url();
    let prefix = format!("{}/messages?sessionId=", server.base_url());
    assert!(endpoint.starts_with(&prefix), "{endpoint}");
    assert_eq!(endpoint.len(), prefix.len() + 36, "uuid session id");
    match &client.raw_events()[0] {
        SseItem::Event(e) => assert_eq!(e.event.as_deref(), Some("endpoint")),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.session_count(), 1);

    let result = client.initialize("2024-11-05").await.unwrap();
    assert_eq!(result["protocolVersion"], "2024-11-05");
    assert_eq!(result["serverInfo"]["name"], "fake-legacy");
    let tools = client.request("tools/list", Value::Null).await.unwrap();
    assert_eq!(
        tools.result().unwrap()["tools"].as_array().unwrap().len(),
        8
    );

    let get = &server.requests()[0];
    assert_eq!(
        (get.method.as_str(), get.path_and_query.as_str()),
        ("GET", "/sse")
    );
    assert_eq!(get.header("accept"), Some("text/event-stream"));
    assert_eq!(get.header("authorization"), Some("Bearer t"));
    let post = server
        .wait_for_request(|r| r.method == "POST", T)
        .await
        .unwrap();
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("authorization"), Some("Bearer t"));
    assert!(server
        .notifications()
        .iter()
        .any(|n| n["method"] == "notifications/initialized"));
    // Every message event is named `message`.
    assert!(client.raw_events()[1..]
        .iter()
        .all(|i| matches!(i, SseItem::Event(e) if e.event.as_deref() == Some("message"))));
}

#[actix_rt::test]
async fn py_style_endpoint_crlf_pings_and_redirect() {
    let opts = ServerOptions::legacy()
        .endpoint_style(EndpointStyle::Py)
        .ping_interval(Duration::from_millis(30));
    let server = FakeServer::start(opts);
    let client = session(&server).await;
    let endpoint = client.endpoint_url();
    let prefix = format!("{}/messages/?session_id=", server.base_url());
    assert!(endpoint.starts_with(&prefix), "{endpoint}");
    let id = &endpoint[prefix.len()..];
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        client.request("ping", Value::Null).await.unwrap().result(),
        Some(&json!({}))
    );

    // The slash-less path is redirected, the query kept.
    let slashless = endpoint.replace("/messages/?", "/messages?");
    let r = client.post_raw_to(&slashless, "{}", &[]).await.unwrap();
    assert_eq!(r.status, 307);
    assert_eq!(r.headers["location"], endpoint);
    // Bad ids.
    let bad = format!("{}/messages/?session_id=xyz", server.base_url());
    assert_eq!(
        client.post_raw_to(&bad, "{}", &[]).await.unwrap().status,
        400
    );
    let missing = format!("{}/messages/", server.base_url());
    assert_eq!(
        client
            .post_raw_to(&missing, "{}", &[])
            .await
            .unwrap()
            .status,
        400
    );

    // Raw bytes: CRLF line ends and ping comments.
    let raw = raw_get(server.addr(), Duration::from_millis(200));
    assert!(
        raw.contains("event: endpoint\r\ndata: /messages/?session_id="),
        "{raw}"
    );
    assert!(raw.contains(": ping - "), "{raw}");
    assert!(raw.contains("+00:00\r\n\r\n"), "{raw}");
}

#[actix_rt::test]
async fn ts_style_uses_lf_and_no_pings() {
    let server =
        FakeServer::start(ServerOptions::legacy().ping_interval(Duration::from_millis(10)));
    let raw = raw_get(server.addr(), Duration::from_millis(100));
    let at = raw
        .find("event: endpoint\ndata: /messages?sessionId=")
        .expect(&raw);
    let after_id = at + "event: endpoint\ndata: /messages?sessionId=".len() + 36;
    assert_eq!(
        &raw[after_id..after_id + 2],
        "\n\n",
        "LF line ends: {raw:?}"
    );
    assert!(!raw.contains(": ping"));
}

#[actix_rt::test]
async fn progress_sampling_roots_and_unsolicited() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = session(&server).await;

    let mut params = call("progress", json!({"steps": 2}));
    params["_meta"] = json!({"progressToken": 5});
    let ex = client.request("tools/call", params).await.unwrap();
    assert_eq!(
        ex.notification_methods(),
        [
            "notifications/message",
            "notifications/progress",
            "notifications/message",
            "notifications/progress"
        ]
    );
    assert_eq!(ex.notifications[3]["params"]["progressToken"], 5);
    assert_eq!(ex.text(), Some("done 2 steps"));

    let ex = client
        .request("tools/call", call("sample", json!({"prompt": "q"})))
        .await
        .unwrap();
    assert_eq!(ex.server_requests[0]["method"], "sampling/createMessage");
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
    let ex = client
        .request("tools/call", call("roots", json!({})))
        .await
        .unwrap();
    let roots: Value = serde_json::from_str(ex.text().unwrap()).unwrap();
    assert_eq!(roots, serde_json::from_str::<Value>(ROOTS_REPLY).unwrap());

    // notify: the unrelated message also travels on the one session stream.
    let ex = client
        .request("tools/call", call("notify", json!({"text": "n"})))
        .await
        .unwrap();
    assert_eq!(ex.notifications[0]["params"]["data"], "n");

    // Outside any request, messages queue for next_message.
    assert_eq!(
        server.send_unsolicited(r#"{"jsonrpc":"2.0","method":"a/b"}"#),
        1
    );
    let m = client.next_message(T).await.unwrap();
    assert_eq!(m, r#"{"jsonrpc":"2.0","method":"a/b"}"#);
    assert!(client
        .next_message(Duration::from_millis(50))
        .await
        .is_none());
}

#[actix_rt::test]
async fn concurrent_requests_on_one_session() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = session(&server).await;
    let calls = (0..20).map(|i| {
        let c = &client;
        async move {
            let ex = c
                .request("tools/call", call("echo", json!({"text": format!("m{i}")})))
                .await
                .unwrap();
            assert_eq!(ex.text(), Some(format!("m{i}").as_str()));
        }
    });
    futures_util::future::join_all(calls).await;

    // Progress is routed to the call that owns the token.
    let progress = |token: &str| {
        let mut p = call("progress", json!({"steps": 3, "delay_ms": 5}));
        p["_meta"] = json!({"progressToken": token});
        client.request("tools/call", p)
    };
    let (a, b) = tokio::join!(progress("a"), progress("b"));
    for (ex, token) in [(a.unwrap(), "a"), (b.unwrap(), "b")] {
        let tokens: Vec<&Value> = ex
            .notifications
            .iter()
            .filter(|n| n["method"] == "notifications/progress")
            .map(|n| &n["params"]["progressToken"])
            .collect();
        assert_eq!(tokens, [token; 3]);
    }
}

#[actix_rt::test]
async fn post_statuses_and_exact_ids() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = session(&server).await;
    let ok = client
        .post_raw(r#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#)
        .await
        .unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (202, "Accepted"));
    assert_eq!(
        client.next_message(T).await.unwrap(),
        r#"{"jsonrpc":"2.0","id":"1","result":{}}"#
    );
    client
        .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .await
        .unwrap();
    assert_eq!(
        client.next_message(T).await.unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
    );

    assert_eq!(client.post_raw("{bad").await.unwrap().status, 400);
    assert_eq!(
        client
            .post_raw(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
            .await
            .unwrap()
            .status,
        400
    );
    let base = server.base_url();
    let unknown = format!("{base}/messages?sessionId=00000000-0000-4000-8000-000000000000");
    assert_eq!(
        client
            .post_raw_to(&unknown, "{}", &[])
            .await
            .unwrap()
            .status,
        404
    );
    let missing = format!("{base}/messages");
    assert_eq!(
        client
            .post_raw_to(&missing, "{}", &[])
            .await
            .unwrap()
            .status,
        400
    );
    let endpoint = client.endpoint_url();
    let text = client
        .post_raw_to(
            &endpoint,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &[("content-type", "text/plain")],
        )
        .await
        .unwrap();
    assert_eq!(text.status, 400);
}

#[actix_rt::test]
async fn cancelled_call_gets_no_response() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = session(&server).await;
    let body = r#"{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"slow","arguments":{"ms":200}}}"#;
    assert_eq!(client.post_raw(body).await.unwrap().status, 202);
    client
        .notify("notifications/cancelled", json!({"requestId": 77}))
        .await
        .unwrap();
    assert!(client
        .next_message(Duration::from_millis(600))
        .await
        .is_none());
}

#[actix_rt::test]
async fn session_dies_with_its_stream() {
    let server = FakeServer::start(ServerOptions::legacy());
    let client = session(&server).await;
    let endpoint = client.endpoint_url();
    client.close();
    assert!(server.wait_until(|s| s.session_count() == 0, T).await);
    let other = LegacyClient::connect(&server.url(), &[]).await.unwrap();
    let r = other
        .post_raw_to(
            &endpoint,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Server side: expiry ends the stream cleanly, kill cuts it; both end the session.
    server.expire_sessions();
    assert!(other.wait_closed(T).await);
    let third = LegacyClient::connect(&server.url(), &[]).await.unwrap();
    assert_eq!(server.session_count(), 1);
    server.kill_streams();
    assert!(third.wait_closed(T).await);
    assert!(server.wait_until(|s| s.session_count() == 0, T).await);
    // A request in flight fails with Closed when the stream dies.
    let fourth = session(&server).await;
    let slow = fourth.request("tools/call", call("slow", json!({"ms": 2000})));
    let kill = async {
        let seen = |s: &FakeServer| s.requests().iter().any(|r| r.body_str().contains("slow"));
        assert!(server.wait_until(seen, T).await);
        server.kill_streams();
    };
    let (res, ()) = tokio::join!(slow, kill);
    assert_eq!(res.unwrap_err(), Error::Closed("response"));
}

#[actix_rt::test]
async fn kill_cuts_the_body_without_the_final_chunk() {
    let server = FakeServer::start(ServerOptions::legacy());
    let addr = server.addr();
    let (first_bytes, got_first) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || raw_get_notify(addr, T, Some(first_bytes)));
    got_first.recv_timeout(T).unwrap();
    server.kill_streams();
    let raw = reader.join().unwrap();
    assert!(raw.contains("transfer-encoding: chunked"), "{raw}");
    assert!(raw.contains("event: endpoint"));
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "a killed stream must not end cleanly: {raw:?}"
    );

    // expire_sessions, in contrast, ends the body properly.
    let (first_bytes, got_first) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || raw_get_notify(addr, T, Some(first_bytes)));
    got_first.recv_timeout(T).unwrap();
    server.expire_sessions();
    assert!(reader.join().unwrap().ends_with("0\r\n\r\n"));
}

#[actix_rt::test]
async fn missing_endpoint_hits_the_client_deadline() {
    let server = FakeServer::start(ServerOptions::legacy().send_endpoint(false));
    let opts = LegacyOptions {
        endpoint_timeout: Duration::from_millis(200),
        ..LegacyOptions::default()
    };
    let err = LegacyClient::connect_with(&server.url(), &[], opts)
        .await
        .err()
        .unwrap();
    assert_eq!(err, Error::Timeout("endpoint event"));
}

#[actix_rt::test]
async fn cross_origin_endpoint_is_rejected() {
    // A server announcing a foreign endpoint: a tiny one-shot fake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let body = "event: endpoint\ndata: http://evil.example/messages\n\n";
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n";
        let _ = write!(s, "{head}content-length: {}\r\n\r\n{body}", body.len());
        std::thread::sleep(Duration::from_millis(500));
    });
    let err = LegacyClient::connect(&format!("http://{addr}/sse"), &[])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Protocol(ref m) if m.contains("origin")),
        "{err:?}"
    );
}

/// GET /sse over a bare socket; returns the raw bytes read until EOF or `for_at_most`.
fn raw_get(addr: std::net::SocketAddr, for_at_most: Duration) -> String {
    raw_get_notify(addr, for_at_most, None)
}

/// Like [`raw_get`], signalling `first_bytes` once the response has started.
fn raw_get_notify(
    addr: std::net::SocketAddr,
    for_at_most: Duration,
    mut first_bytes: Option<std::sync::mpsc::Sender<()>>,
) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(for_at_most)).unwrap();
    write!(s, "GET /sse HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + for_at_most;
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(tx) = first_bytes.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
