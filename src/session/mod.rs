//! A bridge session: the one place that knows both sides. It owns the client-facing streams,
//! the table of the client's in-flight requests and the handle on its upstream connection.
//!
//! - [`router`]: which stream each upstream message goes to (a pure function);
//! - [`inflight`]: the client's requests awaiting answers;
//! - [`failure`]: what a client gets when the upstream leg of a message fails;
//! - `deliver`: upstream → client (routing applied, framing, budgets, backpressure);
//! - `writers`: the SSE responses reading the streams;
//! - `sink`: the [`UpstreamSink`](crate::upstream::UpstreamSink) port the adapter pushes into;
//! - this file: the session itself, client → upstream and the lifecycle.
//!
//! A session is created by whatever opens one — a legacy GET, a Streamable `initialize`, or
//! later the bridge itself on behalf of sessionless clients — through [`Session::new`]; what
//! differs between client transports is asked of [`Transport`].

mod budget;
mod deliver;
mod failure;
mod inflight;
mod map;
mod mirror;
mod router;
mod sink;
mod stats;
mod stream;
mod writers;

pub use budget::Budget;
pub use failure::Phase;
pub use map::{Ended, SessionMap};
pub use mirror::{Entry as MirrorEntry, Mirror, Mirrored};
pub use stream::{Poll, StreamNo, MAIN_STREAM};
pub use writers::WriterSlot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tracing::Span;

use crate::config::ReplayLimits;
use crate::error::{Error, UpstreamError};
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::{Difference, Direction, Labels, Observer};
use crate::transport::{upstream_label, Transport};
use crate::upstream::{ForwardHeaders, UpstreamHandle, Via};
use failure::Outcome;
use inflight::InFlight;
use stats::Stats;
use stream::OutStream;

/// Why a session ended (for its summary line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    ClientClosed,
    ClientDelete,
    IdleTimeout,
    MaxLifetime,
    UpstreamGone,
    Shutdown,
    /// A legacy client read nothing for `--slow-reader-timeout` while events waited.
    SlowReader,
    /// Another replica took the session over (this one lost its directory record).
    TakenOver,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientClosed => "client_closed",
            EndReason::ClientDelete => "client_delete",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxLifetime => "max_lifetime",
            EndReason::UpstreamGone => "upstream_gone",
            EndReason::Shutdown => "shutdown",
            EndReason::SlowReader => "slow_reader",
            EndReason::TakenOver => "taken_over",
        }
    }
}

/// Protocol revisions the bridge serves on its Streamable front.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

struct State {
    streams: HashMap<StreamNo, OutStream>,
    next_stream: StreamNo,
    next_epoch: u64,
    inflight: InFlight,
    version: Option<String>,
    /// The upstream's transport, once connected.
    upstream: Option<Transport>,
    last_activity: Instant,
    ended: Option<EndReason>,
    stats: Stats,
}

pub struct Session {
    pub id: Arc<str>,
    /// The client's transport.
    pub client: Transport,
    pub span: Span,
    upstream: UpstreamHandle,
    state: Mutex<State>,
    limits: ReplayLimits,
    /// What this session's streams hold; it charges the process budget too.
    budget: Arc<Budget>,
    registry: Weak<SessionMap>,
    obs: Arc<Observer>,
    created: Instant,
    /// Digest of the credential that created the session; only it may use the session.
    owner: std::sync::OnceLock<[u8; 32]>,
    /// Where its resumable events are copied (replicas with `--redis-replay`).
    mirror: std::sync::OnceLock<Arc<dyn Mirror>>,
}

impl Session {
    pub fn new(
        id: Arc<str>,
        client: Transport,
        upstream: UpstreamHandle,
        limits: ReplayLimits,
        registry: Weak<SessionMap>,
        obs: Arc<Observer>,
    ) -> Session {
        let span = tracing::info_span!(
            "session",
            session = %id,
            client_transport = client.as_str(),
            upstream_transport = tracing::field::Empty,
            upstream_session = tracing::field::Empty,
        );
        let process = registry
            .upgrade()
            .map(|m| m.budget())
            .unwrap_or_else(|| Budget::process(limits.total_bytes));
        let budget = Budget::session(limits.session_bytes, process);
        let mut streams = HashMap::new();
        streams.insert(
            MAIN_STREAM,
            OutStream::new(client.resumable(), 0, limits, budget.clone()),
        );
        Session {
            id,
            client,
            span,
            upstream,
            state: Mutex::new(State {
                streams,
                next_stream: MAIN_STREAM + 1,
                next_epoch: 1,
                inflight: InFlight::default(),
                version: None,
                upstream: None,
                last_activity: Instant::now(),
                ended: None,
                stats: Stats::default(),
            }),
            limits,
            budget,
            registry,
            obs,
            created: Instant::now(),
            owner: std::sync::OnceLock::new(),
            mirror: std::sync::OnceLock::new(),
        }
    }

    /// Bind the session to the credential (digest) that created it; the first binding stays.
    pub fn set_owner(&self, credential: [u8; 32]) {
        let _ = self.owner.set(credential);
    }

    pub fn owner(&self) -> Option<&[u8; 32]> {
        self.owner.get()
    }

    /// Client requests still waiting for their response.
    pub fn in_flight(&self) -> usize {
        self.lock().inflight.len()
    }

    /// A request for the session arrived (its body may still be on the way).
    pub fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    /// No request in flight, and no client message for `quiet` (one may be on its way in).
    pub fn is_quiet(&self, quiet: std::time::Duration) -> bool {
        let st = self.lock();
        st.inflight.len() == 0 && st.last_activity.elapsed() >= quiet
    }

    /// Time since the session began.
    pub fn age(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.created)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge every later request of the session.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// The upstream's transport once connected.
    pub fn upstream_transport(&self) -> Option<Transport> {
        self.lock().upstream
    }

    /// The upstream side as metrics and logs name it (`pending` until connected).
    fn upstream_label(&self) -> &'static str {
        upstream_label(self.upstream_transport())
    }

    fn labels(&self, upstream: &'static str) -> Labels<'_> {
        Labels {
            session: &self.id,
            client: self.client.as_str(),
            upstream,
        }
    }

    pub fn negotiated_version(&self) -> Option<String> {
        self.lock().version.clone()
    }

    /// Record a difference about `msg` (its method and id go into the record).
    pub fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        let upstream = {
            let mut st = self.lock();
            st.stats.differences.add(kind);
            upstream_label(st.upstream)
        };
        let (method, id) = (
            msg.and_then(Message::method),
            msg.and_then(|m| m.id.as_ref()),
        );
        self.emit_difference(kind, upstream, method, id, reason);
    }

    /// Record a difference about the client's request `id` (its method is looked up among
    /// the requests in flight); `None`: about no request in particular.
    pub fn request_difference(&self, kind: Difference, id: Option<&Id>, reason: &str) {
        let (upstream, method) = {
            let mut st = self.lock();
            st.stats.differences.add(kind);
            let method = id
                .and_then(|id| st.inflight.get(id))
                .map(|p| p.method.clone());
            (upstream_label(st.upstream), method)
        };
        self.emit_difference(kind, upstream, method.as_deref(), id, reason);
    }

    /// Emit a difference already counted in the session's stats.
    fn emit_difference(
        &self,
        kind: Difference,
        upstream: &'static str,
        method: Option<&str>,
        id: Option<&Id>,
        reason: &str,
    ) {
        let _e = self.span.enter();
        self.obs
            .difference(&self.labels(upstream), kind, method, id, reason);
    }

    // ---- client → upstream -------------------------------------------------------------

    /// Forward one client message that arrived for `stream`. Requests are registered first,
    /// so that their responses find the stream. An upstream failure is decided by the one
    /// failure policy: `Err` is what the client's HTTP exchange gets instead of success.
    pub async fn forward_one(
        &self,
        msg: Message,
        stream: StreamNo,
        headers: &ForwardHeaders,
        phase: Phase,
    ) -> Result<(), Error> {
        self.client_message(&msg, stream);
        let id = msg.is_request().then(|| msg.id.clone()).flatten();
        match self.upstream.send(msg, headers.clone(), self.client).await {
            Ok(()) => Ok(()),
            Err(e) => self.fail(id.as_ref(), e, phase).map_or(Ok(()), Err),
        }
    }

    /// Bookkeeping for a message the client sent, before it goes upstream.
    fn client_message(&self, msg: &Message, stream: StreamNo) {
        // What the replay mirror (if any) is told, once the lock is released.
        let mirrored = self.mirror.get().is_some() && self.client.resumable();
        let (upstream, mirror_entry) = {
            let mut st = self.lock();
            st.last_activity = Instant::now();
            st.stats.from_client += 1;
            let mut entry = None;
            match msg.kind {
                Kind::Request => {
                    let method = msg.method().unwrap_or_default();
                    st.stats.request(method);
                    if let Some(id) = &msg.id {
                        st.inflight
                            .register(id, method, msg.progress_token.as_ref(), stream);
                        entry = mirrored.then(|| MirrorEntry::Waiting {
                            stream,
                            id: id.json().to_owned(),
                        });
                    }
                }
                Kind::Notification => {
                    // The client gave up on a request: its stream ends now (servers may
                    // never answer, as the TS SDK does) and a late response is dropped.
                    if let Some(p) = msg.cancels.as_ref().and_then(|c| st.inflight.take(c)) {
                        deliver::settle(&mut st.streams, &p);
                        entry = mirrored.then(|| MirrorEntry::Answered {
                            stream: p.stream,
                            id: p.id.json().to_owned(),
                        });
                    }
                }
                Kind::Response => {}
            }
            (upstream_label(st.upstream), entry)
        };
        if let Some(entry) = mirror_entry {
            self.mirrored(|| entry);
        }
        self.obs.message(
            &self.labels(upstream),
            Direction::ClientToUpstream,
            msg,
            Some(stream),
            None,
        );
        tracing::debug!(parent: &self.span, direction = "client_to_upstream", kind = msg.kind.as_str(),
            method = msg.method().unwrap_or(""), id = msg.id.as_ref().map(Id::json).unwrap_or(""),
            bytes = msg.raw().len(), "message");
    }

    /// The one place an upstream failure of a client message (request `id`, if it is one)
    /// becomes what the client gets, and is counted. `Some`: the HTTP error to answer with.
    fn fail(&self, id: Option<&Id>, err: UpstreamError, phase: Phase) -> Option<Error> {
        let answered = id.is_some_and(|id| self.lock().inflight.get(id).is_none());
        if answered {
            // E.g. the upstream went away and every request in flight got its error before
            // this send returned: one answer is enough.
            return None;
        }
        self.obs.metrics.upstream_error(err.class());
        match failure::decide(&err, id.is_some(), phase) {
            Outcome::ErrorOnStream => {
                let id = id.expect("only requests are answered on their stream");
                self.answer_with_error(id, &err);
                None
            }
            Outcome::HttpError => {
                if let Some(id) = id {
                    // The client sends it again (after authenticating), or has no session.
                    let mut st = self.lock();
                    if let Some(p) = st.inflight.take(id) {
                        deliver::settle(&mut st.streams, &p);
                    }
                }
                if phase == Phase::Opening {
                    self.end(EndReason::UpstreamGone);
                }
                Some(Error::upstream(err, id.cloned()))
            }
        }
    }

    /// Answer the client's request `id` with a JSON-RPC error for an upstream failure.
    fn answer_with_error(&self, id: &Id, err: &UpstreamError) {
        let reply = err.to_rpc_error(id);
        if let UpstreamError::Status {
            rpc_error: Some(e), ..
        } = err
        {
            if e.id.as_ref() != Some(id) {
                self.difference(
                    Difference::ErrorReaddressed,
                    Some(&reply),
                    &format!(
                        "upstream HTTP error carried a JSON-RPC error with id {}; given the id of the request it answers",
                        e.id.as_ref().map(Id::json).unwrap_or("null")
                    ),
                );
            }
        }
        self.difference(
            Difference::ErrorSynthesized,
            Some(&reply),
            &format!("upstream failure ({}): {err}", err.class()),
        );
        // A synthesized answer does not wait for the writer: no upstream to hold back.
        let _ = self.push_message(reply, Via::RequestStream(id.clone()));
    }

    // ---- lifecycle -------------------------------------------------------------------------

    /// End the session: streams finish (writers drain and close), the upstream session is
    /// closed, the session leaves the map, and one summary line is logged.
    pub fn end(&self, reason: EndReason) {
        let summary = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return;
            }
            st.ended = Some(reason);
            for s in st.streams.values_mut() {
                s.finish();
            }
            (
                upstream_label(st.upstream),
                st.stats.from_client,
                st.stats.to_client,
                st.stats.requests_summary(),
                st.stats.differences.summary(),
            )
        };
        // Out of the map before the upstream hears of it: whoever sees the upstream session
        // end must not still find the session here.
        if let Some(map) = self.registry.upgrade() {
            map.ended(&self.id, self.client, reason);
        }
        self.upstream.close();
        let (upstream, from_client, to_client, methods, differences) = summary;
        let duration_ms = self.created.elapsed().as_millis() as u64;
        self.obs
            .session_end(&self.labels(upstream), reason.as_str(), duration_ms);
        tracing::info!(
            target: "mcp_bridge::summary",
            parent: &self.span,
            session = %self.id,
            client_transport = self.client.as_str(),
            upstream_transport = upstream,
            duration_ms,
            messages_from_client = from_client,
            messages_to_client = to_client,
            requests = %methods,
            differences = %differences,
            ended = reason.as_str(),
            "session ended"
        );
    }

    /// Reaper hook: end the session when idle, and drop streams no one can replay any more.
    pub fn sweep(&self, idle_timeout: std::time::Duration, now: Instant) {
        let idle = {
            let mut st = self.lock();
            let limits = self.limits;
            st.streams.retain(|&no, s| {
                s.prune_written_older_than(now);
                let expired = s
                    .finished_at()
                    .is_some_and(|t| now.duration_since(t) > limits.age);
                no == MAIN_STREAM || !expired || s.has_writer()
            });
            let any_writer = st.streams.values().any(OutStream::has_writer);
            let last = st
                .streams
                .values()
                .map(|s| s.touched)
                .chain([st.last_activity])
                .max()
                .expect("non-empty");
            !any_writer && now.duration_since(last) > idle_timeout
        };
        if idle {
            self.end(EndReason::IdleTimeout);
        }
    }

    /// Bytes held in this session's stream logs (for metrics and tests).
    pub fn buffered_bytes(&self) -> usize {
        self.lock()
            .streams
            .values()
            .map(OutStream::buffered_bytes)
            .sum()
    }

    pub fn difference_count(&self, kind: Difference) -> u32 {
        self.lock().stats.differences.get(kind)
    }
}

/// Event ids encode their stream: `<stream>-<seq>`.
pub fn event_id(stream: StreamNo, seq: u64) -> String {
    format!("{stream}-{seq}")
}

fn parse_event_id(s: &str) -> Option<(StreamNo, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A fresh session id: 128 bits from the OS CSPRNG, as 32 hex characters.
pub fn new_session_id() -> Arc<str> {
    crate::hex::random(16).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamSink;

    fn request(id: u64) -> Message {
        let raw = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{}}}}"#);
        Message::parse(raw.into()).unwrap()
    }

    #[actix_rt::test]
    async fn an_upstream_failure_is_answered_and_counted_once() {
        let cfg =
            crate::config::Config::from_args(["t", "--upstream", "http://127.0.0.1:9"]).unwrap();
        let obs = Arc::new(Observer::new(&cfg));
        // The driver is dropped: every send fails at once (the upstream is closed).
        let (handle, _) = UpstreamHandle::new();
        let s = Arc::new(Session::new(
            "s".into(),
            Transport::Streamable,
            handle,
            ReplayLimits::default(),
            Weak::new(),
            obs.clone(),
        ));
        let slot = s.open_request_stream(1);
        let sent = s
            .forward_one(request(1), slot.stream, &Vec::new(), Phase::Forwarding)
            .await;
        assert!(
            sent.is_ok(),
            "a request's failure is answered on its stream"
        );
        assert_eq!(s.in_flight(), 0);
        // The adapter's own report of the same loss, and the upstream going away, come
        // after the answer: neither answers nor counts it again.
        let id = request(1).id.unwrap();
        s.request_failed(&id, UpstreamError::StreamEnded);
        s.gone("the upstream went away");
        assert_eq!(obs.metrics.upstream_error_count(None), 1);
        assert_eq!(s.difference_count(Difference::ErrorSynthesized), 1);
        assert_eq!(s.difference_count(Difference::MessageDropped), 0);
    }

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(parse_event_id(&event_id(3, 17)), Some((3, 17)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("5"), None);
    }

    #[test]
    fn session_ids_are_128_bit_hex_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
