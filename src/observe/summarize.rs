//! `mcp-bridge journal summarize FILE`: per-session and per-method tables from a journal.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::io::BufRead;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Line<'a> {
    ts: f64,
    #[serde(rename = "type")]
    kind: &'a str,
    session: String,
    client_transport: &'a str,
    upstream_transport: &'a str,
    direction: Option<&'a str>,
    #[serde(rename = "kind")]
    message_kind: Option<&'a str>,
    method: Option<String>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    difference: Option<&'a str>,
    ended: Option<&'a str>,
}

#[derive(Default)]
struct SessionRow {
    transports: String,
    to_upstream: u64,
    to_client: u64,
    differences: BTreeMap<String, u64>,
    ended: String,
}

#[derive(Default)]
struct MethodRow {
    count: u64,
    errors: u64,
    latencies_ms: Vec<f64>,
}

/// Build the report from journal lines.
pub fn summarize(input: impl BufRead) -> std::io::Result<String> {
    let mut sessions: BTreeMap<String, SessionRow> = BTreeMap::new();
    let mut methods: BTreeMap<String, MethodRow> = BTreeMap::new();
    // (session, exact id) → (method, time) of client requests awaiting their response.
    let mut open: HashMap<(String, String), (String, f64)> = HashMap::new();
    let mut unreadable = 0;
    for line in input.lines() {
        let line = line?;
        let Ok(l) = serde_json::from_str::<Line<'_>>(&line) else {
            unreadable += 1;
            continue;
        };
        let row = sessions.entry(l.session.clone()).or_default();
        row.transports = format!("{} → {}", l.client_transport, l.upstream_transport);
        match l.kind {
            "message" => {
                let id = l.id.map(|r| r.get().to_owned()).filter(|i| i != "null");
                match (l.direction, l.message_kind) {
                    (Some("client_to_upstream"), kind) => {
                        row.to_upstream += 1;
                        if let (Some("request"), Some(id), Some(m)) = (kind, &id, &l.method) {
                            open.insert((l.session.clone(), id.clone()), (m.clone(), l.ts));
                        }
                    }
                    (_, kind) => {
                        row.to_client += 1;
                        if kind == Some("response") {
                            if let Some((m, t0)) =
                                id.and_then(|id| open.remove(&(l.session.clone(), id)))
                            {
                                let r = methods.entry(m).or_default();
                                r.count += 1;
                                r.latencies_ms.push((l.ts - t0) * 1000.0);
                                if line.contains("\"error\":{") {
                                    r.errors += 1;
                                }
                            }
                        }
                    }
                }
            }
            "difference" => {
                *row.differences
                    .entry(l.difference.unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            "session_end" => row.ended = l.ended.unwrap_or("").to_owned(),
            _ => {}
        }
    }
    for ((_, _), (m, _)) in open {
        methods.entry(m).or_default().count += 1; // never answered: counted, no latency
    }

    let mut out = String::new();
    let _ = writeln!(out, "## Sessions\n");
    let _ = writeln!(
        out,
        "| session | transports | to upstream | to client | differences | ended |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---|---|");
    for (id, s) in &sessions {
        let diffs: Vec<String> = s
            .differences
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            &id[..id.len().min(12)],
            s.transports,
            s.to_upstream,
            s.to_client,
            if diffs.is_empty() {
                "-".into()
            } else {
                diffs.join(", ")
            },
            if s.ended.is_empty() { "open" } else { &s.ended }
        );
    }
    let _ = writeln!(out, "\n## Methods\n");
    let _ = writeln!(
        out,
        "| method | requests | errors | p50 ms | p95 ms | max ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (m, r) in &mut methods {
        r.latencies_ms.sort_by(f64::total_cmp);
        let q = |p: f64| -> String {
            if r.latencies_ms.is_empty() {
                return "-".into();
            }
            let i = ((r.latencies_ms.len() - 1) as f64 * p).round() as usize;
            format!("{:.2}", r.latencies_ms[i])
        };
        let _ = writeln!(
            out,
            "| {m} | {} | {} | {} | {} | {} |",
            r.count,
            r.errors,
            q(0.5),
            q(0.95),
            q(1.0)
        );
    }
    if unreadable > 0 {
        let _ = writeln!(out, "\n({unreadable} unreadable line(s) skipped)");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_requests_with_responses_per_session() {
        let journal = r#"{"ts":1.0,"type":"message","session":"s1","client_transport":"sse","upstream_transport":"streamable","direction":"client_to_upstream","stream":0,"event_id":null,"kind":"request","method":"tools/call","id":1,"size":10}
{"ts":1.002,"type":"message","session":"s1","client_transport":"sse","upstream_transport":"streamable","direction":"upstream_to_client","stream":0,"event_id":null,"kind":"response","method":null,"id":1,"size":10}
{"ts":1.003,"type":"difference","session":"s1","client_transport":"sse","upstream_transport":"streamable","difference":"batch_split","method":null,"id":null,"reason":"x"}
{"ts":1.004,"type":"message","session":"s2","client_transport":"streamable","upstream_transport":"sse","direction":"upstream_to_client","stream":1,"event_id":"1-1","kind":"response","method":null,"id":1,"size":10}
{"ts":2.0,"type":"session_end","session":"s1","client_transport":"sse","upstream_transport":"streamable","ended":"client_closed","duration_ms":1000}
garbage"#;
        let report = summarize(journal.as_bytes()).unwrap();
        assert!(
            report.contains("| s1 | sse → streamable | 1 | 1 | batch_split=1 | client_closed |"),
            "{report}"
        );
        assert!(
            report.contains("| tools/call | 1 | 0 | 2.00 | 2.00 | 2.00 |"),
            "{report}"
        );
        assert!(report.contains("1 unreadable line"), "{report}");
    }
}
