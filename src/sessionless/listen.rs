//! `subscriptions/listen` for sessionless (2026-07-28) clients in front of a sessionful
//! upstream. A listen holds an upstream session of its own from the pool for as long as the
//! client keeps the stream open, so every unsolicited message that session delivers (a
//! Streamable GET stream, the legacy stream, a stdio child's stdout) belongs to this one
//! listen. The stream opens with the acknowledgement, after `resources/subscribe` went
//! upstream for each listed URI; then come the notifications the client opted into, each
//! tagged with its subscription id. Closing the stream is unsubscribing: the bridge sends
//! `resources/unsubscribe` for each URI and gives the session back (or closes it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::lent::{Inbox, Lent};
use super::pool::{Key, Pool};
use crate::era::listen::{self, SubscriptionFilter};
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::Difference;
use crate::sse;
use crate::upstream::ForwardHeaders;

/// Ids of the bridge's own `resources/(un)subscribe` requests (unique per process, so a late
/// answer is never taken for another's).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> Id {
    Id::bridge(1_000_000_000 + NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// One open listen stream.
pub struct Listening {
    pool: Arc<Pool>,
    /// `None` once the stream is over (and the session handed on).
    lent: Option<Arc<Lent>>,
    key: Key,
    inbox: Option<Inbox>,
    /// Messages that arrived while the subscriptions were being made: after the ack.
    early: VecDeque<Message>,
    /// The listen request's id: the subscription id.
    id: Id,
    honoured: SubscriptionFilter,
    headers: ForwardHeaders,
    acknowledged: bool,
    keepalive: Duration,
}

impl Listening {
    /// Subscribe upstream for the URIs the client listed (as far as the upstream can, see
    /// [`SubscriptionFilter::honoured_by`]) on `lent`, which this listen keeps.
    pub async fn open(
        pool: Arc<Pool>,
        key: Key,
        lent: Arc<Lent>,
        id: Id,
        asked: &SubscriptionFilter,
        headers: ForwardHeaders,
    ) -> Result<Listening, UpstreamError> {
        let mut honoured = asked.honoured_by(&capabilities(lent.init_result()));
        let mut inbox = lent.begin();
        let mut early = VecDeque::new();
        let mut refused = Vec::new();
        for uri in &honoured.resource_subscriptions {
            let answer = call(
                &lent,
                &mut inbox,
                &mut early,
                "resources/subscribe",
                uri,
                &headers,
                pool.timeout(),
            )
            .await;
            match answer {
                Ok(a) if a.is_error => refused.push(uri.clone()),
                Ok(_) => {}
                Err(e) => {
                    pool.discard(&lent);
                    return Err(e);
                }
            }
        }
        for uri in &refused {
            honoured.unsubscribe(uri);
        }
        lent.difference(
            Difference::ListenServed,
            None,
            &format!(
                "subscriptions/listen {id} served from an upstream session's unsolicited messages (honoured: {}; refused upstream: {refused:?}); each notification tagged with the subscription id",
                honoured.to_json()
            ),
        );
        Ok(Listening {
            keepalive: pool.keepalive(),
            pool,
            lent: Some(lent),
            key,
            inbox: Some(inbox),
            early,
            id,
            honoured,
            headers,
            acknowledged: false,
        })
    }

    /// The next SSE frame for the client; `None` once the stream is over.
    pub async fn next(&mut self) -> Option<Bytes> {
        if !self.acknowledged {
            self.acknowledged = true;
            return Some(frame(
                listen::acknowledgement(self.id.json(), &self.honoured).as_bytes(),
            ));
        }
        loop {
            let lent = self.lent.clone()?;
            let m = match self.early.pop_front() {
                Some(m) => Some(m),
                None => {
                    let inbox = self.inbox.as_mut()?;
                    match tokio::time::timeout(self.keepalive, inbox.recv()).await {
                        Ok(m) => m,
                        // Quiet: a comment keeps proxies from timing the stream out, and lets
                        // the server notice a client that went away.
                        Err(_) => return Some(sse::comment("keepalive")),
                    }
                }
            };
            let Some(m) = m else {
                // The upstream session ended: so does the listen, with an answer naming it.
                self.inbox = None;
                if let Some(lent) = self.lent.take() {
                    self.pool.discard(&lent);
                }
                let err = Message::error_response(
                    Some(&self.id),
                    -32603,
                    "the upstream session behind this listen ended",
                );
                return Some(frame(err.raw()));
            };
            match m.kind {
                Kind::Notification => {
                    let method = m.method().unwrap_or_default();
                    let uri = listen::updated_uri(m.raw());
                    if self.honoured.wants(method, uri.as_deref()) {
                        match listen::tag(m.raw(), self.id.json()) {
                            Ok(tagged) => return Some(frame(&tagged)),
                            Err(e) => lent.difference(
                                Difference::MessageDropped,
                                Some(&m),
                                &format!("a notification that cannot be tagged: {e}"),
                            ),
                        }
                    } else {
                        lent.difference(
                            Difference::MessageDropped,
                            Some(&m),
                            "a notification this listen did not opt into",
                        );
                    }
                }
                Kind::Request => {
                    let Some(id) = &m.id else { continue };
                    let reply = if m.method() == Some("ping") {
                        Message::result_response(id, "{}")
                    } else {
                        Message::error_response(
                            Some(id),
                            -32601,
                            "a sessionless client takes server requests only during its own requests",
                        )
                    };
                    let _ = lent.send(reply, &self.headers).await;
                }
                Kind::Response => lent.difference(
                    Difference::MessageDropped,
                    Some(&m),
                    "a response to no request of this listen",
                ),
            }
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // The client closed the stream: unsubscribing. The session serves again only once
        // the upstream confirmed every unsubscribe.
        let (Some(lent), Some(mut inbox)) = (self.lent.take(), self.inbox.take()) else {
            return;
        };
        let pool = self.pool.clone();
        let key = self.key.clone();
        let uris = std::mem::take(&mut self.honoured.resource_subscriptions);
        let headers = std::mem::take(&mut self.headers);
        if tokio::runtime::Handle::try_current().is_err() {
            return pool.discard(&lent);
        }
        actix_web::rt::spawn(async move {
            let mut late = VecDeque::new();
            let mut clean = true;
            for uri in &uris {
                let answer = call(
                    &lent,
                    &mut inbox,
                    &mut late,
                    "resources/unsubscribe",
                    uri,
                    &headers,
                    pool.timeout(),
                )
                .await;
                clean &= answer.is_ok_and(|a| !a.is_error);
            }
            drop(inbox);
            if clean {
                pool.give_back(key, lent);
            } else {
                pool.discard(&lent);
            }
        });
    }
}

/// Send `method` for `uri` upstream and wait for its answer; other messages meanwhile are
/// kept in `early`.
async fn call(
    lent: &Lent,
    inbox: &mut Inbox,
    early: &mut VecDeque<Message>,
    method: &str,
    uri: &str,
    headers: &ForwardHeaders,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    let id = next_id();
    let params = format!(
        "{{\"uri\":{}}}",
        serde_json::to_string(uri).expect("a string serialises")
    );
    lent.send(Message::bridge_request(&id, method, Some(&params)), headers)
        .await?;
    let wait = async {
        while let Some(m) = inbox.recv().await {
            if m.kind == Kind::Response && m.id.as_ref() == Some(&id) {
                return Ok(m);
            }
            early.push_back(m);
        }
        Err(UpstreamError::StreamEnded)
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))?
}

/// The `capabilities` member of an `InitializeResult` (JSON text; `{}` when absent).
fn capabilities(init_result: &str) -> String {
    serde_json::from_str::<serde_json::Value>(init_result)
        .ok()
        .and_then(|r| r.get("capabilities").map(ToString::to_string))
        .unwrap_or_else(|| "{}".into())
}

fn frame(body: &[u8]) -> Bytes {
    sse::encode(Some("message"), None, body)
}
