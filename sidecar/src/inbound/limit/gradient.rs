//! The gradient limit: Envoy's adaptive-concurrency gradient controller with Netflix
//! Gradient2's smoothing and "app limited" guard.
//!
//! Each interval with enough answers: `s` = the interval's latency percentile, `b` = the
//! lowest `s` over `baseline_window` (minRTT learned from live traffic — nothing is pinned, so
//! the sidecar never sheds to measure), `g = clamp(b·(1+buffer)/s, 0.5, 2)`, target
//! `L·g + √L`, and `L` moves `smoothing` of the way there. It does not grow while the app is
//! not using half of it. A timeout backs off at once. Stuck at `min` for five intervals, the
//! baseline is forgotten and re-learned (the app may have become slower for good).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::window::Snapshot;
use crate::config::GradientSpec;

/// Intervals at `min` after which the baseline is measured again.
const RESET_AFTER: u32 = 5;

pub struct Gradient {
    spec: GradientSpec,
    limit: f64,
    baseline: VecDeque<(Instant, Duration)>,
    last_sample: Option<Duration>,
    last_gradient: f64,
    at_min: u32,
}

/// What `/load` shows of the algorithm.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub limit: f64,
    pub baseline_ms: Option<f64>,
    pub sample_ms: Option<f64>,
    pub gradient: f64,
}

impl Gradient {
    pub fn new(spec: GradientSpec) -> Self {
        Gradient {
            limit: f64::from(spec.initial),
            spec,
            baseline: VecDeque::new(),
            last_sample: None,
            last_gradient: 1.0,
            at_min: 0,
        }
    }

    pub fn interval(&self) -> Duration {
        self.spec.interval
    }

    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    pub fn baseline(&self) -> Option<Duration> {
        self.baseline.iter().map(|(_, s)| *s).min()
    }

    pub fn view(&self) -> View {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        View {
            limit: self.limit,
            baseline_ms: self.baseline().map(ms),
            sample_ms: self.last_sample.map(ms),
            gradient: self.last_gradient,
        }
    }

    /// The end of an interval: `window` holds its latencies, `peak` its highest in-flight
    /// count. Returns the new limit when the interval had enough answers to judge.
    pub fn on_interval(&mut self, window: &Snapshot, peak: usize, now: Instant) -> Option<usize> {
        if window.count() < u64::from(self.spec.min_samples) {
            return None;
        }
        let sample = window.percentile(self.spec.percentile)?.max(Duration::from_micros(1));
        self.last_sample = Some(sample);
        self.baseline.push_back((now, sample));
        while let Some(&(t, _)) = self.baseline.front() {
            if now.saturating_duration_since(t) > self.spec.baseline_window {
                self.baseline.pop_front();
            } else {
                break;
            }
        }
        let base = self.baseline().unwrap_or(sample);
        let g = (base.as_secs_f64() * (1.0 + self.spec.buffer) / sample.as_secs_f64()).clamp(0.5, 2.0);
        self.last_gradient = g;
        let l = self.limit;
        let mut target = l * g + l.sqrt();
        if target > l && (peak as f64) < l / 2.0 {
            // Not using half the limit: latency says nothing about more.
            target = l;
        }
        let (min, max) = (f64::from(self.spec.min), f64::from(self.spec.max));
        self.limit = ((1.0 - self.spec.smoothing) * l + self.spec.smoothing * target).clamp(min, max);
        if self.limit() <= self.spec.min as usize {
            self.at_min += 1;
            if self.at_min >= RESET_AFTER {
                self.baseline.clear();
                self.at_min = 0;
            }
        } else {
            self.at_min = 0;
        }
        Some(self.limit())
    }

    /// A request cut at the timeout: back off now.
    pub fn on_timeout(&mut self) -> usize {
        self.limit = (self.limit * self.spec.backoff).max(f64::from(self.spec.min));
        self.limit()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::defaults::gradient as d;

    fn spec() -> GradientSpec {
        GradientSpec {
            initial: d::INITIAL,
            min: d::MIN,
            max: d::MAX,
            interval: d::INTERVAL,
            min_samples: d::MIN_SAMPLES,
            percentile: d::PERCENTILE,
            buffer: d::BUFFER,
            smoothing: d::SMOOTHING,
            baseline_window: d::BASELINE_WINDOW,
            backoff: d::BACKOFF,
        }
    }

    /// An app that serves `capacity` requests at once in `base`; beyond that they wait their
    /// turn, so latency grows with the concurrency it is given (Little's law).
    fn latency(capacity: f64, base: Duration, concurrency: f64) -> Duration {
        base.mul_f64((concurrency / capacity).max(1.0))
    }

    /// Runs `ticks` intervals where the app is offered as much as the limit allows.
    fn saturate(g: &mut Gradient, capacity: f64, base: Duration, ticks: u32) -> Vec<usize> {
        let start = Instant::now();
        (1..=ticks)
            .map(|i| {
                let l = g.limit();
                let s = latency(capacity, base, l as f64);
                let w = Snapshot::of(&vec![s; 50]);
                g.on_interval(&w, l, start + spec().interval * i).unwrap_or(l)
            })
            .collect()
    }

    #[test]
    fn grows_while_latency_holds_then_settles_near_capacity() {
        let mut g = Gradient::new(spec());
        let limits = saturate(&mut g, 100.0, Duration::from_millis(20), 300);
        // Latency stays at the baseline up to 100 in flight: the limit climbs past 16 ...
        assert!(limits[30] > 40, "{:?}", &limits[..40]);
        // ... and settles where latency is a little above the baseline (buffer + headroom),
        // neither collapsing nor running to max.
        let last = *limits.last().unwrap();
        assert!((100..=160).contains(&last), "settled at {last}");
        let tail = &limits[250..];
        assert!(
            tail.iter().max().unwrap() - tail.iter().min().unwrap() <= 20,
            "{tail:?}"
        );
    }

    #[test]
    fn a_slower_app_gets_a_lower_limit() {
        let mut g = Gradient::new(spec());
        saturate(&mut g, 100.0, Duration::from_millis(20), 200);
        let before = g.limit();
        // The app's capacity halves (a noisy neighbour): latency at the same limit doubles.
        let after = *saturate(&mut g, 50.0, Duration::from_millis(20), 200).last().unwrap();
        assert!(after < before * 3 / 4, "{before} → {after}");
        assert!(after >= 50, "{after}");
    }

    #[test]
    fn no_growth_while_the_app_is_not_using_half() {
        let mut g = Gradient::new(spec());
        let w = Snapshot::of(&[Duration::from_millis(5); 50]);
        let now = Instant::now();
        for i in 1..50 {
            g.on_interval(&w, 3, now + Duration::from_millis(100) * i);
        }
        assert_eq!(g.limit(), 16);
    }

    #[test]
    fn too_few_answers_change_nothing_and_timeouts_back_off() {
        let mut g = Gradient::new(spec());
        let w = Snapshot::of(&[Duration::from_millis(5); 3]);
        assert_eq!(g.on_interval(&w, 16, Instant::now()), None);
        assert_eq!(g.on_timeout(), 14); // 16 × 0.9
        for _ in 0..100 {
            g.on_timeout();
        }
        assert_eq!(g.limit(), 2);
    }

    #[test]
    fn stuck_at_min_relearns_the_baseline() {
        let mut g = Gradient::new(GradientSpec { initial: 2, ..spec() });
        let now = Instant::now();
        let fast = Snapshot::of(&[Duration::from_millis(1); 50]);
        g.on_interval(&fast, 2, now);
        assert!(g.baseline().unwrap() < Duration::from_millis(2));
        let slow = Snapshot::of(&[Duration::from_millis(50); 50]);
        let mut t = now;
        for _ in 0..5 {
            t += Duration::from_millis(100);
            g.on_interval(&slow, 2, t);
        }
        // After five intervals at min the 1 ms baseline is gone; the next one is the new level.
        t += Duration::from_millis(100);
        g.on_interval(&slow, 2, t);
        let b = g.baseline().unwrap();
        assert!(b >= Duration::from_millis(45), "{b:?}");
    }
}
