//! The benchmark suite: starts the fast upstreams (one process per transport) and the bridge
//! (a process per upstream transport), runs every scenario direct and through the bridge for
//! every client × upstream pair, and writes the markdown report.
//!
//! "Direct" for a pair is the same *client* transport straight to the fast upstream of that
//! transport, so a pair's ratio shows what putting the bridge in the path costs that client.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::ClientKind;
use crate::idle;
use crate::load::{self, CallSpec, LoadResult, LoadSpec};

const PAIRS_CLIENTS: [ClientKind; 2] = [ClientKind::Legacy, ClientKind::Streamable];
const UPSTREAMS: [ClientKind; 2] = [ClientKind::Legacy, ClientKind::Streamable];

#[derive(clap::Args, Clone, Debug)]
pub struct SuiteArgs {
    /// The bridge binary.
    #[arg(long, default_value = "target/release/mcp-bridge")]
    bridge: PathBuf,
    /// Markdown report.
    #[arg(long, default_value = "bench-results/latest.md")]
    out: PathBuf,
    /// Raw results (JSON).
    #[arg(long, default_value = "bench-results/latest.json")]
    json_out: PathBuf,
    /// Bridge and upstream logs go here.
    #[arg(long, default_value = "bench-results/logs")]
    log_dir: PathBuf,
    /// `--workers` of the bridge (0: its default, one per core). One worker by default: the
    /// bridge, the upstream and the load generator share two cores, one busy thread each.
    #[arg(long, default_value_t = 1)]
    bridge_workers: usize,
    /// actix workers of each fake upstream.
    #[arg(long, default_value_t = 1)]
    upstream_workers: usize,
    /// Load-generator threads for the multi-session scenarios.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra arguments for the bridge (repeatable), e.g. --bridge-arg=--log-level=warn.
    #[arg(long = "bridge-arg", allow_hyphen_values = true)]
    bridge_args: Vec<String>,
    /// Use this server instead of the fake upstream of --upstream-transport.
    #[arg(long, requires = "upstream_transport")]
    upstream_url: Option<String>,
    #[arg(long, value_enum)]
    upstream_transport: Option<ClientKind>,
    /// tools/call params for the echo scenarios against --upstream-url.
    #[arg(
        long,
        default_value = r#"{"name":"echo","arguments":{"text":"hello"}}"#
    )]
    echo_params: String,
    /// tools/call params of a notification-emitting tool on --upstream-url (the scenario is
    /// skipped there without it; a progress token is added).
    #[arg(long)]
    progress_params: Option<String>,
    /// tools/call params returning about 1 MiB on --upstream-url (skipped without it).
    #[arg(long)]
    big_params: Option<String>,
    /// Concurrent sessions of the throughput scenario.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Steps of the `progress` tool in the notification scenario (2 notifications each).
    #[arg(long, default_value_t = 50)]
    steps: u64,
    /// Sessions of the notification scenario.
    #[arg(long, default_value_t = 8)]
    notify_sessions: usize,
    /// Idle session counts (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    idle: Vec<usize>,
    /// Also run the smallest idle size with Streamable clients holding their GET stream.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idle_listen: bool,
    /// Seconds the idle sessions are held open (through the bridge) before RSS is read and
    /// they close.
    #[arg(long, default_value_t = 6.0)]
    idle_hold: f64,
    /// Concurrency while opening/closing idle sessions.
    #[arg(long, default_value_t = 64)]
    idle_concurrency: usize,
    /// Seconds measured per load run (scaled per scenario).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs of each target in scenarios (a) and (b); the median one is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only these scenarios (comma separated letters: a,b,c,d,e).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e")]
    only: Vec<String>,
    /// Commit the figures belong to (for the report header).
    #[arg(long, default_value = "")]
    commit: String,
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

/// A child process we started; killed (by its own handle) when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc, String> {
        let pids = log.with_file_name("pids");
        let log = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        // For bench/run.sh: if this driver is killed, it ends these children by their ids.
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&pids) {
            let _ = writeln!(f, "{} {name}", child.id());
        }
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first stdout line starting with `prefix`, within `timeout`.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!(
                        "{}: no {prefix:?} line within {timeout:?} (exit status {status:?})",
                        self.name
                    ));
                }
            }
        }
    }

    /// Upstream children: `stats` → (sessions, open streams).
    fn stats(&mut self) -> Option<(usize, usize)> {
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "stats").ok()?;
        stdin.flush().ok()?;
        let l = self.wait_line("stats ", Duration::from_secs(5)).ok()?;
        let mut it = l.split_whitespace().skip(1).map(|v| v.parse().ok());
        Some((it.next()??, it.next()??))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The soft `Max open files` limit of this process (children inherit it).
fn fd_limit() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

struct Upstream {
    kind: ClientKind,
    url: String,
    /// None for an external server.
    proc: Option<Proc>,
}

impl Upstream {
    fn sessions(&mut self) -> Option<usize> {
        self.stats().map(|s| s.0)
    }

    /// (sessions, open SSE streams) of the fake upstream; None for an external server.
    fn stats(&mut self) -> Option<(usize, usize)> {
        self.proc.as_mut()?.stats()
    }
}

fn start_upstream(kind: ClientKind, args: &SuiteArgs) -> Result<Upstream, String> {
    if args.upstream_transport == Some(kind) {
        if let Some(url) = &args.upstream_url {
            return Ok(Upstream {
                kind,
                url: url.clone(),
                proc: None,
            });
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let name = format!("upstream-{}", kind.as_str());
    let mut p = Proc::spawn(
        &name,
        Command::new(exe).args([
            "upstream",
            "--transport",
            kind.as_str(),
            "--workers",
            &args.upstream_workers.to_string(),
        ]),
        &args.log_dir.join(format!("{name}.log")),
    )?;
    let line = p.wait_line("url ", Duration::from_secs(10))?;
    Ok(Upstream {
        kind,
        url: line["url ".len()..].trim().to_string(),
        proc: Some(p),
    })
}

struct Bridge {
    proc: Proc,
    base: String,
}

fn start_bridge(up: &Upstream, args: &SuiteArgs, tag: &str) -> Result<Bridge, String> {
    let name = format!("bridge-{tag}");
    let mut cmd = Command::new(&args.bridge);
    cmd.args([
        "--upstream",
        &up.url,
        "--upstream-transport",
        match up.kind {
            ClientKind::Legacy => "sse",
            ClientKind::Streamable => "streamable",
        },
        "--listen",
        "127.0.0.1:0",
        "--max-sessions",
        "100000",
    ]);
    if args.bridge_workers > 0 {
        cmd.args(["--workers", &args.bridge_workers.to_string()]);
    }
    cmd.args(&args.bridge_args);
    let mut p = Proc::spawn(&name, &mut cmd, &args.log_dir.join(format!("{name}.log")))?;
    let line = p.wait_line("mcp-bridge listening on ", Duration::from_secs(10))?;
    let base = line["mcp-bridge listening on ".len()..].trim().to_string();
    Ok(Bridge { proc: p, base })
}

// ------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------

#[derive(Serialize, Clone, Debug, Default)]
struct IdleResult {
    client: String,
    target: String,
    /// Streamable clients held their standalone GET stream open too.
    listen: bool,
    requested: usize,
    opened: usize,
    open_errors: u64,
    error_samples: Vec<String>,
    open_s: f64,
    close_errors: u64,
    /// Bridge runs only (KiB / counts).
    rss_start_kib: u64,
    rss_before_kib: u64,
    rss_open_kib: u64,
    rss_after_kib: u64,
    fds_before: usize,
    fds_open: usize,
    fds_after: usize,
    upstream_sessions_open: Option<usize>,
    upstream_sessions_after: Option<usize>,
    /// Whether the release was awaited and seen (all upstream sessions/streams gone).
    released: bool,
    /// Seconds until the bridge had released every session after close.
    drain_s: f64,
    /// Seconds after that until RSS was back within 10 % of the start (None: not within 8 s).
    returned_s: Option<f64>,
}

impl IdleResult {
    fn per_session_kib(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        (self.rss_open_kib as f64 - self.rss_before_kib as f64) / self.opened as f64
    }
}

#[derive(Serialize, Default)]
struct Report {
    commit: String,
    started: String,
    machine: String,
    settings: BTreeMap<String, String>,
    /// scenario → target ("direct-legacy", "bridge-legacy-streamable", …) → result.
    load: BTreeMap<String, BTreeMap<String, LoadResult>>,
    idle: Vec<IdleResult>,
    /// Bridge RSS before/after each load run (memory kept per call shows here).
    load_rss: Vec<String>,
    notes: Vec<String>,
    total_s: f64,
}

fn direct_key(client: ClientKind) -> String {
    format!("direct {}", client.as_str())
}

fn bridge_key(client: ClientKind, up: ClientKind) -> String {
    format!("bridge {}->{}", client.as_str(), up.as_str())
}

fn pair_name(client: ClientKind, up: ClientKind) -> String {
    format!("{} → {}", client.as_str(), up.as_str())
}

/// The call a scenario makes against an upstream of this transport (None: skip it there).
type CallFor<'a> = dyn Fn(ClientKind) -> Option<CallSpec> + 'a;

struct Scenario {
    key: &'static str,
    title: String,
    sessions: usize,
    threads: usize,
    warmup: f64,
    seconds: f64,
    max_calls: u64,
}

// ------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------

pub fn run(args: SuiteArgs) -> i32 {
    match run_inner(&args) {
        Ok(clean) => i32::from(!clean),
        Err(e) => {
            eprintln!("loadgen suite: {e}");
            2
        }
    }
}

fn say(msg: impl AsRef<str>) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[bench {t:6.1}s] {}", msg.as_ref());
}

fn run_inner(args: &SuiteArgs) -> Result<bool, String> {
    let t0 = Instant::now();
    for d in [
        Some(args.log_dir.as_path()),
        args.out.parent(),
        args.json_out.parent(),
    ]
    .into_iter()
    .flatten()
    {
        if !d.as_os_str().is_empty() {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    // Logs of an earlier run would be mistaken for this one's.
    if let Ok(entries) = fs::read_dir(&args.log_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log")
                || p.file_name().is_some_and(|n| n == "pids")
            {
                let _ = fs::remove_file(p);
            }
        }
    }
    if !args.bridge.exists() {
        return Err(format!(
            "no bridge binary at {} (cargo build --release --bin mcp-bridge)",
            args.bridge.display()
        ));
    }
    let only = |k: &str| args.only.iter().any(|o| o.trim() == k);
    let mut report = Report {
        commit: args.commit.clone(),
        started: now_utc(),
        machine: machine(),
        ..Report::default()
    };
    let s = &mut report.settings;
    s.insert("bridge workers".into(), worker_desc(args.bridge_workers));
    s.insert("upstream workers".into(), args.upstream_workers.to_string());
    s.insert("loadgen threads".into(), args.threads.to_string());
    s.insert("bridge args".into(), args.bridge_args.join(" "));
    s.insert("load average before".into(), loadavg());
    s.insert(
        "fd limit".into(),
        fd_limit().map_or("?".into(), |l| l.to_string()),
    );

    let mut ups = Vec::new();
    for kind in UPSTREAMS {
        ups.push(start_upstream(kind, args)?);
    }
    say(format!(
        "upstreams: {}",
        ups.iter()
            .map(|u| format!("{} {}", u.kind.as_str(), u.url))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let external =
        |kind: ClientKind| args.upstream_url.is_some() && args.upstream_transport == Some(kind);
    let echo_for = |kind: ClientKind| {
        let mut c = CallSpec::echo();
        if external(kind) {
            c.params = args.echo_params.clone();
            c.expect_notes = None;
        }
        Some(c)
    };
    let progress_for = |kind: ClientKind| {
        if external(kind) {
            args.progress_params.as_ref().map(|p| CallSpec {
                params: p.clone(),
                progress: true,
                expect_notes: None,
                min_result_bytes: 0,
            })
        } else {
            Some(CallSpec::progress(args.steps))
        }
    };
    let big_for = |kind: ClientKind| {
        if external(kind) {
            args.big_params.as_ref().map(|p| CallSpec {
                params: p.clone(),
                progress: false,
                expect_notes: None,
                min_result_bytes: 0,
            })
        } else {
            Some(CallSpec::big(1 << 20))
        }
    };

    // ---- load scenarios: one bridge per upstream transport --------------------------------
    let sec = args.seconds;
    let threads = args.threads;
    let scenarios: Vec<(Scenario, &CallFor)> = vec![
        (
            Scenario {
                key: "a",
                title: "(a) 1 session, sequential echo".into(),
                sessions: 1,
                threads: 1,
                warmup: 0.5,
                seconds: sec,
                max_calls: 1_000_000,
            },
            &echo_for,
        ),
        (
            Scenario {
                key: "b",
                title: format!("(b) {} sessions, echo", args.sessions),
                sessions: args.sessions,
                threads,
                warmup: 0.5,
                seconds: sec,
                max_calls: 5_000_000,
            },
            &echo_for,
        ),
        (
            Scenario {
                key: "c",
                title: format!(
                    "(c) {} sessions, progress tool ({} notifications/call)",
                    args.notify_sessions,
                    2 * args.steps
                ),
                sessions: args.notify_sessions,
                threads,
                warmup: 0.5,
                seconds: sec,
                max_calls: 1_000_000,
            },
            &progress_for,
        ),
        (
            Scenario {
                key: "e",
                title: "(e) 1 session, 1 MiB tool result".into(),
                sessions: 1,
                threads: 1,
                warmup: 0.3,
                seconds: sec * 0.8,
                max_calls: 5_000,
            },
            &big_for,
        ),
    ];
    let any_load = scenarios.iter().any(|(s, _)| only(s.key));
    let mut clean = true;
    if any_load {
        let mut bridges = Vec::new();
        for up in &ups {
            bridges.push(start_bridge(
                up,
                args,
                &format!("load-{}", up.kind.as_str()),
            )?);
        }
        for (sc, call_for) in &scenarios {
            if !only(sc.key) {
                continue;
            }
            let mut targets = Vec::new();
            for client in PAIRS_CLIENTS {
                targets.push((
                    direct_key(client),
                    ups[idx(client)].url.clone(),
                    client,
                    client,
                ));
                for up in UPSTREAMS {
                    targets.push((
                        bridge_key(client, up),
                        format!("{}{}", bridges[idx(up)].base, client.bridge_path()),
                        client,
                        up,
                    ));
                }
            }
            // Repeats go round-robin over the targets, so drift and bursts of other work on
            // the machine hit direct and bridged runs alike; the median run is reported.
            let repeat = if matches!(sc.key, "a" | "b") {
                args.repeat.max(1)
            } else {
                1
            };
            let mut runs: BTreeMap<String, Vec<LoadResult>> = BTreeMap::new();
            for rep in 0..repeat {
                for (key, url, client, upstream_kind) in &targets {
                    // The call the server at the far end understands.
                    let Some(call) = call_for(*upstream_kind) else {
                        if rep == 0 {
                            say(format!(
                                "{}: {key}: skipped (no tool for this server)",
                                sc.title
                            ));
                        }
                        continue;
                    };
                    let spec = LoadSpec {
                        client: *client,
                        url: url.clone(),
                        sessions: sc.sessions,
                        threads: sc.threads,
                        warmup: Duration::from_secs_f64(sc.warmup),
                        duration: Duration::from_secs_f64(sc.seconds),
                        max_calls: sc.max_calls,
                        call,
                        call_timeout: Duration::from_secs(10),
                    };
                    let bridge_pid = (!key.starts_with("direct"))
                        .then(|| bridges[idx(*upstream_kind)].proc.pid());
                    let rss0 = bridge_pid.and_then(rss_kib);
                    let r = load::run(&spec);
                    // Only the first repeat: later ones reuse the memory the first one freed.
                    if let (Some(pid), Some(rss0), 0) = (bridge_pid, rss0, rep) {
                        let rss1 = rss_kib(pid).unwrap_or(0);
                        report.load_rss.push(format!(
                            "{} | {key}: bridge RSS {:.1} → {:.1} MiB over {} calls ({:+.2} KiB per call)",
                            sc.title,
                            rss0 as f64 / 1024.0,
                            rss1 as f64 / 1024.0,
                            r.calls,
                            (rss1 as f64 - rss0 as f64) / r.calls.max(1) as f64
                        ));
                    }
                    say(format!("{} | {key}: {}", sc.title, r.human()));
                    clean &= r.clean();
                    runs.entry(key.clone()).or_default().push(r);
                }
            }
            let mut results = BTreeMap::new();
            for (key, mut rs) in runs {
                // (a) is about latency, the rest about rates.
                let metric = |r: &LoadResult| match sc.key {
                    "a" => r.latency.p50_us,
                    "c" => r.notifications_per_s,
                    _ => r.calls_per_s,
                };
                rs.sort_by(|x, y| metric(x).total_cmp(&metric(y)));
                let all: Vec<f64> = rs.iter().map(metric).collect();
                // Errors of any repeat count.
                let (errors, lost, reordered, unexpected) = rs.iter().fold((0, 0, 0, 0), |a, r| {
                    (
                        a.0 + r.errors + r.open_errors,
                        a.1 + r.lost,
                        a.2 + r.reordered,
                        a.3 + r.unexpected,
                    )
                });
                let mut median = rs.swap_remove(all.len() / 2);
                median.repeats = all;
                median.errors = errors - median.open_errors;
                median.lost = lost;
                median.reordered = reordered;
                median.unexpected = unexpected;
                results.insert(key, median);
            }
            report.load.insert(sc.title.clone(), results);
        }
        for b in &bridges {
            if let Some(k) = rss_kib(b.proc.pid()) {
                report.notes.push(format!(
                    "{}: VmRSS {k} KiB after the load scenarios",
                    b.proc.name
                ));
            }
        }
        drop(bridges);
    }

    // ---- idle sessions: a fresh bridge per pair --------------------------------------------
    if only("d") {
        let limit = fd_limit().unwrap_or(1024) as usize;
        let sys = actix_rt::System::new();
        for client in PAIRS_CLIENTS {
            // A legacy session holds two sockets in the bridge (client SSE + upstream stream);
            // a Streamable one holds one (its upstream stream) when the client does not listen.
            let per_session = match client {
                ClientKind::Legacy => 2,
                ClientKind::Streamable => 1,
            };
            let cap = limit.saturating_sub(400) / per_session;
            let sizes: Vec<usize> = args.idle.iter().map(|&n| n.min(cap)).collect();
            // Cycles: (sessions, Streamable clients also hold their standalone GET stream, as
            // the SDK clients do). The listening variant costs a second socket per session,
            // so it runs at the smallest size only.
            let mut cycles: Vec<(usize, bool)> = sizes.iter().map(|&n| (n, false)).collect();
            if client == ClientKind::Streamable && args.idle_listen {
                if let Some(&n) = sizes.iter().min() {
                    cycles.push((n, true));
                }
            }
            for (&asked, &n) in args.idle.iter().zip(&sizes) {
                if n < asked {
                    let note = format!(
                        "{} clients: {asked} idle sessions need {} sockets in the bridge; the open-files limit here is {limit} (the hard limit; raising it needs privileges), so {n} were opened",
                        client.as_str(),
                        asked * per_session
                    );
                    say(&note);
                    if !report.notes.contains(&note) {
                        report.notes.push(note);
                    }
                }
            }
            // Direct.
            let up = &mut ups[idx(client)];
            let rows = sys.block_on(idle_direct(client, up, &cycles, args));
            for r in rows {
                say(format!(
                    "idle {}: {} sessions in {:.2} s ({} errors)",
                    r.target, r.opened, r.open_s, r.open_errors
                ));
                clean &= r.open_errors == 0 && r.close_errors == 0;
                report.idle.push(r);
            }
            let largest = sizes.iter().copied().max().unwrap_or(0);
            for up_kind in UPSTREAMS {
                let up = &mut ups[idx(up_kind)];
                let rows = sys.block_on(idle_bridge(client, up, &cycles, largest, args))?;
                for r in rows {
                    say(format!(
                        "idle {}: {} sessions in {:.2} s ({} errors); RSS {} → {} → {} KiB (start {}), {:.1} KiB/session; fds {} → {} → {}",
                        r.target, r.opened, r.open_s, r.open_errors, r.rss_before_kib, r.rss_open_kib,
                        r.rss_after_kib, r.rss_start_kib, r.per_session_kib(), r.fds_before, r.fds_open, r.fds_after
                    ));
                    clean &= r.open_errors == 0 && r.close_errors == 0;
                    report.idle.push(r);
                }
            }
        }
    }

    drop(ups);
    trim_logs(&args.log_dir, &mut report.notes);
    report.total_s = t0.elapsed().as_secs_f64();
    report
        .settings
        .insert("load average after".into(), loadavg());
    let md = markdown(&report, args);
    print!("{md}");
    fs::write(&args.out, &md).map_err(|e| format!("{}: {e}", args.out.display()))?;
    fs::write(
        &args.json_out,
        serde_json::to_string_pretty(&report).expect("serialise"),
    )
    .map_err(|e| format!("{}: {e}", args.json_out.display()))?;
    say(format!(
        "wrote {} and {} in {:.0} s",
        args.out.display(),
        args.json_out.display(),
        report.total_s
    ));
    Ok(clean)
}

fn idx(k: ClientKind) -> usize {
    match k {
        ClientKind::Legacy => 0,
        ClientKind::Streamable => 1,
    }
}

fn worker_desc(n: usize) -> String {
    if n == 0 {
        "default (one per core)".into()
    } else {
        n.to_string()
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
async fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            if !what.is_empty() {
                say(format!("gave up waiting after {timeout:?}: {what}"));
            }
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn idle_direct(
    client: ClientKind,
    up: &mut Upstream,
    cycles: &[(usize, bool)],
    args: &SuiteArgs,
) -> Vec<IdleResult> {
    let mut rows = Vec::new();
    for &(n, listen) in cycles {
        let base = up.sessions();
        let o = idle::open(
            client,
            &up.url,
            n,
            args.idle_concurrency,
            listen,
            Duration::from_secs(90),
        )
        .await;
        let opened = o.sessions.len();
        let peak = up.sessions();
        let (close_errors, _, _) = idle::close(o.sessions, args.idle_concurrency).await;
        let drained = Instant::now();
        if let Some(b) = base {
            until(
                "upstream sessions back to base",
                Duration::from_secs(20),
                || up.sessions().is_some_and(|s| s <= b),
            )
            .await;
        }
        rows.push(IdleResult {
            client: client.as_str().into(),
            target: direct_key(client),
            listen,
            requested: n,
            opened,
            open_errors: o.errors,
            error_samples: o.error_samples,
            open_s: o.elapsed.as_secs_f64(),
            close_errors,
            upstream_sessions_open: peak,
            upstream_sessions_after: up.sessions(),
            drain_s: drained.elapsed().as_secs_f64(),
            ..IdleResult::default()
        });
    }
    rows
}

/// One fresh bridge per cycle: glibc keeps freed memory for reuse, so a bridge that already
/// held sessions would make the next cycle look cheaper than it is.
async fn idle_bridge(
    client: ClientKind,
    up: &mut Upstream,
    cycles: &[(usize, bool)],
    largest: usize,
    args: &SuiteArgs,
) -> Result<Vec<IdleResult>, String> {
    let conc = args.idle_concurrency;
    let mut rows = Vec::new();
    for &(n, listen) in cycles {
        let tag = format!(
            "idle-{}-{}-{n}{}",
            client.as_str(),
            up.kind.as_str(),
            if listen { "-get" } else { "" }
        );
        let bridge = start_bridge(up, args, &tag)?;
        let pid = bridge.proc.pid();
        let url = format!("{}{}", bridge.base, client.bridge_path());
        let up_base = up.stats();
        // Released = every upstream session and stream of ours is gone. (Not the bridge's fd
        // count: idle keep-alive connections of its upstream pool linger, some in CLOSE_WAIT,
        // until the pool happens to reuse them.) Without upstream stats (external server): fds.
        let settle = |up: &mut Upstream, fds0: usize| match up_base {
            Some((s0, st0)) => up.stats().is_some_and(|(s, st)| s <= s0 && st <= st0),
            None => fd_count(pid).is_some_and(|f| f <= fds0 + 2 * conc + 16),
        };
        // Warm-up: the first sessions allocate the bridge's long-lived structures (pools,
        // maps, per-worker clients). Streamable sessions whatever the pair: a DELETE releases
        // them at once, whereas a legacy client's disconnect is only noticed by the bridge
        // at a later keep-alive write.
        let fds_idle = fd_count(pid).unwrap_or(0);
        let warm_url = format!("{}{}", bridge.base, ClientKind::Streamable.bridge_path());
        let w = idle::open(
            ClientKind::Streamable,
            &warm_url,
            50,
            conc,
            false,
            Duration::from_secs(20),
        )
        .await;
        idle::close(w.sessions, conc).await;
        until(
            "bridge released the warm-up sessions",
            Duration::from_secs(20),
            || settle(up, fds_idle),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = rss_kib(pid).unwrap_or(0);
        let fds_before = fd_count(pid).unwrap_or(0);
        let o = idle::open(client, &url, n, conc, listen, Duration::from_secs(90)).await;
        let opened = o.sessions.len();
        let opened_at = Instant::now();
        // Every bridge session has its upstream session open before we weigh it.
        if let Some((b, _)) = up_base {
            until(
                "every upstream session open",
                Duration::from_secs(10),
                || up.sessions().is_some_and(|s| s >= b + opened),
            )
            .await;
        }
        // Idle sessions sit idle for a while before they are weighed (and before they close,
        // so a periodic task in the bridge sees them, as it would in real use).
        let hold = Duration::from_secs_f64(args.idle_hold);
        tokio::time::sleep(hold.saturating_sub(opened_at.elapsed())).await;
        let rss_open = rss_kib(pid).unwrap_or(0);
        let fds_open = fd_count(pid).unwrap_or(0);
        let peak = up.sessions();
        let (close_errors, _, _) = idle::close(o.sessions, conc).await;
        let closed = Instant::now();
        // How long the release takes, and where memory ends: measured where it is quick
        // (Streamable DELETE) and for the largest cycle; a legacy client's disconnect takes
        // the bridge two keep-alive intervals (~30 s) to notice.
        let wait_release = client == ClientKind::Streamable || (n == largest && !listen);
        let (released, drain_s, rss_after, fds_after, returned_s) = if wait_release {
            let ok = until(
                "bridge released the sessions",
                Duration::from_secs(45),
                || settle(up, fds_before),
            )
            .await;
            let drain_s = closed.elapsed().as_secs_f64();
            // Freed memory may go back to the OS a little later (the allocator, or a periodic
            // trim in the bridge): give it up to 8 s, stopping once RSS is near the start.
            let near_start = |pid| rss_kib(pid).is_some_and(|r| r * 10 <= rss_before * 11);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let returned = Instant::now();
            let back = until("", Duration::from_secs(8), || near_start(pid)).await;
            (
                ok,
                drain_s,
                rss_kib(pid).unwrap_or(0),
                fd_count(pid).unwrap_or(0),
                back.then(|| 0.3 + returned.elapsed().as_secs_f64()),
            )
        } else {
            (false, 0.0, 0, 0, None)
        };
        rows.push(IdleResult {
            client: client.as_str().into(),
            target: bridge_key(client, up.kind),
            listen,
            requested: n,
            opened,
            open_errors: o.errors,
            error_samples: o.error_samples,
            open_s: o.elapsed.as_secs_f64(),
            close_errors,
            rss_start_kib: rss_before,
            rss_before_kib: rss_before,
            rss_open_kib: rss_open,
            rss_after_kib: rss_after,
            fds_before,
            fds_open,
            fds_after,
            upstream_sessions_open: peak,
            upstream_sessions_after: if wait_release { up.sessions() } else { None },
            released,
            drain_s,
            returned_s,
        });
        drop(bridge);
        // A killed bridge drops its upstream streams; let the upstream see them go. (Streams,
        // not sessions: the fake legacy server sometimes keeps the session entry of a stream
        // cut this way, and Streamable sessions of a killed bridge are never deleted.)
        if let Some((_, st0)) = up_base {
            until(
                "upstream streams back to base",
                Duration::from_secs(10),
                || up.stats().is_some_and(|(_, st)| st <= st0),
            )
            .await;
        }
    }
    Ok(rows)
}

// ------------------------------------------------------------------------------------------
// Markdown
// ------------------------------------------------------------------------------------------

fn ms(us: f64) -> String {
    format!("{:.3} ms", us / 1e3)
}

fn ratio(direct: f64, bridge: f64) -> String {
    if direct > 0.0 {
        format!("{:.2}", bridge / direct)
    } else {
        "–".into()
    }
}

fn quality(r: &LoadResult) -> String {
    let mut s = format!("{} err", r.errors + r.open_errors);
    if r.notifications > 0 || r.lost > 0 || r.reordered > 0 || r.unexpected > 0 {
        s += &format!(
            ", {} lost, {} reordered, {} unexpected",
            r.lost, r.reordered, r.unexpected
        );
    }
    s
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    /// A row of latencies (µs), shown in ms with their ratio.
    fn ms_row(
        &mut self,
        scenario: &str,
        pair: &str,
        direct: f64,
        bridge: f64,
        notes: impl Into<String>,
    ) {
        let cells = [ms(direct), ms(bridge), ratio(direct, bridge), notes.into()];
        self.row(scenario, pair, cells);
    }

    /// A row of rates, shown as whole numbers followed by `unit`, with their ratio.
    fn rate_row(
        &mut self,
        scenario: &str,
        pair: &str,
        direct: f64,
        bridge: f64,
        unit: &str,
        notes: impl Into<String>,
    ) {
        let cells = [
            format!("{direct:.0}{unit}"),
            format!("{bridge:.0}{unit}"),
            ratio(direct, bridge),
            notes.into(),
        ];
        self.row(scenario, pair, cells);
    }

    /// One row of a scenario and pair: direct, via bridge, ratio, notes.
    fn row(&mut self, scenario: &str, pair: &str, cells: [String; 4]) {
        let [direct, bridge, ratio, notes] = cells;
        self.rows
            .push([scenario.into(), pair.into(), direct, bridge, ratio, notes]);
    }
    fn render(&self) -> String {
        let mut s = String::from(
            "| Scenario | Pair (client → upstream) | Direct | Via bridge | Ratio | Notes |\n|---|---|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }
}

fn markdown(rep: &Report, args: &SuiteArgs) -> String {
    let mut t = Table { rows: Vec::new() };
    let mut checks: Vec<(String, String, bool)> = Vec::new();
    for (title, results) in &rep.load {
        for client in PAIRS_CLIENTS {
            let direct = results.get(&direct_key(client));
            for up in UPSTREAMS {
                let Some(b) = results.get(&bridge_key(client, up)) else {
                    continue;
                };
                let pair = pair_name(client, up);
                let d = direct.cloned().unwrap_or_default();
                let dq = direct
                    .map(|d| format!("direct {}; ", quality(d)))
                    .unwrap_or_default();
                let bq = format!("bridge {}", quality(b));
                // "median of 3 runs: direct a–b, bridge c–d"
                let spread = |f: &dyn Fn(f64) -> String| {
                    if b.repeats.len() < 2 {
                        return String::new();
                    }
                    let span = |r: &[f64]| match (r.first(), r.last()) {
                        (Some(lo), Some(hi)) => format!("{}–{}", f(*lo), f(*hi)),
                        _ => "–".into(),
                    };
                    format!(
                        " (median of {} runs; direct {}, bridge {})",
                        b.repeats.len(),
                        direct.map_or("–".into(), |d| span(&d.repeats)),
                        span(&b.repeats)
                    )
                };
                if title.starts_with("(a)") {
                    let add50 = b.latency.p50_us - d.latency.p50_us;
                    let add99 = b.latency.p99_us - d.latency.p99_us;
                    t.ms_row(
                        title,
                        &pair,
                        d.latency.p50_us,
                        b.latency.p50_us,
                        format!(
                            "p50; added {:+.3} ms{}",
                            add50 / 1e3,
                            spread(&|us| format!("{:.3}", us / 1e3))
                        ),
                    );
                    t.ms_row(title, &pair, d.latency.p90_us, b.latency.p90_us, "p90");
                    t.ms_row(
                        title,
                        &pair,
                        d.latency.p99_us,
                        b.latency.p99_us,
                        format!("p99; added {:+.3} ms", add99 / 1e3),
                    );
                    t.ms_row(title, &pair, d.latency.max_us, b.latency.max_us, "max");
                    t.rate_row(
                        title,
                        &pair,
                        d.calls_per_s,
                        b.calls_per_s,
                        "/s",
                        format!("calls/s; {dq}{bq}"),
                    );
                    if direct.is_some() {
                        checks.push((
                            format!("added p50 ≤ 0.15 ms ({pair})"),
                            format!("{:+.3} ms", add50 / 1e3),
                            add50 <= 150.0,
                        ));
                        checks.push((
                            format!("added p99 ≤ 1 ms ({pair})"),
                            format!("{:+.3} ms", add99 / 1e3),
                            add99 <= 1000.0,
                        ));
                    }
                } else if title.starts_with("(b)") {
                    t.rate_row(
                        title,
                        &pair,
                        d.calls_per_s,
                        b.calls_per_s,
                        "/s",
                        format!("calls/s; {dq}{bq}{}", spread(&|v| format!("{v:.0}"))),
                    );
                    t.ms_row(title, &pair, d.latency.p50_us, b.latency.p50_us, "p50");
                    t.ms_row(
                        title,
                        &pair,
                        d.latency.p99_us,
                        b.latency.p99_us,
                        format!(
                            "p99; p99.9 {} vs {}, max {} vs {}",
                            ms(d.latency.p999_us),
                            ms(b.latency.p999_us),
                            ms(d.latency.max_us),
                            ms(b.latency.max_us)
                        ),
                    );
                    checks.push((
                        format!("≥ 15,000 calls/s via bridge ({pair})"),
                        format!("{:.0}/s", b.calls_per_s),
                        b.calls_per_s >= 15_000.0,
                    ));
                    if direct.is_some() {
                        let r = b.calls_per_s / d.calls_per_s.max(1e-9);
                        checks.push((
                            format!("≥ 45 % of direct ({pair})"),
                            format!("{:.0} %", r * 100.0),
                            r >= 0.45,
                        ));
                    }
                } else if title.starts_with("(c)") {
                    t.rate_row(
                        title,
                        &pair,
                        d.notifications_per_s,
                        b.notifications_per_s,
                        "/s",
                        format!("notifications/s; {dq}{bq}"),
                    );
                    t.ms_row(
                        title,
                        &pair,
                        d.latency.p50_us,
                        b.latency.p50_us,
                        format!("p50 per call ({:.0} calls/s via bridge)", b.calls_per_s),
                    );
                } else {
                    let mibs = |r: &LoadResult| {
                        r.result_bytes as f64 / r.window_s.max(1e-9) / (1 << 20) as f64
                    };
                    t.ms_row(
                        title,
                        &pair,
                        d.latency.p50_us,
                        b.latency.p50_us,
                        format!(
                            "p50; p99 {} vs {}",
                            ms(d.latency.p99_us),
                            ms(b.latency.p99_us)
                        ),
                    );
                    t.rate_row(
                        title,
                        &pair,
                        mibs(&d),
                        mibs(b),
                        " MiB/s",
                        format!("result throughput; {dq}{bq}"),
                    );
                }
                let bad = b.errors
                    + b.open_errors
                    + b.lost
                    + b.reordered
                    + b.unexpected
                    + direct.map_or(0, |d| {
                        d.errors + d.open_errors + d.lost + d.reordered + d.unexpected
                    });
                checks.push((
                    format!("zero errors / lost / reordered: {} ({pair})", &title[..3]),
                    bad.to_string(),
                    bad == 0,
                ));
            }
        }
    }
    // Idle.
    for client in PAIRS_CLIENTS {
        let direct: Vec<&IdleResult> = rep
            .idle
            .iter()
            .filter(|r| r.target == direct_key(client))
            .collect();
        for up in UPSTREAMS {
            let pair = pair_name(client, up);
            for b in rep
                .idle
                .iter()
                .filter(|r| r.target == bridge_key(client, up))
            {
                let d = direct
                    .iter()
                    .find(|d| d.requested == b.requested && d.listen == b.listen);
                let title = if b.listen {
                    format!("(d) {} idle sessions + GET stream", b.opened)
                } else {
                    format!("(d) {} idle sessions", b.opened)
                };
                let errs = b.open_errors
                    + b.close_errors
                    + d.map_or(0, |d| d.open_errors + d.close_errors);
                t.row(
                    &title,
                    &pair,
                    [
                        d.map_or("–".into(), |d| format!("{:.2} s", d.open_s)),
                        format!("{:.2} s", b.open_s),
                        d.map_or("–".into(), |d| ratio(d.open_s, b.open_s)),
                        format!(
                            "time to open ({:.0}/s via bridge); {errs} errors",
                            b.opened as f64 / b.open_s.max(1e-9)
                        ),
                    ],
                );
                t.row(
                    &title,
                    &pair,
                    [
                        "–".into(),
                        format!("{:.1} KiB", b.per_session_kib()),
                        "–".into(),
                        format!(
                            "bridge RSS per session ({} → {} KiB; {} fds open)",
                            b.rss_before_kib, b.rss_open_kib, b.fds_open
                        ),
                    ],
                );
                let back = b.rss_after_kib as f64 / b.rss_start_kib.max(1) as f64;
                let measured_after = b.rss_after_kib > 0;
                if measured_after {
                    t.row(
                        &title,
                        &pair,
                        [
                            "–".into(),
                            format!("{} KiB", b.rss_after_kib),
                            "–".into(),
                            format!(
                            "bridge RSS after close = {:.0} % of start ({} KiB); {} {:.1} s; {}",
                            back * 100.0,
                            b.rss_start_kib,
                            if b.released {
                                "all upstream sessions closed after"
                            } else {
                                "NOT all released after"
                            },
                            b.drain_s,
                            match b.returned_s {
                                Some(t) => format!("RSS back near start {t:.1} s later"),
                                None => "RSS not back near start within 8 s".into(),
                            }
                        ),
                        ],
                    );
                }
                if !b.listen
                    && measured_after
                    && (b.requested == *args.idle.iter().max().unwrap_or(&0) || b.opened >= 9_000)
                {
                    checks.push((
                        format!(
                            "≤ 32 KiB RSS per idle session, {} sessions ({pair})",
                            b.opened
                        ),
                        format!("{:.1} KiB", b.per_session_kib()),
                        b.per_session_kib() <= 32.0,
                    ));
                    checks.push((
                        format!("RSS back within 10 % of start after close ({pair})"),
                        format!("{:+.0} %", (back - 1.0) * 100.0),
                        back <= 1.10,
                    ));
                }
                checks.push((
                    format!("zero errors: (d) {} sessions ({pair})", b.opened),
                    errs.to_string(),
                    errs == 0,
                ));
            }
        }
    }

    let mut md = String::new();
    md += "# mcp-bridge benchmark results\n\n";
    md += &format!(
        "- commit: `{}`\n- run: {} ({:.0} s)\n- machine: {}\n",
        if rep.commit.is_empty() {
            "?"
        } else {
            &rep.commit
        },
        rep.started,
        rep.total_s,
        rep.machine
    );
    for (k, v) in &rep.settings {
        if !v.is_empty() {
            md += &format!("- {k}: {v}\n");
        }
    }
    md += "- direct = the same client transport straight to the fast upstream of that transport; ratio = via bridge / direct\n\n";
    md += &t.render();
    md += "\n## Targets\n\n| Target | Measured | Met |\n|---|---:|:---:|\n";
    for (what, got, ok) in &checks {
        md += &format!(
            "| {what} | {got} | {} |\n",
            if *ok { "yes" } else { "**no**" }
        );
    }
    if !rep.load_rss.is_empty() {
        md += "\n## Bridge memory across the load runs\n\n";
        md += "One bridge per upstream transport serves every load run, in this order; sessions end after each run.\n\n";
        for n in &rep.load_rss {
            md += &format!("- {n}\n");
        }
    }
    if !rep.notes.is_empty() {
        md += "\n## Notes\n\n";
        for n in &rep.notes {
            md += &format!("- {n}\n");
        }
    }
    let samples: Vec<String> = rep
        .load
        .iter()
        .flat_map(|(t, m)| {
            m.iter().flat_map(move |(k, r)| {
                r.error_samples
                    .iter()
                    .map(move |e| format!("{t} / {k}: {e}"))
            })
        })
        .chain(rep.idle.iter().flat_map(|r| {
            r.error_samples
                .iter()
                .map(move |e| format!("idle {}: {e}", r.target))
        }))
        .take(20)
        .collect();
    if !samples.is_empty() {
        md += "\n## Error samples\n\n";
        for s in samples {
            md += &format!("- {s}\n");
        }
    }
    md
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Bridge logs at the default level can reach hundreds of MB (one line per rerouted
/// notification): their volume is a finding, their bulk is not worth keeping.
fn trim_logs(dir: &Path, notes: &mut Vec<String>) {
    const KEEP: u64 = 8 << 20;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for path in names {
        let Ok(len) = fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if len > (1 << 20) {
            notes.push(format!(
                "{name}: {:.0} MiB written{}",
                len as f64 / (1 << 20) as f64,
                if len > KEEP {
                    " (truncated to 8 MiB)"
                } else {
                    ""
                }
            ));
        }
        if len > KEEP {
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(KEEP);
            }
        }
    }
}

/// 1/5/15-minute load averages: other work on the box skews every figure.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |k| {
            format!(", {:.0} GiB", k as f64 / (1 << 20) as f64)
        });
    format!(
        "{cores} cores ({cpu}){mem}, loopback; load generator, upstream and bridge share the cores"
    )
}
