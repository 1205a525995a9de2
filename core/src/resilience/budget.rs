//! Retry budget: retries may add at most `percent` of the live request rate plus a small
//! floor per second, so a failing cluster sees a bounded trickle of retries instead of a storm.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    /// (requests, retries) per one-second bucket, oldest overwritten first.
    buckets: [(u64, u64); BUCKETS],
    /// Index of the bucket `epoch` falls in.
    head: usize,
    epoch: Instant,
}

/// A sliding 10 s window of requests and retries for one route.
#[derive(Debug)]
pub struct RetryBudget {
    percent: f64,
    min_per_second: u32,
    window: Mutex<Window>,
}

impl RetryBudget {
    pub fn new(percent: f64, min_per_second: u32) -> Self {
        RetryBudget {
            percent,
            min_per_second,
            window: Mutex::new(Window {
                buckets: [(0, 0); BUCKETS],
                head: 0,
                epoch: Instant::now(),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let steps = (now.saturating_duration_since(w.epoch).as_secs()) as usize;
        if steps > 0 {
            for k in 1..=steps.min(BUCKETS) {
                let i = (w.head + k) % BUCKETS;
                w.buckets[i] = (0, 0);
            }
            w.head = (w.head + steps) % BUCKETS;
            w.epoch += BUCKET * steps as u32;
        }
        f(&mut w)
    }

    /// Counts one original request.
    pub fn on_request(&self) {
        self.with(|w| w.buckets[w.head].0 += 1);
    }

    /// Takes one retry from the budget; false when the budget is spent.
    pub fn try_retry(&self) -> bool {
        self.with(|w| {
            let (reqs, retries) = w.buckets.iter().fold((0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1));
            let allowed = (reqs as f64 * self.percent / 100.0) + (self.min_per_second as f64 * BUCKETS as f64);
            if (retries as f64) < allowed {
                w.buckets[w.head].1 += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
