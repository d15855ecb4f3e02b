//! Whether an upstream's refusal means it no longer knows the session (it restarted, or the
//! session expired). One decision for every path that sends the session id (POST, the
//! standalone GET stream, stream resumption), so they all re-initialise on the same signals.

use crate::error::UpstreamError;

/// Phrases with which servers say a session id is not theirs, when they answer 400.
const UNKNOWN_SESSION: [&str; 6] = [
    "no valid session",
    "invalid session",
    "session not found",
    "unknown session",
    "session expired",
    "session has expired",
];

/// 404 is the spec's signal (TypeScript and Python SDK transports). The TypeScript example
/// servers, server-everything among them, answer 400 with the JSON-RPC error
/// `-32000 "Bad Request: No valid session ID provided"` instead: a 400 counts when its error
/// says the session is unknown. Other 400s (a missing header, a bad version) do not.
pub fn session_lost(err: &UpstreamError) -> bool {
    let UpstreamError::Status { status, rpc_error } = err else {
        return false;
    };
    match status {
        404 => true,
        400 => rpc_error
            .as_ref()
            .and_then(|e| e.error_message())
            .is_some_and(|m| says_unknown_session(&m)),
        _ => false,
    }
}

fn says_unknown_session(message: &str) -> bool {
    let m = message.to_ascii_lowercase().replace(['-', '_'], " ");
    UNKNOWN_SESSION.iter().any(|p| m.contains(p))
        || m.contains("session id") && m.contains("invalid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Message;

    fn status(status: u16, body: &str) -> UpstreamError {
        UpstreamError::Status {
            status,
            rpc_error: Message::parse(bytes::Bytes::copy_from_slice(body.as_bytes()))
                .ok()
                .map(Box::new),
        }
    }

    #[test]
    fn not_found_is_session_loss() {
        assert!(session_lost(&status(404, "")));
        assert!(session_lost(&status(
            404,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#
        )));
    }

    #[test]
    fn server_everything_400_is_session_loss() {
        // Verbatim from @modelcontextprotocol/server-everything's streamableHttp transport.
        let body = r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}"#;
        assert!(session_lost(&status(400, body)));
        let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Invalid Mcp-Session-Id"}}"#;
        assert!(session_lost(&status(400, body)));
    }

    #[test]
    fn other_refusals_are_not() {
        let missing = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required"}}"#;
        assert!(!session_lost(&status(400, missing)));
        let version = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Unsupported protocol version"}}"#;
        assert!(!session_lost(&status(400, version)));
        assert!(!session_lost(&status(400, "not json")));
        assert!(!session_lost(&status(500, "")));
        assert!(!session_lost(&UpstreamError::StreamEnded));
    }
}
