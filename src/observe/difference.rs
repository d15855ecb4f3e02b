//! Transport differences: every place where the bridge had to translate or decide because the
//! two transports differ. Each is one structured event under the target
//! `mcp_bridge::difference`, so operators can filter exactly these lines.

use crate::jsonrpc::Id;

/// The closed set of difference kinds (documented in README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Difference {
    /// A legacy client got an `endpoint` event naming the bridge's message path.
    EndpointRewritten,
    /// A JSON array body was split into single messages.
    BatchSplit,
    /// A notification or server request with no stream of its own was sent on another stream.
    NotificationRerouted,
    /// A message waits in the standalone stream's log until the client opens it.
    MessageBuffered,
    /// An upstream priming event (id, empty data) was consumed and not relayed.
    PrimingDropped,
    /// A broken upstream stream was resumed with `Last-Event-ID`.
    StreamResumed,
    /// Events were replayed to a client that reconnected with `Last-Event-ID`.
    EventsReplayed,
    /// The upstream session expired and was re-initialised from the client's `initialize`.
    SessionReinitialised,
    /// The replica owning the session was gone: this one took the session over and
    /// re-initialised its upstream session from the client's cached `initialize`.
    SessionTakenOver,
    /// A message could not be delivered and was dropped.
    MessageDropped,
    /// An error response with a null or missing id was given the id of its request.
    ErrorReaddressed,
    /// The upstream transport was chosen by probing.
    TransportDetected,
    /// The legacy upstream sent a new `endpoint` event mid-session.
    UpstreamEndpointChanged,
    /// The bridge answered an upstream failure with a JSON-RPC error of its own.
    ErrorSynthesized,
    /// `MCP-Protocol-Version` was added to upstream requests for a client that sends none
    /// (legacy clients).
    ProtocolVersionHeaderAdded,
    /// A client header was not forwarded upstream by the header policy.
    HeaderStripped,
    /// Line breaks between JSON tokens of a message for a stdio server became spaces (its
    /// framing is one message per line).
    LineBreaksReplaced,
    /// The upstream answered with the request's id spelled differently (`1.0` as `1`); the
    /// client's own spelling was put back.
    IdRestored,
    /// A 2026-07-28 upstream has no `initialize`: the client's was answered from the
    /// upstream's `server/discover`.
    HandshakeTranslated,
    /// A message the 2026-07-28 era removed (`ping`, `notifications/initialized`,
    /// `logging/setLevel`, `resources/subscribe`) was handled by the bridge.
    AnsweredLocally,
    /// A request to a 2026-07-28 upstream was given `params._meta` (protocol version, client
    /// capabilities and info, log level) and the era's headers.
    RequestStamped,
    /// A 2026-07-28 `input_required` result became server-to-client requests, and their
    /// answers a retry of the original request.
    InputRequired,
    /// A 2026-07-28 upstream has no GET stream: the client's unsolicited messages come from a
    /// `subscriptions/listen` stream the bridge opened (its acknowledgement not forwarded).
    ListenOpened,
    /// A 2026-07-28 client's `subscriptions/listen` was served from the unsolicited messages
    /// of an upstream session it holds: `resources/subscribe` upstream for its URIs, the
    /// acknowledgement made by the bridge, each notification tagged with the subscription id.
    ListenServed,
}

impl Difference {
    pub const ALL: [Difference; 24] = [
        Difference::EndpointRewritten,
        Difference::BatchSplit,
        Difference::NotificationRerouted,
        Difference::MessageBuffered,
        Difference::PrimingDropped,
        Difference::StreamResumed,
        Difference::EventsReplayed,
        Difference::SessionReinitialised,
        Difference::SessionTakenOver,
        Difference::MessageDropped,
        Difference::ErrorReaddressed,
        Difference::TransportDetected,
        Difference::UpstreamEndpointChanged,
        Difference::ErrorSynthesized,
        Difference::ProtocolVersionHeaderAdded,
        Difference::HeaderStripped,
        Difference::LineBreaksReplaced,
        Difference::IdRestored,
        Difference::HandshakeTranslated,
        Difference::AnsweredLocally,
        Difference::RequestStamped,
        Difference::InputRequired,
        Difference::ListenOpened,
        Difference::ListenServed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Difference::EndpointRewritten => "endpoint_rewritten",
            Difference::BatchSplit => "batch_split",
            Difference::NotificationRerouted => "notification_rerouted",
            Difference::MessageBuffered => "message_buffered",
            Difference::PrimingDropped => "priming_dropped",
            Difference::StreamResumed => "stream_resumed",
            Difference::EventsReplayed => "events_replayed",
            Difference::SessionReinitialised => "session_reinitialised",
            Difference::SessionTakenOver => "session_taken_over",
            Difference::MessageDropped => "message_dropped",
            Difference::ErrorReaddressed => "error_readdressed",
            Difference::TransportDetected => "transport_detected",
            Difference::UpstreamEndpointChanged => "upstream_endpoint_changed",
            Difference::ErrorSynthesized => "error_synthesized",
            Difference::ProtocolVersionHeaderAdded => "protocol_version_header_added",
            Difference::HeaderStripped => "header_stripped",
            Difference::LineBreaksReplaced => "line_breaks_replaced",
            Difference::IdRestored => "id_restored",
            Difference::HandshakeTranslated => "handshake_translated",
            Difference::AnsweredLocally => "answered_locally",
            Difference::RequestStamped => "request_stamped",
            Difference::InputRequired => "input_required",
            Difference::ListenOpened => "listen_opened",
            Difference::ListenServed => "listen_served",
        }
    }

    pub fn index(self) -> usize {
        Difference::ALL
            .iter()
            .position(|d| *d == self)
            .expect("ALL lists every kind")
    }
}

/// Per-session counts of each difference kind, for the session summary.
#[derive(Default, Debug, Clone)]
pub struct DifferenceCounts([u32; Difference::ALL.len()]);

impl DifferenceCounts {
    pub fn add(&mut self, d: Difference) {
        self.0[d.index()] += 1;
    }

    pub fn get(&self, d: Difference) -> u32 {
        self.0[d.index()]
    }

    /// `kind=count` pairs of the kinds that occurred.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = Difference::ALL
            .iter()
            .filter(|d| self.get(**d) > 0)
            .map(|d| format!("{}={}", d.as_str(), self.get(*d)))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(",")
        }
    }
}

/// Emit one difference record. The caller's span carries the session; the fields repeat the
/// essentials so that each line stands on its own.
#[allow(clippy::too_many_arguments)]
pub fn emit(
    kind: Difference,
    session: &str,
    client_transport: &str,
    upstream_transport: &str,
    method: Option<&str>,
    id: Option<&Id>,
    reason: &str,
) {
    tracing::info!(
        target: "mcp_bridge::difference",
        kind = kind.as_str(),
        session,
        client_transport,
        upstream_transport,
        method = method.unwrap_or(""),
        id = id.map(Id::json).unwrap_or(""),
        "{reason}"
    );
}
