//! Origin validation (all transports, MUST) and Host validation on loopback binds (DNS
//! rebinding protection).

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::config::Config;
use crate::error::DownstreamError;

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

pub fn check(req: &HttpRequest, cfg: &Config) -> Result<(), DownstreamError> {
    // HTTP/2 (offered over TLS) has no Host header: the authority is in the request URI.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let same_origin = !host.is_empty()
            && (origin == format!("http://{host}") || origin == format!("https://{host}"));
        // `*` (from `--cors-origin '*'`) lets every origin through.
        let listed = cfg.allowed_origins.iter().any(|o| o == "*" || *o == origin);
        if !same_origin && !listed {
            return Err(DownstreamError::ForbiddenOrigin(origin));
        }
    }
    if cfg.listen.ip().is_loopback() {
        let name = host_name(&host);
        let allowed = LOOPBACK_NAMES.contains(&name)
            || cfg.allowed_hosts.iter().any(|h| h == name || *h == host);
        if !allowed {
            return Err(DownstreamError::ForbiddenHost(host));
        }
    }
    Ok(())
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn cfg(extra: &[&str]) -> Config {
        let mut args = vec!["mcp-bridge", "--upstream", "http://127.0.0.1:1/mcp"];
        args.extend_from_slice(extra);
        Config::from_args(args).unwrap()
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("example.com"), "example.com");
    }

    #[test]
    fn loopback_bind_refuses_foreign_host_and_origin() {
        let c = cfg(&[]);
        let ok = TestRequest::default()
            .insert_header(("host", "127.0.0.1:8080"))
            .to_http_request();
        assert!(check(&ok, &c).is_ok());
        let rebinding = TestRequest::default()
            .insert_header(("host", "evil.example:8080"))
            .to_http_request();
        assert!(matches!(
            check(&rebinding, &c),
            Err(DownstreamError::ForbiddenHost(_))
        ));
        let foreign = TestRequest::default()
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://evil.example"))
            .to_http_request();
        assert!(matches!(
            check(&foreign, &c),
            Err(DownstreamError::ForbiddenOrigin(_))
        ));
        let same = TestRequest::default()
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://localhost:8080"))
            .to_http_request();
        assert!(check(&same, &c).is_ok());
    }

    #[test]
    fn http2_authority_stands_in_for_host() {
        let c = cfg(&[]);
        let h2 = TestRequest::default()
            .uri("https://localhost:8443/mcp")
            .to_http_request();
        assert!(check(&h2, &c).is_ok());
        let foreign = TestRequest::default()
            .uri("https://evil.example:8443/mcp")
            .to_http_request();
        assert!(matches!(
            check(&foreign, &c),
            Err(DownstreamError::ForbiddenHost(_))
        ));
    }

    #[test]
    fn cors_star_lets_any_origin_through() {
        let c = cfg(&["--cors-origin", "*"]);
        let r = TestRequest::default()
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "https://anyone.example"))
            .to_http_request();
        assert!(check(&r, &c).is_ok());
    }

    #[test]
    fn listed_origins_and_hosts_pass() {
        let c = cfg(&[
            "--allowed-origin",
            "http://localhost:6274",
            "--allowed-host",
            "bridge.internal",
        ]);
        let r = TestRequest::default()
            .insert_header(("host", "bridge.internal:8080"))
            .insert_header(("origin", "http://localhost:6274"))
            .to_http_request();
        assert!(check(&r, &c).is_ok());
    }
}
