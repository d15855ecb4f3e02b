//! All live sessions, shared by every worker, and the reaper that ends idle ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::{Budget, EndReason, Session};
use crate::transport::{upstream_label, Transport};
use tokio::sync::mpsc;

pub struct SessionMap {
    sessions: DashMap<Arc<str>, Arc<Session>>,
    max: usize,
    /// What all sessions' client streams may hold together (`--replay-total-bytes`).
    budget: Arc<Budget>,
    /// Told of every session that ends (the replica directory deletes its record).
    ends: std::sync::OnceLock<mpsc::UnboundedSender<Ended>>,
}

/// A session that ended, as [`SessionMap::watch_ends`] reports it.
pub struct Ended {
    pub id: Arc<str>,
    pub client: Transport,
    pub reason: EndReason,
}

impl SessionMap {
    pub fn new(max: usize, total_bytes: usize) -> SessionMap {
        SessionMap {
            sessions: DashMap::new(),
            max,
            budget: Budget::process(total_bytes),
            ends: std::sync::OnceLock::new(),
        }
    }

    /// The process budget, which every session's budget charges.
    pub fn budget(&self) -> Arc<Budget> {
        self.budget.clone()
    }

    /// Free `want` bytes over the process budget: first events already delivered (across
    /// all sessions), then undelivered events of streams no one reads, oldest
    /// session first. (No session lock is held while another is taken.)
    pub fn shed(&self, want: usize) {
        let now = Instant::now();
        let mut sessions = self.snapshot();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.age(now)));
        let mut freed = 0;
        for lossy in [false, true] {
            for s in &sessions {
                if freed >= want {
                    return;
                }
                freed += s.shed(want - freed, lossy);
            }
        }
    }

    /// Whether one more session fits. (Checked just before a session is inserted, with no
    /// await between: racing workers may overshoot by one each, which is harmless.)
    pub fn has_room(&self) -> bool {
        self.sessions.len() < self.max
    }

    pub fn insert(&self, session: Arc<Session>) {
        self.sessions.insert(session.id.clone(), session);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.value().clone())
    }

    /// A session ended: it leaves the map, and the watcher (if any) hears of it.
    pub(super) fn ended(&self, id: &Arc<str>, client: Transport, reason: EndReason) {
        self.sessions.remove(id);
        if let Some(tx) = self.ends.get() {
            let _ = tx.send(Ended {
                id: id.clone(),
                client,
                reason,
            });
        }
    }

    /// Every session that ends from now on (one watcher per map).
    pub fn watch_ends(&self) -> mpsc::UnboundedReceiver<Ended> {
        let (tx, rx) = mpsc::unbounded_channel();
        assert!(self.ends.set(tx).is_ok(), "one watcher per session map");
        rx
    }

    /// Give back the table's spare capacity (after a burst of sessions has ended).
    pub fn shrink(&self) {
        self.sessions.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn snapshot(&self) -> Vec<Arc<Session>> {
        // Collect first: ending a session removes it from the map, which must not happen
        // while a shard is being iterated.
        self.sessions.iter().map(|s| s.value().clone()).collect()
    }

    /// Open sessions per (client transport, upstream transport), every pair listed.
    pub fn by_transport_pair(&self) -> Vec<((&'static str, &'static str), u64)> {
        let upstreams = std::iter::once(None).chain(Transport::ALL.map(Some));
        let mut pairs: Vec<((&'static str, &'static str), u64)> = Transport::CLIENTS
            .iter()
            .flat_map(|c| {
                upstreams
                    .clone()
                    .map(move |u| ((c.as_str(), upstream_label(u)), 0))
            })
            .collect();
        for s in self.snapshot() {
            let key = (s.client.as_str(), upstream_label(s.upstream_transport()));
            if let Some(p) = pairs.iter_mut().find(|(k, _)| *k == key) {
                p.1 += 1;
            }
        }
        pairs
    }

    /// Bytes held in every session's stream logs.
    pub fn buffered_bytes(&self) -> u64 {
        self.snapshot()
            .iter()
            .map(|s| s.buffered_bytes() as u64)
            .sum()
    }

    /// Sessions for which `pred` holds.
    pub fn count(&self, pred: impl Fn(&Session) -> bool) -> usize {
        self.sessions.iter().filter(|s| pred(s.value())).count()
    }

    /// One reaper pass: sessions past their lifetime and idle ones end, expired streams go.
    pub fn sweep(&self, idle_timeout: Duration, max_lifetime: Duration) {
        let now = Instant::now();
        for s in self.snapshot() {
            if s.age(now) > max_lifetime {
                tracing::info!(parent: &s.span, lifetime = ?max_lifetime, "session reached its maximum lifetime");
                s.end(EndReason::MaxLifetime);
            } else {
                s.sweep(idle_timeout, now);
            }
        }
    }

    /// Drain step: end every Streamable session with no request in flight and none on its
    /// way in; how many are still busy (legacy sessions are not counted: they end last).
    pub fn end_idle_streamable(&self, reason: EndReason) -> usize {
        // A request that found its session a moment ago is still reading its body.
        const QUIET: Duration = Duration::from_millis(100);
        let mut busy = 0;
        for s in self.snapshot() {
            if s.client != Transport::Streamable {
                continue;
            }
            if s.is_quiet(QUIET) {
                s.end(reason);
            } else {
                busy += 1;
            }
        }
        busy
    }

    /// End every session (server shutdown): upstream sessions are closed.
    pub fn end_all(&self) {
        for s in self.snapshot() {
            s.end(EndReason::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ReplayLimits};
    use crate::jsonrpc::Message;
    use crate::observe::{Difference, Observer};
    use crate::transport::Transport;
    use crate::upstream::UpstreamHandle;
    use crate::upstream::{UpstreamSink, Via};

    fn session(map: &Arc<SessionMap>, id: &str) -> Arc<Session> {
        let cfg = Config::from_args(["t", "--upstream", "http://127.0.0.1:9"]).unwrap();
        let limits = ReplayLimits {
            session_bytes: 1 << 20,
            ..ReplayLimits::default()
        };
        let (handle, _driver) = UpstreamHandle::new();
        let s = Arc::new(Session::new(
            id.into(),
            Transport::Streamable,
            handle,
            limits,
            Arc::downgrade(map),
            Arc::new(Observer::new(&cfg)),
        ));
        map.insert(s.clone());
        s
    }

    fn note(n: usize) -> Message {
        let raw = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{}"}}}}"#,
            "x".repeat(n)
        );
        Message::parse(raw.into()).unwrap()
    }

    #[actix_rt::test]
    async fn the_process_budget_holds_across_sessions_oldest_losing_first() {
        let map = Arc::new(SessionMap::new(10, 8 << 10));
        let old = session(&map, "old");
        let new = session(&map, "new");
        // No client reads either session's standalone stream: every event waits there.
        for _ in 0..6 {
            old.clone().deliver(note(1000), Via::StandaloneStream).await;
        }
        for _ in 0..6 {
            new.clone().deliver(note(1000), Via::StandaloneStream).await;
        }
        let budget = map.budget();
        assert!(budget.excess() == 0, "{} held", budget.used());
        assert!(old.difference_count(Difference::MessageDropped) > 0);
        assert_eq!(new.difference_count(Difference::MessageDropped), 0);
        let overhead = 2 * crate::session::stream::STREAM_OVERHEAD;
        assert_eq!(map.buffered_bytes() as usize + overhead, budget.used());
    }
}
