//! Upstream → client: each message the upstream delivers is routed (see [`super::router`]),
//! framed for the client's transport and queued on its stream, within the replay budgets.
//! The backpressure future the producer awaits lives here too.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::inflight::Pending;
use super::router::{self, Note, Route, Streams};
use super::stream::{self, OutStream, Stall, StallCheck};
use super::{event_id, EndReason, MirrorEntry, Session, StreamNo, MAIN_STREAM};
use crate::jsonrpc::{Id, Message};
use crate::observe::{Difference, Direction};
use crate::sse;
use crate::upstream::Via;

/// The router's view of a session's streams.
struct StreamView<'a>(&'a HashMap<StreamNo, OutStream>);

impl Streams for StreamView<'_> {
    fn live(&self, no: StreamNo) -> bool {
        self.0.get(&no).is_some_and(|s| !s.is_finished())
    }

    fn main_has_reader(&self) -> bool {
        self.0[&MAIN_STREAM].has_writer()
    }
}

/// What a queued message leaves to do once the session lock is released.
struct Queued {
    stream: StreamNo,
    seq: Option<u64>,
    stall: Option<Stall>,
    answered: Option<Pending>,
    /// The frame as queued, when the session is mirrored.
    frame: Option<Bytes>,
}

impl Session {
    /// Route one upstream message to a client stream. The future resolves when the producer
    /// may go on: at once, or — while the target stream's connected writer is behind — once
    /// it caught up, went away, or read nothing for `--slow-reader-timeout` (its stream is
    /// then cut). It holds no lock and does not keep the session alive.
    pub(super) fn queue(
        self: &Arc<Self>,
        msg: Message,
        via: Via,
    ) -> impl Future<Output = ()> + 'static {
        let stall = self.push_message(msg, via);
        let session = Arc::downgrade(self);
        let deadline = self.limits.slow_reader_timeout;
        async move {
            let Some((stream, mut stall)) = stall else {
                return;
            };
            loop {
                if tokio::time::timeout(deadline, stall.notify.notified())
                    .await
                    .is_ok()
                {
                    return;
                }
                let Some(s) = session.upgrade() else { return };
                match s.stall_expired(stream, &stall) {
                    StallCheck::Progress(cursor) => stall.cursor = cursor,
                    StallCheck::Stuck | StallCheck::Over => return,
                }
            }
        }
    }

    /// Route and queue one upstream message; the stall to wait on when its stream's writer
    /// is behind. Observers are told after the lock is released.
    pub(super) fn push_message(&self, mut msg: Message, via: Via) -> Option<(StreamNo, Stall)> {
        let mut notes: Vec<Note> = Vec::new();
        let queued = self.push_locked(&mut msg, &via, &mut notes);
        let upstream = self.upstream_label();
        if let Some(q) = &queued {
            self.obs.message(
                &self.labels(upstream),
                Direction::UpstreamToClient,
                &msg,
                Some(q.stream),
                q.seq,
            );
            if let Some(p) = &q.answered {
                self.obs
                    .metrics
                    .latency(self.client.as_str(), &p.method, p.since.elapsed());
            }
            if let (Some(frame), Some(seq)) = (&q.frame, q.seq) {
                let stream = q.stream;
                self.mirrored(|| MirrorEntry::Event {
                    stream,
                    seq,
                    frame: frame.clone(),
                });
                if let Some(p) = &q.answered {
                    self.mirrored(|| MirrorEntry::Answered {
                        stream: p.stream,
                        id: p.id.json().to_owned(),
                    });
                }
            }
            tracing::debug!(parent: &self.span, direction = "upstream_to_client", kind = msg.kind.as_str(),
                method = msg.method().unwrap_or(""), id = msg.id.as_ref().map(Id::json).unwrap_or(""),
                stream = q.stream, bytes = msg.raw().len(), "message");
        }
        for (d, reason) in notes {
            self.emit_difference(d, upstream, msg.method(), msg.id.as_ref(), &reason);
        }
        let process_excess = self.budget.parent().map_or(0, |p| p.excess());
        if process_excess > 0 {
            if let Some(map) = self.registry.upgrade() {
                map.shed(process_excess);
            }
        }
        let q = queued?;
        q.stall.map(|s| (q.stream, s))
    }

    /// Under the lock: route, answer the request a response settles, frame and queue.
    /// The differences noted are counted here and emitted by the caller.
    fn push_locked(&self, msg: &mut Message, via: &Via, notes: &mut Vec<Note>) -> Option<Queued> {
        let mut st = self.lock();
        if st.ended.is_some() {
            return None;
        }
        st.last_activity = Instant::now();
        st.stats.to_client += 1;
        let route = router::route(
            self.client,
            &st.inflight,
            &StreamView(&st.streams),
            msg,
            via,
        );
        let mut answered = None;
        let target = match route {
            Route::Answer { stream } => {
                let id = msg.id.clone().expect("only responses with ids are answers");
                let p = st.inflight.take(&id).expect("the router saw it in flight");
                // Ids match by value; the client still gets its id as it wrote it.
                if p.id.json() != id.json() {
                    notes.push((
                        Difference::IdRestored,
                        format!("upstream answered request id {} as {id}; the client's spelling was put back", p.id),
                    ));
                    *msg = msg.with_id_text(&p.id);
                }
                if &*p.method == "initialize" {
                    st.version = msg.protocol_version();
                }
                // Settling may finish the stream; it still takes this last frame.
                settle(&mut st.streams, &p);
                answered = Some(p);
                stream
            }
            Route::Send { stream, note } => {
                notes.extend(note);
                stream
            }
            Route::Drop(note) => {
                st.stats.differences.add(note.0);
                notes.push(note);
                return None;
            }
        };
        let resumable = self.client.resumable();
        let stream = st
            .streams
            .get_mut(&target)
            .expect("the router returns existing streams");
        // Resumable streams' events carry ids (`<stream>-<seq>`); others none.
        let seq = resumable.then(|| stream.next_seq());
        let mirrored = resumable && self.mirror.get().is_some();
        let mut frame = None;
        let (lost, stall) = stream.push(|seq| {
            let id = resumable.then(|| event_id(target, seq));
            let f = sse::encode(Some("message"), id.as_deref(), msg.raw());
            if mirrored {
                frame = Some(f.clone());
            }
            f
        });
        if lost > 0 {
            notes.push((
                Difference::MessageDropped,
                format!(
                    "replay log of stream {target} full (--replay-events/--replay-bytes) with no reader: {lost} undelivered event(s) evicted"
                ),
            ));
        }
        let excess = self.budget.excess();
        if excess > 0 {
            notes.extend(shed_notes(&shed(&mut st.streams, excess, true)));
        }
        for (d, _) in notes.iter() {
            st.stats.differences.add(*d);
        }
        Some(Queued {
            stream: target,
            seq,
            stall,
            answered,
            frame,
        })
    }

    /// A producer waited `--slow-reader-timeout` for the writer of `stream`. A writer that
    /// read nothing meanwhile is cut: its response ends so that its client resumes with
    /// `Last-Event-ID` (a client whose session is its stream cannot: its session ends).
    fn stall_expired(&self, stream: StreamNo, stall: &Stall) -> StallCheck {
        let check = match self.lock().streams.get(&stream) {
            Some(s) => s.check_stall(stall.epoch, stall.cursor),
            None => StallCheck::Over,
        };
        if check != StallCheck::Stuck {
            return check;
        }
        tracing::warn!(parent: &self.span, stream, timeout = ?self.limits.slow_reader_timeout,
            "client read nothing while events waited; its stream is cut");
        if self.client.session_ends_with_stream() {
            // Before the cut, so that the writer's end is not taken for the client's.
            self.end(EndReason::SlowReader);
        }
        let lost = self
            .lock()
            .streams
            .get_mut(&stream)
            .and_then(|s| s.cut(stall.epoch))
            .unwrap_or(0);
        if lost > 0 {
            self.difference(
                Difference::MessageDropped,
                None,
                &format!("stream {stream} cut for a slow reader; replay log full (--replay-events/--replay-bytes): {lost} undelivered event(s) evicted"),
            );
        }
        check
    }

    /// Free up to `want` bytes for the process budget: with `lossy`, undelivered events of
    /// streams no one reads go too (recorded as dropped). Returns the bytes freed.
    pub fn shed(&self, want: usize, lossy: bool) -> usize {
        let (freed, notes) = {
            let mut st = self.lock();
            let shed = shed(&mut st.streams, want, lossy);
            let notes = shed_notes(&shed);
            for (d, _) in &notes {
                st.stats.differences.add(*d);
            }
            (shed.freed, notes)
        };
        let upstream = self.upstream_label();
        for (d, reason) in notes {
            self.emit_difference(d, upstream, None, None, &reason);
        }
        freed
    }
}

/// A request left the in-flight table: its stream owes one response fewer.
pub(super) fn settle(streams: &mut HashMap<StreamNo, OutStream>, p: &Pending) {
    if let Some(s) = streams.get_mut(&p.stream) {
        s.awaiting = s.awaiting.saturating_sub(1);
        if s.awaiting == 0 && p.stream != MAIN_STREAM {
            s.finish();
        }
    }
}

/// What freeing memory took from a session's streams.
#[derive(Default)]
struct Shed {
    freed: usize,
    /// Undelivered events evicted, per stream.
    dropped: Vec<(StreamNo, usize)>,
}

/// Free `want` bytes from a session's streams, cheapest loss first and oldest stream first:
/// delivered frames of finished streams, then of live ones, then finished streams kept only
/// to recognise a late `Last-Event-ID`, and (with `lossy`) undelivered frames of streams no
/// one reads. A connected writer's undelivered frames are never taken.
fn shed(streams: &mut HashMap<StreamNo, OutStream>, want: usize, lossy: bool) -> Shed {
    let mut out = Shed::default();
    let mut order: Vec<StreamNo> = streams.keys().copied().collect();
    order.sort_unstable();
    for finished_only in [true, false] {
        for no in &order {
            if out.freed >= want {
                return out;
            }
            let s = streams.get_mut(no).expect("listed");
            if s.is_finished() || !finished_only {
                out.freed += s.drop_delivered(want - out.freed);
            }
        }
    }
    for no in &order {
        if out.freed >= want {
            return out;
        }
        let s = &streams[no];
        if *no != MAIN_STREAM && s.is_finished() && !s.has_writer() && !s.holds_frames() {
            streams.remove(no);
            out.freed += stream::STREAM_OVERHEAD;
        }
    }
    if lossy {
        for no in &order {
            if out.freed >= want {
                return out;
            }
            if let Some(s) = streams.get_mut(no) {
                let (freed, dropped) = s.drop_undelivered(want - out.freed);
                out.freed += freed;
                if dropped > 0 {
                    out.dropped.push((*no, dropped));
                }
            }
        }
    }
    out
}

fn shed_notes(shed: &Shed) -> Vec<Note> {
    shed.dropped
        .iter()
        .map(|(no, n)| {
            (
                Difference::MessageDropped,
                format!("replay budget (--replay-session-bytes/--replay-total-bytes) exceeded: {n} undelivered event(s) of stream {no} evicted"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReplayLimits;
    use crate::session::{Budget, Poll};
    use bytes::Bytes;

    fn streams(budget: &Arc<Budget>) -> HashMap<StreamNo, OutStream> {
        let limits = ReplayLimits::default();
        let mut m = HashMap::new();
        for no in 0..3 {
            let mut s = OutStream::new(true, 1, limits, budget.clone());
            s.attach(no + 1, None);
            for _ in 0..2 {
                let _ = s.push(|_| Bytes::from(vec![b'x'; 100]));
            }
            m.insert(no, s);
        }
        m
    }

    fn deliver_one(s: &mut OutStream, epoch: u64) {
        assert!(matches!(
            s.poll(epoch, futures_util::task::noop_waker_ref()),
            Poll::Frame(_)
        ));
    }

    #[test]
    fn shedding_takes_what_no_client_misses_first() {
        let budget = Budget::process(usize::MAX);
        let mut m = streams(&budget);
        // Stream 1: one frame delivered, still live. Stream 2: one delivered, then finished
        // and left by its writer mid-way. Stream 0: connected, nothing read.
        deliver_one(m.get_mut(&1).unwrap(), 2);
        deliver_one(m.get_mut(&2).unwrap(), 3);
        m.get_mut(&2).unwrap().detach(3);
        m.get_mut(&2).unwrap().finish();
        let shed1 = shed(&mut m, 100, true);
        assert_eq!((shed1.freed, shed1.dropped.len()), (100, 0));
        assert_eq!(
            m[&2].buffered_bytes(),
            100,
            "the finished stream's delivered frame"
        );
        let shed2 = shed(&mut m, 100, true);
        assert_eq!((shed2.freed, shed2.dropped.len()), (100, 0));
        assert_eq!(
            m[&1].buffered_bytes(),
            100,
            "then a live stream's delivered frame"
        );
        // Now only undelivered frames: those of the stream no one reads go, recorded.
        let shed3 = shed(&mut m, 1000, true);
        assert_eq!(shed3.dropped, vec![(2, 1)]);
        assert_eq!(
            m[&0].buffered_bytes(),
            200,
            "a connected reader's frames stay"
        );
        assert_eq!(m[&1].buffered_bytes(), 100);
    }

    #[test]
    fn without_loss_only_delivered_frames_and_empty_finished_streams_go() {
        let budget = Budget::process(usize::MAX);
        let mut m = streams(&budget);
        let s = m.get_mut(&2).unwrap();
        s.finish();
        deliver_one(s, 3);
        deliver_one(s, 3);
        assert!(matches!(
            s.poll(3, futures_util::task::noop_waker_ref()),
            Poll::End
        ));
        s.detach(3);
        let before = budget.used();
        let out = shed(&mut m, usize::MAX, false);
        assert!(out.dropped.is_empty());
        assert!(!m.contains_key(&2), "a finished, fully read stream goes");
        assert_eq!(budget.used(), before - out.freed);
        assert_eq!(m[&0].buffered_bytes() + m[&1].buffered_bytes(), 400);
    }
}
