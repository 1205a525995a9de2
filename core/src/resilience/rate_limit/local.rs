//! The in-process limiter: GCRA per key in a bounded table that a flood of new keys cannot
//! turn against known clients.
//!
//! - A key in the table keeps its own bucket whatever else arrives: a flood of new keys never
//!   pushes a known client into a shared bucket, nor resets its bucket.
//! - Only buckets that are full again are forgotten ([`LocalLimiter::sweep`]): the key was
//!   idle long enough to regain its whole burst, so a new bucket starts no fuller and nothing
//!   is lost. A bucket still refilling is never evicted — else flooding keys would turn a
//!   limited client into a fresh one.
//! - While fewer than half of `max_keys` are tracked, a new key starts with its whole burst.
//!   Past that mark (a table filling up is what a key flood looks like) a new key starts with
//!   one request and earns the rest at the rate: a flood gains one request per new key, not a
//!   burst per key, and known clients are not affected.
//! - At `max_keys`, new keys share one overflow bucket (the limit's rate and burst) until a
//!   sweep frees room: memory stays bounded and the flood as a whole gets one budget.
//!
//! Time is tokio's clock (paused in tests), in nanoseconds since the limiter was made.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::time::Instant;

use super::{Decision, KeyHash};

/// GCRA parameters: one request per `interval`; a request conforms while the theoretical
/// arrival time it leaves is at most `tolerance` (= `burst` intervals) ahead of now.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: u64,
    tolerance: u64,
}

impl Gcra {
    fn new(per_second: f64, burst: u32) -> Self {
        // At most 1000 s per request (rates below 0.001/s), at least 1 ns (above 1e9/s the
        // interval would round to nothing: 1 ns is as unlimited).
        let per_second = per_second.max(0.001);
        let interval = (1e9 / per_second).round().clamp(1.0, 1e12) as u64;
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
        }
    }

    /// Takes one request from the bucket whose theoretical arrival time is `tat`.
    fn take(&self, tat: &AtomicU64, now: u64) -> Decision {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let next = current.max(now).saturating_add(self.interval);
            let ahead = next - now;
            if ahead > self.tolerance {
                return Decision::Deny {
                    retry_after: Duration::from_nanos(ahead - self.tolerance),
                };
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let remaining = (self.tolerance - ahead) / self.interval;
                    return Decision::Allow {
                        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                    };
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Theoretical arrival time of a new bucket: full, or holding a single request.
    fn fresh(&self, now: u64, full: bool) -> u64 {
        if full {
            now
        } else {
            now + (self.tolerance - self.interval)
        }
    }
}

/// In-process GCRA limiter with a bounded key set.
pub struct LocalLimiter {
    gcra: Gcra,
    origin: Instant,
    keys: DashMap<KeyHash, AtomicU64>,
    /// Entries of `keys` (kept apart: `DashMap::len` visits every shard).
    tracked: AtomicUsize,
    /// The one bucket of new keys while the table is full.
    overflow: AtomicU64,
    max_keys: usize,
}

impl LocalLimiter {
    pub fn new(per_second: f64, burst: u32, max_keys: usize) -> Self {
        LocalLimiter {
            gcra: Gcra::new(per_second, burst),
            origin: Instant::now(),
            keys: DashMap::new(),
            tracked: AtomicUsize::new(0),
            overflow: AtomicU64::new(0),
            max_keys: max_keys.max(1),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(Instant::now().saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn check(&self, key: KeyHash) -> Decision {
        let now = self.now();
        if let Some(tat) = self.keys.get(&key) {
            return self.gcra.take(&tat, now);
        }
        self.check_new(key, now)
    }

    /// A key not in the table: its own bucket while there is room, else the overflow bucket.
    fn check_new(&self, key: KeyHash, now: u64) -> Decision {
        let tracked = self.tracked.load(Ordering::Relaxed);
        if tracked >= self.max_keys {
            return self.gcra.take(&self.overflow, now);
        }
        let full = tracked < self.max_keys / 2;
        match self.keys.entry(key) {
            // Another thread added it meanwhile.
            Entry::Occupied(e) => self.gcra.take(e.get(), now),
            Entry::Vacant(v) => {
                if self.tracked.fetch_add(1, Ordering::Relaxed) >= self.max_keys {
                    // Lost the race for the last slot.
                    self.tracked.fetch_sub(1, Ordering::Relaxed);
                    drop(v);
                    return self.gcra.take(&self.overflow, now);
                }
                let tat = v.insert(AtomicU64::new(self.gcra.fresh(now, full)));
                self.gcra.take(&tat, now)
            }
        }
    }

    /// Forgets keys whose bucket is full again (run periodically); never one still refilling.
    pub fn sweep(&self) {
        let now = self.now();
        let mut removed = 0;
        self.keys.retain(|_, tat| {
            let keep = tat.load(Ordering::Acquire) > now;
            removed += usize::from(!keep);
            keep
        });
        if removed > 0 {
            self.tracked.fetch_sub(removed, Ordering::Relaxed);
            self.keys.shrink_to_fit();
        }
    }

    /// Keys with a bucket of their own.
    pub fn keys(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}
