//! Reports of a finished run: terminal summary, JSON (everything) and a self-contained HTML
//! page with inline SVG charts; threshold verdicts and the process exit code.

mod html;
pub mod svg;
pub mod thresholds;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::engine::{fmt_us, Marker, Quantiles, RunResult, Totals, Validity, Window, MAX_LAG_P99};
use crate::scenario::{HttpSettings, HttpVersion, Mode, Scenario, Stage};
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
    pub routes: BTreeMap<String, u64>,
    pub attempts: BTreeMap<String, u64>,
    pub requests_by_name: BTreeMap<String, u64>,
    pub markers: Vec<Marker>,
    pub thresholds: Vec<ThresholdResult>,
    pub error_samples: Vec<String>,
    pub windows: Vec<Window>,
}

impl Report {
    pub fn new<F, T>(scenario: &Scenario<F, T>, run: &RunResult) -> Report {
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
        let lag_total = run.lag.len();
        let lag_late = if lag_total > 0 {
            let limit = MAX_LAG_P99.as_micros() as u64;
            let late: u64 = run
                .lag
                .iter_recorded()
                .filter(|v| v.value_iterated_to() > limit)
                .map(|v| v.count_at_value())
                .sum();
            late as f64 / lag_total as f64
        } else {
            0.0
        };
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
            lag_over_10ms: lag_late,
            validity: run.validity.clone(),
            statuses: run.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            backends,
            routes: run.routes.clone(),
            attempts: run.attempts.clone(),
            requests_by_name: run.requests_by_name.clone(),
            markers: run.markers.clone(),
            thresholds: thresholds::evaluate(&scenario.thresholds, run),
            error_samples: run.error_samples.clone(),
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
        let mut s = String::new();
        let version = match self.http.version {
            HttpVersion::Http1 => "HTTP/1.1",
            HttpVersion::Http2 => "h2c",
        };
        let mode = match self.mode {
            Mode::Open => "open loop",
            Mode::Closed => "closed loop",
        };
        let _ = writeln!(
            s,
            "arena-loadtest: {} ({mode}) against {}  [{version}, {} connections, {} threads]",
            self.name, self.target, self.http.connections, self.threads
        );
        let t = &self.totals;
        let _ = write!(
            s,
            "  requests   {} in {:.1}s (+{:.1}s drain)   achieved {:.1} rps",
            t.requests,
            self.duration_s,
            (self.elapsed_s - self.duration_s).max(0.0),
            self.achieved_rps
        );
        if self.mode == Mode::Open {
            let _ = write!(
                s,
                "   intended {:.1} rps ({} scheduled)",
                self.intended_rps, self.intended_total
            );
        }
        s.push('\n');
        let _ = writeln!(
            s,
            "  errors     {} ({:.3}%)   timeouts {}  transport {}  status {}  dropped {}",
            t.errors,
            self.error_rate * 100.0,
            t.timeouts,
            t.transport_errors,
            t.status_errors,
            t.dropped
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}{}",
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            fmt_us(l.mean.round() as u64),
            if self.mode == Mode::Open {
                "  (from intended send time)"
            } else {
                "  (closed loop: from actual send)"
            }
        );
        let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            s,
            "  statuses   {}",
            if statuses.is_empty() {
                "none".into()
            } else {
                statuses.join("  ")
            }
        );
        if !self.backends.is_empty() {
            let list: Vec<String> = self
                .backends
                .iter()
                .map(|b| format!("{} {:.1}%", b.backend, b.share * 100.0))
                .collect();
            let _ = writeln!(s, "  backends   {}", list.join("  "));
        }
        for (label, map) in [("routes  ", &self.routes), ("attempts", &self.attempts)] {
            if !map.is_empty() {
                let list: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                let _ = writeln!(s, "  {label}   {}", list.join("  "));
            }
        }
        if !self.error_samples.is_empty() {
            let _ = writeln!(s, "  error samples:");
            for e in &self.error_samples {
                let _ = writeln!(s, "    - {e}");
            }
        }
        if !self.markers.is_empty() {
            let list: Vec<String> = self
                .markers
                .iter()
                .map(|m| format!("{:.1}s {}", m.at.as_secs_f64(), m.label))
                .collect();
            let _ = writeln!(s, "  markers    {}", list.join("  |  "));
        }
        if self.mode == Mode::Open {
            let _ = writeln!(
                s,
                "  sched lag  p99 {}  max {}  ({:.2}% over 10ms)",
                fmt_us(self.schedule_lag_us.p99),
                fmt_us(self.schedule_lag_us.max),
                self.lag_over_10ms * 100.0
            );
        }
        if self.validity.valid {
            let _ = writeln!(s, "  run        VALID");
        } else {
            let _ = writeln!(s, "  run        INVALID");
            for r in &self.validity.reasons {
                let _ = writeln!(s, "    - {r}");
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(s, "  thresholds");
            for t in &self.thresholds {
                let _ = writeln!(
                    s,
                    "    {}  {:<24} (actual {})",
                    if t.pass { "PASS" } else { "FAIL" },
                    t.text,
                    t.actual_text
                );
            }
        }
        s
    }
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
