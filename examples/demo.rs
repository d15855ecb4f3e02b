//! The one-command demo (`make run`): a small MCP server of one transport, mcp-bridge in
//! front of it, and a client of the other transport that prints every notification the
//! moment it crosses the bridge.
//!
//! - default: Streamable HTTP client → bridge → legacy HTTP+SSE server
//! - `--reverse`: legacy HTTP+SSE client → bridge → Streamable HTTP server
//!
//! The servers are the test kit's fake MCP servers (`mcp-testkit`), which speak each
//! transport the way the official SDKs do; their `process_items` tool sends one log message
//! and one progress notification per item. After the demo the bridge keeps serving on
//! `--listen` (default 127.0.0.1:8080) until Ctrl-C, so you can point your own clients at it;
//! `--once` exits instead.

use std::io::Write;
use std::time::{Duration, Instant};

use mcp_testkit::{FakeServer, LegacyClient, ServerOptions, StreamableClient};
use serde_json::{json, Value};

const ITEMS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

pub struct Args {
    pub reverse: bool,
    pub once: bool,
    pub listen: String,
}

fn args() -> Args {
    let mut a = Args {
        reverse: false,
        once: false,
        listen: "127.0.0.1:8080".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--reverse" => a.reverse = true,
            "--once" => a.once = true,
            "--listen" => a.listen = it.next().expect("--listen ADDR"),
            other => {
                eprintln!("usage: demo [--reverse] [--once] [--listen ADDR]  (unknown {other:?})");
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let args = args();
    // The bridge's transport-difference lines and session summaries, as an operator sees them.
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| {
                "warn,mcp_bridge::difference=info,mcp_bridge::summary=info".into()
            }),
        )
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();

    let mut stdout = std::io::stdout();
    let (bridge, server) = match run_demo(&args, &mut stdout) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    };
    if !args.once {
        println!(
            "\nThe bridge keeps running on {} in front of {}; press Ctrl-C to stop.",
            bridge.url(""),
            server.url()
        );
        actix_rt::System::new().block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
}

/// Start the server and the bridge, run the client, and leave both running (returned).
/// Output goes to `out` (the test reads it from a buffer).
pub fn run_demo(
    args: &Args,
    out: &mut dyn Write,
) -> Result<(mcp_bridge::Bridge, FakeServer), String> {
    let server = FakeServer::start(if args.reverse {
        ServerOptions::streamable()
    } else {
        ServerOptions::legacy()
    });
    let cfg = mcp_bridge::Config::from_args([
        "mcp-bridge",
        "--upstream",
        &server.url(),
        "--listen",
        &args.listen,
    ])
    .map_err(|e| e.to_string())?;
    let bridge = mcp_bridge::spawn(cfg).map_err(|e| {
        format!(
            "cannot listen on {}: {e} (try --listen 127.0.0.1:0)",
            args.listen
        )
    })?;
    let (server_kind, client_kind) = if args.reverse {
        ("Streamable HTTP", "legacy HTTP+SSE")
    } else {
        ("legacy HTTP+SSE", "Streamable HTTP")
    };
    let _ = writeln!(out, "server  {server_kind:<16} {}", server.url());
    let _ = writeln!(
        out,
        "bridge  auto-detecting     {}  (legacy: /sse, modern: /mcp)",
        bridge.url("")
    );
    let _ = writeln!(out, "client  {client_kind:<16} → the bridge\n");
    actix_rt::System::new().block_on(async {
        if args.reverse {
            legacy_client(&bridge, out).await
        } else {
            streamable_client(&bridge, out).await
        }
    })?;
    Ok((bridge, server))
}

fn call_body(id: u64) -> String {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "process_items", "arguments": {"items": ITEMS, "delay_ms": 250},
                   "_meta": {"progressToken": "demo"}}
    })
    .to_string()
}

/// Prints one message as it arrives; true when it is the tool's result.
fn show(out: &mut dyn Write, start: Instant, raw: &str) -> bool {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let t = start.elapsed().as_secs_f32();
    match v["method"].as_str() {
        Some("notifications/progress") => writeln!(
            out,
            "  +{t:.2}s  progress  {}/{}  {}",
            v["params"]["progress"],
            v["params"]["total"],
            v["params"]["message"].as_str().unwrap_or("")
        ),
        Some("notifications/message") => writeln!(
            out,
            "  +{t:.2}s  log       {}",
            v["params"]["data"].as_str().unwrap_or("")
        ),
        Some(other) => writeln!(out, "  +{t:.2}s  {other}"),
        None => {
            let text = v.pointer("/result/content/0/text").and_then(Value::as_str);
            let _ = writeln!(out, "  +{t:.2}s  result    {}", text.unwrap_or(raw));
            return true;
        }
    }
    .ok();
    false
}

async fn streamable_client(bridge: &mcp_bridge::Bridge, out: &mut dyn Write) -> Result<(), String> {
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    let init = client
        .initialize("2025-06-18")
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "initialize → {} (protocol {}), Mcp-Session-Id {}",
        init["serverInfo"]["name"],
        init["protocolVersion"],
        client.session_id().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "tools/call process_items {ITEMS:?} — notifications print as they arrive:"
    );
    let start = Instant::now();
    let resp = client
        .post_raw(&call_body(100), &[])
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = resp
        .into_sse()
        .ok_or("the call was not answered with an SSE stream")?;
    loop {
        let ev = stream
            .next_event(Duration::from_secs(10))
            .await
            .ok_or("stream ended before the result")?;
        if show(out, start, &ev.data) {
            break;
        }
    }
    let status = client.delete().await.map_err(|e| e.to_string())?;
    let _ = writeln!(out, "DELETE session → {status}");
    Ok(())
}

async fn legacy_client(bridge: &mcp_bridge::Bridge, out: &mut dyn Write) -> Result<(), String> {
    let client = LegacyClient::connect(&bridge.url("/sse"), &[])
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(out, "endpoint event → {}", client.endpoint_url());
    let init = client
        .initialize("2024-11-05")
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "initialize → {} (protocol {})",
        init["serverInfo"]["name"], init["protocolVersion"]
    );
    let _ = writeln!(
        out,
        "tools/call process_items {ITEMS:?} — notifications print as they arrive:"
    );
    let start = Instant::now();
    let posted = client
        .post_raw(&call_body(100))
        .await
        .map_err(|e| e.to_string())?;
    if posted.status != 202 {
        return Err(format!("POST answered {}", posted.status));
    }
    loop {
        let raw = client
            .next_message(Duration::from_secs(10))
            .await
            .ok_or("stream ended before the result")?;
        if show(out, start, &raw) {
            break;
        }
    }
    client.close();
    let _ = writeln!(
        out,
        "closed the SSE stream (the bridge ends the upstream session)"
    );
    Ok(())
}
