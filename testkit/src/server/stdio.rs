//! The fake server's MCP behaviour over stdio: newline-delimited JSON-RPC on stdin and
//! stdout, logs on stderr — how stdio MCP servers (`npx …`, `uvx …`) talk. Run it with
//! `cargo run --example stdio_server` (mcp-bridge's tests start it as `--upstream-command`).
//!
//! Besides the tools of every fake server, a few misbehave on purpose:
//! - `crash`: writes a line to stderr and exits with status 3 mid-call;
//! - `garbage`: writes a line that is not JSON on stdout, then answers;
//! - `flood` `{"count": N, "bytes": B}`: writes N log notifications of B bytes, then answers;
//! - `getenv` `{"name": …}`: answers with that environment variable (empty when unset).

use std::io::{BufRead, Write};
use std::rc::Rc;
use std::sync::Arc;

use serde_json::json;

use super::{ServerOptions, Shared};
use crate::mcp::{self, result_response, Kind, McpState, Outlet};

/// Serve stdin/stdout until stdin ends.
pub fn serve() {
    let shared = Arc::new(Shared::new(ServerOptions::streamable()));
    let state = Arc::new(McpState::new("mcp-testkit-stdio", shared));
    eprintln!(
        "mcp-testkit stdio server ready (pid {})",
        std::process::id()
    );
    actix_rt::System::new().block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // A plain thread reads stdin: the testkit's tokio has no io features.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(body) = mcp::parse_body(line.as_bytes()) else {
                write_line(&mcp::error_response(None, -32700, "Parse error"));
                continue;
            };
            for msg in body.messages {
                match msg.kind() {
                    Kind::Request if misbehaves(&msg) => {}
                    Kind::Request => {
                        let state = state.clone();
                        actix_rt::spawn(async move {
                            if let Some(resp) = state.on_request(msg, Rc::new(Stdout)).await {
                                write_line(&resp);
                            }
                        });
                    }
                    Kind::Notification => state.on_notification(&msg),
                    Kind::Response => {
                        state.on_response(msg);
                    }
                    Kind::Invalid => {}
                }
            }
        }
    });
}

/// The test tools that misbehave; true when the request was handled here.
fn misbehaves(msg: &mcp::Message) -> bool {
    if msg.method.as_deref() != Some("tools/call") {
        return false;
    }
    let id = msg.id.as_deref().expect("a request");
    let args = &msg.params["arguments"];
    let text = |t: &str| json!({"content": [{"type": "text", "text": t}]});
    match msg.params["name"].as_str().unwrap_or_default() {
        "crash" => {
            eprintln!("mcp-testkit stdio server: crashing on purpose");
            std::process::exit(3);
        }
        "garbage" => {
            write_line("this is not JSON");
            write_line(&result_response(id, &text("after garbage")));
        }
        "flood" => {
            let count = args["count"].as_u64().unwrap_or(100);
            let data = "x".repeat(args["bytes"].as_u64().unwrap_or(1024) as usize);
            for i in 0..count {
                let p = json!({"level": "info", "data": format!("{i} {data}")});
                write_line(&mcp::notification("notifications/message", &p));
            }
            write_line(&result_response(id, &text(&format!("flooded {count}"))));
        }
        "getenv" => {
            let name = args["name"].as_str().unwrap_or_default();
            let value = std::env::var(name).unwrap_or_default();
            write_line(&result_response(id, &text(&value)));
        }
        _ => return false,
    }
    true
}

/// Every message goes to stdout: stdio has one stream, so related and unrelated are alike.
struct Stdout;

impl Outlet for Stdout {
    fn related(&self, json: String) {
        write_line(&json);
    }

    fn unrelated(&self, json: String) {
        write_line(&json);
    }
}

/// One message per line. Blocking on purpose: a client that reads slowly holds the server
/// back, as a pipe does for real stdio servers.
fn write_line(json: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(json.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0); // the bridge closed our stdout: nothing left to do
    }
}
