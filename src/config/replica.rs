//! Flags for running several replicas behind a load balancer with a session directory in
//! Redis (issue 16). Off unless `--redis` is given; then the replica's address and the
//! replica-to-replica secret are required. Checked here without I/O; the files named are read
//! at startup.

use std::path::PathBuf;

use clap::Args;
use url::Url;

use super::ConfigError;
use crate::replica::keys::DEFAULT_PREFIX;

#[derive(Args, Debug, Clone)]
pub struct ReplicaArgs {
    /// Redis holding the replica session directory: redis://[user:password@]host[:port][/db]
    /// or rediss:// (TLS). Off when not given: the bridge is a single process.
    #[arg(long = "redis", env = "MCP_BRIDGE_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// File holding the Redis password (surrounding whitespace trimmed), instead of one in the
    /// --redis URL.
    #[arg(long, env = "MCP_BRIDGE_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,

    /// Prefix of every Redis key this bridge writes (bridges sharing a Redis need different
    /// ones).
    #[arg(long, env = "MCP_BRIDGE_REDIS_KEY_PREFIX", default_value = DEFAULT_PREFIX)]
    pub redis_key_prefix: String,

    /// URL where the other replicas reach this one, e.g. http://10.0.0.5:8080 (required with
    /// --redis).
    #[arg(long, env = "MCP_BRIDGE_REPLICA_ADDRESS")]
    pub replica_address: Option<String>,

    /// File holding the secret shared by all replicas, which authenticates replica-to-replica
    /// requests (required with --redis).
    #[arg(long, env = "MCP_BRIDGE_REPLICA_SECRET_FILE")]
    pub replica_secret_file: Option<PathBuf>,

    /// Also keep the replay logs of Streamable sessions in Redis (one stream per session,
    /// bounded like the in-memory logs), so that a client resuming with Last-Event-ID after
    /// its replica was lost gets the events it missed. Costs one Redis write per event.
    #[arg(long, env = "MCP_BRIDGE_REDIS_REPLAY")]
    pub redis_replay: bool,

    /// On SIGTERM, how long requests in flight may take to finish before the replica ends
    /// its sessions (Streamable ones are taken over by the other replicas) and exits.
    #[arg(long, env = "MCP_BRIDGE_DRAIN_TIMEOUT", default_value = "10s", value_parser = super::parse_duration)]
    pub drain_timeout: std::time::Duration,
}

/// Validated replica settings (present only with `--redis`).
#[derive(Clone)]
pub struct Replicas {
    /// The Redis URL, possibly holding a password: never print it (see `Debug`).
    pub redis: Url,
    pub redis_password_file: Option<PathBuf>,
    pub key_prefix: String,
    /// Scheme, host and port only.
    pub address: Url,
    pub secret_file: PathBuf,
    pub drain_timeout: std::time::Duration,
    /// `--redis-replay`.
    pub replay: bool,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut redis = self.redis.clone();
        if redis.password().is_some() {
            let _ = redis.set_password(Some("***"));
        }
        f.debug_struct("Replicas")
            .field("redis", &redis.as_str())
            .field("redis_password_file", &self.redis_password_file)
            .field("key_prefix", &self.key_prefix)
            .field("address", &self.address.as_str())
            .field("secret_file", &self.secret_file)
            .field("drain_timeout", &self.drain_timeout)
            .field("replay", &self.replay)
            .finish()
    }
}

impl Replicas {
    /// `None` without `--redis`; an error for a bad or incomplete set of flags.
    pub fn from_args(a: ReplicaArgs) -> Result<Option<Replicas>, ConfigError> {
        let bad = |s: String| Err(ConfigError(s));
        let Some(raw) = a.redis else {
            for (flag, given) in [
                ("--redis-replay", a.redis_replay),
                ("--redis-password-file", a.redis_password_file.is_some()),
                ("--replica-address", a.replica_address.is_some()),
                ("--replica-secret-file", a.replica_secret_file.is_some()),
            ] {
                if given {
                    return bad(format!("{flag} needs --redis"));
                }
            }
            return Ok(None);
        };
        // Never echo the URL: it may hold the password.
        let redis = Url::parse(&raw).map_err(|e| ConfigError(format!("--redis: {e}")))?;
        if !matches!(redis.scheme(), "redis" | "rediss") || redis.host().is_none() {
            return bad("--redis: must be a redis:// or rediss:// URL with a host".into());
        }
        let db = redis.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return bad("--redis: the path may only be a database number (/0, /1 …)".into());
        }
        if redis.password().is_some() && a.redis_password_file.is_some() {
            return bad("--redis has a password and --redis-password-file gives another".into());
        }
        let prefix = a.redis_key_prefix;
        if prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(format!(
                "--redis-key-prefix {prefix:?}: at most 64 characters, no spaces or control characters"
            ));
        }
        let Some(raw_address) = a.replica_address else {
            return bad(
                "--redis needs --replica-address (where the other replicas reach this one)".into(),
            );
        };
        let address = replica_address(&raw_address).ok_or_else(|| {
            ConfigError(format!(
                "--replica-address {raw_address:?}: expected http(s)://host[:port] with a host \
                 other replicas can reach (not 0.0.0.0 or ::)"
            ))
        })?;
        let Some(secret_file) = a.replica_secret_file else {
            return bad("--redis needs --replica-secret-file (replica-to-replica requests are authenticated)".into());
        };
        Ok(Some(Replicas {
            redis,
            redis_password_file: a.redis_password_file,
            key_prefix: prefix,
            address,
            secret_file,
            drain_timeout: a.drain_timeout,
            replay: a.redis_replay,
        }))
    }
}

/// `http(s)://host[:port]` (a trailing `/` allowed), with a host that is not unspecified.
fn replica_address(raw: &str) -> Option<Url> {
    let u = Url::parse(raw).ok()?;
    let plain = matches!(u.scheme(), "http" | "https")
        && u.username().is_empty()
        && u.password().is_none()
        && u.path() == "/"
        && u.query().is_none()
        && u.fragment().is_none();
    let reachable = match u.host()? {
        url::Host::Ipv4(ip) => !ip.is_unspecified(),
        url::Host::Ipv6(ip) => !ip.is_unspecified(),
        url::Host::Domain(_) => true,
    };
    (plain && reachable).then_some(u)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: [&str; 3] = ["mcp-bridge", "--upstream", "http://127.0.0.1:1/mcp"];

    fn parse(extra: &[&str]) -> Result<Config, String> {
        Config::from_args(BASE.iter().chain(extra)).map_err(|e| e.to_string())
    }

    const FULL: [&str; 6] = [
        "--redis",
        "redis://:hunter2@redis.internal:6379/1",
        "--replica-address",
        "http://10.0.0.5:8080",
        "--replica-secret-file",
        "/run/secrets/replica",
    ];

    #[test]
    fn off_by_default() {
        assert!(parse(&[]).unwrap().replicas.is_none());
    }

    #[test]
    fn a_full_set_parses_and_its_debug_hides_the_password() {
        let r = parse(&FULL).unwrap().replicas.unwrap();
        assert_eq!(r.redis.host_str(), Some("redis.internal"));
        assert_eq!(r.address.as_str(), "http://10.0.0.5:8080/");
        assert_eq!(r.key_prefix, "mcp-bridge:");
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
        let tls = parse(&[&FULL[..1], &["rediss://redis.internal"], &FULL[2..]].concat());
        assert!(tls.unwrap().replicas.is_some());
    }

    #[test]
    fn bad_or_incomplete_sets_are_refused_with_the_flag_named() {
        let with = |i: usize, v: &str| {
            let mut a = FULL.to_vec();
            a[i] = v;
            parse(&a).unwrap_err()
        };
        for (err, flag) in [
            (with(1, "http://redis.internal"), "--redis"),
            (with(1, "redis://redis.internal/cache"), "database number"),
            (with(3, "http://0.0.0.0:8080"), "--replica-address"),
            (with(3, "http://10.0.0.5:8080/mcp"), "--replica-address"),
            (with(3, "10.0.0.5:8080"), "--replica-address"),
            (parse(&FULL[..4]).unwrap_err(), "--replica-secret-file"),
            (
                parse(&[&FULL[..2], &FULL[4..]].concat()).unwrap_err(),
                "--replica-address",
            ),
            (
                parse(&[&FULL[..], &["--redis-password-file", "/p"]].concat()).unwrap_err(),
                "--redis-password-file",
            ),
            (
                parse(&[&FULL[..], &["--redis-key-prefix", "a b"]].concat()).unwrap_err(),
                "--redis-key-prefix",
            ),
            (
                parse(&["--replica-address", "http://10.0.0.5:8080"]).unwrap_err(),
                "needs --redis",
            ),
        ] {
            assert!(err.contains(flag), "{flag}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
