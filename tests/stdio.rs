//! Stdio upstreams (`--upstream-command`): both client fronts end to end against the test
//! kit's stdio server (examples/stdio_server.rs), and the faults of a child process: one that
//! does not exist, exits at once, crashes mid-call, prints garbage, writes too long a line or
//! ignores SIGTERM. The fault tests run the bridge BINARY and check /proc afterwards: it has
//! no zombie child, and no child left that the test did not expect.

mod support;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use mcp_testkit::SAMPLING_REPLY_TEXT;
use support::*;

/// The test kit's stdio MCP server, built on demand when the run did not build examples.
fn stdio_server() -> String {
    static BUILD: Once = Once::new();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mcp-bridge"));
    let path = bin.with_file_name("examples").join("stdio_server");
    BUILD.call_once(|| {
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
            let ok = std::process::Command::new(cargo)
                .args(["build", "--example", "stdio_server"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(ok.success(), "cargo build --example stdio_server");
        }
    });
    path.to_string_lossy().into_owned()
}

/// A bridge (in-process) in front of a stdio server started with `command`.
fn stdio_bridge(command: &str, extra: &[&str]) -> Bridge {
    init_logs();
    let mut args = vec![
        "mcp-bridge",
        "--upstream-command",
        command,
        "--listen",
        "127.0.0.1:0",
        "--keepalive",
        "300ms",
        "--upstream-timeout",
        "5s",
        "--upstream-stop-grace",
        "300ms",
    ];
    args.extend_from_slice(extra);
    mcp_bridge::spawn(mcp_bridge::Config::from_args(args).expect("valid config")).expect("starts")
}

/// The bridge binary in front of `command` (pool and extra flags as given).
fn stdio_binary(command: &str, extra: &[&str]) -> (ChildGuard, String) {
    let mut args = vec![
        "--upstream-command",
        command,
        "--listen",
        "127.0.0.1:0",
        "--keepalive",
        "300ms",
        "--upstream-timeout",
        "5s",
        "--upstream-stop-grace",
        "300ms",
    ];
    args.extend_from_slice(extra);
    spawn_binary(&args)
}

/// The children of `pid` with their state letter (`Z`: zombie), from /proc.
fn children(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) S ppid …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push((child, state));
        }
    }
    out
}

/// Waits until the bridge has exactly `n` children, none of them a zombie.
async fn settles_to(bridge_pid: u32, n: usize) -> Vec<(u32, char)> {
    let ok = eventually(|| {
        let c = children(bridge_pid);
        c.len() == n && c.iter().all(|(_, s)| *s != 'Z')
    })
    .await;
    let now = children(bridge_pid);
    assert!(ok, "expected {n} live children, no zombie: {now:?}");
    now
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-bridge-stdio-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn check_tools(ex_list: mcp_testkit::Exchange) {
    let tools = ex_list.result().expect("tools/list result")["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(tools.contains(&"progress".to_owned()), "{tools:?}");
}

#[actix_rt::test]
async fn streamable_client_uses_a_stdio_server() {
    let bridge = stdio_bridge(&stdio_server(), &[]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    let init = client.initialize("2025-06-18").await.unwrap();
    assert_eq!(init["serverInfo"]["name"], "mcp-testkit-stdio");
    check_tools(client.request("tools/list", json!({})).await.unwrap()).await;
    let ex = client
        .request("tools/call", progress_call(3, json!("tok")))
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("done 3 steps"));
    assert_eq!(
        notification_trace(&ex.notifications),
        [
            "log:step 1",
            "progress:1/3",
            "log:step 2",
            "progress:2/3",
            "log:step 3",
            "progress:3/3"
        ]
    );
    // Server → client request (sampling), answered by the client, while the call runs.
    let ex = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.server_requests.len(), 1, "{:?}", ex.messages);
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
    // DELETE ends the session and its process; the next request is refused.
    assert_eq!(client.delete().await.unwrap(), 200);
    let later = client.request("tools/list", json!({})).await;
    assert!(format!("{later:?}").contains("404"), "{later:?}");
}

#[actix_rt::test]
async fn legacy_client_uses_a_stdio_server() {
    let bridge = stdio_bridge(&stdio_server(), &["--upstream-env", "GIVEN=to the server"]);
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .unwrap();
    let init = client.initialize("2024-11-05").await.unwrap();
    assert_eq!(init["serverInfo"]["name"], "mcp-testkit-stdio");
    check_tools(client.request("tools/list", json!({})).await.unwrap()).await;
    let ex = client
        .request("tools/call", progress_call(2, json!(7)))
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("done 2 steps"));
    assert_eq!(
        notification_trace(&ex.notifications),
        ["log:step 1", "progress:1/2", "log:step 2", "progress:2/2"]
    );
    let ex = client
        .request(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "hi"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some(SAMPLING_REPLY_TEXT));
    let ex = client
        .request(
            "tools/call",
            json!({"name": "getenv", "arguments": {"name": "GIVEN"}}),
        )
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("to the server"));
}

#[actix_rt::test]
async fn a_pretty_printed_client_message_reaches_the_server_on_one_line() {
    let bridge = stdio_bridge(&stdio_server(), &[]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let body = "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 9,\r\n  \"method\": \"tools/call\",\n  \"params\": {\"name\": \"echo\", \"arguments\": {\"text\": \"a\\nb\"}}\n}";
    let resp = client.post_raw(body, &[]).await.unwrap();
    let ex = client.read_exchange(json!(9), resp).await.unwrap();
    assert_eq!(ex.text(), Some("a\nb"));
}

#[actix_rt::test]
async fn readiness_and_metrics_name_the_stdio_server() {
    let good = stdio_bridge(&stdio_server(), &["--admin-listen", "127.0.0.1:0"]);
    let r = raw("GET", &good.admin_url("/readyz"), &[], "").await;
    assert_eq!(
        (r.status, r.json()["transport"].clone()),
        (200, json!("stdio")),
        "{}",
        r.body
    );
    let client = StreamableClient::new(&good.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let m = raw("GET", &good.admin_url("/metrics"), &[], "").await;
    assert!(m.body.contains(r#"upstream="stdio""#), "{}", m.body);
    let bad = stdio_bridge(
        "/nonexistent/mcp-server --stdio",
        &["--admin-listen", "127.0.0.1:0"],
    );
    // The first start is tried at once; poll until its outcome is known.
    let deadline = tokio::time::Instant::now() + WAIT;
    let r = loop {
        let r = raw("GET", &bad.admin_url("/readyz"), &[], "").await;
        if r.status == 503 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot start"),
        "{}",
        r.body
    );
}

#[actix_rt::test]
async fn a_command_that_does_not_exist_fails_initialize_with_a_clear_error() {
    let (bridge, base) = stdio_binary("/nonexistent/mcp-server --stdio", &[]);
    let r = raw("POST", &format!("{base}/mcp"), &[JSON, ACCEPT_BOTH], INIT).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let msg = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains("cannot start the stdio server") && msg.contains("/nonexistent/mcp-server"),
        "{msg}"
    );
    settles_to(bridge.0.id(), 0).await;
}

#[actix_rt::test]
async fn a_server_that_exits_at_once_fails_initialize_promptly() {
    let dir = temp_dir("exits");
    let cmd = script(&dir, "exits.sh", "echo 'fatal: no config' >&2\nexit 1");
    for pool in ["0", "2"] {
        let (bridge, base) = stdio_binary(&cmd, &["--upstream-pool", pool]);
        let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
        client.set_timeout(WAIT);
        let err = client
            .initialize("2025-06-18")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("stdio server"), "pool {pool}: {err}");
        settles_to(bridge.0.id(), 0).await;
        // The server's own words are in the bridge's log.
        let mut bridge = bridge;
        let mut log = String::new();
        let mut stderr = bridge.0.stderr.take().unwrap();
        drop(bridge);
        std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
        assert!(log.contains("fatal: no config"), "pool {pool}: {log}");
    }
}

#[actix_rt::test]
async fn a_crash_mid_call_fails_the_call_and_ends_the_session() {
    let (bridge, base) = stdio_binary(&stdio_server(), &["--upstream-pool", "0"]);
    let pid = bridge.0.id();
    // Streamable: the call gets a JSON-RPC error, then the session is gone (404).
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    settles_to(pid, 1).await;
    let ex = client
        .request("tools/call", json!({"name": "crash", "arguments": {}}))
        .await
        .unwrap();
    let err = ex.error().expect("a JSON-RPC error").to_string();
    assert!(err.contains("stdio server exited"), "{err}");
    let later = client.request("tools/list", json!({})).await;
    assert!(format!("{later:?}").contains("404"), "{later:?}");
    settles_to(pid, 0).await;
    // Legacy: the call gets a JSON-RPC error and the stream ends.
    let legacy = LegacyClient::connect(&format!("{base}/sse"), &[])
        .await
        .unwrap();
    legacy.initialize("2024-11-05").await.unwrap();
    let ex = legacy
        .request("tools/call", json!({"name": "crash", "arguments": {}}))
        .await
        .unwrap();
    assert!(ex.error().is_some(), "{:?}", ex.response);
    assert!(legacy.wait_closed(WAIT).await, "legacy stream ends");
    settles_to(pid, 0).await;
}

#[actix_rt::test]
async fn garbage_on_stdout_is_dropped_and_recorded_and_the_session_goes_on() {
    let dir = temp_dir("garbage");
    let journal = dir.join("journal.jsonl");
    let bridge = stdio_bridge(&stdio_server(), &["--journal", journal.to_str().unwrap()]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request("tools/call", json!({"name": "garbage", "arguments": {}}))
        .await
        .unwrap();
    assert_eq!(ex.text(), Some("after garbage"));
    assert!(!ex
        .messages
        .iter()
        .any(|m| m.to_string().contains("not JSON")));
    let ex = client.request("tools/list", json!({})).await.unwrap();
    assert!(ex.result().is_some());
    bridge.close_journal();
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l.contains("message_dropped") && l.contains("not JSON-RPC")),
        "{lines}"
    );
}

#[actix_rt::test]
async fn a_stdout_line_longer_than_max_body_ends_the_server() {
    let (bridge, base) = stdio_binary(
        &stdio_server(),
        &["--upstream-pool", "0", "--max-body", "64KiB"],
    );
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client
        .request(
            "tools/call",
            json!({"name": "flood", "arguments": {"count": 1, "bytes": 100000}}),
        )
        .await
        .unwrap();
    let err = ex.error().expect("a JSON-RPC error").to_string();
    assert!(err.contains("longer than --max-body"), "{err}");
    settles_to(bridge.0.id(), 0).await;
}

#[actix_rt::test]
async fn a_server_that_ignores_sigterm_is_killed_and_reaped() {
    let dir = temp_dir("stubborn");
    // Answers initialize, then ignores stdin's end and SIGTERM.
    let cmd = script(
        &dir,
        "stubborn.sh",
        r#"trap '' TERM
read -r line
echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"stubborn","version":"1"}}}'
while :; do sleep 0.05; done"#,
    );
    let (bridge, base) = stdio_binary(&cmd, &["--upstream-pool", "0"]);
    let pid = bridge.0.id();
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let held = settles_to(pid, 1).await;
    assert_eq!(client.delete().await.unwrap(), 200);
    settles_to(pid, 0).await;
    assert!(!std::path::Path::new(&format!("/proc/{}", held[0].0)).exists());
}

#[actix_rt::test]
async fn the_pool_stays_full_and_the_bridge_reaps_everything_when_it_stops() {
    let (mut bridge, base) = stdio_binary(&stdio_server(), &["--upstream-pool", "2"]);
    let pid = bridge.0.id();
    settles_to(pid, 2).await;
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    // One taken by the session, refilled: three children.
    let all = settles_to(pid, 3).await;
    assert_eq!(client.delete().await.unwrap(), 200);
    settles_to(pid, 2).await;
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let before_stop: Vec<u32> = settles_to(pid, 3).await.iter().map(|c| c.0).collect();
    // SIGTERM the bridge with a session open: every child is stopped and reaped.
    // SAFETY: a plain syscall on the bridge process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut status = None;
    assert!(
        eventually(|| {
            status = bridge.0.try_wait().unwrap();
            status.is_some()
        })
        .await
    );
    assert!(status.unwrap().success(), "{status:?}");
    for c in before_stop.iter().chain(all.iter().map(|c| &c.0)) {
        assert!(
            !std::path::Path::new(&format!("/proc/{c}")).exists(),
            "child {c} outlived the bridge"
        );
    }
}

#[actix_rt::test]
async fn a_flooding_server_is_held_back_while_the_client_reads_slowly() {
    // A replay log far smaller than the flood: without backpressure, frames the paused
    // client has not read yet would be evicted and lost.
    let bridge = stdio_bridge(&stdio_server(), &["--replay-events", "16"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let count = 2000;
    let call = json!({"jsonrpc": "2.0", "id": "flood", "method": "tools/call",
        "params": {"name": "flood", "arguments": {"count": count, "bytes": 8192}}});
    let resp = client.post_raw(&call.to_string(), &[]).await.unwrap();
    let mut stream = resp.into_sse().expect("an SSE answer");
    assert!(stream.next_event(WAIT).await.is_some());
    // A slow reader: it stops reading for a while (not a synchronisation: nothing waits
    // for anything here), long enough for the flood to fill every buffer on the way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut logs = 1;
    let result = loop {
        let ev = stream
            .next_event(WAIT)
            .await
            .expect("the flood goes on to its result");
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        if v.get("id").is_some() {
            break v;
        }
        logs += 1;
    };
    assert_eq!(
        result["result"]["content"][0]["text"],
        format!("flooded {count}")
    );
    assert_eq!(logs, count, "every notification arrived");
}

#[actix_rt::test]
async fn a_legacy_client_that_stops_reading_is_cut_and_its_session_ends() {
    use futures_util::StreamExt;
    // A deadline longer than any fixed cap on one wait: only the session's own stall check
    // (no progress for --slow-reader-timeout) may cut the reader.
    let bridge = stdio_bridge(&stdio_server(), &["--slow-reader-timeout", "2s"]);
    let http = awc::Client::builder().disable_timeout().finish();
    let mut sse = http
        .get(bridge.url("/sse"))
        .insert_header(("accept", "text/event-stream"))
        .send()
        .await
        .unwrap();
    // Read only as far as the endpoint event, then never again.
    let mut head = String::new();
    while !head.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, sse.next())
            .await
            .unwrap()
            .unwrap();
        head.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let endpoint = head
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("endpoint event")
        .trim()
        .to_owned();
    let post = |body: String| {
        let url = bridge.url(&endpoint);
        async move { raw("POST", &url, &[JSON], &body).await.status }
    };
    assert_eq!(post(INIT.to_owned()).await, 202);
    // 32 MB of notifications: far more than the socket buffers hold.
    let flood = json!({"jsonrpc": "2.0", "id": "flood", "method": "tools/call",
        "params": {"name": "flood", "arguments": {"count": 4000, "bytes": 8192}}});
    assert_eq!(post(flood.to_string()).await, 202);
    assert_eq!(bridge.session_count(), 1);
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    while bridge.session_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(sse);
}

#[actix_rt::test]
async fn the_pool_refills_only_once_the_taken_server_answered_its_first_message() {
    // A process start (node: hundreds of ms of CPU) must not compete with a new session's
    // first exchange. The server logs each start; before answering `initialize` it records
    // how many had started by then.
    let dir = std::env::temp_dir().join(format!(
        "mcp-bridge-refill-{}-{}",
        std::process::id(),
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, seen, script) = (dir.join("starts"), dir.join("seen"), dir.join("server.sh"));
    std::fs::write(
        &script,
        r#"echo started >> "$LOG"
IFS= read -r line
sleep 0.3
wc -l < "$LOG" > "$SEEN"
echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}}'
exec cat > /dev/null
"#,
    )
    .unwrap();
    let env_log = format!("LOG={}", log.display());
    let env_seen = format!("SEEN={}", seen.display());
    let command = format!("sh {}", script.display());
    let bridge = stdio_bridge(
        &command,
        &[
            "--upstream-pool",
            "1",
            "--upstream-env",
            &env_log,
            "--upstream-env",
            &env_seen,
        ],
    );
    let starts = || {
        std::fs::read_to_string(&log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(
        eventually(|| starts() == 1).await,
        "the warm process started"
    );
    let init = raw("POST", &bridge.url("/mcp"), &[JSON, ACCEPT_BOTH], INIT).await;
    assert_eq!(init.status, 200, "{}", init.body);
    assert!(init.body.contains("\"serverInfo\""), "{}", init.body);
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        seen.trim(),
        "1",
        "no replacement started while the first exchange was under way"
    );
    assert!(
        eventually(|| starts() == 2).await,
        "the pool refilled after it"
    );
    drop(bridge);
    let _ = std::fs::remove_dir_all(&dir);
}
