//! DNS rebinding protection and Origin validation, on every listener.
//!
//! A page on `evil.example` whose name is re-pointed at the bridge's address sends
//! `Host: evil.example`: so `Host` must name the bridge. Accepted are the listen address,
//! localhost names where the bridge listens on loopback, the TLS certificate's DNS names
//! and `--allowed-host` entries. On an unspecified bind (0.0.0.0, [::]) every IP literal is
//! accepted — an address cannot be rebound — but names must be listed. The bridge's own
//! origin is the validated `Host`, never an unchecked one.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header;
use actix_web::HttpRequest;
use url::Host;

use crate::error::DownstreamError;

/// Names that always resolve to this machine (browsers never ask DNS for them).
const LOCALHOST: &str = "localhost";

/// The `Host` values a listener answers to, decided once at startup.
#[derive(Debug, Clone)]
pub struct HostAllowList {
    listen: IpAddr,
    /// Lower-case names without a trailing dot; `*.example.com` entries match one label.
    names: Vec<String>,
    /// Addresses listed with `--allowed-host`.
    addrs: Vec<IpAddr>,
}

impl HostAllowList {
    /// `allowed`: `--allowed-host` entries (names, addresses, optionally with a port, which
    /// is ignored); `cert_names`: the DNS names of the listener's TLS certificate.
    pub fn new(listen: SocketAddr, allowed: &[String], cert_names: &[String]) -> HostAllowList {
        let mut list = HostAllowList {
            listen: listen.ip(),
            names: Vec::new(),
            addrs: Vec::new(),
        };
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            list.names.push(LOCALHOST.to_owned());
        }
        for entry in allowed.iter().chain(cert_names) {
            match parse_host(entry) {
                Some(Host::Domain(d)) => list.names.push(normalize_name(&d)),
                Some(Host::Ipv4(a)) => list.addrs.push(IpAddr::V4(a)),
                Some(Host::Ipv6(a)) => list.addrs.push(IpAddr::V6(a)),
                // A certificate wildcard is not a valid host: keep it as a pattern.
                None if entry.starts_with("*.") => list.names.push(normalize_name(entry)),
                None => tracing::warn!(entry, "ignoring an allowed host that is not a host name"),
            }
        }
        list
    }

    /// Whether a request's `Host` (`host[:port]`) names this bridge.
    pub fn admits(&self, host: &str) -> bool {
        match parse_host(host) {
            Some(Host::Domain(d)) => {
                let d = normalize_name(&d);
                self.names.iter().any(|n| name_matches(n, &d))
            }
            Some(Host::Ipv4(a)) => self.admits_ip(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => self.admits_ip(IpAddr::V6(a)),
            None => false,
        }
    }

    fn admits_ip(&self, ip: IpAddr) -> bool {
        self.listen.is_unspecified()
            || ip == self.listen
            || (self.listen.is_loopback() && ip.is_loopback())
            || self.addrs.contains(&ip)
    }
}

/// `host[:port]` → the host, parsed as a URL parser would; `None` for anything else.
pub fn parse_host(value: &str) -> Option<Host> {
    let value = value.trim();
    let host = match value.rsplit_once(':') {
        // `[v6]` alone has colons inside its brackets.
        Some((h, port)) if !port.contains(']') => {
            if port.is_empty() || port.parse::<u16>().is_err() {
                return None;
            }
            h
        }
        _ => value,
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return None;
    }
    if host.contains(|c: char| !(c.is_ascii_alphanumeric() || "-._[]:".contains(c))) {
        return None;
    }
    Host::parse(host).ok()
}

fn normalize_name(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

/// `pattern` is a name or `*.rest` (one leading label, as certificates mean it).
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == name,
    }
}

/// The validated `Host`, then the Origin: the bridge's own origin or a listed one.
pub fn check(
    req: &HttpRequest,
    hosts: &HostAllowList,
    allowed_origins: &[String],
) -> Result<(), DownstreamError> {
    // HTTP/2 (offered over TLS) has no Host header: the authority is in the request URI.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_ascii_lowercase();
    if !hosts.admits(&host) {
        return Err(DownstreamError::ForbiddenHost(host));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        // `host` was admitted above: a rebound name never counts as the bridge's origin.
        let same_origin = origin == format!("http://{host}") || origin == format!("https://{host}");
        // `*` (from `--cors-origin '*'`) lets every origin through.
        let listed = allowed_origins.iter().any(|o| o == "*" || *o == origin);
        if !same_origin && !listed {
            return Err(DownstreamError::ForbiddenOrigin(origin));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use actix_web::test::TestRequest;

    fn cfg(extra: &[&str]) -> Config {
        let mut args = vec!["mcp-bridge", "--upstream", "http://127.0.0.1:1/mcp"];
        args.extend_from_slice(extra);
        Config::from_args(args).unwrap()
    }

    fn chk(req: &HttpRequest, c: &Config) -> Result<(), DownstreamError> {
        let hosts = HostAllowList::new(c.listen, &c.allowed_hosts, &[]);
        check(req, &hosts, &c.allowed_origins)
    }

    #[test]
    fn hosts_parse_with_an_optional_port() {
        assert_eq!(
            parse_host("localhost:8080"),
            Some(Host::Domain("localhost".into()))
        );
        assert!(matches!(parse_host("[::1]:80"), Some(Host::Ipv6(_))));
        assert!(matches!(parse_host("[::1]"), Some(Host::Ipv6(_))));
        assert_eq!(
            parse_host("example.com"),
            Some(Host::Domain("example.com".into()))
        );
        for bad in [
            "", ":80", "a b", "a/b", "a@b", "a:x", "::1", "a:1:2", "a\\b",
        ] {
            assert_eq!(parse_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn certificate_wildcards_match_one_label() {
        let l = HostAllowList::new(
            "127.0.0.1:1".parse().unwrap(),
            &[],
            &["*.bridge.example".into()],
        );
        assert!(l.admits("a.bridge.example"));
        assert!(!l.admits("bridge.example"));
        assert!(!l.admits("a.b.bridge.example"));
    }

    #[test]
    fn loopback_bind_refuses_foreign_host_and_origin() {
        let c = cfg(&[]);
        let ok = TestRequest::default()
            .insert_header(("host", "127.0.0.1:8080"))
            .to_http_request();
        assert!(chk(&ok, &c).is_ok());
        let rebinding = TestRequest::default()
            .insert_header(("host", "evil.example:8080"))
            .to_http_request();
        assert!(matches!(
            chk(&rebinding, &c),
            Err(DownstreamError::ForbiddenHost(_))
        ));
        let foreign = TestRequest::default()
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://evil.example"))
            .to_http_request();
        assert!(matches!(
            chk(&foreign, &c),
            Err(DownstreamError::ForbiddenOrigin(_))
        ));
        let same = TestRequest::default()
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://localhost:8080"))
            .to_http_request();
        assert!(chk(&same, &c).is_ok());
    }

    #[test]
    fn http2_authority_stands_in_for_host() {
        let c = cfg(&[]);
        let h2 = TestRequest::default()
            .uri("https://localhost:8443/mcp")
            .to_http_request();
        assert!(chk(&h2, &c).is_ok());
        let foreign = TestRequest::default()
            .uri("https://evil.example:8443/mcp")
            .to_http_request();
        assert!(matches!(
            chk(&foreign, &c),
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
        assert!(chk(&r, &c).is_ok());
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
        assert!(chk(&r, &c).is_ok());
    }
}
