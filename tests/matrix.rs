//! Every client transport × every server transport through one bridge in `auto` mode, plus
//! following a server that changes transport, and proxy-friendly endpoints.

mod support;

use mcp_testkit::{McpClient, SAMPLING_REPLY_TEXT};
use support::*;

/// A client of `kind` (legacy on the bridge's `/sse`, Streamable on its `/mcp`), driven
/// through the testkit's one client trait.
async fn connect(kind: Transport, bridge: &Bridge) -> Box<dyn McpClient> {
    let path = match kind {
        Transport::Legacy => "/sse",
        Transport::Streamable => "/mcp",
    };
    mcp_testkit::connect(kind, &bridge.url(path), &[])
        .await
        .unwrap_or_else(|e| panic!("{kind:?} connect: {e}"))
}

async fn request(client: &dyn McpClient, method: &str, params: Value) -> mcp_testkit::Exchange {
    client
        .request(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Legacy: the SSE stream is dropped; Streamable: DELETE, answered 200.
async fn teardown(client: &dyn McpClient) {
    if let Some(status) = client.close().await.unwrap() {
        assert_eq!(status, 200);
    }
}

/// initialize, tools/list, a tool with progress + logging, a server→client request, teardown.
async fn scenario(kind: Transport, server: &FakeServer, bridge: &Bridge) {
    let client = connect(kind, bridge).await;
    let init = client.initialize("2025-06-18").await.expect("initialize");
    assert!(init["serverInfo"]["name"]
        .as_str()
        .unwrap()
        .starts_with("fake-"));
    let tools = request(&*client, "tools/list", json!({})).await;
    assert!(tools.result().unwrap()["tools"].as_array().unwrap().len() >= 5);
    let call = request(&*client, "tools/call", progress_call(2, json!("m"))).await;
    assert_eq!(
        notification_trace(&call.notifications),
        ["log:step 1", "progress:1/2", "log:step 2", "progress:2/2"],
        "{kind:?} → {:?}",
        server.transport()
    );
    let sample = request(
        &*client,
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "?"}}),
    )
    .await;
    assert_eq!(sample.text(), Some(SAMPLING_REPLY_TEXT));
    teardown(&*client).await;
    assert!(
        eventually(|| bridge.session_count() == 0).await,
        "bridge session ends"
    );
    let upstream_closed = match server.transport() {
        Transport::Streamable => server.wait_until(|s| s.deletes() == 1, WAIT).await,
        Transport::Legacy => server.wait_until(|s| s.session_count() == 0, WAIT).await,
    };
    assert!(
        upstream_closed,
        "{kind:?} → {:?}: upstream session closed",
        server.transport()
    );
}

async fn cell(kind: Transport, opts: ServerOptions) {
    let server = FakeServer::start(opts);
    let bridge = bridge(&server.url(), &[]); // auto
    scenario(kind, &server, &bridge).await;
}

#[actix_rt::test]
async fn legacy_client_legacy_server() {
    cell(Transport::Legacy, ServerOptions::legacy()).await;
}

#[actix_rt::test]
async fn legacy_client_streamable_server() {
    cell(Transport::Legacy, ServerOptions::streamable()).await;
}

#[actix_rt::test]
async fn streamable_client_legacy_server() {
    cell(
        Transport::Streamable,
        ServerOptions::legacy().endpoint_style(EndpointStyle::Py),
    )
    .await;
}

#[actix_rt::test]
async fn streamable_client_streamable_server() {
    cell(Transport::Streamable, ServerOptions::streamable()).await;
}

#[actix_rt::test]
async fn both_generations_at_once_in_front_of_one_server() {
    for opts in [ServerOptions::legacy(), ServerOptions::streamable()] {
        let server = FakeServer::start(opts);
        let bridge = bridge(&server.url(), &[]);
        let old = connect(Transport::Legacy, &bridge).await;
        let new = connect(Transport::Streamable, &bridge).await;
        old.initialize("2024-11-05").await.expect("initialize");
        new.initialize("2025-11-25").await.expect("initialize");
        let (a, b) = tokio::join!(
            request(&*old, "tools/call", progress_call(3, json!("old"))),
            request(&*new, "tools/call", progress_call(3, json!("new")))
        );
        assert_eq!(notification_trace(&a.notifications).len(), 6);
        assert_eq!(notification_trace(&b.notifications).len(), 6);
        assert_eq!(bridge.session_count(), 2);
    }
}

#[actix_rt::test]
async fn bridge_follows_the_server_when_it_changes_transport() {
    // One URL whose server is upgraded (legacy → Streamable), then downgraded, on the same
    // port, while the bridge keeps running.
    let first = FakeServer::start(ServerOptions::legacy().path(Some("/mcp")));
    let addr = first.addr();
    let bridge = bridge(&first.url(), &[]);
    let mut server = first;
    for (opts, kind) in [
        (ServerOptions::legacy(), Transport::Streamable),
        (ServerOptions::streamable(), Transport::Legacy),
        (ServerOptions::legacy(), Transport::Legacy),
        (ServerOptions::streamable(), Transport::Streamable),
    ] {
        if server.transport() != opts.transport {
            server.stop();
            server = FakeServer::start(opts.path(Some("/mcp")).addr(addr));
        }
        let client = connect(kind, &bridge).await;
        let init = client.initialize("2025-06-18").await.expect("initialize");
        let expected = match server.transport() {
            Transport::Legacy => "fake-legacy",
            Transport::Streamable => "fake-streamable",
        };
        assert_eq!(init["serverInfo"]["name"], expected);
        let echo = request(
            &*client,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
        .await;
        assert_eq!(echo.text(), Some("hi"));
        teardown(&*client).await;
        assert!(eventually(|| bridge.session_count() == 0).await);
    }
}

#[actix_rt::test]
async fn endpoint_event_carries_the_public_prefix() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--public-prefix", "/tools/"]);
    let client = LegacyClient::connect(&bridge.url("/sse/"), &[])
        .await
        .unwrap();
    let endpoint = client.endpoint_url();
    assert!(
        endpoint.starts_with(&bridge.url("/tools/messages?sessionId=")),
        "{endpoint}"
    );
}

#[actix_rt::test]
async fn forwarded_headers_only_when_trusted() {
    let server = FakeServer::start(ServerOptions::streamable());
    let headers = [
        ("x-forwarded-prefix", "/edge"),
        ("x-forwarded-host", "mcp.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let endpoint_event = |bridge: &Bridge| {
        let url = bridge.url("/sse");
        async move {
            let client = awc::Client::default();
            let mut req = client
                .get(url)
                .insert_header(("accept", "text/event-stream"));
            for h in headers {
                req = req.insert_header(h);
            }
            let mut resp = req.send().await.unwrap();
            let mut text = String::new();
            while !text.contains("\n\n") {
                use futures_util::StreamExt;
                let chunk = tokio::time::timeout(WAIT, resp.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            text
        }
    };
    let trusting = bridge(&server.url(), &["--trust-forwarded-headers"]);
    let ev = endpoint_event(&trusting).await;
    assert!(
        ev.contains("data: https://mcp.example.com/edge/messages?sessionId="),
        "{ev}"
    );
    let plain = bridge(&server.url(), &[]);
    let ev = endpoint_event(&plain).await;
    assert!(ev.contains("data: /messages?sessionId="), "{ev}");
}
