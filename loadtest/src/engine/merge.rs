//! Result merging: worker windows combined into complete seconds as they arrive, run-level
//! aggregates summed, and the final [`RunResult`] with its validity verdict.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::phases::PhaseSplit;
use super::stats::{self, WindowAcc};
use super::{fmt_us, Marker, RunResult, Schedule, Totals, Validity, Window, MAX_LAG_P99};
use crate::scenario::{HttpSettings, Mode, Stage};

/// Requests the schedule intended in second `idx` (0 in closed loop).
pub(super) fn intended_in(schedule: &Schedule, mode: Mode, idx: u64) -> f64 {
    match mode {
        Mode::Open => schedule.count_by((idx + 1) as f64) - schedule.count_by(idx as f64),
        Mode::Closed => 0.0,
    }
}

/// Merges worker windows as they arrive and keeps run-level aggregates.
pub(super) struct Merger {
    /// Window index below which worker `w` has reported everything.
    done_below: Vec<u64>,
    pending: BTreeMap<u64, WindowAcc>,
    windows: Vec<Window>,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    routes: BTreeMap<String, u64>,
    attempts: BTreeMap<String, u64>,
    by_name: Vec<u64>,
    samples: Vec<String>,
    sent: u64,
    phases: PhaseSplit,
}

/// What the merger does not see itself: the plan's description of the run and its timing.
pub(super) struct MergeInput<'a> {
    pub name: String,
    pub mode: Mode,
    pub target: String,
    pub http: HttpSettings,
    pub stages: Vec<Stage>,
    pub threads: usize,
    pub seed: u64,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub elapsed: Duration,
    pub intended_total: u64,
    pub names: Vec<String>,
    pub markers: Vec<Marker>,
    pub interrupted: bool,
    pub schedule: &'a Schedule,
}

impl Merger {
    /// `attacks`: the `[start, stop)` seconds of the run's attacks (none: no phases).
    pub fn new(workers: usize, blank: Histogram<u64>, attacks: Vec<(f64, f64)>) -> Self {
        Merger {
            phases: PhaseSplit::new(attacks, &blank),
            done_below: vec![0; workers],
            pending: BTreeMap::new(),
            windows: Vec::new(),
            latency: blank.clone(),
            lag: blank,
            routes: BTreeMap::new(),
            attempts: BTreeMap::new(),
            by_name: Vec::new(),
            samples: Vec::new(),
            sent: 0,
        }
    }

    /// Adds one worker window; returns the windows now complete, in order.
    pub fn window(&mut self, worker: usize, acc: WindowAcc) -> Vec<WindowAcc> {
        if acc.idx == u64::MAX {
            // A worker's final flush of an unused window.
            return Vec::new();
        }
        if let Some(d) = self.done_below.get_mut(worker) {
            *d = (*d).max(acc.idx + 1);
        }
        match self.pending.get_mut(&acc.idx) {
            Some(p) => p.merge(acc),
            None => {
                self.pending.insert(acc.idx, acc);
            }
        }
        let complete_below = self.done_below.iter().copied().min().unwrap_or(0);
        let later = self.pending.split_off(&complete_below);
        let ready = std::mem::replace(&mut self.pending, later);
        ready.into_values().collect()
    }

    /// Every window still waiting for a worker (once all of them are done).
    pub fn drain(&mut self) -> Vec<WindowAcc> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Keeps a complete window and adds its latencies to the run's.
    pub fn keep(&mut self, acc: WindowAcc, window: &Window) {
        if let Some(h) = &acc.latency {
            let _ = self.latency.add(h);
            self.phases.latencies(acc.idx, h);
        }
        self.windows.push(window.clone());
    }

    /// Adds the run-level data a worker handed over when it finished.
    pub fn totals(&mut self, t: stats::WorkerTotals) {
        let _ = self.lag.add(&t.lag);
        for (k, v) in t.routes.into_map() {
            *self.routes.entry(k).or_insert(0) += v;
        }
        for (k, v) in t.attempts.into_map() {
            *self.attempts.entry(k).or_insert(0) += v;
        }
        if self.by_name.len() < t.requests_by_name.len() {
            self.by_name.resize(t.requests_by_name.len(), 0);
        }
        for (i, n) in t.requests_by_name.iter().enumerate() {
            self.by_name[i] += n;
        }
        for s in t.error_samples {
            if self.samples.len() < 10 && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
        self.sent += t.sent;
    }

    pub fn finish(mut self, m: MergeInput<'_>) -> RunResult {
        let windows = every_second(std::mem::take(&mut self.windows), &m);
        let phases = self.phases.finish(&windows);
        let (mut totals, statuses, backends, versions) = sum(&windows);
        totals.sent = self.sent;
        let validity = validity(&m, &self.lag, &totals);
        let requests_by_name = m
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), self.by_name.get(i).copied().unwrap_or(0)))
            .collect();
        RunResult {
            name: m.name,
            mode: m.mode,
            target: m.target,
            http: m.http,
            stages: m.stages,
            threads: m.threads,
            seed: m.seed,
            started_at: m.started_at,
            duration: m.duration,
            elapsed: m.elapsed,
            intended_total: m.intended_total,
            totals,
            latency: self.latency,
            lag: self.lag,
            windows,
            statuses,
            backends,
            versions,
            routes: self.routes,
            attempts: self.attempts,
            requests_by_name,
            markers: m.markers,
            error_samples: self.samples,
            interrupted: m.interrupted,
            validity,
            phases,
            abuse: None,
            users: None,
            release: None,
            traces: None,
        }
    }
}

/// One window per second, gaps included, at least up to the scheduled end.
fn every_second(mut kept: Vec<Window>, m: &MergeInput<'_>) -> Vec<Window> {
    kept.sort_by_key(|w| w.t);
    let planned = m.duration.as_secs_f64().ceil() as u64;
    let last = kept.last().map_or(0, |w| w.t + 1).max(planned);
    let mut windows = Vec::with_capacity(last as usize);
    let mut it = kept.into_iter().peekable();
    for t in 0..last {
        match it.peek() {
            Some(w) if w.t == t => windows.extend(it.next()),
            _ => windows.push(Window::from_acc(&WindowAcc::new(t), intended_in(m.schedule, m.mode, t))),
        }
    }
    windows
}

/// Counts by key, summed over the windows.
type Sums = BTreeMap<String, u64>;

/// Run totals and status / backend / version counts, summed over the windows.
fn sum(windows: &[Window]) -> (Totals, BTreeMap<u16, u64>, Sums, Sums) {
    let mut totals = Totals::default();
    let mut statuses = BTreeMap::new();
    let mut backends = BTreeMap::new();
    let mut versions = BTreeMap::new();
    for w in windows {
        totals.add(w);
        for (k, v) in &w.statuses {
            *statuses.entry(*k).or_insert(0) += v;
        }
        for (k, v) in &w.backends {
            *backends.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &w.versions {
            *versions.entry(k.clone()).or_insert(0) += v;
        }
    }
    (totals, statuses, backends, versions)
}

/// INVALID when the run was cut short, or (open loop) when the generator itself could not keep
/// to the schedule: too much lag, or requests dropped at `max_in_flight`.
fn validity(m: &MergeInput<'_>, lag: &Histogram<u64>, totals: &Totals) -> Validity {
    let mut reasons = Vec::new();
    if m.interrupted {
        reasons.push("interrupted before the end of the schedule".to_string());
    }
    if m.mode == Mode::Open {
        let lag_p99 = Duration::from_micros(lag.value_at_quantile(0.99));
        if !lag.is_empty() && lag_p99 > MAX_LAG_P99 {
            reasons.push(format!(
                "the load generator fell behind its schedule: lag p99 {} > {} \
                 (the load tester, not the target, was the bottleneck; use more --threads or a lower rate)",
                fmt_us(lag_p99.as_micros() as u64),
                fmt_us(MAX_LAG_P99.as_micros() as u64)
            ));
        }
        if totals.dropped > 0 {
            reasons.push(format!(
                "{} requests dropped: more than max_in_flight={} were queued or in flight",
                totals.dropped, m.http.max_in_flight
            ));
        }
    }
    Validity {
        valid: reasons.is_empty(),
        reasons,
    }
}
