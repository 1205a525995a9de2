//! One pod as the balancer sees it: address, live counters and the load signal.
//!
//! The signal follows tower's peak-EWMA: latency jumps up at once on a slow answer and decays
//! back smoothly, so a pod that turns slow is avoided immediately but is re-probed later.
//!
//! One cost formula, [`Endpoint::cost`], is what the pickers compare and what `/clusters` and
//! `arena_endpoint_cost` show:
//!
//! cost = latency × (in-flight + 1) × recent-error penalty × utilisation,
//!
//! where utilisation is the pod's own fresh `endpoint-load-metrics` report, or — for a pod
//! that has none (new, or its reports stopped) — what its cluster's pods have been reporting
//! lately ([`LoadBoard`]), so reporting and silent pods compare fairly; 1 when no pod of the
//! cluster reports (latency × queue alone).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::report::LoadReport;
use crate::config::LoadTuning;
use crate::resilience::outlier::Health;

/// Where an endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Static,
    Dns,
}

/// Floor on reported utilisation: an idle pod's latency and queue still matter.
const MIN_UTILIZATION: f64 = 0.05;
const MAX_PENALTY: f64 = 1000.0;
/// The board's running mean moves this far towards each report it takes.
const BOARD_WEIGHT: f64 = 0.2;
/// The board takes at most one report per this many nanoseconds (all pods of a cluster write
/// it: at high rates a sample per millisecond is plenty and keeps the cache line quiet).
const BOARD_EVERY_NS: u64 = 1_000_000;

/// What a cluster's pods have reported lately: the utilisation a pod without a fresh report
/// of its own is costed at. Shared by the endpoints of one cluster (and kept across reloads
/// with them); lock-free, written at most once a millisecond.
#[derive(Debug)]
pub struct LoadBoard {
    epoch: Instant,
    /// Running mean of reports, as f64 bits.
    mean: AtomicU64,
    /// When the mean last took a report, in ns since `epoch` (0 = never).
    stamp_ns: AtomicU64,
}

impl Default for LoadBoard {
    fn default() -> Self {
        LoadBoard {
            epoch: Instant::now(),
            mean: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
        }
    }
}

impl LoadBoard {
    pub fn new() -> Arc<Self> {
        Arc::new(LoadBoard::default())
    }

    fn ns(&self, now: Instant) -> u64 {
        // +1: a report at the very epoch still counts as "taken".
        now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    fn fresh(&self, now: Instant, ttl: Duration) -> Option<f64> {
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        (stamp != 0 && self.ns(now).saturating_sub(stamp) <= ttl.as_nanos() as u64)
            .then(|| f64::from_bits(self.mean.load(Ordering::Relaxed)))
    }

    fn take(&self, utilization: f64, now: Instant, ttl: Duration) {
        let t = self.ns(now);
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        let mean = match self.fresh(now, ttl) {
            Some(_) if t.saturating_sub(stamp) < BOARD_EVERY_NS => return,
            Some(m) => m + (utilization - m) * BOARD_WEIGHT,
            None => utilization,
        };
        self.mean.store(mean.to_bits(), Ordering::Relaxed);
        self.stamp_ns.store(t, Ordering::Relaxed);
    }

    /// The utilisation of a pod that has not reported: the cluster's recent mean, or 1 (no
    /// factor at all) while no pod of the cluster reports.
    pub fn stand_in(&self, now: Instant, ttl: Duration) -> f64 {
        self.fresh(now, ttl).map_or(1.0, |m| m.max(MIN_UTILIZATION))
    }
}

#[derive(Debug)]
struct LoadState {
    /// Peak-EWMA latency estimate in nanoseconds.
    rtt_ns: f64,
    stamp: Instant,
    report: Option<(LoadReport, Instant)>,
    /// Multiplier ≥ 1 after errors, decaying back to 1.
    penalty: f64,
    penalty_stamp: Instant,
}

/// A pod; shared by the endpoint sets that contain it, so counters survive reloads and DNS
/// refreshes as long as the address stays.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub origin: Origin,
    in_flight: AtomicU32,
    draining: AtomicBool,
    requests: AtomicU64,
    failures: AtomicU64,
    load: Mutex<LoadState>,
    /// The cluster's recent reports, for when this pod has no fresh report of its own.
    board: Arc<LoadBoard>,
    /// Outlier state: consecutive failures and ejection.
    pub health: Health,
}

/// Point-in-time view of an endpoint's load, for `/clusters` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct LoadView {
    pub in_flight: u32,
    pub ewma_ms: f64,
    pub reported_utilization: Option<f64>,
    pub penalty: f64,
    pub cost: f64,
    pub requests: u64,
    pub failures: u64,
}

fn decay_factor(elapsed: Duration, decay: Duration) -> f64 {
    let x = elapsed.as_secs_f64() / decay.as_secs_f64().max(1e-9);
    // Under load samples are microseconds apart: e^-x ≈ 1 - x (error below 1e-6) spares the
    // hot path a libm call.
    if x < 1e-3 {
        1.0 - x
    } else {
        (-x).exp()
    }
}

impl Endpoint {
    /// A new pod of the cluster whose reports `board` collects; it starts at `default_rtt`, a
    /// deliberately cautious cost, so it is eased in.
    pub fn new(addr: SocketAddr, origin: Origin, tuning: &LoadTuning, board: &Arc<LoadBoard>) -> Arc<Self> {
        Self::seeded(
            addr,
            origin,
            Seed {
                rtt: tuning.default_rtt,
            },
            board,
        )
    }

    /// A new pod whose load signal starts at `seed` (see [`Endpoint::seed`]).
    pub fn seeded(addr: SocketAddr, origin: Origin, seed: Seed, board: &Arc<LoadBoard>) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Endpoint {
            addr,
            origin,
            in_flight: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            load: Mutex::new(LoadState {
                rtt_ns: seed.rtt.as_nanos() as f64,
                stamp: now,
                report: None,
                penalty: 1.0,
                penalty_stamp: now,
            }),
            board: Arc::clone(board),
            health: Health::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LoadState> {
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        self.load.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Marks a request as started; the returned guard ends it.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.start_counted(None)
    }

    /// Like [`Self::start`], also holding a slot of a cluster-wide in-flight counter.
    pub fn start_counted(self: &Arc<Self>, cluster: Option<Arc<AtomicU32>>) -> InFlight {
        self.start_counted_at(cluster, Instant::now())
    }

    /// Like [`Self::start_counted`], started at `now`.
    pub fn start_counted_at(self: &Arc<Self>, cluster: Option<Arc<AtomicU32>>, now: Instant) -> InFlight {
        if let Some(c) = &cluster {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.start_reserved_at(cluster, now)
    }

    /// Starts a request whose slot in `cluster`'s count the caller has already taken (the
    /// circuit breaker's compare-and-swap); the guard gives it back.
    pub fn start_reserved_at(self: &Arc<Self>, cluster: Option<Arc<AtomicU32>>, now: Instant) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: Arc::clone(self),
            started: now,
            open: true,
            cluster,
        }
    }

    /// Balancer cost at `now`; lower is better. The one formula the pickers compare and the
    /// admin views show (see the module docs).
    pub fn cost(&self, now: Instant, tuning: &LoadTuning) -> f64 {
        self.cost_locked(&self.state(), now, tuning)
    }

    fn cost_locked(&self, s: &LoadState, now: Instant, tuning: &LoadTuning) -> f64 {
        // Decay towards zero while idle, as tower does, so an avoided pod is eventually re-tried.
        let rtt = s.rtt_ns * decay_factor(now.saturating_duration_since(s.stamp), tuning.decay);
        let mut queue = self.in_flight() as f64;
        let mut util = None;
        if let Some((report, at)) = &s.report {
            if now.saturating_duration_since(*at) <= tuning.report_ttl {
                util = Some(report.utilization.max(MIN_UTILIZATION));
                if let Some(n) = report.inflight {
                    // The pod also serves other gateway replicas; trust the larger queue.
                    queue = queue.max(n as f64);
                }
            }
        }
        let util = util.unwrap_or_else(|| self.board.stand_in(now, tuning.report_ttl));
        // Most pods have no recent error: skip the decay arithmetic for them (hot path).
        let penalty = if s.penalty > 1.0 {
            1.0 + (s.penalty - 1.0) * decay_factor(now.saturating_duration_since(s.penalty_stamp), tuning.decay)
        } else {
            1.0
        };
        // Keep a floor so a pod with zero estimate still orders by queue length.
        rtt.max(1_000.0) * (queue + 1.0) * penalty * util
    }

    fn observe(&self, rtt: Duration, now: Instant, tuning: &LoadTuning, report: Option<LoadReport>, failed: bool) {
        let mut s = self.state();
        let sample = rtt.as_nanos() as f64;
        if sample > s.rtt_ns {
            s.rtt_ns = sample;
        } else {
            let w = decay_factor(now.saturating_duration_since(s.stamp), tuning.decay);
            s.rtt_ns = s.rtt_ns * w + sample * (1.0 - w);
        }
        s.stamp = now;
        if let Some(r) = report {
            self.board.take(r.utilization, now, tuning.report_ttl);
            s.report = Some((r, now));
        }
        if failed {
            let current =
                1.0 + (s.penalty - 1.0) * decay_factor(now.saturating_duration_since(s.penalty_stamp), tuning.decay);
            s.penalty = (current * tuning.error_penalty).min(MAX_PENALTY);
            s.penalty_stamp = now;
        }
    }

    /// The pod's own utilisation report, while it is fresh.
    pub fn reported_utilization(&self, now: Instant, tuning: &LoadTuning) -> Option<f64> {
        let s = self.state();
        s.report
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) <= tuning.report_ttl)
            .map(|(r, _)| r.utilization)
    }

    /// Where a pod joining `peers` starts, so it is eased in (it wins against a pod with a
    /// request in flight, and against idle ones once its estimate has decayed) without being
    /// starved: latency at twice the peers' median estimate (at most `default_rtt`, which is
    /// also used when no peer has answered yet). A fixed default far above the real latency
    /// would keep it idle indefinitely. (Its utilisation, until its first report, is the
    /// cluster's board: see [`Endpoint::cost`]; it does not claim a report it never sent, so
    /// spillover does not count a fresh pod as busy.)
    pub fn seed(peers: &[Arc<Endpoint>], now: Instant, tuning: &LoadTuning) -> Seed {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let served: Vec<&Arc<Endpoint>> = peers
            .iter()
            .filter(|e| e.requests.load(Ordering::Relaxed) > 0)
            .collect();
        let rtt = median(
            served
                .iter()
                .map(|e| {
                    let s = e.state();
                    s.rtt_ns * decay_factor(now.saturating_duration_since(s.stamp), tuning.decay)
                })
                .collect(),
        )
        // Never more pessimistic than the configured default: a slow cluster's newcomer learns
        // its real latency from its first answer (the peak estimate jumps up at once).
        .map_or(tuning.default_rtt, |m| {
            let ceiling = tuning.default_rtt.as_nanos() as f64;
            // `clamp` panics on crossed bounds: a default below the 1 µs floor (`0s`) wins.
            Duration::from_nanos((2.0 * m).clamp(ceiling.min(1_000.0), ceiling) as u64)
        });
        Seed { rtt }
    }

    /// Snapshot for admin views.
    pub fn view(&self, now: Instant, tuning: &LoadTuning) -> LoadView {
        let s = self.state();
        let fresh = s
            .report
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) <= tuning.report_ttl)
            .map(|(r, _)| r.utilization);
        LoadView {
            in_flight: self.in_flight(),
            ewma_ms: s.rtt_ns * decay_factor(now.saturating_duration_since(s.stamp), tuning.decay) / 1e6,
            reported_utilization: fresh,
            penalty: 1.0
                + (s.penalty - 1.0) * decay_factor(now.saturating_duration_since(s.penalty_stamp), tuning.decay),
            cost: self.cost_locked(&s, now, tuning),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// Starting load signal of a new pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seed {
    pub rtt: Duration,
}

/// One request in progress on an endpoint. Dropping it without `success`/`failure` (client
/// went away, request cancelled) only releases the in-flight slot.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    started: Instant,
    open: bool,
    cluster: Option<Arc<AtomicU32>>,
}

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// The pod's answer began (any status the route treats as success): its latency to the
    /// answer and its report feed the load signal now, while the slot stays taken until the
    /// answer's end (dropping the guard) — a pod streaming a long answer is still busy.
    pub fn answered(&mut self, tuning: &LoadTuning, report: Option<LoadReport>) {
        let now = Instant::now();
        self.endpoint.observe(now - self.started, now, tuning, report, false);
    }

    /// The pod answered (any status the route treats as success); feeds its latency and report.
    pub fn success(mut self, tuning: &LoadTuning, report: Option<LoadReport>) {
        let now = Instant::now();
        self.endpoint.observe(now - self.started, now, tuning, report, false);
        self.close();
    }

    /// The pod failed (connect error, reset, timeout, 5xx): its latency counts and it is penalised.
    pub fn failure(mut self, tuning: &LoadTuning, report: Option<LoadReport>) {
        let now = Instant::now();
        self.endpoint.failures.fetch_add(1, Ordering::Relaxed);
        self.endpoint.observe(now - self.started, now, tuning, report, true);
        self.close();
    }

    /// The pod shed the request unprocessed (it is full): it reads as busy — at least fully
    /// utilised, and penalised like a failure so the balancer moves away — but its failure
    /// count and health are untouched: being full is not being broken.
    pub fn shed(mut self, tuning: &LoadTuning, report: Option<LoadReport>) {
        let now = Instant::now();
        let full = LoadReport {
            utilization: report.map_or(1.0, |r| r.utilization.max(1.0)),
            inflight: report.and_then(|r| r.inflight),
        };
        self.endpoint.observe(now - self.started, now, tuning, Some(full), true);
        self.close();
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Some(c) = &self.cluster {
                c.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
