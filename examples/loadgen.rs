//! `loadgen`: the load generator and benchmark driver of mcp-bridge (`make bench`).
//!
//! ```text
//! loadgen upstream --transport legacy|streamable|modern [--workers N]
//!     A fast fake MCP upstream (the test kit's FakeServer). Prints `url <URL>`, then answers
//!     `stats` on stdin with `stats <sessions> <open streams>`; exits when stdin closes.
//! loadgen load --client legacy|streamable --url URL [--sessions N] [--threads T]
//!              [--duration S] [--warmup S] [--max-calls N] [--tool echo|progress|big] ...
//!     N concurrent sessions of sequential tools/call against any MCP URL (the bridge's
//!     /sse or /mcp, or a server directly); prints calls/s, latency percentiles, errors and
//!     lost/reordered notifications (`--json` for one JSON line).
//! loadgen idle --client legacy|streamable --url URL --sessions N [--pid PID]
//!     Opens N initialised sessions, reports the time and PID's VmRSS, closes them.
//! loadgen suite --bridge target/release/mcp-bridge [--out bench-results/latest.md]
//!     The whole benchmark: every scenario, direct and through the bridge, for every
//!     client × upstream transport pair; writes the markdown table.
//! ```
//!
//! Everything binds and connects on 127.0.0.1 only, and every run is bounded in time and calls.

#[path = "loadgen/client.rs"]
mod client;
#[path = "loadgen/hist.rs"]
mod hist;
#[path = "loadgen/idle.rs"]
mod idle;
#[path = "loadgen/load.rs"]
mod load;
#[path = "loadgen/suite.rs"]
mod suite;

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use client::ClientKind;
use load::{CallSpec, LoadSpec};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator and benchmark driver for mcp-bridge"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Tool {
    Echo,
    Progress,
    Big,
}

// Parsed once at start-up: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run a fast fake MCP upstream on 127.0.0.1 until stdin closes.
    Upstream {
        #[arg(long, value_enum)]
        transport: ClientKind,
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Drive sessions of sequential tools/call against one URL.
    Load(LoadArgs),
    /// Open N idle sessions, report the time (and a process's RSS), close them.
    Idle(IdleArgs),
    /// The whole benchmark (what `make bench` runs).
    // A later --flag overrides an earlier one, so bench/run.sh's defaults can be overridden.
    #[command(args_override_self = true)]
    Suite(suite::SuiteArgs),
}

#[derive(Args)]
struct LoadArgs {
    #[arg(long, value_enum)]
    client: ClientKind,
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    #[arg(long, default_value_t = 10_000_000)]
    max_calls: u64,
    #[arg(long, value_enum, default_value = "echo")]
    tool: Tool,
    /// `progress`: steps (each one log message + one progress notification).
    #[arg(long, default_value_t = 10)]
    steps: u64,
    /// `big`: bytes of text in the result.
    #[arg(long, default_value_t = 1 << 20)]
    bytes: u64,
    /// Raw `tools/call` params (JSON object) instead of --tool, for real servers.
    #[arg(long)]
    params: Option<String>,
    /// With --params: add a progress token and check the progress order.
    #[arg(long)]
    progress_token: bool,
    /// One JSON line instead of the human summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdleArgs {
    #[arg(long, value_enum)]
    client: ClientKind,
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Streamable: also open each session's standalone GET stream.
    #[arg(long)]
    listen: bool,
    /// Report this process's VmRSS before, while open, and after close (e.g. the bridge).
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to hold the sessions open.
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Upstream { transport, workers } => upstream(transport, workers),
        Cmd::Load(args) => load_cmd(args),
        Cmd::Idle(args) => idle_cmd(args),
        Cmd::Suite(args) => {
            let code = suite::run(args);
            std::process::exit(code);
        }
    }
}

/// `loadgen load`: one load run; exits 1 unless it was clean.
fn load_cmd(a: LoadArgs) {
    let LoadArgs {
        client,
        url,
        sessions,
        threads,
        duration,
        warmup,
        max_calls,
        tool,
        steps,
        bytes,
        params,
        progress_token,
        json,
    } = a;
    let call = match (params, tool) {
        (Some(p), _) => CallSpec {
            params: p,
            progress: progress_token,
            expect_notes: None,
            min_result_bytes: 0,
        },
        (None, Tool::Echo) => CallSpec::echo(),
        (None, Tool::Progress) => CallSpec::progress(steps),
        (None, Tool::Big) => CallSpec::big(bytes),
    };
    let spec = LoadSpec {
        client,
        url,
        sessions,
        threads,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        max_calls,
        call,
        call_timeout: Duration::from_secs(10),
    };
    let r = load::run(&spec);
    if json {
        println!("{}", serde_json::to_string(&r).expect("serialise"));
    } else {
        println!("{}", r.human());
    }
    if !r.clean() {
        std::process::exit(1);
    }
}

/// `loadgen idle`: open, hold and close idle sessions, reading a process's RSS between.
fn idle_cmd(a: IdleArgs) {
    let IdleArgs {
        client,
        url,
        sessions,
        concurrency,
        listen,
        pid,
        hold,
    } = a;
    let rss = |when: &str| {
        if let Some(p) = pid {
            match suite::rss_kib(p) {
                Some(k) => println!("{when}: VmRSS of {p} = {k} KiB"),
                None => println!("{when}: no /proc/{p}/status"),
            }
        }
    };
    let sys = actix_rt::System::new();
    rss("before");
    let opened = sys.block_on(idle::open(
        client,
        &url,
        sessions,
        concurrency,
        listen,
        Duration::from_secs(120),
    ));
    println!(
        "opened {} sessions in {:.2} s ({} errors{})",
        opened.sessions.len(),
        opened.elapsed.as_secs_f64(),
        opened.errors,
        opened
            .error_samples
            .first()
            .map(|e| format!(", e.g. {e}"))
            .unwrap_or_default()
    );
    sys.block_on(async { tokio::time::sleep(Duration::from_secs_f64(hold)).await });
    rss("open");
    let (errors, _, took) = sys.block_on(idle::close(opened.sessions, concurrency));
    println!("closed in {:.2} s ({errors} errors)", took.as_secs_f64());
    sys.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    rss("after close");
}

/// The fast upstream: the test kit's fake server, request recording off.
fn upstream(transport: ClientKind, workers: usize) {
    use mcp_testkit::{FakeServer, ServerOptions};
    let opts = match transport {
        ClientKind::Legacy => ServerOptions::legacy(),
        ClientKind::Streamable => ServerOptions::streamable(),
        ClientKind::Modern => ServerOptions::modern(),
    }
    .workers(workers)
    .record_requests(false)
    // A session's stream must not outlive a bench run by minutes if a client vanished.
    .client_response_timeout(Duration::from_secs(10));
    let server = FakeServer::start(opts);
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "url {}", server.url()).expect("stdout");
    stdout.lock().flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.trim() {
            "stats" => format!("stats {} {}", server.session_count(), server.open_streams()),
            "" => continue,
            other => format!("error unknown command {other:?}"),
        };
        let mut out = stdout.lock();
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    drop(server);
}
