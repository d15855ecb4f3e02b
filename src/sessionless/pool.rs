//! The upstream sessions the bridge keeps warm for sessionless clients. A session is opened
//! with one client's declared capabilities and info and serves only requests of the same
//! credential with the same declaration (the key), one request at a time; idle ones are
//! reaped. The number open at once is bounded.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lent::{Inbox, Lent};
use super::ticket::Sealer;
use crate::era::codes::LEGACY_VERSIONS;
use crate::era::discover;
use crate::era::meta::Envelope;
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Message};
use crate::observe::Observer;
use crate::upstream::{ForwardHeaders, UpstreamShared};

/// Who may use a kept session: the credential and the client's declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    credential: Option<[u8; 32]>,
    declaration: u64,
}

impl Key {
    pub fn new(credential: Option<[u8; 32]>, env: &Envelope) -> Key {
        let mut h = DefaultHasher::new();
        env.client_capabilities.hash(&mut h);
        env.client_info.hash(&mut h);
        Key {
            credential,
            declaration: h.finish(),
        }
    }
}

/// Why no session could be lent.
#[derive(Debug)]
pub enum LendError {
    /// `--sessionless-max` sessions are open (all lent).
    Busy(usize),
    Upstream(UpstreamError),
}

/// A request ended with `input_required`: its upstream session holds the call open until
/// the client retries with the minted `requestState`.
pub struct Pinned {
    pub lent: Arc<Lent>,
    pub key: Key,
    pub inbox: Inbox,
    /// The id the upstream will answer with (the client's first attempt).
    pub upstream_id: Id,
    /// The first attempt's progress token: the upstream's progress notifications carry it.
    pub progress_token: Option<Id>,
    pub method: Box<str>,
    /// The `inputRequests` keys the client must answer.
    pub asked: Vec<String>,
    pub since: Instant,
}

pub struct Pool {
    pinned: Mutex<HashMap<u64, Pinned>>,
    pub sealer: Sealer,
    shared: Arc<UpstreamShared>,
    obs: Arc<Observer>,
    idle: Mutex<HashMap<Key, Vec<Arc<Lent>>>>,
    open: AtomicUsize,
    max: usize,
    idle_timeout: Duration,
    next: AtomicU64,
}

/// Who the bridge says the client is when it declared no `clientInfo`.
const FALLBACK_CLIENT: &str = concat!(
    r#"{"name":"mcp-bridge","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}"#
);

impl Pool {
    pub fn new(
        shared: Arc<UpstreamShared>,
        obs: Arc<Observer>,
        max: usize,
        idle_timeout: Duration,
        sealer: Sealer,
    ) -> Pool {
        Pool {
            pinned: Mutex::default(),
            sealer,
            shared,
            obs,
            idle: Mutex::default(),
            open: AtomicUsize::new(0),
            max,
            idle_timeout,
            next: AtomicU64::new(1),
        }
    }

    /// An idle session of `key`, or a new one opened with `env` (on this worker).
    pub async fn lend(
        &self,
        key: &Key,
        env: &Envelope,
        headers: &ForwardHeaders,
    ) -> Result<Arc<Lent>, LendError> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(key)
                .and_then(Vec::pop);
            match idle {
                Some(l) if l.is_dead() => self.forget(&l),
                Some(l) => return Ok(l),
                None => break,
            }
        }
        if self.counted(1) > self.max {
            self.counted(-1);
            // Full: an idle session of another client makes room (the longest unused); only
            // when every open session is lent or waiting for a retry is the request refused.
            let Some(oldest) = self.take_oldest_idle() else {
                return Err(LendError::Busy(self.max));
            };
            self.discard(&oldest);
            self.counted(1);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let init = Message::parse(
            discover::initialize_request(
                Id::bridge(0).json(),
                env,
                LEGACY_VERSIONS[0],
                FALLBACK_CLIENT,
            )
            .into(),
        )
        .expect("well formed");
        match Lent::open(
            format!("lent-{n}").into(),
            &self.shared,
            self.obs.clone(),
            init,
            headers,
        )
        .await
        {
            Ok(l) => Ok(l),
            Err(e) => {
                self.counted(-1);
                // The request is answered with this error at once; the operator sees it too.
                self.obs.metrics.upstream_error(e.class());
                tracing::warn!(
                    class = e.class(),
                    "could not open an upstream session for a sessionless client: {e}"
                );
                Err(LendError::Upstream(e))
            }
        }
    }

    /// Remove and return the idle session unused the longest, of any key.
    fn take_oldest_idle(&self) -> Option<Arc<Lent>> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let (key, at) = idle
            .iter()
            .flat_map(|(k, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, l)| (k, i, l.idle_for(now)))
            })
            .max_by_key(|(_, _, idle_for)| *idle_for)
            .map(|(k, i, _)| (k.clone(), i))?;
        let list = idle.get_mut(&key)?;
        let lent = list.swap_remove(at);
        if list.is_empty() {
            idle.remove(&key);
        }
        Some(lent)
    }

    /// The request is served: the session waits for the next one of its key.
    pub fn give_back(&self, key: Key, lent: Arc<Lent>) {
        lent.finish();
        if lent.is_dead() {
            return self.forget(&lent);
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push(lent);
    }

    /// The session cannot serve again (its request was cut short, or it broke).
    pub fn discard(&self, lent: &Lent) {
        lent.close();
        self.forget(lent);
    }

    fn forget(&self, _lent: &Lent) {
        self.counted(-1);
    }

    /// Hold `p` until the client's retry; the ticket its `requestState` names.
    pub fn pin(&self, p: Pinned) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ticket, p);
        ticket
    }

    /// The input keys a pinned call waits for (`None`: no such call).
    pub fn asked(&self, ticket: u64) -> Option<Vec<String>> {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ticket)
            .map(|p| p.asked.clone())
    }

    /// The call a retry continues (each ticket serves one retry).
    pub fn unpin(&self, ticket: u64) -> Option<Pinned> {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket)
    }

    /// Reaper hook: close sessions idle longer than the idle timeout, and calls whose client
    /// never came back for them.
    pub fn sweep(&self, now: Instant) {
        let mut expired: Vec<Arc<Lent>> = Vec::new();
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| {
                let keep = now.saturating_duration_since(p.since) <= self.idle_timeout;
                if !keep {
                    expired.push(p.lent.clone());
                }
                keep
            });
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            for list in idle.values_mut() {
                list.retain(|l| {
                    let keep = !l.is_dead() && l.idle_for(now) <= self.idle_timeout;
                    if !keep {
                        expired.push(l.clone());
                    }
                    keep
                });
            }
            idle.retain(|_, l| !l.is_empty());
        }
        for l in expired {
            self.discard(&l);
        }
    }

    /// Close every idle and pinned session (shutdown).
    pub fn close_all(&self) {
        let mut all: Vec<Arc<Lent>> = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .flat_map(|(_, l)| l)
            .collect();
        all.extend(
            self.pinned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
                .map(|(_, p)| p.lent),
        );
        for l in all {
            self.discard(&l);
        }
    }

    /// How long the bridge waits for an upstream answer of its own requests.
    pub fn timeout(&self) -> Duration {
        self.shared.cfg.upstream_timeout
    }

    /// Interval of keep-alive comments on long streams (listen).
    pub fn keepalive(&self) -> Duration {
        self.shared.cfg.keepalive
    }

    /// Count a session opened (+1) or closed (-1); the count after, also published in the
    /// metrics.
    fn counted(&self, delta: isize) -> usize {
        let now = if delta > 0 {
            self.open.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.open.fetch_sub(1, Ordering::AcqRel) - 1
        };
        self.obs.metrics.set_sessionless_open(now);
        now
    }

    /// Sessions open now (idle and lent).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}
