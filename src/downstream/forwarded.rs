//! `X-Forwarded-Prefix`/`-Host`/`-Proto` from a trusted reverse proxy. They shape the
//! `endpoint` URL legacy clients POST to, so a value that a URL parser could resolve to
//! another host or path is ignored (and reported) rather than passed on.

use super::guard::parse_host;
use crate::config::path_prefix;

/// The first value of a (possibly comma-joined) forwarded header.
pub fn first_value(raw: &str) -> Option<&str> {
    Some(raw.split(',').next()?.trim()).filter(|v| !v.is_empty())
}

/// A forwarded prefix: a plain absolute path (see [`path_prefix`]), without trailing slash.
pub fn prefix(value: &str) -> Option<String> {
    path_prefix(value)
}

/// A forwarded host: `host[:port]` as a URL parser reads it, re-written from the parsed
/// form so that nothing but the host and port reaches the endpoint.
pub fn host(value: &str) -> Option<String> {
    let value = value.trim();
    let host = parse_host(value)?;
    let port = value
        .rsplit_once(':')
        .filter(|(_, p)| !p.contains(']'))
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    Some(format!("{host}{port}"))
}

/// `https` only when the proxy says so.
pub fn scheme(value: Option<&str>) -> &'static str {
    match value {
        Some(v) if v.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prefixes_pass() {
        assert_eq!(prefix("/tools").as_deref(), Some("/tools"));
        assert_eq!(prefix("/a/b/").as_deref(), Some("/a/b"));
        assert_eq!(prefix("/").as_deref(), Some(""));
        assert_eq!(prefix("/v1.2/x..y").as_deref(), Some("/v1.2/x..y"));
    }

    #[test]
    fn prefixes_that_leave_the_path_are_ignored() {
        for bad in [
            "/\\evil.example",
            "\\\\evil.example",
            "//evil.example",
            "/a//b",
            "/a/../b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/./a",
            "/a\tb",
            "/a\u{7f}",
            "/a\u{0}",
            "/a?x=1",
            "/a#f",
            "/a/\u{e9}",
            "/a\"b",
            "/a<b>",
            "/a b",
            "relative",
            "https://evil.example/x",
        ] {
            assert_eq!(prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_must_parse_as_host_and_port() {
        assert_eq!(host("proxy.example").as_deref(), Some("proxy.example"));
        assert_eq!(
            host("Proxy.Example:8443").as_deref(),
            Some("proxy.example:8443")
        );
        assert_eq!(host("10.0.0.1:80").as_deref(), Some("10.0.0.1:80"));
        assert_eq!(host("[::1]:8080").as_deref(), Some("[::1]:8080"));
        assert_eq!(host(" 10.0.0.1:8 ").as_deref(), Some("10.0.0.1:8"));
        for bad in [
            "",
            "evil.example/x",
            "evil.example?x",
            "evil.example#x",
            "user@evil.example",
            "evil.example:port",
            "evil.example:99999",
            "evil.example:",
            "a b",
            "evil\\example",
            "[::1",
            "::1",
            "evil.example:80:80",
        ] {
            assert_eq!(host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_https_is_taken_from_the_proxy() {
        assert_eq!(scheme(Some("https")), "https");
        assert_eq!(scheme(Some("javascript")), "http");
        assert_eq!(scheme(None), "http");
    }
}
