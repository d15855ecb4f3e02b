//! One client-facing event stream: an ordered log of encoded SSE frames, read by at most one
//! HTTP response at a time ("the writer"). The same structure serves the legacy stream (no
//! replay: frames go once written) and every Streamable stream (frames stay, bounded, for
//! `Last-Event-ID` replay).
//!
//! Full-log policy: while a writer is attached and `high_water` frames are undelivered, the
//! producer (the upstream reader) waits — backpressure reaches the upstream over TCP. With no
//! writer attached nothing blocks: the oldest frames are evicted beyond the limits, and an
//! evicted frame that was never delivered is reported as dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::ReplayLimits;

pub type StreamNo = u64;

/// The standalone stream of a Streamable session (the GET), and the only stream of a legacy one.
pub const MAIN_STREAM: StreamNo = 0;

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
}

/// What a writer gets when it polls.
pub enum Poll {
    Frame(Bytes),
    /// Nothing now; the waker is registered.
    Wait,
    /// No more frames will come (finished, or this writer was replaced).
    End,
}

/// What a resuming writer gets: frames sent again, and frames after its cursor that are gone.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Resumed {
    pub replayed: usize,
    pub lost: usize,
}

/// A frame that could not be kept.
pub struct Evicted {
    pub undelivered: bool,
}

impl OutStream {
    pub fn new(replayable: bool, awaiting: usize) -> OutStream {
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

    /// Append a frame made by `encode(seq)`. Returns frames evicted to stay within limits, and,
    /// when the producer must wait for the writer, the `Notify` to wait on.
    pub fn push(
        &mut self,
        encode: impl FnOnce(u64) -> Bytes,
        limits: &ReplayLimits,
    ) -> (Vec<Evicted>, Option<Arc<Notify>>) {
        let seq = self.next_seq;
        self.push_at(seq, encode(seq));
        let evicted = self.evict(limits);
        // Block at half the log so that several producers waiting at once never evict
        // undelivered frames from under a live writer.
        let high_water = (limits.events / 2).max(1);
        let wait = (self.writer.is_some() && self.undelivered() >= high_water).then(|| {
            self.producer_waiting = true;
            self.producer.clone()
        });
        (evicted, wait)
    }

    /// The priming event: seq 0, before any message.
    pub fn push_priming(&mut self, bytes: Bytes) {
        debug_assert!(self.frames.is_empty() && self.next_seq == 1);
        self.frames.push_back(Frame { seq: 0, bytes });
    }

    fn push_at(&mut self, seq: u64, bytes: Bytes) {
        self.bytes += bytes.len();
        self.frames.push_back(Frame { seq, bytes });
        self.next_seq = seq + 1;
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }

    fn undelivered(&self) -> usize {
        self.frames
            .iter()
            .rev()
            .take_while(|f| f.seq >= self.cursor)
            .count()
    }

    fn evict(&mut self, limits: &ReplayLimits) -> Vec<Evicted> {
        let mut out = Vec::new();
        while self.frames.len() > limits.events || self.bytes > limits.bytes {
            // Keep the newest frame whatever its size: it is the one being delivered.
            if self.frames.len() <= 1 {
                break;
            }
            let f = self.frames.pop_front().expect("non-empty");
            self.bytes -= f.bytes.len();
            let undelivered = f.seq >= self.cursor;
            if undelivered {
                self.cursor = f.seq + 1;
            }
            out.push(Evicted { undelivered });
        }
        out
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
                while self.frames.front().is_some_and(|f| f.seq < self.cursor) {
                    let f = self.frames.pop_front().expect("checked");
                    self.bytes -= f.bytes.len();
                }
            }
            if self.producer_waiting && self.undelivered() < self.high_water_low() {
                self.release_producer();
            }
            return Poll::Frame(bytes);
        }
        if self.finished_at.is_some() {
            return Poll::End;
        }
        self.writer_waker = Some(waker.clone());
        if self.producer_waiting {
            self.release_producer();
        }
        Poll::Wait
    }

    fn high_water_low(&self) -> usize {
        // Wake the producer once the backlog is half gone rather than per frame.
        (self.frames.len() / 2).max(1)
    }

    /// Whether the seq exists or existed on this stream (for validating `Last-Event-ID`).
    pub fn knows_seq(&self, seq: u64) -> bool {
        seq < self.next_seq
    }

    /// Drop the frames already written, beyond what replay needs (used by the reaper).
    pub fn prune_written_older_than(&mut self, limits: &ReplayLimits, now: Instant) {
        if self
            .finished_at
            .is_some_and(|t| now.duration_since(t) > limits.age)
        {
            while self.frames.front().is_some_and(|f| f.seq < self.cursor) {
                let f = self.frames.pop_front().expect("checked");
                self.bytes -= f.bytes.len();
            }
        }
    }

    pub fn buffered_bytes(&self) -> usize {
        self.bytes
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
            age: Duration::from_secs(60),
        }
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
        let mut s = OutStream::new(true, 1);
        s.attach(1, None);
        s.push(frame("a"), &limits(10));
        s.push(frame("b"), &limits(10));
        assert_eq!(drain(&mut s, 1), ["1:a", "2:b"]);
        s.finish();
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
    }

    #[test]
    fn resume_replays_exactly_what_follows_the_cursor() {
        let mut s = OutStream::new(true, 1);
        s.attach(1, None);
        for x in ["a", "b", "c"] {
            s.push(frame(x), &limits(10));
        }
        assert_eq!(drain(&mut s, 1).len(), 3);
        s.detach(1);
        s.push(frame("d"), &limits(10));
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
        let mut s = OutStream::new(true, 0);
        for x in ["a", "b", "c", "d"] {
            s.push(frame(x), &limits(2));
        }
        // The log holds 3 and 4; a client that saw only 1 lost 2.
        let resumed = s.attach(1, Some(1));
        assert_eq!(resumed.lost, 1);
        assert_eq!(drain(&mut s, 1), ["3:c", "4:d"]);
    }

    #[test]
    fn only_an_untouched_stream_is_pristine() {
        let mut s = OutStream::new(true, 0);
        assert!(s.is_pristine());
        s.push_priming(Bytes::from_static(b"prime"));
        assert!(!s.is_pristine());
        let mut t = OutStream::new(true, 0);
        t.push(frame("a"), &limits(2));
        assert!(!t.is_pristine());
    }

    #[test]
    fn newer_writer_replaces_older() {
        let mut s = OutStream::new(true, 0);
        s.attach(1, None);
        s.attach(2, None);
        assert!(matches!(s.poll(1, &noop_waker()), Poll::End));
        assert!(matches!(s.poll(2, &noop_waker()), Poll::Wait));
    }

    #[test]
    fn without_writer_old_frames_are_evicted_and_reported() {
        let mut s = OutStream::new(true, 0);
        let mut dropped = 0;
        for x in ["a", "b", "c"] {
            let (ev, wait) = s.push(frame(x), &limits(2));
            assert!(wait.is_none(), "no writer: never block");
            dropped += ev.iter().filter(|e| e.undelivered).count();
        }
        assert_eq!(dropped, 1);
        s.attach(1, None);
        assert_eq!(drain(&mut s, 1), ["2:b", "3:c"]);
    }

    #[test]
    fn with_writer_producer_is_asked_to_wait() {
        let mut s = OutStream::new(true, 0);
        s.attach(1, None);
        let (_, w1) = s.push(frame("a"), &limits(4));
        assert!(w1.is_none());
        let (_, w2) = s.push(frame("b"), &limits(4));
        assert!(w2.is_some());
    }

    #[test]
    fn legacy_stream_forgets_written_frames() {
        let mut s = OutStream::new(false, 0);
        s.attach(1, None);
        s.push(frame("a"), &limits(10));
        drain(&mut s, 1);
        assert_eq!(s.buffered_bytes(), 0);
    }
}
