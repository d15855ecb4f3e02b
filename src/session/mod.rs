//! A bridge session: the one place that knows both sides. It owns the client-facing streams,
//! the table of the client's in-flight requests, the upstream handle, and the router that
//! decides which stream each upstream message goes to.

mod budget;
mod failure;
mod inflight;
mod map;
mod router;
mod stream;

pub use budget::Budget;

pub use map::SessionMap;
pub use stream::{Poll, StreamNo, MAIN_STREAM};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use tracing::Span;

use crate::config::ReplayLimits;
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::{Difference, DifferenceCounts, Direction, Labels, Observer};
use crate::sse;
use crate::upstream::{ForwardHeaders, UpstreamHandle};
use stream::{OutStream, Stall, StallCheck};

/// Which transport the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// HTTP+SSE (2024-11-05): one stream, every message on it.
    Legacy,
    /// Streamable HTTP: a stream per request plus the standalone GET stream.
    Streamable,
}

impl Front {
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Legacy => "sse",
            Front::Streamable => "streamable",
        }
    }
}

/// Where the upstream delivered a message: all the relation metadata the bridge gets.
#[derive(Clone, Debug)]
pub enum Via {
    /// On the response stream of the client's request with this id (Streamable upstream).
    RequestStream(Id),
    /// On the upstream's standalone GET stream: unrelated to any request.
    StandaloneStream,
    /// On a legacy upstream's only stream: no relation metadata at all.
    SharedStream,
}

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
        }
    }
}

/// Protocol revisions the bridge serves on its Streamable front.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// First revision whose clients expect a priming event on every SSE stream.
const PRIMING_SINCE: &str = "2025-11-25";

struct Pending {
    stream: StreamNo,
    method: Box<str>,
    token: Option<Id>,
    since: Instant,
}

#[derive(Default)]
struct Stats {
    from_client: u64,
    to_client: u64,
    requests_by_method: HashMap<Box<str>, u32>,
    differences: DifferenceCounts,
}

struct State {
    streams: HashMap<StreamNo, OutStream>,
    next_stream: StreamNo,
    next_epoch: u64,
    pending: HashMap<Id, Pending>,
    tokens: HashMap<Id, StreamNo>,
    version: Option<String>,
    upstream_transport: &'static str,
    last_activity: Instant,
    ended: Option<EndReason>,
    stats: Stats,
}

/// A writer's claim on one stream: what an SSE response body holds.
pub struct WriterSlot {
    pub stream: StreamNo,
    pub epoch: u64,
}

pub struct Session {
    pub id: Arc<str>,
    pub front: Front,
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
}

impl Session {
    pub fn new(
        id: Arc<str>,
        front: Front,
        upstream: UpstreamHandle,
        limits: ReplayLimits,
        registry: Weak<SessionMap>,
        obs: Arc<Observer>,
    ) -> Session {
        let span = tracing::info_span!(
            "session",
            session = %id,
            client_transport = front.as_str(),
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
            OutStream::new(front == Front::Streamable, 0, limits, budget.clone()),
        );
        Session {
            id,
            front,
            span,
            upstream,
            state: Mutex::new(State {
                streams,
                next_stream: MAIN_STREAM + 1,
                next_epoch: 1,
                pending: HashMap::new(),
                tokens: HashMap::new(),
                version: None,
                upstream_transport: "pending",
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
        self.lock().pending.len()
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

    /// The upstream's transport once connected (`pending` before).
    pub fn upstream_transport(&self) -> &'static str {
        self.lock().upstream_transport
    }

    fn labels(&self, upstream: &'static str) -> Labels<'_> {
        Labels {
            session: &self.id,
            client: self.front.as_str(),
            upstream,
        }
    }

    pub fn negotiated_version(&self) -> Option<String> {
        self.lock().version.clone()
    }

    /// Record the upstream side once it is connected (for the span and difference lines).
    pub fn set_upstream(&self, transport: &'static str, upstream_session: Option<&str>) {
        self.lock().upstream_transport = transport;
        self.span.record("upstream_transport", transport);
        if let Some(s) = upstream_session {
            self.span.record("upstream_session", s);
        }
    }

    /// Record a difference about `msg` (its method and id go into the record).
    pub fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        let upstream = {
            let mut st = self.lock();
            st.stats.differences.add(kind);
            st.upstream_transport
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
                .and_then(|id| st.pending.get(id))
                .map(|p| p.method.clone());
            (st.upstream_transport, method)
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

    /// Bookkeeping for a message the client sent, before it goes upstream: requests are
    /// registered so their responses find `stream`.
    pub fn client_message(&self, msg: &Message, stream: StreamNo) {
        let mut st = self.lock();
        st.last_activity = Instant::now();
        st.stats.from_client += 1;
        match msg.kind {
            Kind::Request => {
                let method = msg.method().unwrap_or_default();
                match st.stats.requests_by_method.get_mut(method) {
                    Some(n) => *n += 1,
                    None => {
                        st.stats.requests_by_method.insert(method.into(), 1);
                    }
                }
                if let Some(token) = &msg.progress_token {
                    st.tokens.insert(token.clone(), stream);
                }
                if let Some(id) = &msg.id {
                    st.pending.insert(
                        id.clone(),
                        Pending {
                            stream,
                            method: method.into(),
                            token: msg.progress_token.clone(),
                            since: Instant::now(),
                        },
                    );
                }
            }
            Kind::Notification => {
                // The client gave up on a request: its stream ends now (servers may never
                // answer, as the TS SDK does) and a late response is dropped.
                if let Some(cancelled) = &msg.cancels {
                    if let Some(p) = st.pending.remove(cancelled) {
                        settle(&mut st, &p);
                    }
                }
            }
            Kind::Response => {}
        }
        let upstream = st.upstream_transport;
        drop(st);
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

    /// Send a message upstream; resolves once the upstream accepted it.
    pub async fn forward(
        &self,
        msg: Message,
        headers: ForwardHeaders,
    ) -> Result<(), UpstreamError> {
        let result = self.upstream.send(msg, headers).await;
        if let Err(e) = &result {
            self.obs.metrics.upstream_error(e.class());
        }
        result
    }

    /// An upstream adapter lost the answer to request `id` (a stream broke for good).
    pub fn upstream_failed(&self, id: &Id, err: &UpstreamError) {
        self.obs.metrics.upstream_error(err.class());
        self.fail_request(id, err);
    }

    /// A request the upstream refused at the HTTP level (401/403): the client will retry it,
    /// so it is forgotten without an answer.
    pub fn forget_request(&self, id: &Id) {
        let mut st = self.lock();
        if let Some(p) = st.pending.remove(id) {
            settle(&mut st, &p);
        }
    }

    /// Answer the client's request `id` with a JSON-RPC error for an upstream failure.
    pub fn fail_request(&self, id: &Id, err: &UpstreamError) {
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

    // ---- upstream → client -------------------------------------------------------------

    /// Route one upstream message to a client stream. The future resolves when the producer
    /// may go on: at once, or — while the target stream's connected writer is behind — once
    /// it caught up, went away, or read nothing for `--slow-reader-timeout` (its stream is
    /// then cut). It holds no lock and does not keep the session alive.
    pub fn deliver(self: &Arc<Self>, msg: Message, via: Via) -> impl Future<Output = ()> + 'static {
        let stall = self.push_message(msg, via);
        let session = Arc::downgrade(self);
        let deadline = self.limits.slow_reader_timeout;
        async move {
            let Some((stream, mut stall)) = stall else {
                return;
            };
            loop {
                if tokio::time::timeout(deadline, stall.notify.notified())
                    .await
                    .is_ok()
                {
                    return;
                }
                let Some(s) = session.upgrade() else { return };
                match s.stall_expired(stream, &stall) {
                    StallCheck::Progress(cursor) => stall.cursor = cursor,
                    StallCheck::Stuck | StallCheck::Over => return,
                }
            }
        }
    }

    /// Route and queue one upstream message; the stall to wait on when its stream's writer
    /// is behind.
    fn push_message(&self, mut msg: Message, via: Via) -> Option<(StreamNo, Stall)> {
        let mut notes: Vec<(Difference, String)> = Vec::new();
        let (stall, upstream) = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return None;
            }
            st.last_activity = Instant::now();
            st.stats.to_client += 1;
            let Some(target) = self.route(&mut st, &mut msg, &via, &mut notes) else {
                for (d, _) in &notes {
                    st.stats.differences.add(*d);
                }
                let upstream = st.upstream_transport;
                drop(st);
                for (d, reason) in notes {
                    self.emit_difference(d, upstream, msg.method(), msg.id.as_ref(), &reason);
                }
                return None;
            };
            let front = self.front;
            let upstream = st.upstream_transport;
            let stream = st
                .streams
                .get_mut(&target)
                .expect("route returns live streams");
            // Streamable events carry ids (`<stream>-<seq>`); legacy events none.
            let seq = (front == Front::Streamable).then(|| stream.next_seq());
            self.obs.message(
                &self.labels(upstream),
                Direction::UpstreamToClient,
                &msg,
                Some(target),
                seq,
            );
            let (lost, stall) = stream.push(|seq| match front {
                Front::Legacy => sse::encode(Some("message"), None, msg.raw()),
                Front::Streamable => {
                    sse::encode(Some("message"), Some(&event_id(target, seq)), msg.raw())
                }
            });
            if lost > 0 {
                notes.push((
                    Difference::MessageDropped,
                    format!(
                        "replay log of stream {target} full (--replay-events/--replay-bytes) with no reader: {lost} undelivered event(s) evicted"
                    ),
                ));
            }
            let excess = self.budget.excess();
            if excess > 0 {
                notes.extend(shed_notes(&shed(&mut st.streams, excess, true)));
            }
            for (d, _) in &notes {
                st.stats.differences.add(*d);
            }
            tracing::debug!(parent: &self.span, direction = "upstream_to_client", kind = msg.kind.as_str(),
                method = msg.method().unwrap_or(""), id = msg.id.as_ref().map(Id::json).unwrap_or(""),
                stream = target, bytes = msg.raw().len(), "message");
            (stall.map(|s| (target, s)), st.upstream_transport)
        };
        for (d, reason) in notes {
            self.emit_difference(d, upstream, msg.method(), msg.id.as_ref(), &reason);
        }
        let process_excess = self.budget.parent().map_or(0, |p| p.excess());
        if process_excess > 0 {
            if let Some(map) = self.registry.upgrade() {
                map.shed(process_excess);
            }
        }
        stall
    }

    /// A producer waited `--slow-reader-timeout` for the writer of `stream`. A writer that
    /// read nothing meanwhile is cut: its response ends so that its client resumes with
    /// `Last-Event-ID` (a legacy client cannot: its session ends).
    fn stall_expired(&self, stream: StreamNo, stall: &Stall) -> StallCheck {
        let check = match self.lock().streams.get(&stream) {
            Some(s) => s.check_stall(stall.epoch, stall.cursor),
            None => StallCheck::Over,
        };
        if check != StallCheck::Stuck {
            return check;
        }
        tracing::warn!(parent: &self.span, stream, timeout = ?self.limits.slow_reader_timeout,
            "client read nothing while events waited; its stream is cut");
        if self.front == Front::Legacy {
            // Before the cut, so that the writer's end is not taken for the client's.
            self.end(EndReason::SlowReader);
        }
        let lost = self
            .lock()
            .streams
            .get_mut(&stream)
            .and_then(|s| s.cut(stall.epoch))
            .unwrap_or(0);
        if lost > 0 {
            self.difference(
                Difference::MessageDropped,
                None,
                &format!("stream {stream} cut for a slow reader; replay log full (--replay-events/--replay-bytes): {lost} undelivered event(s) evicted"),
            );
        }
        check
    }

    /// Free up to `want` bytes for the process budget: with `lossy`, undelivered events of
    /// streams no one reads go too (recorded as dropped). Returns the bytes freed.
    pub fn shed(&self, want: usize, lossy: bool) -> usize {
        let (freed, notes, upstream) = {
            let mut st = self.lock();
            let shed = shed(&mut st.streams, want, lossy);
            let notes = shed_notes(&shed);
            for (d, _) in &notes {
                st.stats.differences.add(*d);
            }
            (shed.freed, notes, st.upstream_transport)
        };
        for (d, reason) in notes {
            self.emit_difference(d, upstream, None, None, &reason);
        }
        freed
    }

    /// The router. `None` means the message is dropped (the reason is in `notes`).
    fn route(
        &self,
        st: &mut State,
        msg: &mut Message,
        via: &Via,
        notes: &mut Vec<(Difference, String)>,
    ) -> Option<StreamNo> {
        if msg.kind == Kind::Response {
            let Some(id) = msg.id.clone() else {
                if self.front == Front::Legacy {
                    return Some(MAIN_STREAM); // a legacy client sees everything, as it would directly
                }
                notes.push((
                    Difference::MessageDropped,
                    "error response without an id: no request to route it to".into(),
                ));
                return None;
            };
            return match st.pending.remove_entry(&id) {
                Some((sent, p)) => {
                    // Ids match by value; the client still gets its id as it wrote it.
                    if sent.json() != id.json() {
                        notes.push((
                            Difference::IdRestored,
                            format!("upstream answered request id {sent} as {id}; the client's spelling was put back"),
                        ));
                        *msg = msg.with_id_text(&sent);
                    }
                    if &*p.method == "initialize" {
                        st.version = msg.protocol_version();
                    }
                    self.obs.metrics.latency(&p.method, p.since.elapsed());
                    settle(st, &p);
                    if self.front == Front::Legacy {
                        Some(MAIN_STREAM)
                    } else {
                        // Settling may have finished the stream; it still takes this last frame.
                        Some(p.stream)
                    }
                }
                None if self.front == Front::Legacy => Some(MAIN_STREAM),
                None => {
                    notes.push((
                        Difference::MessageDropped,
                        "response to a request that is not in flight (cancelled or answered)"
                            .into(),
                    ));
                    None
                }
            };
        }
        if self.front == Front::Legacy {
            return Some(MAIN_STREAM);
        }
        // Notifications and server requests on the Streamable front.
        let live = |st: &State, no: StreamNo| st.streams.get(&no).is_some_and(|s| !s.is_finished());
        if let Some(token) = &msg.progress_token {
            if let Some(&no) = st.tokens.get(token) {
                if live(st, no) {
                    return Some(no);
                }
            }
        }
        if let Via::RequestStream(rid) = via {
            if let Some(p) = st.pending.get(rid) {
                if live(st, p.stream) {
                    return Some(p.stream);
                }
            }
        }
        let main_open = st.streams[&MAIN_STREAM].has_writer();
        let only_request = (st.pending.len() == 1)
            .then(|| st.pending.values().next().map(|p| p.stream))
            .flatten()
            .filter(|&no| live(st, no));
        match (via, only_request, main_open) {
            // The upstream said it is unrelated and the client listens for such messages.
            (Via::StandaloneStream, _, true) => Some(MAIN_STREAM),
            // A legacy upstream gives no relation: with exactly one request in flight the
            // message almost surely belongs to it (logs, sampling while a tool runs), and its
            // stream keeps it in order with that request's progress and result.
            (_, Some(no), _) => {
                notes.push((
                    Difference::NotificationRerouted,
                    format!("no relation metadata; sent on the stream of the only request in flight (stream {no})"),
                ));
                Some(no)
            }
            (_, None, true) => {
                notes.push((
                    Difference::NotificationRerouted,
                    format!(
                        "no relation metadata; {} requests in flight; sent on the standalone stream",
                        st.pending.len()
                    ),
                ));
                Some(MAIN_STREAM)
            }
            (_, None, false) => {
                notes.push((
                    Difference::MessageBuffered,
                    "no stream to carry it; kept for the standalone stream (GET)".into(),
                ));
                Some(MAIN_STREAM)
            }
        }
    }

    // ---- writers (SSE response bodies) ---------------------------------------------------

    /// Attach a writer to the main stream: the legacy GET, or a Streamable GET without
    /// `Last-Event-ID` (it gets whatever was buffered for it).
    pub fn attach_main(&self) -> WriterSlot {
        let mut st = self.lock();
        let epoch = st.next_epoch;
        st.next_epoch += 1;
        let prime = self.front == Front::Streamable
            && st.version.as_deref().is_some_and(|v| v >= PRIMING_SINCE);
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

    /// The client's connection for this writer is gone. On the legacy front that ends the
    /// session; on the Streamable front the stream stays for replay.
    pub fn detach_writer(&self, slot: &WriterSlot) {
        let end = {
            let mut st = self.lock();
            if let Some(s) = st.streams.get_mut(&slot.stream) {
                s.detach(slot.epoch);
            }
            st.last_activity = Instant::now();
            self.front == Front::Legacy && slot.stream == MAIN_STREAM && st.ended.is_none()
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

    // ---- lifecycle -------------------------------------------------------------------------

    /// The upstream is gone: every request still in flight gets an error, then the session ends.
    pub fn upstream_gone(&self, why: &str) {
        let ids: Vec<Id> = self.lock().pending.keys().cloned().collect();
        tracing::warn!(parent: &self.span, in_flight = ids.len(), "upstream gone: {why}");
        let err = UpstreamError::Connect(why.to_owned());
        for id in ids {
            self.upstream_failed(&id, &err);
        }
        self.end(EndReason::UpstreamGone);
    }

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
            let mut methods: Vec<_> = st.stats.requests_by_method.iter().collect();
            methods.sort();
            let methods: Vec<String> = methods.iter().map(|(m, n)| format!("{m}={n}")).collect();
            (
                st.upstream_transport,
                st.stats.from_client,
                st.stats.to_client,
                methods.join(","),
                st.stats.differences.summary(),
            )
        };
        self.upstream.close();
        if let Some(map) = self.registry.upgrade() {
            map.remove(&self.id);
        }
        let (upstream, from_client, to_client, methods, differences) = summary;
        let duration_ms = self.created.elapsed().as_millis() as u64;
        self.obs
            .session_end(&self.labels(upstream), reason.as_str(), duration_ms);
        tracing::info!(
            target: "mcp_bridge::summary",
            parent: &self.span,
            session = %self.id,
            client_transport = self.front.as_str(),
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

/// What freeing memory took from a session's streams.
#[derive(Default)]
struct Shed {
    freed: usize,
    /// Undelivered events evicted, per stream.
    dropped: Vec<(StreamNo, usize)>,
}

/// Free `want` bytes from a session's streams, cheapest loss first and oldest stream first:
/// delivered frames of finished streams, then of live ones, then finished streams kept only
/// to recognise a late `Last-Event-ID`, and (with `lossy`) undelivered frames of streams no
/// one reads. A connected writer's undelivered frames are never taken.
fn shed(streams: &mut HashMap<StreamNo, OutStream>, want: usize, lossy: bool) -> Shed {
    let mut out = Shed::default();
    let mut order: Vec<StreamNo> = streams.keys().copied().collect();
    order.sort_unstable();
    for finished_only in [true, false] {
        for no in &order {
            if out.freed >= want {
                return out;
            }
            let s = streams.get_mut(no).expect("listed");
            if s.is_finished() || !finished_only {
                out.freed += s.drop_delivered(want - out.freed);
            }
        }
    }
    for no in &order {
        if out.freed >= want {
            return out;
        }
        let s = &streams[no];
        if *no != MAIN_STREAM && s.is_finished() && !s.has_writer() && !s.holds_frames() {
            streams.remove(no);
            out.freed += stream::STREAM_OVERHEAD;
        }
    }
    if lossy {
        for no in &order {
            if out.freed >= want {
                return out;
            }
            if let Some(s) = streams.get_mut(no) {
                let (freed, dropped) = s.drop_undelivered(want - out.freed);
                out.freed += freed;
                if dropped > 0 {
                    out.dropped.push((*no, dropped));
                }
            }
        }
    }
    out
}

fn shed_notes(shed: &Shed) -> Vec<(Difference, String)> {
    shed.dropped
        .iter()
        .map(|(no, n)| {
            (
                Difference::MessageDropped,
                format!("replay budget (--replay-session-bytes/--replay-total-bytes) exceeded: {n} undelivered event(s) of stream {no} evicted"),
            )
        })
        .collect()
}

/// A request left the in-flight table: its stream owes one response fewer, and its progress
/// token no longer routes.
fn settle(st: &mut State, p: &Pending) {
    if let Some(token) = &p.token {
        if st.tokens.get(token) == Some(&p.stream) {
            st.tokens.remove(token);
        }
    }
    if let Some(s) = st.streams.get_mut(&p.stream) {
        s.awaiting = s.awaiting.saturating_sub(1);
        if s.awaiting == 0 && p.stream != MAIN_STREAM {
            s.finish();
        }
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
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    let mut s = String::with_capacity(32);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(budget: &Arc<Budget>) -> HashMap<StreamNo, OutStream> {
        let limits = ReplayLimits::default();
        let mut m = HashMap::new();
        for no in 0..3 {
            let mut s = OutStream::new(true, 1, limits, budget.clone());
            s.attach(no + 1, None);
            for _ in 0..2 {
                let _ = s.push(|_| Bytes::from(vec![b'x'; 100]));
            }
            m.insert(no, s);
        }
        m
    }

    fn deliver_one(s: &mut OutStream, epoch: u64) {
        assert!(matches!(
            s.poll(epoch, futures_util::task::noop_waker_ref()),
            Poll::Frame(_)
        ));
    }

    #[test]
    fn shedding_takes_what_no_client_misses_first() {
        let budget = Budget::process(usize::MAX);
        let mut m = streams(&budget);
        // Stream 1: one frame delivered, still live. Stream 2: one delivered, then finished
        // and left by its writer mid-way. Stream 0: connected, nothing read.
        deliver_one(m.get_mut(&1).unwrap(), 2);
        deliver_one(m.get_mut(&2).unwrap(), 3);
        m.get_mut(&2).unwrap().detach(3);
        m.get_mut(&2).unwrap().finish();
        let shed1 = shed(&mut m, 100, true);
        assert_eq!((shed1.freed, shed1.dropped.len()), (100, 0));
        assert_eq!(
            m[&2].buffered_bytes(),
            100,
            "the finished stream's delivered frame"
        );
        let shed2 = shed(&mut m, 100, true);
        assert_eq!((shed2.freed, shed2.dropped.len()), (100, 0));
        assert_eq!(
            m[&1].buffered_bytes(),
            100,
            "then a live stream's delivered frame"
        );
        // Now only undelivered frames: those of the stream no one reads go, recorded.
        let shed3 = shed(&mut m, 1000, true);
        assert_eq!(shed3.dropped, vec![(2, 1)]);
        assert_eq!(
            m[&0].buffered_bytes(),
            200,
            "a connected reader's frames stay"
        );
        assert_eq!(m[&1].buffered_bytes(), 100);
    }

    #[test]
    fn without_loss_only_delivered_frames_and_empty_finished_streams_go() {
        let budget = Budget::process(usize::MAX);
        let mut m = streams(&budget);
        let s = m.get_mut(&2).unwrap();
        s.finish();
        deliver_one(s, 3);
        deliver_one(s, 3);
        assert!(matches!(
            s.poll(3, futures_util::task::noop_waker_ref()),
            Poll::End
        ));
        s.detach(3);
        let before = budget.used();
        let out = shed(&mut m, usize::MAX, false);
        assert!(out.dropped.is_empty());
        assert!(!m.contains_key(&2), "a finished, fully read stream goes");
        assert_eq!(budget.used(), before - out.freed);
        assert_eq!(m[&0].buffered_bytes() + m[&1].buffered_bytes(), 400);
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
