//! Flags for running the bridge in front of real clients: TLS, CORS, bearer tokens, the
//! upstream header policy and the limits. Parsed and checked here without I/O; files named
//! here (certificates, token files, `@file` header values) are read once at startup.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use clap::Args;

use super::{parse_duration, ConfigError};
use crate::upstream::headers::reserved;

#[derive(Args, Debug, Clone)]
pub struct DeployArgs {
    /// PEM certificate chain: serve HTTPS on --listen instead of HTTP (needs --tls-key).
    #[arg(long, env = "MCP_BRIDGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "MCP_BRIDGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM file of CA certificates trusted for an https upstream besides the public web
    /// roots, e.g. a private CA (repeatable).
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_CA")]
    pub upstream_ca: Vec<PathBuf>,

    /// DANGEROUS, for tests only: accept ANY upstream certificate, so anyone on the path can
    /// impersonate the upstream. Logged as a warning at startup.
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_INSECURE")]
    pub upstream_insecure: bool,

    /// Browser origin allowed to call the bridge cross-origin (CORS), e.g.
    /// https://app.example.com (repeatable or comma separated). Such an origin also passes
    /// the Origin check. `*` allows every origin; credentials (cookies) are never allowed.
    #[arg(
        long = "cors-origin",
        env = "MCP_BRIDGE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Bearer token a client must present (`Authorization: Bearer <token>`) on every request
    /// (repeatable or comma separated). Prefer --auth-token-file: arguments are visible to
    /// other local users.
    #[arg(
        long = "auth-token",
        env = "MCP_BRIDGE_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub auth_tokens: Vec<String>,

    /// File of accepted bearer tokens, one per line; blank lines and lines starting with #
    /// are ignored (repeatable).
    #[arg(long = "auth-token-file", env = "MCP_BRIDGE_AUTH_TOKEN_FILE")]
    pub auth_token_files: Vec<PathBuf>,

    /// Client request header forwarded upstream (repeatable or comma separated). Unknown
    /// Mcp-* headers are always forwarded. Authorization crosses ONLY when listed here, and
    /// not together with --auth-token. WARNING: the MCP spec forbids token passthrough;
    /// forward Authorization only when the upstream itself issued and checks the clients'
    /// tokens (the bridge is a same-resource front end); otherwise give the bridge its own
    /// upstream credential with --upstream-header.
    #[arg(
        long = "forward-header",
        env = "MCP_BRIDGE_FORWARD_HEADERS",
        value_delimiter = ','
    )]
    pub forward_headers: Vec<String>,

    /// Header added to every upstream request: `Name: value`, or `Name: @/path/file` to read
    /// the value from a file at startup (surrounding whitespace trimmed). Repeatable; replaces
    /// a client header of the same name.
    #[arg(
        long = "upstream-header",
        env = "MCP_BRIDGE_UPSTREAM_HEADER",
        hide_env_values = true
    )]
    pub upstream_headers: Vec<String>,

    /// Sessions one bearer token may hold at once (with --auth-token); more get 429.
    #[arg(
        long,
        env = "MCP_BRIDGE_MAX_SESSIONS_PER_CREDENTIAL",
        default_value_t = 64
    )]
    pub max_sessions_per_credential: usize,

    /// Client requests of one session in flight at once; more get 429.
    #[arg(
        long,
        env = "MCP_BRIDGE_MAX_REQUESTS_PER_SESSION",
        default_value_t = 64
    )]
    pub max_requests_per_session: usize,

    /// A session is ended this long after it began, however busy it is.
    #[arg(long, env = "MCP_BRIDGE_SESSION_MAX_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    pub session_max_lifetime: Duration,
}

/// A certificate chain and its key, both PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Origins that get CORS headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// CORS off: browsers may only call same-origin.
    None,
    /// Exactly these origins (lowercase `scheme://host[:port]`).
    List(Vec<String>),
    /// `*`: any origin.
    Any,
}

impl CorsOrigins {
    /// The entries for the Origin check's allow-list (`*` stands for any origin there too).
    pub fn origin_check_entries(&self) -> Vec<String> {
        match self {
            CorsOrigins::None => Vec::new(),
            CorsOrigins::List(l) => l.clone(),
            CorsOrigins::Any => vec!["*".into()],
        }
    }
}

/// A secret that never shows in `Debug` output (the configuration is logged).
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub enum HeaderSource {
    Value(HeaderValue),
    File(PathBuf),
}

/// One `--upstream-header`.
#[derive(Clone, Debug)]
pub struct StaticHeader {
    pub name: HeaderName,
    pub source: HeaderSource,
}

/// The validated deployment settings.
#[derive(Clone, Debug)]
pub struct Deploy {
    pub tls: Option<TlsFiles>,
    pub upstream_ca: Vec<PathBuf>,
    pub upstream_insecure: bool,
    pub cors: CorsOrigins,
    pub auth_tokens: Vec<Secret>,
    pub auth_token_files: Vec<PathBuf>,
    pub forward_headers: Vec<HeaderName>,
    pub upstream_headers: Vec<StaticHeader>,
    pub max_sessions_per_credential: usize,
    pub max_requests_per_session: usize,
    pub session_max_lifetime: Duration,
}

impl Deploy {
    /// Whether clients must present a bearer token.
    pub fn auth_required(&self) -> bool {
        !self.auth_tokens.is_empty() || !self.auth_token_files.is_empty()
    }
}

impl TryFrom<DeployArgs> for Deploy {
    type Error = ConfigError;

    fn try_from(a: DeployArgs) -> Result<Deploy, ConfigError> {
        let bad = |s: String| Err(ConfigError(s));
        let tls = match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return bad("--tls-cert and --tls-key go together".into()),
        };
        if a.upstream_insecure && !a.upstream_ca.is_empty() {
            return bad("--upstream-insecure and --upstream-ca contradict each other".into());
        }
        let cors = cors_origins(&a.cors_origins)?;
        let auth_tokens = a
            .auth_tokens
            .iter()
            .map(|t| check_token(t.trim()).map(|()| Secret(t.trim().to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        let forward_headers = a
            .forward_headers
            .iter()
            .map(|n| header_name("--forward-header", n))
            .collect::<Result<Vec<_>, _>>()?;
        let auth = !auth_tokens.is_empty() || !a.auth_token_files.is_empty();
        if auth && forward_headers.contains(&AUTHORIZATION) {
            return bad(
                "--forward-header Authorization with --auth-token: the clients' tokens are the \
                 bridge's own and must not pass to the upstream (token passthrough); give the \
                 upstream its own credential with --upstream-header"
                    .into(),
            );
        }
        let upstream_headers = a
            .upstream_headers
            .iter()
            .map(|h| static_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        for (name, n) in [
            (
                "--max-sessions-per-credential",
                a.max_sessions_per_credential,
            ),
            ("--max-requests-per-session", a.max_requests_per_session),
        ] {
            if n == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if a.session_max_lifetime.is_zero() {
            return bad("--session-max-lifetime must be greater than zero".into());
        }
        Ok(Deploy {
            tls,
            upstream_ca: a.upstream_ca,
            upstream_insecure: a.upstream_insecure,
            cors,
            auth_tokens,
            auth_token_files: a.auth_token_files,
            forward_headers,
            upstream_headers,
            max_sessions_per_credential: a.max_sessions_per_credential,
            max_requests_per_session: a.max_requests_per_session,
            session_max_lifetime: a.session_max_lifetime,
        })
    }
}

/// `scheme://host[:port]`, lowercase, no trailing slash; `None` when it is not an origin.
pub fn normalize_origin(o: &str) -> Option<String> {
    let o = o.trim().trim_end_matches('/');
    match url::Url::parse(o) {
        Ok(u) if u.has_host() && u.path() == "/" && u.query().is_none() => {
            Some(o.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn cors_origins(list: &[String]) -> Result<CorsOrigins, ConfigError> {
    if list.iter().any(|o| o.trim() == "*") {
        return if list.len() == 1 {
            Ok(CorsOrigins::Any)
        } else {
            Err(ConfigError(
                "--cors-origin '*' cannot be combined with other origins".into(),
            ))
        };
    }
    if list.is_empty() {
        return Ok(CorsOrigins::None);
    }
    list.iter()
        .map(|o| {
            normalize_origin(o).ok_or_else(|| {
                ConfigError(format!(
                    "--cors-origin {o:?}: expected scheme://host[:port] or *"
                ))
            })
        })
        .collect::<Result<_, _>>()
        .map(CorsOrigins::List)
}

/// A bearer token as RFC 6750 allows it on the wire (b64token).
pub fn check_token(t: &str) -> Result<(), ConfigError> {
    let ok = !t.is_empty()
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ConfigError(
            "an auth token must be non-empty and use only A-Z a-z 0-9 - . _ ~ + / =".into(),
        ))
    }
}

fn header_name(flag: &str, n: &str) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_bytes(n.trim().as_bytes())
        .map_err(|_| ConfigError(format!("{flag} {n:?}: not a header name")))?;
    match reserved(&name) {
        Some(why) => Err(ConfigError(format!(
            "{flag} {n:?}: {why}, never sent from here"
        ))),
        None => Ok(name),
    }
}

/// `Name: value` or `Name: @/path/file`.
fn static_header(spec: &str) -> Result<StaticHeader, ConfigError> {
    let (name, value) = spec.split_once(':').ok_or_else(|| {
        ConfigError(format!(
            "--upstream-header {:?}: expected 'Name: value' or 'Name: @/path/file'",
            spec.split(':').next().unwrap_or_default()
        ))
    })?;
    let name = header_name("--upstream-header", name)?;
    let value = value.trim();
    let source = match value.strip_prefix('@') {
        Some(path) if !path.is_empty() => HeaderSource::File(PathBuf::from(path)),
        _ => {
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                ConfigError(format!(
                    "--upstream-header {name}: not a valid header value"
                ))
            })?;
            v.set_sensitive(true);
            HeaderSource::Value(v)
        }
    };
    Ok(StaticHeader { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut args = vec!["mcp-bridge", "--upstream", "https://127.0.0.1:9/mcp"];
        args.extend_from_slice(extra);
        Config::from_args(args)
    }

    #[test]
    fn safe_defaults() {
        let d = cfg(&[]).unwrap().deploy;
        assert!(d.tls.is_none() && !d.upstream_insecure && !d.auth_required());
        assert_eq!(d.cors, CorsOrigins::None);
        assert!(d.forward_headers.is_empty());
        assert_eq!(d.session_max_lifetime, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn cors_origins_feed_the_origin_check() {
        let c = cfg(&["--cors-origin", "https://App.example.com/"]).unwrap();
        assert_eq!(
            c.deploy.cors,
            CorsOrigins::List(vec!["https://app.example.com".into()])
        );
        assert!(c
            .allowed_origins
            .contains(&"https://app.example.com".to_string()));
        assert_eq!(
            cfg(&["--cors-origin", "*"]).unwrap().deploy.cors,
            CorsOrigins::Any
        );
    }

    #[test]
    fn upstream_headers_parse_values_and_files() {
        let d = cfg(&[
            "--upstream-header",
            "X-Api-Key: abc def",
            "--upstream-header",
            "Authorization: @/run/secrets/up",
        ])
        .unwrap()
        .deploy;
        assert!(matches!(&d.upstream_headers[0].source, HeaderSource::Value(v) if v == "abc def"));
        assert!(
            matches!(&d.upstream_headers[1].source, HeaderSource::File(p) if p.ends_with("up"))
        );
        assert!(
            !format!("{d:?}").contains("abc def"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn rejects_unsafe_or_malformed_settings() {
        for (args, needle) in [
            (&["--tls-cert", "c.pem"][..], "go together"),
            (
                &["--upstream-insecure", "--upstream-ca", "ca.pem"][..],
                "contradict",
            ),
            (
                &["--cors-origin", "*,https://a.example"][..],
                "cannot be combined",
            ),
            (&["--cors-origin", "a.example"][..], "--cors-origin"),
            (&["--auth-token", "has space"][..], "auth token"),
            (&["--forward-header", "Connection"][..], "hop-by-hop"),
            (
                &["--forward-header", "Mcp-Session-Id"][..],
                "set by the bridge",
            ),
            (&["--upstream-header", "Host: x"][..], "set by the bridge"),
            (
                &["--upstream-header", "NoColon"][..],
                "expected 'Name: value'",
            ),
            (
                &["--auth-token", "t", "--forward-header", "authorization"][..],
                "token passthrough",
            ),
            (&["--max-requests-per-session", "0"][..], "must be positive"),
            (&["--session-max-lifetime", "0s"][..], "greater than zero"),
        ] {
            let err = cfg(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
