//! A small MCP server of either transport, for trying the bridge by hand:
//!
//! ```sh
//! cargo run --example server -- legacy     127.0.0.1:3001   # GET /sse + POST /message
//! cargo run --example server -- streamable 127.0.0.1:3002   # POST/GET/DELETE /mcp
//! ```
//!
//! It is the test kit's fake server, which speaks each transport the way the official SDKs
//! do. Its `process_items` tool sends one log message and one progress notification per item
//! (`{"items": [...], "delay_ms": 250}`); `echo`, `progress`, `sample` (a sampling request to
//! the client) and `roots` are there too. Runs until Ctrl-C.

use mcp_testkit::{FakeServer, ServerOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let opts = match args.next().as_deref() {
        Some("legacy") => ServerOptions::legacy(),
        Some("streamable") => ServerOptions::streamable(),
        _ => usage(),
    };
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .unwrap_or_else(|_| usage());
    let server = FakeServer::start(opts.addr(addr));
    println!("{:?} MCP server on {}", server.transport(), server.url());
    actix_rt::System::new().block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}

fn usage() -> ! {
    eprintln!("usage: server legacy|streamable [ADDR]   (ADDR defaults to 127.0.0.1:0)");
    std::process::exit(2);
}
