//! The benchmark suite: starts the fast upstreams (one process per transport) and the bridge
//! (a process per upstream transport), runs every scenario direct and through the bridge for
//! every client × upstream pair, and writes the markdown report: [`plan`] says what runs,
//! [`run`] executes it (children in [`procs`]), [`report`] writes the results.
//!
//! "Direct" for a pair is the same *client* transport straight to the fast upstream of that
//! transport, so a pair's ratio shows what putting the bridge in the path costs that client.

#[path = "plan.rs"]
mod plan;
#[path = "procs.rs"]
mod procs;
#[path = "report.rs"]
mod report;
#[path = "run.rs"]
mod run;
#[path = "stdio.rs"]
mod stdio;

use std::path::PathBuf;
use std::time::Instant;

use crate::client::ClientKind;

pub use procs::rss_kib;

#[derive(clap::Args, Clone, Debug)]
pub struct SuiteArgs {
    /// The bridge binary.
    #[arg(long, default_value = "target/release/mcp-bridge")]
    bridge: PathBuf,
    /// Markdown report.
    #[arg(long, default_value = "bench-results/latest.md")]
    out: PathBuf,
    /// Raw results (JSON).
    #[arg(long, default_value = "bench-results/latest.json")]
    json_out: PathBuf,
    /// Bridge and upstream logs go here.
    #[arg(long, default_value = "bench-results/logs")]
    log_dir: PathBuf,
    /// `--workers` of the bridge (0: its default, one per core). One worker by default: the
    /// bridge, the upstream and the load generator share two cores, one busy thread each.
    #[arg(long, default_value_t = 1)]
    bridge_workers: usize,
    /// actix workers of each fake upstream.
    #[arg(long, default_value_t = 1)]
    upstream_workers: usize,
    /// Load-generator threads for the multi-session scenarios.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra arguments for the bridge (repeatable), e.g. --bridge-arg=--log-level=warn.
    #[arg(long = "bridge-arg", allow_hyphen_values = true)]
    bridge_args: Vec<String>,
    /// Use this server instead of the fake upstream of --upstream-transport.
    #[arg(long, requires = "upstream_transport")]
    upstream_url: Option<String>,
    #[arg(long, value_enum)]
    upstream_transport: Option<ClientKind>,
    /// tools/call params for the echo scenarios against --upstream-url.
    #[arg(
        long,
        default_value = r#"{"name":"echo","arguments":{"text":"hello"}}"#
    )]
    echo_params: String,
    /// tools/call params of a notification-emitting tool on --upstream-url (the scenario is
    /// skipped there without it; a progress token is added).
    #[arg(long)]
    progress_params: Option<String>,
    /// tools/call params returning about 1 MiB on --upstream-url (skipped without it).
    #[arg(long)]
    big_params: Option<String>,
    /// Concurrent sessions of the throughput scenario.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Steps of the `progress` tool in the notification scenario (2 notifications each).
    #[arg(long, default_value_t = 50)]
    steps: u64,
    /// Sessions of the notification scenario.
    #[arg(long, default_value_t = 8)]
    notify_sessions: usize,
    /// Idle session counts (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    idle: Vec<usize>,
    /// Also run the smallest idle size with Streamable clients holding their GET stream.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idle_listen: bool,
    /// Seconds the idle sessions are held open (through the bridge) before RSS is read and
    /// they close.
    #[arg(long, default_value_t = 6.0)]
    idle_hold: f64,
    /// Concurrency while opening/closing idle sessions.
    #[arg(long, default_value_t = 64)]
    idle_concurrency: usize,
    /// Seconds measured per load run (scaled per scenario).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs of each target in scenarios (a) and (b); the median one is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The stdio server of scenarios f, g and h, as `--upstream-command` takes it: the test
    /// kit's fast server in Rust by default, or e.g. 'node …/server-everything/dist/index.js stdio'.
    #[arg(long, default_value = "target/release/examples/stdio_server")]
    stdio_command: Option<String>,
    /// The same server software over Streamable HTTP, started with PORT=<free port> and
    /// reached at http://127.0.0.1:PORT/mcp (split on blanks, no shell), for comparison.
    #[arg(long)]
    stdio_http_command: Option<String>,
    /// tools/call params of the echo in scenarios g and h (the test kit's echo by default;
    /// server-everything's takes `message`).
    #[arg(
        long,
        default_value = r#"{"name":"echo","arguments":{"text":"hello"}}"#
    )]
    stdio_echo_params: String,
    /// `--upstream-pool` of the stdio bridge.
    #[arg(long, default_value_t = 2)]
    stdio_pool: usize,
    /// Fresh sessions per run of scenario f.
    #[arg(long, default_value_t = 25)]
    stdio_opens: usize,
    /// Seconds between sessions in the paced runs of scenario f: long enough for the pool's
    /// replacement to be up (a node server takes 0.3–1 s to start on a busy 2-core machine).
    #[arg(long, default_value_t = 2.0)]
    stdio_open_gap: f64,
    /// Concurrent sessions of scenario g.
    #[arg(long, default_value_t = 8)]
    stdio_sessions: usize,
    /// Only these scenarios (comma separated letters: a,b,c,d,e,m,n,o; f,g,h are the stdio
    /// ones).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e,m,n,o,f,h")]
    only: Vec<String>,
    /// Commit the figures belong to (for the report header).
    #[arg(long, default_value = "")]
    commit: String,
}

impl SuiteArgs {
    /// Whether scenario `key` was chosen (`--only`).
    fn only(&self, key: &str) -> bool {
        self.only.iter().any(|o| o.trim() == key)
    }
}

pub fn run(args: SuiteArgs) -> i32 {
    match run::run_suite(&args) {
        Ok(clean) => i32::from(!clean),
        Err(e) => {
            eprintln!("loadgen suite: {e}");
            2
        }
    }
}

/// A progress line on stderr, with the seconds since the first one.
fn say(msg: impl AsRef<str>) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[bench {t:6.1}s] {}", msg.as_ref());
}
