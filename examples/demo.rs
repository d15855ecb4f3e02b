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

#[path = "demo/watch.rs"]
mod watch;

use std::io::Write;

use mcp_testkit::{FakeServer, ServerOptions};

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
            watch::legacy_client(&bridge.url("/sse"), out).await
        } else {
            watch::streamable_client(&bridge.url("/mcp"), out).await
        }
    })?;
    Ok((bridge, server))
}
