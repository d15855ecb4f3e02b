//! The one failure policy: what a client gets when the upstream leg of one of its messages
//! fails. Both fronts and every adapter end up here (through `Session::fail`), so each
//! failure is decided — and counted — exactly once.

use crate::error::UpstreamError;

/// Where in a client message's life the upstream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Forwarding the message that opens the client's session (a Streamable `initialize`):
    /// no session exists for the client until the upstream accepted it.
    Opening,
    /// Forwarding a message within an open session.
    Forwarding,
    /// After the upstream accepted a request: its answer was lost (a stream broke for good,
    /// the upstream went away).
    Answering,
}

/// What the client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A JSON-RPC error carrying the request's id, on the stream its answer was due on; the
    /// HTTP exchange itself succeeded (legacy clients stop sending after one non-2xx POST).
    ErrorOnStream,
    /// An HTTP error status (its body a JSON-RPC error with the request's id, when there is
    /// one); a request is forgotten — the client will send it again (after authenticating) or
    /// has no session to wait in.
    HttpError,
}

/// `request`: the failed message is a request (it has an id to answer).
pub fn decide(err: &UpstreamError, request: bool, phase: Phase) -> Outcome {
    match phase {
        Phase::Opening => Outcome::HttpError,
        Phase::Answering => Outcome::ErrorOnStream,
        // 401/403 go back as HTTP so that the client can start OAuth and retry.
        Phase::Forwarding if matches!(err, UpstreamError::Auth { .. }) => Outcome::HttpError,
        // A notification or response has no stream to carry an error: HTTP is all there is.
        Phase::Forwarding if !request => Outcome::HttpError,
        Phase::Forwarding => Outcome::ErrorOnStream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn auth() -> UpstreamError {
        UpstreamError::Auth {
            status: 401,
            www_authenticate: None,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn the_policy_table() {
        let down = || UpstreamError::Connect("refused".into());
        let slow = || UpstreamError::Timeout(Duration::from_secs(1));
        use Outcome::*;
        use Phase::*;
        let table: [(UpstreamError, bool, Phase, Outcome); 8] = [
            (down(), true, Opening, HttpError),
            (auth(), true, Opening, HttpError),
            (down(), true, Forwarding, ErrorOnStream),
            (slow(), true, Forwarding, ErrorOnStream),
            (auth(), true, Forwarding, HttpError),
            (down(), false, Forwarding, HttpError),
            (auth(), false, Forwarding, HttpError),
            (down(), true, Answering, ErrorOnStream),
        ];
        for (err, request, phase, want) in table {
            assert_eq!(
                decide(&err, request, phase),
                want,
                "{err} {request} {phase:?}"
            );
        }
    }
}
