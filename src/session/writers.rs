//! The writer side of a session's streams: the SSE response bodies that read them. A writer
//! holds a [`WriterSlot`]; a later writer of the same stream (a resumption) takes it over.

use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;

use super::stream::OutStream;
use super::{event_id, parse_event_id, EndReason, Poll, Session, StreamNo, MAIN_STREAM};
use crate::observe::Difference;
use crate::sse;

/// First revision whose clients expect a priming event on every SSE stream.
const PRIMING_SINCE: &str = "2025-11-25";

/// A writer's claim on one stream: what an SSE response body holds.
pub struct WriterSlot {
    pub stream: StreamNo,
    pub epoch: u64,
}

impl Session {
    /// Open a stream for a POST that carries `requests` requests (Streamable front).
    pub fn open_request_stream(&self, requests: usize) -> WriterSlot {
        let mut st = self.lock();
        let no = st.next_stream;
        st.next_stream += 1;
        let mut s = OutStream::new(true, requests, self.limits, self.budget.clone());
        if st.version.as_deref().is_some_and(|v| v >= PRIMING_SINCE) {
            s.push_priming(sse::priming(&event_id(no, 0)));
        }
        st.streams.insert(no, s);
        let epoch = st.next_epoch;
        st.next_epoch += 1;
        st.streams
            .get_mut(&no)
            .expect("inserted")
            .attach(epoch, None);
        WriterSlot { stream: no, epoch }
    }

    /// Attach a writer to the main stream: the legacy GET, or a Streamable GET without
    /// `Last-Event-ID` (it gets whatever was buffered for it).
    pub fn attach_main(&self) -> WriterSlot {
        let mut st = self.lock();
        let epoch = st.next_epoch;
        st.next_epoch += 1;
        let prime =
            self.client.resumable() && st.version.as_deref().is_some_and(|v| v >= PRIMING_SINCE);
        let main = st
            .streams
            .get_mut(&MAIN_STREAM)
            .expect("main stream exists");
        // Prime only a stream that has never carried anything: messages already buffered
        // for it carry ids of their own.
        if prime && main.is_pristine() {
            main.push_priming(sse::priming(&event_id(MAIN_STREAM, 0)));
        }
        main.attach(epoch, None);
        WriterSlot {
            stream: MAIN_STREAM,
            epoch,
        }
    }

    /// Attach a writer after `last_event_id` (`<stream>-<seq>`). `None`: not an id of this
    /// session's live streams.
    pub fn resume(&self, last_event_id: &str) -> Option<WriterSlot> {
        let (no, seq) = parse_event_id(last_event_id)?;
        let (epoch, resumed) = {
            let mut st = self.lock();
            let epoch = st.next_epoch;
            st.next_epoch += 1;
            let stream = st.streams.get_mut(&no)?;
            if !stream.knows_seq(seq) {
                return None;
            }
            let resumed = stream.attach(epoch, Some(seq));
            st.last_activity = Instant::now();
            (epoch, resumed)
        };
        self.difference(
            Difference::EventsReplayed,
            None,
            &format!(
                "client resumed stream {no} after event {last_event_id}: {} event(s) sent again",
                resumed.replayed
            ),
        );
        if resumed.lost > 0 {
            self.difference(
                Difference::MessageDropped,
                None,
                &format!(
                    "client resumed stream {no} after event {last_event_id}, but {} later event(s) had left the replay log (--replay-events/--replay-bytes/--replay-age)",
                    resumed.lost
                ),
            );
        }
        Some(WriterSlot { stream: no, epoch })
    }

    pub fn poll_writer(&self, slot: &WriterSlot, waker: &Waker) -> Poll {
        let mut st = self.lock();
        match st.streams.get_mut(&slot.stream) {
            Some(s) => s.poll(slot.epoch, waker),
            None => Poll::End,
        }
    }

    /// The client's connection for this writer is gone. When the client's session is its
    /// stream (legacy), that ends the session; otherwise the stream stays for replay.
    pub fn detach_writer(&self, slot: &WriterSlot) {
        let end = {
            let mut st = self.lock();
            if let Some(s) = st.streams.get_mut(&slot.stream) {
                s.detach(slot.epoch);
            }
            st.last_activity = Instant::now();
            self.client.session_ends_with_stream()
                && slot.stream == MAIN_STREAM
                && st.ended.is_none()
        };
        if end {
            self.end(EndReason::ClientClosed);
        }
    }

    /// The POST that opened this request stream failed as a whole (HTTP error): its client
    /// will not read or resume it, so it finishes now and can expire like any other.
    pub fn abandon_stream(&self, slot: &WriterSlot) {
        let mut st = self.lock();
        if let Some(s) = st.streams.get_mut(&slot.stream) {
            s.detach(slot.epoch);
            s.finish();
        }
    }

    /// Push a raw frame (the legacy `endpoint` event) onto the main stream.
    pub fn push_main_frame(&self, frame: Bytes) {
        let mut st = self.lock();
        let main = st
            .streams
            .get_mut(&MAIN_STREAM)
            .expect("main stream exists");
        let _ = main.push(|_| frame);
    }
}
