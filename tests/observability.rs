//! Transport differences, the wire journal, metrics, health and log formats.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use support::*;

/// A bridge with its admin listener and (unless the test names its own) a journal, so that
/// each difference is checked both as a metric and as a structured record.
struct Observed {
    bridge: Bridge,
    journal: Option<PathBuf>,
}

impl std::ops::Deref for Observed {
    type Target = Bridge;
    fn deref(&self) -> &Bridge {
        &self.bridge
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(p) = &self.journal {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bridge_with_admin(upstream: &str, extra: &[&str]) -> Observed {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let journal = (!extra.contains(&"--journal")).then(|| {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        temp_path(&format!("differences-{n}"))
    });
    let mut args = vec!["--admin-listen", "127.0.0.1:0"];
    if let Some(p) = &journal {
        args.extend(["--journal", p.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    Observed {
        bridge: bridge(upstream, &args),
        journal,
    }
}

/// `/metrics` as `series → value`; panics on any line that is not Prometheus text.
async fn scrape(bridge: &Bridge) -> HashMap<String, f64> {
    let r = raw("GET", &bridge.admin_url("/metrics"), &[], "").await;
    assert_eq!(r.status, 200);
    let mut out = HashMap::new();
    for line in r.body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let name_ok = series
            .split('{')
            .next()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
        assert!(name_ok, "bad metric name in {line:?}");
        if let Some(labels) = series.split_once('{').map(|x| x.1) {
            assert!(labels.ends_with('}'), "{line:?}");
        }
        out.insert(
            series.to_owned(),
            value.parse::<f64>().expect("numeric value"),
        );
    }
    out
}

fn diff(m: &HashMap<String, f64>, kind: &str) -> f64 {
    m[&format!("mcp_bridge_differences_total{{kind=\"{kind}\"}}")]
}

/// `kind` was counted in `/metrics` and journaled as a record naming the session, both
/// transports and a reason.
async fn assert_difference(bridge: &Observed, kind: &str) -> Value {
    let m = scrape(bridge).await;
    assert!(diff(&m, kind) >= 1.0, "{kind} not recorded");
    let path = bridge.journal.as_ref().expect("a journal");
    let record = |line: &str| -> Option<Value> {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["type"] == "difference" && v["difference"] == kind).then_some(v)
    };
    let mut found = None;
    eventually(|| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        found = text.lines().find_map(record);
        found.is_some()
    })
    .await;
    let r = found.unwrap_or_else(|| panic!("no journal record of {kind}"));
    assert_eq!(r["session"].as_str().map(str::len), Some(32), "{r}");
    assert!(
        ["sse", "streamable"].contains(&r["client_transport"].as_str().unwrap()),
        "{r}"
    );
    assert!(
        ["pending", "sse", "streamable"].contains(&r["upstream_transport"].as_str().unwrap()),
        "{r}"
    );
    assert!(!r["reason"].as_str().unwrap().is_empty(), "{r}");
    r
}

#[actix_rt::test]
async fn legacy_client_differences() {
    // endpoint_rewritten, protocol_version_header_added, transport_detected,
    // session_reinitialised, error_readdressed, error_synthesized
    let server = FakeServer::start(ServerOptions::streamable().unknown_session_status(500));
    let bridge = bridge_with_admin(&server.url(), &[]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    client.request("tools/list", json!({})).await.unwrap();
    for kind in [
        "endpoint_rewritten",
        "protocol_version_header_added",
        "transport_detected",
    ] {
        assert_difference(&bridge, kind).await;
    }
    // A server that fails the request with HTTP 500 and a null-id JSON-RPC error (not a
    // session-loss signal, so no re-initialisation).
    server.expire_sessions();
    let ex = client.request("tools/list", json!({})).await.unwrap();
    assert_eq!(
        ex.error().unwrap()["code"],
        -32001,
        "the upstream's own error"
    );
    assert_eq!(ex.response["id"], json!(client.next_id() - 1));
    assert_difference(&bridge, "error_readdressed").await;
    assert_difference(&bridge, "error_synthesized").await;

    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge_with_admin(&server.url(), &[]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    server.expire_sessions();
    client.request("tools/list", json!({})).await.unwrap();
    assert_difference(&bridge, "session_reinitialised").await;
}

#[actix_rt::test]
async fn streamable_upstream_stream_differences() {
    // priming_dropped, stream_resumed
    let server = FakeServer::start(
        ServerOptions::streamable()
            .event_ids(true)
            .priming(true)
            .retry_ms(Some(20))
            .drop_post_stream_after(Some(1)),
    );
    let bridge = bridge_with_admin(&server.url(), &[]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-11-25").await.unwrap();
    let ex = client
        .request("tools/call", progress_call(2, json!(1)))
        .await
        .unwrap();
    assert!(ex.result().is_some());
    // Both name the request whose upstream stream it was.
    let primed = assert_difference(&bridge, "priming_dropped").await;
    assert_eq!(primed["method"], "tools/call", "{primed}");
    let resumed = assert_difference(&bridge, "stream_resumed").await;
    assert_eq!(resumed["method"], "tools/call", "{resumed}");
    assert!(resumed["id"].is_number(), "{resumed}");
}

#[actix_rt::test]
async fn streamable_client_to_legacy_differences() {
    // batch_split, notification_rerouted, message_buffered, message_dropped,
    // events_replayed, upstream_endpoint_changed
    let server = FakeServer::start(ServerOptions::legacy());
    let bridge = bridge_with_admin(
        &server.url(),
        &[
            "--upstream-transport",
            "sse",
            "--replay-events",
            "2",
            "--replay-bytes",
            "4MiB",
            "--max-body",
            "1MiB",
        ],
    );
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let batch =
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#;
    let mut s = client
        .post_raw(batch, &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    while s.next_event(WAIT).await.is_some() {}
    assert_difference(&bridge, "batch_split").await;

    client
        .request("tools/call", progress_call(1, json!("t")))
        .await
        .unwrap();
    assert_difference(&bridge, "notification_rerouted").await;

    // No GET stream and nothing in flight: kept for the GET stream; beyond the log's
    // two events, the oldest is dropped (and counted).
    for i in 0..3 {
        server.send_unsolicited(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":"{i}"}}}}"#
        ));
    }
    // Wait until the bridge holds all three (it reports each as buffered).
    let deadline = tokio::time::Instant::now() + WAIT;
    while diff(&scrape(&bridge).await, "message_buffered") < 3.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications not buffered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut get = client.open_get(None).await.unwrap().into_sse().unwrap();
    let first = get.next_event(WAIT).await.unwrap();
    assert!(
        first.data.contains("\"data\":\"1\""),
        "oldest was dropped: {first:?}"
    );
    assert_difference(&bridge, "message_buffered").await;
    assert_difference(&bridge, "message_dropped").await;

    // Reconnect with Last-Event-ID: the event after it is replayed.
    let id = first.id.clone().unwrap();
    drop(get);
    let mut again = client
        .open_get(Some(&id))
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    assert!(again
        .next_event(WAIT)
        .await
        .unwrap()
        .data
        .contains("\"data\":\"2\""));
    assert_difference(&bridge, "events_replayed").await;

    assert_eq!(server.announce_endpoint_again(), 1);
    // The repeated endpoint travels on the upstream stream ahead of this ping's response,
    // so once the ping is answered the difference is on record.
    assert!(client
        .request("ping", json!({}))
        .await
        .unwrap()
        .result()
        .is_some());
    assert_difference(&bridge, "upstream_endpoint_changed").await;
}

fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("mcp-bridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[actix_rt::test]
async fn journal_of_a_known_session_has_exactly_the_expected_lines() {
    let server = FakeServer::start(ServerOptions::streamable());
    let path = temp_path("journal");
    let bridge = bridge(
        &server.url(),
        &[
            "--upstream-transport",
            "streamable",
            "--journal",
            path.to_str().unwrap(),
            "--journal-bodies",
        ],
    );
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    client.request("tools/list", json!({})).await.unwrap();
    client.close();
    assert!(eventually(|| bridge.session_count() == 0).await);
    drop(bridge); // stops and flushes the journal

    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let shape: Vec<String> = lines
        .iter()
        .map(|l| match l["type"].as_str().unwrap() {
            "message" => format!(
                "{} {} {}",
                l["direction"].as_str().unwrap(),
                l["kind"].as_str().unwrap(),
                l["method"].as_str().unwrap_or("-")
            ),
            "difference" => format!("difference {}", l["difference"].as_str().unwrap()),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "difference endpoint_rewritten",
            "client_to_upstream request initialize",
            "upstream_to_client response -",
            "client_to_upstream notification notifications/initialized",
            "difference protocol_version_header_added",
            "client_to_upstream request tools/list",
            "upstream_to_client response -",
            "session_end",
        ]
    );
    let session = lines[0]["session"].as_str().unwrap();
    for l in &lines {
        assert_eq!(l["session"], session);
        assert_eq!(l["client_transport"], "sse");
        assert!(l["ts"].as_f64().unwrap() > 1.7e9);
    }
    assert_eq!(
        lines[1]["id"], lines[2]["id"],
        "request and response ids pair up"
    );
    assert_eq!(lines[2]["body"]["result"]["protocolVersion"], "2025-06-18");
    assert!(lines[1]["size"].as_u64().unwrap() > 50);
    assert_eq!(lines[7]["ended"], "client_closed");

    // The summary tool reads it back.
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
        .args(["journal", "summarize", path.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("| tools/list | 1 | 0 |"), "{report}");
    assert!(report.contains("| initialize | 1 | 0 |"), "{report}");
    assert!(report.contains("endpoint_rewritten=1"), "{report}");
    let _ = std::fs::remove_file(&path);
}

#[actix_rt::test]
async fn full_journal_queue_drops_lines_and_never_blocks_relaying() {
    // A FIFO nobody reads: the journal writer blocks opening it, so its queue fills.
    let fifo = temp_path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge_with_admin(
        &server.url(),
        &["--journal", fifo.to_str().unwrap(), "--journal-queue", "4"],
    );
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request("tools/call", progress_call(20, json!("j")))
        .await
        .unwrap();
    assert_eq!(ex.notifications.len(), 40, "relaying went on");
    let dropped = scrape(&bridge).await["mcp_bridge_journal_dropped_total"];
    assert!(dropped >= 30.0, "dropped {dropped}");
    // Unblock the writer so the bridge can stop and flush.
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::io::read_to_string(std::fs::File::open(fifo).unwrap()).unwrap()
    });
    drop(bridge);
    let written = reader.join().unwrap();
    assert!(
        written.lines().count() <= 6,
        "only the queued lines: {written}"
    );
    let _ = std::fs::remove_file(&fifo);
}

#[actix_rt::test]
async fn metrics_move_with_sessions_and_messages() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge_with_admin(&server.url(), &[]);
    let pair = "mcp_bridge_sessions{client=\"sse\",upstream=\"streamable\"}";
    let sent = "mcp_bridge_messages_total{client=\"sse\",direction=\"client_to_upstream\",kind=\"request\"}";
    let before = scrape(&bridge).await;
    assert_eq!(before[pair], 0.0);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    client.request("tools/list", json!({})).await.unwrap();
    let during = scrape(&bridge).await;
    assert_eq!(during[pair], 1.0);
    assert_eq!(during[sent], before[sent] + 2.0);
    assert_eq!(
        during["mcp_bridge_request_duration_seconds_count{client=\"sse\",method=\"tools/list\"}"],
        1.0
    );
    client.close();
    assert!(eventually(|| bridge.session_count() == 0).await);
    assert_eq!(scrape(&bridge).await[pair], 0.0);
}

#[actix_rt::test]
async fn readyz_follows_the_upstream() {
    let mut server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge_with_admin(&server.url(), &[]);
    assert_eq!(
        raw("GET", &bridge.admin_url("/healthz"), &[], "")
            .await
            .status,
        200
    );
    let ready = raw("GET", &bridge.admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);
    assert_eq!(
        ready.json()["transport"],
        "unknown",
        "nothing detected before a session"
    );
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let ready = raw("GET", &bridge.admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.json()["transport"], "streamable");
    server.stop();
    let down = raw("GET", &bridge.admin_url("/readyz"), &[], "").await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["ready"], false);
}

#[actix_rt::test]
async fn json_log_lines_are_each_one_object() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (mut child, base) = spawn_binary(&[
        "--upstream",
        &server.url(),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--keepalive",
        "200ms",
    ]);
    let client = LegacyClient::connect(&format!("{base}/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    client.close();
    assert!(server.wait_until(|s| s.deletes() == 1, WAIT).await);
    child.0.kill().unwrap();
    let stderr = std::io::read_to_string(child.0.stderr.take().unwrap()).unwrap();
    let mut kinds = vec![];
    for line in stderr.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(k) = v["fields"]["kind"].as_str() {
            kinds.push(k.to_owned());
        }
    }
    assert!(kinds.contains(&"transport_detected".to_owned()), "{stderr}");
    assert!(stderr.contains("\"message\":\"session ended\""), "{stderr}");
}
