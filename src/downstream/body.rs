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
use crate::jsonrpc::{self, Body};
use crate::session::{self, Session, WriterSlot};
use crate::sse;

/// The body, up to `limit` bytes (413 beyond, decided from Content-Length when given),
/// read within `deadline` (408 after it).
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, DownstreamError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunks = payload.map(|c| c.map_err(|e| e.to_string()));
    collect(chunks, declared, limit, deadline)
        .await
        .map(BytesMut::freeze)
}

/// Gather a body's chunks. Memory grows with what has arrived, never with what a client
/// merely declared: a stalled body holds no more than its bytes so far, and only until
/// `deadline`.
async fn collect<S>(
    mut chunks: S,
    declared: Option<usize>,
    limit: usize,
    deadline: Duration,
) -> Result<BytesMut, DownstreamError>
where
    S: Stream<Item = Result<Bytes, String>> + Unpin,
{
    if declared.is_some_and(|n| n > limit) {
        return Err(DownstreamError::BodyTooLarge(limit));
    }
    let until = Instant::now() + deadline;
    let mut buf = BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout_at(until, chunks.next()).await {
            Err(_) => return Err(DownstreamError::BodyTimeout(deadline)),
            Ok(None) => return Ok(buf),
            Ok(Some(chunk)) => chunk.map_err(DownstreamError::BadBody)?,
        };
        if buf.len() + chunk.len() > limit {
            return Err(DownstreamError::BodyTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
}

/// A client's POSTed body as JSON-RPC. `initialize` must be sent alone (the spec forbids
/// batching it): a batch holding one is refused whole, on both fronts.
pub fn parse_client_body(raw: Bytes) -> Result<Body, DownstreamError> {
    let body = jsonrpc::parse_body(raw)?;
    if let Body::Batch(batch) = &body {
        if let Some(init) = batch.iter().find(|m| m.is_initialize()) {
            return Err(DownstreamError::BatchedInitialize(init.id.clone()));
        }
    }
    Ok(body)
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    const MIB: usize = 1 << 20;

    #[actix_rt::test]
    async fn a_declared_but_unsent_length_is_not_allocated() {
        let sent = stream::iter([Ok(Bytes::from_static(b"{\"jsonrpc\""))]);
        let buf = collect(sent, Some(4 * MIB), 4 * MIB, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&buf[..], b"{\"jsonrpc\"");
        assert!(
            buf.capacity() < 64 * 1024,
            "4 MiB declared, 11 bytes sent: {} bytes reserved",
            buf.capacity()
        );
    }

    #[actix_rt::test]
    async fn a_stalled_body_times_out() {
        let stalled = stream::iter([Ok(Bytes::from_static(b"{"))]).chain(stream::pending());
        let err = collect(stalled, Some(MIB), 4 * MIB, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, DownstreamError::BodyTimeout(_)), "{err}");
    }

    #[test]
    fn a_batch_holding_initialize_is_refused_with_its_id() {
        let body = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"i-1","method":"initialize","params":{}}]"#,
        );
        match parse_client_body(body) {
            Err(DownstreamError::BatchedInitialize(Some(id))) => assert_eq!(id.json(), "\"i-1\""),
            other => panic!("{other:?}"),
        }
        let single = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#);
        assert!(matches!(parse_client_body(single), Ok(Body::Single(_))));
    }
}
