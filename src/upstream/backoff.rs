//! When to reconnect an upstream stream (the standalone GET stream, a request stream being
//! resumed). A server's `retry` is honoured but never below a floor, and consecutive attempts
//! that bring no healthy stream double the wait: a server that answers `retry: 0` and closes
//! at once must not get hundreds of reconnects per second from one idle session.

use std::time::Duration;

/// No reconnect comes sooner than this, whatever `retry` says.
const FLOOR: Duration = Duration::from_millis(500);
/// The wait when the server named none.
const DEFAULT: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(30);
/// A stream open this long counts as healthy even if it carried nothing.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Backoff {
    /// Attempts since the last healthy stream.
    failures: u32,
}

impl Backoff {
    /// The wait before the next attempt: the server's `retry` (else 1 s), at least the floor,
    /// doubled for each attempt since the last healthy stream, at most 30 s (or the server's
    /// own longer `retry`).
    pub fn next_delay(&mut self, retry: Option<Duration>) -> Duration {
        let base = retry.unwrap_or(DEFAULT).max(FLOOR);
        let delay = base
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX.max(base));
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// The last stream delivered an event or stayed open a while: start over.
    pub fn healthy(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_zero_is_raised_to_the_floor_and_grows() {
        let mut b = Backoff::default();
        let zero = Some(Duration::ZERO);
        assert_eq!(b.next_delay(zero), FLOOR);
        assert_eq!(b.next_delay(zero), FLOOR * 2);
        assert_eq!(b.next_delay(zero), FLOOR * 4);
        for _ in 0..40 {
            assert!(b.next_delay(zero) <= MAX);
        }
        b.healthy();
        assert_eq!(b.next_delay(zero), FLOOR);
    }

    #[test]
    fn retry_is_honoured_above_the_floor() {
        let mut b = Backoff::default();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(b.next_delay(None), Duration::from_secs(2));
        let mut b = Backoff::default();
        let long = Some(Duration::from_secs(60));
        assert_eq!(b.next_delay(long), Duration::from_secs(60));
        assert_eq!(b.next_delay(long), Duration::from_secs(60));
    }
}
