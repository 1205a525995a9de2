//! The grey-release part of a report: traffic share per version (`x-arena-release`), the
//! release's weight and state as polled, the rollback after a fault, and how users moved
//! between the versions.

use serde::Serialize;

use crate::engine::{RunResult, Window};
use crate::release::{self, header, Rollback, Sample, SeenTransition, UserSummary, Version};
use crate::scenario::ReleaseWatch;

/// Responses of one `x-arena-release` value.
#[derive(Debug, Clone, Serialize)]
pub struct VersionShare {
    /// As sent by the gateway: `NAME=VERSION`.
    pub version: String,
    pub responses: u64,
    /// Fraction of the responses carrying `x-arena-release`.
    pub share: f64,
}

/// One second of the followed release: what the gateway said and who answered.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSecond {
    pub t: u64,
    /// Weight (percent) at the last poll within the second (`None`: no poll answered in it).
    pub weight: Option<f64>,
    pub stable: u64,
    pub canary: u64,
    /// `canary / (stable + canary)`, `None` without answers of the release.
    pub canary_share: Option<f64>,
}

/// The followed release (with `release:`).
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    pub name: String,
    pub poll_ms: u64,
    pub polls: u64,
    pub failed_polls: u64,
    pub poll_errors: Vec<String>,
    pub steps: Vec<String>,
    /// The last poll, after the load ended.
    #[serde(rename = "final")]
    pub last: Option<Sample>,
    /// Polled state and weight over time (changes, and one sample a second).
    pub timeline: Vec<Sample>,
    /// The gateway's own transitions, timed from the start of the load.
    pub transitions: Vec<SeenTransition>,
    /// The weight's drop to 0 after a fault (`None`: it did not drop after one).
    pub rollback: Option<Rollback>,
    pub per_second: Vec<ReleaseSecond>,
}

/// Per-user tracking (with `release.users`).
#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    /// The request header the user id came from.
    pub header: String,
    #[serde(flatten)]
    pub summary: UserSummary,
}

/// Responses per version, biggest first.
pub fn version_shares(run: &RunResult) -> Vec<VersionShare> {
    let all: u64 = run.versions.values().sum();
    let mut v: Vec<VersionShare> = run
        .versions
        .iter()
        .map(|(k, n)| VersionShare {
            version: k.clone(),
            responses: *n,
            share: *n as f64 / all.max(1) as f64,
        })
        .collect();
    v.sort_by(|a, b| b.responses.cmp(&a.responses).then(a.version.cmp(&b.version)));
    v
}

impl ReleaseReport {
    /// `None` without a polled release.
    pub fn new(run: &RunResult) -> Option<ReleaseReport> {
        let tl = run.release.as_ref()?;
        Some(ReleaseReport {
            name: tl.name.clone(),
            poll_ms: tl.poll_ms,
            polls: tl.polls,
            failed_polls: tl.failed,
            poll_errors: tl.errors.clone(),
            steps: tl.steps.clone(),
            last: tl.last,
            timeline: tl.samples.clone(),
            transitions: tl.transitions.clone(),
            rollback: release::rollback(tl, &run.markers),
            per_second: per_second(&run.windows, &tl.name, &tl.samples),
        })
    }

    /// The final state in a few words: `promoted at 100% (step 5/5)`.
    pub fn final_text(&self) -> String {
        match &self.last {
            None => "never answered".into(),
            Some(s) => {
                let step = s
                    .step
                    .map_or(String::new(), |k| format!(" (step {k}/{})", self.steps.len()));
                format!("{} at {}%{step}", s.state.as_str(), trim(s.weight))
            }
        }
    }
}

/// A percentage without trailing zeros (`25`, `0.5`).
pub fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Answers of `name`'s two versions in a window: `(stable, canary)`.
fn counts(w: &Window, name: &str) -> (u64, u64) {
    let mut out = (0, 0);
    for (k, n) in &w.versions {
        match header::parse(k.as_bytes()) {
            Some((r, Version::Stable)) if r == name => out.0 += n,
            Some((r, Version::Canary)) if r == name => out.1 += n,
            _ => {}
        }
    }
    out
}

fn per_second(windows: &[Window], name: &str, samples: &[Sample]) -> Vec<ReleaseSecond> {
    windows
        .iter()
        .map(|w| {
            let (stable, canary) = counts(w, name);
            let t = w.t as f64;
            let weight = samples
                .iter()
                .rev()
                .find(|s| s.t_s >= t && s.t_s < t + 1.0)
                .map(|s| s.weight);
            ReleaseSecond {
                t: w.t,
                weight,
                stable,
                canary,
                canary_share: (stable + canary > 0).then(|| canary as f64 / (stable + canary) as f64),
            }
        })
        .collect()
}

/// The per-user report of a run that tracked users.
pub fn users(watch: Option<&ReleaseWatch>, run: &RunResult) -> Option<UserReport> {
    let ids = watch?.users.as_ref()?;
    Some(UserReport {
        header: ids.header.to_string(),
        summary: run.users?,
    })
}

/// The canary's share per stretch of the run for the summary: at most `max` buckets.
pub fn share_buckets(per_second: &[ReleaseSecond], max: usize) -> Vec<(u64, u64, Option<f64>)> {
    if per_second.is_empty() || max == 0 {
        return Vec::new();
    }
    let width = per_second.len().div_ceil(max).max(1);
    per_second
        .chunks(width)
        .map(|c| {
            let (stable, canary) = c.iter().fold((0, 0), |a, s| (a.0 + s.stable, a.1 + s.canary));
            let first = c.first().map_or(0, |s| s.t);
            let last = c.last().map_or(0, |s| s.t + 1);
            let share = (stable + canary > 0).then(|| canary as f64 / (stable + canary) as f64);
            (first, last, share)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn second(t: u64, stable: u64, canary: u64) -> ReleaseSecond {
        ReleaseSecond {
            t,
            weight: None,
            stable,
            canary,
            canary_share: None,
        }
    }

    #[test]
    fn buckets_add_up_and_cover_the_run() {
        let secs: Vec<ReleaseSecond> = (0..10).map(|t| second(t, 10 - t, t)).collect();
        let b = share_buckets(&secs, 4);
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].0, b[0].1), (0, 3));
        assert_eq!(b[3].1, 10);
        // Seconds 0..3: canary 0+1+2 of 30 answers.
        assert!((b[0].2.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(share_buckets(&[second(0, 0, 0)], 3)[0].2, None);
        assert!(share_buckets(&[], 3).is_empty());
        assert_eq!(trim(100.0), "100");
        assert_eq!(trim(0.5), "0.5");
    }
}
