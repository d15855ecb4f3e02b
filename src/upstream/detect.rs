//! Which transport to open an upstream session with. Fixed by the operator, or in `auto`
//! mode the spec's backwards-compatibility procedure: POST the client's `initialize`; on
//! 400/404/405 without a modern error body, GET the same URL and wait for `endpoint`. The
//! outcome is cached per upstream; when the cached choice stops working (the server was
//! upgraded or downgraded) the other is tried and cached instead. Each decision is recorded
//! with its evidence.

use std::rc::Rc;

use super::{open, Connection, Opening};
use crate::era::codes::is_modern_rejection;
use crate::error::UpstreamError;
use crate::observe::Difference;
use crate::transport::{Transport, UpstreamTransport};

pub(super) async fn connect(o: Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let shared = &o.shared;
    let configured = shared.cfg.upstream_transport;
    let mut next = Some(first_choice(configured, shared.cached()));
    let mut tried = Vec::new();
    let mut evidence = Vec::new();
    while let Some(transport) = next {
        tried.push(transport);
        match open(transport, &o).await {
            Ok(conn) => {
                if configured == UpstreamTransport::Auto && shared.remember(transport) {
                    if let Some(sink) = o.sink.upgrade() {
                        let why = if evidence.is_empty() {
                            format!("{transport} answered the client's initialize")
                        } else {
                            format!("{}; {transport} worked", evidence.join("; "))
                        };
                        sink.difference(
                            Difference::TransportDetected,
                            Some(&o.first),
                            &format!("upstream {} speaks {transport}: {why}", shared.cfg.upstream),
                        );
                    }
                }
                return Ok(conn);
            }
            Err(e) => {
                // Only an `initialize` can probe: anything else says nothing about the transport.
                let probing = configured == UpstreamTransport::Auto && o.first.is_initialize();
                next = probing
                    .then(|| fallback(transport, &e))
                    .flatten()
                    .filter(|t| !tried.contains(t));
                if next.is_none() {
                    return Err(e);
                }
                evidence.push(format!("{transport} attempt failed: {e}"));
            }
        }
    }
    unreachable!("the loop returns")
}

/// The transport to try first: the operator's, else the one last seen, else Streamable (the
/// client's own era for every 2025 client; legacy SSE stays the last fallback).
fn first_choice(configured: UpstreamTransport, cached: Option<Transport>) -> Transport {
    match configured {
        UpstreamTransport::Fixed(t) => t,
        UpstreamTransport::Auto => cached.unwrap_or(Transport::Streamable),
    }
}

/// What a failed attempt says the server speaks instead, if anything ("server down" says
/// nothing). A 2026-07-28 server recognises the attempt and answers with a modern error
/// (unsupported version, header mismatch, unknown method); a legacy SSE server refuses the
/// POST with a plain 400/404/405.
fn fallback(tried: Transport, e: &UpstreamError) -> Option<Transport> {
    use Transport::{LegacySse, Streamable, Streamable2026};
    let UpstreamError::Status { status, rpc_error } = e else {
        return match (tried, e) {
            (LegacySse, UpstreamError::NoEndpoint(_) | UpstreamError::Protocol(_)) => {
                Some(Streamable)
            }
            (Streamable2026, UpstreamError::Protocol(_)) => Some(Streamable),
            _ => None,
        };
    };
    let code = rpc_error.as_ref().and_then(|m| m.error_code());
    if is_modern_rejection(*status, code) {
        return (tried != Streamable2026).then_some(Streamable2026);
    }
    match tried {
        LegacySse => Some(Streamable),
        _ if !matches!(status, 400 | 404 | 405) => None,
        Streamable => Some(LegacySse),
        Streamable2026 => Some(Streamable),
        Transport::Stdio => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::{LegacySse, Streamable, Streamable2026};

    fn status(status: u16, code: Option<i64>) -> UpstreamError {
        UpstreamError::Status {
            status,
            rpc_error: code.map(|c| {
                Box::new(
                    crate::jsonrpc::Message::parse(
                        format!(
                            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{c},"message":"x"}}}}"#
                        )
                        .into(),
                    )
                    .unwrap(),
                )
            }),
        }
    }

    #[test]
    fn the_first_attempt_is_the_operators_choice_or_the_last_seen() {
        assert_eq!(first_choice(UpstreamTransport::Auto, None), Streamable);
        assert_eq!(
            first_choice(UpstreamTransport::Auto, Some(LegacySse)),
            LegacySse
        );
        let fixed = UpstreamTransport::Fixed(Streamable2026);
        assert_eq!(first_choice(fixed, Some(LegacySse)), Streamable2026);
    }

    #[test]
    fn a_modern_error_means_2026_and_a_plain_refusal_means_legacy() {
        assert_eq!(
            fallback(Streamable, &status(400, Some(-32022))),
            Some(Streamable2026)
        );
        assert_eq!(
            fallback(Streamable, &status(404, Some(-32601))),
            Some(Streamable2026)
        );
        assert_eq!(fallback(Streamable, &status(405, None)), Some(LegacySse));
        assert_eq!(fallback(Streamable, &status(400, None)), Some(LegacySse));
        assert_eq!(fallback(Streamable, &status(500, None)), None);
        assert_eq!(fallback(LegacySse, &status(405, None)), Some(Streamable));
        // A 2025 server asked for server/discover without a session: back to Streamable.
        assert_eq!(
            fallback(Streamable2026, &status(400, None)),
            Some(Streamable)
        );
        assert_eq!(
            fallback(Streamable, &UpstreamError::Connect("refused".into())),
            None
        );
    }
}
