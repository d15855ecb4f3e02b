//! Interop with real SDK peers over stdio (issue 13): the bridge BINARY started with
//! `--upstream-command` in front of a real stdio MCP server (`server-everything stdio`, or the
//! FastMCP server of tests/interop/servers with `--transport stdio`), and a real SDK client of
//! either HTTP generation (TypeScript SDK 1.x legacy SSE and Streamable, Python `mcp` 1.x legacy
//! SSE and Streamable, Python `mcp` 2.x `Client(url)`) against the bridge.
//!
//! The reference of each cell is what the same SDK gets DIRECTLY from the same server over
//! stdio: the client script's `--transport stdio` runs the SDK's own stdio client. Both runs
//! execute tests/interop/clients/scenario.json; the cell passes when their summaries are equal
//! (the same tools and results, the same progress and log notifications in the same order, the
//! same sampling and roots exchanges) but for the client's transport name and how it closed,
//! and the bridged client closed as its own transport does.
//!
//! Peers: `make interop-deps` into `.interop/` or `$INTEROP_DIR`; without them every cell FAILS.
//! Knobs: `INTEROP_CLIENT_TIMEOUT` (seconds, default 12), `INTEROP_VERBOSE=1`, `RUST_LOG`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use mcp_testkit::proc::{Proc, ProcOptions};
use serde_json::Value;

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
    let missing: Vec<String> = [
        "node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        "node/node_modules/@modelcontextprotocol/sdk/package.json",
        "py1/bin/python",
        "py2/bin/python",
    ]
    .iter()
    .map(|p| dir.join(p))
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "interop peers are not installed in {} (missing {missing:?}) => run `make interop-deps` or set INTEROP_DIR",
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------------
// The stdio servers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum ServerSw {
    /// `@modelcontextprotocol/server-everything stdio` (TypeScript SDK)
    Everything,
    /// `tests/interop/servers/fastmcp_server.py --transport stdio` (Python `mcp` 1.x)
    FastMcp,
}

impl ServerSw {
    /// The command line, as `--upstream-command` and the clients' `--command` take it (no
    /// quoting needed: the paths have no blanks).
    fn command(self) -> String {
        let dir = interop_dir();
        let cmd = match self {
            ServerSw::Everything => format!(
                "node {} stdio",
                dir.join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
                    .display()
            ),
            ServerSw::FastMcp => format!(
                "{} {} --transport stdio",
                dir.join("py1/bin/python").display(),
                interop_src().join("servers/fastmcp_server.py").display()
            ),
        };
        assert!(
            !cmd.contains(['\'', '"', '\\']),
            "a path needs quoting: {cmd}"
        );
        cmd
    }
}

// ---------------------------------------------------------------------------------------------
// The bridge binary
// ---------------------------------------------------------------------------------------------

fn spawn(name: &str, cmd: Command) -> Proc {
    Proc::spawn(name, cmd, ProcOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

struct Bridge {
    proc: Proc,
    base: String,
}

fn start_bridge(server: ServerSw) -> Bridge {
    const LISTENING: &str = "mcp-bridge listening on ";
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        cmd.args(["--upstream-command", &server.command(), "--listen", &listen])
            .env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,mcp_bridge=debug");
        }
        let mut proc = spawn(&format!("mcp-bridge {listen} -> {server:?} stdio"), cmd);
        if let Ok(line) = proc.wait_line(LISTENING, Duration::from_secs(10)) {
            let base = line[LISTENING.len()..].trim().trim_end_matches('/');
            assert_eq!(base, format!("http://{listen}"), "{}", proc.report(60));
            return Bridge {
                base: base.to_owned(),
                proc,
            };
        }
        let Some(st) = proc.exited() else {
            panic!("bridge did not announce {listen}\n{}", proc.report(60));
        };
        last_err = format!("bridge exited with {st}\n{}", proc.report(60));
        if !proc.output().contains("in use") {
            break;
        }
    }
    panic!("could not start the bridge: {last_err}");
}

// ---------------------------------------------------------------------------------------------
// The SDK clients
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum ClientSw {
    /// TypeScript SDK 1.x `SSEClientTransport`
    TsSse,
    /// TypeScript SDK 1.x `StreamableHTTPClientTransport`
    TsStreamable,
    /// Python `mcp` 1.x `sse_client`
    Py1Sse,
    /// Python `mcp` 1.x `streamablehttp_client`
    Py1Streamable,
    /// Python `mcp` 2.x `mcp.Client(url)`
    Py2Client,
}

/// Where a client run goes: the bridge's URL, or the stdio server itself.
enum Target<'a> {
    Url(&'a str),
    Stdio(ServerSw),
}

impl ClientSw {
    /// The bridge path this client starts from.
    fn path(self) -> &'static str {
        match self {
            ClientSw::TsSse | ClientSw::Py1Sse => "/sse",
            _ => "/mcp",
        }
    }

    /// How the bridged client's summary says it closed.
    fn close(self) -> &'static str {
        match self {
            ClientSw::TsSse | ClientSw::Py1Sse => "closed",
            _ => "terminated",
        }
    }

    fn command(self, target: &Target, timeout_s: u64) -> Command {
        let dir = interop_dir();
        let clients = interop_src().join("clients");
        let (program, script, mode) = match self {
            ClientSw::TsSse => ("node".into(), "ts_client.cjs", "sse"),
            ClientSw::TsStreamable => ("node".into(), "ts_client.cjs", "streamable"),
            ClientSw::Py1Sse => (dir.join("py1/bin/python"), "py_client.py", "sse"),
            ClientSw::Py1Streamable => (dir.join("py1/bin/python"), "py_client.py", "streamable"),
            ClientSw::Py2Client => (dir.join("py2/bin/python"), "py_client.py", "client"),
        };
        let mut c = Command::new::<PathBuf>(program);
        c.arg(clients.join(script));
        match target {
            Target::Url(url) => c.args(["--transport", mode, "--url", url]),
            Target::Stdio(sw) => c.args(["--transport", "stdio", "--command", &sw.command()]),
        };
        c.args(["--timeout", &timeout_s.to_string()])
            .env("INTEROP_DIR", &dir)
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
            && self.summary.as_ref().and_then(|v| v["ok"].as_bool()) == Some(true)
    }

    fn failure(&self) -> String {
        let why = match (&self.status, &self.summary) {
            (None, _) => "killed after its deadline".to_owned(),
            (Some(st), Some(v)) => format!("exit {st}; stage {}: {}", v["stage"], v["error"]),
            (Some(st), None) => format!("exit {st}; no JSON summary"),
        };
        format!(
            "{} FAILED after {:.1}s: {why}\n----- client output -----\n{}\n-----",
            self.label,
            self.elapsed.as_secs_f64(),
            self.output
        )
    }
}

fn run_client(client: ClientSw, target: &Target, label: String) -> ClientRun {
    let timeout = std::env::var("INTEROP_CLIENT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let started = Instant::now();
    let mut proc = spawn(&label, client.command(target, timeout));
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
        label,
        status,
        summary,
        output: proc.output(),
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------------
// A cell
// ---------------------------------------------------------------------------------------------

/// What must be equal through the bridge and directly over stdio: all but `meta` (timings,
/// URL, warnings), the client's transport name and how it closed (checked on its own).
fn comparable(summary: &Value) -> Value {
    let mut v = summary.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["meta", "client", "close"] {
            o.remove(k);
        }
    }
    v
}

/// JSON paths where `a` and `b` differ (at most 20).
fn diffs(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    if out.len() >= 20 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diffs(p, q, format!("{path}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diffs(p, q, format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: bridged={a} stdio={b}")),
        _ => {}
    }
}

fn cell(client: ClientSw, server: ServerSw) {
    require_peers();
    let name = format!("{client:?} -> bridge -> {server:?} stdio");
    let t0 = Instant::now();
    // The reference runs concurrently: the same SDK straight to the same server over stdio.
    let direct = thread::spawn(move || {
        run_client(
            client,
            &Target::Stdio(server),
            format!("{client:?} -> {server:?} stdio (direct)"),
        )
    });
    let bridge = start_bridge(server);
    let url = format!("{}{}", bridge.base, client.path());
    let bridged = run_client(client, &Target::Url(&url), format!("{name} (bridged)"));
    let direct = direct.join().expect("the direct run's thread");
    assert!(
        direct.ok(),
        "[{name}] the DIRECT stdio run failed: a peer or harness problem, not the bridge\n{}",
        direct.failure()
    );
    assert!(
        bridged.ok(),
        "[{name}] the bridged run failed\n{}\n{}",
        bridged.failure(),
        bridge.proc.report(120)
    );
    let (mut a, mut b) = (bridged.summary.unwrap(), direct.summary.unwrap());
    if let Err(e) = mcp_testkit::summary::set_aside_era_differences(&mut a, &mut b) {
        panic!("[{name}] {e}");
    }
    assert_eq!(
        a["close"],
        client.close(),
        "[{name}] the bridged client closed as its transport does"
    );
    let (a, b) = (comparable(&a), comparable(&b));
    let mut found = Vec::new();
    diffs(&a, &b, "$".into(), &mut found);
    assert!(
        found.is_empty(),
        "[{name}] bridged and direct stdio summaries differ:\n  {}\n\nbridged:\n{}\n\nstdio:\n{}\n{}",
        found.join("\n  "),
        serde_json::to_string_pretty(&a).unwrap(),
        serde_json::to_string_pretty(&b).unwrap(),
        bridge.proc.report(120)
    );
    // What a cell must have exercised, so that equal summaries are not equally empty.
    assert!(a["echo"]["result"].is_object(), "[{name}] echo ran");
    assert!(
        a["progress"]["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "[{name}] progress notifications arrived"
    );
    assert!(
        a["sampling"]["requests"]
            .as_array()
            .is_some_and(|r| r.len() == 1),
        "[{name}] one sampling request reached the client"
    );
    if std::env::var_os("INTEROP_VERBOSE").is_some() {
        eprintln!(
            "[{name}] summary:\n{}",
            serde_json::to_string_pretty(&a).unwrap()
        );
    }
    eprintln!(
        "[{name}] OK in {:.1}s (bridged client {:.1}s, direct {:.1}s)",
        t0.elapsed().as_secs_f64(),
        bridged.elapsed.as_secs_f64(),
        direct.elapsed.as_secs_f64()
    );
}

// Names carry `interop` so that `make unit` (`--skip interop`) leaves them out.

#[test]
fn interop_stdio_everything_ts_sse() {
    cell(ClientSw::TsSse, ServerSw::Everything);
}

#[test]
fn interop_stdio_everything_ts_streamable() {
    cell(ClientSw::TsStreamable, ServerSw::Everything);
}

#[test]
fn interop_stdio_everything_py1_sse() {
    cell(ClientSw::Py1Sse, ServerSw::Everything);
}

#[test]
fn interop_stdio_everything_py1_streamable() {
    cell(ClientSw::Py1Streamable, ServerSw::Everything);
}

#[test]
fn interop_stdio_everything_py2_client() {
    cell(ClientSw::Py2Client, ServerSw::Everything);
}

#[test]
fn interop_stdio_fastmcp_ts_sse() {
    cell(ClientSw::TsSse, ServerSw::FastMcp);
}

#[test]
fn interop_stdio_fastmcp_ts_streamable() {
    cell(ClientSw::TsStreamable, ServerSw::FastMcp);
}

#[test]
fn interop_stdio_fastmcp_py1_sse() {
    cell(ClientSw::Py1Sse, ServerSw::FastMcp);
}

#[test]
fn interop_stdio_fastmcp_py1_streamable() {
    cell(ClientSw::Py1Streamable, ServerSw::FastMcp);
}

#[test]
fn interop_stdio_fastmcp_py2_client() {
    cell(ClientSw::Py2Client, ServerSw::FastMcp);
}
