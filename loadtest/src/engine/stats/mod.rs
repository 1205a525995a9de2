//! Measurement: per-worker recorders (no locks on the request path), 1-second windows sent to
//! the controller as they close, and the merged results.
//!
//! Latencies are microseconds in HdrHistograms (3 significant digits, 1 µs – 60 s). Windows are
//! keyed by completion time; each worker flushes its window at every second boundary, so the
//! controller knows a window is complete once every worker has moved past it.
//!
//! This module is the worker side (recording, on the hot path); `window` holds the merged view.

mod window;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

pub use window::{Quantiles, Totals, Window};

use super::client::DebugHeaders;
use crate::release::Move;

/// Highest recorded value: 60 s in µs (larger values are clamped).
pub const MAX_US: u64 = 60_000_000;
/// Distinct keys kept per counter; the rest are pooled under `(other)`.
const MAX_KEYS: usize = 1000;
/// Distinct transport error messages kept as samples for the report.
const MAX_ERROR_SAMPLES: usize = 10;

/// A new, empty latency histogram with the engine's bounds (clone it for more).
pub fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_US, 3)
}

/// Microseconds of `d`, clamped into the histogram range.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// Small insertion-ordered counter: a handful of distinct keys, linear scan beats hashing.
#[derive(Debug, Clone, Default)]
pub struct Counter<K> {
    items: Vec<(K, u64)>,
}

impl<K: PartialEq> Counter<K> {
    pub fn add(&mut self, key: K, n: u64) {
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c += n,
            None => self.items.push((key, n)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(K, u64)> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Counter<String> {
    /// Counts a header value without allocating once the key is known.
    pub fn add_bytes(&mut self, key: &[u8]) {
        if let Some((_, c)) = self.items.iter_mut().find(|(k, _)| k.as_bytes() == key) {
            *c += 1;
            return;
        }
        let name = if self.items.len() >= MAX_KEYS {
            "(other)".to_string()
        } else {
            String::from_utf8_lossy(key).into_owned()
        };
        self.add(name, 1);
    }

    pub fn into_map(self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (k, v) in self.items {
            *m.entry(k).or_insert(0) += v;
        }
        m
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A response with this status (error or not per the scenario's rule).
    Status(u16, bool),
    Timeout,
    /// Connect failure, reset, protocol error, or an unbuildable request.
    Transport,
}

/// Request counts that add up the same way per worker window, per merged window and per run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Completed requests (responses, timeouts and transport errors).
    pub requests: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub status_errors: u64,
    /// Scheduled requests never queued because `max_in_flight` was reached.
    pub dropped: u64,
    pub bytes: u64,
}

impl Counts {
    /// Adds `o` field by field.
    pub fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.transport_errors += o.transport_errors;
        self.status_errors += o.status_errors;
        self.dropped += o.dropped;
        self.bytes += o.bytes;
    }

    /// Counts one finished request.
    fn end(&mut self, ending: Ending, bytes: u64) {
        self.requests += 1;
        self.bytes += bytes;
        match ending {
            Ending::Status(_, false) => return,
            Ending::Status(_, true) => self.status_errors += 1,
            Ending::Timeout => self.timeouts += 1,
            Ending::Transport => self.transport_errors += 1,
        }
        self.errors += 1;
    }
}

/// One worker's counts for one second.
#[derive(Debug)]
pub struct WindowAcc {
    pub idx: u64,
    pub latency: Option<Histogram<u64>>,
    pub counts: Counts,
    pub lag_max_us: u64,
    pub statuses: Counter<u16>,
    pub backends: Counter<String>,
    /// `x-arena-release` values (`NAME=VERSION`).
    pub versions: Counter<String>,
    /// Users who moved stable → canary / canary → stable in this second.
    pub moves_to_canary: u64,
    pub moves_to_stable: u64,
}

impl WindowAcc {
    pub fn new(idx: u64) -> Self {
        WindowAcc {
            idx,
            latency: None,
            counts: Counts::default(),
            lag_max_us: 0,
            statuses: Counter::default(),
            backends: Counter::default(),
            versions: Counter::default(),
            moves_to_canary: 0,
            moves_to_stable: 0,
        }
    }

    /// Adds another worker's counts for the same second.
    pub fn merge(&mut self, o: WindowAcc) {
        match (&mut self.latency, o.latency) {
            (Some(h), Some(oh)) => {
                let _ = h.add(&oh);
            }
            (None, Some(oh)) => self.latency = Some(oh),
            _ => {}
        }
        self.counts.add(&o.counts);
        self.lag_max_us = self.lag_max_us.max(o.lag_max_us);
        for (k, v) in o.statuses.items {
            self.statuses.add(k, v);
        }
        for (k, v) in o.backends.items {
            self.backends.add(k, v);
        }
        for (k, v) in o.versions.items {
            self.versions.add(k, v);
        }
        self.moves_to_canary += o.moves_to_canary;
        self.moves_to_stable += o.moves_to_stable;
    }
}

/// Run-level data a worker hands over when it finishes.
#[derive(Debug)]
pub struct WorkerTotals {
    pub lag: Histogram<u64>,
    pub routes: Counter<String>,
    pub attempts: Counter<String>,
    pub requests_by_name: Vec<u64>,
    pub error_samples: Vec<String>,
    pub sent: u64,
}

/// What a worker sends to the controller.
#[derive(Debug)]
pub enum WorkerMsg {
    Window(usize, Box<WindowAcc>),
    Done(usize, Box<WorkerTotals>),
}

/// Per-worker recorder; lives on the worker thread, touched by its scheduler and lanes.
pub struct Recorder {
    worker: usize,
    start: Instant,
    /// Empty histogram cloned for each new window.
    blank: Histogram<u64>,
    cur: WindowAcc,
    totals: WorkerTotals,
    tx: tokio::sync::mpsc::UnboundedSender<WorkerMsg>,
}

impl Recorder {
    pub fn new(
        worker: usize,
        start: Instant,
        blank: Histogram<u64>,
        names: usize,
        tx: tokio::sync::mpsc::UnboundedSender<WorkerMsg>,
    ) -> Self {
        Recorder {
            worker,
            start,
            cur: WindowAcc::new(0),
            totals: WorkerTotals {
                lag: blank.clone(),
                routes: Counter::default(),
                attempts: Counter::default(),
                requests_by_name: vec![0; names],
                error_samples: Vec::new(),
                sent: 0,
            },
            blank,
            tx,
        }
    }

    /// Window index of `now`.
    fn idx(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    /// Sends the current window if `now` is past it.
    pub fn roll(&mut self, now: Instant) {
        let idx = self.idx(now);
        if idx > self.cur.idx {
            let done = std::mem::replace(&mut self.cur, WindowAcc::new(idx));
            // The controller outlives the workers; a send error only means it gave up.
            let _ = self.tx.send(WorkerMsg::Window(self.worker, Box::new(done)));
        }
    }

    /// Scheduler: a request was queued `lag` after its intended time.
    pub fn lag(&mut self, now: Instant, lag: Duration) {
        self.roll(now);
        let us = micros(lag);
        let _ = self.totals.lag.record(us);
        self.cur.lag_max_us = self.cur.lag_max_us.max(us);
    }

    /// Scheduler: a request could not even be queued (`max_in_flight` reached).
    pub fn dropped(&mut self, now: Instant) {
        self.roll(now);
        self.cur.counts.dropped += 1;
    }

    /// A request went out on a connection.
    pub fn sent(&mut self) {
        self.totals.sent += 1;
    }

    /// Records a finished request: latency from its intended time to `now`.
    pub fn record(&mut self, now: Instant, intended: Instant, entry: usize, ending: Ending, bytes: u64) {
        self.roll(now);
        let us = micros(now.saturating_duration_since(intended));
        let w = &mut self.cur;
        let blank = &self.blank;
        let _ = w.latency.get_or_insert_with(|| blank.clone()).record(us);
        w.counts.end(ending, bytes);
        if let Ending::Status(code, _) = ending {
            w.statuses.add(code, 1);
        }
        if let Some(c) = self.totals.requests_by_name.get_mut(entry) {
            *c += 1;
        }
    }

    /// Counts the Arena debug headers of a response (`x-arena-backend` and `x-arena-release`
    /// per window, route and attempts per run).
    pub fn headers(&mut self, debug: &DebugHeaders) {
        if let Some(v) = debug.backend() {
            self.cur.backends.add_bytes(v);
        }
        if let Some(v) = debug.release() {
            self.cur.versions.add_bytes(v);
        }
        if let Some(v) = debug.route() {
            self.totals.routes.add_bytes(v);
        }
        if let Some(v) = debug.attempts() {
            self.totals.attempts.add_bytes(v);
        }
    }

    /// Counts a user's move between versions in the current window.
    pub fn moved(&mut self, m: Move) {
        match m {
            Move::ToCanary => self.cur.moves_to_canary += 1,
            Move::ToStable => self.cur.moves_to_stable += 1,
            Move::Stay | Move::Reordered | Move::Untracked => {}
        }
    }

    /// Keeps a few distinct error messages for the report.
    pub fn error_sample(&mut self, msg: impl FnOnce() -> String) {
        if self.totals.error_samples.len() < MAX_ERROR_SAMPLES {
            let m = msg();
            if !self.totals.error_samples.contains(&m) {
                self.totals.error_samples.push(m);
            }
        }
    }

    /// Flushes the last window and hands over the run-level data.
    pub fn finish(&mut self) {
        let cur = std::mem::replace(&mut self.cur, WindowAcc::new(u64::MAX));
        let totals = WorkerTotals {
            lag: self.blank.clone(),
            routes: Counter::default(),
            attempts: Counter::default(),
            requests_by_name: Vec::new(),
            error_samples: Vec::new(),
            sent: 0,
        };
        let totals = std::mem::replace(&mut self.totals, totals);
        let _ = self.tx.send(WorkerMsg::Window(self.worker, Box::new(cur)));
        let _ = self.tx.send(WorkerMsg::Done(self.worker, Box::new(totals)));
    }
}
