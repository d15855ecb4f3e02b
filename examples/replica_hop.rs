//! How should a request that lands on the wrong replica reach its session's owner (issue 16,
//! item 3)? This measures the two candidates on loopback, between two "replicas" — two
//! threads, each with its own actix runtime and its own connections, as two processes would
//! have:
//!
//! - **direct HTTP**: the requester POSTs the message to the owner's internal address (one
//!   keep-alive connection) and reads the answer from the response;
//! - **Redis pub/sub**: the requester PUBLISHes to the owner's channel, the owner PUBLISHes the
//!   answer to the requester's channel (two Redis round trips plus two deliveries).
//!
//! Each sends the same ~200-byte JSON-RPC request, one at a time, and reports p50/p99 of the
//! request→answer round trip, beside a bare Redis PING for scale. Bounded: at most
//! `--rounds` × 2 × `--per-round` hops and never more than ~15 s.
//!
//! ```sh
//! cargo run --release --example replica_hop                      # starts its own redis-server
//! cargo run --release --example replica_hop -- --redis redis://127.0.0.1:6379/
//! ```

use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::StreamExt;
use mcp_testkit::redis_server::RedisServer;
use redis::AsyncCommands;

const BODY: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a message of a typical size, forwarded to the session's owner"},"_meta":{"progressToken":"t-42"}}}"#;
const OWNER_CHANNEL: &str = "hop:owner";
const REPLY_CHANNEL: &str = "hop:requester";
const BUDGET: Duration = Duration::from_secs(15);

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut url, mut rounds, mut per_round) = (None, 4usize, 1000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--redis" => url = args.next(),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--per-round" => {
                per_round = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(per_round)
            }
            _ => {
                eprintln!("usage: replica_hop [--redis URL] [--rounds N] [--per-round N]");
                std::process::exit(2);
            }
        }
    }
    let _own_redis;
    let url = match url {
        Some(u) => u,
        None => {
            let r = RedisServer::start();
            let u = r.url();
            _own_redis = r;
            u
        }
    };

    let owner_addr = start_owner(url.clone());
    let (http, pubsub, ping) =
        actix_rt::System::new().block_on(requester(&url, owner_addr, rounds, per_round));
    println!("round trip of one request→answer hop, {} each:", http.len());
    report("direct HTTP POST", &http);
    report("Redis pub/sub", &pubsub);
    report("(Redis PING)", &ping);
}

/// The owner replica: an HTTP endpoint and a pub/sub responder, both echoing the message
/// (the answer is as large as the request; what is measured is the hop, not the work).
fn start_owner(url: String) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new().route(
                    "/hop",
                    web::post().to(|body: Bytes| async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }),
                )
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind");
            let addr = server.addrs()[0];
            let client = redis::Client::open(url).expect("redis url");
            let mut publish = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let mut sub = client.get_async_pubsub().await.expect("redis pubsub");
            sub.subscribe(OWNER_CHANNEL).await.expect("subscribe");
            actix_rt::spawn(async move {
                let mut messages = sub.into_on_message();
                while let Some(msg) = messages.next().await {
                    // "<reply channel>\n<message>"
                    let payload = msg.get_payload_bytes();
                    let Some(nl) = payload.iter().position(|&b| b == b'\n') else {
                        continue;
                    };
                    let reply = String::from_utf8_lossy(&payload[..nl]).into_owned();
                    let _: i64 = publish
                        .publish(reply, &payload[nl + 1..])
                        .await
                        .expect("publish");
                }
            });
            tx.send(addr).unwrap();
            server.run().await.expect("owner server");
        });
    });
    rx.recv().expect("owner started")
}

async fn requester(
    url: &str,
    owner: std::net::SocketAddr,
    rounds: usize,
    per_round: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let http_client = awc::Client::default();
    let hop_url = format!("http://{owner}/hop");
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(REPLY_CHANNEL).await.unwrap();
    let mut replies = sub.into_on_message();
    let request = format!("{REPLY_CHANNEL}\n{BODY}");

    let http_hop = || async {
        let mut resp = http_client.post(&hop_url).send_body(BODY).await.unwrap();
        let body = resp.body().await.unwrap();
        assert_eq!(body.len(), BODY.len());
    };
    let (mut http, mut pubsub, mut ping) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: connections open, code paths hot.
    for _ in 0..200 {
        http_hop().await;
    }
    let started = Instant::now();
    'rounds: for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            http_hop().await;
            http.push(t.elapsed());
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let _: i64 = conn.publish(OWNER_CHANNEL, &request).await.unwrap();
            let msg = replies.next().await.expect("reply");
            assert_eq!(msg.get_payload_bytes().len(), BODY.len());
            pubsub.push(t.elapsed());
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            ping.push(t.elapsed());
        }
        if started.elapsed() > BUDGET {
            break 'rounds;
        }
    }
    (http, pubsub, ping)
}

fn report(what: &str, samples: &[Duration]) {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let pct = |p: f64| us[((us.len() as f64 - 1.0) * p / 100.0).round() as usize];
    println!(
        "  {what:<18} p50 {:>7.1} µs   p99 {:>7.1} µs",
        pct(50.0),
        pct(99.0)
    );
}
