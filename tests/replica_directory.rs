//! The replica session directory (src/replica/) against a real redis-server: registration and
//! its expiry, session records and theirs, the takeover compare-and-set under a real race, and
//! that every key it writes expires.

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcp_bridge::replica::{
    Directory, Keys, OwnerSeen, RedisTarget, Replica, SessionRecord, SessionUpdate, Takeover,
    Transport, Ttls,
};
use mcp_testkit::redis_server::RedisServer;
use redis::AsyncCommands;

const WAIT: Duration = Duration::from_secs(10);

fn target(redis: &RedisServer) -> RedisTarget {
    RedisTarget {
        url: redis.url().parse().unwrap(),
        password: None,
        timeout: Duration::from_secs(5),
    }
}

/// TTLs short enough to watch expire.
const SHORT: Ttls = Ttls {
    replica: Duration::from_millis(300),
    session: Duration::from_millis(400),
};

async fn directory(redis: &RedisServer, ttls: Ttls) -> Directory {
    Directory::connect(&target(redis), Keys::new("test:"), ttls)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", redis.report()))
}

async fn directory_at(target: &RedisTarget) -> Directory {
    Directory::connect(target, Keys::new("test:"), Ttls::default())
        .await
        .unwrap()
}

async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits until `cond` holds (expiry is Redis' own event; this only bounds the wait).
async fn eventually<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let until = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < until, "{what}: not within {WAIT:?}");
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
}

fn record(id: &str, owner: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        owner: owner.into(),
        epoch: 0,
        client_transport: Transport::Streamable,
        upstream_transport: Some(Transport::Legacy),
        credential: Some("9f86d081884c7d65".into()),
        upstream_session: None,
        // Kept byte for byte: odd spacing, non-ASCII.
        initialize: Bytes::from_static(
            "{\"jsonrpc\":\"2.0\", \"id\":1,\"method\":\"initialize\",\"params\":{\"n\":\"é\"}}"
                .as_bytes(),
        ),
        initialized: Some(Bytes::from_static(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )),
    }
}

async fn pttl(redis: &RedisServer, key: &str) -> i64 {
    raw(redis).await.pttl(key).await.unwrap()
}

fn sorted(mut v: Vec<Replica>) -> Vec<Replica> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[actix_rt::test]
async fn replicas_register_list_deregister_and_expire() {
    let redis = RedisServer::start();
    let dir = directory(&redis, SHORT).await;
    dir.heartbeat("r1", "http://10.0.0.1:9000").await.unwrap();
    dir.heartbeat("r2", "http://10.0.0.2:9000").await.unwrap();
    let r = |id: &str, a: &str| Replica {
        id: id.into(),
        address: a.into(),
    };
    assert_eq!(
        sorted(dir.live_replicas().await.unwrap()),
        [
            r("r1", "http://10.0.0.1:9000"),
            r("r2", "http://10.0.0.2:9000")
        ]
    );
    let ttl = pttl(&redis, "test:replica:r1").await;
    assert!(ttl > 0 && ttl <= 300, "replica TTL {ttl}");

    dir.deregister("r1").await.unwrap();
    assert!(!dir.is_alive("r1").await.unwrap());
    assert_eq!(
        dir.live_replicas().await.unwrap(),
        [r("r2", "http://10.0.0.2:9000")]
    );

    // r2 stops heartbeating: it drops out by itself, and so does the index.
    eventually("r2 expires", || async {
        dir.live_replicas().await.unwrap().is_empty()
    })
    .await;
    assert!(!dir.is_alive("r2").await.unwrap());
    eventually("the index expires", || async {
        pttl(&redis, "test:replicas").await == -2
    })
    .await;
}

#[actix_rt::test]
async fn session_records_are_created_once_read_back_refreshed_by_their_owner_and_expire() {
    let redis = RedisServer::start();
    let dir = directory(&redis, SHORT).await;
    let rec = SessionRecord {
        upstream_transport: None,
        initialized: None,
        ..record("s1", "r1")
    };
    assert!(dir.create_session(&rec).await.unwrap());
    assert!(
        !dir.create_session(&record("s1", "r9")).await.unwrap(),
        "an existing id is never overwritten"
    );
    assert_eq!(dir.lookup_session("s1").await.unwrap(), Some(rec.clone()));
    assert_eq!(dir.lookup_session("nope").await.unwrap(), None);

    assert!(dir.refresh_session("s1", "r1").await.unwrap());
    assert!(!dir.refresh_session("s1", "r9").await.unwrap());
    let ttl = pttl(&redis, "test:session:s1").await;
    assert!(ttl > 0 && ttl <= 400, "session TTL {ttl}");

    // What the owner learns later lands in the record; nobody else can write it.
    let up = |s: &str| SessionUpdate::UpstreamSession(Some(s.into()));
    assert!(dir.update_session("s1", "r1", up("up-7")).await.unwrap());
    assert!(!dir.update_session("s1", "r9", up("evil")).await.unwrap());
    let initialized =
        Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let updates = [
        SessionUpdate::UpstreamTransport(Transport::Streamable),
        SessionUpdate::Initialized(initialized.clone()),
    ];
    for u in updates {
        assert!(dir.update_session("s1", "r1", u).await.unwrap());
    }
    let got = dir.lookup_session("s1").await.unwrap().unwrap();
    assert_eq!(
        got,
        SessionRecord {
            upstream_session: Some("up-7".into()),
            upstream_transport: Some(Transport::Streamable),
            initialized: Some(initialized),
            ..rec.clone()
        }
    );
    let none = SessionUpdate::UpstreamSession(None);
    assert!(dir.update_session("s1", "r1", none).await.unwrap());
    let got = dir.lookup_session("s1").await.unwrap().unwrap();
    assert_eq!(got.upstream_session, None);

    assert!(!dir.delete_session("s1", "r9").await.unwrap());
    assert!(dir.delete_session("s1", "r1").await.unwrap());
    assert_eq!(dir.lookup_session("s1").await.unwrap(), None);

    // A record nobody refreshes expires.
    assert!(dir.create_session(&record("s2", "r1")).await.unwrap());
    eventually("s2 expires", || async {
        dir.lookup_session("s2").await.unwrap().is_none()
    })
    .await;
    assert!(!dir.refresh_session("s2", "r1").await.unwrap());
}

#[actix_rt::test]
async fn a_live_owner_keeps_its_session_and_a_lapsed_one_loses_it() {
    let redis = RedisServer::start();
    let ttls = Ttls {
        replica: Duration::from_millis(300),
        session: Duration::from_secs(60),
    };
    let dir = directory(&redis, ttls).await;
    dir.heartbeat("owner", "http://127.0.0.1:1").await.unwrap();
    assert!(dir.create_session(&record("s1", "owner")).await.unwrap());

    assert_eq!(
        dir.take_over("s1", "owner", "thief", OwnerSeen::Expired)
            .await
            .unwrap(),
        Takeover::OwnerAlive
    );
    assert_eq!(
        dir.lookup_session("s1").await.unwrap().unwrap().owner,
        "owner"
    );
    assert_eq!(
        dir.take_over("s1", "someone", "thief", OwnerSeen::Expired)
            .await
            .unwrap(),
        Takeover::OwnerChanged {
            owner: "owner".into()
        },
        "a stale view of the owner never wins"
    );
    assert_eq!(
        dir.take_over("gone", "owner", "thief", OwnerSeen::Expired)
            .await
            .unwrap(),
        Takeover::Gone
    );

    // The owner's heartbeat lapses: now the takeover succeeds, and the old owner, should it
    // come back, is fenced off (its refresh fails).
    eventually("owner expires", || async {
        !dir.is_alive("owner").await.unwrap()
    })
    .await;
    assert_eq!(
        dir.take_over("s1", "owner", "heir", OwnerSeen::Expired)
            .await
            .unwrap(),
        Takeover::Taken { epoch: 1 }
    );
    let rec = dir.lookup_session("s1").await.unwrap().unwrap();
    assert_eq!((rec.owner.as_str(), rec.epoch), ("heir", 1));
    assert_eq!(
        rec.initialize,
        record("s1", "x").initialize,
        "handshake kept"
    );
    assert!(!dir.refresh_session("s1", "owner").await.unwrap());
    assert!(dir.refresh_session("s1", "heir").await.unwrap());

    // Unreachable (connection refused) does not wait for the heartbeat to lapse.
    dir.heartbeat("heir", "http://127.0.0.1:2").await.unwrap();
    assert_eq!(
        dir.take_over("s1", "heir", "next", OwnerSeen::Unreachable)
            .await
            .unwrap(),
        Takeover::Taken { epoch: 2 }
    );
}

/// Two replicas, each on its own thread, runtime and connection, race for the same sessions
/// of a dead owner: every session ends up with exactly one of them.
#[test]
fn of_two_concurrent_takeovers_exactly_one_wins() {
    const SESSIONS: usize = 200;
    let redis = RedisServer::start();
    let at = target(&redis);
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("s{i}")).collect();
    actix_rt::System::new().block_on(async {
        let dir = directory(&redis, Ttls::default()).await;
        for id in &ids {
            assert!(dir.create_session(&record(id, "dead")).await.unwrap());
        }
    });
    let start = Arc::new(Barrier::new(2));
    let racers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|me| {
            let (at, start, ids) = (at.clone(), start.clone(), ids.clone());
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let dir = directory_at(&at).await;
                    let mut outcomes = Vec::new();
                    for id in &ids {
                        // Both send the same session's takeover at the same moment.
                        start.wait();
                        outcomes.push(
                            dir.take_over(id, "dead", me, OwnerSeen::Expired)
                                .await
                                .unwrap(),
                        );
                    }
                    outcomes
                })
            })
        })
        .collect();
    let results: Vec<Vec<Takeover>> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    actix_rt::System::new().block_on(async {
        let dir = directory(&redis, Ttls::default()).await;
        for (i, id) in ids.iter().enumerate() {
            let (a, b) = (&results[0][i], &results[1][i]);
            let winner = match (a, b) {
                (Takeover::Taken { epoch: 1 }, Takeover::OwnerChanged { owner })
                    if owner == "a" =>
                {
                    "a"
                }
                (Takeover::OwnerChanged { owner }, Takeover::Taken { epoch: 1 })
                    if owner == "b" =>
                {
                    "b"
                }
                _ => panic!("{id}: not exactly one winner: a {a:?}, b {b:?}"),
            };
            assert_eq!(dir.lookup_session(id).await.unwrap().unwrap().owner, winner);
        }
    });
}

#[actix_rt::test]
async fn every_key_the_directory_writes_expires() {
    let redis = RedisServer::start();
    let dir = directory(&redis, Ttls::default()).await;
    dir.heartbeat("r1", "http://127.0.0.1:1").await.unwrap();
    dir.heartbeat("r2", "http://127.0.0.1:2").await.unwrap();
    dir.deregister("r2").await.unwrap();
    for i in 0..5 {
        dir.create_session(&record(&format!("s{i}"), "r1"))
            .await
            .unwrap();
    }
    dir.refresh_session("s0", "r1").await.unwrap();
    dir.update_session("s1", "r1", SessionUpdate::UpstreamSession(Some("u".into())))
        .await
        .unwrap();
    dir.take_over("s2", "r1", "r3", OwnerSeen::Unreachable)
        .await
        .unwrap();
    dir.delete_session("s3", "r1").await.unwrap();

    let mut conn = raw(&redis).await;
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert_eq!(keys.len(), 2 + 4, "{keys:?}");
    for key in keys {
        assert!(key.starts_with("test:"), "{key} outside the prefix");
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}
