//! Several bridge replicas sharing a real redis-server, behind a real haproxy that sends
//! every request to the next replica: a session lives on one replica and every request for
//! it — whichever replica it lands on — reaches it; a dead owner's Streamable session is
//! taken over; a forged internal request is refused; Redis going away and coming back.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use mcp_testkit::haproxy::Haproxy;
use mcp_testkit::infra::free_port;
use mcp_testkit::redis_server::RedisServer;
use support::*;

const SECRET: &str = "a-replica-secret-for-tests-0123456789";

/// A secret file that goes away with the test.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(content: &str) -> SecretFile {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let path = std::env::temp_dir().join(format!("mcp-bridge-secret-{name}"));
        std::fs::write(&path, content).unwrap();
        SecretFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One replica on a port picked here (its address must be known before it starts).
fn replica(upstream: &str, redis: &RedisServer, secret: &SecretFile, extra: &[&str]) -> Bridge {
    let addr = free_port().unwrap();
    let listen = addr.to_string();
    let address = format!("http://{addr}");
    let redis_url = redis.url();
    let mut args = vec![
        "mcp-bridge",
        "--upstream",
        upstream,
        "--keepalive",
        "300ms",
        "--upstream-timeout",
        "5s",
        "--redis",
        &redis_url,
        "--replica-address",
        &address,
        "--replica-secret-file",
        secret.path(),
        "--listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    init_logs();
    let cfg = mcp_bridge::Config::from_args(args).expect("valid test config");
    mcp_bridge::spawn(cfg).expect("replica starts")
}

/// `n` replicas in front of `upstream`, and haproxy rotating over them.
struct Group {
    replicas: Vec<Bridge>,
    lb: Haproxy,
    redis: RedisServer,
    _secret: SecretFile,
}

impl Group {
    fn start(n: usize, upstream: &str, extra: &[&str]) -> Group {
        let redis = RedisServer::start();
        let secret = SecretFile::new(SECRET);
        let replicas: Vec<Bridge> = (0..n)
            .map(|_| replica(upstream, &redis, &secret, extra))
            .collect();
        let backends: Vec<SocketAddr> = replicas.iter().map(|b| b.addr).collect();
        let lb = Haproxy::start(&backends);
        Group {
            replicas,
            lb,
            redis,
            _secret: secret,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lb.url())
    }

    fn sessions(&self) -> Vec<usize> {
        self.replicas.iter().map(|b| b.session_count()).collect()
    }
}

fn progress_trace(ex: &mcp_testkit::Exchange) -> Vec<String> {
    notification_trace(&ex.notifications)
}

#[actix_rt::test]
async fn a_streamable_session_is_served_whichever_replica_a_request_lands_on() {
    let server = FakeServer::start(ServerOptions::streamable());
    let group = Group::start(3, &server.url(), &["--admin-listen", "127.0.0.1:0"]);
    let client = StreamableClient::new(&group.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    assert_eq!(group.sessions().iter().sum::<usize>(), 1, "one owner");
    let relayed = || async {
        let mut n = 0;
        for b in &group.replicas {
            let text = raw("GET", &b.admin_url("/metrics"), &[], "").await.body;
            n += text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("mcp_bridge_replica_relays_total{outcome=\"answered\"} ")
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        n
    };
    let before = relayed().await;

    // Six requests rotate over three replicas: two of every three are relayed.
    for i in 0..6 {
        let ex = client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("hi {i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(
            ex.text(),
            Some(format!("hi {i}").as_str()),
            "{:?}",
            ex.response
        );
    }
    assert!(
        relayed().await - before >= 4,
        "two in three of six requests were relayed to the owner"
    );
    let ex = client
        .request("tools/call", progress_call(3, json!("p")))
        .await
        .unwrap();
    assert!(ex.result().is_some(), "{:?}", ex.response);
    let trace = progress_trace(&ex);
    assert!(
        trace.iter().filter(|t| t.starts_with("progress:")).count() == 3,
        "every progress notification of the call, in its own response: {trace:?}"
    );

    // The standalone stream, opened on whichever replica: unsolicited messages arrive.
    let get = client.open_get(None).await.unwrap();
    assert_eq!(get.status, 200, "{}", get.text());
    let mut stream = get.into_sse().expect("an SSE stream");
    let delivered = server.wait_until(|s| s.get_streams() > 0, WAIT).await;
    assert!(delivered, "the owner opened the upstream GET stream");
    server.send_unsolicited(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
    let event = stream
        .next_event(WAIT)
        .await
        .expect("an event on the relayed stream");
    assert!(event.data.contains("tools/list_changed"), "{}", event.data);

    assert_eq!(client.delete().await.unwrap(), 200);
    assert!(
        eventually(|| group.sessions().iter().sum::<usize>() == 0).await,
        "DELETE, wherever it landed, ended the session on its owner: {:?}",
        group.sessions()
    );
    let after = client.request("tools/list", json!({})).await;
    assert!(after.is_err() || after.unwrap().error().is_some());
}

#[actix_rt::test]
async fn a_legacy_client_posts_to_any_replica_and_hears_on_its_stream() {
    let server = FakeServer::start(ServerOptions::streamable());
    let group = Group::start(3, &server.url(), &[]);
    let client = LegacyClient::connect(&group.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2024-11-05").await.unwrap();
    for i in 0..4 {
        let ex = client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("yo {i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(
            ex.text(),
            Some(format!("yo {i}").as_str()),
            "{:?}",
            ex.response
        );
    }
    let ex = client
        .request("tools/call", progress_call(2, json!(7)))
        .await
        .unwrap();
    assert_eq!(
        progress_trace(&ex)
            .iter()
            .filter(|t| t.starts_with("progress:"))
            .count(),
        2,
        "{:?}",
        ex.notifications
    );
    assert_eq!(group.sessions().iter().sum::<usize>(), 1);
}

#[actix_rt::test]
async fn a_forged_or_foreign_internal_request_is_refused() {
    let server = FakeServer::start(ServerOptions::streamable());
    let group = Group::start(2, &server.url(), &[]);
    let client = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let sid = client.session_id().unwrap();
    let list = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#;
    let url = group.replicas[0].url("/mcp");
    let now = mcp_bridge::replica::hop::unix_now();
    let other = mcp_bridge::replica::hop::HopKey::new(b"not-the-shared-secret-at-all!!");
    let right = mcp_bridge::replica::hop::HopKey::new(SECRET.as_bytes());
    for forged in [
        "v1 1 00".to_string(),
        other.sign("POST", "/mcp", &sid, now),
        right.sign("POST", "/mcp", &sid, now - 600),
        right.sign("POST", "/mcp", "another-session", now),
    ] {
        let r = raw(
            "POST",
            &url,
            &[
                JSON,
                ACCEPT_BOTH,
                ("mcp-session-id", &sid),
                ("mcp-bridge-hop", &forged),
            ],
            list,
        )
        .await;
        assert_eq!(r.status, 403, "{forged}: {}", r.body);
    }
    // The real thing passes (what a replica sends).
    let signed = right.sign("POST", "/mcp", &sid, now);
    let r = raw(
        "POST",
        &url,
        &[
            JSON,
            ACCEPT_BOTH,
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-bridge-hop", &signed),
        ],
        list,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A bridge without replicas never accepts the header either.
    let single = bridge(&server.url(), &[]);
    let r = raw(
        "POST",
        &single.url("/mcp"),
        &[JSON, ACCEPT_BOTH, ("mcp-bridge-hop", &signed)],
        INIT,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[actix_rt::test]
async fn a_dead_owners_streamable_session_is_taken_over_and_carries_on() {
    let server = FakeServer::start(ServerOptions::streamable());
    let mut group = Group::start(2, &server.url(), &[]);
    let on_owner = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    on_owner.initialize("2025-06-18").await.unwrap();
    let sid = on_owner.session_id().unwrap();
    let initializes = |s: &FakeServer| {
        s.requests()
            .iter()
            .filter(|r| r.rpc_method().as_deref() == Some("initialize"))
            .count()
    };
    assert_eq!(initializes(&server), 1);

    // The owner dies without a word (its heartbeat key is still there).
    drop(group.replicas.remove(0));
    let elsewhere = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    elsewhere.set_session_id(Some(&sid));
    elsewhere.set_protocol_version(Some("2025-06-18"));
    let ex = elsewhere
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "still here"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("still here"), "{:?}", ex.response);
    assert_eq!(
        initializes(&server),
        2,
        "the upstream re-initialised from the cached initialize"
    );
    let replayed = server
        .requests()
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("notifications/initialized"))
        .count();
    assert_eq!(replayed, 2, "notifications/initialized replayed too");
    assert_eq!(group.replicas[0].session_count(), 1);
    assert_eq!(
        elsewhere.session_id().as_deref(),
        Some(sid.as_str()),
        "same session id"
    );
}

#[actix_rt::test]
async fn without_redis_owned_sessions_work_others_get_503_and_all_recovers() {
    let server = FakeServer::start(ServerOptions::streamable());
    let mut group = Group::start(2, &server.url(), &["--admin-listen", "127.0.0.1:0"]);
    let owner_url = group.replicas[0].url("/mcp");
    let other_url = group.replicas[1].url("/mcp");
    let known = StreamableClient::new(&owner_url, &[]);
    known.initialize("2025-06-18").await.unwrap();
    let unknown = StreamableClient::new(&owner_url, &[]);
    unknown.initialize("2025-06-18").await.unwrap();
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let via_other = |sid: String| {
        let url = other_url.clone();
        async move {
            let headers = [
                JSON,
                ACCEPT_BOTH,
                ("mcp-session-id", sid.as_str()),
                ("mcp-protocol-version", "2025-06-18"),
            ];
            raw("POST", &url, &headers, list).await
        }
    };
    // The other replica has relayed for `known` before: it remembers where it lives.
    assert_eq!(via_other(known.session_id().unwrap()).await.status, 200);

    group.redis.kill();
    let r = via_other(unknown.session_id().unwrap()).await;
    assert_eq!(
        r.status, 503,
        "a session never looked up cannot be found: {}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    let r = via_other(known.session_id().unwrap()).await;
    assert_eq!(r.status, 200, "a known route needs no Redis: {}", r.body);
    let ex = unknown.request("tools/list", json!({})).await.unwrap();
    assert!(ex.result().is_some(), "the owner still serves its session");
    let ready = raw("GET", &group.replicas[1].admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("redis unreachable"), "{}", ready.body);
    let fresh = StreamableClient::new(&other_url, &[]);
    assert!(
        fresh.initialize("2025-06-18").await.is_err(),
        "no new session that the other replicas could not find"
    );

    // Redis comes back empty: the owner writes its records back, and lookups work again.
    group.redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if via_other(unknown.session_id().unwrap()).await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "lookups recover by themselves once Redis is back"
    );
    let ready = raw("GET", &group.replicas[1].admin_url("/readyz"), &[], "").await;
    assert!(!ready.body.contains("redis unreachable"), "{}", ready.body);
    assert!(fresh.initialize("2025-06-18").await.is_ok());
}

#[actix_rt::test]
async fn with_redis_replay_a_resume_after_the_owners_loss_gets_what_it_missed() {
    let server = FakeServer::start(ServerOptions::streamable());
    let mut group = Group::start(2, &server.url(), &["--redis-replay"]);
    let client = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let sid = client.session_id().unwrap();

    // A slow call: one log message and one progress notification per step.
    let call = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 20, "delay_ms": 150},
                   "_meta": {"progressToken": "slow"}}});
    let resp = client.post_raw(&call.to_string(), &[]).await.unwrap();
    let mut stream = resp.into_sse().expect("an SSE answer");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = stream.next_event(WAIT).await.expect("an event");
        if e.data.is_empty() {
            continue; // priming
        }
        seen.push(e);
    }
    let last_seen = seen[1].id.clone().expect("resumable events carry ids");

    // The owner emits two more events the client does not read, and they reach Redis.
    let redis = redis::Client::open(group.redis.url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let key = format!("mcp-bridge:events:{sid}");
    let mut mirrored = 0;
    for _ in 0..200 {
        mirrored = redis::cmd("XLEN")
            .arg(&key)
            .query_async::<i64>(&mut conn)
            .await
            .unwrap();
        // initialize (waiting, its answer, answered), the call waiting, four events.
        if mirrored >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(mirrored >= 8, "{mirrored} entries mirrored");

    // The owner is lost; the client resumes where it stopped, on the other replica.
    drop(stream);
    drop(group.replicas.remove(0));
    let other = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    other.set_session_id(Some(&sid));
    other.set_protocol_version(Some("2025-06-18"));
    let resumed = other.open_get(Some(&last_seen)).await.unwrap();
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    let mut stream = resumed.into_sse().unwrap();
    let mut replayed: Vec<Value> = Vec::new();
    while let Some(e) = stream.next_event(WAIT).await {
        if !e.data.is_empty() {
            replayed.push(serde_json::from_str(&e.data).unwrap());
        }
    }
    assert!(replayed.len() >= 3, "{replayed:?}");
    let trace = notification_trace(&replayed[..replayed.len() - 1]);
    assert_eq!(
        &trace[..2],
        ["log:step 2", "progress:2/20"],
        "the events after the client's last id, in order: {replayed:?}"
    );
    let last = replayed.last().unwrap();
    assert_eq!(last["id"], 77, "{last}");
    assert!(
        last["error"]["message"].as_str().unwrap().contains("lost"),
        "the call the lost replica never answered is answered with an error: {last}"
    );
}

/// A 2026-07-28 client's retry (MRTR) lands on another replica than the one holding its
/// call: the `requestState` names the holder, and the retry is relayed there.
#[actix_rt::test]
async fn a_sessionless_retry_landing_on_another_replica_reaches_the_waiting_call() {
    let server = FakeServer::start(ServerOptions::legacy());
    let group = Group::start(2, &server.url(), &[]);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
    });
    let call = |replica: usize, id: u64, extra: Value| {
        let url = group.replicas[replica].url("/mcp");
        let mut params =
            json!({"name": "sample", "arguments": {"prompt": "write a haiku"}, "_meta": meta});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        async move {
            let headers = [
                JSON,
                ACCEPT_BOTH,
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "sample"),
            ];
            let r = raw("POST", &url, &headers, &body.to_string()).await;

            let data = r
                .body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .rfind(|d| d.contains("\"result\"") || d.contains("\"error\""))
                .unwrap_or(r.body.as_str())
                .to_owned();
            serde_json::from_str::<Value>(&data).unwrap_or_else(|_| panic!("{}", r.body))
        }
    };
    let asked = call(0, 1, json!({})).await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let key = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let state = result["requestState"].as_str().unwrap().to_owned();

    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "sampled by the client"}, "model": "m"});
    let done = call(
        1,
        2,
        json!({"inputResponses": {key.as_str(): sampled}, "requestState": state}),
    )
    .await;
    assert_eq!(done["id"], 2, "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "sampled by the client",
        "{done}"
    );

    // A state naming a replica that is gone is refused like an expired one.
    let gone = state.replacen(state.split('~').next().unwrap(), "0000000000000000", 1);
    let refused = call(
        1,
        3,
        json!({"inputResponses": {key.as_str(): sampled}, "requestState": gone}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
}

/// Redis restarts empty between two heartbeats (no beat ever fails): the owner notices its
/// own registration is gone and writes its records back.
#[actix_rt::test]
async fn a_redis_restart_too_short_for_a_failed_beat_still_gets_the_records_back() {
    let server = FakeServer::start(ServerOptions::streamable());
    let mut group = Group::start(2, &server.url(), &[]);
    let owner = StreamableClient::new(&group.replicas[0].url("/mcp"), &[]);
    owner.initialize("2025-06-18").await.unwrap();
    let sid = owner.session_id().unwrap();
    group.redis.kill();
    group.redis.restart().unwrap();
    let url = group.replicas[1].url("/mcp");
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let headers = [
        JSON,
        ACCEPT_BOTH,
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let status = raw("POST", &url, &headers, list).await.status;
        statuses.push(status);
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
}
