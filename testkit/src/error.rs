//! The one error type of the raw clients.

use std::fmt;

/// Why a raw-client operation failed. Messages are meant to be read in a failing test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Connecting, sending or reading the HTTP exchange failed.
    Http(String),
    /// The peer answered with an unexpected HTTP status.
    Status { status: u16, body: String },
    /// A deadline passed while waiting for the named thing.
    Timeout(&'static str),
    /// The stream ended before the named thing arrived.
    Closed(&'static str),
    /// The peer sent something that breaks the protocol.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http(e) => write!(f, "http error: {e}"),
            Error::Status { status, body } => write!(f, "unexpected status {status}: {body}"),
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Closed(what) => write!(f, "stream closed before {what}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
