//! Session records: what another replica needs to serve a session or take it over. The owner
//! creates the record, keeps it alive and deletes it; every write but creation is a
//! compare-and-set on the owner, so a replica that lost its session to a takeover learns it
//! (its refresh returns `false`) instead of overwriting the new owner's record.

use std::collections::HashMap;

use bytes::Bytes;
use redis::AsyncCommands;

use super::{millis, scripts, Directory, DirectoryError, Result};

/// A transport, as recorded for each side of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP+SSE, protocol 2024-11-05.
    Legacy,
    /// Streamable HTTP.
    Streamable,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Legacy => "legacy",
            Transport::Streamable => "streamable",
        }
    }

    fn parse(s: &str) -> Option<Transport> {
        match s {
            "legacy" => Some(Transport::Legacy),
            "streamable" => Some(Transport::Streamable),
            _ => None,
        }
    }
}

/// One session as the directory holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id the client holds.
    pub id: String,
    /// The replica that serves it.
    pub owner: String,
    /// Bumped by every takeover: a fencing token for what the owner writes elsewhere.
    pub epoch: u64,
    pub client_transport: Transport,
    /// Unknown until the upstream answered the first `initialize`.
    pub upstream_transport: Option<Transport>,
    /// The credential digest the session belongs to (with `--auth-token`); a request with
    /// another credential is refused on whichever replica it lands.
    pub credential: Option<String>,
    /// The upstream's `Mcp-Session-Id`, if it gave one.
    pub upstream_session: Option<String>,
    /// The client's `initialize` request, byte for byte: a takeover re-initialises with it.
    pub initialize: Bytes,
    /// The client's `notifications/initialized`, once sent.
    pub initialized: Option<Bytes>,
}

/// A change the owner makes to its record after creating it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionUpdate {
    /// The upstream's `Mcp-Session-Id` after a (re-)initialise; `None` removes it.
    UpstreamSession(Option<String>),
    /// Known once the upstream answered the first `initialize`.
    UpstreamTransport(Transport),
    /// The client's `notifications/initialized`, byte for byte.
    Initialized(Bytes),
}

/// What a takeover attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// The caller owns the session now, under this epoch.
    Taken { epoch: u64 },
    /// The owner the caller saw dead still heartbeats: refused.
    OwnerAlive,
    /// Someone else owns it now (another takeover won, or the caller's view was stale).
    OwnerChanged { owner: String },
    /// No such session (ended, or expired).
    Gone,
}

/// Why the caller believes the owner is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerSeen {
    /// Its heartbeat lapsed: the takeover re-checks that atomically and is refused if the
    /// owner heartbeated since.
    Expired,
    /// It refused the caller's connection although it still heartbeats (it is exiting, or
    /// partitioned away): the takeover only checks that it is still the owner. If it was in
    /// fact alive, its next refresh fails and it drops the session.
    Unreachable,
}

impl Directory {
    /// Stores a new record with the session TTL. `false` when the id already has one.
    pub async fn create_session(&self, rec: &SessionRecord) -> Result<bool> {
        let mut inv = scripts::CREATE.key(self.keys().session(&rec.id));
        inv.arg(millis(self.ttls().session));
        for (field, value) in fields(rec) {
            inv.arg(field).arg(value);
        }
        let created: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(created == 1)
    }

    /// Keeps `id` alive for another session TTL if `owner` still owns it. `false`: the
    /// record is gone or was taken over; the caller must stop serving the session.
    pub async fn refresh_session(&self, id: &str, owner: &str) -> Result<bool> {
        let done: i64 = scripts::REFRESH
            .key(self.keys().session(id))
            .arg(owner)
            .arg(millis(self.ttls().session))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// Records what the owner learnt after creating the record (and refreshes its TTL), if
    /// `owner` still owns it.
    pub async fn update_session(
        &self,
        id: &str,
        owner: &str,
        update: SessionUpdate,
    ) -> Result<bool> {
        let (field, value): (&str, Vec<u8>) = match update {
            SessionUpdate::UpstreamSession(s) => ("upstream_session", s.unwrap_or_default().into()),
            SessionUpdate::UpstreamTransport(t) => ("upstream_transport", t.as_str().into()),
            SessionUpdate::Initialized(b) => ("initialized", b.to_vec()),
        };
        let done: i64 = scripts::SET_FIELD
            .key(self.keys().session(id))
            .arg(owner)
            .arg(millis(self.ttls().session))
            .arg(field)
            .arg(value)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// The record of `id`, if it exists.
    pub async fn lookup_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let key = self.keys().session(id);
        let map: HashMap<String, Vec<u8>> = self.conn().hgetall(&key).await?;
        if map.is_empty() {
            return Ok(None);
        }
        parse(id, map)
            .map(Some)
            .map_err(|why| DirectoryError::BadRecord { key, why })
    }

    /// Deletes the record (the session ended), if `owner` still owns it.
    pub async fn delete_session(&self, id: &str, owner: &str) -> Result<bool> {
        let done: i64 = scripts::DELETE
            .key(self.keys().session(id))
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// Makes `new_owner` the owner of `id` if `dead_owner` — the owner the caller found dead —
    /// still is, atomically: of two replicas racing for one session exactly one wins.
    pub async fn take_over(
        &self,
        id: &str,
        dead_owner: &str,
        new_owner: &str,
        seen: OwnerSeen,
    ) -> Result<Takeover> {
        let k = self.keys();
        let must_be_expired = if seen == OwnerSeen::Expired { "1" } else { "0" };
        let (outcome, detail): (String, String) = scripts::TAKEOVER
            .key(k.session(id))
            .key(k.replica(dead_owner))
            .arg(dead_owner)
            .arg(new_owner)
            .arg(must_be_expired)
            .arg(millis(self.ttls().session))
            .invoke_async(&mut self.conn())
            .await?;
        let bad = |why: String| DirectoryError::BadRecord {
            key: k.session(id),
            why,
        };
        match outcome.as_str() {
            "taken" => detail
                .parse()
                .map(|epoch| Takeover::Taken { epoch })
                .map_err(|_| bad(format!("epoch {detail:?}"))),
            "alive" => Ok(Takeover::OwnerAlive),
            "changed" => Ok(Takeover::OwnerChanged { owner: detail }),
            "gone" => Ok(Takeover::Gone),
            other => Err(bad(format!("takeover outcome {other:?}"))),
        }
    }
}

/// The hash fields of a record; absent options are left out.
fn fields(rec: &SessionRecord) -> Vec<(&'static str, Vec<u8>)> {
    let mut f = vec![
        ("owner", rec.owner.clone().into_bytes()),
        ("epoch", rec.epoch.to_string().into_bytes()),
        ("client_transport", rec.client_transport.as_str().into()),
        ("initialize", rec.initialize.to_vec()),
    ];
    if let Some(t) = rec.upstream_transport {
        f.push(("upstream_transport", t.as_str().into()));
    }
    if let Some(c) = &rec.credential {
        f.push(("credential", c.clone().into_bytes()));
    }
    if let Some(u) = &rec.upstream_session {
        f.push(("upstream_session", u.clone().into_bytes()));
    }
    if let Some(i) = &rec.initialized {
        f.push(("initialized", i.to_vec()));
    }
    f
}

fn parse(
    id: &str,
    mut map: HashMap<String, Vec<u8>>,
) -> std::result::Result<SessionRecord, String> {
    let mut text = |name: &str| -> std::result::Result<Option<String>, String> {
        map.remove(name)
            .map(|v| String::from_utf8(v).map_err(|_| format!("{name} is not UTF-8")))
            .transpose()
    };
    let owner = text("owner")?.ok_or("no owner")?;
    let epoch = text("epoch")?
        .ok_or("no epoch")?
        .parse()
        .map_err(|_| "bad epoch")?;
    let transport = |name: &str, v: Option<String>| {
        v.map(|s| Transport::parse(&s).ok_or(format!("{name} {s:?}")))
            .transpose()
    };
    let client_transport =
        transport("client_transport", text("client_transport")?)?.ok_or("no client_transport")?;
    let upstream_transport = transport("upstream_transport", text("upstream_transport")?)?;
    let credential = text("credential")?;
    let upstream_session = text("upstream_session")?;
    let initialize = map.remove("initialize").ok_or("no initialize")?.into();
    let initialized = map.remove("initialized").map(Bytes::from);
    Ok(SessionRecord {
        id: id.to_owned(),
        owner,
        epoch,
        client_transport,
        upstream_transport,
        credential,
        upstream_session,
        initialize,
        initialized,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            id: "s1".into(),
            owner: "r1".into(),
            epoch: 3,
            client_transport: Transport::Legacy,
            upstream_transport: Some(Transport::Streamable),
            credential: Some("ab12".into()),
            upstream_session: Some("up-1".into()),
            initialize: Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#),
            initialized: None,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let rec = record();
        let map = fields(&rec)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(parse("s1", map), Ok(rec));
    }

    #[test]
    fn a_record_missing_its_owner_or_with_an_unknown_transport_is_refused() {
        let mut map: HashMap<String, Vec<u8>> = fields(&record())
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        map.insert("client_transport".into(), b"pigeon".to_vec());
        assert!(parse("s1", map.clone()).unwrap_err().contains("pigeon"));
        map.remove("owner");
        assert_eq!(parse("s1", map), Err("no owner".into()));
    }
}
