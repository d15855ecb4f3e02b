//! `subscriptions/listen` for sessionless (2026-07-28) clients in front of sessionful
//! servers (the test kit's legacy SSE and Streamable fakes): the stream opens with the
//! acknowledgement, then carries exactly the change notifications the client opted into,
//! each tagged with its subscription id; listed resources are subscribed upstream and
//! unsubscribed when the client closes the stream; each listen holds an upstream session of
//! its own, never shared across credentials.

mod support;

use std::collections::VecDeque;

use futures_util::StreamExt;
use mcp_testkit::{SseItem, SseParser};
use support::*;

const V: &str = "2026-07-28";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "listen-test", "version": "1"},
    })
}

/// An open listen stream, read event by event.
struct Listen {
    resp: awc::ClientResponse,
    parser: SseParser,
    ready: VecDeque<Value>,
}

impl Listen {
    async fn open(b: &Bridge, token: Option<&str>, id: Value, filter: Value) -> Listen {
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
            "params": {"notifications": filter, "_meta": envelope()},
        });
        let client = awc::Client::builder().disable_timeout().finish();
        let mut req = client
            .post(b.url("/mcp"))
            .insert_header(JSON)
            .insert_header(ACCEPT_BOTH)
            .insert_header(("mcp-protocol-version", V))
            .insert_header(("mcp-method", "subscriptions/listen"));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let resp = tokio::time::timeout(WAIT, req.send_body(body.to_string()))
            .await
            .expect("answered in time")
            .expect("request sent");
        assert_eq!(resp.status().as_u16(), 200, "listen accepted");
        assert!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream")),
            "a listen answers with a stream: {:?}",
            resp.headers()
        );
        Listen {
            resp,
            parser: SseParser::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next message on the stream (keep-alive comments skipped).
    async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(v) = self.ready.pop_front() {
                    return v;
                }
                let chunk = self
                    .resp
                    .next()
                    .await
                    .expect("the listen stream stays open")
                    .expect("readable");
                for item in self.parser.feed(&chunk) {
                    if let SseItem::Event(e) = item {
                        self.ready
                            .push_back(serde_json::from_str(&e.data).expect("JSON data"));
                    }
                }
            }
        })
        .await
        .expect("a message in time")
    }
}

fn updated(uri: &str) -> String {
    json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
        .to_string()
}

fn bare(method: &str) -> String {
    json!({"jsonrpc": "2.0", "method": method}).to_string()
}

/// The recorded upstream requests of `method` (URI of each, and the HTTP path it went to).
fn upstream_calls(server: &FakeServer, method: &str) -> Vec<(String, String)> {
    server
        .requests()
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some(method))
        .map(|r| {
            let uri = r.json().unwrap()["params"]["uri"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (uri, r.path_and_query.clone())
        })
        .collect()
}

async fn acknowledged_first_then_only_what_was_opted_into(server: FakeServer) {
    let b = bridge(&server.url(), &[]);
    let filter = json!({"toolsListChanged": true, "resourceSubscriptions": ["file:///a"]});
    let mut l = Listen::open(&b, None, json!("sub-1"), filter.clone()).await;
    let ack = l.next().await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"], filter,
        "all honoured: {ack}"
    );
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "sub-1", "{ack}");
    let subscribed: Vec<String> = upstream_calls(&server, "resources/subscribe")
        .into_iter()
        .map(|(uri, _)| uri)
        .collect();
    assert_eq!(
        subscribed,
        ["file:///a"],
        "subscribed upstream before the ack"
    );
    // A Streamable upstream's unsolicited messages ride its GET stream: wait until it is up.
    assert!(
        server.wait_until(|s| s.get_streams() == 1, WAIT).await,
        "the listen's upstream session can take unsolicited messages"
    );
    for m in [
        updated("file:///b"),
        bare("notifications/prompts/list_changed"),
        updated("file:///a"),
        bare("notifications/tools/list_changed"),
    ] {
        assert_eq!(server.send_unsolicited(&m), 1, "{m}");
    }
    // In order: what was not opted into would have come first.
    let first = l.next().await;
    assert_eq!(
        first["method"], "notifications/resources/updated",
        "{first}"
    );
    assert_eq!(first["params"]["uri"], "file:///a", "{first}");
    assert_eq!(
        first["params"]["_meta"][SUBSCRIPTION_ID], "sub-1",
        "{first}"
    );
    let second = l.next().await;
    assert_eq!(
        second,
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
               "params": {"_meta": {SUBSCRIPTION_ID: "sub-1"}}}),
        "{second}"
    );
}

#[actix_rt::test]
async fn in_front_of_a_legacy_server_a_listen_gets_its_ack_then_only_what_it_opted_into() {
    acknowledged_first_then_only_what_was_opted_into(FakeServer::start(ServerOptions::legacy()))
        .await;
}

#[actix_rt::test]
async fn in_front_of_a_streamable_server_a_listen_gets_its_ack_then_only_what_it_opted_into() {
    acknowledged_first_then_only_what_was_opted_into(
        FakeServer::start(ServerOptions::streamable()),
    )
    .await;
}

#[actix_rt::test]
async fn closing_a_listen_unsubscribes_upstream_and_the_session_serves_again() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &[]);
    {
        let filter = json!({"resourceSubscriptions": ["file:///a", "file:///b"]});
        let mut l = Listen::open(&b, None, json!(5), filter).await;
        let ack = l.next().await;
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], 5, "{ack}");
        // Dropped here: the client closes the stream.
    }
    let unsubscribed = |s: &FakeServer| upstream_calls(s, "resources/unsubscribe").len() == 2;
    assert!(
        server.wait_until(unsubscribed, WAIT).await,
        "each listed resource unsubscribed upstream: {:?}",
        upstream_calls(&server, "resources/unsubscribe")
    );
    let mut uris: Vec<String> = upstream_calls(&server, "resources/unsubscribe")
        .into_iter()
        .map(|(uri, _)| uri)
        .collect();
    uris.sort();
    assert_eq!(uris, ["file:///a", "file:///b"]);
    // The same client's next listen is served by the session given back, not a new one.
    let mut again = Listen::open(&b, None, json!(6), json!({"toolsListChanged": true})).await;
    assert_eq!(again.next().await["params"]["_meta"][SUBSCRIPTION_ID], 6);
    assert_eq!(server.session_count(), 1, "the listen's session was reused");
}

#[actix_rt::test]
async fn each_listen_holds_its_own_upstream_session_never_shared_across_credentials() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--auth-token", "alpha,beta"]);
    let mut alpha = Listen::open(
        &b,
        Some("alpha"),
        json!(1),
        json!({"resourceSubscriptions": ["file:///a"]}),
    )
    .await;
    alpha.next().await;
    let mut beta = Listen::open(
        &b,
        Some("beta"),
        json!(1),
        json!({"resourceSubscriptions": ["file:///b"]}),
    )
    .await;
    beta.next().await;
    let subscribed = upstream_calls(&server, "resources/subscribe");
    assert_eq!(subscribed.len(), 2, "{subscribed:?}");
    assert_ne!(
        subscribed[0].1, subscribed[1].1,
        "each credential's listen subscribed on its own upstream session"
    );
    assert_eq!(server.session_count(), 2);
    // A request of alpha's while its listen is open gets a session of its own.
    let call = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": envelope()},
    });
    let r = raw(
        "POST",
        &b.url("/mcp"),
        &[
            JSON,
            ACCEPT_BOTH,
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("authorization", "Bearer alpha"),
        ],
        &call.to_string(),
    )
    .await;
    assert!(r.body.contains(r#""text":"hi""#), "{}", r.body);
    assert_eq!(
        server.session_count(),
        3,
        "the listen's session is never lent"
    );
    // Both upstream sessions get both updates; each client only those of its own URIs.
    for uri in ["file:///b", "file:///a"] {
        assert_eq!(server.send_unsolicited(&updated(uri)), 3);
    }
    assert_eq!(alpha.next().await["params"]["uri"], "file:///a");
    assert_eq!(beta.next().await["params"]["uri"], "file:///b");
}

/// In front of a 2026-07-28 upstream the kept session is the bridge's own adapter, which
/// listens upstream itself: the client's listen still gets its own subscription id.
#[actix_rt::test]
async fn in_front_of_a_modern_server_a_listen_gets_the_changes_under_its_own_id() {
    let server = FakeServer::start(ServerOptions::modern());
    let b = bridge(&server.url(), &["--upstream-transport", "streamable-2026"]);
    let mut l = Listen::open(&b, None, json!("mine"), json!({"toolsListChanged": true})).await;
    let ack = l.next().await;
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "{ack}"
    );
    assert!(
        server.wait_until(|s| s.get_streams() == 1, WAIT).await,
        "the adapter's own listen is open upstream"
    );
    assert_eq!(
        server.send_unsolicited(&bare("notifications/tools/list_changed")),
        1
    );
    let changed = l.next().await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"][SUBSCRIPTION_ID], "mine",
        "{changed}"
    );
}
