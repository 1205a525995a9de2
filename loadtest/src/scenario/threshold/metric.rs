//! What a threshold can measure: metric names, and values normalised to each metric's unit.

use arena_core::release::Phase as ReleasePhase;
use serde::Serialize;

/// Which latency statistic a threshold reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyStat {
    /// Quantile in `0..=1` (0.99 for `p99`).
    Quantile(f64),
    Max,
    Mean,
}

/// The part of the run a phase metric reads: seconds with or without an `abuse:` attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Baseline,
    Attack,
}

/// A statistic of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStat {
    Latency(LatencyStat),
    Errors,
}

/// A counter of the abusive connections, summed over every `abuse:` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbuseCount {
    Opened,
    /// Closed by the target (after an answer, or later than right after the connect).
    Closed,
    /// Refused at connect or closed unanswered right after it.
    Refused,
    /// Answered with this status.
    Answered(u16),
    /// Most held open at once.
    Held,
}

/// Which way users moved between the versions of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserMove {
    /// Canary → stable (`users_moved_back`).
    ToStable,
    /// Stable → canary (`users_moved_forward`).
    ToCanary,
}

/// What a threshold measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Latency(LatencyStat),
    /// Fraction of requests that were errors.
    Errors,
    /// Completed requests per second of load.
    Rps,
    /// Fraction of responses whose `x-arena-backend` starts with `faas=`.
    FaasShare,
    /// Fraction of responses whose `x-arena-backend` starts with the prefix.
    Share(String),
    /// `attack_p99`, `baseline_errors`...: the measured traffic of one phase.
    Phase(Phase, PhaseStat),
    /// The attack phase's p99 over the baseline's.
    P99Ratio,
    Abuse(AbuseCount),
    /// From the fault before the canary's weight first dropped to 0 to that drop.
    RollbackAfter,
    /// Distinct users who ever moved between the versions that way.
    UsersMoved(UserMove),
    /// Fraction of the responses carrying `x-arena-release` that this version answered.
    ShareVersion(String),
    /// The release's weight at the last poll, as a fraction.
    FinalWeight,
    /// The release's state at the last poll ([`state_code`]).
    FinalState,
}

impl Metric {
    /// Whether the metric reads an `abuse:` attack (and so needs one).
    pub fn needs_attack(&self) -> bool {
        matches!(self, Metric::Phase(..) | Metric::P99Ratio | Metric::Abuse(_))
    }

    /// Whether the metric reads the polled `release:`.
    pub fn needs_release(&self) -> bool {
        matches!(
            self,
            Metric::RollbackAfter | Metric::UsersMoved(_) | Metric::FinalWeight | Metric::FinalState
        )
    }

    /// Whether the metric reads the per-user tracking (`release.users`).
    pub fn needs_users(&self) -> bool {
        matches!(self, Metric::UsersMoved(_))
    }

    /// Whether the metric reads seconds without an attack.
    pub fn needs_baseline(&self) -> bool {
        matches!(self, Metric::Phase(Phase::Baseline, _) | Metric::P99Ratio)
    }
}

/// Metric names offered in hints (phase metrics take any latency metric or `errors` after
/// `attack_` / `baseline_`).
pub(super) const METRICS: &[&str] = &[
    "p50",
    "p90",
    "p95",
    "p99",
    "p999",
    "max",
    "mean",
    "errors",
    "rps",
    "faas_share",
    "share",
    "attack_p99",
    "baseline_p99",
    "attack_errors",
    "baseline_errors",
    "p99_ratio",
    "abuse_opened",
    "abuse_closed",
    "abuse_refused",
    "abuse_408",
    "abuse_431",
    "abuse_held",
    "rollback_after",
    "users_moved_back",
    "users_moved_forward",
    "share_version",
    "final_weight",
    "final_state",
];

/// A release state as the number a threshold compares (`final_state == promoted`).
pub fn state_code(p: ReleasePhase) -> f64 {
    match p {
        ReleasePhase::Progressing => 0.0,
        ReleasePhase::Paused => 1.0,
        ReleasePhase::Promoted => 2.0,
        ReleasePhase::RolledBack => 3.0,
    }
}

/// The state of a [`state_code`].
pub fn state_of_code(code: f64) -> Option<ReleasePhase> {
    [
        ReleasePhase::Progressing,
        ReleasePhase::Paused,
        ReleasePhase::Promoted,
        ReleasePhase::RolledBack,
    ]
    .into_iter()
    .find(|p| state_code(*p) == code)
}

/// The state named `word` (`promoted`, `rolled_back`...).
pub(super) fn state_by_name(word: &str) -> Option<ReleasePhase> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

pub(super) fn metric_by_name(name: &str) -> Option<Metric> {
    if let Some(m) = plain(name) {
        return Some(m);
    }
    for (prefix, phase) in [("attack_", Phase::Attack), ("baseline_", Phase::Baseline)] {
        match name.strip_prefix(prefix).and_then(plain) {
            Some(Metric::Latency(stat)) => return Some(Metric::Phase(phase, PhaseStat::Latency(stat))),
            Some(Metric::Errors) => return Some(Metric::Phase(phase, PhaseStat::Errors)),
            _ => {}
        }
    }
    Some(Metric::Abuse(match name {
        "p99_ratio" => return Some(Metric::P99Ratio),
        "abuse_opened" => AbuseCount::Opened,
        "abuse_closed" => AbuseCount::Closed,
        "abuse_refused" => AbuseCount::Refused,
        "abuse_held" => AbuseCount::Held,
        other => {
            let code: u16 = other.strip_prefix("abuse_")?.parse().ok()?;
            if !(100..=599).contains(&code) {
                return None;
            }
            AbuseCount::Answered(code)
        }
    }))
}

/// Metrics of the whole run.
fn plain(name: &str) -> Option<Metric> {
    Some(match name {
        "p50" => Metric::Latency(LatencyStat::Quantile(0.5)),
        "p90" => Metric::Latency(LatencyStat::Quantile(0.9)),
        "p95" => Metric::Latency(LatencyStat::Quantile(0.95)),
        "p99" => Metric::Latency(LatencyStat::Quantile(0.99)),
        "p999" | "p99.9" => Metric::Latency(LatencyStat::Quantile(0.999)),
        "max" => Metric::Latency(LatencyStat::Max),
        "mean" => Metric::Latency(LatencyStat::Mean),
        "errors" => Metric::Errors,
        "rps" => Metric::Rps,
        "faas_share" => Metric::FaasShare,
        "rollback_after" => Metric::RollbackAfter,
        "users_moved_back" => Metric::UsersMoved(UserMove::ToStable),
        "users_moved_forward" => Metric::UsersMoved(UserMove::ToCanary),
        "final_weight" => Metric::FinalWeight,
        "final_state" => Metric::FinalState,
        _ => return None,
    })
}

/// `n` written with `unit`, in the metric's normalised unit; else a message and a hint.
pub(super) fn normalise(metric: &Metric, n: f64, unit: &str) -> Result<f64, (String, String)> {
    match metric {
        Metric::Latency(_) | Metric::Phase(_, PhaseStat::Latency(_)) | Metric::RollbackAfter => latency(n, unit),
        Metric::Errors
        | Metric::FaasShare
        | Metric::Share(_)
        | Metric::Phase(_, PhaseStat::Errors)
        | Metric::ShareVersion(_)
        | Metric::FinalWeight => fraction(n, unit),
        Metric::UsersMoved(_) => match unit {
            "" => Ok(n),
            other => Err((
                format!("unknown unit `{other}` for a count of users"),
                "write a plain number, e.g. `users_moved_back == 0`".into(),
            )),
        },
        Metric::FinalState => Err((
            "`final_state` compares with a state name".into(),
            "e.g. `final_state == promoted` (progressing, paused, promoted, rolled_back)".into(),
        )),
        Metric::Rps => match unit {
            "" | "rps" | "/s" => Ok(n),
            other => Err((
                format!("unknown unit `{other}` for rps"),
                "write a plain number, e.g. `rps > 900`".into(),
            )),
        },
        Metric::P99Ratio => match unit {
            "" | "x" | "×" => Ok(n),
            other => Err((
                format!("unknown unit `{other}` for a ratio"),
                "write a plain factor, e.g. `p99_ratio < 2` (or `2x`)".into(),
            )),
        },
        Metric::Abuse(_) => match unit {
            "" => Ok(n),
            other => Err((
                format!("unknown unit `{other}` for a count of connections"),
                "write a plain number, e.g. `abuse_408 > 0`".into(),
            )),
        },
    }
}

fn latency(n: f64, unit: &str) -> Result<f64, (String, String)> {
    match unit {
        "us" | "µs" => Ok(n),
        "ms" => Ok(n * 1e3),
        "s" => Ok(n * 1e6),
        "" => Err((
            "a latency threshold needs a unit".into(),
            "write e.g. `50ms`, `1.5s` or `800us`".into(),
        )),
        other => Err((format!("unknown duration unit `{other}`"), "units: us, ms, s".into())),
    }
}

fn fraction(n: f64, unit: &str) -> Result<f64, (String, String)> {
    match unit {
        "%" => Ok(n / 100.0),
        "" if n <= 1.0 => Ok(n),
        "" => Err((
            format!("a fraction must be between 0 and 1, found {n}"),
            format!("write a percentage as `{n}%`"),
        )),
        other => Err((
            format!("unknown unit `{other}` for a rate"),
            "write a percentage (`0.1%`) or a fraction (`0.001`)".into(),
        )),
    }
}
