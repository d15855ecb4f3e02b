//! How fast the fake server and raw clients go on their own (no bridge): the ceiling a bridge
//! benchmark built on them can measure.
//!
//! `cargo run --release -p mcp-testkit --example throughput -- [streamable|legacy] [sessions] [secs]`

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mcp_testkit::{FakeServer, LegacyClient, LegacyOptions, ServerOptions, StreamableClient};
use serde_json::json;

#[actix_rt::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let transport = args.get(1).map_or("streamable", String::as_str).to_string();
    let sessions: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let opts = match transport.as_str() {
        "legacy" => ServerOptions::legacy(),
        _ => ServerOptions::streamable(),
    }
    .record_requests(false);
    let server = FakeServer::start(opts);
    let url = server.url();
    let done = Rc::new(Cell::new(0u64));
    let until = Instant::now() + Duration::from_secs(secs);
    let params = json!({"name": "echo", "arguments": {"text": "hello"}});

    let workers = (0..sessions).map(|_| {
        let (url, done, params, transport) =
            (url.clone(), done.clone(), params.clone(), transport.clone());
        async move {
            if transport == "legacy" {
                let opts = LegacyOptions {
                    record_raw_events: false,
                    ..LegacyOptions::default()
                };
                let c = LegacyClient::connect_with(&url, &[], opts).await.unwrap();
                c.initialize("2024-11-05").await.unwrap();
                while Instant::now() < until {
                    c.request("tools/call", params.clone()).await.unwrap();
                    done.set(done.get() + 1);
                }
            } else {
                let c = StreamableClient::new(&url, &[]);
                c.initialize("2025-06-18").await.unwrap();
                while Instant::now() < until {
                    c.request("tools/call", params.clone()).await.unwrap();
                    done.set(done.get() + 1);
                }
            }
        }
    });
    let start = Instant::now();
    futures_util::future::join_all(workers).await;
    let rate = done.get() as f64 / start.elapsed().as_secs_f64();
    println!(
        "{transport}: {sessions} sessions, {} calls, {rate:.0} calls/s",
        done.get()
    );
}
