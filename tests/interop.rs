//! Interop tests: real MCP SDK clients and servers, through `mcp-bridge` and directly.
//!
//! Every cell starts a real server (the TypeScript `server-everything` or a Python FastMCP
//! server), starts the bridge in front of it, and runs a real SDK client (Python `mcp` 1.x/2.x,
//! TypeScript `@modelcontextprotocol/sdk`) against the bridge. In parallel it runs the same
//! client directly against the same server software started in the client's own transport. Both
//! runs execute the scenario of `tests/interop/clients/scenario.json` and print a normalised
//! JSON summary; the cell passes when the two summaries are equal (same tools, same results, the
//! same progress and log notifications in the same order, the same sampling and roots exchange,
//! the same session close).
//!
//! One deploy cell (`run_deploy_cell`) does the same through a bridge serving HTTPS (certificate
//! made at test time) and requiring a bearer token, which the Python client sends through its
//! `headers=`; the same client without the header must be refused (401) cleanly.
//!
//! The peers are installed by `make interop-deps` (`tests/interop/install.sh`) into the
//! git-ignored `.interop/` (or `$INTEROP_DIR`). Without them every cell FAILS with a message
//! saying so: these tests never pass silently.
//!
//! Known client quirk, handled in `tests/interop/clients/ts_client.cjs`: the TS SDK 1.x drops
//! the callback for a progress notification that arrives in the same chunk as the response. The
//! TS client records notifications from a tap on its transport (what arrived on the wire) and
//! tolerates exactly that one callback loss (reported under `meta.quirks`, printed here); any
//! other difference between callbacks and wire fails the client.
//!
//! Environment knobs: `INTEROP_DIR` (peer folder), `INTEROP_CLIENT_TIMEOUT` (seconds, default
//! 12), `INTEROP_VERBOSE=1` (print the summary of passing cells), `RUST_LOG` (bridge log
//! filter, default `info,mcp_bridge=debug`), `INTEROP_DIRECT_ONLY=1` (developer switch: run only
//! the direct baselines, to check peers and harness without the bridge; says so loudly).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use mcp_testkit::pki::{self, TestPki};
use mcp_testkit::proc::{strip_ansi, Proc, ProcOptions};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Locations and peer check
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

/// Fails (never skips) when the pinned peers are missing or older than the pins.
fn require_peers() {
    let dir = interop_dir();
    let src = interop_src();
    let hint = "run `make interop-deps` (tests/interop/install.sh) to install the pinned MCP peers";
    let mut problems = Vec::new();
    let must_exist = [
        dir.join("node/.stamp"),
        dir.join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        dir.join("node/node_modules/@modelcontextprotocol/sdk/package.json"),
        dir.join("py1/.stamp"),
        dir.join("py1/bin/python"),
        dir.join("py2/.stamp"),
        dir.join("py2/bin/python"),
    ];
    for p in &must_exist {
        if !p.exists() {
            problems.push(format!("missing {}", p.display()));
        }
    }
    let same = |a: PathBuf, b: PathBuf| std::fs::read(&a).ok() == std::fs::read(&b).ok();
    if problems.is_empty() {
        if !same(
            src.join("package-lock.json"),
            dir.join("node/package-lock.json"),
        ) {
            problems.push("node peers were installed from another package-lock.json".into());
        }
        for (venv, req) in [
            ("py1", "requirements-py1.txt"),
            ("py2", "requirements-py2.txt"),
        ] {
            if !same(src.join(req), dir.join(venv).join("requirements.txt")) {
                problems.push(format!("{venv} venv was installed from another {req}"));
            }
        }
    }
    if !problems.is_empty() {
        panic!(
            "interop peers are not installed (or stale) in {}:\n  - {}\n=> {hint}",
            dir.display(),
            problems.join("\n  - ")
        );
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn can_connect(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// legacy HTTP+SSE (2024-11-05)
    Sse,
    /// Streamable HTTP (2025-03-26+)
    Streamable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerSw {
    /// `@modelcontextprotocol/server-everything` (TypeScript SDK)
    Everything,
    /// `tests/interop/servers/fastmcp_server.py` (Python `mcp` 1.x FastMCP)
    FastMcp,
}

struct Server {
    proc: Proc,
    url: String,
}

const SERVER_START_DEADLINE: Duration = Duration::from_secs(10);

fn start_server(sw: ServerSw, transport: Transport) -> Server {
    start_server_at(sw, transport, None)
}

/// `fixed`: this port and endpoint path (FastMCP only: it serves either transport on one URL,
/// as a server upgraded in place does) instead of a free port and the transport's own path.
fn start_server_at(sw: ServerSw, transport: Transport, fixed: Option<(u16, &str)>) -> Server {
    let dir = interop_dir();
    let mut last_err = String::new();
    let attempts = if fixed.is_some() { 1 } else { 3 };
    for _attempt in 0..attempts {
        let port = fixed.map_or_else(free_port, |(p, _)| p);
        let (name, cmd) = match sw {
            ServerSw::Everything => {
                let mut c = Command::new("node");
                c.arg("--require")
                    .arg(interop_src().join("servers/loopback.cjs"))
                    .arg(dir.join(
                        "node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
                    ))
                    .arg(match transport {
                        Transport::Sse => "sse",
                        Transport::Streamable => "streamableHttp",
                    })
                    .env("PORT", port.to_string());
                (format!("server-everything {transport:?} :{port}"), c)
            }
            ServerSw::FastMcp => {
                let mut c = Command::new(dir.join("py1/bin/python"));
                c.arg(interop_src().join("servers/fastmcp_server.py"))
                    .arg("--transport")
                    .arg(match transport {
                        Transport::Sse => "sse",
                        Transport::Streamable => "streamable-http",
                    })
                    .arg("--port")
                    .arg(port.to_string());
                if let Some((_, path)) = fixed {
                    c.arg("--path").arg(path);
                }
                (format!("fastmcp {transport:?} :{port}"), c)
            }
        };
        // Ready means: OUR process announced the bind (its own log line naming the port) and
        // the port answers. A bare connect is not enough: with tests in parallel, another
        // test's server may have grabbed the same free port, and we would talk to it.
        let ready_line = match sw {
            ServerSw::Everything => format!("on port {port}"),
            ServerSw::FastMcp => format!("Uvicorn running on http://127.0.0.1:{port}"),
        };
        let mut proc = spawn(&name, cmd);
        match wait_listening(&mut proc, &ready_line, port) {
            Ok(()) => {
                let path = match (fixed, transport) {
                    (Some((_, path)), _) => path,
                    (None, Transport::Sse) => "/sse",
                    (None, Transport::Streamable) => "/mcp",
                };
                return Server {
                    url: format!("http://127.0.0.1:{port}{path}"),
                    proc,
                };
            }
            // e.g. the port was taken between free_port() and the bind: try another one
            Err(Exited(st)) => {
                last_err = format!(
                    "{name} exited with {st} before listening\n{}",
                    proc.report(40)
                )
            }
            Err(TimedOut) => panic!(
                "{name} did not listen within {SERVER_START_DEADLINE:?}\n{}",
                proc.report(40)
            ),
        }
    }
    panic!("could not start {sw:?} {transport:?}: {last_err}");
}

/// Starts a peer with its output collected (killed on drop).
fn spawn(name: &str, cmd: Command) -> Proc {
    Proc::spawn(name, cmd, ProcOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

enum NotListening {
    Exited(ExitStatus),
    TimedOut,
}
use NotListening::{Exited, TimedOut};

/// Ready means: OUR process printed `ready_line` and the port answers, within
/// `SERVER_START_DEADLINE`.
fn wait_listening(proc: &mut Proc, ready_line: &str, port: u16) -> Result<(), NotListening> {
    let deadline = Instant::now() + SERVER_START_DEADLINE;
    if proc.wait_output(ready_line, SERVER_START_DEADLINE).is_err() {
        // Its output ended (it is exiting: reap it) or the deadline passed.
        return Err(proc
            .wait_exit(Duration::from_secs(2))
            .map_or(TimedOut, Exited));
    }
    loop {
        if let Some(st) = proc.exited() {
            return Err(Exited(st));
        }
        if Instant::now() > deadline {
            return Err(TimedOut);
        }
        // The log line may come a moment before the socket accepts.
        if can_connect(port) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------------------------
// The bridge
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Upstream {
    Streamable,
    Sse,
    Auto,
    /// No `--upstream-transport` flag at all, as a new user starts it.
    Default,
}

impl Upstream {
    fn flag(self) -> &'static str {
        match self {
            Upstream::Streamable => "streamable",
            Upstream::Sse => "sse",
            Upstream::Auto => "auto",
            Upstream::Default => "default",
        }
    }
}

struct Bridge {
    proc: Proc,
    base: String,
}

const BRIDGE_START_DEADLINE: Duration = Duration::from_secs(10);

/// `extra`: further bridge flags (the deploy cell's TLS and token); with `--tls-cert` the bridge
/// must announce `https://`.
fn start_bridge(upstream_url: &str, mode: Upstream, extra: &[&str]) -> Bridge {
    let scheme = if extra.contains(&"--tls-cert") {
        "https"
    } else {
        "http"
    };
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        cmd.args(["--upstream", upstream_url, "--listen", &listen])
            .args(extra);
        if !matches!(mode, Upstream::Default) {
            cmd.args(["--upstream-transport", mode.flag()]);
        }
        cmd.env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,mcp_bridge=debug");
        }
        let name = format!("mcp-bridge {listen} -> {upstream_url} ({})", mode.flag());
        let mut proc = spawn(&name, cmd);
        // Only the bridge's own line counts: a bare connect could reach another test's
        // process that grabbed the same free port.
        const LISTENING: &str = "mcp-bridge listening on ";
        let announced = proc.wait_line(LISTENING, BRIDGE_START_DEADLINE);
        if let Ok(line) = announced {
            let base = line[LISTENING.len()..].trim().trim_end_matches('/');
            if base != format!("{scheme}://{listen}") {
                panic!(
                    "bridge asked to listen on {listen} announced {base}\n{}",
                    proc.report(60)
                );
            }
            return Bridge {
                base: base.to_string(),
                proc,
            };
        }
        let Some(st) = proc.exited() else {
            panic!(
                "bridge did not print `mcp-bridge listening on {scheme}://{listen}` within {BRIDGE_START_DEADLINE:?}\n{}",
                proc.report(60)
            );
        };
        last_err = format!(
            "bridge exited with {st} before listening\n{}",
            proc.report(60)
        );
        if !proc.output().contains("in use") {
            panic!("{last_err}");
        }
        // port race: retry on another port
    }
    panic!("could not start the bridge: {last_err}");
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientSw {
    /// Python mcp 1.x `sse_client` (legacy)
    Py1Sse,
    /// TypeScript `SSEClientTransport` (legacy)
    TsSse,
    /// Python mcp 1.x `streamablehttp_client`
    Py1Streamable,
    /// Python mcp 2.x high-level `mcp.Client(url)` (probes `server/discover` first)
    Py2Client,
    /// Python mcp 2.x `streamable_http_client` + `ClientSession.initialize()`
    Py2Session,
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
    /// `extra`: further client options (py_client.py's `--header`, `--ca-file`).
    fn command(self, url: &str, timeout_s: u64, extra: &[String]) -> Command {
        let dir = interop_dir();
        let clients = interop_src().join("clients");
        let (program, mode): (PathBuf, &str) = match self {
            ClientSw::Py1Sse => (dir.join("py1/bin/python"), "sse"),
            ClientSw::Py1Streamable => (dir.join("py1/bin/python"), "streamable"),
            ClientSw::Py2Client => (dir.join("py2/bin/python"), "client"),
            ClientSw::Py2Session => (dir.join("py2/bin/python"), "streamable"),
            ClientSw::TsSse => (PathBuf::from("node"), "sse"),
            ClientSw::TsStreamable => (PathBuf::from("node"), "streamable"),
        };
        let script = match self {
            ClientSw::TsSse | ClientSw::TsStreamable => clients.join("ts_client.cjs"),
            _ => clients.join("py_client.py"),
        };
        let mut c = Command::new(program);
        c.arg(script)
            .args([
                "--transport",
                mode,
                "--url",
                url,
                "--timeout",
                &timeout_s.to_string(),
            ])
            .args(extra)
            .env("INTEROP_DIR", interop_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        c
    }
}

struct ClientRun {
    label: String,
    status: Option<ExitStatus>,
    summary: Option<Value>,
    stdout: String,
    output: String,
    elapsed: Duration,
}

impl ClientRun {
    fn ok(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
            && self
                .summary
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
                == Some(true)
    }
    fn describe_failure(&self) -> String {
        let why = match (&self.status, &self.summary) {
            (None, _) => {
                "killed by the runner after its deadline (the client's own timeout did not fire)"
                    .to_string()
            }
            (Some(st), Some(v)) => format!(
                "exit {st}; failed at stage {:?}: {}",
                v.get("stage").and_then(Value::as_str).unwrap_or("?"),
                v.get("error").and_then(Value::as_str).unwrap_or("?")
            ),
            (Some(st), None) => format!("exit {st}; no JSON summary on stdout: {:?}", self.stdout),
        };
        format!("{} FAILED after {:.1}s: {why}\n----- client output -----\n{}\n----- end client output -----",
            self.label, self.elapsed.as_secs_f64(), self.output)
    }
}

fn client_timeout() -> u64 {
    std::env::var("INTEROP_CLIENT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

fn run_client(client: ClientSw, url: &str, extra: &[String], label: &str) -> ClientRun {
    let timeout = client_timeout();
    let started = Instant::now();
    let mut proc = spawn(
        &format!("{label} client"),
        client.command(url, timeout, extra),
    );
    // The client has its own overall timeout; this is the backstop.
    let status = proc.wait_exit(Duration::from_secs(timeout + 5));
    let elapsed = started.elapsed();
    let stdout_lines = proc.stop();
    let summary = stdout_lines.iter().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(Value::is_object)
    });
    ClientRun {
        label: label.to_string(),
        status,
        summary,
        stdout: stdout_lines.join("\n"),
        output: proc.output(),
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// The part of a summary that must be identical through the bridge and directly: everything
/// but `meta` (timings, SDK warnings, quirk reports, the URL).
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
                    (p, q) => out.push(format!(
                        "{path}.{k}: bridged={} direct={}",
                        short(p),
                        short(q)
                    )),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => diff_paths(p, q, format!("{path}[{i}]"), out),
                    (p, q) => out.push(format!(
                        "{path}[{i}]: bridged={} direct={}",
                        short(p),
                        short(q)
                    )),
                }
            }
        }
        _ if a != b => out.push(format!(
            "{path}: bridged={} direct={}",
            short(Some(a)),
            short(Some(b))
        )),
        _ => {}
    }
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 300 {
                format!(
                    "{}...",
                    &s[..s.char_indices().nth(300).map(|(i, _)| i).unwrap_or(s.len())]
                )
            } else {
                s
            }
        }
    }
}

fn quirks(run: &ClientRun) -> Vec<String> {
    run.summary
        .as_ref()
        .and_then(|v| v.pointer("/meta/quirks"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|q| {
                    q.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A cell
// ---------------------------------------------------------------------------------------------

struct JoinOnDrop<T>(Option<thread::JoinHandle<T>>);

impl<T> JoinOnDrop<T> {
    fn join(&mut self) -> T {
        match self.0.take().expect("joined twice").join() {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

impl<T> Drop for JoinOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// The direct baseline: the client straight to the server software started in the client's own
/// transport, in a thread concurrent with the bridged run. The guard joins it even when the
/// calling thread panics, so its server and client are always reaped.
fn spawn_direct(client: ClientSw, server: ServerSw) -> JoinOnDrop<(ClientRun, String)> {
    let direct_transport = client.transport();
    JoinOnDrop(Some(thread::spawn(move || {
        let srv = start_server(server, direct_transport);
        let run = run_client(
            client,
            &srv.url,
            &[],
            &format!("direct {client:?} -> {server:?} {direct_transport:?}"),
        );
        let report = srv.proc.report(30);
        (run, report)
    })))
}

/// `INTEROP_DIRECT_ONLY`: checks the direct baseline alone and returns true (the cell is done).
fn direct_only(cell: &str, direct: &mut JoinOnDrop<(ClientRun, String)>) -> bool {
    if std::env::var_os("INTEROP_DIRECT_ONLY").is_none() {
        return false;
    }
    // Developer switch for checking the peers and the harness without the bridge.
    let (direct, report) = direct.join();
    if !direct.ok() {
        panic!(
            "[{cell}] the DIRECT baseline failed\n{}\n{report}",
            direct.describe_failure()
        );
    }
    if std::env::var_os("INTEROP_VERBOSE").is_some() {
        eprintln!(
            "[{cell}] direct summary:\n{}",
            serde_json::to_string_pretty(direct.summary.as_ref().unwrap()).unwrap()
        );
    }
    eprintln!(
        "[{cell}] INTEROP_DIRECT_ONLY: direct baseline OK in {:.1}s (quirks {:?}); the bridge was NOT tested",
        direct.elapsed.as_secs_f64(),
        quirks(&direct)
    );
    true
}

/// Tails of the bridge's and the upstream server's output, for failure messages.
fn context(bridge: &Bridge, upstream: &Server) -> String {
    format!(
        "{}\n{}\n",
        bridge.proc.report(120),
        upstream.proc.report(40)
    )
}

/// The verdict of a cell: both runs succeeded and their summaries (but `meta`) are equal.
fn judge(
    cell: &str,
    t0: Instant,
    bridged: &ClientRun,
    direct: &ClientRun,
    direct_server_report: &str,
    context: &dyn Fn() -> String,
) {
    if !direct.ok() {
        panic!(
            "[{cell}] the DIRECT baseline failed: this is a peer or harness problem, not the bridge\n{}\n{direct_server_report}",
            direct.describe_failure()
        );
    }
    if !bridged.ok() {
        panic!(
            "[{cell}] the bridged run failed\n{}\n{}",
            bridged.describe_failure(),
            context()
        );
    }
    let (mut a, mut b) = (
        bridged.summary.clone().unwrap(),
        direct.summary.clone().unwrap(),
    );
    if let Err(e) = mcp_testkit::summary::set_aside_era_differences(&mut a, &mut b) {
        panic!("[{cell}] {e}");
    }
    let (a, b) = (comparable(&a), comparable(&b));
    if a != b {
        let mut diffs = Vec::new();
        diff_paths(&a, &b, "$".into(), &mut diffs);
        panic!(
            "[{cell}] bridged and direct summaries differ:\n  {}\n\nbridged summary:\n{}\n\ndirect summary:\n{}\n\n----- bridged client output -----\n{}\n{}",
            diffs.join("\n  "),
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap(),
            bridged.output,
            context()
        );
    }
    for (run, q) in [(bridged, quirks(bridged)), (direct, quirks(direct))] {
        if !q.is_empty() {
            eprintln!(
                "[{cell}] note: {} hit known client quirk(s) {q:?} (tolerated, see ts_client.cjs)",
                run.label
            );
        }
    }
    if std::env::var_os("INTEROP_VERBOSE").is_some() {
        eprintln!(
            "[{cell}] summary:\n{}",
            serde_json::to_string_pretty(&a).unwrap()
        );
    }
    eprintln!(
        "[{cell}] OK in {:.1}s (bridged client {:.1}s, direct client {:.1}s)",
        t0.elapsed().as_secs_f64(),
        bridged.elapsed.as_secs_f64(),
        direct.elapsed.as_secs_f64()
    );
}

fn run_cell(client: ClientSw, server: ServerSw, upstream_transport: Transport, mode: Upstream) {
    require_peers();
    let t0 = Instant::now();
    let cell = format!(
        "{client:?} client -> bridge (--upstream-transport {}) -> {server:?} {upstream_transport:?}",
        mode.flag()
    );
    let mut direct = spawn_direct(client, server);
    if direct_only(&cell, &mut direct) {
        return;
    }

    let upstream = start_server(server, upstream_transport);
    let bridge = start_bridge(&upstream.url, mode, &[]);
    let path = match client.transport() {
        Transport::Sse => "/sse",
        Transport::Streamable => "/mcp",
    };
    let bridged = run_client(
        client,
        &format!("{}{path}", bridge.base),
        &[],
        &format!("bridged {cell}"),
    );
    let (direct, direct_server_report) = direct.join();
    judge(&cell, t0, &bridged, &direct, &direct_server_report, &|| {
        context(&bridge, &upstream)
    });
}

/// A client run through `bridge` on its own thread.
fn spawn_bridged(client: ClientSw, bridge: &Bridge, label: String) -> JoinOnDrop<ClientRun> {
    let path = match client.transport() {
        Transport::Sse => "/sse",
        Transport::Streamable => "/mcp",
    };
    let url = format!("{}{path}", bridge.base);
    JoinOnDrop(Some(thread::spawn(move || {
        run_client(client, &url, &[], &label)
    })))
}

/// Both client generations at once through ONE bridge started without a transport flag, in
/// front of one real server; each client's run compared with its own direct run.
fn run_side_by_side(clients: [ClientSw; 2], server: ServerSw, upstream_transport: Transport) {
    require_peers();
    let t0 = Instant::now();
    let mut directs = clients.map(|c| spawn_direct(c, server));
    let upstream = start_server(server, upstream_transport);
    let bridge = start_bridge(&upstream.url, Upstream::Default, &[]);
    let cell = |c: ClientSw| {
        format!(
            "{clients:?} side by side -> bridge (no transport flag) -> {server:?} {upstream_transport:?}: {c:?}"
        )
    };
    let mut runs = clients.map(|c| spawn_bridged(c, &bridge, format!("bridged {}", cell(c))));
    for i in 0..2 {
        let bridged = runs[i].join();
        let (direct, report) = directs[i].join();
        judge(&cell(clients[i]), t0, &bridged, &direct, &report, &|| {
            context(&bridge, &upstream)
        });
    }
}

/// A legacy FastMCP server upgraded in place to Streamable HTTP (same port, same URL) under a
/// running bridge started without a transport flag: clients of both generations work before
/// and after, each compared with its own direct run, and the bridge never restarts.
fn run_upgrade_cell() {
    require_peers();
    let t0 = Instant::now();
    let clients = [ClientSw::Py1Sse, ClientSw::TsStreamable];
    let mut directs = clients.map(|c| spawn_direct(c, ServerSw::FastMcp));
    let directs: Vec<(ClientRun, String)> = directs.iter_mut().map(JoinOnDrop::join).collect();
    let port = free_port();
    let mut bridge = None;
    for transport in [Transport::Sse, Transport::Streamable] {
        let upstream = start_server_at(ServerSw::FastMcp, transport, Some((port, "/mcp")));
        let bridge: &Bridge =
            bridge.get_or_insert_with(|| start_bridge(&upstream.url, Upstream::Default, &[]));
        for (c, (direct, report)) in clients.iter().zip(&directs) {
            let cell = format!("{c:?} client -> bridge (no transport flag) -> FastMcp upgraded in place, now {transport:?}");
            let bridged = spawn_bridged(*c, bridge, format!("bridged {cell}")).join();
            judge(&cell, t0, &bridged, direct, report, &|| {
                context(bridge, &upstream)
            });
        }
        drop(upstream); // the server goes down; the next one takes its port
    }
    let log = bridge.expect("started").proc.output();
    let detected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kind=\"transport_detected\""))
        .collect();
    assert!(
        detected.len() >= 2 && detected.last().unwrap().contains("speaks streamable"),
        "the bridge should log detecting sse, then streamable:\n{}",
        detected.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The deploy cell: HTTPS and a bearer token in front of a real server
// ---------------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("OS random numbers");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The Python `mcp` 1.x Streamable client with `headers={"Authorization": "Bearer <token>"}`
/// and a trust anchor for the test CA, through a bridge serving HTTPS with a certificate made
/// now and requiring that (random) token, to a real FastMCP server; compared with the same
/// client straight to FastMCP as every cell is. First the same client WITHOUT the header must
/// be refused by the bridge: 401, a clean non-zero exit within its timeout.
fn run_deploy_cell() {
    require_peers();
    let t0 = Instant::now();
    let (client, server) = (ClientSw::Py1Streamable, ServerSw::FastMcp);
    let cell = format!(
        "{client:?} client + bearer token -> HTTPS bridge with --auth-token (--upstream-transport streamable) -> {server:?} Streamable"
    );
    let mut direct = spawn_direct(client, server);
    if direct_only(&cell, &mut direct) {
        return;
    }

    let pki = TestPki::new("interop");
    let token = random_hex(32);
    let upstream = start_server(server, Transport::Streamable);
    let bridge = start_bridge(
        &upstream.url,
        Upstream::Streamable,
        &[
            "--tls-cert",
            pki::arg(&pki.cert),
            "--tls-key",
            pki::arg(&pki.key),
            "--auth-token",
            &token,
        ],
    );
    assert!(
        bridge.base.starts_with("https://127.0.0.1:"),
        "{}",
        bridge.base
    );
    let url = format!("{}/mcp", bridge.base);
    let trust = ["--ca-file".to_string(), pki::arg(&pki.ca).to_string()];
    let with_token = [
        &trust[..],
        &[
            "--header".to_string(),
            format!("Authorization: Bearer {token}"),
        ],
    ]
    .concat();

    // The negative first: no Authorization header.
    let refused = run_client(client, &url, &trust, &format!("bridged, no token: {cell}"));
    let error = refused
        .summary
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let clean_refusal = matches!(refused.status, Some(st) if st.code() == Some(1))
        && !refused.ok()
        && error.contains("401")
        && refused.elapsed < Duration::from_secs(client_timeout());
    if !clean_refusal {
        panic!(
            "[{cell}] without the Authorization header the client must fail cleanly (exit 1, a 401 in its \
             error, within {}s); got status {:?} after {:.1}s, error {error:?}\n----- client output -----\n{}\n{}",
            client_timeout(),
            refused.status,
            refused.elapsed.as_secs_f64(),
            refused.output,
            context(&bridge, &upstream)
        );
    }
    let bridge_log = strip_ansi(&bridge.proc.output());
    assert!(
        bridge_log.contains("missing_token"),
        "[{cell}] the bridge did not log the refusal (reason missing_token)\n{}",
        context(&bridge, &upstream)
    );

    let bridged = run_client(client, &url, &with_token, &format!("bridged {cell}"));
    let (direct, direct_server_report) = direct.join();
    judge(&cell, t0, &bridged, &direct, &direct_server_report, &|| {
        context(&bridge, &upstream)
    });
}

macro_rules! cells {
    ($($name:ident: $client:ident -> $server:ident $transport:ident via $mode:ident;)*) => {
        $(
            #[test]
            fn $name() {
                run_cell(ClientSw::$client, ServerSw::$server, Transport::$transport, Upstream::$mode);
            }
        )*
    };
}

/// The cells. Their test names all start with `interop::`, so `cargo test -- --skip interop`
/// (or nextest's `-E 'not test(/^interop::/)'`) runs everything else without the peers.
mod interop {
    use super::{run_cell, run_deploy_cell, ClientSw, ServerSw, Transport, Upstream};

    // Legacy clients -> Streamable servers (the bridge translates legacy SSE <-> Streamable HTTP).
    cells! {
        legacy_py1_to_streamable_everything: Py1Sse -> Everything Streamable via Streamable;
        legacy_py1_to_streamable_fastmcp: Py1Sse -> FastMcp Streamable via Streamable;
        legacy_ts_to_streamable_everything: TsSse -> Everything Streamable via Streamable;
        legacy_ts_to_streamable_fastmcp: TsSse -> FastMcp Streamable via Streamable;
        legacy_py1_to_streamable_everything_auto: Py1Sse -> Everything Streamable via Auto;
        legacy_py1_to_streamable_fastmcp_auto: Py1Sse -> FastMcp Streamable via Auto;
        legacy_ts_to_streamable_everything_auto: TsSse -> Everything Streamable via Auto;
        legacy_ts_to_streamable_fastmcp_auto: TsSse -> FastMcp Streamable via Auto;
    }

    // Streamable clients -> legacy servers.
    cells! {
        streamable_ts_to_legacy_everything: TsStreamable -> Everything Sse via Sse;
        streamable_ts_to_legacy_fastmcp: TsStreamable -> FastMcp Sse via Sse;
        streamable_py1_to_legacy_everything: Py1Streamable -> Everything Sse via Sse;
        streamable_py1_to_legacy_fastmcp: Py1Streamable -> FastMcp Sse via Sse;
        streamable_py2_to_legacy_everything: Py2Client -> Everything Sse via Sse;
        streamable_py2_to_legacy_fastmcp: Py2Client -> FastMcp Sse via Sse;
        streamable_py2session_to_legacy_everything: Py2Session -> Everything Sse via Sse;
        streamable_py2session_to_legacy_fastmcp: Py2Session -> FastMcp Sse via Sse;
        streamable_ts_to_legacy_everything_auto: TsStreamable -> Everything Sse via Auto;
        streamable_ts_to_legacy_fastmcp_auto: TsStreamable -> FastMcp Sse via Auto;
        streamable_py1_to_legacy_everything_auto: Py1Streamable -> Everything Sse via Auto;
        streamable_py1_to_legacy_fastmcp_auto: Py1Streamable -> FastMcp Sse via Auto;
        streamable_py2_to_legacy_everything_auto: Py2Client -> Everything Sse via Auto;
        streamable_py2_to_legacy_fastmcp_auto: Py2Client -> FastMcp Sse via Auto;
    }

    // Same transport on both sides, upstream detected automatically.
    cells! {
        legacy_py1_to_legacy_everything_auto: Py1Sse -> Everything Sse via Auto;
        legacy_py1_to_legacy_fastmcp_auto: Py1Sse -> FastMcp Sse via Auto;
        legacy_ts_to_legacy_everything_auto: TsSse -> Everything Sse via Auto;
        legacy_ts_to_legacy_fastmcp_auto: TsSse -> FastMcp Sse via Auto;
        streamable_ts_to_streamable_everything_auto: TsStreamable -> Everything Streamable via Auto;
        streamable_ts_to_streamable_fastmcp_auto: TsStreamable -> FastMcp Streamable via Auto;
        streamable_py1_to_streamable_everything_auto: Py1Streamable -> Everything Streamable via Auto;
        streamable_py1_to_streamable_fastmcp_auto: Py1Streamable -> FastMcp Streamable via Auto;
        streamable_py2_to_streamable_everything_auto: Py2Client -> Everything Streamable via Auto;
        streamable_py2_to_streamable_fastmcp_auto: Py2Client -> FastMcp Streamable via Auto;
    }

    // Side by side: a legacy and a Streamable client at the same time through one bridge
    // started with no transport flag, in front of a real server of either generation.
    #[test]
    fn side_by_side_legacy_ts_and_streamable_py2_to_streamable_everything() {
        super::run_side_by_side(
            [ClientSw::TsSse, ClientSw::Py2Client],
            ServerSw::Everything,
            Transport::Streamable,
        );
    }

    #[test]
    fn side_by_side_legacy_py1_and_streamable_ts_to_legacy_fastmcp() {
        super::run_side_by_side(
            [ClientSw::Py1Sse, ClientSw::TsStreamable],
            ServerSw::FastMcp,
            Transport::Sse,
        );
    }

    // The server is upgraded from legacy to Streamable under a running bridge.
    #[test]
    fn both_generations_follow_fastmcp_upgraded_in_place() {
        super::run_upgrade_cell();
    }

    // Deploying: Python mcp 1.x with `headers=` (bearer token) over HTTPS (certificate made at
    // test time) through `--tls-cert/--tls-key --auth-token`; and refused (401) without the header.
    #[test]
    fn streamable_py1_to_streamable_fastmcp_tls_token() {
        run_deploy_cell();
    }
}

#[test]
fn ansi_colour_codes_are_stripped_from_reports() {
    assert_eq!(
        strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
        "time  INFO x"
    );
}

/// The comparison itself (no peers needed): a lost notification must be named precisely.
#[test]
fn summary_diff_names_the_differing_paths() {
    let direct = serde_json::json!({
        "ok": true, "tools": ["a", "b"],
        "progress": {"events": [{"kind": "progress", "progress": 1}, {"kind": "progress", "progress": 2}]},
        "meta": {"timingsMs": {"total": 10}}
    });
    let bridged = serde_json::json!({
        "ok": true, "tools": ["a", "b"],
        "progress": {"events": [{"kind": "progress", "progress": 1}]},
        "meta": {"timingsMs": {"total": 99}}
    });
    assert_eq!(comparable(&direct), comparable(&direct.clone()));
    let mut diffs = Vec::new();
    diff_paths(
        &comparable(&bridged),
        &comparable(&direct),
        "$".into(),
        &mut diffs,
    );
    assert_eq!(
        diffs,
        vec![
            r#"$.progress.events[1]: bridged=<absent> direct={"kind":"progress","progress":2}"#
                .to_string()
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// server-everything restarted under a running bridge (self-contained: its own helpers)
// ---------------------------------------------------------------------------------------------

/// server-everything (Streamable) answers an unknown session with 400 `-32000 "Bad Request:
/// No valid session ID provided"`, not 404. Restarted under a running bridge, it no longer
/// knows the bridge's upstream session: the bridge must re-initialise it, so that a legacy
/// client's next call works.
mod interop_everything_restart {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use mcp_testkit::LegacyClient;
    use serde_json::json;

    /// A server-everything process, killed when dropped.
    struct Everything(Child);

    impl Drop for Everything {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn start_everything(port: u16) -> Everything {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("INTEROP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".interop"));
        let entry =
            dir.join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            entry.exists(),
            "{entry:?} missing: run `make interop-deps` (tests/interop/install.sh)"
        );
        let child = Command::new("node")
            .arg("--require")
            .arg(root.join("tests/interop/servers/loopback.cjs"))
            .arg(entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let server = Everything(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn echo(client: &LegacyClient, text: &str) -> serde_json::Value {
        let ex = client
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"message": text}}),
            )
            .await
            .expect("answered");
        ex.response
    }

    #[actix_rt::test]
    async fn legacy_client_keeps_working_across_a_server_everything_restart() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = start_everything(port).await;
        let upstream = format!("http://127.0.0.1:{port}/mcp");
        let cfg = mcp_bridge::Config::from_args([
            "mcp-bridge",
            "--upstream",
            &upstream,
            "--upstream-transport",
            "streamable",
            "--listen",
            "127.0.0.1:0",
            "--upstream-timeout",
            "10s",
        ])
        .expect("valid config");
        let bridge = mcp_bridge::spawn(cfg).expect("bridge starts");
        let client = LegacyClient::connect(&bridge.url("/sse"), &[])
            .await
            .expect("legacy client connects");
        client.set_timeout(Duration::from_secs(20));
        client.initialize("2025-06-18").await.expect("initialized");
        let before = echo(&client, "before").await;
        assert!(before.to_string().contains("before"), "{before}");

        drop(server);
        let _server = start_everything(port).await;
        let after = echo(&client, "after the restart").await;
        assert!(
            after["result"].to_string().contains("after the restart"),
            "the call after the restart failed: {after}"
        );
    }
}
