//! The merged, serializable view of the measurements: per-second [`Window`]s of all workers,
//! run [`Totals`] and latency [`Quantiles`].

use std::collections::BTreeMap;
use std::ops::Deref;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Counts, WindowAcc};

/// Latency statistics in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub min: u64,
    pub mean: f64,
    pub count: u64,
}

impl Quantiles {
    pub fn of(h: &Histogram<u64>) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        Quantiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            min: h.min(),
            mean: h.mean(),
            count: h.len(),
        }
    }
}

/// One second of the run, all workers merged.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds since the start (this window covers `[t, t+1)`).
    pub t: u64,
    /// Requests the schedule intended in this second (open loop; 0 in closed loop).
    pub intended: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub lag_max_us: u64,
    pub latency: Quantiles,
    pub statuses: BTreeMap<u16, u64>,
    pub backends: BTreeMap<String, u64>,
    /// Responses per `x-arena-release` value (`NAME=VERSION`): the share per version.
    pub versions: BTreeMap<String, u64>,
    /// Users seen moving stable → canary / canary → stable in this second.
    pub moves_to_canary: u64,
    pub moves_to_stable: u64,
}

impl Window {
    pub fn from_acc(acc: &WindowAcc, intended: f64) -> Window {
        Window {
            t: acc.idx,
            intended,
            counts: acc.counts,
            lag_max_us: acc.lag_max_us,
            latency: acc.latency.as_ref().map(Quantiles::of).unwrap_or_default(),
            statuses: acc.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
            backends: acc.backends.clone().into_map(),
            versions: acc.versions.clone().into_map(),
            moves_to_canary: acc.moves_to_canary,
            moves_to_stable: acc.moves_to_stable,
        }
    }
}

/// Reads of the counts as fields of the window (`w.requests`).
impl Deref for Window {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

/// Totals over the whole run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub counts: Counts,
    /// Completed requests that were not errors.
    pub ok: u64,
    /// Requests handed to a connection.
    pub sent: u64,
}

impl Totals {
    pub fn add(&mut self, w: &Window) {
        self.counts.add(&w.counts);
        self.ok = self.counts.requests - self.counts.errors;
    }
}

/// Reads of the counts as fields of the totals (`t.requests`).
impl Deref for Totals {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}
