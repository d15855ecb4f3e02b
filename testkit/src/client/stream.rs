//! An SSE response being read: awc body + the testkit's own parser.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;

use crate::sse::{SseEvent, SseItem, SseParser};

/// An open SSE response. Drop it to close the connection mid-stream.
pub struct SseStream {
    resp: awc::ClientResponse,
    parser: SseParser,
    ready: VecDeque<SseItem>,
    scratch: Vec<SseItem>,
    ended: bool,
    error: Option<String>,
}

impl SseStream {
    pub(crate) fn new(resp: awc::ClientResponse) -> Self {
        SseStream {
            resp,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            ended: false,
            error: None,
        }
    }

    /// The next item of any kind (event, undispatched block, comment); `None` on timeout or
    /// end of stream (tell them apart with [`SseStream::is_closed`]).
    pub async fn next_item(&mut self, timeout: Duration) -> Option<SseItem> {
        tokio::time::timeout(timeout, self.next_item_inner())
            .await
            .ok()
            .flatten()
    }

    /// The next dispatched event (comments and empty-data blocks are skipped, though their
    /// `id` still updates [`SseStream::last_event_id`]); `None` on timeout or end of stream.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let wait = async {
            loop {
                match self.next_item_inner().await? {
                    SseItem::Event(e) => return Some(e),
                    SseItem::Undispatched(_) | SseItem::Comment(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Reads until the stream ends (or `timeout` passes) and returns every item.
    pub async fn collect_items(&mut self, timeout: Duration) -> Vec<SseItem> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.next_item_inner()).await {
            out.push(item);
        }
        out
    }

    // Cancel-safe: awc's `next()` loses nothing when dropped, and parsed items are queued.
    async fn next_item_inner(&mut self) -> Option<SseItem> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            match self.resp.next().await {
                Some(Ok(chunk)) => {
                    self.parser.push(&chunk, &mut self.scratch);
                    self.ready.extend(self.scratch.drain(..));
                }
                Some(Err(e)) => {
                    self.error = Some(e.to_string());
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }

    /// Reads the rest of the body in the background (up to `timeout`) and discards it. awc
    /// returns a connection to its pool only once the body was read to the end, so a caller
    /// done with a stream the server is about to close calls this instead of dropping it: the
    /// next request then reuses the connection instead of opening a new one.
    pub fn finish_in_background(mut self, timeout: Duration) {
        use futures_util::FutureExt;
        // Usually the final chunk is already buffered: no task needed.
        while let Some(Some(_)) = self.next_item_inner().now_or_never() {}
        if !self.ended {
            actix_rt::spawn(async move {
                let _ = self.collect_items(timeout).await;
            });
        }
    }

    /// The stream's cursor: the last `id` seen (priming events included).
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }

    /// The last `retry` seen, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    /// The body ended (cleanly or not) and every item was read.
    pub fn is_closed(&self) -> bool {
        self.ended && self.ready.is_empty()
    }

    /// Why the body ended abnormally, when awc reports it. Note: awc reports a chunked body
    /// cut at a chunk boundary (no final chunk) as a normal end, not as an error.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("last_event_id", &self.last_event_id())
            .field("queued", &self.ready.len())
            .field("ended", &self.ended)
            .field("error", &self.error)
            .finish()
    }
}
