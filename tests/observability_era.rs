//! Metrics labelled by era: a 2026-07-28 client's requests are counted and timed under the
//! client label `streamable-2026`, apart from a 2025 Streamable client's on the same bridge,
//! and the upstream sessions kept for sessionless clients are a gauge of their own.

mod support;

use std::collections::HashMap;

use support::*;

const V: &str = "2026-07-28";

async fn scrape(b: &Bridge) -> HashMap<String, f64> {
    let r = raw("GET", &b.admin_url("/metrics"), &[], "").await;
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series.to_owned(), value.parse().expect("numeric value"))
        })
        .collect()
}

#[actix_rt::test]
async fn requests_of_2026_clients_are_counted_and_timed_under_their_own_client_label() {
    let server = FakeServer::start(ServerOptions::legacy());
    let b = bridge(&server.url(), &["--admin-listen", "127.0.0.1:0"]);
    let call = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
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
        ],
        &call.to_string(),
    )
    .await;
    assert!(r.body.contains(r#""text":"hi""#), "{}", r.body);
    let client = StreamableClient::new(&b.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    client.request("tools/list", json!({})).await.unwrap();

    let m = scrape(&b).await;
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(
            r#"mcp_bridge_request_duration_seconds_count{client="streamable-2026",method="tools/call"}"#
        ),
        1.0,
        "{m:#?}"
    );
    assert_eq!(
        get(
            r#"mcp_bridge_request_duration_seconds_count{client="streamable",method="tools/list"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"mcp_bridge_request_duration_seconds_count{client="streamable-2026",method="tools/list"}"#
        ),
        0.0,
        "the 2025 client's request is not the 2026 client's"
    );
    let sent = |client: &str| {
        get(&format!(
            r#"mcp_bridge_messages_total{{client="{client}",direction="client_to_upstream",kind="request"}}"#
        ))
    };
    // The 2026 client: the kept session's initialize and the call; the 2025 client: its
    // initialize and tools/list.
    assert_eq!(sent("streamable-2026"), 2.0, "{m:#?}");
    assert_eq!(sent("streamable"), 2.0, "{m:#?}");
    assert_eq!(get("mcp_bridge_sessionless_upstream_sessions"), 1.0);
}
