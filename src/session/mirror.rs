//! A copy of a Streamable session's replay logs kept outside the process (replicas with
//! `--redis-replay`), so that after the session's replica is lost, the replica that takes it
//! over can answer the client's `Last-Event-ID` with what it missed. The session reports
//! every event it queues on a resumable stream, every request that starts waiting on a
//! stream, and every answer; [`Session::restore`] rebuilds the streams from that record, and
//! answers each request the lost replica never answered with an error, so no client waits
//! forever for a result that died with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::stream::OutStream;
use super::{event_id, Session, StreamNo, MAIN_STREAM};
use crate::jsonrpc::{codes, Id, Message};
use crate::observe::Difference;
use crate::sse;

/// One thing a mirror keeps for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// An SSE frame queued on `stream` as event `seq`, bytes as the client gets them.
    Event {
        stream: StreamNo,
        seq: u64,
        frame: Bytes,
    },
    /// Request `id` (JSON text) waits for its answer on `stream`.
    Waiting { stream: StreamNo, id: String },
    /// Request `id` on `stream` got its answer.
    Answered { stream: StreamNo, id: String },
}

/// Where a session's entries go (implemented by the replica directory).
pub trait Mirror: Send + Sync {
    fn append(&self, session: &str, entry: Entry);
}

/// A session's streams as a mirror held them.
#[derive(Default, Debug)]
pub struct Mirrored {
    streams: BTreeMap<StreamNo, MirroredStream>,
}

#[derive(Default, Debug)]
struct MirroredStream {
    frames: Vec<(u64, Bytes)>,
    /// Requests waiting on the stream, in order, until answered.
    waiting: Vec<String>,
}

impl Mirrored {
    /// Rebuild from entries in the order they were appended.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Mirrored {
        let mut m = Mirrored::default();
        for e in entries {
            match e {
                Entry::Event { stream, seq, frame } => {
                    let s = m.streams.entry(stream).or_default();
                    // A seq seen again (a replica fenced off late) replaces nothing.
                    if s.frames.last().is_none_or(|(last, _)| seq > *last) {
                        s.frames.push((seq, frame));
                    }
                }
                Entry::Waiting { stream, id } => {
                    m.streams.entry(stream).or_default().waiting.push(id)
                }
                Entry::Answered { stream, id } => {
                    if let Some(s) = m.streams.get_mut(&stream) {
                        s.waiting.retain(|w| *w != id);
                    }
                }
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

impl Session {
    /// Report this session's resumable events and requests to `mirror` from now on.
    pub fn set_mirror(&self, mirror: Arc<dyn Mirror>) {
        let _ = self.mirror.set(mirror);
    }

    pub(super) fn mirrored(&self, entry: impl FnOnce() -> Entry) {
        if let Some(m) = self.mirror.get() {
            m.append(&self.id, entry());
        }
    }

    /// Rebuild the streams a lost replica held for this session (before anything else is
    /// sent on it): the events it queued, each under its old id, and for every request it
    /// never answered an error in its place. Returns (streams, events, requests answered).
    pub fn restore(&self, mirrored: Mirrored) -> (usize, usize, usize) {
        let (mut events, mut failed) = (0, Vec::new());
        let streams = mirrored.streams.len();
        {
            let mut st = self.lock();
            for (no, ms) in mirrored.streams {
                let mut out = OutStream::new(true, 0, self.limits, self.budget.clone());
                for (seq, frame) in ms.frames {
                    out.restore_frame(seq, frame);
                    events += 1;
                }
                for id in &ms.waiting {
                    let Some(id) = Id::from_json_text(id) else {
                        continue;
                    };
                    let err = Message::error_response(
                        Some(&id),
                        codes::CONNECTION_CLOSED,
                        "mcp-bridge: the replica serving this request was lost; its result is unknown",
                    );
                    let _ = out.push(|seq| {
                        sse::encode(Some("message"), Some(&event_id(no, seq)), err.raw())
                    });
                    failed.push(err);
                }
                if no != MAIN_STREAM {
                    out.finish();
                }
                st.next_stream = st.next_stream.max(no + 1);
                st.streams.insert(no, out);
            }
        }
        for err in &failed {
            self.difference(
                Difference::ErrorSynthesized,
                Some(err),
                "the replica serving this request was lost before it answered: the client is told so on the restored stream",
            );
        }
        (streams, events, failed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: StreamNo, seq: u64) -> Entry {
        Entry::Event {
            stream,
            seq,
            frame: Bytes::from(format!("id: {stream}-{seq}\n\n")),
        }
    }

    #[test]
    fn entries_rebuild_streams_and_what_still_waits() {
        let m = Mirrored::from_entries([
            Entry::Waiting {
                stream: 1,
                id: "1".into(),
            },
            event(1, 1),
            event(1, 2),
            Entry::Answered {
                stream: 1,
                id: "1".into(),
            },
            Entry::Waiting {
                stream: 2,
                id: "\"b\"".into(),
            },
            event(2, 1),
            event(2, 1),
        ]);
        assert_eq!(m.streams[&1].frames.len(), 2);
        assert!(m.streams[&1].waiting.is_empty());
        assert_eq!(m.streams[&2].frames.len(), 1, "a repeated seq is kept once");
        assert_eq!(m.streams[&2].waiting, vec!["\"b\"".to_string()]);
    }
}
