//! Which transport to open an upstream session with. Fixed by the operator, or in `auto`
//! mode the spec's backwards-compatibility procedure: POST the client's `initialize`; on
//! 400/404/405 without a modern error body, GET the same URL and wait for `endpoint`. The
//! outcome is cached per upstream; when the cached choice stops working (the server was
//! upgraded or downgraded) the other is tried and cached instead. Each decision is recorded
//! with its evidence.

use std::rc::Rc;

use super::{open, Connection, Opening};
use crate::error::UpstreamError;
use crate::observe::Difference;
use crate::transport::{Transport, UpstreamTransport};

pub(super) async fn connect(o: Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let shared = &o.shared;
    let order = order(
        shared.cfg.upstream_transport,
        shared.cached(),
        o.first.is_initialize(),
    );
    let mut evidence = Vec::new();
    for (i, &transport) in order.iter().enumerate() {
        let last = i + 1 == order.len();
        match open(transport, &o).await {
            Ok(conn) => {
                let auto = shared.cfg.upstream_transport == UpstreamTransport::Auto;
                if auto && shared.remember(transport) {
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
            Err(e) if !last && suggests_other_transport(transport, &e) => {
                evidence.push(format!("{transport} attempt failed: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// The transports to try, in order.
fn order(
    configured: UpstreamTransport,
    cached: Option<Transport>,
    initialize: bool,
) -> Vec<Transport> {
    use Transport::{LegacySse, Streamable};
    match configured {
        UpstreamTransport::Fixed(t) => vec![t],
        // Only an `initialize` can probe: anything else says nothing about the transport.
        UpstreamTransport::Auto if !initialize => vec![cached.unwrap_or(Streamable)],
        // The newer transport first, unless this upstream was seen to speak the older one.
        UpstreamTransport::Auto => match cached {
            Some(LegacySse) => vec![LegacySse, Streamable],
            _ => vec![Streamable, LegacySse],
        },
    }
}

/// Whether a failed attempt means "wrong transport" rather than "server down".
fn suggests_other_transport(tried: Transport, e: &UpstreamError) -> bool {
    match (tried, e) {
        // A modern server that answers with a JSON-RPC error it recognises (2026: unknown
        // method, unsupported version, header mismatch) must not be treated as legacy.
        (Transport::Streamable, UpstreamError::Status { status, rpc_error }) => {
            matches!(status, 400 | 404 | 405)
                && !rpc_error
                    .as_ref()
                    .and_then(|m| m.error_code())
                    .is_some_and(|c| c == -32601 || (-32022..=-32020).contains(&c))
        }
        (Transport::LegacySse, UpstreamError::Status { .. })
        | (Transport::LegacySse, UpstreamError::NoEndpoint(_))
        | (Transport::LegacySse, UpstreamError::Protocol(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::{LegacySse, Streamable};

    #[test]
    fn auto_probes_newest_first_unless_the_upstream_was_seen_legacy() {
        let auto = UpstreamTransport::Auto;
        assert_eq!(order(auto, None, true), [Streamable, LegacySse]);
        assert_eq!(order(auto, Some(LegacySse), true), [LegacySse, Streamable]);
        assert_eq!(order(auto, Some(LegacySse), false), [LegacySse]);
        assert_eq!(order(auto, None, false), [Streamable]);
        assert_eq!(
            order(UpstreamTransport::Fixed(LegacySse), None, true),
            [LegacySse]
        );
    }

    #[test]
    fn a_modern_error_body_is_not_taken_for_a_legacy_server() {
        let status = |code: Option<i64>| UpstreamError::Status {
            status: 400,
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
        };
        assert!(suggests_other_transport(Streamable, &status(None)));
        assert!(!suggests_other_transport(Streamable, &status(Some(-32022))));
        assert!(!suggests_other_transport(Streamable, &status(Some(-32601))));
        assert!(!suggests_other_transport(
            Streamable,
            &UpstreamError::Connect("refused".into())
        ));
    }
}
