//! The replica session directory in Redis (issue 16, `--redis`): which replicas are alive and
//! where other replicas reach them ([`registry`]), and for each session its owner, transports,
//! credential digest, upstream session id and cached handshake ([`sessions`]), so any replica
//! can find — or atomically take over — any session. Every key carries a TTL that its writer
//! keeps alive: nothing outlives the replicas that need it.
//!
//! [`membership`] is this replica's part in the group (registration, its records, finding and
//! taking over sessions), [`hop`] the signed replica-to-replica relay. Keys and the takeover
//! protocol: [`keys`], [`scripts`]; the design: docs/REPLICAS.md.

pub mod hop;
pub mod keys;
pub mod membership;
pub mod registry;
pub mod replay;
mod scripts;
pub mod sessions;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;

pub use keys::Keys;
pub use registry::Replica;
pub use sessions::{OwnerSeen, SessionRecord, SessionUpdate, Takeover, Transport};

/// A failure of the directory: Redis unreachable or erroring, or a record it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("malformed directory record {key}: {why}")]
    BadRecord { key: String, why: String },
}

pub type Result<T> = std::result::Result<T, DirectoryError>;

/// How long each kind of key lives without being refreshed by its writer.
#[derive(Clone, Copy, Debug)]
pub struct Ttls {
    /// A replica's registration: it heartbeats well within this (a third is a good period);
    /// a replica silent for this long is taken for dead.
    pub replica: Duration,
    /// A session record: how long it outlives its owner's last refresh, so the time a client
    /// may stay silent after its owner's loss and still have its session taken over.
    pub session: Duration,
}

impl Default for Ttls {
    fn default() -> Ttls {
        Ttls {
            replica: Duration::from_secs(10),
            session: Duration::from_secs(600),
        }
    }
}

/// Where Redis is and how long a command may take.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// `redis://` or `rediss://` (TLS, system roots), optionally with user and password.
    pub url: url::Url,
    /// Overrides a password in the URL (read from `--redis-password-file`).
    pub password: Option<String>,
    /// Deadline for connecting and for each answer: a stalled Redis fails fast.
    pub timeout: Duration,
}

/// A handle on the directory; cheap to clone. Redis commands go through one multiplexed
/// connection that reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct Directory {
    conn: ConnectionManager,
    keys: Keys,
    ttls: Ttls,
}

impl Directory {
    /// Connects (or fails: Redis must be reachable at startup).
    pub async fn connect(target: &RedisTarget, keys: Keys, ttls: Ttls) -> Result<Directory> {
        let mut info = target.url.as_str().into_connection_info()?;
        if let Some(p) = &target.password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(target.timeout))
            .set_response_timeout(Some(target.timeout))
            .set_number_of_retries(2)
            .set_max_delay(target.timeout);
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Directory { conn, keys, ttls })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn ttls(&self) -> Ttls {
        self.ttls
    }

    /// A connection handle for one command (clones share the one connection).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Milliseconds, as Redis' `PX`/`PEXPIRE` want them (at least 1).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
