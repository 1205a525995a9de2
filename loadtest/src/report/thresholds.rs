//! Threshold evaluation against a finished run.

use serde::Serialize;

use crate::engine::{fmt_us, RunResult};
use crate::scenario::{LatencyStat, Metric, Threshold};

/// Outcome of one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    /// As written in the scenario.
    pub text: String,
    /// Measured value in the threshold's normalised unit (µs, fraction, requests/s).
    pub actual: f64,
    pub limit: f64,
    /// The measured value for humans (`3.1ms`, `0.02%`, `998.1`).
    pub actual_text: String,
    pub pass: bool,
}

/// Measured value of a metric in normalised units.
pub fn measure(metric: &Metric, run: &RunResult) -> f64 {
    match metric {
        Metric::Latency(stat) => {
            let h = &run.latency;
            if h.is_empty() {
                return 0.0;
            }
            match stat {
                LatencyStat::Quantile(q) => h.value_at_quantile(*q) as f64,
                LatencyStat::Max => h.max() as f64,
                LatencyStat::Mean => h.mean(),
            }
        }
        Metric::Errors => run.error_rate(),
        Metric::Rps => run.rps(),
        Metric::FaasShare => run.backend_share("faas="),
        Metric::Share(prefix) => run.backend_share(prefix),
    }
}

/// Formats a normalised value of `metric` for humans.
pub fn human(metric: &Metric, v: f64) -> String {
    match metric {
        Metric::Latency(_) => fmt_us(v.round() as u64),
        Metric::Errors | Metric::FaasShare | Metric::Share(_) => format!("{:.3}%", v * 100.0),
        Metric::Rps => format!("{v:.1}"),
    }
}

/// Evaluates every threshold.
pub fn evaluate(thresholds: &[Threshold], run: &RunResult) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let actual = measure(&t.metric, run);
            ThresholdResult {
                text: t.text.clone(),
                actual,
                limit: t.value,
                actual_text: human(&t.metric, actual),
                pass: t.op.holds(actual, t.value),
            }
        })
        .collect()
}
