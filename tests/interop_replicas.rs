//! Real SDK clients through THREE bridge replicas behind a real haproxy (issue 16).
//!
//! Each cell starts a real redis-server, three `mcp-bridge` processes sharing it (each on its
//! own port, `--replica-address`, one secret file) and haproxy balancing every request
//! round-robin over them, in front of `server-everything` (legacy SSE or Streamable upstream).
//! A real SDK client runs the interop scenario (tests/interop/README.md) through haproxy; the
//! same client runs it at the same time through ONE bridge (same flags, no `--redis`) in front
//! of its own `server-everything`. The two summaries (results, notifications in order, server
//! requests; everything but `meta`) must be equal. Then, from haproxy's log and each
//! replica's `/metrics`: the requests landed on every replica, only one replica (the owner)
//! spoke to the upstream, and the requests that landed on the others succeeded — they were
//! relayed to the owner.
//!
//! Cells (all 8 combinations of these; 2.5–3.5 s each on this machine, 22–24 s in all with
//! nextest's two threads): clients Python `mcp` 1.x and TypeScript SDK 1.x, each with legacy
//! SSE (`sse_client`, `SSEClientTransport`) and Streamable HTTP (`streamablehttp_client`,
//! `StreamableHTTPClientTransport`); upstream `server-everything` legacy SSE and Streamable,
//! with `--upstream-transport` explicit. Left out: the Python 2.x clients and FastMCP
//! upstreams (tests/interop.rs covers them with one bridge; the replica path does not depend
//! on the client or server software, only on the transports, which are all here).
//!
//! Peers: `INTEROP_DIR` (default `.interop/`, `make interop-deps`); redis-server and haproxy:
//! `tests/infra/install.sh`. `INTEROP_CLIENT_TIMEOUT` (seconds, default 20) bounds each
//! client run.

mod replica_procs;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use mcp_testkit::haproxy::Logged;
use mcp_testkit::proc::{Proc, ProcOptions};
use replica_procs::Group;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Peers (as in tests/interop.rs)
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn interop_src() -> PathBuf {
    repo_root().join("tests").join("interop")
}

fn interop_dir() -> PathBuf {
    std::env::var_os("INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".interop"))
}

/// Fails (never skips) when the peers are missing.
fn require_peers() {
    let dir = interop_dir();
    for p in [
        dir.join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        dir.join("node/node_modules/@modelcontextprotocol/sdk/package.json"),
        dir.join("py1/bin/python"),
    ] {
        assert!(
            p.exists(),
            "missing {} => run `make interop-deps` (tests/interop/install.sh)",
            p.display()
        );
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn spawn(name: &str, cmd: Command) -> Proc {
    Proc::spawn(name, cmd, ProcOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Sse,
    Streamable,
}

impl Transport {
    fn flag(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Streamable => "streamable",
        }
    }

    /// The client's endpoint on a bridge.
    fn path(self) -> &'static str {
        match self {
            Transport::Sse => "/sse",
            Transport::Streamable => "/mcp",
        }
    }
}

/// `server-everything` on a free port; ready when it announced its port and accepts.
struct Everything {
    proc: Proc,
    url: String,
}

fn start_everything(transport: Transport) -> Everything {
    let dir = interop_dir();
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut c = Command::new("node");
        c.arg("--require")
            .arg(interop_src().join("servers/loopback.cjs"))
            .arg(
                dir.join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
            )
            .arg(match transport {
                Transport::Sse => "sse",
                Transport::Streamable => "streamableHttp",
            })
            .env("PORT", port.to_string());
        let name = format!("server-everything {transport:?} :{port}");
        let mut proc = spawn(&name, c);
        if proc
            .wait_output(&format!("on port {port}"), Duration::from_secs(15))
            .is_ok()
        {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let accepted = mcp_testkit::infra::wait_accepting(addr, Duration::from_secs(10));
            if accepted.is_ok() && proc.exited().is_none() {
                return Everything {
                    proc,
                    url: format!("http://127.0.0.1:{port}{}", transport.path()),
                };
            }
        }
        last = proc.report(30);
    }
    panic!("server-everything {transport:?} did not start:\n{last}");
}

// ---------------------------------------------------------------------------------------------
// Clients (as in tests/interop.rs)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientSw {
    /// Python mcp 1.x `sse_client` (legacy)
    Py1Sse,
    /// TypeScript `SSEClientTransport` (legacy)
    TsSse,
    /// Python mcp 1.x `streamablehttp_client`
    Py1Streamable,
    /// TypeScript `StreamableHTTPClientTransport`
    TsStreamable,
}

impl ClientSw {
    fn transport(self) -> Transport {
        match self {
            ClientSw::Py1Sse | ClientSw::TsSse => Transport::Sse,
            _ => Transport::Streamable,
        }
    }

    fn command(self, url: &str, timeout_s: u64) -> Command {
        let dir = interop_dir();
        let clients = interop_src().join("clients");
        let (program, script) = match self {
            ClientSw::Py1Sse | ClientSw::Py1Streamable => {
                (dir.join("py1/bin/python"), clients.join("py_client.py"))
            }
            ClientSw::TsSse | ClientSw::TsStreamable => {
                (PathBuf::from("node"), clients.join("ts_client.cjs"))
            }
        };
        let mode = match self.transport() {
            Transport::Sse => "sse",
            Transport::Streamable => "streamable",
        };
        let mut c = Command::new(program);
        c.arg(script)
            .args(["--transport", mode, "--url", url])
            .args(["--timeout", &timeout_s.to_string()])
            .env("INTEROP_DIR", interop_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        c
    }
}

struct ClientRun {
    label: String,
    status: Option<ExitStatus>,
    summary: Option<Value>,
    output: String,
    elapsed: Duration,
}

impl ClientRun {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && self
                .summary
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
                == Some(true)
    }

    fn describe_failure(&self) -> String {
        let why = match (&self.status, &self.summary) {
            (None, _) => "killed by the runner after its deadline".to_string(),
            (Some(st), Some(v)) => format!(
                "exit {st}; failed at stage {:?}: {}",
                v.get("stage").and_then(Value::as_str).unwrap_or("?"),
                v.get("error").and_then(Value::as_str).unwrap_or("?")
            ),
            (Some(st), None) => format!("exit {st}; no JSON summary"),
        };
        format!(
            "{} FAILED after {:.1}s: {why}\n----- client output -----\n{}\n----- end client output -----",
            self.label,
            self.elapsed.as_secs_f64(),
            self.output
        )
    }
}

fn client_timeout() -> u64 {
    std::env::var("INTEROP_CLIENT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

fn run_client(client: ClientSw, url: &str, label: &str) -> ClientRun {
    let timeout = client_timeout();
    let started = Instant::now();
    let mut proc = spawn(&format!("{label} client"), client.command(url, timeout));
    // The client has its own overall timeout; this is the backstop.
    let status = proc.wait_exit(Duration::from_secs(timeout + 5));
    let elapsed = started.elapsed();
    let lines = proc.stop();
    let summary = lines.iter().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(Value::is_object)
    });
    ClientRun {
        label: label.to_string(),
        status,
        summary,
        output: proc.output(),
        elapsed,
    }
}

/// Everything but `meta` (timings, SDK warnings, quirk reports, the URL).
fn comparable(summary: &Value) -> Value {
    let mut v = summary.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    v
}

fn diff_paths(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    if out.len() >= 20 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_paths(p, q, format!("{path}.{k}"), out),
                    (p, q) => out.push(format!("{path}.{k}: replicas={p:?} one={q:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => diff_paths(p, q, format!("{path}[{i}]"), out),
                    (p, q) => out.push(format!("{path}[{i}]: replicas={p:?} one={q:?}")),
                }
            }
        }
        _ if a != b => out.push(format!("{path}: replicas={a} one={b}")),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// A cell
// ---------------------------------------------------------------------------------------------

const BRIDGE_LOG: &str = "info,mcp_bridge=debug";

/// The flags every bridge of a cell gets, replicas and the single one alike.
fn bridge_flags(upstream: &str, transport: Transport) -> Vec<String> {
    [
        "--upstream",
        upstream,
        "--upstream-transport",
        transport.flag(),
        "--upstream-timeout",
        "20s",
    ]
    .map(String::from)
    .to_vec()
}

/// The reference: the same client through ONE bridge (no `--redis`) to its own upstream,
/// on a thread of its own.
fn spawn_single(client: ClientSw, upstream: Transport) -> thread::JoinHandle<(ClientRun, String)> {
    thread::spawn(move || {
        let server = start_everything(upstream);
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        cmd.args(bridge_flags(&server.url, upstream))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", BRIDGE_LOG);
        let mut bridge = spawn(&format!("single bridge :{port}"), cmd);
        bridge
            .wait_line("mcp-bridge listening on ", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}\n{}", bridge.report(40)));
        let url = format!("http://127.0.0.1:{port}{}", client.transport().path());
        let run = run_client(client, &url, &format!("{client:?} via one bridge"));
        let report = format!("{}\n{}", bridge.report(60), server.proc.report(30));
        (run, report)
    })
}

fn run_cell(client: ClientSw, upstream: Transport) {
    require_peers();
    let t0 = Instant::now();
    let cell = format!("{client:?} -> haproxy -> 3 replicas -> server-everything {upstream:?}");
    let single = spawn_single(client, upstream);

    let server = start_everything(upstream);
    let flags = bridge_flags(&server.url, upstream);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let group = Group::start(3, &flags, BRIDGE_LOG);
    let replicated = run_client(
        client,
        &group.url(client.transport().path()),
        &format!("{client:?} via haproxy"),
    );
    let (one, one_report) = single.join().expect("the reference run");
    let context = || format!("{}\n{}", group.report(), server.proc.report(30));

    assert!(
        one.ok(),
        "[{cell}] the reference run through ONE bridge failed (not a replica problem)\n{}\n{one_report}",
        one.describe_failure()
    );
    assert!(
        replicated.ok(),
        "[{cell}] the run through the replicas failed\n{}\n{}",
        replicated.describe_failure(),
        context()
    );
    let (a, b) = (
        comparable(replicated.summary.as_ref().unwrap()),
        comparable(one.summary.as_ref().unwrap()),
    );
    if a != b {
        let mut diffs = Vec::new();
        diff_paths(&a, &b, "$".into(), &mut diffs);
        panic!(
            "[{cell}] the summaries through 3 replicas and through one bridge differ:\n  {}\n\nreplicas:\n{}\n\none bridge:\n{}\n{}",
            diffs.join("\n  "),
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap(),
            context()
        );
    }
    check_spread_and_relayed(&cell, &group, &context);
    eprintln!(
        "[{cell}] OK in {:.1}s (client via replicas {:.1}s, via one bridge {:.1}s)",
        t0.elapsed().as_secs_f64(),
        replicated.elapsed.as_secs_f64(),
        one.elapsed.as_secs_f64()
    );
}

/// Requests landed on every replica (haproxy's log), exactly one replica spoke to the upstream
/// (its message counters), and the requests that landed on the others were answered with
/// success: relayed to that owner.
fn check_spread_and_relayed(cell: &str, group: &Group, context: &dyn Fn() -> String) {
    let spoke: Vec<f64> = group
        .replicas
        .iter()
        .map(|r| {
            ["sse", "streamable"]
                .iter()
                .map(|client| {
                    r.metric(&format!("mcp_bridge_messages_total{{client=\"{client}\",direction=\"client_to_upstream\",kind=\"request\"}}"))
                })
                .sum::<f64>()
        })
        .collect();
    let owners: Vec<usize> = (0..spoke.len()).filter(|&i| spoke[i] > 0.0).collect();
    assert_eq!(
        owners.len(),
        1,
        "[{cell}] one replica (the owner) forwards the session's requests upstream; requests forwarded per replica: {spoke:?}\n{}",
        context()
    );
    let owner = owners[0];
    let served = |logged: &[Logged]| -> Vec<usize> {
        (0..group.replicas.len())
            .map(|i| {
                logged
                    .iter()
                    .filter(|r| r.server == Some(i) && (200..300).contains(&r.status))
                    .count()
            })
            .collect()
    };
    let relayed = |served: &[usize]| -> usize {
        (0..served.len())
            .filter(|&i| i != owner)
            .map(|i| served[i])
            .sum()
    };
    // haproxy logs a request when its answer ends, a moment after the client has it.
    let spread = |logged: &[Logged]| {
        let s = served(logged);
        s.iter().all(|&n| n > 0) && relayed(&s) >= 2
    };
    let logged = wait_for(Duration::from_secs(10), || {
        Some(group.lb.requests()).filter(|l| spread(l))
    })
    .unwrap_or_else(|| {
        let l = group.lb.requests();
        panic!(
            "[{cell}] every replica answers some requests with success, and the replicas other than the owner r{owner} answer at least 2 (relayed): answered per replica {:?}; haproxy log:\n{}\n{}",
            served(&l),
            lines(&l),
            context()
        )
    });
    let s = served(&logged);
    eprintln!(
        "[{cell}] owner r{owner}; requests answered (2xx) per replica {s:?}; {} relayed to the owner",
        relayed(&s)
    );
}

fn lines(logged: &[Logged]) -> String {
    logged
        .iter()
        .map(|l| l.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks `probe` until it gives something, for state that has no event to wait on.
fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

macro_rules! cells {
    ($($name:ident: $client:ident -> $upstream:ident;)*) => {
        $(
            #[test]
            fn $name() {
                run_cell(ClientSw::$client, Transport::$upstream);
            }
        )*
    };
}

/// Test names start with `interop_replicas::`, like the interop cells, so they can be left out
/// with the other peer-needing tests.
mod interop_replicas {
    use super::{run_cell, ClientSw, Transport};

    cells! {
        legacy_py1_to_streamable_everything: Py1Sse -> Streamable;
        legacy_ts_to_streamable_everything: TsSse -> Streamable;
        legacy_py1_to_legacy_everything: Py1Sse -> Sse;
        legacy_ts_to_legacy_everything: TsSse -> Sse;
        streamable_py1_to_streamable_everything: Py1Streamable -> Streamable;
        streamable_ts_to_streamable_everything: TsStreamable -> Streamable;
        streamable_py1_to_legacy_everything: Py1Streamable -> Sse;
        streamable_ts_to_legacy_everything: TsStreamable -> Sse;
    }
}
