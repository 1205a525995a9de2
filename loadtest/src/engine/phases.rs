//! The measured traffic split in two phases: seconds while an `abuse:` attack ran, and the
//! baseline without one. A second counts as under attack when any attack's `[start, stop]`
//! overlaps it: the stop's own second too, when the attack's connections all close.

use hdrhistogram::Histogram;

use super::{Counts, Window};

/// The measured traffic of one phase.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    /// Seconds (windows) in the phase.
    pub seconds: u64,
    pub counts: Counts,
    /// Latency from intended send time, µs.
    pub latency: Histogram<u64>,
}

impl PhaseStats {
    /// Fraction of completed requests that were errors.
    pub fn error_rate(&self) -> f64 {
        if self.counts.requests == 0 {
            0.0
        } else {
            self.counts.errors as f64 / self.counts.requests as f64
        }
    }

    /// Latency at quantile `q`, `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(q))
    }
}

/// Without and with the attack.
#[derive(Debug, Clone)]
pub struct Phases {
    pub baseline: PhaseStats,
    pub attack: PhaseStats,
}

impl Phases {
    /// The attack phase's p99 over the baseline's (`None` when either has no requests).
    pub fn p99_ratio(&self) -> Option<f64> {
        let (b, a) = (self.baseline.quantile(0.99)?, self.attack.quantile(0.99)?);
        Some(a as f64 / b.max(1) as f64)
    }
}

/// Sorts windows into the phases as they complete.
pub(super) struct PhaseSplit {
    /// Attack spans in seconds from the start; empty: no phases.
    spans: Vec<(f64, f64)>,
    phases: Phases,
}

impl PhaseSplit {
    pub fn new(spans: Vec<(f64, f64)>, blank: &Histogram<u64>) -> Self {
        let empty = || PhaseStats {
            seconds: 0,
            counts: Counts::default(),
            latency: blank.clone(),
        };
        PhaseSplit {
            spans,
            phases: Phases {
                baseline: empty(),
                attack: empty(),
            },
        }
    }

    /// Whether second `t` overlaps an attack (or its teardown at the stop).
    fn under_attack(&self, t: u64) -> bool {
        let (from, to) = (t as f64, t as f64 + 1.0);
        self.spans.iter().any(|&(start, stop)| start < to && stop >= from)
    }

    fn phase(&mut self, t: u64) -> &mut PhaseStats {
        if self.under_attack(t) {
            &mut self.phases.attack
        } else {
            &mut self.phases.baseline
        }
    }

    /// Adds the latencies of second `t`.
    pub fn latencies(&mut self, t: u64, h: &Histogram<u64>) {
        if !self.spans.is_empty() {
            let _ = self.phase(t).latency.add(h);
        }
    }

    /// The phases once every window is known (`None` without attacks).
    pub fn finish(mut self, windows: &[Window]) -> Option<Phases> {
        if self.spans.is_empty() {
            return None;
        }
        for w in windows {
            let p = self.phase(w.t);
            p.seconds += 1;
            p.counts.add(&w.counts);
        }
        Some(self.phases)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::engine::stats::{histogram, WindowAcc};

    #[test]
    fn seconds_overlapping_an_attack_are_the_attack_phase() {
        let blank = histogram().unwrap();
        let mut split = PhaseSplit::new(vec![(2.5, 3.0)], &blank);
        let mut h = blank.clone();
        h.record(1000).unwrap();
        let mut slow = blank.clone();
        slow.record(9000).unwrap();
        for t in 0..6 {
            split.latencies(t, if (2..4).contains(&t) { &slow } else { &h });
        }
        let windows: Vec<Window> = (0..6).map(|t| Window::from_acc(&WindowAcc::new(t), 0.0)).collect();
        let p = split.finish(&windows).unwrap();
        assert_eq!((p.baseline.seconds, p.attack.seconds), (4, 2));
        assert!(p.attack.quantile(0.99).is_some_and(|v| (9000..9100).contains(&v)));
        assert!(p.p99_ratio().unwrap() > 8.0);
        assert!(PhaseSplit::new(Vec::new(), &blank).finish(&windows).is_none());
    }
}
