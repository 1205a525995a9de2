//! Open-loop arrival schedule: the intended send time of every request, from the stage rates.
//!
//! The rate is piecewise constant or linear, so the cumulative count N(t) is piecewise
//! quadratic and request `k` is due at N⁻¹(k), computed in closed form. Workers take every
//! W-th request, so the times interleave exactly as one generator would send them.

use std::time::Duration;

use crate::scenario::Stage;

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Start (seconds from run start) and length.
    t0: f64,
    dur: f64,
    /// Rate at the start and end (requests/s).
    r0: f64,
    r1: f64,
    /// Requests due before `t0`.
    n0: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.r0 + self.r1) * 0.5 * self.dur
    }

    fn count_within(&self, tau: f64) -> f64 {
        let tau = tau.clamp(0.0, self.dur);
        let slope = (self.r1 - self.r0) / self.dur;
        self.r0 * tau + slope * tau * tau * 0.5
    }

    /// Time into the segment at which `m` requests of it are due.
    fn time_within(&self, m: f64) -> f64 {
        let a = self.r0;
        let b = (self.r1 - self.r0) / self.dur;
        // τ = 2m / (a + √(a² + 2bm)): the stable root of a·τ + b·τ²/2 = m (also for a = 0).
        let disc = (a * a + 2.0 * b * m).max(0.0);
        let denom = a + disc.sqrt();
        if denom <= 0.0 {
            0.0
        } else {
            (2.0 * m / denom).min(self.dur)
        }
    }
}

/// Intended-time schedule of an open-loop run.
#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<Segment>,
    duration: f64,
    total: f64,
}

impl Schedule {
    /// Builds the schedule; stage durations are multiplied by `scale`. Stages without a rate
    /// (closed loop) count as rate 0.
    pub fn new(stages: &[Stage], scale: f64) -> Schedule {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut t, mut n, mut prev_rate) = (0.0, 0.0, 0.0);
        for st in stages {
            let dur = st.duration.as_secs_f64() * scale;
            let rate = st.rate.unwrap_or(0.0);
            let r0 = if st.ramp { prev_rate } else { rate };
            if dur > 0.0 {
                let seg = Segment {
                    t0: t,
                    dur,
                    r0,
                    r1: rate,
                    n0: n,
                };
                n += seg.count();
                t += dur;
                segments.push(seg);
            }
            prev_rate = rate;
        }
        Schedule {
            segments,
            duration: t,
            total: n,
        }
    }

    /// Total scheduled duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    /// Number of requests in the whole schedule.
    pub fn total(&self) -> u64 {
        // Request k exists when N(k) < total, i.e. k < ceil(total).
        self.total.ceil() as u64
    }

    /// Requests scheduled in `[0, t)` seconds (fractional: an expectation per window).
    pub fn count_by(&self, t: f64) -> f64 {
        let mut n = 0.0;
        for s in &self.segments {
            if t <= s.t0 {
                break;
            }
            n = s.n0 + s.count_within(t - s.t0);
        }
        n.min(self.total)
    }

    /// Rate (requests/s) at time `t`.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.t0 && t < s.t0 + s.dur)
            .map_or(0.0, |s| s.r0 + (s.r1 - s.r0) * (t - s.t0) / s.dur)
    }

    /// Intended time (seconds) of request `k`, or None past the end. `hint` caches the
    /// segment index for increasing `k` (pass 0 at first).
    pub fn time_of(&self, k: u64, hint: &mut usize) -> Option<f64> {
        let m = k as f64;
        if m >= self.total {
            return None;
        }
        if self.segments.get(*hint).is_none_or(|s| s.n0 > m) {
            *hint = 0;
        }
        while let Some(s) = self.segments.get(*hint) {
            if m < s.n0 + s.count() {
                return Some(s.t0 + s.time_within(m - s.n0));
            }
            *hint += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn stage(secs: u64, rate: f64, ramp: bool) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            rate: Some(rate),
            ramp,
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::new(&[stage(2, 500.0, false)], 1.0);
        assert_eq!(s.total(), 1000);
        let mut h = 0;
        assert_eq!(s.time_of(0, &mut h), Some(0.0));
        assert!((s.time_of(250, &mut h).unwrap() - 0.5).abs() < 1e-9);
        assert!(s.time_of(1000, &mut h).is_none());
    }

    #[test]
    fn ramp_is_linear_and_counts_match() {
        // 0 → 1000 over 10 s: 5000 requests; half the time holds a quarter of them.
        let s = Schedule::new(&[stage(10, 1000.0, true)], 1.0);
        assert_eq!(s.total(), 5000);
        let mut h = 0;
        assert!((s.time_of(1250, &mut h).unwrap() - 5.0).abs() < 1e-6);
        assert!((s.count_by(5.0) - 1250.0).abs() < 1e-6);
        assert!((s.rate_at(5.0) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn stages_chain_and_ramp_down() {
        let s = Schedule::new(
            &[stage(1, 100.0, false), stage(1, 300.0, true), stage(1, 0.0, true)],
            1.0,
        );
        // 100 + 200 + 150
        assert_eq!(s.total(), 450);
        let mut h = 0;
        let mut last = -1.0;
        for k in 0..450 {
            let t = s.time_of(k, &mut h).unwrap();
            assert!(t >= last, "times must not go back");
            last = t;
        }
        assert!(last < 3.0);
        let scaled = Schedule::new(&[stage(2, 100.0, false)], 0.5);
        assert_eq!(scaled.total(), 100);
    }
}
