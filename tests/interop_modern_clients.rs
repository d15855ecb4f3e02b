//! 2026-07-28 clients through the bridge to every kind of upstream (issue 15): the TypeScript
//! SDK v2 client pinned to the modern era (`ts2_client.cjs --mode modern`) and the Python `mcp`
//! 2.x client pinned to 2026-07-28 with no fallback (`py2_client.py --mode 2026-07-28`), in
//! front of server-everything over legacy SSE, over Streamable HTTP and over stdio
//! (`--upstream-command`), and the Python 1.x FastMCP server over legacy SSE.
//!
//! - FastMCP serves the dual-era servers' `echo`, `progress`, `elicit`, `sample` and `roots`
//!   with the same answers (but for the server's own `requestState` in the elicit answer), so
//!   its cells run `scenario2026-tools.json` and compare with the same client run DIRECTLY
//!   against the TypeScript v2 server in its dual-era mode (`--legacy stateless`): the same
//!   results, log and progress notifications in the same order, the same handler calls
//!   (elicitation, sampling and roots carried as MRTR rounds). FastMCP has no `x-mcp-header`
//!   tool, resource, prompt or listen trigger: those steps are not run there.
//! - server-everything has its own tools and answers (no dual-era server has them), so its cells
//!   run `scenario2026-everything.json` and assert its known answers: echo, a long-running
//!   operation's five progress notifications in order, sampling and roots as MRTR rounds, a
//!   static resource and a prompt. Not run there: elicitation (its tool asks for a form the
//!   scenario's answer does not fill), `x-mcp-header` (none), and listen (its resource updates
//!   are per upstream session, started by a tool, and a listen holds an upstream session of its
//!   own — see README "Sessionless clients").
//!
//! Each cell is bounded by the client's own timeout (`INTEROP_CLIENT_TIMEOUT`, 15 s) and a
//! backstop. Peers: `make interop-deps`; `INTEROP_DIR` overrides the folder; missing peers FAIL.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use mcp_testkit::proc::{Proc, ProcOptions};
use serde_json::{json, Value};

fn interop_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

fn interop_dir() -> PathBuf {
    std::env::var_os("INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".interop"))
}

fn everything_js() -> PathBuf {
    interop_dir().join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// Fails (never skips) when a peer this file uses is missing.
fn require_peers() {
    let dir = interop_dir();
    let missing: Vec<String> = [
        "node2/node_modules/@modelcontextprotocol/client/package.json",
        "node2/node_modules/@modelcontextprotocol/server/package.json",
        "node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        "py1/bin/python",
        "py2/bin/python",
    ]
    .iter()
    .filter(|p| !dir.join(p).exists())
    .map(|p| dir.join(p).display().to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "interop peers are not installed in {}: missing {missing:?}\n=> run `make interop-deps`",
        dir.display()
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn can_connect(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn spawn(name: &str, cmd: Command) -> Proc {
    Proc::spawn(name, cmd, ProcOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

const START_DEADLINE: Duration = Duration::from_secs(15);

/// A started process and the URL it serves.
struct Running {
    proc: Proc,
    url: String,
}

/// Start `make(port)`; ready once OUR process printed `ready(port)` and the port answers.
fn start(
    name: &str,
    make: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> String,
    path: &str,
) -> Running {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut proc = spawn(&format!("{name} :{port}"), make(port));
        if proc.wait_output(&ready(port), START_DEADLINE).is_ok() {
            let deadline = Instant::now() + START_DEADLINE;
            while !can_connect(port) && proc.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(25));
            }
            if can_connect(port) {
                return Running {
                    proc,
                    url: format!("http://127.0.0.1:{port}{path}"),
                };
            }
        }
        let _ = proc.wait_exit(Duration::from_secs(2));
        last = proc.report(30);
    }
    panic!("{name} did not start:\n{last}");
}

#[derive(Clone, Copy, Debug)]
enum Upstream {
    EverythingSse,
    EverythingStreamable,
    EverythingStdio,
    FastMcpSse,
}

/// The upstream server (none for stdio: the bridge starts it).
fn start_upstream(up: Upstream) -> Option<Running> {
    let loopback = interop_src().join("servers/loopback.cjs");
    let everything = |transport: &'static str, path: &'static str| {
        let loopback = loopback.clone();
        start(
            &format!("server-everything {transport}"),
            move |port| {
                let mut c = Command::new("node");
                c.arg("--require")
                    .arg(&loopback)
                    .arg(everything_js())
                    .arg(transport)
                    .env("PORT", port.to_string());
                c
            },
            |port| format!("on port {port}"),
            path,
        )
    };
    match up {
        Upstream::EverythingSse => Some(everything("sse", "/sse")),
        Upstream::EverythingStreamable => Some(everything("streamableHttp", "/mcp")),
        Upstream::EverythingStdio => None,
        Upstream::FastMcpSse => Some(start(
            "fastmcp sse",
            |port| {
                let mut c = Command::new(interop_dir().join("py1/bin/python"));
                c.arg(interop_src().join("servers/fastmcp_server.py"))
                    .args(["--transport", "sse", "--port", &port.to_string()])
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                c
            },
            |port| format!("Uvicorn running on http://127.0.0.1:{port}"),
            "/sse",
        )),
    }
}

/// The bridge binary in front of `up` (its server `server`, or a stdio command).
fn start_bridge(up: Upstream, server: Option<&Running>) -> Running {
    let upstream: Vec<String> = match (up, server) {
        (Upstream::EverythingStdio, _) => vec![
            "--upstream-command".into(),
            format!("node {} stdio", everything_js().display()),
        ],
        (_, Some(s)) => vec!["--upstream".into(), s.url.clone()],
        (_, None) => unreachable!("an HTTP upstream is started first"),
    };
    start(
        "mcp-bridge",
        |port| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
            c.args(&upstream)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("NO_COLOR", "1");
            if std::env::var_os("RUST_LOG").is_none() {
                c.env("RUST_LOG", "info,mcp_bridge=debug");
            }
            c
        },
        |port| format!("mcp-bridge listening on http://127.0.0.1:{port}"),
        "/mcp",
    )
}

/// The TypeScript v2 server in the SDK's dual-era mode: the direct baseline.
fn start_dual_era_server() -> Running {
    start(
        "ts2 dual-era",
        |port| {
            let mut c = Command::new("node");
            c.arg(interop_src().join("servers/ts2_server.cjs"))
                .args(["--port", &port.to_string(), "--legacy", "stateless"])
                .env("INTEROP_DIR", interop_dir());
            c
        },
        |port| format!("listening on 127.0.0.1:{port}"),
        "/mcp",
    )
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Ts2,
    Py2,
}

fn client_timeout() -> u64 {
    std::env::var("INTEROP_CLIENT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

struct Run {
    label: String,
    status: Option<ExitStatus>,
    summary: Value,
    output: String,
}

impl Run {
    fn report(&self) -> String {
        format!(
            "{} (exit {:?}): stage {} error {}\n----- client output -----\n{}\n----- end -----",
            self.label, self.status, self.summary["stage"], self.summary["error"], self.output
        )
    }
}

fn run_client(client: Client, url: &str, scenario: &str) -> Run {
    let clients = interop_src().join("clients");
    let mut cmd = match client {
        Client::Ts2 => {
            let mut c = Command::new("node");
            c.arg(clients.join("ts2_client.cjs"))
                .args(["--mode", "modern"]);
            c
        }
        Client::Py2 => {
            let mut c = Command::new(interop_dir().join("py2/bin/python"));
            c.arg(clients.join("py2_client.py"))
                .args(["--mode", "2026-07-28"]);
            c
        }
    };
    cmd.args(["--url", url, "--timeout", &client_timeout().to_string()])
        .args(["--scenario", scenario])
        .env("INTEROP_DIR", interop_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let label = format!("{client:?} {scenario} -> {url}");
    let mut proc = spawn(&label, cmd);
    let status = proc.wait_exit(Duration::from_secs(client_timeout() + 5));
    let stdout = proc.stop();
    let summary = stdout
        .iter()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(|| json!({"ok": false, "stage": "?", "error": "no JSON summary"}));
    Run {
        label,
        status,
        summary,
        output: proc.output(),
    }
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

/// The MRTR rounds of one step, as both clients record the sent side: a first request
/// carrying no answers, then a retry on a new id answering one input request.
fn check_rounds(step: &str, s: &Value, bad: &mut Vec<String>) {
    let rounds = s[step]["rounds"].as_array().cloned().unwrap_or_default();
    let sent: Vec<usize> = rounds
        .iter()
        .map(|r| r["sent"]["inputResponses"].as_array().map_or(0, Vec::len))
        .collect();
    if sent != [0, 1] {
        bad.push(format!("{step}: rounds {}", s[step]["rounds"]));
    }
    if rounds.iter().any(|r| r["newId"] != json!(true)) {
        bad.push(format!("{step}: a retry reused the request id"));
    }
    if rounds.len() == 2 && rounds[1]["sent"]["requestState"] != json!(true) {
        bad.push(format!(
            "{step}: the retry did not carry the bridge's requestState"
        ));
    }
}

fn check_modern(s: &Value, bad: &mut Vec<String>) {
    if s["era"] != "modern" || s["protocolVersion"] != "2026-07-28" {
        bad.push(format!(
            "era {} protocolVersion {}",
            s["era"], s["protocolVersion"]
        ));
    }
    if s["discover"]["supportedVersions"] != json!(["2026-07-28"]) {
        bad.push(format!("discover {}", s["discover"]));
    }
}

/// What server-everything answers the scenario with, through the bridge.
fn check_everything(s: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    check_modern(s, &mut bad);
    if s["serverName"] != "mcp-servers/everything" {
        bad.push(format!("serverName {}", s["serverName"]));
    }
    let tools: Vec<&str> = s["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for t in [
        "echo",
        "trigger-long-running-operation",
        "trigger-sampling-request",
        "get-roots-list",
    ] {
        if !tools.contains(&t) {
            bad.push(format!("tools/list lacks {t}: {tools:?}"));
        }
    }
    if s["echo"]
        != json!({"content": [{"type": "text", "text": "Echo: hello through the bridge"}], "isError": false})
    {
        bad.push(format!("echo {}", s["echo"]));
    }
    let progress: Vec<Value> = s["progress"]["events"]
        .as_array()
        .map(|e| {
            e.iter()
                // The server's (the TS client also reports its own MRTR rounds as progress).
                .filter(|e| e["kind"] == "progress" && e["total"] == 5)
                .map(|e| json!([e["progress"], e["total"]]))
                .collect()
        })
        .unwrap_or_default();
    let want: Vec<Value> = (1..=5).map(|i| json!([i, 5])).collect();
    if progress != want {
        bad.push(format!(
            "progress notifications, in order: {}",
            s["progress"]["events"]
        ));
    }
    if !text_of(&s["progress"]["result"]).starts_with("Long running operation completed.") {
        bad.push(format!("progress result {}", s["progress"]["result"]));
    }
    let asked = json!([{"maxTokens": 20, "messages": [{"role": "user", "content": {
        "type": "text", "text": "Resource trigger-sampling-request context: interop prompt"}}]}]);
    if s["sampling"]["handled"] != asked {
        bad.push(format!("sampling handled {}", s["sampling"]["handled"]));
    }
    if !text_of(&s["sampling"]["result"]).contains("interop sampled text") {
        bad.push(format!("sampling result {}", s["sampling"]["result"]));
    }
    check_rounds("sampling", s, &mut bad);
    // server-everything asks for the roots on its own right after `initialized`: that
    // request reaches whichever call is in flight then (as MRTR), and the tool answers from
    // what it learned. Either way the client's roots must be in the answer.
    if !text_of(&s["roots"]["result"]).contains("interop-root") {
        bad.push(format!("roots result {}", s["roots"]["result"]));
    }
    let res = &s["resource"][0];
    if res["uri"] != "demo://resource/static/document/architecture.md"
        || res["text"].as_str().is_none_or(str::is_empty)
    {
        bad.push(format!("resource {}", s["resource"]));
    }
    if s["prompt"].as_array().is_none_or(Vec::is_empty) {
        bad.push(format!("prompt {}", s["prompt"]));
    }
    bad
}

/// The FastMCP run through the bridge against the same client's direct run against the
/// dual-era server: equal where a user would look.
fn compare_with_direct(s: &Value, d: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    check_modern(s, &mut bad);
    let mut same = |what: &str, got: &Value, want: &Value| {
        if got != want {
            bad.push(format!("{what}: via bridge {got}, direct {want}"));
        }
    };
    same("echo", &s["echo"], &d["echo"]);
    same(
        "progress (notifications in order, result)",
        &s["progress"],
        &d["progress"],
    );
    same(
        "elicit handled",
        &s["elicit"]["handled"],
        &d["elicit"]["handled"],
    );
    // `elicited[<action>/<the server's own requestState>]: <answer>`: FastMCP has no state.
    let elicited = |v: &Value| {
        let text = text_of(&v["elicit"]["result"]);
        let (head, answer) = text.split_once("]: ").unwrap_or((text, ""));
        json!([head.split('/').next(), answer])
    };
    same("elicit result", &json!(elicited(s)), &json!(elicited(d)));
    same(
        "sampling handled",
        &s["sampling"]["handled"],
        &d["sampling"]["handled"],
    );
    same(
        "sampling result",
        &s["sampling"]["result"],
        &d["sampling"]["result"],
    );
    same(
        "roots handled",
        &s["roots"]["handled"],
        &d["roots"]["handled"],
    );
    // FastMCP writes the roots as JSON with blanks after separators; compare the value.
    let roots = |v: &Value| serde_json::from_str::<Value>(text_of(&v["roots"]["result"])).ok();
    same("roots result", &json!(roots(s)), &json!(roots(d)));
    // Keys and requestState are each server's own (the bridge mints both): compare the
    // rounds' shape, how many answers each carried.
    for step in ["elicit", "sampling", "roots"] {
        let sent = |v: &Value| {
            json!(v[step]["rounds"].as_array().map(|r| r
                .iter()
                .map(|r| r["sent"]["inputResponses"].as_array().map_or(0, Vec::len))
                .collect::<Vec<_>>()))
        };
        same(&format!("{step} rounds"), &sent(s), &sent(d));
    }
    bad
}

fn cell(client: Client, up: Upstream) {
    require_peers();
    let mut server = start_upstream(up);
    let mut bridge = start_bridge(up, server.as_ref());
    let scenario = match up {
        Upstream::FastMcpSse => "scenario2026-tools.json",
        _ => "scenario2026-everything.json",
    };
    let run = run_client(client, &bridge.url, scenario);
    let logs = format!(
        "----- bridge -----\n{}\n----- server -----\n{}",
        bridge.proc.report(60),
        server.as_ref().map_or(String::new(), |s| s.proc.report(20))
    );
    bridge.proc.stop();
    if let Some(s) = server.as_mut() {
        s.proc.stop();
    }
    assert!(
        run.status.is_some_and(|s| s.success()) && run.summary["ok"] == json!(true),
        "{}\n{logs}",
        run.report()
    );
    let bad = match up {
        Upstream::FastMcpSse => {
            let mut direct_server = start_dual_era_server();
            let direct = run_client(client, &direct_server.url, scenario);
            direct_server.proc.stop();
            assert!(
                direct.summary["ok"] == json!(true),
                "the direct baseline failed: {}",
                direct.report()
            );
            compare_with_direct(&run.summary, &direct.summary)
        }
        _ => check_everything(&run.summary),
    };
    assert!(
        bad.is_empty(),
        "{}:\n  - {}\n{}\n{logs}",
        run.label,
        bad.join("\n  - "),
        run.report()
    );
}

/// The cells, in a module named like the file so that `make unit` (`--skip interop`) skips them.
mod interop_modern_clients {
    use super::*;

    #[test]
    fn ts2_modern_client_to_everything_sse() {
        cell(Client::Ts2, Upstream::EverythingSse);
    }

    #[test]
    fn ts2_modern_client_to_everything_streamable() {
        cell(Client::Ts2, Upstream::EverythingStreamable);
    }

    #[test]
    fn ts2_modern_client_to_everything_stdio() {
        cell(Client::Ts2, Upstream::EverythingStdio);
    }

    #[test]
    fn ts2_modern_client_to_fastmcp_sse() {
        cell(Client::Ts2, Upstream::FastMcpSse);
    }

    #[test]
    fn py2_modern_client_to_everything_sse() {
        cell(Client::Py2, Upstream::EverythingSse);
    }

    #[test]
    fn py2_modern_client_to_everything_streamable() {
        cell(Client::Py2, Upstream::EverythingStreamable);
    }

    #[test]
    fn py2_modern_client_to_everything_stdio() {
        cell(Client::Py2, Upstream::EverythingStdio);
    }

    #[test]
    fn py2_modern_client_to_fastmcp_sse() {
        cell(Client::Py2, Upstream::FastMcpSse);
    }
}
