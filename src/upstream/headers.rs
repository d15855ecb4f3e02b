//! Which request headers reach the upstream: the client headers named by `--forward-header`,
//! every unknown `Mcp-*` header, and the static `--upstream-header`s. The bridge's own
//! headers (it speaks its own session and version upstream), hop-by-hop headers and the
//! client's Host/Origin/Content-Length never cross.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION};

use super::ForwardHeaders;
use crate::config::{HeaderSource, StaticHeader};

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Headers the bridge writes itself on each upstream request, or that describe the client's
/// own connection to the bridge.
const BRIDGE_OWNED: [&str; 8] = [
    "host",
    "origin",
    "content-length",
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Why `name` can never be forwarded or set upstream, if it cannot.
pub fn reserved(name: &HeaderName) -> Option<&'static str> {
    let n = name.as_str();
    if HOP_BY_HOP.contains(&n) || n.starts_with("proxy-") {
        Some("a hop-by-hop header")
    } else if BRIDGE_OWNED.contains(&n) {
        Some("set by the bridge itself")
    } else {
        None
    }
}

/// The header policy, with static values already read from their files.
#[derive(Debug, Default)]
pub struct HeaderPolicy {
    forward: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderFileError {
    #[error("--upstream-header {name}: cannot read {path}: {source}")]
    Read {
        name: HeaderName,
        path: String,
        source: std::io::Error,
    },
    #[error("--upstream-header {name}: {path} does not hold a valid header value")]
    Invalid { name: HeaderName, path: String },
}

impl HeaderPolicy {
    /// Build the policy; `@file` values are read now, once, at startup.
    pub fn load(
        forward: &[HeaderName],
        add: &[StaticHeader],
    ) -> Result<HeaderPolicy, HeaderFileError> {
        let add = add
            .iter()
            .map(|h| {
                let value = match &h.source {
                    HeaderSource::Value(v) => v.clone(),
                    HeaderSource::File(path) => read_value(&h.name, path)?,
                };
                Ok((h.name.clone(), value))
            })
            .collect::<Result<_, HeaderFileError>>()?;
        Ok(HeaderPolicy {
            forward: forward.to_vec(),
            add,
        })
    }

    /// Whether the client sent `Authorization` and the policy keeps it back.
    pub fn withholds_authorization(&self, client: &HeaderMap) -> bool {
        client.contains_key(AUTHORIZATION) && !self.forward.contains(&AUTHORIZATION)
    }

    /// The headers to send upstream with one client request.
    pub fn select(&self, client: &HeaderMap) -> ForwardHeaders {
        // Headers the client named in `Connection` are hop-by-hop for this request too.
        let connection_listed: Vec<String> = client
            .get_all(CONNECTION)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        let mut out: ForwardHeaders = client
            .iter()
            .filter(|(name, _)| {
                reserved(name).is_none()
                    && !connection_listed.iter().any(|t| t == name.as_str())
                    && !self.add.iter().any(|(a, _)| a == *name)
                    && (self.forward.contains(name) || name.as_str().starts_with("mcp-"))
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        // A configured value replaces whatever the client sent under that name.
        out.extend(self.add.iter().cloned());
        out
    }
}

fn read_value(name: &HeaderName, path: &std::path::Path) -> Result<HeaderValue, HeaderFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HeaderFileError::Read {
        name: name.clone(),
        path: shown.clone(),
        source,
    })?;
    let mut value = HeaderValue::from_str(text.trim()).map_err(|_| HeaderFileError::Invalid {
        name: name.clone(),
        path: shown,
    })?;
    // Values from files are usually secrets: keep them out of Debug output.
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn names(h: &ForwardHeaders) -> Vec<String> {
        let mut out: Vec<String> = h
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
            .collect();
        out.sort(); // a HeaderMap has no stable order
        out
    }

    #[test]
    fn forwards_listed_and_unknown_mcp_headers_only() {
        let p = HeaderPolicy::load(&[HeaderName::from_static("x-tenant")], &[]).unwrap();
        let client = map(&[
            ("authorization", "Bearer c"),
            ("x-tenant", "t1"),
            ("x-other", "o"),
            ("mcp-trace", "1"),
            ("mcp-session-id", "s"),
            ("mcp-protocol-version", "2025-06-18"),
            ("last-event-id", "1-1"),
            ("host", "h"),
            ("origin", "http://o"),
            ("connection", "keep-alive, mcp-hop"),
            ("mcp-hop", "x"),
            ("transfer-encoding", "chunked"),
        ]);
        assert_eq!(names(&p.select(&client)), ["mcp-trace=1", "x-tenant=t1"]);
    }

    #[test]
    fn authorization_only_when_listed_and_static_values_win() {
        let add = [StaticHeader {
            name: HeaderName::from_static("x-api-key"),
            source: HeaderSource::Value(HeaderValue::from_static("k")),
        }];
        let p = HeaderPolicy::load(&[HeaderName::from_static("authorization")], &add).unwrap();
        let client = map(&[("authorization", "Bearer c"), ("x-api-key", "client")]);
        assert_eq!(
            names(&p.select(&client)),
            ["authorization=Bearer c", "x-api-key=k"]
        );
        assert!(reserved(&HeaderName::from_static("proxy-foo")).is_some());
        assert!(reserved(&HeaderName::from_static("authorization")).is_none());
    }
}
