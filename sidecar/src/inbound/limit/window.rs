//! Latencies of one limit interval: a lock-free log-linear histogram (8 steps per power of
//! two, so a percentile is within 12.5 %), emptied by the interval's end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Values below this many µs get a bucket each.
const LINEAR: u64 = 16;
const STEPS: u64 = 8;
/// Up to 2^42 µs (≈ 50 days), far past any request timeout.
const MAX_EXP: u64 = 42;
const BUCKETS: usize = (LINEAR + (MAX_EXP - 3) * STEPS) as usize;

pub struct Window {
    buckets: Box<[AtomicU32]>,
}

/// One interval's latencies, taken out of the [`Window`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    counts: Vec<u32>,
    total: u64,
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = u64::from(63 - us.leading_zeros()).min(MAX_EXP);
    let step = (us >> (exp - 3)) & (STEPS - 1);
    ((LINEAR + (exp - 4) * STEPS + step) as usize).min(BUCKETS - 1)
}

/// The middle of bucket `i`, in µs.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / STEPS + 4;
    let step = (i - LINEAR) % STEPS;
    let width = 1u64 << (exp - 3);
    (1u64 << exp) + step * width + width / 2
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    pub fn new() -> Self {
        Window {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get(index(us)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Empties the window and returns what it held.
    pub fn take(&self) -> Snapshot {
        let counts: Vec<u32> = self.buckets.iter().map(|b| b.swap(0, Ordering::Relaxed)).collect();
        let total = counts.iter().map(|&c| u64::from(c)).sum();
        Snapshot { counts, total }
    }
}

impl Snapshot {
    /// A snapshot of the given latencies (tests, and the algorithms' unit tests).
    pub fn of(samples: &[Duration]) -> Self {
        let w = Window::new();
        for s in samples {
            w.record(*s);
        }
        w.take()
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `p`th percentile (1..=99), `None` when empty.
    pub fn percentile(&self, p: u32) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * u64::from(p)).div_ceil(100).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Duration::from_micros(value(i)));
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn median_of_known_latencies() {
        let ms = |v: u64| Duration::from_millis(v);
        let s = Snapshot::of(&[ms(10), ms(10), ms(20), ms(30), ms(200)]);
        let p50 = s.percentile(50).unwrap();
        assert!(p50 >= ms(18) && p50 <= ms(22), "{p50:?}");
        assert_eq!(s.count(), 5);
        assert_eq!(Snapshot::default().percentile(50), None);
    }

    proptest! {
        /// Any latency lands in a bucket whose value is within 12.5 % of it.
        #[test]
        fn bucket_value_is_close(us in 0u64..(1 << 40)) {
            let v = value(index(us));
            let err = v.abs_diff(us) as f64;
            prop_assert!(err <= (us as f64) * 0.125 + 1.0, "{us} → {v}");
        }

        #[test]
        fn any_duration_is_recorded(ns in any::<u64>()) {
            let w = Window::new();
            w.record(Duration::from_nanos(ns));
            w.record(Duration::MAX);
            prop_assert_eq!(w.take().count(), 2);
        }
    }
}
