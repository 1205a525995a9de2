//! A route's recent latencies, for hedging at a live percentile (`hedge.after: p95`).
//!
//! A fixed ring of the last samples; the percentile is recomputed every few dozen samples
//! and read lock-free, so the request path pays one short lock to record and an atomic load
//! to read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const SAMPLES: usize = 512;
const RECOMPUTE_EVERY: usize = 32;

#[derive(Debug)]
struct Ring {
    values: Vec<u32>,
    next: usize,
    since_recompute: usize,
}

/// Recent latencies of one route, in microseconds.
#[derive(Debug)]
pub struct LatencyWindow {
    ring: Mutex<Ring>,
    quantile: f64,
    cached_us: AtomicU64,
}

impl LatencyWindow {
    pub fn new(quantile: f64) -> Self {
        LatencyWindow {
            ring: Mutex::new(Ring {
                values: Vec::with_capacity(SAMPLES),
                next: 0,
                since_recompute: 0,
            }),
            quantile: quantile.clamp(0.0, 1.0),
            cached_us: AtomicU64::new(0),
        }
    }

    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u32::MAX as u128) as u32;
        let mut r = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if r.values.len() < SAMPLES {
            r.values.push(us);
        } else {
            let i = r.next;
            r.values[i] = us;
        }
        r.next = (r.next + 1) % SAMPLES;
        r.since_recompute += 1;
        if r.since_recompute >= RECOMPUTE_EVERY && r.values.len() >= RECOMPUTE_EVERY {
            r.since_recompute = 0;
            let mut sorted = r.values.clone();
            let idx = ((sorted.len() as f64 - 1.0) * self.quantile).round() as usize;
            // Only the order statistic is needed, not a full sort.
            let (_, nth, _) = sorted.select_nth_unstable(idx);
            self.cached_us.store(u64::from((*nth).max(1)), Ordering::Relaxed);
        }
    }

    /// The quantile over recent samples; `None` until there are enough of them to mean much.
    pub fn current(&self) -> Option<Duration> {
        // Zero until the window held enough samples: read lock-free on every hedged request.
        let us = self.cached_us.load(Ordering::Relaxed);
        (us > 0).then(|| Duration::from_micros(us))
    }
}

#[cfg(test)]
#[path = "latency_tests.rs"]
mod tests;
