//! The replica registry: each replica registers an id and the address where other replicas
//! reach it, heartbeats within its TTL, and deregisters when it exits. A replica whose
//! heartbeat lapsed is not listed, and [`Directory::is_alive`] says no.

use redis::AsyncCommands;

use super::{millis, scripts, Directory, Result};

/// A live replica as the registry lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    /// Where other replicas reach it (its internal HTTP address).
    pub address: String,
}

impl Directory {
    /// Registers `id` at `address`, or renews the registration (the heartbeat: call it a few
    /// times per replica TTL).
    pub async fn heartbeat(&self, id: &str, address: &str) -> Result<()> {
        let k = self.keys();
        let _: i64 = scripts::HEARTBEAT
            .key(k.replica(id))
            .key(k.replicas())
            .arg(id)
            .arg(address)
            .arg(millis(self.ttls().replica))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Removes `id` at once (a clean exit), instead of letting its heartbeat lapse.
    pub async fn deregister(&self, id: &str) -> Result<()> {
        let k = self.keys();
        let _: () = redis::pipe()
            .atomic()
            .del(k.replica(id))
            .ignore()
            .zrem(k.replicas(), id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// The replicas whose heartbeat is current, in no particular order.
    pub async fn live_replicas(&self) -> Result<Vec<Replica>> {
        let k = self.keys();
        let flat: Vec<String> = scripts::LIVE
            .key(k.replicas())
            .arg(k.replica_prefix())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(flat
            .chunks_exact(2)
            .map(|p| Replica {
                id: p[0].clone(),
                address: p[1].clone(),
            })
            .collect())
    }

    /// The address of `id` if its heartbeat is current.
    pub async fn replica_address(&self, id: &str) -> Result<Option<String>> {
        Ok(self.conn().get(self.keys().replica(id)).await?)
    }

    /// Whether `id`'s heartbeat is current.
    pub async fn is_alive(&self, id: &str) -> Result<bool> {
        Ok(self.replica_address(id).await?.is_some())
    }
}
