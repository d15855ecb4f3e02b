//! Replay logs in Redis (`--redis-replay`): each Streamable session's events, waiting
//! requests and answers go to a Redis stream `{prefix}events:{session}` (capped with
//! `MAXLEN ~`, expiring with the session record), written off the data path: the session
//! hands entries to a bounded queue, and one task on the Redis runtime writes them in
//! pipelined batches. A full queue drops entries (counted, logged) rather than stall
//! delivery. A replica taking the session over reads the stream back
//! ([`read`]) and rebuilds the streams from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{millis, Directory, Result};
use crate::session::{Mirror, MirrorEntry, Mirrored};

/// Entries waiting to be written, at most (beyond: dropped and counted).
const QUEUE: usize = 64 * 1024;
/// Entries written per pipeline, at most.
const BATCH: usize = 512;

/// The session side: what [`Session::set_mirror`](crate::session::Session::set_mirror) gets.
pub struct RedisMirror {
    tx: mpsc::Sender<(Arc<str>, MirrorEntry)>,
    dropped: AtomicU64,
}

impl Mirror for RedisMirror {
    fn append(&self, session: &str, entry: MirrorEntry) {
        if self.tx.try_send((session.into(), entry)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "replay log writes to Redis fall behind: entries dropped (a resume after a takeover may miss them)"
                );
            }
        }
    }
}

impl RedisMirror {
    /// The mirror, and the writer task to run on the Redis runtime. `cap`: entries kept per
    /// session.
    pub fn new(
        dir: Directory,
        cap: usize,
    ) -> (Arc<RedisMirror>, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mirror = Arc::new(RedisMirror {
            tx,
            dropped: AtomicU64::new(0),
        });
        (mirror, write(dir, rx, cap))
    }
}

async fn write(dir: Directory, mut rx: mpsc::Receiver<(Arc<str>, MirrorEntry)>, cap: usize) {
    let mut batch = Vec::with_capacity(BATCH);
    let ttl = millis(dir.ttls().session);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut keys: Vec<String> = Vec::new();
        for (session, entry) in batch.drain(..) {
            let key = dir.keys().events(&session);
            let cmd = pipe
                .cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(cap)
                .arg("*");
            match entry {
                MirrorEntry::Event { stream, seq, frame } => {
                    cmd.arg("k").arg("e").arg("s").arg(stream).arg("q").arg(seq);
                    cmd.arg("f").arg(frame.as_ref());
                }
                MirrorEntry::Waiting { stream, id } => {
                    cmd.arg("k").arg("w").arg("s").arg(stream).arg("i").arg(id);
                }
                MirrorEntry::Answered { stream, id } => {
                    cmd.arg("k").arg("a").arg("s").arg(stream).arg("i").arg(id);
                }
            }
            cmd.ignore();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut dir.conn()).await {
            tracing::warn!("writing replay logs to Redis failed: {e}");
        }
    }
}

/// One stream entry as XRANGE returns it: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// Everything mirrored for `session`, oldest first.
pub async fn read(dir: &Directory, session: &str) -> Result<Mirrored> {
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(dir.keys().events(session))
        .arg("-")
        .arg("+")
        .query_async(&mut dir.conn())
        .await?;
    Ok(Mirrored::from_entries(
        entries.into_iter().filter_map(|(_, fields)| decode(fields)),
    ))
}

/// One entry from its fields; `None` for anything malformed (skipped).
fn decode(fields: Vec<(String, Vec<u8>)>) -> Option<MirrorEntry> {
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let text = |name: &str| get(name).and_then(|v| std::str::from_utf8(v).ok());
    let stream = text("s")?.parse().ok()?;
    Some(match text("k")? {
        "e" => MirrorEntry::Event {
            stream,
            seq: text("q")?.parse().ok()?,
            frame: Bytes::copy_from_slice(get("f")?),
        },
        "w" => MirrorEntry::Waiting {
            stream,
            id: text("i")?.to_owned(),
        },
        "a" => MirrorEntry::Answered {
            stream,
            id: text("i")?.to_owned(),
        },
        _ => return None,
    })
}

/// Keep a session's mirrored log as long as its record (called with each refresh).
pub async fn keep(dir: &Directory, session: &str) -> Result<()> {
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(dir.keys().events(session))
        .arg(millis(dir.ttls().session))
        .query_async(&mut dir.conn())
        .await?;
    Ok(())
}

/// The session ended for good: its log goes with its record.
pub async fn remove(dir: &Directory, session: &str) -> Result<()> {
    let _: i64 = redis::cmd("DEL")
        .arg(dir.keys().events(session))
        .query_async(&mut dir.conn())
        .await?;
    Ok(())
}
