//! A Streamable upstream that answers a request with a JSON body holding no response to it
//! (only a notification, or a response to another id): the client gets a prompt error
//! instead of waiting forever, as it does when an SSE answer ends early.

mod support;

use support::*;

const ONLY_A_NOTIFICATION: &str =
    r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
const ANOTHER_ID: &str = r#"{"jsonrpc":"2.0","id":"someone-else","result":{}}"#;

#[actix_rt::test]
async fn streamable_client_gets_an_error_not_a_hang() {
    for body in [ONLY_A_NOTIFICATION, ANOTHER_ID] {
        let server = FakeServer::start(
            ServerOptions::streamable()
                .json_response(true)
                .json_answer_without_response(Some(body)),
        );
        let bridge = bridge(&server.url(), &[]);
        let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
        client.set_timeout(WAIT);
        client.initialize("2025-06-18").await.unwrap();
        let ex = client
            .request("tools/list", json!({}))
            .await
            .expect("answered");
        assert_eq!(ex.error().expect("an error")["code"], -32000, "{body}");
        assert_eq!(ex.response["id"], json!(client.next_id() - 1));
    }
}

#[actix_rt::test]
async fn legacy_client_gets_an_error_not_a_hang() {
    for body in [ONLY_A_NOTIFICATION, ANOTHER_ID] {
        let server = FakeServer::start(
            ServerOptions::streamable()
                .json_response(true)
                .json_answer_without_response(Some(body)),
        );
        let bridge = bridge(&server.url(), &["--upstream-transport", "streamable"]);
        let client = LegacyClient::connect(&bridge.url("/sse"), &[])
            .await
            .unwrap();
        client.set_timeout(WAIT);
        client.initialize("2025-06-18").await.unwrap();
        let ex = client
            .request("tools/list", json!({}))
            .await
            .expect("answered");
        assert_eq!(ex.error().expect("an error")["code"], -32000, "{body}");
    }
}
