//! Memory stays flat under call volume: the bridge binary (its RSS read from /proc) in front of
//! a fast in-process upstream, many calls including 1 MiB echoes read in full. Finished,
//! fully read request streams keep no frames, so nothing grows with the number of calls.
//! Prints its figures (`--no-capture` to see them).

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Bounded in time: the soak stops after this even if the calls are not all made.
const SOAK: Duration = Duration::from_secs(15);
const ROUNDS: usize = 300;
const MIB: usize = 1 << 20;

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") as f64 / 1024.0
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One round: a 1 MiB echo and four tiny ones, each answer read in full and checked.
async fn round(client: &StreamableClient, big: &str, errors: &mut usize) -> usize {
    let mut calls = 0;
    let texts = std::iter::once(big).chain(std::iter::repeat_n("hi", 4));
    for text in texts {
        calls += 1;
        let ok = client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": text}}),
            )
            .await
            .ok()
            .and_then(|x| x.text().map(|t| t.len() == text.len()))
            .unwrap_or(false);
        *errors += usize::from(!ok);
    }
    calls
}

#[actix_rt::test]
async fn rss_stays_flat_and_descriptors_return_under_call_volume() {
    let server = FakeServer::start(ServerOptions::streamable());
    let (bridge, base) = spawn_binary(&[
        "--upstream",
        &server.url(),
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "warn",
    ]);
    let pid = bridge.0.id();
    let client = StreamableClient::new(&format!("{base}/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let big = "x".repeat(MIB);
    let (mut calls, mut errors) = (0, 0);
    // Warm up (allocator arenas, connection pools) before the baseline.
    for _ in 0..5 {
        calls += round(&client, &big, &mut errors).await;
    }
    let fds_start = fds(pid);
    let start = rss_mib(pid);
    let began = Instant::now();
    let mut middle = None;
    let mut rounds = 0;
    while rounds < ROUNDS && began.elapsed() < SOAK {
        calls += round(&client, &big, &mut errors).await;
        rounds += 1;
        if middle.is_none() && (rounds == ROUNDS / 2 || began.elapsed() > SOAK / 2) {
            middle = Some(rss_mib(pid));
        }
    }
    let end = rss_mib(pid);
    let middle = middle.unwrap_or(end);
    assert_eq!(client.delete().await.unwrap(), 200);
    drop(client);
    let deadline = Instant::now() + WAIT;
    let mut fds_end = fds(pid);
    // Closed connections are noticed asynchronously; poll for the count to come back.
    while fds_end > fds_start && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds_end = fds(pid);
    }
    println!(
        "memory soak: {calls} calls ({rounds} rounds of 1 MiB + 4 tiny echoes) in {:.1} s, \
         {errors} errors; RSS start {start:.1} MiB, middle {middle:.1} MiB, end {end:.1} MiB; \
         fds {fds_start} before, {fds_end} after close",
        began.elapsed().as_secs_f64()
    );
    assert_eq!(errors, 0, "every call answered in full");
    // Before the fix each 1 MiB answer stayed for --replay-age: RSS grew by about 1 MiB per
    // round. Allow a fixed margin plus a quarter of that, whatever the machine's speed.
    assert!(rounds >= 12, "too few rounds to tell: {rounds}");
    let bound = 64.0_f64.min(8.0 + rounds as f64 / 4.0);
    assert!(
        end - start < bound,
        "RSS grew {start:.1} → {end:.1} MiB in {rounds} rounds (bound {bound:.1} MiB)"
    );
    assert!(
        end - middle < 16.0,
        "RSS still growing: middle {middle:.1} → end {end:.1} MiB"
    );
    assert!(
        fds_end <= fds_start,
        "descriptors: {fds_start} before, {fds_end} after close"
    );
}
