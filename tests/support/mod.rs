//! Shared helpers for the integration tests: a bridge in-process on port 0 in front of a
//! testkit fake server.
#![allow(dead_code, unused_imports)]

use std::sync::Once;
use std::time::Duration;

pub use mcp_bridge::Bridge;
pub use mcp_testkit::{
    EndpointStyle, FakeServer, LegacyClient, ServerOptions, StreamableClient, Transport,
};
pub use serde_json::{json, Value};

/// Generous upper bound for anything a test waits for; tests synchronise on events, and
/// this only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(10);

static LOGS: Once = Once::new();

/// Bridge logs go to the test's captured output (`RUST_LOG=debug` for more).
pub fn init_logs() {
    LOGS.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A bridge on 127.0.0.1:0 in front of `upstream`, with short keep-alives so that client
/// disconnects are noticed quickly.
pub fn bridge(upstream: &str, extra: &[&str]) -> Bridge {
    init_logs();
    let mut args = vec![
        "mcp-bridge",
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--keepalive",
        "300ms",
        "--upstream-timeout",
        "5s",
        "--upstream-connect-timeout",
        "3s",
    ];
    args.extend_from_slice(extra);
    let cfg = mcp_bridge::Config::from_args(args).expect("valid test config");
    mcp_bridge::spawn(cfg).expect("bridge starts")
}

pub fn progress_call(steps: u64, token: Value) -> Value {
    json!({"name": "progress", "arguments": {"steps": steps}, "_meta": {"progressToken": token}})
}

/// The progress values and log data of an exchange, in arrival order, as one list of
/// strings such as `log:step 1`, `progress:1/3`.
pub fn notification_trace(notifications: &[Value]) -> Vec<String> {
    notifications
        .iter()
        .filter_map(|n| match n["method"].as_str()? {
            "notifications/progress" => Some(format!(
                "progress:{}/{}",
                n["params"]["progress"], n["params"]["total"]
            )),
            "notifications/message" => Some(format!(
                "log:{}",
                n["params"]["data"].as_str().unwrap_or_default()
            )),
            other => Some(other.to_owned()),
        })
        .collect()
}

/// Wait until `cond` holds (checked on an interval; only for state with no event to await).
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A plain HTTP exchange, for the statuses of malformed requests.
pub struct Raw {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Send one request and read the whole answer (not for SSE answers).
pub async fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let client = awc::Client::builder().disable_timeout().finish();
    let mut req = client.request(
        awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
        url,
    );
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = tokio::time::timeout(WAIT, req.send_body(body.to_owned()))
        .await
        .expect("answered in time")
        .expect("request sent");
    let body = resp.body().limit(16 << 20).await.expect("body");
    Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub const JSON: (&str, &str) = ("content-type", "application/json");
pub const ACCEPT_BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");
pub const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A child process killed when dropped, so a failing assertion never leaks it.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the `mcp-bridge` binary (no inherited `MCP_BRIDGE_*` variables) with `args` and
/// return it with its base URL, read from its `listening on` line.
pub fn spawn_binary(args: &[&str]) -> (ChildGuard, String) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_BRIDGE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = ChildGuard(
        cmd.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bridge binary starts"),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("mcp-bridge listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, base)
}
