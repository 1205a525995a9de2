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

pub use endpoint::{Endpoint, InFlight, LoadView, Origin};

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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::time::Duration;

    fn set(n: u8) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| {
                Endpoint::new(
                    SocketAddr::from(([127, 0, 0, 10 + i], 9100)),
                    Origin::Static,
                    &LoadTuning::default(),
                )
            })
            .collect()
    }

    /// Simulates a closed-loop client against pods with fixed latencies (virtual time).
    async fn share_of_slow_pod(lb: &str) -> f64 {
        let t = LoadTuning::default();
        let eps = set(4);
        let mut rng = SmallRng::seed_from_u64(7);
        let rr = AtomicUsize::new(0);
        let mut counts = [0u32; 4];
        for _ in 0..2000 {
            let i = match lb {
                "p2c" => p2c(&eps, |_| true, &mut rng, Instant::now(), &t),
                _ => round_robin(&eps, |_| true, &rr),
            }
            .unwrap();
            counts[i] += 1;
            let g = eps[i].start();
            let lat = if i == 3 { 150 } else { 5 };
            tokio::time::advance(Duration::from_millis(lat)).await;
            g.success(&t, None);
        }
        counts[3] as f64 / 2000.0
    }

    #[tokio::test(start_paused = true)]
    async fn p2c_avoids_slow_pod_round_robin_does_not() {
        let p = share_of_slow_pod("p2c").await;
        let r = share_of_slow_pod("rr").await;
        assert!(p < 0.10, "p2c gave the slow pod {p}");
        assert!((r - 0.25).abs() < 0.01, "round robin gave {r}");
    }

    #[tokio::test(start_paused = true)]
    async fn p2c_prefers_fewer_in_flight_and_respects_eligibility() {
        let t = LoadTuning::default();
        let eps = set(2);
        let mut rng = SmallRng::seed_from_u64(1);
        let _held: Vec<_> = (0..5).map(|_| eps[0].start()).collect();
        for _ in 0..20 {
            assert_eq!(p2c(&eps, |_| true, &mut rng, Instant::now(), &t), Some(1));
        }
        let excluded = eps[1].addr;
        assert_eq!(p2c(&eps, |e| e.addr != excluded, &mut rng, Instant::now(), &t), Some(0));
        assert_eq!(p2c(&eps, |_| false, &mut rng, Instant::now(), &t), None);
        assert_eq!(p2c(&[], |_| true, &mut rng, Instant::now(), &t), None);
    }

    #[test]
    fn least_inflight_and_round_robin() {
        let eps = set(3);
        let mut rng = SmallRng::seed_from_u64(3);
        let _a = eps[0].start();
        let _b = eps[2].start();
        assert_eq!(least_inflight(&eps, |_| true, &mut rng), Some(1));
        let rr = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6).map(|_| round_robin(&eps, |_| true, &rr).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        let skip = eps[1].addr;
        let picks: Vec<_> = (0..3)
            .map(|_| round_robin(&eps, |e| e.addr != skip, &rr).unwrap())
            .collect();
        assert!(!picks.contains(&1));
    }

    #[test]
    fn hash_ring_is_sticky_and_fails_over() {
        let eps = set(4);
        let ring = HashRing::new(&eps);
        let home = ring.pick(b"user-42", &eps, |_| true).unwrap();
        for _ in 0..10 {
            assert_eq!(ring.pick(b"user-42", &eps, |_| true), Some(home));
        }
        let gone = eps[home].addr;
        let next = ring.pick(b"user-42", &eps, |e| e.addr != gone).unwrap();
        assert_ne!(next, home);
        // keys spread over pods
        let mut seen = std::collections::HashSet::new();
        for k in 0..200 {
            seen.insert(ring.pick(format!("k{k}").as_bytes(), &eps, |_| true).unwrap());
        }
        assert_eq!(seen.len(), 4);
    }
}
