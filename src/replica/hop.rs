//! The replica-to-replica hop. A request for a session another replica owns is relayed to
//! that owner as it came — method, path and query, headers, body — and the owner's answer
//! (JSON, 202, or an SSE stream) streams back unchanged. Each relayed request is signed with
//! the secret all replicas share (`--replica-secret-file`): an HMAC-SHA256 of the method, the
//! path and query, the session id and a timestamp, in one header. A request carrying that
//! header with a bad or stale signature is refused (403): a client cannot speak the internal
//! protocol, and the only thing the protocol grants — "serve this here, do not relay it
//! again" — stops loops between replicas.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use ring::hmac;
use url::Url;

/// The header carrying `v1 <unix seconds> <hex mac>`.
pub const HOP_HEADER: &str = "mcp-bridge-hop";
/// How far a signature's timestamp may be from this replica's clock.
const MAX_SKEW_SECS: u64 = 30;
const SESSION_HEADER: &str = "mcp-session-id";

/// Why an inbound hop signature is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BadHop {
    Malformed,
    Stale,
    Mismatch,
}

/// The shared secret, as an HMAC key.
pub struct HopKey(hmac::Key);

impl HopKey {
    pub fn new(secret: &[u8]) -> HopKey {
        HopKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The header value for a request (`session`: its `Mcp-Session-Id`, if any).
    pub fn sign(&self, method: &str, path_and_query: &str, session: &str, now: u64) -> String {
        let tag = hmac::sign(&self.0, &signed(method, path_and_query, session, now));
        format!("v1 {now} {}", crate::hex::encode(tag.as_ref()))
    }

    /// Checks a header value against the request it came with (constant-time compare).
    pub fn verify(
        &self,
        value: &str,
        method: &str,
        path_and_query: &str,
        session: &str,
        now: u64,
    ) -> Result<(), BadHop> {
        let mut parts = value.split(' ');
        let (Some("v1"), Some(ts), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadHop::Malformed);
        };
        let ts: u64 = ts.parse().map_err(|_| BadHop::Malformed)?;
        let mac = crate::hex::decode(mac).ok_or(BadHop::Malformed)?;
        if ts.abs_diff(now) > MAX_SKEW_SECS {
            return Err(BadHop::Stale);
        }
        hmac::verify(&self.0, &signed(method, path_and_query, session, ts), &mac)
            .map_err(|_| BadHop::Mismatch)
    }

    /// Whether `req` is a relayed request with a valid signature; `Err` when it carries the
    /// header but the signature does not hold (a forgery, or a replica with another secret).
    pub fn inbound(&self, req: &HttpRequest) -> Result<bool, BadHop> {
        let Some(value) = req.headers().get(HOP_HEADER) else {
            return Ok(false);
        };
        let value = value.to_str().map_err(|_| BadHop::Malformed)?;
        self.verify(
            value,
            req.method().as_str(),
            &path_and_query(req),
            session_of(req),
            unix_now(),
        )
        .map(|()| true)
    }
}

/// The request line as signed: path plus query string.
fn path_and_query(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    }
}

fn session_of(req: &HttpRequest) -> &str {
    req.headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn signed(method: &str, path_and_query: &str, session: &str, ts: u64) -> Vec<u8> {
    format!("{method}\n{path_and_query}\n{session}\n{ts}").into_bytes()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a relay ended.
pub enum Relayed {
    /// The owner answered (any status): this is the client's response.
    Answer(HttpResponse),
    /// The owner could not be reached at all: it is gone, or going.
    OwnerUnreachable(String),
    /// The owner was reached but the exchange broke before its answer began.
    Failed(String),
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and the
/// ones the client library sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
            | HOP_HEADER
    )
}

/// Relay `req` (with `body`, already read and within the limits) to the replica at `owner`,
/// signed with `key`; the answer's body streams back as it arrives.
pub async fn relay(
    client: &awc::Client,
    req: &HttpRequest,
    body: Option<Bytes>,
    owner: &Url,
    key: &HopKey,
    head_deadline: Duration,
) -> Relayed {
    let pq = path_and_query(req);
    let url = format!("{}{}", owner.as_str().trim_end_matches('/'), pq);
    let mut out = client.request(req.method().clone(), url);
    for (name, value) in req.headers() {
        if !hop_by_hop(name) {
            out = out.append_header((name.clone(), value.clone()));
        }
    }
    let signature = key.sign(req.method().as_str(), &pq, session_of(req), unix_now());
    out = out.insert_header((HOP_HEADER, signature));
    let sent = match body {
        Some(b) => tokio::time::timeout(head_deadline, out.send_body(b)).await,
        None => tokio::time::timeout(head_deadline, out.send()).await,
    };
    let resp = match sent {
        Err(_) => return Relayed::Failed(format!("no answer within {head_deadline:?}")),
        Ok(Err(awc::error::SendRequestError::Connect(e))) if never_delivered(&e) => {
            return Relayed::OwnerUnreachable(e.to_string())
        }
        Ok(Err(e)) => return Relayed::Failed(e.to_string()),
        Ok(Ok(r)) => r,
    };
    let mut answer = HttpResponse::build(resp.status());
    for (name, value) in resp.headers() {
        if !hop_by_hop(name) {
            answer.append_header((name.clone(), value.clone()));
        }
    }
    Relayed::Answer(answer.streaming(resp))
}

/// Whether a connect error proves the request never reached the owner: the connection was
/// refused or never made. Anything else (e.g. a pooled connection that broke after the
/// request was written) may have delivered it — taking the session over would run the
/// request a second time.
fn never_delivered(e: &awc::error::ConnectError) -> bool {
    use awc::error::ConnectError as C;
    match e {
        C::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::AddrNotAvailable
        ),
        C::Timeout | C::Resolver(_) | C::NoRecords | C::Unresolved => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_request_secret_and_time() {
        let key = HopKey::new(b"s3cret");
        let now = 1_800_000_000;
        let sig = key.sign("POST", "/messages?sessionId=a", "", now);
        assert_eq!(
            key.verify(&sig, "POST", "/messages?sessionId=a", "", now + 5),
            Ok(())
        );
        for (method, pq, session) in [
            ("GET", "/messages?sessionId=a", ""),
            ("POST", "/messages?sessionId=b", ""),
            ("POST", "/messages?sessionId=a", "x"),
        ] {
            assert_eq!(
                key.verify(&sig, method, pq, session, now),
                Err(BadHop::Mismatch)
            );
        }
        let other = HopKey::new(b"other");
        assert_eq!(
            other.verify(&sig, "POST", "/messages?sessionId=a", "", now),
            Err(BadHop::Mismatch)
        );
        assert_eq!(
            key.verify(&sig, "POST", "/messages?sessionId=a", "", now + 31),
            Err(BadHop::Stale)
        );
        for bad in ["", "v1", "v2 1 00", "v1 x 00", "v1 1 0g", "v1 1 00 extra"] {
            assert_eq!(
                key.verify(bad, "POST", "/", "", now),
                Err(BadHop::Malformed),
                "{bad}"
            );
        }
    }
}
