//! The transports the bridge speaks, on either side: one type, so that config, sessions,
//! metrics, logs and the journal name them the same way, and so that what a session needs to
//! know about a transport is asked of it rather than matched by name.

use std::fmt;
use std::str::FromStr;

/// One MCP transport. Adding one is a variant here, an adapter file and its registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP+SSE (protocol 2024-11-05): one event stream carries every server message; the
    /// client POSTs to the URL named by its first `endpoint` event.
    LegacySse,
    /// Streamable HTTP (2025-03-26 … 2025-11-25): a stream per request, a standalone GET
    /// stream, `Mcp-Session-Id`, resumable with event ids.
    Streamable,
    /// Streamable HTTP as of protocol 2026-07-28: sessionless (no `initialize`, no session
    /// id, no GET stream, no resumption); every request carries `params._meta` and the era's
    /// headers; server-to-client requests become `input_required` results.
    Streamable2026,
    /// A local process speaking newline-delimited JSON on stdin/stdout (upstream only,
    /// chosen by `--upstream-command`): one shared stream, no relation metadata.
    Stdio,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::LegacySse,
        Transport::Streamable,
        Transport::Streamable2026,
        Transport::Stdio,
    ];

    /// The transports an HTTP upstream may speak (`--upstream-transport`).
    pub const HTTP: [Transport; 3] = [
        Transport::LegacySse,
        Transport::Streamable,
        Transport::Streamable2026,
    ];

    /// The transports the bridge serves clients on.
    pub const CLIENTS: [Transport; 2] = [Transport::LegacySse, Transport::Streamable];

    /// The name used in flags, metrics labels, logs and the journal.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::LegacySse => "sse",
            Transport::Streamable => "streamable",
            Transport::Streamable2026 => "streamable-2026",
            Transport::Stdio => "stdio",
        }
    }

    /// Every server message travels on one shared stream: responses carry no stream of
    /// their own, and the client sees everything in upstream order.
    pub const fn one_shared_stream(self) -> bool {
        matches!(self, Transport::LegacySse)
    }

    /// Events carry ids and a client may resume a broken stream with `Last-Event-ID`, so
    /// streams keep a replay log.
    pub const fn resumable(self) -> bool {
        matches!(self, Transport::Streamable)
    }

    /// The client's session is its stream: when the stream's connection goes, so does the
    /// session.
    pub const fn session_ends_with_stream(self) -> bool {
        matches!(self, Transport::LegacySse)
    }

    /// Clients of this transport send `MCP-Protocol-Version` themselves once negotiated.
    pub const fn sends_version_header(self) -> bool {
        matches!(self, Transport::Streamable | Transport::Streamable2026)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--upstream-transport`: detected from the server's answers, or fixed by the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTransport {
    /// Probe with the client's `initialize` (POST): a 2025 server answers it, a 2026-07-28
    /// server rejects it with a modern error, anything else falls back to legacy SSE (GET).
    Auto,
    Fixed(Transport),
}

impl FromStr for UpstreamTransport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(UpstreamTransport::Auto);
        }
        Transport::HTTP
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .map(UpstreamTransport::Fixed)
            .ok_or_else(|| {
                let names: Vec<&str> = Transport::HTTP.iter().map(|t| t.as_str()).collect();
                format!("expected auto, {}", names.join(", "))
            })
    }
}

impl fmt::Display for UpstreamTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamTransport::Auto => f.write_str("auto"),
            UpstreamTransport::Fixed(t) => t.fmt(f),
        }
    }
}

/// The upstream side of a session as metrics and logs name it: `pending` until connected.
pub fn upstream_label(t: Option<Transport>) -> &'static str {
    t.map_or("pending", Transport::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_transport_parses_every_name_and_round_trips() {
        for t in Transport::HTTP {
            let parsed: UpstreamTransport = t.as_str().parse().unwrap();
            assert_eq!(parsed, UpstreamTransport::Fixed(t));
            assert_eq!(parsed.to_string(), t.as_str());
        }
        assert_eq!(
            "AUTO".parse::<UpstreamTransport>(),
            Ok(UpstreamTransport::Auto)
        );
        assert!("stdio-ish".parse::<UpstreamTransport>().is_err());
    }

    #[test]
    fn capabilities_follow_the_transport() {
        assert!(Transport::LegacySse.one_shared_stream());
        assert!(!Transport::LegacySse.resumable());
        assert!(Transport::Streamable.resumable());
        assert!(Transport::Streamable.sends_version_header());
        assert_eq!(upstream_label(None), "pending");
    }
}
