//! Flow control: a connected client that reads slowly loses nothing; one that stops reading is
//! cut after `--slow-reader-timeout` and resumes with `Last-Event-ID`.

mod support;

use std::time::Duration;

use support::*;

/// 300 notifications of ~100 KB each: far beyond the 8 MiB per-stream log.
const STEPS: u64 = 300;
const PAD: u64 = 100_000;

fn flood_call() -> String {
    json!({"jsonrpc": "2.0", "id": "flood", "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": STEPS, "pad": PAD}}})
    .to_string()
}

/// The step number of a `notifications/message` event ("step N   …"), `None` for others.
fn step(data: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(data).ok()?;
    let text = v.pointer("/params/data")?.as_str()?;
    text.strip_prefix("step ")?.trim_end().parse().ok()
}

/// Read a stream to its end: the steps seen, whether the call's result came, the last id.
async fn read_to_end(stream: &mut mcp_testkit::SseStream) -> (Vec<u64>, bool, Option<String>) {
    let (mut steps, mut answered) = (Vec::new(), false);
    while let Some(ev) = stream.next_event(WAIT).await {
        match step(&ev.data) {
            Some(n) => steps.push(n),
            None => answered |= ev.data.contains("\"result\""),
        }
    }
    assert!(stream.is_closed(), "stream ended (not a timeout)");
    (steps, answered, stream.last_event_id().map(str::to_owned))
}

async fn dropped(bridge: &Bridge) -> u64 {
    let m = raw("GET", &bridge.admin_url("/metrics"), &[], "").await;
    m.body
        .lines()
        .find_map(|l| l.strip_prefix("mcp_bridge_differences_total{kind=\"message_dropped\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_paused_reader_gets_every_event_in_order() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--admin-listen", "127.0.0.1:0"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let mut stream = client
        .post_raw(&flood_call(), &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let first = stream.next_event(WAIT).await.expect("first event");
    // The client pauses (well past the old 1 s give-up, well within the deadline).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rest, answered, _) = read_to_end(&mut stream).await;
    let mut steps = vec![step(&first.data).unwrap()];
    steps.extend(rest);
    assert_eq!(steps, (1..=STEPS).collect::<Vec<_>>(), "all, in order");
    assert!(answered, "the result came last");
    assert_eq!(dropped(&bridge).await, 0, "no message_dropped recorded");
}

#[actix_rt::test]
async fn a_reader_that_stops_is_cut_and_resumes_with_last_event_id() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--slow-reader-timeout",
            "1s",
        ],
    );
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let mut stream = client
        .post_raw(&flood_call(), &[])
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let first = stream.next_event(WAIT).await.expect("first event");
    // The client reads nothing until the bridge has cut it and, with no reader, let the
    // upstream run on: events beyond the log are dropped and recorded.
    let deadline = tokio::time::Instant::now() + WAIT;
    while dropped(&bridge).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was in flight before the cut arrives, then the response ends without the result.
    let (before, answered, last_id) = read_to_end(&mut stream).await;
    assert!(!answered, "cut before the result");
    let last_id = last_id.expect("events carry ids");
    let mut resumed = client
        .open_get(Some(&last_id))
        .await
        .unwrap()
        .into_sse()
        .unwrap();
    let (after, answered, _) = read_to_end(&mut resumed).await;
    assert!(answered, "the resumed stream carries the result");
    let mut steps = vec![step(&first.data).unwrap()];
    steps.extend(before);
    steps.extend(after);
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "in order, nothing twice"
    );
    assert!(
        steps.len() < STEPS as usize,
        "the log cannot hold 30 MB; drops were recorded"
    );
    println!(
        "slow reader cut: {} of {STEPS} events delivered, {} message_dropped record(s)",
        steps.len(),
        dropped(&bridge).await
    );
}

#[actix_rt::test]
async fn a_legacy_reader_that_stops_is_cut_and_its_session_ends() {
    use futures_util::StreamExt;
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--slow-reader-timeout", "1s"]);
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
    assert_eq!(post(flood_call()).await, 202);
    assert_eq!(bridge.session_count(), 1);
    // Once the socket buffers are full, no progress for a second while 30 MB wait: the stream
    // is cut and, with no replay on the legacy transport, the session ends. (Filling the
    // buffers takes a while on a loaded machine: a longer bound than WAIT.)
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
