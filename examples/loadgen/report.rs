//! The suite's results (JSON) and the markdown report: the table of every scenario and pair,
//! the targets met or not, memory across the load runs, notes and error samples.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::plan::{bridge_key, direct_key, pair_name, PAIRS_CLIENTS, UPSTREAMS};
use super::SuiteArgs;
use crate::client::ClientKind;
use crate::load::LoadResult;

#[derive(Serialize, Clone, Debug, Default)]
pub(super) struct IdleResult {
    pub client: String,
    pub target: String,
    /// Streamable clients held their standalone GET stream open too.
    pub listen: bool,
    pub requested: usize,
    pub opened: usize,
    pub open_errors: u64,
    pub error_samples: Vec<String>,
    pub open_s: f64,
    pub close_errors: u64,
    /// Bridge runs only (KiB / counts).
    pub rss_start_kib: u64,
    pub rss_before_kib: u64,
    pub rss_open_kib: u64,
    pub rss_after_kib: u64,
    pub fds_before: usize,
    pub fds_open: usize,
    pub fds_after: usize,
    pub upstream_sessions_open: Option<usize>,
    pub upstream_sessions_after: Option<usize>,
    /// Whether the release was awaited and seen (all upstream sessions/streams gone).
    pub released: bool,
    /// Seconds until the bridge had released every session after close.
    pub drain_s: f64,
    /// Seconds after that until RSS was back within 10 % of the start (None: not within 8 s).
    pub returned_s: Option<f64>,
}

impl IdleResult {
    pub fn per_session_kib(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        (self.rss_open_kib as f64 - self.rss_before_kib as f64) / self.opened as f64
    }

    pub fn clean(&self) -> bool {
        self.open_errors == 0 && self.close_errors == 0
    }
}

#[derive(Serialize, Default)]
pub(super) struct Report {
    pub commit: String,
    pub started: String,
    pub machine: String,
    pub settings: BTreeMap<String, String>,
    /// scenario → target ("direct-legacy", "bridge-legacy-streamable", …) → result.
    pub load: BTreeMap<String, BTreeMap<String, LoadResult>>,
    pub idle: Vec<IdleResult>,
    /// Bridge RSS before/after each load run (memory kept per call shows here).
    pub load_rss: Vec<String>,
    /// Stdio scenarios: (f) session open latency, (g) echo throughput.
    pub stdio_open: Vec<super::stdio::OpenResult>,
    pub stdio_load: super::stdio::StdioLoad,
    pub notes: Vec<String>,
    pub total_s: f64,
}

impl Report {
    /// The header of a new run: commit, time, machine and settings.
    pub fn new(args: &SuiteArgs, fd_limit: Option<u64>) -> Report {
        let mut report = Report {
            commit: args.commit.clone(),
            started: now_utc(),
            machine: machine(),
            ..Report::default()
        };
        let s = &mut report.settings;
        s.insert("bridge workers".into(), worker_desc(args.bridge_workers));
        s.insert("upstream workers".into(), args.upstream_workers.to_string());
        s.insert("loadgen threads".into(), args.threads.to_string());
        s.insert("bridge args".into(), args.bridge_args.join(" "));
        s.insert("load average before".into(), loadavg());
        s.insert(
            "fd limit".into(),
            fd_limit.map_or("?".into(), |l| l.to_string()),
        );
        report
    }

    /// Adds a note once.
    pub fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Prints the markdown and writes it and the JSON to their files.
    pub fn write(&self, args: &SuiteArgs) -> Result<(), String> {
        let md = markdown(self, args);
        print!("{md}");
        fs::write(&args.out, &md).map_err(|e| format!("{}: {e}", args.out.display()))?;
        fs::write(
            &args.json_out,
            serde_json::to_string_pretty(self).expect("serialise"),
        )
        .map_err(|e| format!("{}: {e}", args.json_out.display()))
    }
}

fn worker_desc(n: usize) -> String {
    if n == 0 {
        "default (one per core)".into()
    } else {
        n.to_string()
    }
}

// ------------------------------------------------------------------------------------------
// Markdown
// ------------------------------------------------------------------------------------------

fn ms(us: f64) -> String {
    format!("{:.3} ms", us / 1e3)
}

fn ratio(direct: f64, bridge: f64) -> String {
    if direct > 0.0 {
        format!("{:.2}", bridge / direct)
    } else {
        "–".into()
    }
}

fn quality(r: &LoadResult) -> String {
    let mut s = format!("{} err", r.errors + r.open_errors);
    if r.notifications > 0 || r.lost > 0 || r.reordered > 0 || r.unexpected > 0 {
        s += &format!(
            ", {} lost, {} reordered, {} unexpected",
            r.lost, r.reordered, r.unexpected
        );
    }
    s
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    /// A row of latencies (µs), shown in ms with their ratio.
    fn ms_row(
        &mut self,
        scenario: &str,
        pair: &str,
        direct: f64,
        bridge: f64,
        notes: impl Into<String>,
    ) {
        let cells = [ms(direct), ms(bridge), ratio(direct, bridge), notes.into()];
        self.row(scenario, pair, cells);
    }

    /// A row of rates, shown as whole numbers followed by `unit`, with their ratio.
    fn rate_row(
        &mut self,
        scenario: &str,
        pair: &str,
        direct: f64,
        bridge: f64,
        unit: &str,
        notes: impl Into<String>,
    ) {
        let cells = [
            format!("{direct:.0}{unit}"),
            format!("{bridge:.0}{unit}"),
            ratio(direct, bridge),
            notes.into(),
        ];
        self.row(scenario, pair, cells);
    }

    /// One row of a scenario and pair: direct, via bridge, ratio, notes.
    fn row(&mut self, scenario: &str, pair: &str, cells: [String; 4]) {
        let [direct, bridge, ratio, notes] = cells;
        self.rows
            .push([scenario.into(), pair.into(), direct, bridge, ratio, notes]);
    }

    fn render(&self) -> String {
        let mut s = String::from(
            "| Scenario | Pair (client → upstream) | Direct | Via bridge | Ratio | Notes |\n|---|---|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }
}

/// The targets: (what, measured, met).
type Checks = Vec<(String, String, bool)>;

pub(super) fn markdown(rep: &Report, args: &SuiteArgs) -> String {
    let mut t = Table::default();
    let mut checks = Checks::new();
    for (title, results) in &rep.load {
        if title.starts_with("(n)") || title.starts_with("(o)") {
            for up in UPSTREAMS {
                let base = results.get(&bridge_key(ClientKind::Streamable, up));
                if let (Some(base), Some(m)) =
                    (base, results.get(&bridge_key(ClientKind::Modern, up)))
                {
                    era_rows(title, up, base, m, &mut t, &mut checks);
                }
            }
            continue;
        }
        if title.starts_with("(m)") {
            let (client, up) = (ClientKind::Streamable, ClientKind::Modern);
            if let Some(b) = results.get(&bridge_key(client, up)) {
                let direct = results.get(&direct_key(up));
                LoadPair::new(title, client, up, direct, b).rows(&mut t, &mut checks);
            }
            continue;
        }
        for client in PAIRS_CLIENTS {
            for up in UPSTREAMS {
                if let Some(b) = results.get(&bridge_key(client, up)) {
                    let direct = results.get(&direct_key(client));
                    LoadPair::new(title, client, up, direct, b).rows(&mut t, &mut checks);
                }
            }
        }
    }
    for client in PAIRS_CLIENTS {
        for up in UPSTREAMS {
            idle_pair(rep, args, client, up, &mut t, &mut checks);
        }
    }
    stdio_checks(rep, &mut checks);
    let mut md = header(rep);
    md += &t.render();
    md += &stdio_tables(rep);
    md += &targets(&checks);
    md += &lists(rep);
    md += &error_samples(rep);
    md
}

/// (n) and (o): a 2026-07-28 client through the bridge beside a 2025-era Streamable client
/// through the same bridge (the "Direct" column holds the 2025 figures, "Via bridge" the
/// 2026 ones), and the target: no worse than 1.2×.
fn era_rows(
    title: &str,
    up: ClientKind,
    base: &LoadResult,
    modern: &LoadResult,
    t: &mut Table,
    checks: &mut Checks,
) {
    let pair = format!("modern vs streamable (2025) → {}", up.as_str());
    let q = format!("2025 {}; 2026 {}", quality(base), quality(modern));
    let (b, m) = (&base.latency, &modern.latency);
    let lat = |what: &str, x: f64, y: f64| {
        (
            format!("{what} ratio ≤ 1.2× ({pair})"),
            format!("{:.2}×", y / x.max(1e-9)),
            y <= 1.2 * x,
        )
    };
    if title.starts_with("(n)") {
        t.ms_row(
            title,
            &pair,
            b.p50_us,
            m.p50_us,
            "p50 (2025 client | 2026 client)",
        );
        t.ms_row(title, &pair, b.p99_us, m.p99_us, "p99");
        t.rate_row(
            title,
            &pair,
            base.calls_per_s,
            modern.calls_per_s,
            "/s",
            format!("calls/s; {q}"),
        );
        checks.push(lat("(n) p50", b.p50_us, m.p50_us));
        checks.push(lat("(n) p99", b.p99_us, m.p99_us));
    } else {
        t.rate_row(
            title,
            &pair,
            base.calls_per_s,
            modern.calls_per_s,
            "/s",
            format!("calls/s (2025 clients | 2026 clients); {q}"),
        );
        t.ms_row(title, &pair, b.p50_us, m.p50_us, "p50");
        t.ms_row(title, &pair, b.p99_us, m.p99_us, "p99");
        checks.push((
            format!("(o) 2026 throughput ≥ 2025 throughput / 1.2 ({pair})"),
            format!(
                "{:.2}× the 2025 figure",
                modern.calls_per_s / base.calls_per_s.max(1e-9)
            ),
            modern.calls_per_s * 1.2 >= base.calls_per_s,
        ));
        checks.push(lat("(o) p99", b.p99_us, m.p99_us));
    }
    let bad = [base, modern]
        .iter()
        .map(|r| r.errors + r.open_errors + r.lost + r.reordered + r.unexpected)
        .sum::<u64>();
    checks.push((
        format!("zero errors / lost / reordered: {} ({pair})", &title[..3]),
        bad.to_string(),
        bad == 0,
    ));
}

/// One scenario's rows for one client → upstream pair.
struct LoadPair<'a> {
    title: &'a str,
    pair: String,
    direct: Option<&'a LoadResult>,
    /// The direct run, or zeros when there is none.
    d: LoadResult,
    b: &'a LoadResult,
    /// "direct 0 err; " (empty without a direct run).
    dq: String,
    /// "bridge 0 err".
    bq: String,
}

impl<'a> LoadPair<'a> {
    fn new(
        title: &'a str,
        client: ClientKind,
        up: ClientKind,
        direct: Option<&'a LoadResult>,
        b: &'a LoadResult,
    ) -> LoadPair<'a> {
        LoadPair {
            title,
            pair: pair_name(client, up),
            direct,
            d: direct.cloned().unwrap_or_default(),
            b,
            dq: direct
                .map(|d| format!("direct {}; ", quality(d)))
                .unwrap_or_default(),
            bq: format!("bridge {}", quality(b)),
        }
    }

    fn rows(&self, t: &mut Table, checks: &mut Checks) {
        if self.title.starts_with("(a)") || self.title.starts_with("(m)") {
            self.latency_rows(t, checks);
        } else if self.title.starts_with("(b)") {
            self.throughput_rows(t, checks);
        } else if self.title.starts_with("(c)") {
            self.notification_rows(t);
        } else {
            self.big_result_rows(t);
        }
        let (b, direct) = (self.b, self.direct);
        let bad = b.errors
            + b.open_errors
            + b.lost
            + b.reordered
            + b.unexpected
            + direct.map_or(0, |d| {
                d.errors + d.open_errors + d.lost + d.reordered + d.unexpected
            });
        checks.push((
            format!(
                "zero errors / lost / reordered: {} ({})",
                &self.title[..3],
                self.pair
            ),
            bad.to_string(),
            bad == 0,
        ));
    }

    /// " (median of 3 runs; direct a–b, bridge c–d)" when the runs were repeated.
    fn spread(&self, f: &dyn Fn(f64) -> String) -> String {
        if self.b.repeats.len() < 2 {
            return String::new();
        }
        let span = |r: &[f64]| match (r.first(), r.last()) {
            (Some(lo), Some(hi)) => format!("{}–{}", f(*lo), f(*hi)),
            _ => "–".into(),
        };
        format!(
            " (median of {} runs; direct {}, bridge {})",
            self.b.repeats.len(),
            self.direct.map_or("–".into(), |d| span(&d.repeats)),
            span(&self.b.repeats)
        )
    }

    /// (a): latency percentiles and the latency added by the bridge.
    fn latency_rows(&self, t: &mut Table, checks: &mut Checks) {
        let (title, pair, d, b) = (self.title, self.pair.as_str(), &self.d, self.b);
        let add50 = b.latency.p50_us - d.latency.p50_us;
        let add99 = b.latency.p99_us - d.latency.p99_us;
        let spread = self.spread(&|us| format!("{:.3}", us / 1e3));
        let p50 = format!("p50; added {:+.3} ms{spread}", add50 / 1e3);
        t.ms_row(title, pair, d.latency.p50_us, b.latency.p50_us, p50);
        t.ms_row(title, pair, d.latency.p90_us, b.latency.p90_us, "p90");
        let p99 = format!("p99; added {:+.3} ms", add99 / 1e3);
        t.ms_row(title, pair, d.latency.p99_us, b.latency.p99_us, p99);
        t.ms_row(title, pair, d.latency.max_us, b.latency.max_us, "max");
        let calls = format!("calls/s; {}{}", self.dq, self.bq);
        t.rate_row(title, pair, d.calls_per_s, b.calls_per_s, "/s", calls);
        if self.direct.is_some() {
            checks.push((
                format!("added p50 ≤ 0.15 ms ({pair})"),
                format!("{:+.3} ms", add50 / 1e3),
                add50 <= 150.0,
            ));
            checks.push((
                format!("added p99 ≤ 1 ms ({pair})"),
                format!("{:+.3} ms", add99 / 1e3),
                add99 <= 1000.0,
            ));
        }
    }

    /// (b): calls per second of many sessions, and their latency.
    fn throughput_rows(&self, t: &mut Table, checks: &mut Checks) {
        let (title, pair, d, b) = (self.title, self.pair.as_str(), &self.d, self.b);
        let spread = self.spread(&|v| format!("{v:.0}"));
        let calls = format!("calls/s; {}{}{spread}", self.dq, self.bq);
        t.rate_row(title, pair, d.calls_per_s, b.calls_per_s, "/s", calls);
        t.ms_row(title, pair, d.latency.p50_us, b.latency.p50_us, "p50");
        let p99 = format!(
            "p99; p99.9 {} vs {}, max {} vs {}",
            ms(d.latency.p999_us),
            ms(b.latency.p999_us),
            ms(d.latency.max_us),
            ms(b.latency.max_us)
        );
        t.ms_row(title, pair, d.latency.p99_us, b.latency.p99_us, p99);
        checks.push((
            format!("≥ 15,000 calls/s via bridge ({pair})"),
            format!("{:.0}/s", b.calls_per_s),
            b.calls_per_s >= 15_000.0,
        ));
        if self.direct.is_some() {
            let r = b.calls_per_s / d.calls_per_s.max(1e-9);
            checks.push((
                format!("≥ 45 % of direct ({pair})"),
                format!("{:.0} %", r * 100.0),
                r >= 0.45,
            ));
        }
    }

    /// (c): notifications per second.
    fn notification_rows(&self, t: &mut Table) {
        let (title, pair, d, b) = (self.title, self.pair.as_str(), &self.d, self.b);
        let rate = format!("notifications/s; {}{}", self.dq, self.bq);
        let (dn, bn) = (d.notifications_per_s, b.notifications_per_s);
        t.rate_row(title, pair, dn, bn, "/s", rate);
        let p50 = format!("p50 per call ({:.0} calls/s via bridge)", b.calls_per_s);
        t.ms_row(title, pair, d.latency.p50_us, b.latency.p50_us, p50);
    }

    /// (e): a large result: latency and throughput.
    fn big_result_rows(&self, t: &mut Table) {
        let (title, pair, d, b) = (self.title, self.pair.as_str(), &self.d, self.b);
        let mibs = |r: &LoadResult| r.result_bytes as f64 / r.window_s.max(1e-9) / (1 << 20) as f64;
        let p50 = format!(
            "p50; p99 {} vs {}",
            ms(d.latency.p99_us),
            ms(b.latency.p99_us)
        );
        t.ms_row(title, pair, d.latency.p50_us, b.latency.p50_us, p50);
        let rate = format!("result throughput; {}{}", self.dq, self.bq);
        t.rate_row(title, pair, mibs(d), mibs(b), " MiB/s", rate);
    }
}

/// (d): the idle cycles of one pair, each beside its direct cycle of the same size.
fn idle_pair(
    rep: &Report,
    args: &SuiteArgs,
    client: ClientKind,
    up: ClientKind,
    t: &mut Table,
    checks: &mut Checks,
) {
    let pair = pair_name(client, up);
    let direct_target = direct_key(client);
    let bridge_target = bridge_key(client, up);
    for b in rep.idle.iter().filter(|r| r.target == bridge_target) {
        let d = rep.idle.iter().find(|d| {
            d.target == direct_target && d.requested == b.requested && d.listen == b.listen
        });
        let title = if b.listen {
            format!("(d) {} idle sessions + GET stream", b.opened)
        } else {
            format!("(d) {} idle sessions", b.opened)
        };
        let errs = b.open_errors + b.close_errors + d.map_or(0, |d| d.open_errors + d.close_errors);
        idle_rows(t, &title, &pair, d, b, errs);
        idle_checks(checks, args, &pair, b, errs);
    }
}

fn idle_rows(
    t: &mut Table,
    title: &str,
    pair: &str,
    d: Option<&IdleResult>,
    b: &IdleResult,
    errs: u64,
) {
    t.row(
        title,
        pair,
        [
            d.map_or("–".into(), |d| format!("{:.2} s", d.open_s)),
            format!("{:.2} s", b.open_s),
            d.map_or("–".into(), |d| ratio(d.open_s, b.open_s)),
            format!(
                "time to open ({:.0}/s via bridge); {errs} errors",
                b.opened as f64 / b.open_s.max(1e-9)
            ),
        ],
    );
    t.row(
        title,
        pair,
        [
            "–".into(),
            format!("{:.1} KiB", b.per_session_kib()),
            "–".into(),
            format!(
                "bridge RSS per session ({} → {} KiB; {} fds open)",
                b.rss_before_kib, b.rss_open_kib, b.fds_open
            ),
        ],
    );
    if b.rss_after_kib > 0 {
        let after = [
            "–".into(),
            format!("{} KiB", b.rss_after_kib),
            "–".into(),
            after_close(b),
        ];
        t.row(title, pair, after);
    }
}

/// What became of the bridge's memory and sessions after the idle sessions closed.
fn after_close(b: &IdleResult) -> String {
    format!(
        "bridge RSS after close = {:.0} % of start ({} KiB); {} {:.1} s; {}",
        rss_back(b) * 100.0,
        b.rss_start_kib,
        if b.released {
            "all upstream sessions closed after"
        } else {
            "NOT all released after"
        },
        b.drain_s,
        match b.returned_s {
            Some(t) => format!("RSS back near start {t:.1} s later"),
            None => "RSS not back near start within 8 s".into(),
        }
    )
}

/// RSS after close as a fraction of RSS at the start.
fn rss_back(b: &IdleResult) -> f64 {
    b.rss_after_kib as f64 / b.rss_start_kib.max(1) as f64
}

fn idle_checks(checks: &mut Checks, args: &SuiteArgs, pair: &str, b: &IdleResult, errs: u64) {
    let largest = b.requested == *args.idle.iter().max().unwrap_or(&0) || b.opened >= 9_000;
    if !b.listen && b.rss_after_kib > 0 && largest {
        checks.push((
            format!(
                "≤ 32 KiB RSS per idle session, {} sessions ({pair})",
                b.opened
            ),
            format!("{:.1} KiB", b.per_session_kib()),
            b.per_session_kib() <= 32.0,
        ));
        let back = rss_back(b);
        checks.push((
            format!("RSS back within 10 % of start after close ({pair})"),
            format!("{:+.0} %", (back - 1.0) * 100.0),
            back <= 1.10,
        ));
    }
    checks.push((
        format!("zero errors: (d) {} sessions ({pair})", b.opened),
        errs.to_string(),
        errs == 0,
    ));
}

fn header(rep: &Report) -> String {
    let mut md = String::new();
    md += "# mcp-bridge benchmark results\n\n";
    md += &format!(
        "- commit: `{}`\n- run: {} ({:.0} s)\n- machine: {}\n",
        if rep.commit.is_empty() {
            "?"
        } else {
            &rep.commit
        },
        rep.started,
        rep.total_s,
        rep.machine
    );
    for (k, v) in &rep.settings {
        if !v.is_empty() {
            md += &format!("- {k}: {v}\n");
        }
    }
    md += "- direct = the same client transport straight to the fast upstream of that transport; ratio = via bridge / direct\n";
    md += "- (m): direct = a raw 2026-07-28 client (stamped `_meta`, the era's headers) straight to the fake 2026-07-28 upstream; via bridge = a Streamable (2025-06-18) client through `--upstream-transport streamable-2026`\n\n";
    md
}

/// (f) target: a fresh session's `initialize` through the stdio bridge, pool warm.
fn stdio_checks(rep: &Report, checks: &mut Checks) {
    for r in &rep.stdio_open {
        if r.target.contains("paced") {
            checks.push((
                format!(
                    "(f) stdio session open p50 ≤ 20 ms ({}, warm pool)",
                    r.client
                ),
                format!("{:.2} ms", r.p50_ms),
                r.p50_ms <= 20.0 && r.errors == 0,
            ));
        }
    }
}

/// The stdio scenarios' own tables (their targets are not client × upstream pairs).
fn stdio_tables(rep: &Report) -> String {
    let mut md = String::new();
    if !rep.stdio_open.is_empty() {
        md +=
            "\n## (f) Stdio: session open latency (initialize round trip, fresh session each)\n\n";
        md += "| Target | Client | Gap | Sessions | p50 | p95 | max | Errors |\n|---|---|---:|---:|---:|---:|---:|---:|\n";
        for r in &rep.stdio_open {
            md += &format!(
                "| {} | {} | {:.1} s | {} | {:.2} ms | {:.2} ms | {:.2} ms | {} |\n",
                r.target, r.client, r.gap_s, r.opened, r.p50_ms, r.p95_ms, r.max_ms, r.errors
            );
        }
    }
    if !rep.stdio_load.is_empty() {
        md += "\n## (g) Stdio: concurrent sessions of echo\n\n";
        md += "| Target | Sessions | calls/s (median) | p50 | p99 | Errors | Repeats (calls/s) |\n|---|---:|---:|---:|---:|---:|---|\n";
        for (key, r) in &rep.stdio_load {
            let reps: Vec<String> = r.repeats.iter().map(|x| format!("{x:.0}")).collect();
            md += &format!(
                "| {key} | {} | {:.0} | {} | {} | {} | {} |\n",
                r.sessions,
                r.calls_per_s,
                ms(r.latency.p50_us),
                ms(r.latency.p99_us),
                r.errors + r.open_errors,
                reps.join(", ")
            );
        }
    }
    md
}

fn targets(checks: &Checks) -> String {
    let mut md = String::from("\n## Targets\n\n| Target | Measured | Met |\n|---|---:|:---:|\n");
    for (what, got, ok) in checks {
        md += &format!(
            "| {what} | {got} | {} |\n",
            if *ok { "yes" } else { "**no**" }
        );
    }
    md
}

/// Bridge memory across the load runs, and the notes.
fn lists(rep: &Report) -> String {
    let mut md = String::new();
    if !rep.load_rss.is_empty() {
        md += "\n## Bridge memory across the load runs\n\n";
        md += "One bridge per upstream transport serves every load run, in this order; sessions end after each run.\n\n";
        for n in &rep.load_rss {
            md += &format!("- {n}\n");
        }
    }
    if !rep.notes.is_empty() {
        md += "\n## Notes\n\n";
        for n in &rep.notes {
            md += &format!("- {n}\n");
        }
    }
    md
}

/// The first 20 error samples of every run.
fn error_samples(rep: &Report) -> String {
    let samples: Vec<String> = rep
        .load
        .iter()
        .flat_map(|(t, m)| {
            m.iter().flat_map(move |(k, r)| {
                r.error_samples
                    .iter()
                    .map(move |e| format!("{t} / {k}: {e}"))
            })
        })
        .chain(rep.idle.iter().flat_map(|r| {
            r.error_samples
                .iter()
                .map(move |e| format!("idle {}: {e}", r.target))
        }))
        .take(20)
        .collect();
    let mut md = String::new();
    if !samples.is_empty() {
        md += "\n## Error samples\n\n";
        for s in samples {
            md += &format!("- {s}\n");
        }
    }
    md
}

pub(super) fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Bridge logs at the default level can reach hundreds of MB (one line per rerouted
/// notification): their volume is a finding, their bulk is not worth keeping.
pub(super) fn trim_logs(dir: &Path, notes: &mut Vec<String>) {
    const KEEP: u64 = 8 << 20;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for path in names {
        let Ok(len) = fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if len > (1 << 20) {
            notes.push(format!(
                "{name}: {:.0} MiB written{}",
                len as f64 / (1 << 20) as f64,
                if len > KEEP {
                    " (truncated to 8 MiB)"
                } else {
                    ""
                }
            ));
        }
        if len > KEEP {
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(KEEP);
            }
        }
    }
}

/// 1/5/15-minute load averages: other work on the box skews every figure.
pub(super) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |k| {
            format!(", {:.0} GiB", k as f64 / (1 << 20) as f64)
        });
    format!(
        "{cores} cores ({cpu}){mem}, loopback; load generator, upstream and bridge share the cores"
    )
}
