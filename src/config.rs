//! Command line and environment → a validated [`Config`]. No I/O happens here: a bad value
//! is reported before anything binds or connects.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use url::Url;

use crate::transport::Transport;
pub use crate::transport::UpstreamTransport;

mod deploy;
mod replica;
pub use deploy::{
    check_token, CorsOrigins, Deploy, DeployArgs, HeaderSource, Secret, StaticHeader, TlsFiles,
};
pub use replica::{ReplicaArgs, Replicas};

/// `--upstream-transport`: `auto` or a transport's name, listed in `--help`.
fn upstream_transport_names() -> impl clap::builder::TypedValueParser<Value = UpstreamTransport> {
    let names: Vec<&'static str> = std::iter::once("auto")
        .chain(Transport::HTTP.iter().map(|t| t.as_str()))
        .collect();
    clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(names), |s| {
        s.parse().expect("a listed name parses")
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// mcp-bridge: lets MCP clients and servers of the legacy HTTP+SSE transport and of
/// Streamable HTTP talk to each other. Every flag has an MCP_BRIDGE_* environment twin.
#[derive(Parser, Debug)]
#[command(name = "mcp-bridge", version, about, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// URL of the upstream MCP server (its Streamable endpoint or its legacy SSE endpoint).
    #[arg(
        long,
        env = "MCP_BRIDGE_UPSTREAM",
        required_unless_present = "upstream_command"
    )]
    pub upstream: Option<String>,

    /// Transport the upstream speaks (only with --upstream; default auto): auto (probe with
    /// the client's initialize), streamable (2025-03-26 … 2025-11-25, sessions),
    /// streamable-2026 (protocol 2026-07-28, sessionless) or sse (legacy HTTP+SSE, 2024-11-05).
    #[arg(
        long,
        env = "MCP_BRIDGE_UPSTREAM_TRANSPORT",
        value_parser = upstream_transport_names()
    )]
    pub upstream_transport: Option<UpstreamTransport>,

    /// A stdio MCP server to run instead of an HTTP upstream, one process per session:
    /// `'CMD ARGS…'`, split like a shell would (quotes, backslashes) but run without one.
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_COMMAND")]
    pub upstream_command: Option<String>,

    /// An environment variable for the stdio server, NAME=VALUE (repeatable). It gets only
    /// these and a few harmless ones of the bridge's own (see the README).
    /// (The environment twin holds one pair: values may contain commas.)
    #[arg(long = "upstream-env", env = "MCP_BRIDGE_UPSTREAM_ENV")]
    pub upstream_env: Vec<String>,

    /// Working directory of the stdio server (default: the bridge's).
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_CWD")]
    pub upstream_cwd: Option<std::path::PathBuf>,

    /// Stdio server processes kept started ahead, so a new session never waits for one.
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_POOL", default_value_t = 2)]
    pub upstream_pool: usize,

    /// How long a stdio server gets to exit after its stdin is closed, and again after SIGTERM,
    /// before it is killed.
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_STOP_GRACE", default_value = "2s", value_parser = parse_duration)]
    pub upstream_stop_grace: Duration,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MCP_BRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Path of the legacy SSE stream (GET).
    #[arg(long, env = "MCP_BRIDGE_SSE_PATH", default_value = "/sse")]
    pub sse_path: String,

    /// Path of the legacy message endpoint (POST ?sessionId=…).
    #[arg(long, env = "MCP_BRIDGE_MESSAGES_PATH", default_value = "/messages")]
    pub messages_path: String,

    /// Path of the Streamable HTTP endpoint (POST/GET/DELETE).
    #[arg(long, env = "MCP_BRIDGE_MCP_PATH", default_value = "/mcp")]
    pub mcp_path: String,

    /// Path prefix under which clients reach the bridge (e.g. behind a reverse proxy that
    /// strips `/tools`): put in front of the message path in the legacy `endpoint` event.
    #[arg(long, env = "MCP_BRIDGE_PUBLIC_PREFIX", default_value = "")]
    pub public_prefix: String,

    /// Trust `X-Forwarded-Prefix`, `X-Forwarded-Host` and `X-Forwarded-Proto` from a reverse
    /// proxy when forming the legacy `endpoint` event. Only for a bridge reachable solely
    /// through that proxy: any client could otherwise steer where it POSTs.
    #[arg(long, env = "MCP_BRIDGE_TRUST_FORWARDED_HEADERS")]
    pub trust_forwarded_headers: bool,

    /// Interval of SSE keep-alive comments on every stream the bridge serves.
    #[arg(long, env = "MCP_BRIDGE_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// A session with no open client stream and no traffic for this long is ended.
    #[arg(long, env = "MCP_BRIDGE_SESSION_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,

    /// Deadline for connecting to the upstream (and for a legacy upstream's `endpoint` event).
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Deadline for the upstream's response headers to a POST (and for reading a JSON answer).
    #[arg(long, env = "MCP_BRIDGE_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Largest accepted message body (e.g. 4MiB); larger POSTs get 413.
    #[arg(long, env = "MCP_BRIDGE_MAX_BODY", default_value = "4MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Deadline for reading a request body once its headers arrived; a slower body gets 408
    /// and its connection is closed.
    #[arg(long, env = "MCP_BRIDGE_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Most client sessions at once; more get 503.
    #[arg(long, env = "MCP_BRIDGE_MAX_SESSIONS", default_value_t = 1_000)]
    pub max_sessions: usize,

    /// Most upstream sessions kept for sessionless (2026-07-28) clients, idle and lent; a
    /// request finding all of them lent gets 503.
    #[arg(long, env = "MCP_BRIDGE_SESSIONLESS_MAX", default_value_t = 64)]
    pub sessionless_max: usize,

    /// An upstream session kept for sessionless clients is closed after this long unused.
    #[arg(long, env = "MCP_BRIDGE_SESSIONLESS_IDLE", default_value = "2m", value_parser = parse_duration)]
    pub sessionless_idle: Duration,

    /// Browser origins allowed besides the bridge's own (repeatable or comma separated).
    #[arg(
        long = "allowed-origin",
        env = "MCP_BRIDGE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Host names (or addresses) accepted in `Host` besides the listen address, localhost
    /// names (on loopback and unspecified binds) and the TLS certificate's DNS names
    /// (repeatable or comma separated).
    #[arg(
        long = "allowed-host",
        env = "MCP_BRIDGE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// TLS, CORS, bearer tokens, upstream header policy and limits (see `mcp-bridge --help`).
    #[command(flatten)]
    pub deploy: DeployArgs,

    /// Replicas with a session directory in Redis (`--redis`, see docs/REPLICAS.md).
    #[command(flatten)]
    pub replica: ReplicaArgs,

    /// Events kept per Streamable client stream for replay after a reconnect.
    #[arg(long, env = "MCP_BRIDGE_REPLAY_EVENTS", default_value_t = 1024)]
    pub replay_events: usize,

    /// Bytes kept per Streamable client stream for replay.
    #[arg(long, env = "MCP_BRIDGE_REPLAY_BYTES", default_value = "8MiB", value_parser = parse_size)]
    pub replay_bytes: usize,

    /// How long a finished client stream stays replayable.
    #[arg(long, env = "MCP_BRIDGE_REPLAY_AGE", default_value = "5m", value_parser = parse_duration)]
    pub replay_age: Duration,

    /// Bytes all client streams of one session may hold (replay logs and undelivered events).
    #[arg(long, env = "MCP_BRIDGE_REPLAY_SESSION_BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub replay_session_bytes: usize,

    /// Bytes all client streams of the whole process may hold.
    #[arg(long, env = "MCP_BRIDGE_REPLAY_TOTAL_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub replay_total_bytes: usize,

    /// How long a connected client may read nothing while events wait for it before its
    /// stream is cut (it resumes with Last-Event-ID; a legacy client's session ends).
    #[arg(long, env = "MCP_BRIDGE_SLOW_READER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub slow_reader_timeout: Duration,

    /// Write one JSON line per message, difference and session end to this file.
    #[arg(long, env = "MCP_BRIDGE_JOURNAL")]
    pub journal: Option<std::path::PathBuf>,

    /// Include each message body in the journal (bodies may hold secrets).
    #[arg(long, env = "MCP_BRIDGE_JOURNAL_BODIES")]
    pub journal_bodies: bool,

    /// Journal lines queued before new ones are dropped (and counted); relaying never waits.
    #[arg(long, env = "MCP_BRIDGE_JOURNAL_QUEUE", default_value_t = crate::observe::JOURNAL_QUEUE)]
    pub journal_queue: usize,

    /// Serve /healthz, /readyz and /metrics on this address (off when not given).
    #[arg(long, env = "MCP_BRIDGE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Log level filter (overridden by RUST_LOG when set).
    #[arg(long, env = "MCP_BRIDGE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(
        long,
        env = "MCP_BRIDGE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Worker threads (0 = one per core).
    #[arg(long, env = "MCP_BRIDGE_WORKERS", default_value_t = 0)]
    pub workers: usize,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Work with a wire journal written by --journal.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum JournalAction {
    /// Per-session and per-method tables: counts, difference kinds, request→response latency.
    Summarize { file: std::path::PathBuf },
}

/// Where the upstream MCP server is.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// An HTTP server (Streamable or legacy SSE).
    Http(Url),
    /// A stdio server the bridge runs, one process per session.
    Stdio(StdioCommand),
}

impl Upstream {
    /// The HTTP URL; `None` for a stdio server.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Upstream::Http(u) => Some(u),
            Upstream::Stdio(_) => None,
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Http(u) => write!(f, "{u}"),
            Upstream::Stdio(c) => write!(f, "stdio:{}", c.line),
        }
    }
}

/// How to start the stdio server.
#[derive(Clone, Debug)]
pub struct StdioCommand {
    /// The command line as given (for logs).
    pub line: String,
    pub program: String,
    pub args: Vec<String>,
    /// `--upstream-env` pairs, on top of the inherited allow-list.
    pub env: Vec<(String, String)>,
    pub cwd: Option<std::path::PathBuf>,
    pub pool: usize,
    pub stop_grace: Duration,
}

/// The validated configuration the bridge runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub upstream: Upstream,
    pub upstream_transport: UpstreamTransport,
    pub listen: SocketAddr,
    pub sse_path: String,
    pub messages_path: String,
    pub mcp_path: String,
    pub public_prefix: String,
    pub trust_forwarded_headers: bool,
    pub keepalive: Duration,
    pub session_idle_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_body: usize,
    pub body_timeout: Duration,
    pub max_sessions: usize,
    pub sessionless_max: usize,
    pub sessionless_idle: Duration,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub deploy: Deploy,
    /// `None` without `--redis`.
    pub replicas: Option<Replicas>,
    pub replay: ReplayLimits,
    pub journal: Option<std::path::PathBuf>,
    pub journal_bodies: bool,
    pub journal_queue: usize,
    pub admin_listen: Option<SocketAddr>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub workers: usize,
}

/// Bounds of what client streams hold, and how long a connected reader may stall them.
#[derive(Clone, Copy, Debug)]
pub struct ReplayLimits {
    /// Per stream.
    pub events: usize,
    /// Per stream.
    pub bytes: usize,
    pub age: Duration,
    /// All streams of one session.
    pub session_bytes: usize,
    /// All streams of the process.
    pub total_bytes: usize,
    pub slow_reader_timeout: Duration,
}

impl Default for ReplayLimits {
    /// The flags' defaults.
    fn default() -> ReplayLimits {
        ReplayLimits {
            events: 1024,
            bytes: 8 << 20,
            age: Duration::from_secs(300),
            session_bytes: 16 << 20,
            total_bytes: 256 << 20,
            slow_reader_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Parse arguments (the first item is the program name) and validate them.
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| ConfigError(e.to_string()))?;
        Config::try_from(cli)
    }
}

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Config, ConfigError> {
        let bad = |s: String| Err(ConfigError(s));
        let upstream = upstream(&cli)?;
        let upstream_transport = match &upstream {
            Upstream::Stdio(_) => UpstreamTransport::Fixed(Transport::Stdio),
            Upstream::Http(_) => cli.upstream_transport.unwrap_or(UpstreamTransport::Auto),
        };
        let sse_path = normalize_path("--sse-path", &cli.sse_path)?;
        let messages_path = normalize_path("--messages-path", &cli.messages_path)?;
        let mcp_path = normalize_path("--mcp-path", &cli.mcp_path)?;
        if sse_path == messages_path || sse_path == mcp_path || messages_path == mcp_path {
            return bad("--sse-path, --messages-path and --mcp-path must differ".into());
        }
        let Some(public_prefix) = path_prefix(&cli.public_prefix) else {
            return bad(format!(
                "--public-prefix {:?}: must be a path starting with a single / (no \\, //, \
                 .. segments, ?, # or control characters)",
                cli.public_prefix
            ));
        };
        for (name, d) in [
            ("--keepalive", cli.keepalive),
            ("--session-idle-timeout", cli.session_idle_timeout),
            ("--upstream-connect-timeout", cli.upstream_connect_timeout),
            ("--upstream-timeout", cli.upstream_timeout),
            ("--replay-age", cli.replay_age),
            ("--slow-reader-timeout", cli.slow_reader_timeout),
            ("--body-timeout", cli.body_timeout),
            ("--sessionless-idle", cli.sessionless_idle),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be greater than zero"));
            }
        }
        if cli.max_body == 0
            || cli.max_sessions == 0
            || cli.sessionless_max == 0
            || cli.replay_events == 0
            || cli.journal_queue == 0
        {
            return bad(
                "--max-body, --max-sessions, --sessionless-max and --replay-events must be positive"
                    .into(),
            );
        }
        if cli.replay_bytes < cli.max_body {
            return bad(format!(
                "--replay-bytes ({}) must hold at least one message of --max-body ({})",
                cli.replay_bytes, cli.max_body
            ));
        }
        if cli.replay_session_bytes < cli.replay_bytes
            || cli.replay_total_bytes < cli.replay_session_bytes
        {
            return bad(format!(
                "--replay-bytes ({}) <= --replay-session-bytes ({}) <= --replay-total-bytes ({}) must hold",
                cli.replay_bytes, cli.replay_session_bytes, cli.replay_total_bytes
            ));
        }
        let deploy = Deploy::try_from(cli.deploy)?;
        let replicas = Replicas::from_args(cli.replica)?;
        let mut allowed_origins: Vec<String> = cli
            .allowed_origins
            .iter()
            .map(|o| {
                let o = o.trim().trim_end_matches('/');
                match Url::parse(o) {
                    Ok(u) if u.has_host() => Ok(o.to_ascii_lowercase()),
                    _ => Err(ConfigError(format!(
                        "--allowed-origin {o:?}: expected scheme://host[:port]"
                    ))),
                }
            })
            .collect::<Result<_, _>>()?;
        // One allow-list: an origin allowed for CORS passes the Origin check too.
        allowed_origins.extend(deploy.cors.origin_check_entries());
        tracing_subscriber::EnvFilter::try_new(&cli.log_level)
            .map_err(|e| ConfigError(format!("--log-level {:?}: {e}", cli.log_level)))?;
        Ok(Config {
            upstream,
            upstream_transport,
            listen: cli.listen,
            sse_path,
            messages_path,
            mcp_path,
            public_prefix,
            trust_forwarded_headers: cli.trust_forwarded_headers,
            keepalive: cli.keepalive,
            session_idle_timeout: cli.session_idle_timeout,
            upstream_connect_timeout: cli.upstream_connect_timeout,
            upstream_timeout: cli.upstream_timeout,
            max_body: cli.max_body,
            body_timeout: cli.body_timeout,
            max_sessions: cli.max_sessions,
            sessionless_max: cli.sessionless_max,
            sessionless_idle: cli.sessionless_idle,
            allowed_origins,
            allowed_hosts: cli
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            deploy,
            replicas,
            replay: ReplayLimits {
                events: cli.replay_events,
                bytes: cli.replay_bytes,
                age: cli.replay_age,
                session_bytes: cli.replay_session_bytes,
                total_bytes: cli.replay_total_bytes,
                slow_reader_timeout: cli.slow_reader_timeout,
            },
            journal: cli.journal,
            journal_bodies: cli.journal_bodies,
            journal_queue: cli.journal_queue,
            admin_listen: cli.admin_listen,
            log_level: cli.log_level,
            log_format: cli.log_format,
            workers: cli.workers,
        })
    }
}

/// Exactly one of `--upstream` and `--upstream-command`, with only the flags that fit it.
fn upstream(cli: &Cli) -> Result<Upstream, ConfigError> {
    let bad = |s: &str| Err(ConfigError(s.to_owned()));
    match (&cli.upstream, &cli.upstream_command) {
        (Some(_), Some(_)) => bad("give either --upstream or --upstream-command, not both"),
        (None, None) => bad("--upstream or --upstream-command is required"),
        (Some(raw), None) => {
            if !cli.upstream_env.is_empty() || cli.upstream_cwd.is_some() {
                return bad("--upstream-env and --upstream-cwd go with --upstream-command");
            }
            let url =
                Url::parse(raw).map_err(|e| ConfigError(format!("--upstream {raw:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError(format!(
                    "--upstream {raw:?}: must be an http(s) URL"
                )));
            }
            Ok(Upstream::Http(url))
        }
        (None, Some(line)) => {
            if cli.upstream_transport.is_some() {
                return bad(
                    "--upstream-transport goes with --upstream (a URL), not --upstream-command",
                );
            }
            let mut words = shlex::split(line)
                .ok_or_else(|| {
                    ConfigError(format!("--upstream-command {line:?}: unbalanced quotes"))
                })?
                .into_iter();
            let program = words
                .next()
                .ok_or_else(|| ConfigError("--upstream-command is empty".into()))?;
            let env = cli
                .upstream_env
                .iter()
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                        Ok((k.to_owned(), v.to_owned()))
                    }
                    _ => Err(ConfigError(format!(
                        "--upstream-env {pair:?}: expected NAME=VALUE"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            if cli.upstream_stop_grace.is_zero() {
                return bad("--upstream-stop-grace must be greater than zero");
            }
            Ok(Upstream::Stdio(StdioCommand {
                line: line.clone(),
                program,
                args: words.collect(),
                env,
                cwd: cli.upstream_cwd.clone(),
                pool: cli.upstream_pool,
                stop_grace: cli.upstream_stop_grace,
            }))
        }
    }
}

/// Paths are compared without a trailing slash, so `/messages` and `/messages/` both match.
fn normalize_path(flag: &str, p: &str) -> Result<String, ConfigError> {
    if !p.starts_with('/') || p.contains(['?', '#']) {
        return Err(ConfigError(format!(
            "{flag} {p:?}: must be a path starting with /"
        )));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(ConfigError(format!("{flag} {p:?}: must not be the root")));
    }
    Ok(trimmed.to_owned())
}

/// A path prefix without its trailing slash (`""` for none); `None` unless it is a plain
/// absolute path. It is put in front of a path the bridge sends to clients, so nothing that
/// a URL parser could read as another host (`//h`, `/\\h`), another path (`..`, `%2e%2e`)
/// or the end of the path (`?`, `#`), and no control or non-ASCII character, is let through.
pub fn path_prefix(p: &str) -> Option<String> {
    let p = p.trim_matches(' ').trim_end_matches('/');
    if p.is_empty() {
        return Some(String::new());
    }
    // Path characters of RFC 3986 only (unreserved, sub-delims, `:`, `@`, `%`), so that
    // what the client resolves is exactly what was checked.
    let pchar = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c);
    let plain = p.starts_with('/')
        && p.split('/')
            .skip(1)
            .all(|seg| !seg.is_empty() && seg.chars().all(pchar) && !is_dot_segment(seg));
    plain.then(|| p.to_owned())
}

/// `.` or `..`, also percent-encoded (URL parsers decode `%2e` in dot segments).
fn is_dot_segment(seg: &str) -> bool {
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// `15s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 15s, 500ms, 2m, 1h"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    })
}

/// `4MiB`, `512KiB`, `1MB`, or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 4MiB, 512KiB, 1048576"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KiB, MiB, GiB, KB, MB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut args = vec!["mcp-bridge", "--upstream", "http://127.0.0.1:9/mcp"];
        args.extend_from_slice(extra);
        Config::from_args(args)
    }

    #[test]
    fn defaults_are_safe() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.upstream_transport, UpstreamTransport::Auto);
        assert_eq!(
            (
                c.sse_path.as_str(),
                c.messages_path.as_str(),
                c.mcp_path.as_str()
            ),
            ("/sse", "/messages", "/mcp")
        );
        assert_eq!(c.keepalive, Duration::from_secs(15));
        assert_eq!(c.max_body, 4 << 20);
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        for (args, needle) in [
            (&["--sse-path", "sse"][..], "--sse-path"),
            (&["--mcp-path", "/sse"][..], "must differ"),
            (&["--keepalive", "0s"][..], "--keepalive"),
            (&["--max-body", "4XB"][..], "unknown unit"),
            (&["--allowed-origin", "nope"][..], "--allowed-origin"),
            (&["--public-prefix", "x"][..], "--public-prefix"),
        ] {
            let err = cfg(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = Config::from_args(["mcp-bridge", "--upstream", "ftp://x/"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("http(s)"), "{err}");
    }

    #[test]
    fn paths_lose_trailing_slash_and_prefix_is_normalised() {
        let c = cfg(&[
            "--messages-path",
            "/messages/",
            "--public-prefix",
            "/tools/",
        ])
        .unwrap();
        assert_eq!(c.messages_path, "/messages");
        assert_eq!(c.public_prefix, "/tools");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("x").is_err());
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("10").unwrap(), 10);
    }

    #[test]
    fn upstream_is_a_url_or_a_command_never_both() {
        let c = Config::from_args([
            "mcp-bridge",
            "--upstream-command",
            r#"python3 "my server.py" --flag 'a b'"#,
            "--upstream-env",
            "TOKEN=x=y,z",
            "--upstream-pool",
            "0",
        ])
        .unwrap();
        let Upstream::Stdio(cmd) = &c.upstream else {
            panic!("a command upstream");
        };
        assert_eq!(cmd.program, "python3");
        assert_eq!(cmd.args, ["my server.py", "--flag", "a b"]);
        assert_eq!(cmd.env, [("TOKEN".to_owned(), "x=y,z".to_owned())]);
        assert_eq!(cmd.pool, 0);
        for (args, needle) in [
            (
                &["--upstream", "http://h/", "--upstream-command", "x"][..],
                "not both",
            ),
            (
                &["--upstream-command", "x", "--upstream-transport", "sse"][..],
                "--upstream-transport",
            ),
            (&["--upstream-command", "x 'y"][..], "unbalanced"),
            (&["--upstream-command", " "][..], "empty"),
            (
                &["--upstream-command", "x", "--upstream-env", "NOVALUE"][..],
                "NAME=VALUE",
            ),
            (
                &["--upstream", "http://h/", "--upstream-cwd", "/"][..],
                "--upstream-command",
            ),
        ] {
            let mut all = vec!["mcp-bridge"];
            all.extend_from_slice(args);
            let err = Config::from_args(all).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = Config::from_args(["mcp-bridge"]).unwrap_err().to_string();
        assert!(err.contains("--upstream"), "{err}");
    }
}
