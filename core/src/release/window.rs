//! One version's recent outcomes: requests, failures and a latency histogram over a sliding
//! window, recorded lock-free on the request path.
//!
//! The window is cut into [`SLICES`] time slices used round-robin; a slice knows which slice
//! of time (its epoch) it holds and the first sample of a newer epoch claims it (one
//! compare-and-swap) and clears it. Epochs only move forward, so a slice is never stuck: a
//! sample late enough that its slot already moved on is dropped, and one racing a clear may be
//! lost — a rare miscounted sample, never a panic. A snapshot merges the slices of the last
//! `window` (the current one partly filled, so it covers between 19/20 and all of it).
//!
//! Latencies go into log-linear buckets (HdrHistogram's layout): 1 µs wide below 64 µs, then
//! 32 per power of two, so a bucket's midpoint is within 1/64 (1.6 %) of any value in it;
//! values are clamped to [`MAX_LATENCY`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::time::Instant;

/// Time slices per window.
pub const SLICES: usize = 20;
/// Latencies above this count as this (a minute is far past any route timeout).
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

const MAX_US: u64 = 60_000_000;
/// Sub-buckets per power of two (2^5): the histogram's resolution.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Below this, one bucket per microsecond.
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = index(MAX_US) + 1;

/// The bucket of a latency in microseconds.
const fn index(us: u64) -> usize {
    let us = if us > MAX_US { MAX_US } else { us };
    if us < LINEAR {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    let mantissa = us >> shift;
    (LINEAR + (shift as u64 - 1) * SUB + (mantissa - SUB)) as usize
}

/// The value (µs) a bucket stands for: its midpoint.
fn value(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < LINEAR {
        return idx;
    }
    let shift = (idx - LINEAR) / SUB + 1;
    let mantissa = (idx - LINEAR) % SUB + SUB;
    (mantissa << shift) + (1 << shift) / 2
}

struct Slice {
    /// Which slice of time (counted from the window's origin) this holds, plus one; 0 = never
    /// used.
    epoch: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    latency: Box<[AtomicU32]>,
}

impl Slice {
    fn new() -> Self {
        Slice {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn clear(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        for b in self.latency.iter() {
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// What a window held at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowStats {
    pub requests: u64,
    /// 5xx answers and requests that got no answer.
    pub failures: u64,
    /// `failures / requests`, 0 without requests.
    pub error_rate: f64,
    #[serde(rename = "p50_ms", serialize_with = "millis")]
    pub p50: Duration,
    #[serde(rename = "p99_ms", serialize_with = "millis")]
    pub p99: Duration,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The sliding window of one version.
pub struct VersionWindow {
    origin: Instant,
    slice_ns: u64,
    slices: Box<[Slice]>,
}

impl std::fmt::Debug for VersionWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionWindow")
            .field("slice", &Duration::from_nanos(self.slice_ns))
            .finish_non_exhaustive()
    }
}

impl VersionWindow {
    /// A window of `window` (zero is taken as 1 ms), counted from `origin`.
    pub fn new(window: Duration, origin: Instant) -> Self {
        let ns = window.as_nanos().max(1_000_000) / SLICES as u128;
        VersionWindow {
            origin,
            slice_ns: u64::try_from(ns).unwrap_or(u64::MAX).max(1),
            slices: (0..SLICES).map(|_| Slice::new()).collect(),
        }
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.slice_ns.saturating_mul(SLICES as u64))
    }

    fn epoch_of(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.origin).as_nanos() / u128::from(self.slice_ns);
        u64::try_from(ns).unwrap_or(u64::MAX - 1)
    }

    /// Counts one request that took `latency`; `failed`: a 5xx or no answer at all.
    pub fn record(&self, now: Instant, latency: Duration, failed: bool) {
        let epoch = self.epoch_of(now);
        let want = epoch.saturating_add(1);
        let slice = &self.slices[(epoch % SLICES as u64) as usize];
        let held = slice.epoch.load(Ordering::Acquire);
        if held != want {
            if held > want {
                return; // late: this slot already holds newer time
            }
            match slice
                .epoch
                .compare_exchange(held, want, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => slice.clear(),
                // Another request claimed it for this epoch first: count here (its clear may
                // still erase this sample, the rare miscount the module allows).
                Err(now_held) if now_held == want => {}
                Err(_) => return,
            }
        }
        slice.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            slice.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slice.latency[index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The merged live slices at `now`.
    pub fn snapshot(&self, now: Instant) -> WindowStats {
        let current = self.epoch_of(now).saturating_add(1);
        let mut requests = 0u64;
        let mut failures = 0u64;
        let mut hist = vec![0u64; BUCKETS];
        for s in self.slices.iter() {
            let e = s.epoch.load(Ordering::Acquire);
            let live = e != 0 && e <= current && e.saturating_add(SLICES as u64) > current;
            if !live {
                continue;
            }
            requests += s.requests.load(Ordering::Relaxed);
            failures += s.failures.load(Ordering::Relaxed);
            for (sum, b) in hist.iter_mut().zip(s.latency.iter()) {
                *sum += u64::from(b.load(Ordering::Relaxed));
            }
        }
        // Counters of a slice being cleared may be read half-way: keep the numbers coherent.
        let failures = failures.min(requests);
        WindowStats {
            requests,
            failures,
            error_rate: if requests == 0 {
                0.0
            } else {
                failures as f64 / requests as f64
            },
            p50: quantile(&hist, 0.50),
            p99: quantile(&hist, 0.99),
        }
    }
}

/// The `q` quantile of a merged histogram (zero when empty).
fn quantile(hist: &[u64], q: f64) -> Duration {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (idx, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Duration::from_micros(value(idx));
        }
    }
    MAX_LATENCY
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
