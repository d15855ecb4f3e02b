//! Upstream adapter for legacy HTTP+SSE servers (2024-11-05): one GET stream whose first
//! event, `endpoint`, names where to POST; every answer comes back on that stream. There is
//! no resumption: when the stream dies, the session dies.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::header;
use tokio::task::JoinHandle;
use url::Url;

use futures_util::future::LocalBoxFuture;

use super::http::{self, EventReader, Media};
use super::{Connection, ForwardHeaders, Opening, Sink, UpstreamShared, Via};
use crate::error::UpstreamError;
use crate::jsonrpc::Message;
use crate::observe::Difference;
use crate::transport::Transport;

pub struct Upstream {
    shared: Arc<UpstreamShared>,
    client: awc::Client,
    sink: Sink,
    endpoint: RefCell<Url>,
    /// Until `start_reader`: the open stream and any messages that came before `endpoint`.
    opening: RefCell<Option<(EventReader, Vec<Message>)>>,
    reader: RefCell<Option<JoinHandle<()>>>,
}

/// Open the stream, wait for `endpoint`, start relaying and POST the first message.
pub(super) async fn open(o: &Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let up = Rc::new(Upstream::connect(o.shared.clone(), o.sink.clone(), &o.headers).await?);
    up.start_reader();
    Upstream::send(&up, o.first.clone(), o.headers.clone()).await?;
    Ok(up)
}

impl Connection for Upstream {
    fn send(
        self: Rc<Self>,
        msg: Message,
        headers: ForwardHeaders,
    ) -> LocalBoxFuture<'static, Result<(), UpstreamError>> {
        Box::pin(async move { Upstream::send(&self, msg, headers).await })
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        Upstream::close(&self);
        Box::pin(async {})
    }
}

impl Upstream {
    /// Open the stream and wait for `endpoint` (deadline: the connect timeout).
    async fn connect(
        shared: Arc<UpstreamShared>,
        sink: Sink,
        headers: &ForwardHeaders,
    ) -> Result<Upstream, UpstreamError> {
        let cfg = &shared.cfg;
        let client = http::client(&shared);
        let mut req = client
            .get(shared.url().as_str())
            .insert_header((header::ACCEPT, "text/event-stream"));
        for (k, v) in headers {
            req = req.append_header((k.clone(), v.clone()));
        }
        let deadline = cfg.upstream_connect_timeout;
        let resp = http::within(deadline, req.send()).await?;
        if !resp.status().is_success() {
            return Err(http::status_error(resp, cfg).await);
        }
        if http::media(&resp) != Media::EventStream {
            return Err(UpstreamError::Protocol(format!(
                "GET {} did not answer with an event stream",
                shared.url()
            )));
        }
        let mut reader = EventReader::new(resp, cfg.max_body + 64 * 1024);
        let mut early = Vec::new();
        let wait_endpoint = async {
            loop {
                match reader.next().await {
                    Ok(Some(ev)) if ev.event == "endpoint" => return Ok(ev),
                    // Messages before `endpoint` are legal; keep them for the client.
                    Ok(Some(ev)) if ev.event == "message" => {
                        if let Ok(m) = Message::parse(ev.data) {
                            early.push(m);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(UpstreamError::StreamEnded),
                    Err(e) => return Err(UpstreamError::Connect(e)),
                }
            }
        };
        let ev = match tokio::time::timeout(deadline, wait_endpoint).await {
            Err(_) => return Err(UpstreamError::NoEndpoint(deadline)),
            Ok(r) => r?,
        };
        let endpoint = resolve_endpoint(shared.url(), &ev.data)?;
        if let Some(s) = sink.upgrade() {
            s.connected(Transport::LegacySse, endpoint.query());
        }
        Ok(Upstream {
            client,
            sink,
            endpoint: RefCell::new(endpoint),
            opening: RefCell::new(Some((reader, early))),
            reader: RefCell::default(),
            shared,
        })
    }

    /// Start relaying the stream to the session.
    fn start_reader(self: &Rc<Self>) {
        if let Some((reader, early)) = self.opening.borrow_mut().take() {
            let task = actix_web::rt::spawn(self.clone().read(reader, early));
            *self.reader.borrow_mut() = Some(task);
        }
    }

    async fn read(self: Rc<Self>, mut reader: EventReader, early: Vec<Message>) {
        for m in early {
            if !self.deliver(m).await {
                return;
            }
        }
        let end = loop {
            match reader.next().await {
                Ok(Some(ev)) => match ev.event.as_str() {
                    "message" => match Message::parse(ev.data) {
                        Ok(m) => {
                            if !self.deliver(m).await {
                                return;
                            }
                        }
                        Err(e) => self.note(
                            Difference::MessageDropped,
                            &format!("upstream event is not JSON-RPC: {e}"),
                        ),
                    },
                    "endpoint" => match resolve_endpoint(self.shared.url(), &ev.data) {
                        Ok(url) => {
                            self.note(
                                Difference::UpstreamEndpointChanged,
                                &format!("upstream sent a new endpoint: {url}"),
                            );
                            *self.endpoint.borrow_mut() = url;
                        }
                        Err(e) => self.note(
                            Difference::MessageDropped,
                            &format!("ignored endpoint event: {e}"),
                        ),
                    },
                    _ => {}
                },
                Ok(None) => break "the upstream closed its SSE stream".to_owned(),
                Err(e) => break format!("the upstream SSE stream broke: {e}"),
            }
        };
        if let Some(s) = self.sink.upgrade() {
            s.gone(&end);
        }
    }

    fn note(&self, kind: Difference, reason: &str) {
        if let Some(s) = self.sink.upgrade() {
            s.difference(kind, None, reason);
        }
    }

    async fn deliver(&self, m: Message) -> bool {
        let Some(sink) = self.sink.upgrade() else {
            return false;
        };
        sink.deliver(m, Via::SharedStream).await;
        true
    }

    /// POST one message to the endpoint; 2xx means accepted (the answer comes on the stream).
    async fn send(&self, msg: Message, headers: ForwardHeaders) -> Result<(), UpstreamError> {
        let cfg = &self.shared.cfg;
        let mut req = self
            .client
            .post(self.endpoint.borrow().as_str())
            .insert_header((header::CONTENT_TYPE, "application/json"));
        for (k, v) in &headers {
            req = req.append_header((k.clone(), v.clone()));
        }
        let mut resp = http::within(cfg.upstream_timeout, req.send_body(msg.raw().clone())).await?;
        let status = resp.status();
        if status.is_success() {
            // Drain the small "Accepted" body so the connection can be reused.
            let _ = http::body(&mut resp, 64 * 1024, cfg.upstream_timeout).await;
            return Ok(());
        }
        if status.as_u16() == 404 {
            // The server no longer knows this session: it is over.
            if let Some(s) = self.sink.upgrade() {
                actix_web::rt::spawn(
                    async move { s.gone("the upstream answered 404 for the session") },
                );
            }
            return Err(UpstreamError::SessionGone);
        }
        Err(http::status_error(resp, cfg).await)
    }

    fn close(&self) {
        self.opening.borrow_mut().take();
        if let Some(t) = self.reader.borrow_mut().take() {
            t.abort();
        }
    }
}

/// Resolve the `endpoint` event's data against the SSE URL; it must stay on the same origin.
fn resolve_endpoint(sse_url: &Url, data: &[u8]) -> Result<Url, UpstreamError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| UpstreamError::Protocol("endpoint is not UTF-8".into()))?
        .trim();
    let url = sse_url
        .join(text)
        .map_err(|e| UpstreamError::Protocol(format!("endpoint {text:?}: {e}")))?;
    if url.origin() != sse_url.origin() {
        return Err(UpstreamError::Protocol(format!(
            "endpoint {text:?} is not on the origin of {sse_url}"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms_of_both_sdks_resolve_and_keep_their_query() {
        let sse = Url::parse("http://127.0.0.1:3001/sse").unwrap();
        let ts = resolve_endpoint(&sse, b"/message?sessionId=abc").unwrap();
        assert_eq!(ts.as_str(), "http://127.0.0.1:3001/message?sessionId=abc");
        let py = resolve_endpoint(&sse, b"/messages/?session_id=0f").unwrap();
        assert_eq!(py.as_str(), "http://127.0.0.1:3001/messages/?session_id=0f");
        let abs = resolve_endpoint(&sse, b"http://127.0.0.1:3001/x").unwrap();
        assert_eq!(abs.path(), "/x");
    }

    #[test]
    fn endpoint_on_another_origin_is_refused() {
        let sse = Url::parse("http://127.0.0.1:3001/sse").unwrap();
        assert!(resolve_endpoint(&sse, b"http://evil.example/m").is_err());
        assert!(resolve_endpoint(&sse, b"//127.0.0.1:9/m").is_err());
    }
}
