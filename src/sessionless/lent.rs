//! One upstream session the bridge keeps on behalf of sessionless (2026-07-28) clients, lent
//! to one request at a time. While lent, everything the upstream delivers belongs to that
//! request — a legacy SSE or stdio server says nothing about which request a log line or a
//! progress notification is for, and with one request in flight it can only be that one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::Span;

use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::{Difference, Direction, Labels, Observer};
use crate::transport::{upstream_label, Transport};
use crate::upstream::{
    Backpressure, ForwardHeaders, UpstreamHandle, UpstreamShared, UpstreamSink, Via,
};

/// Messages queued for the request being served before the upstream reader waits.
const QUEUE: usize = 64;

pub struct Lent {
    pub id: Arc<str>,
    upstream: UpstreamHandle,
    /// Where the upstream's messages go: the request being served, if any.
    current: Mutex<Option<mpsc::Sender<Message>>>,
    upstream_transport: Mutex<Option<Transport>>,
    dead: AtomicBool,
    obs: Arc<Observer>,
    span: Span,
    /// The upstream's `InitializeResult` (the `result` member's JSON text).
    init_result: OnceLock<String>,
    pub last_used: Mutex<Instant>,
}

/// The messages of one request being served.
pub type Inbox = mpsc::Receiver<Message>;

impl Lent {
    /// Open an upstream session with `initialize` (built from the client's envelope), wait
    /// for its answer, and send `notifications/initialized`.
    pub async fn open(
        id: Arc<str>,
        shared: &Arc<UpstreamShared>,
        obs: Arc<Observer>,
        initialize: Message,
        headers: &ForwardHeaders,
    ) -> Result<Arc<Lent>, UpstreamError> {
        let (upstream, driver) = UpstreamHandle::new();
        let span = tracing::info_span!(
            "lent_session",
            session = %id,
            client_transport = Transport::Streamable2026.as_str(),
            upstream_transport = tracing::field::Empty,
            upstream_session = tracing::field::Empty,
        );
        let lent = Arc::new(Lent {
            id,
            upstream,
            current: Mutex::new(None),
            upstream_transport: Mutex::new(None),
            dead: AtomicBool::new(false),
            obs,
            span,
            init_result: OnceLock::new(),
            last_used: Mutex::new(Instant::now()),
        });
        let sink: Arc<dyn UpstreamSink> = lent.clone();
        driver.spawn(Arc::downgrade(&sink), shared.clone());
        let init_id = initialize.id.clone().expect("initialize is a request");
        let mut inbox = lent.begin();
        lent.send(initialize, headers).await?;
        let deadline = shared.cfg.upstream_timeout;
        let answer = tokio::time::timeout(deadline, async {
            while let Some(m) = inbox.recv().await {
                if m.kind == Kind::Response && m.id.as_ref() == Some(&init_id) {
                    return Some(m);
                }
            }
            None
        })
        .await;
        lent.finish();
        let answer = match answer {
            Ok(Some(m)) => m,
            Ok(None) => return Err(UpstreamError::StreamEnded),
            Err(_) => return Err(UpstreamError::Timeout(deadline)),
        };
        let Some(result) = answer.result_json() else {
            lent.close();
            return Err(UpstreamError::Protocol(format!(
                "the upstream refused initialize: {}",
                answer.error_message().unwrap_or_default()
            )));
        };
        let _ = lent.init_result.set(result.to_owned());
        lent.send(
            Message::bridge_notification("notifications/initialized"),
            headers,
        )
        .await?;
        Ok(lent)
    }

    /// The upstream's `InitializeResult` JSON text.
    pub fn init_result(&self) -> &str {
        self.init_result.get().map_or("{}", String::as_str)
    }

    /// Start serving a request: from now on the upstream's messages arrive in the inbox.
    pub fn begin(&self) -> Inbox {
        let (tx, rx) = mpsc::channel(QUEUE);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// The request is served: later messages have no one to go to.
    pub fn finish(&self) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub async fn send(&self, msg: Message, headers: &ForwardHeaders) -> Result<(), UpstreamError> {
        self.observe(Direction::ClientToUpstream, &msg);
        self.upstream
            .send(msg, headers.clone(), Transport::Streamable2026)
            .await
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last_used.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// End the upstream session.
    pub fn close(&self) {
        self.dead.store(true, Ordering::Release);
        self.finish();
        self.upstream.close();
    }

    fn labels(&self) -> Labels<'_> {
        let upstream = *self
            .upstream_transport
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Labels {
            session: &self.id,
            client: Transport::Streamable2026.as_str(),
            upstream: upstream_label(upstream),
        }
    }

    /// Journal and count a message, as a session does for its own.
    fn observe(&self, direction: Direction, msg: &Message) {
        let labels = self.labels();
        self.obs.message(&labels, direction, msg, None, None);
    }

    /// A sessionless client's request to `method`, begun at `since`, got its answer.
    pub fn answered(&self, method: &str, since: Instant) {
        self.obs
            .metrics
            .latency(Transport::Streamable2026.as_str(), method, since.elapsed());
    }

    pub fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        let labels = self.labels();
        let _e = self.span.enter();
        self.obs.difference(
            &labels,
            kind,
            msg.and_then(Message::method),
            msg.and_then(|m| m.id.as_ref()),
            reason,
        );
    }

    fn current(&self) -> Option<mpsc::Sender<Message>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl UpstreamSink for Lent {
    fn connected(&self, transport: Transport, upstream_session: Option<&str>) {
        *self
            .upstream_transport
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(transport);
        self.span.record("upstream_transport", transport.as_str());
        if let Some(s) = upstream_session {
            self.span.record("upstream_session", s);
        }
    }

    fn deliver(self: Arc<Self>, msg: Message, _via: Via) -> Backpressure {
        self.observe(Direction::UpstreamToClient, &msg);
        let tx = self.current();
        Box::pin(async move {
            let undelivered = match tx {
                // Waits while the request's reader is behind: the client's backpressure.
                Some(tx) => tx.send(msg).await.err().map(|e| e.0),
                None => Some(msg),
            };
            let Some(m) = undelivered else { return };
            self.difference(
                Difference::MessageDropped,
                Some(&m),
                "upstream message while no request was lent this session: no client to take it",
            );
            // A server request waits for an answer: it gets one, so the server moves on.
            if let (Kind::Request, Some(id)) = (m.kind, &m.id) {
                let refusal = Message::error_response(
                    Some(id),
                    -32601,
                    "no client to ask: a sessionless client takes server requests only during its own requests",
                );
                let _ = self.send(refusal, &Vec::new()).await;
            }
        })
    }

    fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        Lent::difference(self, kind, msg, reason);
    }

    fn request_difference(&self, kind: Difference, id: Option<&Id>, reason: &str) {
        let _e = self.span.enter();
        let labels = self.labels();
        self.obs.difference(&labels, kind, None, id, reason);
    }

    fn request_failed(&self, id: &Id, err: UpstreamError) {
        self.obs.metrics.upstream_error(err.class());
        if let Some(tx) = self.current() {
            let _ = tx.try_send(err.to_rpc_error(id));
        }
    }

    fn gone(&self, why: &str) {
        tracing::warn!(parent: &self.span, "lent upstream session gone: {why}");
        // The inbox closes: the request being served fails with the upstream gone.
        self.close();
    }

    fn span(&self) -> tracing::Span {
        self.span.clone()
    }
}
