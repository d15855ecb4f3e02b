//! Observability: transport-difference records, the wire journal, metrics, the admin
//! endpoints and the journal summary. Sessions report to one [`Observer`] per bridge.

pub mod admin;
mod difference;
pub mod journal;
pub mod metrics;
pub mod summarize;

pub use difference::{emit, Difference, DifferenceCounts};

use std::fmt::Write;

use crate::config::Config;
use crate::jsonrpc::{Id, Message};
use journal::{quote, Journal};
use metrics::Metrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToUpstream,
    UpstreamToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        metrics::DIRECTIONS[self as usize]
    }
}

/// Who a record is about.
pub struct Labels<'a> {
    pub session: &'a str,
    pub client: &'static str,
    pub upstream: &'static str,
}

pub struct Observer {
    pub metrics: Metrics,
    journal: Option<Journal>,
}

/// Lines queued for the journal writer before new ones are dropped (and counted).
pub const JOURNAL_QUEUE: usize = 8192;

impl Observer {
    pub fn new(cfg: &Config) -> Observer {
        Observer {
            metrics: Metrics::default(),
            journal: cfg
                .journal
                .as_deref()
                .map(|p| Journal::start(p, cfg.journal_bodies, cfg.journal_queue)),
        }
    }

    fn journal(&self, line: impl FnOnce() -> String) {
        if let Some(j) = &self.journal {
            if !j.push(line()) {
                self.metrics.journal_dropped();
            }
        }
    }

    fn head(kind: &str, l: &Labels<'_>) -> String {
        format!(
            "{{\"ts\":{:.6},\"type\":\"{kind}\",\"session\":{},\"client_transport\":\"{}\",\"upstream_transport\":\"{}\"",
            journal::now(),
            quote(l.session),
            l.client,
            l.upstream
        )
    }

    /// One message crossing the bridge.
    pub fn message(
        &self,
        l: &Labels<'_>,
        direction: Direction,
        msg: &Message,
        stream: Option<u64>,
        event_seq: Option<u64>,
    ) {
        self.metrics.message(l.client, direction as usize, msg.kind);
        self.journal(|| {
            let mut line = Self::head("message", l);
            let opt = |s: Option<String>| s.unwrap_or_else(|| "null".into());
            let _ = write!(
                line,
                ",\"direction\":\"{}\",\"stream\":{},\"event_id\":{},\"kind\":\"{}\",\"method\":{},\"id\":{},\"size\":{}",
                direction.as_str(),
                opt(stream.map(|s| s.to_string())),
                opt(stream
                    .zip(event_seq)
                    .map(|(s, q)| format!("\"{s}-{q}\""))),
                msg.kind.as_str(),
                opt(msg.method().map(quote)),
                msg.id.as_ref().map(Id::json).unwrap_or("null"),
                msg.raw().len()
            );
            if self.journal.as_ref().is_some_and(|j| j.bodies) {
                // Valid JSON by construction; only insignificant whitespace can hold a line break.
                let body = String::from_utf8_lossy(msg.raw()).replace(['\n', '\r'], " ");
                let _ = write!(line, ",\"body\":{body}");
            }
            line.push('}');
            line
        });
    }

    /// One transport difference: a tracing event, a counter and a journal line.
    pub fn difference(
        &self,
        l: &Labels<'_>,
        kind: Difference,
        method: Option<&str>,
        id: Option<&Id>,
        reason: &str,
    ) {
        self.metrics.difference(kind);
        emit(kind, l.session, l.client, l.upstream, method, id, reason);
        self.journal(|| {
            format!(
                "{},\"difference\":\"{}\",\"method\":{},\"id\":{},\"reason\":{}}}",
                Self::head("difference", l),
                kind.as_str(),
                method.map(quote).unwrap_or_else(|| "null".into()),
                id.map(Id::json).unwrap_or("null"),
                quote(reason)
            )
        });
    }

    /// The session summary, as a journal line (the tracing line is the session's).
    pub fn session_end(&self, l: &Labels<'_>, ended: &str, duration_ms: u64) {
        self.journal(|| {
            format!(
                "{},\"ended\":\"{ended}\",\"duration_ms\":{duration_ms}}}",
                Self::head("session_end", l)
            )
        });
    }

    /// Flush the journal (at shutdown).
    pub fn close(&self) {
        if let Some(j) = &self.journal {
            j.close();
        }
    }
}
