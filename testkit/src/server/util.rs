//! Small helpers for the fake servers: ids, header checks, canned responses, timestamps.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

/// Unpredictable enough for a test server (std's per-instance SipHash keys are random), and
/// unique thanks to the counter. No crypto needed: these ids guard nothing.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// 32 lowercase hex digits (Python's `uuid4().hex`).
pub(crate) fn hex32() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// A v4-shaped UUID (TS `randomUUID()`).
pub(crate) fn uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether the `Accept` header lists this media type (parameters ignored).
pub(crate) fn accepts(req: &HttpRequest, media: &str) -> bool {
    req.headers().get_all("accept").any(|v| {
        v.to_str().unwrap_or_default().split(',').any(|item| {
            let m = item.split(';').next().unwrap_or_default().trim();
            m.eq_ignore_ascii_case(media)
        })
    })
}

/// Whether `Content-Type` is `application/json` (parameters ignored).
pub(crate) fn is_json_content(req: &HttpRequest) -> bool {
    header(req, "content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The value of query parameter `name` (no percent-decoding: our ids never need it).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// An HTTP error whose body is a JSON-RPC error without id, as the SDKs write them.
pub(crate) fn rpc_error(status: u16, code: i64, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(crate::mcp::error_response(None, code, message))
}

/// A refusal decided deep in the logic, turned into an [`rpc_error`] response at the edge
/// (cheaper to pass around than an `HttpResponse`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reject {
    pub status: u16,
    pub code: i64,
    pub message: &'static str,
}

impl Reject {
    pub const fn new(status: u16, code: i64, message: &'static str) -> Self {
        Reject {
            status,
            code,
            message,
        }
    }
}

impl From<Reject> for HttpResponse {
    fn from(r: Reject) -> Self {
        rpc_error(r.status, r.code, r.message)
    }
}

pub(crate) fn plain(status: u16, text: &'static str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// `2026-11-21 12:00:00.123456+00:00`, the shape of sse-starlette's ping comment.
pub(crate) fn utc_timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_sdk_shapes() {
        let h = hex32();
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(), uuid());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&sessionId=x", "sessionId"), Some("x"));
        assert_eq!(query_param("session_id=", "session_id"), Some(""));
        assert_eq!(query_param("a=1", "b"), None);
    }
}
