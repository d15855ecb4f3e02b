//! One open SSE response: a channel from the server logic to the HTTP body.
//!
//! The sending half ([`Conn`]) lives in session state, so any task can write to the stream; the
//! receiving half ([`SseBody`]) is the actix response body. Ending is explicit: `Close` ends the
//! body cleanly (last chunk written), `Kill` makes the body fail so actix cuts the connection
//! mid-body, the way a dying server looks to its client. Dropping the body (client went away)
//! runs a hook so the session learns the stream is gone.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::Shared;

pub(crate) enum Frame {
    Data(Bytes),
    Close,
    Kill,
}

/// The writing half of an open SSE response. `gen` tells connections apart, so a stale drop
/// hook never detaches a newer connection.
pub(crate) struct Conn {
    tx: mpsc::UnboundedSender<Frame>,
    pub gen: u64,
}

impl Conn {
    /// Queues bytes; false when the client is gone.
    pub fn send(&self, data: impl Into<Bytes>) -> bool {
        self.tx.send(Frame::Data(data.into())).is_ok()
    }

    pub fn close(self) {
        let _ = self.tx.send(Frame::Close);
    }

    pub fn kill(self) {
        let _ = self.tx.send(Frame::Kill);
    }

    /// A second writer (keep-alive ticker) that does not own the connection.
    pub fn writer(&self) -> mpsc::UnboundedSender<Frame> {
        self.tx.clone()
    }
}

/// The response body. Unbounded on purpose: the fake must never stall its MCP logic on a
/// slow reader, and tests control the volume.
pub(crate) struct SseBody {
    rx: mpsc::UnboundedReceiver<Frame>,
    done: bool,
    on_drop: Option<Box<dyn FnOnce(u64)>>,
    gen: u64,
    shared: Arc<Shared>,
}

/// Opens a connection; `on_drop(gen)` runs when actix drops the body (finished, failed or
/// client disconnected).
pub(crate) fn open(shared: &Arc<Shared>, on_drop: impl FnOnce(u64) + 'static) -> (Conn, SseBody) {
    static GEN: AtomicU64 = AtomicU64::new(1);
    let (tx, rx) = mpsc::unbounded_channel();
    shared.open_streams.fetch_add(1, Ordering::SeqCst);
    shared.changed();
    let gen = GEN.fetch_add(1, Ordering::Relaxed);
    let conn = Conn { tx, gen };
    let body = SseBody {
        rx,
        done: false,
        on_drop: Some(Box::new(on_drop)),
        gen,
        shared: shared.clone(),
    };
    (conn, body)
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Frame::Data(b))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(Some(Frame::Kill)) => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other("stream killed by test"))))
            }
            Poll::Ready(Some(Frame::Close)) | Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(hook) = self.on_drop.take() {
            hook(self.gen);
        }
        self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
        self.shared.changed();
    }
}

/// A 200 `text/event-stream` response over `body`, with the headers real servers send.
pub(crate) fn sse_response(body: SseBody, extra: &[(&str, String)]) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    for (k, v) in extra {
        b.insert_header((*k, v.as_str()));
    }
    b.streaming(body)
}

/// Sends a comment frame every `every` until the connection is gone.
pub(crate) fn keepalive(
    writer: mpsc::UnboundedSender<Frame>,
    every: std::time::Duration,
    text: impl Fn() -> String + 'static,
) {
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if writer.send(Frame::Data(text().into())).is_err() {
                break;
            }
        }
    });
}
