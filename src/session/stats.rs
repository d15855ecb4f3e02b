//! What a session counts for its summary line.

use std::collections::HashMap;

use crate::observe::DifferenceCounts;

#[derive(Default)]
pub(super) struct Stats {
    pub from_client: u64,
    pub to_client: u64,
    requests_by_method: HashMap<Box<str>, u32>,
    pub differences: DifferenceCounts,
}

impl Stats {
    pub fn request(&mut self, method: &str) {
        match self.requests_by_method.get_mut(method) {
            Some(n) => *n += 1,
            None => {
                self.requests_by_method.insert(method.into(), 1);
            }
        }
    }

    /// `method=count` pairs, sorted by method.
    pub fn requests_summary(&self) -> String {
        let mut methods: Vec<_> = self.requests_by_method.iter().collect();
        methods.sort();
        let methods: Vec<String> = methods.iter().map(|(m, n)| format!("{m}={n}")).collect();
        methods.join(",")
    }
}
