//! The load runner: N sessions spread over T threads (one actix system each, one shared awc
//! pool per thread); each session does sequential `tools/call`s until the time or call budget
//! is spent. Calls that *start* after the warm-up are recorded.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{http_client, with_token, ClientKind, Note, NoteKind, Session};
use crate::hist::{Hist, Latency};

/// What each call does.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// `params` of `tools/call` (a JSON object), without `_meta`.
    pub params: String,
    /// Put a unique `_meta.progressToken` on every call.
    pub progress: bool,
    /// Notifications each call must bring (log + progress), when known.
    pub expect_notes: Option<usize>,
    /// The result must be at least this many bytes of JSON.
    pub min_result_bytes: usize,
}

impl CallSpec {
    pub fn echo() -> CallSpec {
        CallSpec {
            params: r#"{"name":"echo","arguments":{"text":"hello"}}"#.into(),
            progress: false,
            expect_notes: Some(0),
            min_result_bytes: 0,
        }
    }

    /// The fake server's `progress` tool: per step one log message and one progress
    /// notification, so `2 * steps` in order.
    pub fn progress(steps: u64) -> CallSpec {
        CallSpec {
            params: format!(r#"{{"name":"progress","arguments":{{"steps":{steps}}}}}"#),
            progress: true,
            expect_notes: Some(2 * steps as usize),
            min_result_bytes: 0,
        }
    }

    pub fn big(bytes: u64) -> CallSpec {
        CallSpec {
            params: format!(r#"{{"name":"big","arguments":{{"bytes":{bytes}}}}}"#),
            progress: false,
            expect_notes: Some(0),
            min_result_bytes: bytes as usize,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub client: ClientKind,
    pub url: String,
    pub sessions: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Budget of calls (all sessions, warm-up included).
    pub max_calls: u64,
    pub call: CallSpec,
    /// Deadline of one call; a session whose call times out stops.
    pub call_timeout: Duration,
}

#[derive(Default, Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub client: String,
    pub url: String,
    pub sessions: usize,
    pub threads: usize,
    /// Calls recorded (started after the warm-up, succeeded).
    pub calls: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Sessions that could not be opened.
    pub open_errors: u64,
    pub window_s: f64,
    pub calls_per_s: f64,
    pub latency: Latency,
    /// Notifications received with recorded calls.
    pub notifications: u64,
    pub notifications_per_s: f64,
    /// Expected notifications that never arrived.
    pub lost: u64,
    /// Notifications that arrived out of order (step/kind sequence went backwards).
    pub reordered: u64,
    /// Notifications for no call of ours (wrong token, unknown method, server requests,
    /// or messages between calls).
    pub unexpected: u64,
    pub result_bytes: u64,
    /// The suite's repeats of this run: their key metric (p50 µs or calls/s), sorted; this
    /// result is the median one (errors and notification checks summed over all).
    #[serde(default)]
    pub repeats: Vec<f64>,
}

impl LoadResult {
    pub fn clean(&self) -> bool {
        self.errors == 0
            && self.open_errors == 0
            && self.lost == 0
            && self.reordered == 0
            && self.unexpected == 0
    }

    pub fn human(&self) -> String {
        let l = &self.latency;
        let mut s = format!(
            "{} {}: {} sessions, {} calls in {:.2} s = {:.0} calls/s; latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}; errors {} (+{} sessions not opened)",
            self.client, self.url, self.sessions, self.calls, self.window_s, self.calls_per_s,
            l.p50_us / 1e3, l.p90_us / 1e3, l.p99_us / 1e3, l.max_us / 1e3, self.errors, self.open_errors
        );
        if self.notifications > 0 || self.lost > 0 {
            s += &format!(
                "; notifications {} = {:.0}/s, lost {}, reordered {}, unexpected {}",
                self.notifications,
                self.notifications_per_s,
                self.lost,
                self.reordered,
                self.unexpected
            );
        }
        if self.result_bytes > 0 {
            s += &format!(
                "; {:.1} MiB/s of results",
                self.result_bytes as f64 / self.window_s.max(1e-9) / (1 << 20) as f64
            );
        }
        for e in &self.error_samples {
            s += &format!("\n  error: {e}");
        }
        s
    }
}

/// Lost and out-of-order notifications of one call. Each step must bring its log line, then
/// its progress notification; the key `2*step + kind` must strictly increase.
pub fn check_notes(notes: &[Note], expect: Option<usize>) -> (u64, u64, u64) {
    let mut valid = 0usize;
    let mut reordered = 0u64;
    let mut unexpected = 0u64;
    let mut last: Option<u64> = None;
    for n in notes {
        let key = match n.kind {
            NoteKind::Unexpected => {
                unexpected += 1;
                continue;
            }
            NoteKind::Log => n.step.map(|s| 2 * s),
            NoteKind::Progress => n.step.map(|s| 2 * s + 1),
        };
        valid += 1;
        if let Some(k) = key {
            if last.is_some_and(|l| k <= l) {
                reordered += 1;
            }
            last = Some(k);
        }
    }
    let lost = expect.map_or(0, |e| e.saturating_sub(valid)) as u64;
    // More than expected (duplicates) counts as out of order.
    let extra = expect.map_or(0, |e| valid.saturating_sub(e)) as u64;
    (lost, reordered + extra, unexpected)
}

struct Acc {
    hist: Hist,
    res: LoadResult,
    first_start: Option<Instant>,
    last_done: Option<Instant>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            hist: Hist::default(),
            res: LoadResult::default(),
            first_start: None,
            last_done: None,
        }
    }

    fn error(&mut self, e: String) {
        self.res.errors += 1;
        if self.res.error_samples.len() < 5 {
            self.res.error_samples.push(e);
        }
    }

    fn merge(&mut self, o: Acc) {
        self.hist.merge(o.hist);
        let r = &mut self.res;
        r.calls += o.res.calls;
        r.errors += o.res.errors;
        r.open_errors += o.res.open_errors;
        for e in o.res.error_samples {
            if r.error_samples.len() < 5 {
                r.error_samples.push(e);
            }
        }
        r.notifications += o.res.notifications;
        r.lost += o.res.lost;
        r.reordered += o.res.reordered;
        r.unexpected += o.res.unexpected;
        r.result_bytes += o.res.result_bytes;
        self.first_start = match (self.first_start, o.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_done = self.last_done.max(o.last_done);
    }
}

pub fn run(spec: &LoadSpec) -> LoadResult {
    let threads = spec.threads.clamp(1, spec.sessions.max(1));
    let barrier = Arc::new(Barrier::new(threads));
    let budget = Arc::new(AtomicU64::new(0));
    let total = Arc::new(Mutex::new(Acc::new()));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Sessions dealt out round-robin.
            let ids: Vec<usize> = (t..spec.sessions).step_by(threads).collect();
            let (spec, barrier, budget, total) =
                (spec.clone(), barrier.clone(), budget.clone(), total.clone());
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || {
                    let acc =
                        actix_rt::System::new().block_on(thread_main(spec, ids, barrier, budget));
                    total.lock().unwrap().merge(acc);
                })
                .expect("spawn load thread")
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let acc = std::mem::replace(&mut *total.lock().unwrap(), Acc::new());
    let mut res = acc.res;
    res.client = spec.client.as_str().into();
    res.url = spec.url.clone();
    res.sessions = spec.sessions;
    res.threads = threads;
    res.window_s = match (acc.first_start, acc.last_done) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    if res.window_s > 0.0 {
        res.calls_per_s = res.calls as f64 / res.window_s;
        res.notifications_per_s = res.notifications as f64 / res.window_s;
    }
    res.latency = acc.hist.summary();
    res
}

async fn thread_main(
    spec: LoadSpec,
    ids: Vec<usize>,
    barrier: Arc<Barrier>,
    budget: Arc<AtomicU64>,
) -> Acc {
    let http = http_client();
    let url: Rc<str> = spec.url.as_str().into();
    let opened = futures_util::future::join_all(
        ids.iter()
            .map(|_| Session::open(spec.client, http.clone(), url.clone())),
    )
    .await;
    let mut acc = Acc::new();
    let mut sessions = Vec::new();
    for (id, s) in ids.iter().zip(opened) {
        match s {
            Ok(s) => sessions.push((*id, s)),
            Err(e) => {
                acc.res.open_errors += 1;
                acc.error(format!("open: {e}"));
            }
        }
    }
    // Every thread starts the clock together (blocking here is fine: nothing is in flight).
    barrier.wait();
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let runs = sessions
        .into_iter()
        .map(|(id, s)| session_loop(&spec, id, s, measure_from, end, &budget));
    for a in futures_util::future::join_all(runs).await {
        acc.merge(a);
    }
    acc
}

async fn session_loop(
    spec: &LoadSpec,
    id: usize,
    mut s: Session,
    measure_from: Instant,
    end: Instant,
    budget: &AtomicU64,
) -> Acc {
    let mut acc = Acc::new();
    let mut n = 0u64;
    let stray_before = s.stray();
    while Instant::now() < end && budget.fetch_add(1, Ordering::Relaxed) < spec.max_calls {
        n += 1;
        let token = spec.call.progress.then(|| format!("\"s{id}-{n}\""));
        let params = match &token {
            Some(t) => with_token(&spec.call.params, t),
            None => spec.call.params.clone(),
        };
        let started = Instant::now();
        let out = tokio::time::timeout(
            spec.call_timeout,
            s.call("tools/call", &params, token.as_deref()),
        )
        .await;
        let out = match out {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                acc.error(e);
                // A broken session is not worth hammering.
                if let Session::Legacy(_) = s {
                    break;
                }
                continue;
            }
            Err(_) => {
                acc.error(format!("call timed out after {:?}", spec.call_timeout));
                break;
            }
        };
        if out.result_bytes < spec.call.min_result_bytes {
            acc.error(format!(
                "result of {} bytes, expected at least {}",
                out.result_bytes, spec.call.min_result_bytes
            ));
        }
        if started < measure_from {
            continue;
        }
        let (lost, reordered, unexpected) = check_notes(&out.notes, spec.call.expect_notes);
        acc.res.calls += 1;
        acc.res.notifications += out.notes.len() as u64;
        acc.res.lost += lost;
        acc.res.reordered += reordered;
        acc.res.unexpected += unexpected;
        acc.res.result_bytes += out.result_bytes as u64;
        acc.hist.record(out.done_at - started);
        acc.first_start = Some(acc.first_start.map_or(started, |f| f.min(started)));
        acc.last_done = acc.last_done.max(Some(out.done_at));
    }
    acc.res.unexpected += s.stray() - stray_before;
    if let Err(e) = s.close().await {
        acc.error(format!("close: {e}"));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: NoteKind, step: u64) -> Note {
        Note {
            kind,
            step: Some(step),
        }
    }

    #[test]
    fn order_and_loss() {
        use NoteKind::*;
        let good = [
            note(Log, 1),
            note(Progress, 1),
            note(Log, 2),
            note(Progress, 2),
        ];
        assert_eq!(check_notes(&good, Some(4)), (0, 0, 0));
        let swapped = [
            note(Progress, 1),
            note(Log, 1),
            note(Log, 2),
            note(Progress, 2),
        ];
        assert_eq!(check_notes(&swapped, Some(4)), (0, 1, 0));
        assert_eq!(check_notes(&good[..3], Some(4)), (1, 0, 0));
    }
}
