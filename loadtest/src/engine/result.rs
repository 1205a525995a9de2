//! The merged outcome of a run, [`RunResult`], and its [`Validity`] verdict.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{AbuseResult, Marker, Phases, Totals, TraceCounts, Window};
use crate::release::{self, ReleaseTimeline, UserSummary};
use crate::scenario::{HttpSettings, Mode, Stage};

/// Whether the numbers can be trusted, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct Validity {
    pub valid: bool,
    pub reasons: Vec<String>,
}

/// Everything measured in one run.
#[derive(Debug)]
pub struct RunResult {
    pub name: String,
    pub mode: Mode,
    pub target: String,
    pub http: HttpSettings,
    pub stages: Vec<Stage>,
    pub threads: usize,
    /// Seed of the request mix and variables (set `seed:` to repeat a run's requests).
    pub seed: u64,
    pub started_at: SystemTime,
    /// Scheduled load duration.
    pub duration: Duration,
    /// From the start until the last request finished.
    pub elapsed: Duration,
    pub intended_total: u64,
    pub totals: Totals,
    /// Latency from intended send time, µs, all requests.
    pub latency: Histogram<u64>,
    /// Scheduler lag (queued − intended), µs; empty in closed loop.
    pub lag: Histogram<u64>,
    pub windows: Vec<Window>,
    pub statuses: BTreeMap<u16, u64>,
    pub backends: BTreeMap<String, u64>,
    /// Responses per `x-arena-release` value (`NAME=VERSION`).
    pub versions: BTreeMap<String, u64>,
    pub routes: BTreeMap<String, u64>,
    pub attempts: BTreeMap<String, u64>,
    pub requests_by_name: BTreeMap<String, u64>,
    pub markers: Vec<Marker>,
    pub error_samples: Vec<String>,
    pub interrupted: bool,
    pub validity: Validity,
    /// The measured traffic with and without the attacks (only with `abuse:`).
    pub phases: Option<Phases>,
    /// What the abusive connections did (only with `abuse:`).
    pub abuse: Option<AbuseResult>,
    /// How users moved between the release's versions (only with `release.users`).
    pub users: Option<UserSummary>,
    /// The release as polled from the gateway (only with `release:`; set by the caller that
    /// ran the poller).
    pub release: Option<ReleaseTimeline>,
    /// Client spans exported and dropped (only with `tracing:`).
    pub traces: Option<TraceCounts>,
}

impl RunResult {
    /// Completed requests per second of scheduled load.
    pub fn rps(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.totals.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// Fraction of completed requests that were errors.
    pub fn error_rate(&self) -> f64 {
        if self.totals.requests == 0 {
            0.0
        } else {
            self.totals.errors as f64 / self.totals.requests as f64
        }
    }

    /// Fraction of responses whose `x-arena-backend` starts with `prefix`.
    pub fn backend_share(&self, prefix: &str) -> f64 {
        let responses: u64 = self.statuses.values().sum();
        if responses == 0 {
            return 0.0;
        }
        let hits: u64 = self
            .backends
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum();
        hits as f64 / responses as f64
    }

    /// Fraction of the responses carrying `x-arena-release` that version `wanted` answered
    /// (a whole value `NAME=VERSION` or only `VERSION`); NaN when none carried it.
    pub fn version_share(&self, wanted: &str) -> f64 {
        release::version_share(&self.versions, wanted)
    }
}
