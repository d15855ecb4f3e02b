//! Two replica defects found by tests/replica_faults.rs, each made deterministic here (real
//! processes, real redis-server). Both failed on the code they were found on (the comments
//! describe that code); fixed in src/replica/hop.rs (`never_delivered`) and
//! src/downstream/replicated.rs (`find`: a draining replica passes a relayed request on).

mod replica_procs;
mod support;

use std::time::Duration;

use replica_procs::{Group, SECRET};
use support::*;

fn group(server: &FakeServer) -> Group {
    let url = server.url();
    Group::start(
        3,
        &[
            "--upstream",
            &url,
            "--upstream-transport",
            "streamable",
            "--upstream-timeout",
            "10s",
            "--drain-timeout",
            "20s",
        ],
        "info",
    )
}

fn count(server: &FakeServer, method: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some(method))
        .count()
}

fn client_of(url: &str, of: &StreamableClient) -> StreamableClient {
    let c = StreamableClient::new(url, &[]);
    c.set_session_id(of.session_id().as_deref());
    c.set_protocol_version(of.protocol_version().as_deref());
    c.set_timeout(Duration::from_secs(30));
    for _ in 0..100 {
        c.next_id(); // ids of its own, apart from the first client's
    }
    c
}

/// A replica relays a call to the owner; the owner forwards it upstream and is killed before
/// its answer begins. The relaying replica reads the closed connection as "owner
/// unreachable" (src/replica/hop.rs: every `SendRequestError::Connect(_)`, including awc's
/// `ConnectError::Disconnected`, raised when the connection ends after the request was
/// sent), takes the session over and sends the call upstream a second time.
#[actix_rt::test]
async fn a_call_the_killed_owner_already_forwarded_is_not_sent_upstream_again() {
    // JSON answers: the owner's answer begins only when the tool is done.
    let server = FakeServer::start(ServerOptions::streamable().json_response(true));
    let mut group = group(&server);
    let client = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let via_r1 = client_of(&group.replicas[1].url("/mcp"), &client);
    let call = actix_rt::spawn(async move {
        let slow = json!({"name": "slow", "arguments": {"ms": 3000}});
        via_r1.request("tools/call", slow).await
    });
    let forwarded = server
        .wait_until(|s| count(s, "tools/call") == 1, WAIT)
        .await;
    assert!(
        forwarded,
        "the owner r0 forwarded the relayed call upstream"
    );
    group.replicas[0].kill9();
    let outcome = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the relayed call ends")
        .expect("joined");
    assert_eq!(
        count(&server, "tools/call"),
        1,
        "the upstream ran the call twice (the client sent it once); the client got {:?}\n{}",
        outcome.map(|ex| ex.response),
        group.report()
    );
}

/// The owner drains (SIGTERM): it leaves the directory and ends its idle sessions at once,
/// keeping their records for a takeover. A request another replica relayed to it just before
/// it left (that replica looked the owner up a moment earlier) arrives after the session
/// ended: the draining owner finds the record still its own, picks a live peer
/// (membership.rs `locate`, `any_peer`) but may not relay a relayed request again
/// (replicated.rs `find`: `Located::Owner { .. } if relayed(req) => break`): 404, and the
/// client has lost its session. Seen in the rolling restart under load about once in five
/// runs; here the relayed request is sent as that replica sends it (signed with the shared
/// secret) while another session's call keeps the owner draining.
#[actix_rt::test]
async fn a_request_relayed_to_a_draining_owner_that_just_ended_the_session_is_not_a_404() {
    let server = FakeServer::start(ServerOptions::streamable());
    let mut group = group(&server);
    let r0 = group.replicas[0].url("/mcp");
    let idle = StreamableClient::new(&r0, &[]);
    idle.initialize("2025-06-18").await.unwrap();
    let sid = idle.session_id().unwrap();
    let busy = StreamableClient::new(&r0, &[]);
    busy.initialize("2025-06-18").await.unwrap();
    busy.set_timeout(Duration::from_secs(30));
    let call = actix_rt::spawn(async move {
        let slow = json!({"name": "slow", "arguments": {"ms": 4000}});
        busy.request("tools/call", slow).await
    });
    let started = server
        .wait_until(|s| count(s, "tools/call") == 1, WAIT)
        .await;
    assert!(started, "the busy session's call is in flight on r0");

    group.replicas[0].sigterm();
    group.replicas[0]
        .wait_output(&format!("session ended session={sid}"), WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", group.report()));

    let now = mcp_bridge::replica::hop::unix_now();
    let hop =
        mcp_bridge::replica::hop::HopKey::new(SECRET.as_bytes()).sign("POST", "/mcp", &sid, now);
    let relayed = raw(
        "POST",
        &r0,
        &[
            JSON,
            ACCEPT_BOTH,
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-bridge-hop", &hop),
        ],
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
    )
    .await;
    assert_ne!(
        relayed.status,
        404,
        "the session was lost: {}\n{}",
        relayed.body,
        group.report()
    );
    // While it drains, the replica is not ready and takes no new session.
    let (ready, why) = group.replicas[0].readyz();
    assert_eq!(ready, 503, "{why}");
    assert!(why.contains("draining"), "{why}");
    let fresh = raw("POST", &r0, &[JSON, ACCEPT_BOTH], INIT).await;
    assert_eq!(fresh.status, 503, "{}", fresh.body);
    assert!(fresh.headers.contains_key("retry-after"));
    let _ = call.await;
}
