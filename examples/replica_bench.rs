//! The replica benchmark of `make bench` (issue 16): three bridge processes sharing a real
//! redis-server, in front of the load generator's fast Streamable upstream, all on 127.0.0.1.
//!
//! - **(r1) relay latency**: one session owned by replica A; sequential `tools/call` echo sent
//!   to A itself (served locally) and to B (relayed to A over the signed hop), interleaved in
//!   rounds so drift hits both alike; beside the upstream reached directly.
//! - **(r2) throughput**: 32 sessions of sequential echo through haproxy (round-robin per
//!   request) over one replica, then over three (two requests in three relayed): `loadgen load`.
//! - **(r3) Redis memory per idle session**: `used_memory` before and after opening N sessions.
//!
//! Bounded: a few seconds per measurement, at most N (default 1000) idle sessions.
//!
//! ```sh
//! cargo build --release --bin mcp-bridge --example loadgen --example replica_bench
//! target/release/examples/replica_bench [--seconds 3] [--sessions 32] [--idle 1000] [--out FILE]
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mcp_testkit::haproxy::Haproxy;
use mcp_testkit::infra::free_port;
use mcp_testkit::proc::{Proc, ProcOptions};
use mcp_testkit::redis_server::RedisServer;

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"replica-bench","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;
const SECRET: &str = "replica-bench-shared-secret-0123456789";

struct Args {
    bridge: PathBuf,
    loadgen: PathBuf,
    seconds: f64,
    sessions: usize,
    idle: usize,
    out: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        bridge: "target/release/mcp-bridge".into(),
        loadgen: "target/release/examples/loadgen".into(),
        seconds: 3.0,
        sessions: 32,
        idle: 1000,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--bridge" => a.bridge = v.into(),
            "--loadgen" => a.loadgen = v.into(),
            "--seconds" => a.seconds = v.parse().unwrap_or_else(|_| usage()),
            "--sessions" => a.sessions = v.parse().unwrap_or_else(|_| usage()),
            "--idle" => a.idle = v.parse().unwrap_or_else(|_| usage()),
            "--out" => a.out = Some(v.into()),
            _ => usage(),
        }
    }
    a
}

fn usage() -> ! {
    eprintln!("usage: replica_bench [--bridge P] [--loadgen P] [--seconds S] [--sessions N] [--idle N] [--out FILE]");
    std::process::exit(2)
}

fn say(msg: &str) {
    eprintln!("[replica-bench] {msg}");
}

fn main() {
    let a = args();
    let redis = RedisServer::start();
    let mut upstream_cmd = Command::new(&a.loadgen);
    upstream_cmd.args(["upstream", "--transport", "streamable"]);
    let opts = ProcOptions {
        stdin: true,
        ..ProcOptions::default()
    };
    let mut upstream =
        Proc::spawn("upstream", upstream_cmd, opts).unwrap_or_else(|e| panic!("{e}"));
    let line = upstream
        .wait_line("url ", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let upstream_url = line["url ".len()..].trim().to_string();
    let secret = std::env::temp_dir().join(format!("replica-bench-{}", std::process::id()));
    std::fs::write(&secret, SECRET).expect("secret file");
    let replicas: Vec<(Proc, SocketAddr)> = (0..3)
        .map(|i| replica(&a, i, &upstream_url, &redis.url(), &secret, &[]))
        .collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.1).collect();
    // A fourth, keeping its replay logs in Redis too: what --redis-replay costs.
    let mirrored = replica(
        &a,
        3,
        &upstream_url,
        &redis.url(),
        &secret,
        &["--redis-replay"],
    );
    say(&format!(
        "redis {}, upstream {upstream_url}, replicas {addrs:?}",
        redis.addr()
    ));

    let mut report = String::from("\n## Replicas (issue 16)\n\n");
    let rt = actix_rt::System::new();
    let lat = rt.block_on(latency(
        &upstream_url,
        addrs[0],
        addrs[1],
        mirrored.1,
        a.seconds,
    ));
    report += &lat;
    report += &throughput(&a, &addrs, mirrored.1);
    report += &rt.block_on(redis_memory(&redis, addrs[0], a.idle));
    let _ = std::fs::remove_file(&secret);
    print!("{report}");
    if let Some(out) = &a.out {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(out)
            .expect("report file");
        f.write_all(report.as_bytes()).expect("report written");
    }
}

fn replica(
    a: &Args,
    i: usize,
    upstream: &str,
    redis: &str,
    secret: &std::path::Path,
    extra: &[&str],
) -> (Proc, SocketAddr) {
    let addr = free_port().expect("a free port");
    let mut cmd = Command::new(&a.bridge);
    cmd.args([
        "--upstream",
        upstream,
        "--upstream-transport",
        "streamable",
        "--listen",
        &addr.to_string(),
        "--workers",
        "1",
        "--log-level",
        "warn",
        "--max-sessions",
        "100000",
        "--redis",
        redis,
        "--replica-address",
        &format!("http://{addr}"),
        "--replica-secret-file",
        secret.to_str().expect("utf-8 path"),
    ]);
    cmd.args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_BRIDGE_") {
            cmd.env_remove(k);
        }
    }
    let mut p = Proc::spawn(&format!("replica-{i}"), cmd, ProcOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    p.wait_line("mcp-bridge listening on ", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("replica {i}: {e}"));
    (p, addr)
}

/// One Streamable POST, its body read to the end; the session id it handed out, if any.
async fn post(
    http: &awc::Client,
    url: &str,
    session: Option<&str>,
    body: &'static str,
) -> Result<Option<String>, String> {
    let mut req = http
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"));
    if let Some(s) = session {
        req = req
            .insert_header(("mcp-session-id", s))
            .insert_header(("mcp-protocol-version", "2025-06-18"));
    }
    let mut resp = req.send_body(body).await.map_err(|e| e.to_string())?;
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = resp.status();
    let text = resp
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&text)));
    }
    if body.contains("\"id\":1,") && !text.windows(8).any(|w| w == b"\"result\"") {
        return Err(format!("no result: {}", String::from_utf8_lossy(&text)));
    }
    Ok(sid)
}

async fn open_session(http: &awc::Client, url: &str) -> String {
    let sid = post(http, url, None, INIT)
        .await
        .expect("initialize")
        .expect("a session id");
    post(http, url, Some(&sid), INITIALIZED)
        .await
        .expect("initialized");
    sid
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn latency(
    upstream: &str,
    a: SocketAddr,
    b: SocketAddr,
    mirrored: SocketAddr,
    seconds: f64,
) -> String {
    let http = awc::Client::builder().disable_timeout().finish();
    let owner = format!("http://{a}/mcp");
    let other = format!("http://{b}/mcp");
    let with_replay = format!("http://{mirrored}/mcp");
    let sid = open_session(&http, &owner).await;
    let direct_sid = open_session(&http, upstream).await;
    let replay_sid = open_session(&http, &with_replay).await;
    let targets = [
        ("upstream direct", upstream.to_string(), direct_sid),
        ("replica A, session owned by A (local)", owner, sid.clone()),
        ("replica B, session owned by A (relayed)", other, sid),
        (
            "replica R with --redis-replay (local)",
            with_replay,
            replay_sid,
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    let rounds = 6;
    let per_round = Duration::from_secs_f64(seconds / rounds as f64);
    let mut errors = 0;
    for _ in 0..rounds {
        for (i, (_, url, sid)) in targets.iter().enumerate() {
            // A short warm-up per round: the connection and the caches are hot.
            for _ in 0..20 {
                let _ = post(&http, url, Some(sid), ECHO).await;
            }
            let end = Instant::now() + per_round;
            while Instant::now() < end {
                let t = Instant::now();
                match post(&http, url, Some(sid), ECHO).await {
                    Ok(_) => samples[i].push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if errors < 5 {
                            say(&format!("error: {e}"));
                        }
                    }
                }
            }
        }
    }
    let mut out = String::from(
        "### (r1) one session, sequential echo: local vs relayed to the owner\n\n\
         | target | calls | p50 ms | p99 ms |\n|---|---|---|---|\n",
    );
    let mut p50 = Vec::new();
    for (i, (name, _, _)) in targets.iter().enumerate() {
        samples[i].sort();
        let (m, n) = (percentile(&samples[i], 0.5), percentile(&samples[i], 0.99));
        p50.push(m);
        out += &format!("| {name} | {} | {m:.3} | {n:.3} |\n", samples[i].len());
        say(&format!("{name}: p50 {m:.3} ms p99 {n:.3} ms"));
    }
    out += &format!(
        "\nRelay hop added at p50: **{:+.3} ms** (target ≤ 0.3 ms); the bridge itself adds {:+.3} ms over the upstream direct; `--redis-replay` adds {:+.3} ms (each event also goes to Redis). Errors: {errors}.\n\n",
        p50[2] - p50[1],
        p50[1] - p50[0],
        p50[3] - p50[1]
    );
    out
}

fn throughput(a: &Args, addrs: &[SocketAddr], mirrored: SocketAddr) -> String {
    let mut out = format!(
        "### (r2) {} sessions of sequential echo through haproxy (round-robin per request)\n\n\
         | replicas | calls/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n",
        a.sessions
    );
    let mut rates = Vec::new();
    let runs: [(&str, Vec<SocketAddr>); 3] = [
        ("1", addrs[..1].to_vec()),
        ("3", addrs.to_vec()),
        ("1 with --redis-replay", vec![mirrored]),
    ];
    for (n, backends) in &runs {
        let lb = Haproxy::start(backends);
        let result = Command::new(&a.loadgen)
            .args([
                "load",
                "--client",
                "streamable",
                "--url",
                &format!("{}/mcp", lb.url()),
                "--sessions",
                &a.sessions.to_string(),
                "--duration",
                &a.seconds.to_string(),
                "--json",
            ])
            .output()
            .expect("loadgen runs");
        let json: serde_json::Value = String::from_utf8_lossy(&result.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("loadgen said: {}", String::from_utf8_lossy(&result.stderr)));
        let rate = json["calls_per_s"].as_f64().unwrap_or(0.0);
        let l = &json["latency"];
        let ms = |k: &str| l[k].as_f64().unwrap_or(f64::NAN) / 1e3;
        rates.push(rate);
        out += &format!(
            "| {n} | {rate:.0} | {:.3} | {:.3} | {} |\n",
            ms("p50_us"),
            ms("p99_us"),
            json["errors"]
        );
        say(&format!("{n} replica(s): {rate:.0} calls/s"));
    }
    out += &format!(
        "\nThree replicas give {:.2}× the calls/s of one on this 2-core machine (the replicas, the upstream, haproxy and the load generator share the two cores; two requests in three take the extra hop). `--redis-replay`: {:.2}× of one replica without it.\n\n",
        rates[1] / rates[0].max(1.0),
        rates[2] / rates[0].max(1.0)
    );
    out
}

async fn redis_memory(redis: &RedisServer, owner: SocketAddr, n: usize) -> String {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let used = |info: String| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .expect("INFO"),
    );
    let http = awc::Client::builder().disable_timeout().finish();
    let url = format!("http://{owner}/mcp");
    let mut sids = Vec::with_capacity(n);
    for _ in 0..n {
        sids.push(open_session(&http, &url).await);
    }
    let after = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .expect("INFO"),
    );
    for sid in &sids {
        let _ = http
            .delete(&url)
            .insert_header(("mcp-session-id", sid.as_str()))
            .send()
            .await;
    }
    let per = (after - before) as f64 / n as f64;
    say(&format!("redis: {per:.0} bytes per idle session"));
    format!(
        "### (r3) Redis memory per idle Streamable session\n\n{n} sessions: used_memory {before} → {after} bytes, **{per:.0} bytes per session** (the record: owner, epoch, transports, credential digest, the client's `initialize` and `notifications/initialized`).\n"
    )
}
