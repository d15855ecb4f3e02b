//! Request bodies in, SSE responses out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::error::DownstreamError;
use crate::session::{self, Session, WriterSlot};
use crate::sse;

/// The body, up to `limit` bytes (413 beyond, decided from Content-Length when given).
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, DownstreamError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(DownstreamError::BodyTooLarge(limit));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| DownstreamError::BadBody(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(DownstreamError::BodyTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Content-Type: application/json` (parameters such as charset ignored), else 415.
pub fn require_json(req: &HttpRequest) -> Result<(), DownstreamError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(DownstreamError::UnsupportedMediaType)
    }
}

/// Whether `Accept` lists `media` (or a wildcard covering it).
pub fn accepts(req: &HttpRequest, media: &str) -> bool {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .any(|v| v == media || v == "*/*" || v == format!("{kind}/*"))
}

/// An SSE response that drains one session stream, with keep-alive comments when idle.
pub fn sse_response(
    mut res: HttpResponseBuilder,
    session: Arc<Session>,
    slot: WriterSlot,
    keepalive: Duration,
) -> HttpResponse {
    res.insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(SseBody {
            session,
            slot,
            keepalive,
            timer: Box::pin(tokio::time::sleep(keepalive)),
        })
}

struct SseBody {
    session: Arc<Session>,
    slot: WriterSlot,
    keepalive: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.session.poll_writer(&this.slot, cx.waker()) {
            session::Poll::Frame(b) => {
                this.timer.as_mut().reset(Instant::now() + this.keepalive);
                Poll::Ready(Some(Ok(b)))
            }
            session::Poll::End => Poll::Ready(None),
            session::Poll::Wait => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timer.as_mut().reset(Instant::now() + this.keepalive);
                    Poll::Ready(Some(Ok(sse::comment("keepalive"))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for SseBody {
    /// The response is gone: finished, or the client disconnected.
    fn drop(&mut self) {
        self.session.detach_writer(&self.slot);
    }
}
