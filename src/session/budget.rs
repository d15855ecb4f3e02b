//! Byte budgets for what client streams hold (replay logs and undelivered events): one per
//! session, each charging the one of the whole process too. Every byte a stream stores is
//! charged here when stored and released when dropped, so the counters never drift from
//! what is held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// The process budget, for a session's budget.
    parent: Option<Arc<Budget>>,
}

impl Budget {
    /// The process-wide budget.
    pub fn process(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            parent: None,
        })
    }

    /// A session's budget, charging `process` as well.
    pub fn session(limit: usize, process: Arc<Budget>) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            parent: Some(process),
        })
    }

    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.charge(n);
        }
    }

    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.release(n);
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes over the limit (0 within it).
    pub fn excess(&self) -> usize {
        self.used().saturating_sub(self.limit)
    }

    /// Bytes over this budget or its parent's, whichever is more.
    pub fn excess_with_parent(&self) -> usize {
        self.excess()
            .max(self.parent.as_ref().map_or(0, |p| p.excess()))
    }

    pub fn parent(&self) -> Option<&Arc<Budget>> {
        self.parent.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_charge_counts_in_the_process_too() {
        let process = Budget::process(100);
        let a = Budget::session(60, process.clone());
        let b = Budget::session(60, process.clone());
        a.charge(50);
        b.charge(55);
        assert_eq!(process.used(), 105);
        assert_eq!(process.excess(), 5);
        assert_eq!(a.excess(), 0);
        assert_eq!(a.excess_with_parent(), 5);
        b.release(55);
        assert_eq!(process.excess(), 0);
    }
}
