//! Prometheus metrics, hand-rolled: a fixed set of atomic counters and histograms (bounded
//! label cardinality: client-chosen method names fold into `other`), rendered as text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::Difference;
use crate::jsonrpc::Kind;

pub const DIRECTIONS: [&str; 2] = ["client_to_upstream", "upstream_to_client"];
/// The client label: the transport (and era) the client speaks, as `Transport::as_str`
/// names it; 2026-07-28 clients are `streamable-2026`.
pub const CLIENTS: [&str; 3] = ["sse", "streamable", "streamable-2026"];
const KINDS: [Kind; 3] = [Kind::Request, Kind::Notification, Kind::Response];
pub const ERROR_CLASSES: [&str; 10] = [
    "connect",
    "timeout",
    "auth",
    "status",
    "session_gone",
    "stream_ended",
    "protocol",
    "no_endpoint",
    "closed",
    "incompatible",
];
/// Methods with their own latency series; anything else is `other`.
const METHODS: [&str; 18] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "other",
];
/// How a request relayed to the replica owning its session ended (`--redis`).
pub const RELAY_OUTCOMES: [&str; 3] = ["answered", "taken_over", "failed"];
/// Latency bucket bounds, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    messages: [[[AtomicU64; KINDS.len()]; DIRECTIONS.len()]; CLIENTS.len()],
    differences: [AtomicU64; Difference::ALL.len()],
    upstream_errors: [AtomicU64; ERROR_CLASSES.len()],
    latency: [[Histogram; METHODS.len()]; CLIENTS.len()],
    /// Upstream sessions kept for sessionless clients, open now.
    sessionless_open: AtomicU64,
    refusals: AtomicU64,
    journal_dropped: AtomicU64,
    relays: [AtomicU64; RELAY_OUTCOMES.len()],
}

/// Values only known by walking the live sessions, filled in at scrape time.
pub struct Snapshot {
    /// (client transport, upstream transport) → open sessions.
    pub sessions: Vec<((&'static str, &'static str), u64)>,
    pub buffered_bytes: u64,
}

/// Index of a client label (a label outside the list counts as the first: never happens,
/// every client transport is listed).
fn client_index(client: &str) -> usize {
    CLIENTS.iter().position(|c| *c == client).unwrap_or(0)
}

impl Metrics {
    pub fn message(&self, client: &str, direction: usize, kind: Kind) {
        let k = KINDS
            .iter()
            .position(|x| *x == kind)
            .expect("all kinds listed");
        self.messages[client_index(client)][direction][k].fetch_add(1, Relaxed);
    }

    pub fn set_sessionless_open(&self, n: usize) {
        self.sessionless_open.store(n as u64, Relaxed);
    }

    pub fn difference(&self, d: Difference) {
        self.differences[d.index()].fetch_add(1, Relaxed);
    }

    pub fn difference_count(&self, d: Difference) -> u64 {
        self.differences[d.index()].load(Relaxed)
    }

    /// Upstream errors of `class` counted so far (every class together with `None`).
    pub fn upstream_error_count(&self, class: Option<&str>) -> u64 {
        ERROR_CLASSES
            .iter()
            .zip(&self.upstream_errors)
            .filter(|(c, _)| class.is_none_or(|want| want == **c))
            .map(|(_, n)| n.load(Relaxed))
            .sum()
    }

    pub fn upstream_error(&self, class: &str) {
        if let Some(i) = ERROR_CLASSES.iter().position(|c| *c == class) {
            self.upstream_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// A `client` request to `method` answered after `d`.
    pub fn latency(&self, client: &str, method: &str, d: Duration) {
        let i = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        self.latency[client_index(client)][i].observe(d);
    }

    pub fn refusal(&self) {
        self.refusals.fetch_add(1, Relaxed);
    }

    /// A request relayed to another replica ended with `outcome` (one of [`RELAY_OUTCOMES`]).
    pub fn relay(&self, outcome: &str) {
        if let Some(i) = RELAY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.relays[i].fetch_add(1, Relaxed);
        }
    }

    pub fn journal_dropped(&self) {
        self.journal_dropped.fetch_add(1, Relaxed);
    }

    pub fn journal_dropped_count(&self) -> u64 {
        self.journal_dropped.load(Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::with_capacity(8 * 1024);
        fn family(out: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        family(
            &mut out,
            "mcp_bridge_sessions",
            "gauge",
            "Open client sessions by transport pair.",
        );
        for ((client, upstream), n) in &snap.sessions {
            let _ = writeln!(
                out,
                "mcp_bridge_sessions{{client=\"{client}\",upstream=\"{upstream}\"}} {n}"
            );
        }
        family(
            &mut out,
            "mcp_bridge_messages_total",
            "counter",
            "JSON-RPC messages relayed, by client transport, direction and kind.",
        );
        for (c, client) in CLIENTS.iter().enumerate() {
            for (d, dir) in DIRECTIONS.iter().enumerate() {
                for (k, kind) in KINDS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "mcp_bridge_messages_total{{client=\"{client}\",direction=\"{dir}\",kind=\"{}\"}} {}",
                        kind.as_str(),
                        self.messages[c][d][k].load(Relaxed)
                    );
                }
            }
        }
        family(
            &mut out,
            "mcp_bridge_differences_total",
            "counter",
            "Transport differences the bridge translated or decided, by kind.",
        );
        for d in Difference::ALL {
            let _ = writeln!(
                out,
                "mcp_bridge_differences_total{{kind=\"{}\"}} {}",
                d.as_str(),
                self.difference_count(d)
            );
        }
        family(
            &mut out,
            "mcp_bridge_upstream_errors_total",
            "counter",
            "Failures talking to the upstream, by class.",
        );
        for (i, class) in ERROR_CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "mcp_bridge_upstream_errors_total{{class=\"{class}\"}} {}",
                self.upstream_errors[i].load(Relaxed)
            );
        }
        family(
            &mut out,
            "mcp_bridge_request_duration_seconds",
            "histogram",
            "Time from a client request to its response, by client transport and method.",
        );
        for (c, client) in CLIENTS.iter().enumerate() {
            for (i, method) in METHODS.iter().enumerate() {
                let h = &self.latency[c][i];
                let count = h.count.load(Relaxed);
                if count == 0 {
                    continue;
                }
                let labels = format!("client=\"{client}\",method=\"{method}\"");
                let mut cumulative = 0;
                for (b, bound) in BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[b].load(Relaxed);
                    let _ = writeln!(
                        out,
                        "mcp_bridge_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "mcp_bridge_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "mcp_bridge_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum_micros.load(Relaxed) as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "mcp_bridge_request_duration_seconds_count{{{labels}}} {count}"
                );
            }
        }
        family(
            &mut out,
            "mcp_bridge_sessionless_upstream_sessions",
            "gauge",
            "Upstream sessions kept for 2026-07-28 clients (idle, carrying a request, holding a listen or a call waiting for its retry).",
        );
        let _ = writeln!(
            out,
            "mcp_bridge_sessionless_upstream_sessions {}",
            self.sessionless_open.load(Relaxed)
        );
        family(
            &mut out,
            "mcp_bridge_buffered_bytes",
            "gauge",
            "Bytes held in client stream logs (undelivered and replayable events).",
        );
        let _ = writeln!(out, "mcp_bridge_buffered_bytes {}", snap.buffered_bytes);
        family(
            &mut out,
            "mcp_bridge_refusals_total",
            "counter",
            "Client requests refused by a limit.",
        );
        let _ = writeln!(
            out,
            "mcp_bridge_refusals_total {}",
            self.refusals.load(Relaxed)
        );
        family(
            &mut out,
            "mcp_bridge_replica_relays_total",
            "counter",
            "Requests relayed to the replica owning their session, by outcome.",
        );
        for (i, outcome) in RELAY_OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "mcp_bridge_replica_relays_total{{outcome=\"{outcome}\"}} {}",
                self.relays[i].load(Relaxed)
            );
        }
        family(
            &mut out,
            "mcp_bridge_journal_dropped_total",
            "counter",
            "Journal lines dropped because the journal queue was full.",
        );
        let _ = writeln!(
            out,
            "mcp_bridge_journal_dropped_total {}",
            self.journal_dropped_count()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::default();
        m.message("sse", 0, Kind::Request);
        m.message("streamable-2026", 1, Kind::Response);
        m.difference(Difference::BatchSplit);
        m.upstream_error("timeout");
        m.latency("streamable", "tools/call", Duration::from_millis(2));
        m.latency("streamable", "x/custom", Duration::from_millis(20));
        m.latency("streamable-2026", "tools/call", Duration::from_millis(3));
        m.set_sessionless_open(2);
        let text = m.render(&Snapshot {
            sessions: vec![(("sse", "streamable"), 2)],
            buffered_bytes: 7,
        });
        assert!(text.contains("mcp_bridge_sessions{client=\"sse\",upstream=\"streamable\"} 2"));
        assert!(text.contains(
            "mcp_bridge_messages_total{client=\"sse\",direction=\"client_to_upstream\",kind=\"request\"} 1"
        ));
        assert!(text.contains(
            "mcp_bridge_messages_total{client=\"streamable-2026\",direction=\"upstream_to_client\",kind=\"response\"} 1"
        ));
        assert!(text.contains(
            "mcp_bridge_request_duration_seconds_count{client=\"streamable-2026\",method=\"tools/call\"} 1"
        ));
        assert!(text.contains("mcp_bridge_sessionless_upstream_sessions 2"));
        assert!(text.contains("mcp_bridge_differences_total{kind=\"batch_split\"} 1"));
        assert!(text.contains("mcp_bridge_upstream_errors_total{class=\"timeout\"} 1"));
        assert!(text.contains(
            "mcp_bridge_request_duration_seconds_bucket{client=\"streamable\",method=\"tools/call\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "mcp_bridge_request_duration_seconds_count{client=\"streamable\",method=\"other\"} 1"
        ));
        assert!(text.contains("mcp_bridge_buffered_bytes 7"));
        m.relay("answered");
        let text = m.render(&Snapshot {
            sessions: vec![],
            buffered_bytes: 0,
        });
        assert!(text.contains("mcp_bridge_replica_relays_total{outcome=\"answered\"} 1"));
        assert!(text.contains("mcp_bridge_replica_relays_total{outcome=\"failed\"} 0"));
    }
}
