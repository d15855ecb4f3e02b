//! The test kit's MCP server over stdio (newline-delimited JSON-RPC on stdin/stdout, logs
//! on stderr), for trying the bridge's stdio support by hand:
//!
//! ```sh
//! cargo build --example stdio_server
//! mcp-bridge --upstream-command target/debug/examples/stdio_server --listen 127.0.0.1:8080
//! ```
//!
//! mcp-bridge's tests (tests/stdio.rs) run it the same way.

fn main() {
    mcp_testkit::server::stdio::serve();
}
