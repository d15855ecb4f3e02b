//! Redis memory per session record of the replica directory (docs/REPLICAS.md): writes N
//! records shaped like real ones (a ~400-byte `initialize`, `initialized`, a SHA-256
//! credential digest, an upstream session id) into a fresh redis-server and reports the
//! growth of `used_memory` per record. Bounded: N defaults to 20 000 (a few seconds).
//!
//! ```sh
//! cargo run --release --example replica_memory -- [N]
//! ```

use bytes::Bytes;
use mcp_bridge::replica::{
    Directory, Keys, RedisTarget, SessionRecord, SessionUpdate, Transport, Ttls,
};
use mcp_testkit::redis_server::RedisServer;
use std::time::Duration;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{}},"clientInfo":{"name":"example-client","title":"Example Client Display Name","version":"1.0.0"},"_meta":{"trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let redis = RedisServer::start();
    let target = RedisTarget {
        url: redis.url().parse().unwrap(),
        password: None,
        timeout: Duration::from_secs(5),
    };
    actix_rt::System::new().block_on(async {
        let dir = Directory::connect(&target, Keys::default(), Ttls::default())
            .await
            .expect("redis");
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let before = used_memory(&mut conn).await;
        for i in 0..n {
            let id = format!("{i:032x}");
            let rec = SessionRecord {
                id: id.clone(),
                owner: "3f2a9c41d07e5b68".into(),
                epoch: 0,
                client_transport: Transport::Legacy,
                upstream_transport: None,
                credential: Some(
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                ),
                upstream_session: None,
                initialize: Bytes::from_static(INITIALIZE.as_bytes()),
                initialized: None,
            };
            assert!(dir.create_session(&rec).await.unwrap());
            let owner = &rec.owner;
            let updates = [
                SessionUpdate::UpstreamTransport(Transport::Streamable),
                SessionUpdate::UpstreamSession(Some(format!(
                    "{i:08x}-8f1c-4b7e-9a2d-5e6f7a8b9c0d"
                ))),
                SessionUpdate::Initialized(Bytes::from_static(INITIALIZED.as_bytes())),
            ];
            for u in updates {
                assert!(dir.update_session(&id, owner, u).await.unwrap());
            }
        }
        let after = used_memory(&mut conn).await;
        println!(
            "{n} session records: used_memory {before} → {after} bytes, {:.0} bytes per session \
             (initialize {} bytes)",
            (after - before) as f64 / n as f64,
            INITIALIZE.len()
        );
    });
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}
