//! The load engine: a [`Plan`] made from a scenario, [`run`] with an [`Observer`], and the
//! merged [`RunResult`].
//!
//! Measurement is honest by construction: in open loop every request has an intended send
//! time from the schedule and its latency is counted from there (coordinated omission
//! corrected), and the generator measures its own schedule lag so a run where the load tester
//! itself fell behind is flagged INVALID rather than silently reported.
//!
//! Seams for fleets and fault timelines: [`PlanOptions::target`] takes the base URL a fleet
//! brought up; [`Observer`] gets the run's start instant, a tick of elapsed time, and each
//! closed window; [`MarkerSink`] (cloneable, thread-safe) records fault markers that appear
//! in every report.

pub mod client;
mod h1;
pub mod mix;
mod pace;
pub mod progress;
pub mod schedule;
pub mod stats;
mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use crate::scenario::{BaseUrl, ErrorRule, HttpSettings, Mode, Scenario, Stage};
pub use mix::RequestMix;
pub use schedule::Schedule;
pub use stats::{Counts, Quantiles, Totals, Window};
use stats::{WindowAcc, WorkerMsg};

/// A run is INVALID when the generator's schedule lag p99 exceeds this: more than 1% of
/// requests left over 10 ms late because the load tester itself could not keep up.
pub const MAX_LAG_P99: Duration = Duration::from_millis(10);
/// How often [`Observer::on_tick`] is called.
pub const TICK: Duration = Duration::from_millis(100);
/// Time between planning and the first request: worker threads start and connect meanwhile.
const LEAD: Duration = Duration::from_millis(200);

/// Errors that prevent a run from starting.
#[derive(Debug, Clone)]
pub enum EngineError {
    /// No usable target URL.
    Target(String),
    /// The scenario cannot be turned into requests.
    Plan(String),
    /// A thread or runtime could not be started.
    Start(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Target(m) => write!(f, "target: {m}"),
            EngineError::Plan(m) => write!(f, "plan: {m}"),
            EngineError::Start(m) => write!(f, "start: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Overrides applied when turning a scenario into a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Base URL; wins over the scenario's `target:` (a fleet or `--target` sets it).
    pub target: Option<String>,
    /// Generator threads (default: CPU count, at most one per connection).
    pub threads: Option<usize>,
    /// Multiplies every stage duration (e.g. 0.1 for a quick rehearsal).
    pub duration_scale: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            target: None,
            threads: None,
            duration_scale: 1.0,
        }
    }
}

/// Asks a running engine to stop early (Ctrl-C); cloneable and thread-safe.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A labelled point in time of a run (a fault injected, a pod killed...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// Time since the start of the load.
    #[serde(rename = "at_s", serialize_with = "secs")]
    pub at: Duration,
    pub label: String,
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Collects [`Marker`]s from any thread while a run is going; clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MarkerSink(Arc<Mutex<MarkerState>>);

#[derive(Debug, Default)]
struct MarkerState {
    start: Option<Instant>,
    markers: Vec<Marker>,
}

impl MarkerSink {
    fn state(&self) -> std::sync::MutexGuard<'_, MarkerState> {
        // A panic while holding this lock cannot leave the list inconsistent: keep using it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `label` now (at 0 before the run started).
    pub fn push(&self, label: impl Into<String>) {
        let mut st = self.state();
        let at = st.start.map_or(Duration::ZERO, |s| s.elapsed());
        st.markers.push(Marker {
            at,
            label: label.into(),
        });
    }

    /// Records `label` at an explicit offset from the start.
    pub fn push_at(&self, at: Duration, label: impl Into<String>) {
        self.state().markers.push(Marker {
            at,
            label: label.into(),
        });
    }

    /// Markers so far, in time order.
    pub fn snapshot(&self) -> Vec<Marker> {
        let mut m = self.state().markers.clone();
        m.sort_by_key(|m| m.at);
        m
    }

    fn set_start(&self, start: Instant) {
        self.state().start = Some(start);
    }
}

/// Read-only plan data shared by the worker threads.
pub(crate) struct Shared {
    pub mode: Mode,
    pub addr: SocketAddr,
    pub http: HttpSettings,
    pub mix: RequestMix,
    pub schedule: Schedule,
    pub errors: ErrorRule,
    pub threads: usize,
    pub seed: u64,
    pub stop: StopHandle,
    pub blank: Histogram<u64>,
}

/// A ready-to-run load plan.
pub struct Plan {
    pub name: String,
    pub mode: Mode,
    pub target: BaseUrl,
    pub addr: SocketAddr,
    pub http: HttpSettings,
    /// Stages with `duration_scale` applied.
    pub stages: Vec<Stage>,
    pub duration_scale: f64,
    pub threads: usize,
    pub seed: u64,
    pub errors: ErrorRule,
    mix: RequestMix,
    schedule: Schedule,
    stop: StopHandle,
    markers: MarkerSink,
}

impl Plan {
    /// Builds a plan; the target comes from `opts.target`, else from the scenario.
    pub fn new<F, T>(s: &Scenario<F, T>, opts: &PlanOptions) -> Result<Plan, EngineError> {
        let target_text = opts.target.clone().or_else(|| s.target.clone()).ok_or_else(|| {
            EngineError::Target("the scenario has no `target` and none was given (--target URL)".into())
        })?;
        let target = BaseUrl::parse(&target_text).map_err(|(m, h)| EngineError::Target(format!("{m} ({h})")))?;
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| EngineError::Target(format!("cannot resolve `{}`: {e}", target.host)))?
            .next()
            .ok_or_else(|| EngineError::Target(format!("`{}` resolves to no address", target.host)))?;
        let scale = opts.duration_scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(EngineError::Plan(format!(
                "duration scale must be above 0, got {scale}"
            )));
        }
        let stages: Vec<Stage> = s
            .stages
            .iter()
            .map(|st| Stage {
                duration: st.duration.mul_f64(scale),
                ..*st
            })
            .collect();
        let mix = RequestMix::new(&s.requests, &s.vars, &target, s.http.version).map_err(|e| EngineError::Plan(e.0))?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = opts.threads.unwrap_or(cpus).clamp(1, s.http.connections.max(1));
        let seed = s.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(Plan {
            name: s.name.clone(),
            mode: s.mode,
            target,
            addr,
            http: s.http.clone(),
            schedule: Schedule::new(&stages, 1.0),
            stages,
            duration_scale: scale,
            threads,
            seed,
            errors: s.errors,
            mix,
            stop: StopHandle::default(),
            markers: MarkerSink::default(),
        })
    }

    /// Scheduled load duration (after scaling).
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Requests the open-loop schedule will send (0 in closed loop).
    pub fn intended_total(&self) -> u64 {
        match self.mode {
            Mode::Open => self.schedule.total(),
            Mode::Closed => 0,
        }
    }

    /// Stops the run early when triggered (e.g. from a Ctrl-C handler).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Where fault markers go; usable before and during the run.
    pub fn markers(&self) -> MarkerSink {
        self.markers.clone()
    }

    /// Request names of the mix, in scenario order.
    pub fn request_names(&self) -> &[String] {
        self.mix.names()
    }
}

/// What an [`Observer`] can see and do during a run.
pub struct RunContext {
    /// When the first request is due; fault offsets (`at:`) count from here.
    pub start: Instant,
    /// Scheduled load duration.
    pub duration: Duration,
    pub target: BaseUrl,
    pub markers: MarkerSink,
    pub stop: StopHandle,
}

impl RunContext {
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Hooks called by [`run`] on the caller's task (keep them quick; spawn longer work).
///
/// A fault timeline typically spawns its own task in `on_start` that sleeps until
/// `ctx.start + at` for each action, performs it and pushes a marker.
pub trait Observer {
    /// Before the first request (the start instant lies [`LEAD`] ahead).
    fn on_start(&mut self, _ctx: &RunContext) {}
    /// Every [`TICK`] while the run goes.
    fn on_tick(&mut self, _elapsed: Duration, _ctx: &RunContext) {}
    /// Each time a 1-second window is complete (all workers reported it).
    fn on_window(&mut self, _window: &Window, _ctx: &RunContext) {}
    /// After the last request finished.
    fn on_finish(&mut self, _ctx: &RunContext) {}
}

impl Observer for () {}

/// Several observers, called in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Fanout<'_> {
    fn on_start(&mut self, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_start(ctx));
    }
    fn on_tick(&mut self, elapsed: Duration, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_tick(elapsed, ctx));
    }
    fn on_window(&mut self, window: &Window, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_window(window, ctx));
    }
    fn on_finish(&mut self, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_finish(ctx));
    }
}

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
    pub routes: BTreeMap<String, u64>,
    pub attempts: BTreeMap<String, u64>,
    pub requests_by_name: BTreeMap<String, u64>,
    pub markers: Vec<Marker>,
    pub error_samples: Vec<String>,
    pub interrupted: bool,
    pub validity: Validity,
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
}

/// Runs the plan to completion (or until stopped), calling `observer` along the way.
///
/// Needs a tokio runtime for the controller (any flavour); the load itself runs on
/// `plan.threads` dedicated threads, each with its own current-thread runtime.
pub async fn run(plan: Plan, observer: &mut dyn Observer) -> Result<RunResult, EngineError> {
    let blank = stats::histogram().map_err(|e| EngineError::Start(format!("histogram: {e}")))?;
    let Plan {
        name,
        mode,
        target,
        addr,
        http,
        stages,
        threads,
        seed,
        errors,
        mix,
        schedule,
        stop,
        markers,
        ..
    } = plan;
    let duration = schedule.duration().max(stages.iter().map(|s| s.duration).sum());
    let intended_total = if mode == Mode::Open { schedule.total() } else { 0 };
    let shared = Arc::new(Shared {
        mode,
        addr,
        http: http.clone(),
        mix,
        schedule,
        errors,
        threads,
        seed,
        stop: stop.clone(),
        blank: blank.clone(),
    });
    let started_at = SystemTime::now();
    let start = Instant::now() + LEAD;
    let end = start + duration;
    markers.set_start(start);
    let ctx = RunContext {
        start,
        duration,
        target: target.clone(),
        markers: markers.clone(),
        stop: stop.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let max_outstanding = http.max_in_flight.div_ceil(threads).max(1);
    let mut handles = Vec::with_capacity(threads);
    for id in 0..threads {
        let spec = worker::WorkerSpec {
            id,
            connections: http.connections / threads + usize::from(id < http.connections % threads),
            start,
            end,
            drain_deadline: end + http.timeout,
            max_outstanding,
        };
        let shared = shared.clone();
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{id}"))
            .spawn(move || worker::run(shared, spec, tx))
            .map_err(|e| {
                stop.stop();
                EngineError::Start(format!("worker thread: {e}"))
            })?;
        handles.push(handle);
    }
    drop(tx);
    observer.on_start(&ctx);

    let mut merger = Merger::new(threads, blank.clone());
    let mut ticker = tokio::time::interval_at(start.into(), TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut done = 0;
    while done < threads {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(WorkerMsg::Window(w, acc)) => {
                    for acc in merger.window(w, *acc) {
                        let window = Window::from_acc(&acc, intended_in(&shared.schedule, mode, acc.idx));
                        merger.keep(acc, &window);
                        observer.on_window(&window, &ctx);
                    }
                }
                Some(WorkerMsg::Done(_, totals)) => {
                    merger.totals(*totals);
                    done += 1;
                }
                None => break,
            },
            _ = ticker.tick() => observer.on_tick(start.elapsed(), &ctx),
        }
    }
    let elapsed = start.elapsed();
    for h in handles {
        // Workers have sent `Done`; joining only reaps the threads.
        let _ = h.join();
    }
    for acc in merger.drain() {
        let window = Window::from_acc(&acc, intended_in(&shared.schedule, mode, acc.idx));
        merger.keep(acc, &window);
        observer.on_window(&window, &ctx);
    }
    observer.on_finish(&ctx);
    let interrupted = stop.is_stopped();
    let names = shared.mix.names().to_vec();
    Ok(merger.finish(MergeInput {
        name,
        mode,
        target: target.to_string(),
        http,
        stages,
        threads,
        seed,
        started_at,
        duration,
        elapsed,
        intended_total,
        names,
        markers: markers.snapshot(),
        interrupted,
        schedule: &shared.schedule,
    }))
}

/// Runs on a fresh current-thread runtime (for callers without one).
pub fn run_blocking(plan: Plan, observer: &mut dyn Observer) -> Result<RunResult, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::Start(format!("runtime: {e}")))?;
    rt.block_on(run(plan, observer))
}

fn intended_in(schedule: &Schedule, mode: Mode, idx: u64) -> f64 {
    match mode {
        Mode::Open => schedule.count_by((idx + 1) as f64) - schedule.count_by(idx as f64),
        Mode::Closed => 0.0,
    }
}

/// Merges worker windows as they arrive and keeps run-level aggregates.
struct Merger {
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
}

struct MergeInput<'a> {
    name: String,
    mode: Mode,
    target: String,
    http: HttpSettings,
    stages: Vec<Stage>,
    threads: usize,
    seed: u64,
    started_at: SystemTime,
    duration: Duration,
    elapsed: Duration,
    intended_total: u64,
    names: Vec<String>,
    markers: Vec<Marker>,
    interrupted: bool,
    schedule: &'a Schedule,
}

impl Merger {
    fn new(workers: usize, blank: Histogram<u64>) -> Self {
        Merger {
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
    fn window(&mut self, worker: usize, acc: WindowAcc) -> Vec<WindowAcc> {
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

    fn drain(&mut self) -> Vec<WindowAcc> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    fn keep(&mut self, acc: WindowAcc, window: &Window) {
        if let Some(h) = &acc.latency {
            let _ = self.latency.add(h);
        }
        self.windows.push(window.clone());
    }

    fn totals(&mut self, t: stats::WorkerTotals) {
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

    fn finish(mut self, m: MergeInput<'_>) -> RunResult {
        // One window per second, gaps included, at least up to the scheduled end.
        self.windows.sort_by_key(|w| w.t);
        let planned = m.duration.as_secs_f64().ceil() as u64;
        let last = self.windows.last().map_or(0, |w| w.t + 1).max(planned);
        let mut windows = Vec::with_capacity(last as usize);
        let mut it = self.windows.into_iter().peekable();
        for t in 0..last {
            match it.peek() {
                Some(w) if w.t == t => windows.extend(it.next()),
                _ => windows.push(Window::from_acc(&WindowAcc::new(t), intended_in(m.schedule, m.mode, t))),
            }
        }
        let mut totals = Totals::default();
        let mut statuses = BTreeMap::new();
        let mut backends = BTreeMap::new();
        for w in &windows {
            totals.add(w);
            for (k, v) in &w.statuses {
                *statuses.entry(*k).or_insert(0) += v;
            }
            for (k, v) in &w.backends {
                *backends.entry(k.clone()).or_insert(0) += v;
            }
        }
        totals.sent = self.sent;
        let mut reasons = Vec::new();
        if m.interrupted {
            reasons.push("interrupted before the end of the schedule".to_string());
        }
        if m.mode == Mode::Open {
            let lag_p99 = Duration::from_micros(self.lag.value_at_quantile(0.99));
            if !self.lag.is_empty() && lag_p99 > MAX_LAG_P99 {
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
            routes: self.routes,
            attempts: self.attempts,
            requests_by_name,
            markers: m.markers,
            error_samples: self.samples,
            interrupted: m.interrupted,
            validity: Validity {
                valid: reasons.is_empty(),
                reasons,
            },
        }
    }
}

/// Formats microseconds for humans: `850µs`, `12.3ms`, `1.20s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}
