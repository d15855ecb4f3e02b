//! Every client transport × every server transport through one bridge in `auto` mode, plus
//! following a server that changes transport, and proxy-friendly endpoints.

mod support;

use mcp_testkit::SAMPLING_REPLY_TEXT;
use support::*;

#[derive(Clone, Copy, Debug)]
enum ClientKind {
    Legacy,
    Streamable,
}

/// One client of either generation, driven through the same scenario.
enum Client {
    Legacy(LegacyClient),
    Streamable(StreamableClient),
}

impl Client {
    async fn connect(kind: ClientKind, bridge: &Bridge) -> Client {
        match kind {
            ClientKind::Legacy => Client::Legacy(
                LegacyClient::connect(&bridge.url("/sse"), &[])
                    .await
                    .expect("legacy connect"),
            ),
            ClientKind::Streamable => {
                Client::Streamable(StreamableClient::new(&bridge.url("/mcp"), &[]))
            }
        }
    }

    async fn initialize(&self, version: &str) -> Value {
        match self {
            Client::Legacy(c) => c.initialize(version).await,
            Client::Streamable(c) => c.initialize(version).await,
        }
        .expect("initialize")
    }

    async fn request(&self, method: &str, params: Value) -> mcp_testkit::Exchange {
        match self {
            Client::Legacy(c) => c.request(method, params).await,
            Client::Streamable(c) => c.request(method, params).await,
        }
        .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn teardown(&self) {
        match self {
            Client::Legacy(c) => c.close(),
            Client::Streamable(c) => assert_eq!(c.delete().await.unwrap(), 200),
        }
    }
}

/// initialize, tools/list, a tool with progress + logging, a server→client request, teardown.
async fn scenario(kind: ClientKind, server: &FakeServer, bridge: &Bridge) {
    let client = Client::connect(kind, bridge).await;
    let init = client.initialize("2025-06-18").await;
    assert!(init["serverInfo"]["name"]
        .as_str()
        .unwrap()
        .starts_with("fake-"));
    let tools = client.request("tools/list", json!({})).await;
    assert!(tools.result().unwrap()["tools"].as_array().unwrap().len() >= 5);
    let call = client
        .request("tools/call", progress_call(2, json!("m")))
        .await;
    assert_eq!(
        notification_trace(&call.notifications),
        ["log:step 1", "progress:1/2", "log:step 2", "progress:2/2"],
        "{kind:?} → {:?}",
        server.transport()
    );
    let sample = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "?"}}),
        )
        .await;
    assert_eq!(sample.text(), Some(SAMPLING_REPLY_TEXT));
    client.teardown().await;
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

async fn cell(kind: ClientKind, opts: ServerOptions) {
    let server = FakeServer::start(opts);
    let bridge = bridge(&server.url(), &[]); // auto
    scenario(kind, &server, &bridge).await;
}

#[actix_rt::test]
async fn legacy_client_legacy_server() {
    cell(ClientKind::Legacy, ServerOptions::legacy()).await;
}

#[actix_rt::test]
async fn legacy_client_streamable_server() {
    cell(ClientKind::Legacy, ServerOptions::streamable()).await;
}

#[actix_rt::test]
async fn streamable_client_legacy_server() {
    cell(
        ClientKind::Streamable,
        ServerOptions::legacy().endpoint_style(EndpointStyle::Py),
    )
    .await;
}

#[actix_rt::test]
async fn streamable_client_streamable_server() {
    cell(ClientKind::Streamable, ServerOptions::streamable()).await;
}

#[actix_rt::test]
async fn both_generations_at_once_in_front_of_one_server() {
    for opts in [ServerOptions::legacy(), ServerOptions::streamable()] {
        let server = FakeServer::start(opts);
        let bridge = bridge(&server.url(), &[]);
        let old = Client::connect(ClientKind::Legacy, &bridge).await;
        let new = Client::connect(ClientKind::Streamable, &bridge).await;
        old.initialize("2024-11-05").await;
        new.initialize("2025-11-25").await;
        let (a, b) = tokio::join!(
            old.request("tools/call", progress_call(3, json!("old"))),
            new.request("tools/call", progress_call(3, json!("new")))
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
        (ServerOptions::legacy(), ClientKind::Streamable),
        (ServerOptions::streamable(), ClientKind::Legacy),
        (ServerOptions::legacy(), ClientKind::Legacy),
        (ServerOptions::streamable(), ClientKind::Streamable),
    ] {
        if server.transport() != opts.transport {
            server.stop();
            server = FakeServer::start(opts.path(Some("/mcp")).addr(addr));
        }
        let client = Client::connect(kind, &bridge).await;
        let init = client.initialize("2025-06-18").await;
        let expected = match server.transport() {
            Transport::Legacy => "fake-legacy",
            Transport::Streamable => "fake-streamable",
        };
        assert_eq!(init["serverInfo"]["name"], expected);
        let echo = client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "hi"}}),
            )
            .await;
        assert_eq!(echo.text(), Some("hi"));
        client.teardown().await;
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
