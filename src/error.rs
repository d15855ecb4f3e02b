//! Errors tagged by the side they come from, and the one place that turns them into HTTP
//! statuses and JSON-RPC errors.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;

use crate::jsonrpc::{codes, Id, Message, ParseError};

/// What the client did wrong (or asked for that cannot be served).
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    #[error("host {0:?} is not allowed (DNS rebinding protection)")]
    ForbiddenHost(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("Accept must include {0}")]
    NotAcceptable(&'static str),
    #[error("body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("initialize must not be part of a batch")]
    BatchedInitialize(Option<Id>),
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("missing session id")]
    MissingSessionId,
    #[error("session not found")]
    UnknownSession,
    #[error("server not initialized: send initialize without a session id first")]
    NotInitialized(Option<Id>),
    #[error("session already initialized")]
    AlreadyInitialized(Option<Id>),
    #[error("unsupported MCP-Protocol-Version {0:?}")]
    UnsupportedProtocolVersion(String),
    #[error("too many sessions")]
    SessionLimit,
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    #[error("this credential already holds {0} sessions")]
    CredentialSessionLimit(usize),
    #[error("this session already has {0} requests in flight")]
    SessionBusy(usize),
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("not found")]
    NotFound,
    #[error("replica unavailable: {0}")]
    ReplicasUnavailable(&'static str),
    #[error("the replica owning the session failed: {0}")]
    RelayFailed(String),
    #[error("bad replica-to-replica signature")]
    ForgedHop,
}

impl DownstreamError {
    /// A short stable name when the request was refused by policy (for logs and metrics).
    pub fn refusal(&self) -> Option<&'static str> {
        Some(match self {
            DownstreamError::ForbiddenOrigin(_) => "forbidden_origin",
            DownstreamError::ForbiddenHost(_) => "forbidden_host",
            DownstreamError::BodyTooLarge(_) => "body_too_large",
            DownstreamError::BodyTimeout(_) => "body_timeout",
            DownstreamError::SessionLimit => "session_limit",
            DownstreamError::MissingToken => "missing_token",
            DownstreamError::InvalidToken => "invalid_token",
            DownstreamError::CredentialSessionLimit(_) => "credential_session_limit",
            DownstreamError::SessionBusy(_) => "session_busy",
            DownstreamError::ForgedHop => "forged_replica_request",
            _ => return None,
        })
    }
}

/// What went wrong talking to the upstream server.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the upstream: {0}")]
    Connect(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream requires authorization (HTTP {status})")]
    Auth {
        status: u16,
        www_authenticate: Option<String>,
        body: Bytes,
    },
    #[error("the upstream answered HTTP {status}")]
    Status {
        status: u16,
        /// The JSON-RPC error the upstream put in its body, if any.
        rpc_error: Option<Box<Message>>,
    },
    #[error("the upstream session is gone")]
    SessionGone,
    #[error("the upstream stream ended before the response")]
    StreamEnded,
    #[error("the upstream broke the protocol: {0}")]
    Protocol(String),
    #[error("the upstream sent no endpoint event within {0:?}")]
    NoEndpoint(Duration),
    /// The upstream speaks no protocol revision the bridge can serve this client with.
    #[error("the upstream speaks no protocol revision the bridge supports: {0}")]
    Incompatible(String),
    #[error("the bridge session is closed")]
    Closed,
}

impl UpstreamError {
    /// A short stable name, for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Auth { .. } => "auth",
            UpstreamError::Status { .. } => "status",
            UpstreamError::SessionGone => "session_gone",
            UpstreamError::StreamEnded => "stream_ended",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::NoEndpoint(_) => "no_endpoint",
            UpstreamError::Closed => "closed",
            UpstreamError::Incompatible(_) => "incompatible",
        }
    }

    /// The JSON-RPC error a client receives for its request `id` when this happens.
    pub fn to_rpc_error(&self, id: &Id) -> Message {
        match self {
            UpstreamError::Status {
                rpc_error: Some(e), ..
            } => match &e.id {
                Some(eid) if eid.json() == id.json() => (**e).clone(),
                // The same id spelled otherwise (`1` for `1.0`): the client's spelling.
                Some(eid) if eid == id => e.with_id_text(id),
                _ => e.readdressed(id),
            },
            other => Message::error_response(
                Some(id),
                codes::CONNECTION_CLOSED,
                &format!("mcp-bridge: {other}"),
            ),
        }
    }

    /// HTTP status for a client request that could not be forwarded.
    fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout(_) | UpstreamError::NoEndpoint(_) => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Auth { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            UpstreamError::SessionGone | UpstreamError::Closed => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Any failure of a client's HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    #[error("{error}")]
    Upstream {
        error: UpstreamError,
        /// The request id the error answers, when known.
        id: Option<Id>,
    },
}

impl Error {
    pub fn upstream(error: UpstreamError, id: Option<Id>) -> Error {
        Error::Upstream { error, id }
    }

    pub fn status(&self) -> StatusCode {
        use DownstreamError as D;
        match self {
            Error::Downstream(d) => match d {
                D::ForbiddenOrigin(_) | D::ForgedHop => StatusCode::FORBIDDEN,
                D::ForbiddenHost(_) => StatusCode::MISDIRECTED_REQUEST,
                D::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                D::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
                D::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                D::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
                D::BadBody(_)
                | D::BatchedInitialize(_)
                | D::Parse(_)
                | D::MissingSessionId
                | D::NotInitialized(_)
                | D::AlreadyInitialized(_)
                | D::UnsupportedProtocolVersion(_) => StatusCode::BAD_REQUEST,
                D::UnknownSession | D::NotFound => StatusCode::NOT_FOUND,
                D::SessionLimit | D::ReplicasUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                D::RelayFailed(_) => StatusCode::BAD_GATEWAY,
                D::MissingToken | D::InvalidToken => StatusCode::UNAUTHORIZED,
                D::CredentialSessionLimit(_) | D::SessionBusy(_) => StatusCode::TOO_MANY_REQUESTS,
                D::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            },
            Error::Upstream { error, .. } => error.status(),
        }
    }

    fn rpc_code(&self) -> i64 {
        use DownstreamError as D;
        match self {
            Error::Downstream(D::Parse(p)) => p.code(),
            Error::Downstream(D::UnknownSession) => codes::SESSION_NOT_FOUND,
            Error::Downstream(D::AlreadyInitialized(_) | D::BatchedInitialize(_)) => {
                codes::INVALID_REQUEST
            }
            _ => codes::CONNECTION_CLOSED,
        }
    }

    fn rpc_id(&self) -> Option<&Id> {
        match self {
            Error::Downstream(DownstreamError::NotInitialized(id))
            | Error::Downstream(DownstreamError::AlreadyInitialized(id))
            | Error::Downstream(DownstreamError::BatchedInitialize(id)) => id.as_ref(),
            Error::Upstream { id, .. } => id.as_ref(),
            _ => None,
        }
    }
}

impl actix_web::ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        match self {
            // Relay the upstream's challenge untouched so the client can start OAuth.
            Error::Upstream {
                error:
                    UpstreamError::Auth {
                        www_authenticate,
                        body,
                        ..
                    },
                ..
            } => {
                if let Some(challenge) = www_authenticate {
                    res.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
                }
                return res.body(body.clone());
            }
            Error::Downstream(DownstreamError::MethodNotAllowed(allow)) => {
                res.insert_header((header::ALLOW, *allow));
            }
            Error::Downstream(DownstreamError::SessionLimit)
            | Error::Downstream(DownstreamError::CredentialSessionLimit(_)) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            Error::Downstream(DownstreamError::SessionBusy(_))
            | Error::Downstream(DownstreamError::ReplicasUnavailable(_)) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            // The rest of the body may still be on its way: the connection cannot be reused.
            Error::Downstream(DownstreamError::BodyTimeout(_)) => {
                res.force_close();
            }
            Error::Downstream(DownstreamError::MissingToken) => {
                res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="mcp-bridge""#));
            }
            Error::Downstream(DownstreamError::InvalidToken) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="mcp-bridge", error="invalid_token""#,
                ));
            }
            _ => {}
        }
        let body = match self {
            Error::Upstream {
                error,
                id: Some(id),
            } => error.to_rpc_error(id),
            _ => Message::error_response(self.rpc_id(), self.rpc_code(), &self.to_string()),
        };
        res.content_type("application/json")
            .body(body.raw().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn statuses_follow_the_table() {
        let cases: Vec<(Error, u16)> = vec![
            (DownstreamError::ForbiddenOrigin("x".into()).into(), 403),
            (DownstreamError::ForbiddenHost("x".into()).into(), 421),
            (DownstreamError::UnsupportedMediaType.into(), 415),
            (DownstreamError::NotAcceptable("x").into(), 406),
            (DownstreamError::BodyTooLarge(1).into(), 413),
            (
                DownstreamError::BodyTimeout(Duration::from_secs(1)).into(),
                408,
            ),
            (DownstreamError::BatchedInitialize(None).into(), 400),
            (DownstreamError::MissingSessionId.into(), 400),
            (DownstreamError::UnknownSession.into(), 404),
            (DownstreamError::SessionLimit.into(), 503),
            (DownstreamError::MissingToken.into(), 401),
            (DownstreamError::InvalidToken.into(), 401),
            (DownstreamError::CredentialSessionLimit(1).into(), 429),
            (DownstreamError::SessionBusy(1).into(), 429),
            (DownstreamError::MethodNotAllowed("GET").into(), 405),
            (
                Error::upstream(UpstreamError::Timeout(Duration::from_secs(1)), None),
                504,
            ),
            (
                Error::upstream(UpstreamError::Connect("refused".into()), None),
                502,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err}");
        }
    }

    #[test]
    fn upstream_json_rpc_error_is_readdressed_to_the_request() {
        let upstream_err = Message::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"bad"}}"#,
        ))
        .unwrap();
        let err = UpstreamError::Status {
            status: 400,
            rpc_error: Some(Box::new(upstream_err)),
        };
        let id = Message::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":4,"method":"x"}"#,
        ))
        .unwrap()
        .id
        .unwrap();
        let out = err.to_rpc_error(&id);
        assert_eq!(
            out.raw().as_ref(),
            br#"{"jsonrpc":"2.0","id":4,"error":{"code":-32600,"message":"bad"}}"#
        );
    }
}
