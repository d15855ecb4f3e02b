//! One client-facing event stream: an ordered log of encoded SSE frames, read by at most one
//! HTTP response at a time ("the writer"). The same structure serves the legacy stream (no
//! replay: frames go once written) and every Streamable stream (frames stay, bounded, for
//! `Last-Event-ID` replay).
//!
//! Memory: every stored byte (and a fixed charge per stream) is charged to the session's
//! [`Budget`]. A stream whose writer sent everything of a finished stream drops its frames at
//! once (that response ended normally: no one will resume it); only the seq counter stays to
//! validate a late `Last-Event-ID`.
//!
//! Full-log policy: while a writer is attached and half the per-stream event or byte limit is
//! undelivered, the producer (the upstream reader) is handed a [`Stall`] to wait on —
//! backpressure reaches the upstream over TCP — and nothing undelivered is ever evicted. With
//! no writer attached nothing blocks: the oldest frames are evicted beyond the limits, and an
//! evicted frame that was never delivered is reported as dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use super::budget::Budget;
use crate::config::ReplayLimits;

pub type StreamNo = u64;

/// The standalone stream of a Streamable session (the GET), and the only stream of a legacy one.
pub const MAIN_STREAM: StreamNo = 0;

/// What a stream costs besides its frames (the struct and its map slot), charged so that the
/// budgets bound the number of finished streams kept for `Last-Event-ID` validation too.
pub const STREAM_OVERHEAD: usize = 256;

struct Frame {
    seq: u64,
    bytes: Bytes,
}

pub struct OutStream {
    frames: VecDeque<Frame>,
    next_seq: u64,
    /// Next seq the (current or next) writer sends.
    cursor: u64,
    bytes: usize,
    /// Epoch of the attached writer; a newer writer replaces an older one.
    writer: Option<u64>,
    writer_waker: Option<Waker>,
    /// Responses still due on this stream; when it reaches zero the stream finishes.
    pub awaiting: usize,
    finished_at: Option<Instant>,
    replayable: bool,
    producer: Arc<Notify>,
    producer_waiting: bool,
    /// Last time a writer was attached or detached, or a frame was written.
    pub touched: Instant,
    limits: ReplayLimits,
    budget: Arc<Budget>,
}

/// What a writer gets when it polls.
pub enum Poll {
    Frame(Bytes),
    /// Nothing now; the waker is registered.
    Wait,
    /// No more frames will come (finished, or this writer was replaced or cut).
    End,
}

/// What a resuming writer gets: frames sent again, and frames after its cursor that are gone.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Resumed {
    pub replayed: usize,
    pub lost: usize,
}

/// The producer must wait for the writer `epoch`, which had read up to `cursor`.
pub struct Stall {
    pub notify: Arc<Notify>,
    pub epoch: u64,
    pub cursor: u64,
}

/// What became of a stall once its deadline passed.
#[derive(Debug, PartialEq, Eq)]
pub enum StallCheck {
    /// The writer read something since: wait again from this cursor.
    Progress(u64),
    /// The writer read nothing: it is too slow.
    Stuck,
    /// The writer is gone or the stream finished: no reason to wait.
    Over,
}

impl OutStream {
    pub fn new(
        replayable: bool,
        awaiting: usize,
        limits: ReplayLimits,
        budget: Arc<Budget>,
    ) -> OutStream {
        budget.charge(STREAM_OVERHEAD);
        OutStream {
            frames: VecDeque::new(),
            // seq 0 is reserved for a priming event; messages start at 1.
            next_seq: 1,
            cursor: 0,
            bytes: 0,
            writer: None,
            writer_waker: None,
            awaiting,
            finished_at: None,
            replayable,
            producer: Arc::new(Notify::new()),
            producer_waiting: false,
            touched: Instant::now(),
            limits,
            budget,
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn has_writer(&self) -> bool {
        self.writer.is_some()
    }

    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }

    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at
    }

    /// Nothing was ever queued or written on this stream (a priming event may still lead it).
    pub fn is_pristine(&self) -> bool {
        self.frames.is_empty() && self.next_seq == 1 && self.cursor == 0
    }

    /// Append a frame made by `encode(seq)`. Returns how many undelivered frames were evicted
    /// to stay within the stream's limits, and, when the producer must wait for the writer,
    /// the stall to wait on.
    pub fn push(&mut self, encode: impl FnOnce(u64) -> Bytes) -> (usize, Option<Stall>) {
        let seq = self.next_seq;
        self.store(Frame {
            seq,
            bytes: encode(seq),
        });
        self.next_seq = seq + 1;
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
        let dropped = self.evict();
        // Block at half the limits so that several producers waiting at once stay within them.
        let (events, bytes) = self.undelivered();
        let behind = events >= (self.limits.events / 2).max(1) || bytes >= self.limits.bytes / 2;
        let stall = match self.writer {
            Some(epoch) if behind => {
                self.producer_waiting = true;
                Some(Stall {
                    notify: self.producer.clone(),
                    epoch,
                    cursor: self.cursor,
                })
            }
            _ => None,
        };
        (dropped, stall)
    }

    /// A frame another replica queued as `seq` (a restored stream: seqs only grow).
    pub fn restore_frame(&mut self, seq: u64, bytes: Bytes) {
        if seq >= self.next_seq || (seq == 0 && self.frames.is_empty()) {
            self.store(Frame { seq, bytes });
            self.next_seq = seq + 1;
        }
    }

    /// The priming event: seq 0, before any message.
    pub fn push_priming(&mut self, bytes: Bytes) {
        debug_assert!(self.frames.is_empty() && self.next_seq == 1);
        self.store(Frame { seq: 0, bytes });
    }

    fn store(&mut self, f: Frame) {
        self.bytes += f.bytes.len();
        self.budget.charge(f.bytes.len());
        self.frames.push_back(f);
    }

    fn pop_oldest(&mut self) -> Option<Frame> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.bytes.len();
        self.budget.release(f.bytes.len());
        Some(f)
    }

    fn oldest_is_delivered(&self) -> bool {
        self.frames.front().is_some_and(|f| f.seq < self.cursor)
    }

    /// Undelivered frames: (count, bytes).
    fn undelivered(&self) -> (usize, usize) {
        self.frames
            .iter()
            .rev()
            .take_while(|f| f.seq >= self.cursor)
            .fold((0, 0), |(n, b), f| (n + 1, b + f.bytes.len()))
    }

    /// Evict the oldest frames beyond the per-stream limits; returns how many of them were
    /// undelivered. A connected writer's undelivered frames are never evicted (its producer
    /// waits instead).
    fn evict(&mut self) -> usize {
        let mut dropped = 0;
        while self.frames.len() > self.limits.events || self.bytes > self.limits.bytes {
            let delivered = self.oldest_is_delivered();
            // Keep the newest frame whatever its size: it is the one being delivered.
            if self.frames.len() <= 1 || (!delivered && self.writer.is_some()) {
                break;
            }
            let f = self.pop_oldest().expect("non-empty");
            if !delivered {
                self.cursor = f.seq + 1;
                dropped += 1;
            }
        }
        dropped
    }

    /// Drop delivered frames, oldest first, until `want` bytes are freed; returns the bytes
    /// freed. (A client that resumes before them learns they are gone.)
    pub fn drop_delivered(&mut self, want: usize) -> usize {
        let mut freed = 0;
        while freed < want && self.oldest_is_delivered() {
            freed += self.pop_oldest().expect("checked").bytes.len();
        }
        self.compact();
        freed
    }

    /// With no writer attached, drop undelivered frames, oldest first, until `want` bytes are
    /// freed; returns (bytes freed, frames dropped).
    pub fn drop_undelivered(&mut self, want: usize) -> (usize, usize) {
        let (mut freed, mut dropped) = (self.drop_delivered(want), 0);
        while freed < want && self.writer.is_none() {
            let Some(f) = self.pop_oldest() else { break };
            self.cursor = f.seq + 1;
            freed += f.bytes.len();
            dropped += 1;
        }
        self.compact();
        (freed, dropped)
    }

    /// Give back the queue's spare capacity once it is empty.
    fn compact(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
    }

    pub fn holds_frames(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Attach a writer. `resume_after` is the seq of the client's `Last-Event-ID`; `None`
    /// continues from the first undelivered frame.
    pub fn attach(&mut self, epoch: u64, resume_after: Option<u64>) -> Resumed {
        let mut resumed = Resumed::default();
        if let Some(after) = resume_after {
            let oldest = self.frames.front().map(|f| f.seq).unwrap_or(self.next_seq);
            let from = (after + 1).max(oldest).min(self.next_seq);
            resumed.replayed = self.cursor.saturating_sub(from) as usize;
            // Frames after the client's id that the log no longer holds (evicted or pruned).
            resumed.lost = from.saturating_sub(after + 1) as usize;
            self.cursor = from;
        }
        self.writer = Some(epoch);
        if let Some(w) = self.writer_waker.take() {
            w.wake(); // an older writer: it will see it was replaced
        }
        self.touched = Instant::now();
        resumed
    }

    pub fn detach(&mut self, epoch: u64) {
        if self.writer == Some(epoch) {
            self.writer = None;
            self.writer_waker = None;
            self.touched = Instant::now();
            self.release_producer();
        }
    }

    /// End writer `epoch`'s response (it read nothing for too long) so that its client
    /// resumes; from now on the no-writer policy applies. Returns the undelivered frames
    /// evicted by that policy, `None` when `epoch` is not the writer any more.
    pub fn cut(&mut self, epoch: u64) -> Option<usize> {
        if self.writer != Some(epoch) {
            return None;
        }
        self.writer = None;
        if let Some(w) = self.writer_waker.take() {
            w.wake(); // it polls, sees it is not the writer, and ends its response
        }
        self.touched = Instant::now();
        self.release_producer();
        Some(self.evict())
    }

    /// Whether writer `epoch`, which had read up to `cursor` when its producer began to
    /// wait, still holds the producer up.
    pub fn check_stall(&self, epoch: u64, cursor: u64) -> StallCheck {
        if self.writer != Some(epoch) || self.is_finished() {
            StallCheck::Over
        } else if self.cursor > cursor {
            StallCheck::Progress(self.cursor)
        } else {
            StallCheck::Stuck
        }
    }

    /// The stream will get no more frames; its writer ends once it has sent everything.
    pub fn finish(&mut self) {
        if self.finished_at.is_none() {
            self.finished_at = Some(Instant::now());
        }
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
        self.release_producer();
    }

    fn release_producer(&mut self) {
        if self.producer_waiting {
            self.producer_waiting = false;
            // Wake every waiting producer, and leave a permit for one that is about to wait.
            self.producer.notify_waiters();
            self.producer.notify_one();
        }
    }

    pub fn poll(&mut self, epoch: u64, waker: &Waker) -> Poll {
        if self.writer != Some(epoch) {
            return Poll::End;
        }
        let oldest = self.frames.front().map(|f| f.seq).unwrap_or(self.next_seq);
        if self.cursor < oldest {
            self.cursor = oldest;
        }
        if self.cursor < self.next_seq {
            let idx = (self.cursor - oldest) as usize;
            let bytes = self.frames[idx].bytes.clone();
            self.cursor = self.frames[idx].seq + 1;
            self.touched = Instant::now();
            if !self.replayable {
                // Legacy streams have no replay: written frames go at once.
                while self.oldest_is_delivered() {
                    self.pop_oldest();
                }
            }
            if self.producer_waiting {
                // Wake the producer once the backlog is well below the high-water mark
                // rather than per frame.
                let (events, bytes) = self.undelivered();
                if events <= self.limits.events / 4 && bytes <= self.limits.bytes / 4 {
                    self.release_producer();
                }
            }
            return Poll::Frame(bytes);
        }
        if self.finished_at.is_some() {
            // Everything was written and the response ends normally: no one will resume it,
            // so its frames go now (the seq counter stays to validate a late id).
            self.drop_delivered(usize::MAX);
            return Poll::End;
        }
        self.writer_waker = Some(waker.clone());
        if self.producer_waiting {
            self.release_producer();
        }
        Poll::Wait
    }

    /// Whether the seq exists or existed on this stream (for validating `Last-Event-ID`).
    pub fn knows_seq(&self, seq: u64) -> bool {
        seq < self.next_seq
    }

    /// Drop the frames already written, beyond what replay needs (used by the reaper).
    pub fn prune_written_older_than(&mut self, now: Instant) {
        if self
            .finished_at
            .is_some_and(|t| now.duration_since(t) > self.limits.age)
        {
            self.drop_delivered(usize::MAX);
        }
    }

    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for OutStream {
    fn drop(&mut self) {
        self.budget.release(self.bytes + STREAM_OVERHEAD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;
    use std::time::Duration;

    fn limits(events: usize) -> ReplayLimits {
        ReplayLimits {
            events,
            bytes: 1 << 20,
            ..ReplayLimits::default()
        }
    }

    fn stream(replayable: bool, awaiting: usize, events: usize) -> OutStream {
        OutStream::new(
            replayable,
            awaiting,
            limits(events),
            Budget::process(usize::MAX),
        )
    }

    fn frame(s: &str) -> impl FnOnce(u64) -> Bytes + '_ {
        move |seq| Bytes::from(format!("{seq}:{s}"))
    }

    fn drain(s: &mut OutStream, epoch: u64) -> Vec<String> {
        let w = noop_waker();
        let mut out = vec![];
        while let Poll::Frame(b) = s.poll(epoch, &w) {
            out.push(String::from_utf8(b.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn writer_gets_frames_in_order_then_end_when_finished() {
        let mut s = stream(true, 1, 10);
        s.attach(1, None);
        s.push(frame("a"));
        s.push(frame("b"));
        assert_eq!(drain(&mut s, 1), ["1:a", "2:b"]);
        s.finish();
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
    }

    #[test]
    fn resume_replays_exactly_what_follows_the_cursor() {
        let mut s = stream(true, 1, 10);
        s.attach(1, None);
        for x in ["a", "b", "c"] {
            s.push(frame(x));
        }
        assert_eq!(drain(&mut s, 1).len(), 3);
        s.detach(1);
        s.push(frame("d"));
        let resumed = s.attach(2, Some(1));
        assert_eq!(
            resumed,
            Resumed {
                replayed: 2,
                lost: 0
            }
        );
        assert_eq!(drain(&mut s, 2), ["2:b", "3:c", "4:d"]);
    }

    #[test]
    fn resume_from_before_the_log_reports_what_is_gone() {
        let mut s = stream(true, 0, 2);
        for x in ["a", "b", "c", "d"] {
            s.push(frame(x));
        }
        // The log holds 3 and 4; a client that saw only 1 lost 2.
        let resumed = s.attach(1, Some(1));
        assert_eq!(resumed.lost, 1);
        assert_eq!(drain(&mut s, 1), ["3:c", "4:d"]);
    }

    #[test]
    fn only_an_untouched_stream_is_pristine() {
        let mut s = stream(true, 0, 2);
        assert!(s.is_pristine());
        s.push_priming(Bytes::from_static(b"prime"));
        assert!(!s.is_pristine());
        let mut t = stream(true, 0, 2);
        t.push(frame("a"));
        assert!(!t.is_pristine());
    }

    #[test]
    fn newer_writer_replaces_older() {
        let mut s = stream(true, 0, 2);
        s.attach(1, None);
        s.attach(2, None);
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
        assert!(matches!(s.poll(2, &noop_waker()), Poll::Wait));
    }

    #[test]
    fn without_writer_old_frames_are_evicted_and_reported() {
        let mut s = stream(true, 0, 2);
        let mut dropped = 0;
        for x in ["a", "b", "c"] {
            let (lost, wait) = s.push(frame(x));
            assert!(wait.is_none(), "no writer: never block");
            dropped += lost;
        }
        assert_eq!(dropped, 1);
        s.attach(1, None);
        assert_eq!(drain(&mut s, 1), ["2:b", "3:c"]);
    }

    #[test]
    fn with_writer_producer_is_asked_to_wait() {
        let mut s = stream(true, 0, 4);
        s.attach(1, None);
        let (_, w1) = s.push(frame("a"));
        assert!(w1.is_none());
        let (_, w2) = s.push(frame("b"));
        assert!(w2.is_some());
    }

    #[test]
    fn producer_waits_on_bytes_as_well_as_events() {
        let mut s = OutStream::new(
            true,
            0,
            ReplayLimits {
                events: 1000,
                bytes: 100,
                ..ReplayLimits::default()
            },
            Budget::process(usize::MAX),
        );
        s.attach(1, None);
        let (_, wait) = s.push(|_| Bytes::from(vec![b'x'; 60]));
        assert!(wait.is_some(), "60 of 100 bytes undelivered");
    }

    #[test]
    fn a_connected_writer_loses_nothing_beyond_the_limits() {
        let mut s = stream(true, 0, 2);
        s.attach(1, None);
        for x in ["a", "b", "c", "d"] {
            let (lost, _) = s.push(frame(x));
            assert_eq!(lost, 0);
        }
        assert_eq!(drain(&mut s, 1), ["1:a", "2:b", "3:c", "4:d"]);
    }

    #[test]
    fn a_cut_writer_ends_and_the_no_writer_policy_applies() {
        let mut s = stream(true, 0, 2);
        s.attach(1, None);
        for x in ["a", "b", "c", "d"] {
            s.push(frame(x));
        }
        assert_eq!(s.check_stall(1, 0), StallCheck::Stuck);
        assert_eq!(s.cut(1), Some(2), "beyond 2 events, 2 undelivered go");
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
        assert_eq!(s.check_stall(1, 0), StallCheck::Over);
        let resumed = s.attach(2, Some(0));
        assert_eq!(resumed.lost, 2);
        assert_eq!(drain(&mut s, 2), ["3:c", "4:d"]);
    }

    #[test]
    fn a_reader_that_reads_makes_progress() {
        let mut s = stream(true, 0, 10);
        s.attach(1, None);
        s.push(frame("a"));
        s.push(frame("b"));
        s.poll(1, &noop_waker());
        assert_eq!(s.check_stall(1, 1), StallCheck::Progress(2));
    }

    #[test]
    fn a_fully_written_finished_stream_keeps_no_frames() {
        let budget = Budget::process(usize::MAX);
        let mut s = OutStream::new(true, 1, limits(10), budget.clone());
        s.attach(1, None);
        s.push(frame("a"));
        s.finish();
        assert_eq!(drain(&mut s, 1), ["1:a"]);
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(budget.used(), STREAM_OVERHEAD);
        assert!(s.knows_seq(1), "a late Last-Event-ID is still recognised");
        drop(s);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_stream_left_mid_way_keeps_its_frames_for_replay() {
        let mut s = stream(true, 1, 10);
        s.attach(1, None);
        s.push(frame("a"));
        drain(&mut s, 1);
        s.detach(1);
        s.finish();
        assert!(s.buffered_bytes() > 0);
        assert_eq!(s.drop_delivered(usize::MAX), "1:a".len());
    }

    #[test]
    fn undelivered_frames_go_only_without_a_writer() {
        let mut s = stream(true, 0, 10);
        s.attach(1, None);
        s.push(frame("a"));
        assert_eq!(s.drop_undelivered(usize::MAX), (0, 0));
        s.detach(1);
        assert_eq!(s.drop_undelivered(usize::MAX), (3, 1));
        assert_eq!(s.buffered_bytes(), 0);
    }

    #[test]
    fn legacy_stream_forgets_written_frames() {
        let mut s = stream(false, 0, 10);
        s.attach(1, None);
        s.push(frame("a"));
        drain(&mut s, 1);
        assert_eq!(s.buffered_bytes(), 0);
    }

    #[test]
    fn reaper_prunes_written_frames_after_the_age() {
        let mut s = stream(true, 1, 10);
        s.attach(1, None);
        s.push(frame("a"));
        drain(&mut s, 1);
        s.detach(1);
        s.finish();
        s.prune_written_older_than(Instant::now() + Duration::from_secs(3600));
        assert_eq!(s.buffered_bytes(), 0);
    }
}
