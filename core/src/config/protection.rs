//! A route's protections: `retry:`, `hedge:` and `fallback:` (the rate limit is in
//! `limits`) — as written, validated, and the validation between them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::defaults::{fallback as fallback_def, hedge as hedge_def, retry as retry_def, route as def};
use super::fields::{declared_names, parse_share, path, unknown_name_hint};
use super::limits::{self, RateLimitSpec};
use super::route::{References, RouteFile};
use super::ser::human;
use super::{dur_or, Dur, FaasSpec};
use crate::diag::{Diagnostics, Seg};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    ConnectFailure,
    Reset,
    Timeout,
    #[serde(rename = "5xx")]
    Status5xx,
    /// The pod shed the request before running it (its answer carries `x-arena-overloaded`,
    /// e.g. a sidecar's full queue): retried on another pod whatever the policy lists, like a
    /// connect failure, and never counted against the pod's health.
    Overloaded,
}

impl RetryOn {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOn::ConnectFailure => "connect_failure",
            RetryOn::Reset => "reset",
            RetryOn::Timeout => "timeout",
            RetryOn::Status5xx => "5xx",
            RetryOn::Overloaded => "overloaded",
        }
    }

    /// Nothing of the request ran on the pod: safe to send again whatever the method.
    pub fn never_ran(self) -> bool {
        matches!(self, RetryOn::ConnectFailure | RetryOn::Overloaded)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Total tries per request, the first included (2 = one retry).
    pub attempts: u32,
    #[serde(default)]
    pub on: Option<Vec<RetryOn>>,
    /// Retries allowed as a percentage of live requests...
    #[serde(default)]
    pub budget_percent: Option<f64>,
    /// ...plus this many per second, so quiet routes can still retry.
    #[serde(default)]
    pub min_per_second: Option<u32>,
    /// Base of the jittered backoff between tries.
    #[serde(default)]
    pub backoff: Option<Dur>,
    /// Also retry POST/PATCH (only when the request is known to be safe to replay).
    #[serde(default)]
    pub non_idempotent: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeFile {
    /// A duration, or `pNN` for the route's live latency percentile.
    pub after: String,
    #[serde(default)]
    pub max_extra: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackOn {
    RetriesExhausted,
    NoHealthyPods,
    CircuitOpen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackFile {
    pub faas: String,
    #[serde(default)]
    pub on: Option<Vec<FallbackOn>>,
    #[serde(default)]
    pub spillover_above_load: Option<f64>,
    /// `1%` or `0.01`.
    #[serde(default)]
    pub warm_share: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrySpec {
    /// Total tries, the first included.
    pub attempts: u32,
    pub on: Vec<RetryOn>,
    pub budget_percent: f64,
    pub min_per_second: u32,
    #[serde(serialize_with = "human")]
    pub backoff: Duration,
    pub non_idempotent: bool,
}

impl RetrySpec {
    pub fn retries_on(&self, cause: RetryOn) -> bool {
        self.on.contains(&cause)
    }
}

/// When to send a hedged (extra) try.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeAfter {
    Fixed(#[serde(serialize_with = "human")] Duration),
    /// The route's live latency quantile (0.95 for `p95`).
    Percentile(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HedgeSpec {
    pub after: HedgeAfter,
    pub max_extra: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackSpec {
    pub faas: String,
    pub on: Vec<FallbackOn>,
    pub spillover_above_load: Option<f64>,
    /// Share of normal traffic sent to the function to keep it warm (0..1).
    pub warm_share: f64,
}

impl FallbackSpec {
    pub fn on(&self, why: FallbackOn) -> bool {
        self.on.contains(&why)
    }
}

/// A route's protections, each validated on its own.
#[derive(Default)]
pub(super) struct Protection {
    pub(super) retry: Option<RetrySpec>,
    pub(super) hedge: Option<HedgeSpec>,
    pub(super) rate_limit: Option<RateLimitSpec>,
    pub(super) fallback: Option<FallbackSpec>,
}

pub(super) fn protection(c: &mut Diagnostics<'_>, i: usize, r: &RouteFile, refs: &References<'_>) -> Protection {
    if r.replay_buffer_bytes.is_some_and(|n| n > def::MAX_REPLAY_BUFFER_BYTES) {
        c.error_at(
            &[Seg::Key("routes"), Seg::Index(i), Seg::Key("replay_buffer_bytes")],
            "replay_buffer_bytes is at most 65536",
            Some("pingora keeps at most 64 KiB of a request body for replay".into()),
        );
    }
    Protection {
        retry: r.retry.as_ref().map(|rt| retry(c, &route_at(i, "retry"), rt)),
        hedge: r.hedge.as_ref().and_then(|h| hedge(c, &route_at(i, "hedge"), h)),
        rate_limit: r
            .rate_limit
            .as_ref()
            .and_then(|rl| limits::rate_limit(c, &route_at(i, "rate_limit"), rl, refs.redis)),
        fallback: r
            .fallback
            .as_ref()
            .map(|f| fallback(c, &route_at(i, "fallback"), f, refs.faas)),
    }
}

fn retry(c: &mut Diagnostics<'_>, base: &[Seg], rt: &RetryFile) -> RetrySpec {
    if !(1..=retry_def::MAX_ATTEMPTS).contains(&rt.attempts) {
        c.error_at(
            &path(base, &["attempts"]),
            "retry.attempts must be 1..10 (tries in total, the first included)",
            None,
        );
    }
    let budget = rt.budget_percent.unwrap_or(retry_def::BUDGET_PERCENT);
    if !(0.0..=100.0).contains(&budget) {
        c.error_at(
            &path(base, &["budget_percent"]),
            "retry.budget_percent must be 0..100",
            None,
        );
    }
    RetrySpec {
        attempts: rt.attempts.clamp(1, retry_def::MAX_ATTEMPTS),
        on: rt.on.clone().unwrap_or_else(|| retry_def::ON.to_vec()),
        budget_percent: budget,
        min_per_second: rt.min_per_second.unwrap_or(retry_def::MIN_PER_SECOND),
        backoff: dur_or(rt.backoff, retry_def::BACKOFF),
        non_idempotent: rt.non_idempotent,
    }
}

fn hedge(c: &mut Diagnostics<'_>, base: &[Seg], h: &HedgeFile) -> Option<HedgeSpec> {
    let text = h.after.trim();
    let after = if let Some(p) = text.strip_prefix('p') {
        p.parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(|p| HedgeAfter::Percentile(p / 100.0))
    } else {
        match humantime::parse_duration(text).map(|d| super::check_duration(text, d)) {
            Ok(Err((message, hint))) => {
                c.error_at(&path(base, &["after"]), message, Some(hint));
                return None;
            }
            Ok(Ok(d)) if !d.is_zero() => Some(HedgeAfter::Fixed(d)),
            _ => None,
        }
    };
    if after.is_none() {
        c.error_at(
            &path(base, &["after"]),
            format!("bad hedge.after `{text}`"),
            Some("a duration such as `50ms`, or a live percentile such as `p95`".into()),
        );
    }
    Some(HedgeSpec {
        after: after?,
        max_extra: h
            .max_extra
            .unwrap_or(hedge_def::MAX_EXTRA)
            .clamp(1, hedge_def::MAX_EXTRA_LIMIT),
    })
}

fn fallback(c: &mut Diagnostics<'_>, base: &[Seg], f: &FallbackFile, faas: &[FaasSpec]) -> FallbackSpec {
    let names: Vec<&str> = faas.iter().map(|f| f.name.as_str()).collect();
    if !names.contains(&f.faas.as_str()) && !declared_names(c.root(), "faas").contains(&f.faas) {
        c.error_at(
            &path(base, &["faas"]),
            format!("fallback names unknown function `{}`", f.faas),
            Some(unknown_name_hint(&f.faas, &names, "functions", "faas")),
        );
    }
    let warm = match f.warm_share.as_deref() {
        None => Some(fallback_def::WARM_SHARE),
        Some(t) => parse_share(t),
    };
    if warm.is_none() {
        c.error_at(
            &path(base, &["warm_share"]),
            "bad warm_share",
            Some("a share such as `1%` or `0.01`".into()),
        );
    }
    if f.spillover_above_load.is_some_and(|x| !(0.0..=4.0).contains(&x)) {
        c.error_at(
            &path(base, &["spillover_above_load"]),
            "spillover_above_load is a utilisation, e.g. 0.9",
            None,
        );
    }
    FallbackSpec {
        faas: f.faas.clone(),
        on: f.on.clone().unwrap_or_else(|| fallback_def::ON.to_vec()),
        spillover_above_load: f.spillover_above_load,
        warm_share: warm.unwrap_or(fallback_def::WARM_SHARE),
    }
}

fn route_at(i: usize, key: &'static str) -> [Seg; 3] {
    [Seg::Key("routes"), Seg::Index(i), Seg::Key(key)]
}
