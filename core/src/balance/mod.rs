//! Picking a pod: load signals per endpoint and the pickers that read them.
//!
//! Pure code: the clock is tokio's (pausable in tests) and randomness is passed in, so the
//! choices are deterministic under test.

pub mod endpoint;
pub mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pingora_ketama::{Bucket, Continuum};
use rand::Rng;
use tokio::time::Instant;

pub use endpoint::{Endpoint, InFlight, LoadBoard, LoadView, Origin};

use crate::config::LoadTuning;

/// Power of two choices: sample two eligible pods, take the cheaper. Near-optimal load spread
/// at O(1) cost, and it never herds onto the single "best" pod as least-cost-of-all would.
pub fn p2c<R: Rng>(
    eps: &[Arc<Endpoint>],
    eligible: impl Fn(&Endpoint) -> bool,
    rng: &mut R,
    now: Instant,
    tuning: &LoadTuning,
) -> Option<usize> {
    let n = eps.len();
    match n {
        0 => return None,
        1 => return eligible(&eps[0]).then_some(0),
        _ => {}
    }
    let a = rng.random_range(0..n);
    let mut b = rng.random_range(0..n - 1);
    if b >= a {
        b += 1;
    }
    if eligible(&eps[a]) && eligible(&eps[b]) {
        return Some(cheaper(eps, a, b, now, tuning));
    }
    // Slow path (retries, ejections): choose among the eligible ones only.
    let ok: Vec<usize> = (0..n).filter(|&i| eligible(&eps[i])).collect();
    match ok.len() {
        0 => None,
        1 => Some(ok[0]),
        m => {
            let a = rng.random_range(0..m);
            let mut b = rng.random_range(0..m - 1);
            if b >= a {
                b += 1;
            }
            Some(cheaper(eps, ok[a], ok[b], now, tuning))
        }
    }
}

/// The cheaper of two pods by [`Endpoint::cost`].
fn cheaper(eps: &[Arc<Endpoint>], a: usize, b: usize, now: Instant, tuning: &LoadTuning) -> usize {
    if eps[a].cost(now, tuning) <= eps[b].cost(now, tuning) {
        a
    } else {
        b
    }
}

/// Fewest requests in flight; ties broken from a random starting point.
pub fn least_inflight<R: Rng>(
    eps: &[Arc<Endpoint>],
    eligible: impl Fn(&Endpoint) -> bool,
    rng: &mut R,
) -> Option<usize> {
    let n = eps.len();
    if n == 0 {
        return None;
    }
    let start = rng.random_range(0..n);
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| eligible(&eps[i]))
        .min_by_key(|&i| eps[i].in_flight())
}

/// Plain rotation, skipping ineligible pods.
pub fn round_robin(
    eps: &[Arc<Endpoint>],
    eligible: impl Fn(&Endpoint) -> bool,
    counter: &AtomicUsize,
) -> Option<usize> {
    let n = eps.len();
    if n == 0 {
        return None;
    }
    let start = counter.fetch_add(1, Ordering::Relaxed);
    (0..n).map(|k| (start + k) % n).find(|&i| eligible(&eps[i]))
}

/// Ketama ring over an endpoint set, for sticky routing by key.
pub struct HashRing {
    continuum: Continuum,
    index: HashMap<SocketAddr, usize>,
}

impl HashRing {
    pub fn new(eps: &[Arc<Endpoint>]) -> Self {
        let buckets: Vec<Bucket> = eps.iter().map(|e| Bucket::new(e.addr, 1)).collect();
        HashRing {
            continuum: Continuum::new(&buckets),
            index: eps.iter().enumerate().map(|(i, e)| (e.addr, i)).collect(),
        }
    }

    /// The key's home pod, or the next eligible one around the ring (keeps most keys in place
    /// when a pod is excluded).
    pub fn pick(&self, key: &[u8], eps: &[Arc<Endpoint>], eligible: impl Fn(&Endpoint) -> bool) -> Option<usize> {
        self.continuum
            .node_iter(key)
            .take(eps.len().saturating_mul(160).max(1))
            .filter_map(|a| self.index.get(a).copied())
            .find(|&i| eps.get(i).is_some_and(|e| eligible(e)))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
