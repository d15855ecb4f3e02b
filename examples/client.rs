//! A small MCP client that calls `process_items` and prints each notification the moment it
//! arrives — against the bridge or any server with that tool (see the `server` example):
//!
//! ```sh
//! cargo run --example client -- http://127.0.0.1:8080/mcp   # Streamable HTTP
//! cargo run --example client -- http://127.0.0.1:8080/sse   # legacy HTTP+SSE
//! ```
//!
//! A URL whose path ends in `/sse` is spoken to as a legacy server, any other as Streamable.

#[path = "demo/watch.rs"]
mod watch;

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: client URL   (…/sse: legacy HTTP+SSE; otherwise Streamable HTTP)");
        std::process::exit(2);
    };
    let legacy = url.trim_end_matches('/').ends_with("/sse");
    let mut out = std::io::stdout();
    let done = actix_rt::System::new().block_on(async {
        if legacy {
            watch::legacy_client(&url, &mut out).await
        } else {
            watch::streamable_client(&url, &mut out).await
        }
    });
    if let Err(e) = done {
        eprintln!("client failed: {e}");
        std::process::exit(1);
    }
}
