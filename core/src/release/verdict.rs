//! The verdict on a canary: its window against the stable version's, by the release's
//! `analysis` thresholds.
//!
//! - Nothing is judged before the canary has `min_requests` in the window (`insufficient`).
//! - Errors: a breach when the canary's failure rate exceeds the stable one's by more than
//!   `max_error_rate_delta`. While stable itself has fewer than `min_requests` its rate means
//!   little, so the baseline is 0: a canary failing a lot still breaches when stable is quiet
//!   (e.g. at 100 %), never hides behind a noisy stable rate of a handful of requests.
//! - Latency: compared only when both sides have `min_requests`; a breach when the canary's
//!   p99 is above `max_p99_ratio` × stable's *and* at least [`LATENCY_NOISE_FLOOR`] slower
//!   (a 0.2 ms → 0.4 ms "doubling" is noise, not a regression).
//! - Both checks are strict: exactly at a threshold is healthy. Errors are checked first.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::window::WindowStats;
use crate::config::AnalysisSpec;

/// Latency differences below this are never a breach.
pub const LATENCY_NOISE_FLOOR: Duration = Duration::from_millis(1);

/// Float slack of the threshold comparisons (rates such as 2/100 − 1/100 are not exact).
const EPSILON: f64 = 1e-9;

/// The numbers a verdict was given on, for the admin API and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub stable_requests: u64,
    pub canary_requests: u64,
    pub stable_error_rate: f64,
    pub canary_error_rate: f64,
    pub stable_p99_ms: f64,
    pub canary_p99_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachReason {
    ErrorRate,
    Latency,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The canary has fewer than `min_requests` in the window.
    Insufficient {
        #[serde(flatten)]
        observed: Observed,
        min_requests: u64,
    },
    Healthy {
        #[serde(flatten)]
        observed: Observed,
    },
    Breach {
        reason: BreachReason,
        /// The threshold crossed: the error-rate delta (share) or the p99 ratio.
        limit: f64,
        #[serde(flatten)]
        observed: Observed,
    },
}

impl Verdict {
    pub fn observed(&self) -> &Observed {
        match self {
            Verdict::Insufficient { observed, .. }
            | Verdict::Healthy { observed }
            | Verdict::Breach { observed, .. } => observed,
        }
    }

    pub fn is_breach(&self) -> bool {
        matches!(self, Verdict::Breach { .. })
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self, Verdict::Healthy { .. })
    }

    /// One line for logs and transition reasons.
    pub fn summary(&self) -> String {
        let o = self.observed();
        let pct = |r: f64| format!("{:.2}%", r * 100.0);
        match self {
            Verdict::Insufficient { min_requests, .. } => format!(
                "waiting for data: canary {} / stable {} requests in the window, {min_requests} needed",
                o.canary_requests, o.stable_requests
            ),
            Verdict::Healthy { .. } => format!(
                "healthy: canary {} errors, p99 {:.1} ms; stable {} errors, p99 {:.1} ms",
                pct(o.canary_error_rate),
                o.canary_p99_ms,
                pct(o.stable_error_rate),
                o.stable_p99_ms
            ),
            Verdict::Breach {
                reason: BreachReason::ErrorRate,
                limit,
                ..
            } => format!(
                "error rate breach: canary {} vs stable {} ({} requests vs {}), more than {} above",
                pct(o.canary_error_rate),
                pct(o.stable_error_rate),
                o.canary_requests,
                o.stable_requests,
                pct(*limit)
            ),
            Verdict::Breach {
                reason: BreachReason::Latency,
                limit,
                ..
            } => format!(
                "latency breach: canary p99 {:.1} ms vs stable {:.1} ms, more than {limit}×",
                o.canary_p99_ms, o.stable_p99_ms
            ),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Judges the canary's window against stable's; see the module docs.
pub fn judge(a: &AnalysisSpec, stable: &WindowStats, canary: &WindowStats) -> Verdict {
    let observed = Observed {
        stable_requests: stable.requests,
        canary_requests: canary.requests,
        stable_error_rate: stable.error_rate,
        canary_error_rate: canary.error_rate,
        stable_p99_ms: ms(stable.p99),
        canary_p99_ms: ms(canary.p99),
    };
    if canary.requests < a.min_requests {
        return Verdict::Insufficient {
            observed,
            min_requests: a.min_requests,
        };
    }
    let stable_known = stable.requests >= a.min_requests;
    let baseline = if stable_known { stable.error_rate } else { 0.0 };
    if canary.error_rate - baseline > a.max_error_rate_delta + EPSILON {
        return Verdict::Breach {
            reason: BreachReason::ErrorRate,
            limit: a.max_error_rate_delta,
            observed,
        };
    }
    let slower = canary.p99.saturating_sub(stable.p99);
    let ratio_exceeded = canary.p99.as_secs_f64() > a.max_p99_ratio * stable.p99.as_secs_f64() * (1.0 + EPSILON);
    if stable_known && slower >= LATENCY_NOISE_FLOOR && ratio_exceeded {
        return Verdict::Breach {
            reason: BreachReason::Latency,
            limit: a.max_p99_ratio,
            observed,
        };
    }
    Verdict::Healthy { observed }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
