//! Passive outlier ejection: a pod that fails several times in a row is taken out of rotation
//! for an exponentially growing time, then let back in half-open — its first failure after
//! coming back ejects it again at once, its first success starts to forgive it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::OutlierSpec;

#[derive(Debug, Default)]
struct State {
    ejected_until: Option<Instant>,
    /// Ejections so far; the next one lasts `base × 2^ejections`.
    ejections: u32,
    /// Back from an ejection and not yet proven healthy.
    probing: bool,
}

/// Health of one pod as seen from its answers.
#[derive(Debug, Default)]
pub struct Health {
    consecutive: AtomicU32,
    /// Fast flag read on every pick; the mutex is only taken while it is set.
    ejected: AtomicBool,
    /// Set once the pod was ever ejected, so successes of healthy pods stay lock-free.
    has_history: AtomicBool,
    state: Mutex<State>,
}

/// What `/clusters` shows about a pod's health.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub ejected: bool,
    pub ejected_for_s: Option<f64>,
    pub ejections: u32,
    pub consecutive_failures: u32,
    pub probing: bool,
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May the pod take a request now? Lifts an expired ejection (half-open).
    pub fn is_available(&self, now: Instant) -> bool {
        if !self.ejected.load(Ordering::Relaxed) {
            return true;
        }
        let mut s = self.state();
        match s.ejected_until {
            Some(until) if now < until => false,
            _ => {
                s.ejected_until = None;
                s.probing = true;
                self.ejected.store(false, Ordering::Relaxed);
                true
            }
        }
    }

    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    pub fn record_success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if self.has_history.load(Ordering::Relaxed) {
            let mut s = self.state();
            if s.probing {
                s.probing = false;
                s.ejections = s.ejections.saturating_sub(1);
            }
        }
    }

    /// Counts a failure; ejects when the policy says so and `may_eject` (the cluster-wide cap)
    /// allows it. Returns the ejection time when the pod was ejected by this failure.
    pub fn record_failure(
        &self,
        now: Instant,
        spec: &OutlierSpec,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Duration> {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if spec.consecutive_failures == 0 || self.ejected.load(Ordering::Relaxed) {
            return None;
        }
        let mut s = self.state();
        let due = s.probing || n >= spec.consecutive_failures;
        if !due || !may_eject() {
            return None;
        }
        let factor = 1u32.checked_shl(s.ejections.min(16)).unwrap_or(u32::MAX);
        let time = spec.base_ejection.saturating_mul(factor).min(spec.max_ejection);
        s.ejected_until = Some(now + time);
        s.ejections = s.ejections.saturating_add(1);
        s.probing = false;
        self.consecutive.store(0, Ordering::Relaxed);
        self.has_history.store(true, Ordering::Relaxed);
        self.ejected.store(true, Ordering::Relaxed);
        Some(time)
    }

    pub fn view(&self, now: Instant) -> HealthView {
        let s = self.state();
        let left = s.ejected_until.filter(|u| *u > now).map(|u| (u - now).as_secs_f64());
        HealthView {
            ejected: left.is_some(),
            ejected_for_s: left,
            ejections: s.ejections,
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            probing: s.probing,
        }
    }
}

/// How many pods of `total` may be ejected at once under `max_percent` (never all of them).
pub fn ejection_cap(total: usize, max_percent: u32) -> usize {
    let cap = total * max_percent.min(100) as usize / 100;
    cap.min(total.saturating_sub(1))
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
