//! CORS for browser clients (`--cors-origin`): preflights on every client-facing path, and
//! the response headers that let a page read the answer and its `Mcp-Session-Id`. Which
//! origins may call at all is the Origin check's job (guard.rs); the configuration feeds
//! every CORS origin into that check's list, so the two always agree.
//!
//! No `Access-Control-Allow-Credentials`, ever: clients authenticate with an explicit
//! `Authorization` header, never with cookies, so `*` stays safe to offer when asked for.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::config::CorsOrigins;

/// Request headers a browser client may send (besides the CORS-safelisted ones).
const ALLOW_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Response headers a page may read.
const EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate";

/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";

pub struct Cors {
    origins: CorsOrigins,
    allow_headers: HeaderValue,
}

impl Cors {
    /// `forwarded`: the `--forward-header` names, which browser clients may send too.
    pub fn new(origins: CorsOrigins, forwarded: &[HeaderName]) -> Cors {
        let mut names: Vec<&str> = ALLOW_HEADERS.to_vec();
        names.extend(
            forwarded
                .iter()
                .map(HeaderName::as_str)
                .filter(|n| !ALLOW_HEADERS.contains(n)),
        );
        let allow_headers = HeaderValue::from_str(&names.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("authorization, content-type"));
        Cors {
            origins,
            allow_headers,
        }
    }

    /// `Access-Control-Allow-Origin` for this request, when its origin gets CORS headers.
    fn allow_origin(&self, req: &HttpRequest) -> Option<HeaderValue> {
        let origin = req.headers().get(header::ORIGIN)?;
        match &self.origins {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let o = origin.to_str().ok()?.trim_end_matches('/');
                list.iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
                    .then(|| origin.clone())
            }
        }
    }

    /// The answer to `OPTIONS` on a client-facing path serving `methods`. Not authenticated:
    /// browsers send preflights without credentials. The Origin check has already passed.
    pub fn preflight(&self, req: &HttpRequest, methods: &'static str) -> HttpResponse {
        let mut res = HttpResponse::NoContent();
        res.insert_header((header::ALLOW, methods));
        if let Some(origin) = self.allow_origin(req) {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    self.allow_headers.clone(),
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE));
        }
        if self.origins != CorsOrigins::None {
            res.insert_header((
                header::VARY,
                "origin, access-control-request-method, access-control-request-headers",
            ));
        }
        res.finish()
    }

    /// Add CORS headers to an actual response (success or error, so a page can see a 401).
    pub fn decorate(&self, req: &HttpRequest, res: &mut HttpResponse) {
        let origin = self.allow_origin(req);
        let h = res.headers_mut();
        if self.origins != CorsOrigins::None {
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        if let Some(origin) = origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn list() -> Cors {
        Cors::new(
            CorsOrigins::List(vec!["https://app.example".into()]),
            &[HeaderName::from_static("x-tenant")],
        )
    }

    fn from(origin: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header(("origin", origin))
            .to_http_request()
    }

    #[test]
    fn preflight_for_a_listed_origin() {
        let res = list().preflight(&from("https://app.example"), "GET, POST, DELETE");
        assert_eq!(res.status(), 204);
        let h = res.headers();
        assert_eq!(
            h.get("access-control-allow-origin").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            h.get("access-control-allow-methods").unwrap(),
            "GET, POST, DELETE"
        );
        let allowed = h
            .get("access-control-allow-headers")
            .unwrap()
            .to_str()
            .unwrap();
        for n in [
            "authorization",
            "mcp-session-id",
            "last-event-id",
            "x-tenant",
        ] {
            assert!(allowed.contains(n), "{allowed}");
        }
        assert!(h.get("access-control-allow-credentials").is_none());
    }

    #[test]
    fn unlisted_origins_and_cors_off_get_no_cors_headers() {
        let mut res = HttpResponse::Ok().finish();
        list().decorate(&from("https://other.example"), &mut res);
        assert!(res.headers().get("access-control-allow-origin").is_none());
        let mut res = HttpResponse::Ok().finish();
        Cors::new(CorsOrigins::None, &[]).decorate(&from("https://app.example"), &mut res);
        assert!(res.headers().is_empty());
    }

    #[test]
    fn any_origin_is_a_literal_star_and_exposes_the_session_header() {
        let mut res = HttpResponse::Ok().finish();
        Cors::new(CorsOrigins::Any, &[]).decorate(&from("https://x.example"), &mut res);
        assert_eq!(
            res.headers().get("access-control-allow-origin").unwrap(),
            "*"
        );
        assert!(res
            .headers()
            .get("access-control-expose-headers")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("mcp-session-id"));
    }
}
