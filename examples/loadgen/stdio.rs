//! The stdio scenarios (issue 13), run when `--only` names them and `--stdio-command` is set:
//!
//! - (f) session open latency through a bridge started with `--upstream-command` (its warm
//!   pool of `--stdio-pool` processes): the `initialize` round trip of a fresh session each
//!   time, paced (`--stdio-open-gap` apart, so the pool refills) and back to back (the pool
//!   runs dry and sessions wait for process starts). With `--stdio-http-command`, the same
//!   server over Streamable HTTP directly, for reference.
//! - (g) `--stdio-sessions` concurrent sessions of `tools/call` echo through that bridge,
//!   against the same server software over Streamable HTTP, direct and through a bridge
//!   (`--stdio-http-command`, started here with `PORT` set; its URL is
//!   `http://127.0.0.1:PORT/mcp`).
//! - (h) one session of sequential echo: a client writing straight to a child's stdin and
//!   reading its stdout, against a Streamable client through the stdio bridge to the same
//!   server program — the latency the bridge adds per call.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mcp_testkit::proc::Proc;
use serde::Serialize;

use super::procs::{self, start_bridge, Bridge, Upstream};
use super::report::Report;
use super::{say, SuiteArgs};
use crate::client::{http_client, initialize_params, ClientKind, Legacy, Streamable};
use crate::load::{self, CallSpec, LoadResult, LoadSpec};

/// One row of (f).
#[derive(Serialize, Clone, Debug, Default)]
pub(super) struct OpenResult {
    pub target: String,
    pub client: String,
    /// Seconds between the end of one session and the start of the next.
    pub gap_s: f64,
    pub opened: usize,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// (g): one row per target, the median of the repeats by calls/s.
pub(super) type StdioLoad = Vec<(String, LoadResult)>;

/// Runs (f) and (g) as chosen; Ok(true) when every run was clean.
pub(super) fn run(args: &SuiteArgs, report: &mut Report) -> Result<bool, String> {
    let Some(command) = &args.stdio_command else {
        return Err("scenarios f and g need --stdio-command (the stdio server to bridge)".into());
    };
    let stdio_bridge = start_stdio_bridge(command, args)?;
    let http = match &args.stdio_http_command {
        Some(cmd) => Some(start_http_server(cmd, args)?),
        None => None,
    };
    let mut clean = true;
    if args.only("f") {
        clean &= open_latency(&stdio_bridge, http.as_ref(), args, report);
    }
    if args.only("h") {
        clean &= added_latency(command, &stdio_bridge, args, report);
    }
    if args.only("g") {
        let http_bridge = match &http {
            Some(h) => Some(start_bridge(&h.upstream, args, "stdio-g-http")?),
            None => None,
        };
        clean &= throughput(
            &stdio_bridge,
            http.as_ref(),
            http_bridge.as_ref(),
            args,
            report,
        );
    }
    report
        .settings
        .insert("stdio command".into(), command.clone());
    report
        .settings
        .insert("stdio pool".into(), args.stdio_pool.to_string());
    Ok(clean)
}

fn start_stdio_bridge(command: &str, args: &SuiteArgs) -> Result<Bridge, String> {
    let mut cmd = Command::new(&args.bridge);
    cmd.args([
        "--upstream-command",
        command,
        "--upstream-pool",
        &args.stdio_pool.to_string(),
        "--listen",
        "127.0.0.1:0",
    ]);
    if args.bridge_workers > 0 {
        cmd.args(["--workers", &args.bridge_workers.to_string()]);
    }
    cmd.args(&args.bridge_args);
    let bridge = procs::bridge_from(cmd, args, "stdio")?;
    say(format!("stdio bridge {} -> {command}", bridge.base));
    Ok(bridge)
}

/// The same server software over Streamable HTTP.
struct HttpServer {
    upstream: Upstream,
    _proc: Proc,
}

fn start_http_server(command: &str, args: &SuiteArgs) -> Result<HttpServer, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut words = command.split_whitespace();
    let program = words.next().ok_or("--stdio-http-command is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(words).env("PORT", port.to_string());
    let proc = procs::spawn("stdio-http-server", cmd, args)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{command} did not listen on {port} within 15 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    say(format!("stdio-http server {url} ({command})"));
    Ok(HttpServer {
        upstream: Upstream::external(ClientKind::Streamable, url),
        _proc: proc,
    })
}

// ------------------------------------------------------------------------------------------
// (f) session open latency
// ------------------------------------------------------------------------------------------

fn open_latency(
    bridge: &Bridge,
    http: Option<&HttpServer>,
    args: &SuiteArgs,
    report: &mut Report,
) -> bool {
    let gap = args.stdio_open_gap;
    let mut runs: Vec<(String, ClientKind, String, f64)> = Vec::new();
    for client in [ClientKind::Streamable, ClientKind::Legacy] {
        let url = format!("{}{}", bridge.base, client.bridge_path());
        runs.push(("bridge -> stdio (paced)".into(), client, url.clone(), gap));
        runs.push(("bridge -> stdio (back to back)".into(), client, url, 0.0));
    }
    if let Some(h) = http {
        runs.push((
            "direct Streamable HTTP".into(),
            ClientKind::Streamable,
            h.upstream.url.clone(),
            gap,
        ));
    }
    let sys = actix_rt::System::new();
    let mut clean = true;
    for (target, client, url, gap) in runs {
        // Let the pool refill after the previous run.
        std::thread::sleep(Duration::from_secs(2));
        let r = sys.block_on(opens(client, &url, args.stdio_opens, gap));
        let r = OpenResult { target, ..r };
        say(format!(
            "(f) {} {}: {} sessions, initialize p50 {:.2} ms p95 {:.2} ms max {:.2} ms, {} errors",
            r.target, r.client, r.opened, r.p50_ms, r.p95_ms, r.max_ms, r.errors
        ));
        clean &= r.errors == 0;
        report.stdio_open.push(r);
    }
    clean
}

/// `n` sessions one after the other: each times its `initialize` round trip, then closes.
async fn opens(client: ClientKind, url: &str, n: usize, gap_s: f64) -> OpenResult {
    let http = http_client();
    let url: Rc<str> = url.into();
    let mut ms = Vec::with_capacity(n);
    let mut r = OpenResult {
        client: client.as_str().into(),
        gap_s,
        ..OpenResult::default()
    };
    for _ in 0..n {
        match open_once(client, &http, &url).await {
            Ok(d) => ms.push(d.as_secs_f64() * 1e3),
            Err(e) => {
                r.errors += 1;
                if r.error_samples.len() < 5 {
                    r.error_samples.push(e);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(gap_s)).await;
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    r.opened = ms.len();
    r.p50_ms = pct(0.50);
    r.p95_ms = pct(0.95);
    r.max_ms = ms.last().copied().unwrap_or(0.0);
    r
}

/// The `initialize` round trip of a fresh session (a legacy client's stream is open first,
/// outside the timing: the server process is taken at `initialize`).
async fn open_once(
    client: ClientKind,
    http: &awc::Client,
    url: &Rc<str>,
) -> Result<Duration, String> {
    let params = initialize_params("2025-06-18");
    match client {
        ClientKind::Streamable => {
            let mut c = Streamable::new(http.clone(), url.clone());
            let t = Instant::now();
            c.request("initialize", &params, None).await?;
            let d = t.elapsed();
            c.delete().await?;
            Ok(d)
        }
        ClientKind::Legacy => {
            let mut c = Legacy::connect(http.clone(), url).await?;
            let t = Instant::now();
            c.request("initialize", &initialize_params("2024-11-05"), None)
                .await?;
            Ok(t.elapsed())
        }
        ClientKind::Modern => Err("scenario f opens sessions: a 2026-07-28 client has none".into()),
    }
}

// ------------------------------------------------------------------------------------------
// (g) throughput
// ------------------------------------------------------------------------------------------

fn throughput(
    stdio_bridge: &Bridge,
    http: Option<&HttpServer>,
    http_bridge: Option<&Bridge>,
    args: &SuiteArgs,
    report: &mut Report,
) -> bool {
    let mut targets = vec![(
        "streamable -> bridge -> stdio".to_owned(),
        ClientKind::Streamable,
        format!("{}/mcp", stdio_bridge.base),
    )];
    targets.push((
        "legacy -> bridge -> stdio".into(),
        ClientKind::Legacy,
        format!("{}/sse", stdio_bridge.base),
    ));
    if let Some(h) = http {
        targets.push((
            "streamable -> Streamable HTTP direct".into(),
            ClientKind::Streamable,
            h.upstream.url.clone(),
        ));
    }
    if let Some(b) = http_bridge {
        targets.push((
            "streamable -> bridge -> Streamable HTTP".into(),
            ClientKind::Streamable,
            format!("{}/mcp", b.base),
        ));
    }
    let call = CallSpec {
        params: args.stdio_echo_params.clone(),
        progress: false,
        expect_notes: None,
        min_result_bytes: 0,
    };
    let mut runs: Vec<Vec<LoadResult>> = vec![Vec::new(); targets.len()];
    // Repeats round-robin over the targets, so drift hits them alike; the median is kept.
    for _ in 0..args.repeat.max(1) {
        for (i, (key, client, url)) in targets.iter().enumerate() {
            let spec = LoadSpec {
                client: *client,
                url: url.clone(),
                sessions: args.stdio_sessions,
                threads: args.threads,
                warmup: Duration::from_secs_f64(0.5),
                duration: Duration::from_secs_f64(args.seconds),
                max_calls: 5_000_000,
                call: call.clone(),
                call_timeout: Duration::from_secs(10),
            };
            let r = load::run(&spec);
            say(format!("(g) {key}: {}", r.human()));
            runs[i].push(r);
        }
    }
    let mut clean = true;
    for ((key, _, _), mut rs) in targets.into_iter().zip(runs) {
        let all: Vec<f64> = rs.iter().map(|r| r.calls_per_s).collect();
        let errors: u64 = rs.iter().map(|r| r.errors + r.open_errors).sum();
        rs.sort_by(|a, b| a.calls_per_s.total_cmp(&b.calls_per_s));
        let mut median = rs.swap_remove(all.len() / 2);
        median.repeats = all;
        clean &= errors == 0;
        median.errors = errors - median.open_errors;
        report.stdio_load.push((key, median));
    }
    clean
}

// ------------------------------------------------------------------------------------------
// (h) added latency against the child over stdio
// ------------------------------------------------------------------------------------------

fn added_latency(command: &str, bridge: &Bridge, args: &SuiteArgs, report: &mut Report) -> bool {
    let mut clean = true;
    let direct = match direct_stdio(command, &args.stdio_echo_params, args.seconds) {
        Ok(r) => r,
        Err(e) => {
            say(format!("(h) direct stdio: {e}"));
            return false;
        }
    };
    say(format!("(h) direct stdio: {}", direct.human()));
    clean &= direct.errors == 0;
    report.stdio_load.push((
        "(h) 1 session: client → child over stdio, direct".into(),
        direct,
    ));
    let spec = LoadSpec {
        client: ClientKind::Streamable,
        url: format!("{}/mcp", bridge.base),
        sessions: 1,
        threads: 1,
        warmup: Duration::from_secs_f64(0.5),
        duration: Duration::from_secs_f64(args.seconds),
        max_calls: 5_000_000,
        call: CallSpec {
            params: args.stdio_echo_params.clone(),
            progress: false,
            expect_notes: None,
            min_result_bytes: 0,
        },
        call_timeout: Duration::from_secs(10),
    };
    let via = load::run(&spec);
    say(format!("(h) via bridge: {}", via.human()));
    clean &= via.errors == 0 && via.open_errors == 0;
    report
        .stdio_load
        .push(("(h) 1 session: streamable → bridge → stdio".into(), via));
    clean
}

/// Sequential `tools/call`s straight to a fresh child of `command` (split on blanks), after
/// its `initialize`, for `seconds` (half a second of warm-up first).
fn direct_stdio(command: &str, params: &str, seconds: f64) -> Result<LoadResult, String> {
    use std::io::{BufRead, BufReader, Write};
    let mut parts = command.split_whitespace();
    let program = parts.next().ok_or("empty --stdio-command")?;
    let mut child = Command::new(program)
        .args(parts)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let mut call = |id: u64, method: &str, params: &str| -> Result<(), String> {
        writeln!(
            stdin,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        )
        .map_err(|e| e.to_string())?;
        let want = format!(r#""id":{id}"#);
        loop {
            line.clear();
            if stdout.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the child closed its stdout".into());
            }
            if line.contains(&want) && !line.contains(r#""method""#) {
                return Ok(());
            }
        }
    };
    let outcome = (|| {
        call(0, "initialize", &initialize_params("2025-06-18"))?;
        let mut hist = crate::hist::Hist::default();
        let (mut id, mut calls) = (1u64, 0u64);
        let warm_until = Instant::now() + Duration::from_secs_f64(0.5);
        while Instant::now() < warm_until {
            call(id, "tools/call", params)?;
            id += 1;
        }
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(seconds);
        while Instant::now() < end {
            let t = Instant::now();
            call(id, "tools/call", params)?;
            hist.record(t.elapsed());
            id += 1;
            calls += 1;
        }
        let window = start.elapsed().as_secs_f64();
        Ok(LoadResult {
            client: "stdio".into(),
            url: command.into(),
            sessions: 1,
            threads: 1,
            calls,
            window_s: window,
            calls_per_s: calls as f64 / window,
            latency: hist.summary(),
            ..LoadResult::default()
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    outcome
}
