//! Interop baseline for the 2026-07-28 era (issues 14 and 15): real modern SDK peers talking
//! DIRECTLY to each other, no bridge yet.
//!
//! The modern peers are the TypeScript SDK v2 (`@modelcontextprotocol/server`/`client` 2.x,
//! installed pinned into `.interop/node2`) and the Python `mcp` 2.x SDK (`.interop/py2`):
//!
//! - `tests/interop/servers/ts2_server.cjs`: the SDK's `createMcpHandler`, modern-only
//!   (`legacy: 'reject'`) unless told `--legacy stateless` (the SDK's dual-era default);
//! - `tests/interop/servers/py2_server.py`: `MCPServer` over Streamable HTTP (serves both eras);
//! - `tests/interop/clients/ts2_client.cjs` (pinned to 2026-07-28) and
//!   `tests/interop/clients/py2_client.py` (`mcp.Client(..., mode="2026-07-28")`), both running
//!   `tests/interop/clients/scenario2026.json` and printing one JSON summary.
//!
//! Each modern cell asserts what a user of the scenario would check: discover, the tool list and
//! its `x-mcp-header` declaration, results, the log and progress notifications in order, each MRTR
//! round trip (an `input_required` answer, then a retry on a new request id carrying
//! `inputResponses` and the echoed `requestState`, then `complete`), the mirrored `Mcp-Param-*`
//! header, a resource, a prompt, and the change notifications of a `subscriptions/listen` stream.
//!
//! The `*_fails` cells document the problem the bridge will solve: a legacy-only client (the
//! TypeScript SDK 1.x and Python `mcp` 1.x, legacy SSE and Streamable) against the modern-only
//! server simply fails — quickly, at its handshake, with the error a modern server gives. The
//! bridge cells of issue 14 will turn those green. One more cell records what the same server
//! code gives a 2025 client in the SDK's own dual-era mode (the comparison issue 14 names).
//!
//! Peers: `make interop-deps` (`tests/interop/install.sh`); `INTEROP_DIR` overrides the folder.
//! Missing peers FAIL every cell with a message saying so. `INTEROP_VERBOSE=1` prints summaries.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use mcp_testkit::proc::{Proc, ProcOptions};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Locations and peer check
// ---------------------------------------------------------------------------------------------

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

/// Fails (never skips) when a peer this file uses is missing or was installed from other pins.
fn require_peers() {
    let dir = interop_dir();
    let src = interop_src();
    let mut problems = Vec::new();
    for p in [
        "node2/.stamp",
        "node2/node_modules/@modelcontextprotocol/server/package.json",
        "node2/node_modules/@modelcontextprotocol/client/package.json",
        "node2/node_modules/@modelcontextprotocol/node/package.json",
        "node/.stamp",
        "node/node_modules/@modelcontextprotocol/sdk/package.json",
        "py1/bin/python",
        "py2/bin/python",
    ] {
        if !dir.join(p).exists() {
            problems.push(format!("missing {}", dir.join(p).display()));
        }
    }
    let same = |a: PathBuf, b: PathBuf| std::fs::read(a).ok() == std::fs::read(b).ok();
    for (installed, pin) in [
        ("node2/package-lock.json", "node2/package-lock.json"),
        ("node/package-lock.json", "package-lock.json"),
        ("py1/requirements.txt", "requirements-py1.txt"),
        ("py2/requirements.txt", "requirements-py2.txt"),
    ] {
        if problems.is_empty() && !same(dir.join(installed), src.join(pin)) {
            problems.push(format!(
                "{installed} was installed from other pins than {pin}"
            ));
        }
    }
    if !problems.is_empty() {
        panic!(
            "interop peers are not installed (or stale) in {}:\n  - {}\n=> run `make interop-deps` \
             (tests/interop/install.sh)",
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

fn spawn(name: &str, cmd: Command) -> Proc {
    Proc::spawn(name, cmd, ProcOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn verbose() -> bool {
    std::env::var_os("INTEROP_VERBOSE").is_some_and(|v| v != "0")
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModernServer {
    /// TS SDK v2, `legacy: 'reject'`: 2026-07-28 only.
    Ts2ModernOnly,
    /// TS SDK v2, `legacy: 'stateless'`: the SDK's dual-era default.
    Ts2DualEra,
    /// Python `mcp` 2.x `MCPServer` (serves both eras on /mcp).
    Py2,
}

impl ModernServer {
    fn name(self) -> &'static str {
        match self {
            ModernServer::Ts2ModernOnly | ModernServer::Ts2DualEra => "interop-ts2",
            ModernServer::Py2 => "interop-py2",
        }
    }
}

struct Server {
    proc: Proc,
    url: String,
}

const SERVER_START_DEADLINE: Duration = Duration::from_secs(15);

fn start_server(sw: ModernServer) -> Server {
    let dir = interop_dir();
    let servers = interop_src().join("servers");
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let (mut cmd, ready) = match sw {
            ModernServer::Ts2ModernOnly | ModernServer::Ts2DualEra => {
                let mut c = Command::new("node");
                c.arg(servers.join("ts2_server.cjs"))
                    .args(["--port", &port.to_string(), "--legacy"])
                    .arg(if sw == ModernServer::Ts2DualEra {
                        "stateless"
                    } else {
                        "reject"
                    });
                (c, format!("listening on 127.0.0.1:{port}"))
            }
            ModernServer::Py2 => {
                let mut c = Command::new(dir.join("py2/bin/python"));
                c.arg(servers.join("py2_server.py"))
                    .args(["--port", &port.to_string()]);
                (c, format!("Uvicorn running on http://127.0.0.1:{port}"))
            }
        };
        cmd.env("INTEROP_DIR", &dir)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let name = format!("{sw:?} :{port}");
        let mut proc = spawn(&name, cmd);
        // Ready: OUR process announced the port (a bare connect could reach another test's
        // server that took the same free port) and the port answers.
        if proc.wait_output(&ready, SERVER_START_DEADLINE).is_ok() {
            let deadline = Instant::now() + SERVER_START_DEADLINE;
            while !can_connect(port) && proc.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(25));
            }
            if can_connect(port) {
                return Server {
                    proc,
                    url: format!("http://127.0.0.1:{port}/mcp"),
                };
            }
        }
        match proc.wait_exit(Duration::from_secs(2)) {
            // e.g. the port was taken between free_port() and the bind: try another one
            Some(st) => last_err = format!("{name} exited with {st}\n{}", proc.report(40)),
            None => panic!(
                "{name} did not listen within {SERVER_START_DEADLINE:?}\n{}",
                proc.report(40)
            ),
        }
    }
    panic!("could not start {sw:?}: {last_err}");
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientSw {
    /// `ts2_client.cjs`, pinned to 2026-07-28.
    Ts2Modern,
    /// `py2_client.py`, `mcp.Client(..., mode="2026-07-28")`.
    Py2Modern,
    /// TS SDK 1.x `SSEClientTransport` (`ts_client.cjs --transport sse`).
    Ts1Sse,
    /// TS SDK 1.x `StreamableHTTPClientTransport`.
    Ts1Streamable,
    /// Python `mcp` 1.x `sse_client`.
    Py1Sse,
    /// Python `mcp` 1.x `streamablehttp_client`.
    Py1Streamable,
}

fn client_timeout() -> u64 {
    std::env::var("INTEROP_CLIENT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

impl ClientSw {
    fn command(self, url: &str) -> Command {
        let dir = interop_dir();
        let clients = interop_src().join("clients");
        let timeout = client_timeout().to_string();
        let mut c = match self {
            ClientSw::Ts2Modern => {
                let mut c = Command::new("node");
                c.arg(clients.join("ts2_client.cjs"))
                    .args(["--mode", "modern"]);
                c
            }
            ClientSw::Py2Modern => {
                let mut c = Command::new(dir.join("py2/bin/python"));
                c.arg(clients.join("py2_client.py"))
                    .args(["--mode", "2026-07-28"]);
                c
            }
            ClientSw::Ts1Sse | ClientSw::Ts1Streamable => {
                let mut c = Command::new("node");
                c.arg(clients.join("ts_client.cjs")).args([
                    "--transport",
                    if self == ClientSw::Ts1Sse {
                        "sse"
                    } else {
                        "streamable"
                    },
                ]);
                c
            }
            ClientSw::Py1Sse | ClientSw::Py1Streamable => {
                let mut c = Command::new(dir.join("py1/bin/python"));
                c.arg(clients.join("py_client.py")).args([
                    "--transport",
                    if self == ClientSw::Py1Sse {
                        "sse"
                    } else {
                        "streamable"
                    },
                ]);
                c
            }
        };
        c.args(["--url", url, "--timeout", &timeout])
            .env("INTEROP_DIR", &dir)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        c
    }
}

struct ClientRun {
    label: String,
    status: Option<ExitStatus>,
    summary: Value,
    output: String,
    elapsed: Duration,
}

impl ClientRun {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.summary["ok"] == json!(true)
    }
    fn report(&self) -> String {
        format!(
            "{} (exit {:?}, {:.1}s): stage {} error {}\n----- client output -----\n{}\n----- end -----",
            self.label,
            self.status,
            self.elapsed.as_secs_f64(),
            self.summary["stage"],
            self.summary["error"],
            self.output
        )
    }
}

fn run_client(client: ClientSw, server: &Server) -> ClientRun {
    run_client_args(client, server, &[])
}

fn run_client_args(client: ClientSw, server: &Server, extra: &[&str]) -> ClientRun {
    let label = format!("{client:?} -> {}", server.url);
    let started = Instant::now();
    let mut cmd = client.command(&server.url);
    cmd.args(extra);
    let mut proc = spawn(&label, cmd);
    // The client has its own overall timeout; this is the backstop.
    let status = proc.wait_exit(Duration::from_secs(client_timeout() + 5));
    let elapsed = started.elapsed();
    let stdout = proc.stop();
    let summary = stdout
        .iter()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(
            || json!({"ok": false, "stage": "?", "error": "no JSON summary on stdout"}),
        );
    ClientRun {
        label,
        status,
        summary,
        output: proc.output(),
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------------
// What the modern scenario must show
// ---------------------------------------------------------------------------------------------

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

/// The scenario's outcome as a user checks it, identical for every modern client/server pair.
/// (`rounds` are compared separately: the TS client sees the answers of each round too.)
fn expected_summary(server: ModernServer) -> Value {
    let mut events = Vec::new();
    for i in 1..=5 {
        events.push(json!({"kind": "log", "level": "info", "logger": null,
                           "data": format!("progress step {i}/5")}));
        events.push(json!({"kind": "progress", "progress": i, "total": 5,
                           "message": format!("step {i} of 5")}));
    }
    json!({
        "ok": true,
        "era": "modern",
        "serverName": server.name(),
        "protocolVersion": "2026-07-28",
        "tools": ["echo", "elicit", "progress", "region_echo", "roots", "sample", "touch"],
        "headerParams": {"region_echo.region": "Region"},
        "echo": text_result("echo: hello through the bridge"),
        "progress": {"events": events, "result": text_result("progress done after 5 steps")},
        "elicit": {
            "handled": [{"message": "Favourite colour?", "requestedSchema": {
                "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}],
            // the server saw its own requestState again (Python seals it on the wire)
            "result": text_result("elicited[accept/elicit-round-1]: blue"),
        },
        "sampling": {
            "handled": [{"maxTokens": 50, "messages": [
                {"role": "user", "content": {"type": "text", "text": "interop prompt"}}]}],
            "result": text_result("sampled[interop-model/assistant]: interop sampled text"),
        },
        "roots": {
            "handled": 1,
            "result": text_result(r#"[{"name":"interop-root","uri":"file:///tmp/mcp-bridge-interop"}]"#),
        },
        "header": {
            "sent": {"mcp-param-region": "eu-west-1"},
            "result": text_result("region eu-west-1 (header eu-west-1): routed"),
        },
        "resource": [{"uri": "interop://greeting", "mimeType": "text/plain",
                      "text": "hello from the interop server"}],
        "prompt": [{"role": "user", "content": {"type": "text", "text": "Please greet Ada."}}],
        "listen": {
            "honored": {"toolsListChanged": true, "resourceSubscriptions": ["interop://greeting"]},
            "touched": text_result("touched interop://greeting"),
            "notifications": [
                {"kind": "resources/updated", "uri": "interop://greeting", "subscriptionId": true},
                {"kind": "tools/list_changed", "subscriptionId": true},
            ],
            "closed": "local",
        },
    })
}

/// Checks one MRTR step's rounds: two requests with distinct ids; the first carries no
/// responses, the retry carries exactly `key` (and the requestState iff the server minted one);
/// where the client recorded the answers: `input_required` naming `method`, then `complete`,
/// with the requestState echoed verbatim.
fn check_rounds(step: &str, rounds: &Value, key: &str, method: &str, state: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(r) = rounds.as_array() else {
        return vec![format!("{step}.rounds missing")];
    };
    if r.len() != 2 {
        return vec![format!(
            "{step}: expected 2 rounds, got {}: {rounds}",
            r.len()
        )];
    }
    let want_sent = [
        json!({"inputResponses": [], "requestState": false}),
        json!({"inputResponses": [key], "requestState": state}),
    ];
    for (i, want) in want_sent.iter().enumerate() {
        if &r[i]["sent"] != want {
            bad.push(format!(
                "{step}.rounds[{i}].sent = {} (want {want})",
                r[i]["sent"]
            ));
        }
        if r[i]["newId"] != json!(true) {
            bad.push(format!("{step}.rounds[{i}] reused the request id"));
        }
    }
    if r[0].get("got").is_some() {
        let want_got = [
            json!({"resultType": "input_required", "inputRequests": {key: method}, "requestState": state}),
            json!({"resultType": "complete", "inputRequests": {}, "requestState": false}),
        ];
        for (i, want) in want_got.iter().enumerate() {
            if &r[i]["got"] != want {
                bad.push(format!(
                    "{step}.rounds[{i}].got = {} (want {want})",
                    r[i]["got"]
                ));
            }
        }
        if r[1]["echoedState"] != json!(true) {
            bad.push(format!(
                "{step}: the retry did not echo the requestState verbatim"
            ));
        }
    }
    bad
}

fn diff(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(&format!("{path}.{k}"), gv, wv, out),
                    None => out.push(format!("{path}.{k} missing (want {wv})")),
                }
            }
        }
        _ if got != want => out.push(format!("{path} = {got} (want {want})")),
        _ => {}
    }
}

fn run_modern_cell(client: ClientSw, server_sw: ModernServer) {
    require_peers();
    let mut server = start_server(server_sw);
    let run = run_client(client, &server);
    let server_log = server.proc.report(40);
    server.proc.stop();
    if verbose() {
        eprintln!("{}: {}", run.label, run.summary);
    }
    assert!(
        run.ok(),
        "{}\n----- server -----\n{server_log}",
        run.report()
    );

    let s = &run.summary;
    let mut bad = Vec::new();
    diff("", s, &expected_summary(server_sw), &mut bad);
    let d = &s["discover"];
    if d["supportedVersions"] != json!(["2026-07-28"]) {
        bad.push(format!(
            "discover.supportedVersions = {}",
            d["supportedVersions"]
        ));
    }
    for cap in ["prompts", "resources", "tools"] {
        if !d["capabilities"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(cap)))
        {
            bad.push(format!(
                "discover.capabilities {} lacks {cap}",
                d["capabilities"]
            ));
        }
    }
    bad.extend(check_rounds(
        "elicit",
        &s["elicit"]["rounds"],
        "answer",
        "elicitation/create",
        true,
    ));
    bad.extend(check_rounds(
        "sampling",
        &s["sampling"]["rounds"],
        "sample",
        "sampling/createMessage",
        false,
    ));
    bad.extend(check_rounds(
        "roots",
        &s["roots"]["rounds"],
        "roots",
        "roots/list",
        false,
    ));
    assert!(
        bad.is_empty(),
        "{}: the modern scenario differs:\n  - {}\n{}",
        run.label,
        bad.join("\n  - "),
        run.report()
    );
}

/// The cells, in a module named like the file so that `make unit` (`--skip interop`) skips them.
mod interop_era {
    use super::*;

    // ---------------------------------------------------------------------------------------------
    // Modern ↔ modern, direct
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn modern_ts2_client_to_modern_only_ts2_server() {
        run_modern_cell(ClientSw::Ts2Modern, ModernServer::Ts2ModernOnly);
    }

    #[test]
    fn modern_py2_client_to_modern_only_ts2_server() {
        run_modern_cell(ClientSw::Py2Modern, ModernServer::Ts2ModernOnly);
    }

    #[test]
    fn modern_ts2_client_to_py2_server() {
        run_modern_cell(ClientSw::Ts2Modern, ModernServer::Py2);
    }

    #[test]
    fn modern_py2_client_to_py2_server() {
        run_modern_cell(ClientSw::Py2Modern, ModernServer::Py2);
    }

    // ---------------------------------------------------------------------------------------------
    // Legacy-only clients against the modern-only server: they fail (what the bridge will fix)
    // ---------------------------------------------------------------------------------------------

    /// The client must fail cleanly at its handshake — on its own, well before its timeout — and
    /// its error must show the modern server's answer (`evidence`).
    fn run_fails_cell(client: ClientSw, evidence: &str) {
        require_peers();
        let mut server = start_server(ModernServer::Ts2ModernOnly);
        let run = run_client(client, &server);
        let server_log = server.proc.report(20);
        server.proc.stop();
        if verbose() {
            eprintln!("{}: {}", run.label, run.summary);
        }
        let status = run
            .status
            .unwrap_or_else(|| panic!("{} hung instead of failing\n{}", run.label, run.report()));
        assert!(
        !status.success() && run.summary["ok"] == json!(false),
        "{} SUCCEEDED against a modern-only server: the spec says a legacy-only client fails\n{}",
        run.label,
        run.report()
    );
        let stage = run.summary["stage"].as_str().unwrap_or("");
        assert!(
            stage == "initialize" || stage == "connect",
            "{} failed at stage {stage:?}, not at its handshake\n{}",
            run.label,
            run.report()
        );
        let error = run.summary["error"].as_str().unwrap_or("");
        assert!(
        error.contains(evidence),
        "{} failed, but its error {error:?} does not show {evidence:?}\n{}\n----- server -----\n{server_log}",
        run.label,
        run.report()
    );
        assert!(
            status.code() != Some(3),
            "{} ran into its own timeout instead of failing at once\n{}",
            run.label,
            run.report()
        );
    }

    #[test]
    fn streamable_ts1_client_to_modern_only_ts2_server_fails() {
        // initialize → 400 {"code":-32022,"data":{"supported":["2026-07-28"],...}}
        run_fails_cell(ClientSw::Ts1Streamable, "-32022");
    }

    #[test]
    fn sse_ts1_client_to_modern_only_ts2_server_fails() {
        // GET (the legacy event stream) → 405
        run_fails_cell(ClientSw::Ts1Sse, "405");
    }

    #[test]
    fn streamable_py1_client_to_modern_only_ts2_server_fails() {
        run_fails_cell(ClientSw::Py1Streamable, "400 Bad Request");
    }

    #[test]
    fn sse_py1_client_to_modern_only_ts2_server_fails() {
        run_fails_cell(ClientSw::Py1Sse, "405 Method Not Allowed");
    }

    // ---------------------------------------------------------------------------------------------
    // The same server code in the SDK's dual-era mode, for a 2025 client
    // ---------------------------------------------------------------------------------------------

    /// What issue 14 compares the bridge with: the TS SDK 1.x Streamable client against the same
    /// server code with `legacy: 'stateless'`. Echo and progress (with its log messages) work; the
    /// MRTR tools cannot reach a 2025 client through per-request stateless serving and return the
    /// SDK's error as a tool error. (Legacy SSE has no serving at all: GET → 405.)
    #[test]
    fn streamable_ts1_client_to_dual_era_ts2_server_direct() {
        require_peers();
        let mut server = start_server(ModernServer::Ts2DualEra);
        let run = run_client(ClientSw::Ts1Streamable, &server);
        let server_log = server.proc.report(40);
        server.proc.stop();
        if verbose() {
            eprintln!("{}: {}", run.label, run.summary);
        }
        assert!(
            run.ok(),
            "{}\n----- server -----\n{server_log}",
            run.report()
        );
        let s = &run.summary;
        assert_eq!(s["serverName"], json!("interop-ts2"), "{}", run.report());
        assert_eq!(
            s["protocolVersion"],
            json!("2025-11-25"),
            "{}",
            run.report()
        );
        assert_eq!(
            s["echo"]["result"],
            text_result("echo: hello through the bridge"),
            "{}",
            run.report()
        );
        let events = s["progress"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            ["log", "progress"].repeat(5),
            "progress events out of order: {}",
            s["progress"]
        );
        for step in ["sampling", "roots"] {
            let r = &s[step]["result"];
            let text = r["content"][0]["text"].as_str().unwrap_or("");
            assert!(
                r["isError"] == json!(true)
                    && text.contains(
                        "per-request legacy serving cannot receive server-to-client requests"
                    ),
                "{step}: expected the SDK's stateless-legacy refusal, got {r}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Through the bridge: every old client reaches the 2026-07-28 servers (issue 14)
// ---------------------------------------------------------------------------------------------

mod through_the_bridge {
    use super::*;

    /// The bridge binary in front of `upstream`, with `args`; ready when it accepts.
    fn start_bridge(upstream: &Server, args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        cmd.args([
            "--upstream",
            &upstream.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args);
        let mut proc = spawn(&format!("bridge :{port}"), cmd);
        let deadline = Instant::now() + SERVER_START_DEADLINE;
        while !can_connect(port) && Instant::now() < deadline {
            assert!(
                proc.exited().is_none(),
                "bridge exited\n{}",
                proc.report(40)
            );
            thread::sleep(Duration::from_millis(25));
        }
        Server {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An old client's scenario through the bridge: the results the modern clients get from
    /// the same server (echo, progress with its log messages in order, sampling, roots and
    /// elicitation as server-to-client requests that the bridge carries over MRTR, and the
    /// change notifications of a `subscriptions/listen` stream on the client's own stream).
    fn run_bridge_cell(client: ClientSw, server_sw: ModernServer, bridge_args: &[&str]) {
        require_peers();
        let mut server = start_server(server_sw);
        let mut bridge = start_bridge(&server, bridge_args);
        let path = match client {
            ClientSw::Ts1Sse | ClientSw::Py1Sse => "/sse",
            _ => "/mcp",
        };
        let at = Server {
            proc: spawn("no-op", Command::new("true")),
            url: format!("{}{path}", bridge.url),
        };
        // scenario-era.json: scenario.json plus elicitation and change notifications.
        let run = run_client_args(client, &at, &["--scenario", "scenario-era.json"]);
        let logs = format!(
            "----- bridge -----\n{}\n----- server -----\n{}",
            bridge.proc.report(60),
            server.proc.report(20)
        );
        bridge.proc.stop();
        server.proc.stop();
        if verbose() {
            eprintln!("{}: {}", run.label, run.summary);
        }
        assert!(run.ok(), "{}\n{logs}", run.report());
        let want = expected_summary(server_sw);
        let s = &run.summary;
        let mut bad = Vec::new();
        diff(
            "serverName",
            &s["serverName"],
            &want["serverName"],
            &mut bad,
        );
        diff("tools", &s["tools"], &want["tools"], &mut bad);
        diff("echo", &s["echo"]["result"], &want["echo"], &mut bad);
        diff(
            "progress.result",
            &s["progress"]["result"],
            &want["progress"]["result"],
            &mut bad,
        );
        // The old clients record progress and log events as they arrived, in their own shape.
        let kinds: Vec<&str> = s["progress"]["events"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["kind"].as_str()).collect())
            .unwrap_or_default();
        if kinds != ["log", "progress"].repeat(5) {
            bad.push(format!("progress events: {}", s["progress"]["events"]));
        }
        diff(
            "sampling.result",
            &s["sampling"]["result"],
            &want["sampling"]["result"],
            &mut bad,
        );
        diff(
            "sampling.requests",
            &json!(s["sampling"]["requests"].as_array().map(Vec::len)),
            &json!(1),
            &mut bad,
        );
        diff(
            "roots.result",
            &s["roots"]["result"],
            &want["roots"]["result"],
            &mut bad,
        );
        diff("elicit", &s["elicit"], &want["elicit"], &mut bad);
        diff(
            "listen.touched",
            &s["listen"]["touched"],
            &want["listen"]["touched"],
            &mut bad,
        );
        diff(
            "listen.notifications",
            &s["listen"]["notifications"],
            &json!([
                {"kind": "resources/updated", "uri": "interop://greeting"},
                {"kind": "tools/list_changed"},
            ]),
            &mut bad,
        );
        assert!(
            bad.is_empty(),
            "{}\n{}\n{logs}",
            bad.join("\n"),
            run.report()
        );
    }

    #[test]
    fn streamable_ts1_client_to_modern_only_ts2_server() {
        run_bridge_cell(ClientSw::Ts1Streamable, ModernServer::Ts2ModernOnly, &[]);
    }

    #[test]
    fn sse_ts1_client_to_modern_only_ts2_server() {
        run_bridge_cell(ClientSw::Ts1Sse, ModernServer::Ts2ModernOnly, &[]);
    }

    #[test]
    fn streamable_py1_client_to_modern_only_ts2_server() {
        run_bridge_cell(ClientSw::Py1Streamable, ModernServer::Ts2ModernOnly, &[]);
    }

    #[test]
    fn sse_py1_client_to_modern_only_ts2_server() {
        run_bridge_cell(ClientSw::Py1Sse, ModernServer::Ts2ModernOnly, &[]);
    }

    /// The Python server serves both eras: forced to its 2026-07-28 side.
    #[test]
    fn streamable_ts1_client_to_py2_server_in_its_2026_era() {
        run_bridge_cell(
            ClientSw::Ts1Streamable,
            ModernServer::Py2,
            &["--upstream-transport", "streamable-2026"],
        );
    }
}
