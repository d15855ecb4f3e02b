//! Executing the plan: the fake upstreams, one bridge per upstream transport for the load
//! scenarios (repeats round-robin, the median kept), then a fresh bridge per idle cycle.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use super::plan::{self, idx, Scenario, Target, PAIRS_CLIENTS, UPSTREAMS};
use super::procs::{fd_count, fd_limit, rss_kib, start_bridge, start_upstream, Bridge, Upstream};
use super::report::{self, IdleResult, Report};
use super::{say, SuiteArgs};
use crate::client::ClientKind;
use crate::idle;
use crate::load::{self, LoadResult, LoadSpec};

/// The whole suite; Ok(true) when every run was clean.
pub(super) fn run_suite(args: &SuiteArgs) -> Result<bool, String> {
    let t0 = Instant::now();
    prepare_dirs(args)?;
    if !args.bridge.exists() {
        return Err(format!(
            "no bridge binary at {} (cargo build --release --bin mcp-bridge)",
            args.bridge.display()
        ));
    }
    let mut report = Report::new(args, fd_limit());
    let mut ups = Vec::new();
    for kind in UPSTREAMS {
        ups.push(start_upstream(kind, args)?);
    }
    say(format!(
        "upstreams: {}",
        ups.iter()
            .map(|u| format!("{} {}", u.kind.as_str(), u.url))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut clean = true;
    let mut scenarios = plan::scenarios(args);
    scenarios.extend(plan::era_scenarios(args));
    if scenarios.iter().any(|s| args.only(s.key)) {
        clean &= run_load(&scenarios, &ups, args, &mut report)?;
    }
    if args.only("m") {
        clean &= run_modern(args, &mut report)?;
    }
    if args.only("d") {
        clean &= run_idle(&mut ups, args, &mut report)?;
    }
    if args.only("f") || args.only("g") {
        clean &= super::stdio::run(args, &mut report)?;
    }
    drop(ups);
    report::trim_logs(&args.log_dir, &mut report.notes);
    report.total_s = t0.elapsed().as_secs_f64();
    report
        .settings
        .insert("load average after".into(), report::loadavg());
    report.write(args)?;
    say(format!(
        "wrote {} and {} in {:.0} s",
        args.out.display(),
        args.json_out.display(),
        report.total_s
    ));
    Ok(clean)
}

/// Creates the output folders and removes an earlier run's logs (they would be mistaken for
/// this one's).
fn prepare_dirs(args: &SuiteArgs) -> Result<(), String> {
    let dirs = [
        Some(args.log_dir.as_path()),
        args.out.parent(),
        args.json_out.parent(),
    ];
    for d in dirs.into_iter().flatten() {
        if !d.as_os_str().is_empty() {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    if let Ok(entries) = fs::read_dir(&args.log_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log")
                || p.file_name().is_some_and(|n| n == "pids")
            {
                let _ = fs::remove_file(p);
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Load scenarios
// ------------------------------------------------------------------------------------------

/// The chosen load scenarios, through one bridge per upstream transport.
fn run_load(
    scenarios: &[Scenario],
    ups: &[Upstream],
    args: &SuiteArgs,
    report: &mut Report,
) -> Result<bool, String> {
    let mut bridges = Vec::new();
    for up in ups {
        bridges.push(start_bridge(
            up,
            args,
            &format!("load-{}", up.kind.as_str()),
        )?);
    }
    let mut clean = true;
    for sc in scenarios.iter().filter(|s| args.only(s.key)) {
        clean &= run_scenario(sc, ups, &bridges, args, report);
    }
    for b in &bridges {
        if let Some(k) = rss_kib(b.proc.pid()) {
            report.notes.push(format!(
                "{}: VmRSS {k} KiB after the load scenarios",
                b.proc.name()
            ));
        }
    }
    Ok(clean)
}

/// Every target of one scenario. Repeats go round-robin over the targets, so drift and
/// bursts of other work on the machine hit direct and bridged runs alike.
fn run_scenario(
    sc: &Scenario,
    ups: &[Upstream],
    bridges: &[Bridge],
    args: &SuiteArgs,
    report: &mut Report,
) -> bool {
    let up_urls: Vec<&str> = ups.iter().map(|u| u.url.as_str()).collect();
    let bases: Vec<&str> = bridges.iter().map(|b| b.base.as_str()).collect();
    let targets = match sc.key {
        "n" | "o" => plan::era_targets(&bases),
        _ => plan::targets(&up_urls, &bases),
    };
    let bridge_pid =
        |t: &Target| (!t.key.starts_with("direct")).then(|| bridges[idx(t.upstream)].proc.pid());
    run_targets(sc, &targets, &bridge_pid, args, report)
}

/// (m): its own 2026-07-28 upstream and a bridge in front of it (`streamable-2026`).
fn run_modern(args: &SuiteArgs, report: &mut Report) -> Result<bool, String> {
    let sc = plan::modern_scenario(args);
    let up = start_upstream(ClientKind::Modern, args)?;
    let bridge = start_bridge(&up, args, "load-modern")?;
    say(format!(
        "2026-07-28 upstream {}, bridge {}",
        up.url, bridge.base
    ));
    let targets = plan::modern_targets(&up.url, &bridge.base);
    let bridge_pid = |t: &Target| (!t.key.starts_with("direct")).then(|| bridge.proc.pid());
    Ok(run_targets(&sc, &targets, &bridge_pid, args, report))
}

/// Every target of a scenario, repeated round-robin; the median run of each is reported.
fn run_targets(
    sc: &Scenario,
    targets: &[Target],
    bridge_pid: &dyn Fn(&Target) -> Option<u32>,
    args: &SuiteArgs,
    report: &mut Report,
) -> bool {
    let mut clean = true;
    let mut runs: BTreeMap<String, Vec<LoadResult>> = BTreeMap::new();
    for rep in 0..plan::repeats(sc, args) {
        for target in targets {
            // The call the server at the far end understands.
            let Some(call) = plan::call_for(sc.call, target.upstream, args) else {
                if rep == 0 {
                    say(format!(
                        "{}: {}: skipped (no tool for this server)",
                        sc.title, target.key
                    ));
                }
                continue;
            };
            let spec = LoadSpec {
                client: target.client,
                url: target.url.clone(),
                sessions: sc.sessions,
                threads: sc.threads,
                warmup: Duration::from_secs_f64(sc.warmup),
                duration: Duration::from_secs_f64(sc.seconds),
                max_calls: sc.max_calls,
                call,
                call_timeout: Duration::from_secs(10),
            };
            let r = run_target(sc, target, &spec, bridge_pid(target), rep, report);
            clean &= r.clean();
            runs.entry(target.key.clone()).or_default().push(r);
        }
    }
    let results = runs
        .into_iter()
        .map(|(key, rs)| (key, median(sc, rs)))
        .collect();
    report.load.insert(sc.title.clone(), results);
    clean
}

/// One load run; through a bridge, its RSS before and after is noted (first repeat only:
/// later ones reuse the memory the first one freed).
fn run_target(
    sc: &Scenario,
    target: &Target,
    spec: &LoadSpec,
    bridge_pid: Option<u32>,
    rep: usize,
    report: &mut Report,
) -> LoadResult {
    let rss0 = bridge_pid.and_then(rss_kib);
    let r = load::run(spec);
    if let (Some(pid), Some(rss0), 0) = (bridge_pid, rss0, rep) {
        let rss1 = rss_kib(pid).unwrap_or(0);
        report.load_rss.push(format!(
            "{} | {}: bridge RSS {:.1} → {:.1} MiB over {} calls ({:+.2} KiB per call)",
            sc.title,
            target.key,
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            r.calls,
            (rss1 as f64 - rss0 as f64) / r.calls.max(1) as f64
        ));
    }
    say(format!("{} | {}: {}", sc.title, target.key, r.human()));
    r
}

/// The median run by the scenario's key metric ((a) is about latency, the rest about rates),
/// with the errors and notification checks of every repeat summed.
fn median(sc: &Scenario, mut rs: Vec<LoadResult>) -> LoadResult {
    let metric = |r: &LoadResult| match sc.key {
        "a" | "m" | "n" => r.latency.p50_us,
        "c" => r.notifications_per_s,
        _ => r.calls_per_s,
    };
    rs.sort_by(|x, y| metric(x).total_cmp(&metric(y)));
    let all: Vec<f64> = rs.iter().map(metric).collect();
    let (errors, lost, reordered, unexpected) = rs.iter().fold((0, 0, 0, 0), |a, r| {
        (
            a.0 + r.errors + r.open_errors,
            a.1 + r.lost,
            a.2 + r.reordered,
            a.3 + r.unexpected,
        )
    });
    let mut median = rs.swap_remove(all.len() / 2);
    median.repeats = all;
    median.errors = errors - median.open_errors;
    median.lost = lost;
    median.reordered = reordered;
    median.unexpected = unexpected;
    median
}

// ------------------------------------------------------------------------------------------
// Idle sessions
// ------------------------------------------------------------------------------------------

/// (d): for each client transport, the idle cycles direct, then through a fresh bridge per
/// cycle in front of each upstream.
fn run_idle(ups: &mut [Upstream], args: &SuiteArgs, report: &mut Report) -> Result<bool, String> {
    let limit = fd_limit().unwrap_or(1024) as usize;
    let sys = actix_rt::System::new();
    let mut clean = true;
    for client in PAIRS_CLIENTS {
        let plan = plan::idle_plan(client, args, limit);
        for note in plan.notes {
            say(&note);
            report.note(note);
        }
        let up = &mut ups[idx(client)];
        for r in sys.block_on(idle_direct(client, up, &plan.cycles, args)) {
            say(format!(
                "idle {}: {} sessions in {:.2} s ({} errors)",
                r.target, r.opened, r.open_s, r.open_errors
            ));
            clean &= r.clean();
            report.idle.push(r);
        }
        for up_kind in UPSTREAMS {
            let up = &mut ups[idx(up_kind)];
            for &(n, listen) in &plan.cycles {
                let cycle = Cycle {
                    client,
                    n,
                    listen,
                    largest: plan.largest,
                };
                let r = sys.block_on(idle_bridge(cycle, up, args))?;
                say(format!(
                    "idle {}: {} sessions in {:.2} s ({} errors); RSS {} → {} → {} KiB (start {}), {:.1} KiB/session; fds {} → {} → {}",
                    r.target, r.opened, r.open_s, r.open_errors, r.rss_before_kib, r.rss_open_kib,
                    r.rss_after_kib, r.rss_start_kib, r.per_session_kib(), r.fds_before, r.fds_open, r.fds_after
                ));
                clean &= r.clean();
                report.idle.push(r);
            }
        }
    }
    Ok(clean)
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
async fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            if !what.is_empty() {
                say(format!("gave up waiting after {timeout:?}: {what}"));
            }
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn idle_direct(
    client: ClientKind,
    up: &mut Upstream,
    cycles: &[(usize, bool)],
    args: &SuiteArgs,
) -> Vec<IdleResult> {
    let mut rows = Vec::new();
    for &(n, listen) in cycles {
        let base = up.sessions();
        let o = idle::open(
            client,
            &up.url,
            n,
            args.idle_concurrency,
            listen,
            Duration::from_secs(90),
        )
        .await;
        let opened = o.sessions.len();
        let peak = up.sessions();
        let (close_errors, _, _) = idle::close(o.sessions, args.idle_concurrency).await;
        let drained = Instant::now();
        if let Some(b) = base {
            until(
                "upstream sessions back to base",
                Duration::from_secs(20),
                || up.sessions().is_some_and(|s| s <= b),
            )
            .await;
        }
        rows.push(IdleResult {
            client: client.as_str().into(),
            target: plan::direct_key(client),
            listen,
            requested: n,
            opened,
            open_errors: o.errors,
            error_samples: o.error_samples,
            open_s: o.elapsed.as_secs_f64(),
            close_errors,
            upstream_sessions_open: peak,
            upstream_sessions_after: up.sessions(),
            drain_s: drained.elapsed().as_secs_f64(),
            ..IdleResult::default()
        });
    }
    rows
}

/// One idle cycle through a bridge.
#[derive(Clone, Copy)]
struct Cycle {
    client: ClientKind,
    n: usize,
    /// Streamable clients also hold their standalone GET stream.
    listen: bool,
    /// The largest size of the client's cycles.
    largest: usize,
}

/// A bridge under measurement and what "released" means for it.
struct Measured {
    pid: u32,
    /// The upstream's (sessions, streams) before the cycle; None for an external server.
    up_base: Option<(usize, usize)>,
    conc: usize,
}

impl Measured {
    /// Released = every upstream session and stream of ours is gone. (Not the bridge's fd
    /// count: idle keep-alive connections of its upstream pool linger, some in CLOSE_WAIT,
    /// until the pool happens to reuse them.) Without upstream stats (external server): fds.
    fn settled(&self, up: &mut Upstream, fds0: usize) -> bool {
        match self.up_base {
            Some((s0, st0)) => up.stats().is_some_and(|(s, st)| s <= s0 && st <= st0),
            None => fd_count(self.pid).is_some_and(|f| f <= fds0 + 2 * self.conc + 16),
        }
    }
}

/// One fresh bridge per cycle: glibc keeps freed memory for reuse, so a bridge that already
/// held sessions would make the next cycle look cheaper than it is.
async fn idle_bridge(c: Cycle, up: &mut Upstream, args: &SuiteArgs) -> Result<IdleResult, String> {
    let listen_tag = if c.listen { "-get" } else { "" };
    let tag = format!(
        "idle-{}-{}-{}{listen_tag}",
        c.client.as_str(),
        up.kind.as_str(),
        c.n
    );
    let bridge = start_bridge(up, args, &tag)?;
    let m = Measured {
        pid: bridge.proc.pid(),
        up_base: up.stats(),
        conc: args.idle_concurrency,
    };
    warm_up(&bridge, &m, up).await;
    let mut row = hold_idle_sessions(c, &bridge, &m, up, args).await;
    row.target = plan::bridge_key(c.client, up.kind);
    drop(bridge);
    // A killed bridge drops its upstream streams; let the upstream see them go. (Streams,
    // not sessions: the fake legacy server sometimes keeps the session entry of a stream
    // cut this way, and Streamable sessions of a killed bridge are never deleted.)
    if let Some((_, st0)) = m.up_base {
        until(
            "upstream streams back to base",
            Duration::from_secs(10),
            || up.stats().is_some_and(|(_, st)| st <= st0),
        )
        .await;
    }
    Ok(row)
}

/// The first sessions allocate the bridge's long-lived structures (pools, maps, per-worker
/// clients). Streamable sessions whatever the pair: a DELETE releases them at once, whereas
/// a legacy client's disconnect is only noticed by the bridge at a later keep-alive write.
async fn warm_up(bridge: &Bridge, m: &Measured, up: &mut Upstream) {
    let fds_idle = fd_count(m.pid).unwrap_or(0);
    let warm_url = format!("{}{}", bridge.base, ClientKind::Streamable.bridge_path());
    let w = idle::open(
        ClientKind::Streamable,
        &warm_url,
        50,
        m.conc,
        false,
        Duration::from_secs(20),
    )
    .await;
    idle::close(w.sessions, m.conc).await;
    until(
        "bridge released the warm-up sessions",
        Duration::from_secs(20),
        || m.settled(up, fds_idle),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Opens the cycle's sessions, holds them idle, weighs the bridge, closes them and measures
/// the release.
async fn hold_idle_sessions(
    c: Cycle,
    bridge: &Bridge,
    m: &Measured,
    up: &mut Upstream,
    args: &SuiteArgs,
) -> IdleResult {
    let rss_before = rss_kib(m.pid).unwrap_or(0);
    let fds_before = fd_count(m.pid).unwrap_or(0);
    let url = format!("{}{}", bridge.base, c.client.bridge_path());
    let o = idle::open(
        c.client,
        &url,
        c.n,
        m.conc,
        c.listen,
        Duration::from_secs(90),
    )
    .await;
    let opened = o.sessions.len();
    let opened_at = Instant::now();
    // Every bridge session has its upstream session open before we weigh it.
    if let Some((b, _)) = m.up_base {
        until(
            "every upstream session open",
            Duration::from_secs(10),
            || up.sessions().is_some_and(|s| s >= b + opened),
        )
        .await;
    }
    // Idle sessions sit idle for a while before they are weighed (and before they close,
    // so a periodic task in the bridge sees them, as it would in real use).
    let hold = Duration::from_secs_f64(args.idle_hold);
    tokio::time::sleep(hold.saturating_sub(opened_at.elapsed())).await;
    let rss_open = rss_kib(m.pid).unwrap_or(0);
    let fds_open = fd_count(m.pid).unwrap_or(0);
    let peak = up.sessions();
    let (close_errors, _, _) = idle::close(o.sessions, m.conc).await;
    let closed = Instant::now();
    // How long the release takes, and where memory ends: measured where it is quick
    // (Streamable DELETE) and for the largest cycle; a legacy client's disconnect takes
    // the bridge two keep-alive intervals (~30 s) to notice.
    let wait_release = c.client == ClientKind::Streamable || (c.n == c.largest && !c.listen);
    let release = if wait_release {
        measure_release(m, up, closed, rss_before, fds_before).await
    } else {
        Release::default()
    };
    IdleResult {
        client: c.client.as_str().into(),
        listen: c.listen,
        requested: c.n,
        opened,
        open_errors: o.errors,
        error_samples: o.error_samples,
        open_s: o.elapsed.as_secs_f64(),
        close_errors,
        rss_start_kib: rss_before,
        rss_before_kib: rss_before,
        rss_open_kib: rss_open,
        rss_after_kib: release.rss_after,
        fds_before,
        fds_open,
        fds_after: release.fds_after,
        upstream_sessions_open: peak,
        upstream_sessions_after: if wait_release { up.sessions() } else { None },
        released: release.released,
        drain_s: release.drain_s,
        returned_s: release.returned_s,
        ..IdleResult::default()
    }
}

/// What happened after the idle sessions closed (all zero when not awaited).
#[derive(Default)]
struct Release {
    released: bool,
    drain_s: f64,
    rss_after: u64,
    fds_after: usize,
    returned_s: Option<f64>,
}

async fn measure_release(
    m: &Measured,
    up: &mut Upstream,
    closed: Instant,
    rss_before: u64,
    fds_before: usize,
) -> Release {
    let released = until(
        "bridge released the sessions",
        Duration::from_secs(45),
        || m.settled(up, fds_before),
    )
    .await;
    let drain_s = closed.elapsed().as_secs_f64();
    // Freed memory may go back to the OS a little later (the allocator, or a periodic
    // trim in the bridge): give it up to 8 s, stopping once RSS is near the start.
    let near_start = |pid| rss_kib(pid).is_some_and(|r| r * 10 <= rss_before * 11);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let returned = Instant::now();
    let back = until("", Duration::from_secs(8), || near_start(m.pid)).await;
    Release {
        released,
        drain_s,
        rss_after: rss_kib(m.pid).unwrap_or(0),
        fds_after: fd_count(m.pid).unwrap_or(0),
        returned_s: back.then(|| 0.3 + returned.elapsed().as_secs_f64()),
    }
}
