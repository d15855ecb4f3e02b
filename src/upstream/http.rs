//! HTTP plumbing shared by the upstream adapters: the per-worker awc client, deadlines,
//! status mapping and an SSE event reader over a response body.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use actix_tls::connect::Resolver;
use actix_web::http::header;
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::StreamExt;

use super::{idle_watch, UpstreamShared};
use crate::config::Config;
use crate::error::UpstreamError;
use crate::jsonrpc::Message;
use crate::sse::{Decoder, Event};

thread_local! {
    static CLIENT: OnceCell<awc::Client> = const { OnceCell::new() };
}

/// This worker's client: no overall timeout (SSE bodies live long; deadlines are explicit
/// where they belong), no pool limit (each legacy session holds a connection), and
/// connections the server closed are closed on our side too ([`idle_watch`]).
pub fn client(shared: &UpstreamShared) -> awc::Client {
    CLIENT.with(|c| {
        c.get_or_init(|| {
            let tcp = actix_tls::connect::Connector::new(Resolver::default()).service();
            let connector = awc::Connector::new()
                .connector(idle_watch::Watching::new(tcp))
                .rustls_0_23(shared.tls.clone())
                .limit(0)
                .timeout(shared.cfg.upstream_connect_timeout);
            awc::Client::builder()
                .connector(connector)
                .disable_timeout()
                .finish()
        })
        .clone()
    })
}

/// Await response headers within `deadline`.
pub async fn within<F>(deadline: Duration, fut: F) -> Result<ClientResponse, UpstreamError>
where
    F: Future<Output = Result<ClientResponse, awc::error::SendRequestError>>,
{
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(UpstreamError::Timeout(deadline)),
        Ok(Err(e)) => Err(UpstreamError::Connect(e.to_string())),
        Ok(Ok(r)) => Ok(r),
    }
}

/// Read a whole (non-streaming) body within `deadline`.
pub async fn body(
    resp: &mut ClientResponse,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, UpstreamError> {
    match tokio::time::timeout(deadline, resp.body().limit(limit)).await {
        Err(_) => Err(UpstreamError::Timeout(deadline)),
        Ok(Err(e)) => Err(UpstreamError::Protocol(format!("reading body: {e}"))),
        Ok(Ok(b)) => Ok(b),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Media {
    Json,
    EventStream,
    None,
    Other(String),
}

/// The response's media type, parameters ignored.
pub fn media(resp: &ClientResponse) -> Media {
    let Some(ct) = resp.headers().get(header::CONTENT_TYPE) else {
        return Media::None;
    };
    let ct = ct.to_str().unwrap_or("").split(';').next().unwrap_or("");
    match ct.trim().to_ascii_lowercase().as_str() {
        "application/json" => Media::Json,
        "text/event-stream" => Media::EventStream,
        other => Media::Other(other.to_owned()),
    }
}

/// Turn a non-2xx response into the error the client will see.
pub async fn status_error(mut resp: ClientResponse, cfg: &Config) -> UpstreamError {
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = body(&mut resp, cfg.max_body, cfg.upstream_timeout)
        .await
        .unwrap_or_default();
    // The upstream's challenge is the client's business only when the client's own token
    // crosses (`--forward-header Authorization`). Otherwise the bridge's credential (or the
    // lack of one) was refused, which no client can fix: a gateway failure like any other.
    let client_token_crosses = cfg.deploy.forward_headers.contains(&header::AUTHORIZATION);
    if (status == 401 || status == 403) && client_token_crosses {
        return UpstreamError::Auth {
            status,
            www_authenticate,
            body,
        };
    }
    let rpc_error = Message::parse(body)
        .ok()
        .filter(|m| m.is_error)
        .map(Box::new);
    UpstreamError::Status { status, rpc_error }
}

/// Reads SSE events from a response body as they arrive.
pub struct EventReader {
    resp: ClientResponse,
    dec: Decoder,
    queue: VecDeque<Event>,
    max_event: usize,
}

impl EventReader {
    pub fn new(resp: ClientResponse, max_event: usize) -> EventReader {
        EventReader {
            resp,
            dec: Decoder::new(),
            queue: VecDeque::new(),
            max_event,
        }
    }

    /// Continue on a new response (a resumed stream) with the same cursor.
    pub fn replace_response(&mut self, resp: ClientResponse) {
        self.resp = resp;
    }

    /// The next event; `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            match self.resp.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(chunk)) => {
                    let mut out = Vec::new();
                    self.dec.feed(&chunk, &mut out);
                    self.queue.extend(out);
                    if self.dec.buffered() > self.max_event {
                        return Err(format!("an event exceeds {} bytes", self.max_event));
                    }
                }
            }
        }
    }

    pub fn last_event_id(&self) -> Option<&str> {
        self.dec.last_event_id()
    }

    pub fn take_empty_events(&mut self) -> usize {
        self.dec.take_empty_events()
    }

    pub fn retry(&self) -> Option<Duration> {
        self.dec.retry_ms().map(Duration::from_millis)
    }
}
