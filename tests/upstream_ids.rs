//! Upstreams that re-serialise request ids (`1.0` → `1`, `"\u0041"` → `"A"`), as SDK servers
//! do: the answer still reaches its request, and the client gets its id as it wrote it.

mod support;

use support::*;

/// Ids as a client may write them, each of which a JavaScript server echoes differently.
const IDS: [&str; 4] = ["1.0", "1e3", "-0", r#""\u0041""#];

fn ping(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)
}

/// The response's id as the client received it, as raw JSON text.
fn id_text(response: &str) -> String {
    let v: &serde_json::value::RawValue = serde_json::from_str::<
        std::collections::HashMap<String, &serde_json::value::RawValue>,
    >(response)
    .expect("a JSON object")["id"];
    v.get().to_owned()
}

#[actix_rt::test]
async fn streamable_client_gets_its_own_id_spelling_back() {
    let server = FakeServer::start(ServerOptions::streamable().reserialize_ids(true));
    let bridge = bridge(&server.url(), &["--admin-listen", "127.0.0.1:0"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    for id in IDS {
        let mut stream = client
            .post_raw(&ping(id), &[])
            .await
            .unwrap()
            .into_sse()
            .expect("an SSE answer");
        let ev = stream.next_event(WAIT).await.expect("the ping is answered");
        assert_eq!(id_text(&ev.data), id, "{}", ev.data);
        assert!(ev.data.contains("\"result\""), "{}", ev.data);
    }
    // Each restoration is on record.
    let metrics = raw("GET", &bridge.admin_url("/metrics"), &[], "")
        .await
        .body;
    assert!(
        metrics.contains("mcp_bridge_differences_total{kind=\"id_restored\"} 4"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn legacy_client_gets_its_own_id_spelling_back() {
    let server = FakeServer::start(ServerOptions::streamable().reserialize_ids(true));
    let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    for id in IDS {
        assert_eq!(client.post_raw(&ping(id)).await.unwrap().status, 202);
        let answer = client
            .next_message(WAIT)
            .await
            .expect("the ping is answered");
        assert_eq!(id_text(&answer), id, "{answer}");
        assert!(answer.contains("\"result\""), "{answer}");
    }
}
