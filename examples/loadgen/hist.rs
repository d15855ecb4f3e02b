//! Latency recording: every sample kept (nanoseconds), sorted once at the end. Exact
//! percentiles; a few hundred thousand samples per run cost a few MB at most.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Default, Debug, Clone)]
pub struct Hist {
    ns: Vec<u64>,
}

/// Percentiles of one run, in microseconds.
#[derive(Default, Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub n: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Hist {
    pub fn record(&mut self, d: Duration) {
        self.ns.push(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: Hist) {
        self.ns.extend(other.ns);
    }

    pub fn summary(mut self) -> Latency {
        if self.ns.is_empty() {
            return Latency::default();
        }
        self.ns.sort_unstable();
        let n = self.ns.len();
        // Nearest-rank percentile.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            self.ns[rank.clamp(1, n) - 1] as f64 / 1_000.0
        };
        let sum: u128 = self.ns.iter().map(|&v| v as u128).sum();
        Latency {
            n: n as u64,
            mean_us: sum as f64 / n as f64 / 1_000.0,
            p50_us: pct(50.0),
            p90_us: pct(90.0),
            p99_us: pct(99.0),
            p999_us: pct(99.9),
            max_us: self.ns[n - 1] as f64 / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut h = Hist::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
    }
}
