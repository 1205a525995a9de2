//! The live picture behind the admin UI (`/ui/state`): a ring of per-second samples of the
//! cumulative counts the gateway keeps anyway (route answers, 5xx and latency buckets, pod
//! requests and failures, function invocations, release windows), taken by a task on the
//! control thread, and the last error lines of the access log. Rates, shares and quantiles are
//! differences between two samples, so the request path writes nothing new for them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arena_core::release::WindowStats;
use prometheus::core::Collector as _;
use tokio::time::Instant;

use crate::metrics::{Metrics, RouteTotals};
use crate::state::{Gateway, Snapshot};

/// How often the counters are sampled.
pub const EVERY: Duration = Duration::from_secs(1);
/// Samples kept: five minutes at one a second (and the one they start from).
pub const KEEP: usize = 301;
/// Error lines kept for the UI.
pub const RECENT_ERRORS: usize = 50;

/// The samples and the last error lines.
#[derive(Default)]
pub struct Live {
    ticks: Mutex<VecDeque<Arc<Tick>>>,
    errors: Mutex<VecDeque<String>>,
}

impl Live {
    /// Keeps `tick`, forgetting the oldest beyond [`KEEP`].
    pub fn push(&self, tick: Tick) {
        let mut ticks = self.ticks.lock().unwrap_or_else(PoisonError::into_inner);
        if ticks.len() >= KEEP {
            ticks.pop_front();
        }
        ticks.push_back(Arc::new(tick));
    }

    /// The samples kept, oldest first.
    pub fn ticks(&self) -> Vec<Arc<Tick>> {
        self.ticks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Keeps one access-log error line (JSON). Called on the request path for 5xx and
    /// unanswered requests only, and never waits: if another request holds the ring, this
    /// line is left out of it (the access log and the metrics still have it).
    pub fn error_line(&self, line: String) {
        if let Ok(mut ring) = self.errors.try_lock() {
            if ring.len() >= RECENT_ERRORS {
                ring.pop_front();
            }
            ring.push_back(line);
        }
    }

    /// The error lines kept, newest first.
    pub fn recent_errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

/// The cumulative counts at one moment.
pub struct Tick {
    pub at: Instant,
    pub unix_ms: u64,
    pub routes: Vec<RouteSample>,
    pub pods: Vec<PodSample>,
    pub functions: Vec<FunctionSample>,
    pub releases: Vec<ReleaseSample>,
}

pub struct RouteSample {
    pub name: String,
    pub totals: RouteTotals,
}

pub struct PodSample {
    pub cluster: String,
    pub addr: SocketAddr,
    pub requests: u64,
    pub failures: u64,
}

/// A function's invocations so far: all of them, those that failed (any result but `ok`),
/// and those refused at its concurrency limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FunctionCounts {
    pub calls: u64,
    pub errors: u64,
    pub saturated: u64,
}

pub struct FunctionSample {
    pub name: String,
    pub counts: FunctionCounts,
}

/// A release's weight and both windows (these are sliding windows already, not counters).
pub struct ReleaseSample {
    pub name: String,
    pub weight: f64,
    pub stable: WindowStats,
    pub canary: WindowStats,
}

impl Tick {
    /// Reads every count of `snap` now.
    pub fn take(snap: &Snapshot, metrics: &Metrics) -> Tick {
        let now = Instant::now();
        let routes = snap
            .routes
            .iter()
            .map(|r| RouteSample {
                name: r.spec.name.clone(),
                totals: r.metrics.totals(),
            })
            .collect();
        let mut pods = Vec::new();
        for cluster in &snap.clusters {
            let set = cluster.endpoints();
            for e in set.active.iter().chain(set.draining.iter()) {
                let v = e.view(now, &cluster.spec.load);
                pods.push(PodSample {
                    cluster: cluster.name().to_string(),
                    addr: e.addr,
                    requests: v.requests,
                    failures: v.failures,
                });
            }
        }
        let counts = function_counts(metrics);
        let functions = snap
            .functions
            .iter()
            .map(|f| FunctionSample {
                name: f.name().to_string(),
                counts: counts
                    .iter()
                    .find(|(n, _)| n == f.name())
                    .map(|(_, c)| *c)
                    .unwrap_or_default(),
            })
            .collect();
        let releases = snap
            .releases
            .iter()
            .map(|r| {
                let (stable, canary) = r.windows(now);
                ReleaseSample {
                    name: r.name().to_string(),
                    weight: f64::from(r.state().weight_bp) / 100.0,
                    stable,
                    canary,
                }
            })
            .collect();
        Tick {
            at: now,
            unix_ms: arena_core::release::unix_ms_now(),
            routes,
            pods,
            functions,
            releases,
        }
    }

    pub fn route(&self, name: &str) -> Option<&RouteTotals> {
        self.routes.iter().find(|r| r.name == name).map(|r| &r.totals)
    }

    pub fn pod(&self, cluster: &str, addr: SocketAddr) -> Option<&PodSample> {
        self.pods.iter().find(|p| p.addr == addr && p.cluster == cluster)
    }

    pub fn function(&self, name: &str) -> Option<FunctionCounts> {
        self.functions.iter().find(|f| f.name == name).map(|f| f.counts)
    }

    pub fn release(&self, name: &str) -> Option<&ReleaseSample> {
        self.releases.iter().find(|r| r.name == name)
    }
}

/// Every function's invocation counts, summed over reasons, from `arena_faas_requests_total`.
fn function_counts(metrics: &Metrics) -> Vec<(String, FunctionCounts)> {
    let mut out: Vec<(String, FunctionCounts)> = Vec::new();
    for family in metrics.faas_requests.collect() {
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let n = m.get_counter().value() as u64;
            let (function, result) = (label("function"), label("result"));
            let i = match out.iter().position(|(f, _)| *f == function) {
                Some(i) => i,
                None => {
                    out.push((function, FunctionCounts::default()));
                    out.len() - 1
                }
            };
            let c = &mut out[i].1;
            c.calls += n;
            if result != "ok" {
                c.errors += n;
            }
            if result == "saturated" {
                c.saturated += n;
            }
        }
    }
    out
}

/// A route's answers between two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteWindow {
    pub requests: u64,
    pub rate: f64,
    /// 5xx and unanswered over all answers; `None` without answers.
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Seconds between two samples (never zero).
pub fn seconds(from: &Tick, to: &Tick) -> f64 {
    to.at.saturating_duration_since(from.at).as_secs_f64().max(1e-3)
}

/// What `route` answered between `from` and `to`; `None` when either sample lacks it.
pub fn route_window(from: &Tick, to: &Tick, route: &str) -> Option<RouteWindow> {
    Some(totals_window(from.route(route)?, to.route(route)?, seconds(from, to)))
}

/// The difference of two cumulative counts over `secs` seconds. Counts that went down (a
/// route that changed cluster starts new counters) read as nothing in between.
pub fn totals_window(from: &RouteTotals, to: &RouteTotals, secs: f64) -> RouteWindow {
    let requests = to.requests.saturating_sub(from.requests);
    let errors = to.errors.saturating_sub(from.errors);
    let buckets: Vec<(f64, u64)> = to
        .buckets
        .iter()
        .map(|(upper, n)| {
            let before = from.buckets.iter().find(|(u, _)| u == upper).map_or(0, |(_, b)| *b);
            (*upper, n.saturating_sub(before))
        })
        .collect();
    RouteWindow {
        requests,
        rate: requests as f64 / secs,
        error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
        p50_ms: quantile(0.5, &buckets).map(|s| s * 1000.0),
        p99_ms: quantile(0.99, &buckets).map(|s| s * 1000.0),
    }
}

/// The `q` quantile of a histogram given as (upper bound, cumulative count) ending with +Inf,
/// interpolated linearly inside its bucket (as Prometheus' `histogram_quantile`); in the +Inf
/// bucket, the largest finite bound. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for (upper, count) in buckets {
        if *count as f64 >= rank && *count > below {
            if upper.is_infinite() {
                return Some(lower);
            }
            let inside = (count - below) as f64;
            return Some(lower + (upper - lower) * ((rank - below as f64) / inside).clamp(0.0, 1.0));
        }
        if upper.is_finite() {
            lower = *upper;
        }
        below = *count;
    }
    Some(lower)
}

/// Sums histograms with the same bounds (every route's latency, for the gateway's total).
pub fn merge(into: &mut RouteTotals, add: &RouteTotals) {
    into.requests += add.requests;
    into.errors += add.errors;
    if into.buckets.is_empty() {
        into.buckets = add.buckets.clone();
    } else {
        for ((_, n), (_, m)) in into.buckets.iter_mut().zip(&add.buckets) {
            *n += m;
        }
    }
}

/// Samples every [`EVERY`] on the control thread, for the life of the process.
pub async fn run(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = gw.snapshot();
        gw.live.push(Tick::take(&snap, &gw.metrics));
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
