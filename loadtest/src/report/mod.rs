//! Reports of a finished run: terminal summary, JSON (everything) and a self-contained HTML
//! page with inline SVG charts; threshold verdicts and the process exit code. With `abuse:`
//! every report puts the measured traffic without and with the attack side by side; with a
//! grey release, the share per version, the polled weight and how users moved.

pub mod abuse;
mod html;
pub mod release;
mod summary;
pub mod svg;
pub mod thresholds;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::{Marker, Quantiles, RunResult, Totals, TraceCounts, Validity, Window, MAX_LAG_P99};
use crate::scenario::{HttpSettings, Mode, Scenario, Stage};
pub use abuse::{AbuseReport, PhaseReport};
pub use release::{ReleaseReport, UserReport, VersionShare};
pub use thresholds::ThresholdResult;

/// Exit code: every threshold passed on a valid run.
pub const EXIT_PASS: u8 = 0;
/// Exit code: a threshold failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: invalid run or bad input.
pub const EXIT_INVALID: u8 = 2;

/// Traffic of one backend (`x-arena-backend`).
#[derive(Debug, Clone, Serialize)]
pub struct BackendShare {
    pub backend: String,
    pub responses: u64,
    /// Fraction of all responses.
    pub share: f64,
}

/// Everything known about a run, as written to JSON and rendered to HTML.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: u32,
    /// `arena-loadtest VERSION`.
    pub generator: String,
    pub name: String,
    pub description: Option<String>,
    pub scenario_file: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub target: String,
    pub mode: Mode,
    pub http: HttpSettings,
    pub stages: Vec<Stage>,
    pub threads: usize,
    pub seed: u64,
    pub duration_s: f64,
    pub elapsed_s: f64,
    pub intended_total: u64,
    pub intended_rps: f64,
    pub achieved_rps: f64,
    pub totals: Totals,
    pub error_rate: f64,
    pub latency_us: Quantiles,
    pub schedule_lag_us: Quantiles,
    /// Fraction of requests queued more than 10 ms after their intended time.
    pub lag_over_10ms: f64,
    pub validity: Validity,
    pub statuses: BTreeMap<String, u64>,
    pub backends: Vec<BackendShare>,
    /// Responses per `x-arena-release` value (the version that answered).
    pub versions: Vec<VersionShare>,
    pub routes: BTreeMap<String, u64>,
    pub attempts: BTreeMap<String, u64>,
    pub requests_by_name: BTreeMap<String, u64>,
    pub markers: Vec<Marker>,
    pub thresholds: Vec<ThresholdResult>,
    pub error_samples: Vec<String>,
    /// Without vs with the attack, and the abusive connections' counts (only with `abuse:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abuse: Option<AbuseReport>,
    /// The followed release: weight and state over time, the rollback (only with `release:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseReport>,
    /// How users moved between the versions (only with `release.users`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<UserReport>,
    /// Client spans exported and dropped (only with `tracing:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces: Option<TraceCounts>,
    pub windows: Vec<Window>,
}

impl Report {
    pub fn new<F, T>(scenario: &Scenario<F, T>, run: &RunResult) -> Report {
        let duration_s = run.duration.as_secs_f64();
        Report {
            format: 1,
            generator: format!("arena-loadtest {}", env!("CARGO_PKG_VERSION")),
            name: run.name.clone(),
            description: scenario.description.clone(),
            scenario_file: scenario.origin.clone(),
            started_at: rfc3339(run.started_at),
            target: run.target.clone(),
            mode: run.mode,
            http: run.http.clone(),
            stages: run.stages.clone(),
            threads: run.threads,
            seed: run.seed,
            duration_s,
            elapsed_s: run.elapsed.as_secs_f64(),
            intended_total: run.intended_total,
            intended_rps: if duration_s > 0.0 {
                run.intended_total as f64 / duration_s
            } else {
                0.0
            },
            achieved_rps: run.rps(),
            totals: run.totals,
            error_rate: run.error_rate(),
            latency_us: Quantiles::of(&run.latency),
            schedule_lag_us: Quantiles::of(&run.lag),
            lag_over_10ms: late_share(&run.lag),
            validity: run.validity.clone(),
            statuses: run.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            backends: backend_shares(run),
            versions: release::version_shares(run),
            routes: run.routes.clone(),
            attempts: run.attempts.clone(),
            requests_by_name: run.requests_by_name.clone(),
            markers: run.markers.clone(),
            thresholds: thresholds::evaluate(&scenario.thresholds, run),
            error_samples: run.error_samples.clone(),
            abuse: AbuseReport::new(run),
            release: ReleaseReport::new(run),
            users: release::users(scenario.release.as_ref(), run),
            traces: run.traces,
            windows: run.windows.clone(),
        }
    }

    /// Whether every threshold passed.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.pass)
    }

    /// 0 when valid and all thresholds pass, 1 when a threshold fails, 2 when invalid.
    pub fn exit_code(&self) -> u8 {
        if !self.validity.valid {
            EXIT_INVALID
        } else if !self.passed() {
            EXIT_FAIL
        } else {
            EXIT_PASS
        }
    }

    /// File stem `<name>-<UTC timestamp>`.
    pub fn stem(&self) -> String {
        let compact: String = self.started_at.chars().filter(|c| *c != '-' && *c != ':').collect();
        format!("{}-{}", self.name, compact)
    }

    /// Writes `<dir>/<stem>.json` and `<dir>/<stem>.html`; returns their paths.
    pub fn write(&self, dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json_path = dir.join(format!("{}.json", self.stem()));
        let html_path = dir.join(format!("{}.html", self.stem()));
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&json_path, json)?;
        std::fs::write(&html_path, self.html())?;
        Ok((json_path, html_path))
    }

    /// The self-contained HTML report.
    pub fn html(&self) -> String {
        html::render(self)
    }

    /// The terminal summary.
    pub fn summary(&self) -> String {
        summary::render(self)
    }
}

/// Responses per backend, busiest first (ties by name).
fn backend_shares(run: &RunResult) -> Vec<BackendShare> {
    let responses: u64 = run.statuses.values().sum();
    let mut backends: Vec<BackendShare> = run
        .backends
        .iter()
        .map(|(k, v)| BackendShare {
            backend: k.clone(),
            responses: *v,
            share: if responses > 0 {
                *v as f64 / responses as f64
            } else {
                0.0
            },
        })
        .collect();
    backends.sort_by(|a, b| b.responses.cmp(&a.responses).then(a.backend.cmp(&b.backend)));
    backends
}

/// Fraction of requests queued more than [`MAX_LAG_P99`] after their intended time.
fn late_share(lag: &Histogram<u64>) -> f64 {
    let lag_total = lag.len();
    if lag_total == 0 {
        return 0.0;
    }
    let limit = MAX_LAG_P99.as_micros() as u64;
    let late: u64 = lag
        .iter_recorded()
        .filter(|v| v.value_iterated_to() > limit)
        .map(|v| v.count_at_value())
        .sum();
    late as f64 / lag_total as f64
}

/// Seconds since the Unix epoch → `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn timestamps_are_utc_civil() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_306_644);
        assert_eq!(rfc3339(t), "2026-11-22T00:17:24Z");
    }
}
