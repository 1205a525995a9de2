//! Retry: after a failed try, is another one allowed — by the route's policy, the state of the
//! request, the pods left and the retry budget — and how long to back off first. One decision
//! per failed try, for pingora's proxy loop and hedged tries alike.

use std::time::Duration;

use rand::Rng;

use crate::config::defaults::retry::CONNECT_ATTEMPTS_WITHOUT_POLICY;
use arena_core::release::Version;

use super::ctx::Routed;
use crate::config::{RetryOn, RetrySpec};

/// Facts about the request that bound its retries.
#[derive(Debug, Clone, Copy)]
pub struct TryState {
    /// Tries made so far, the failed one included.
    pub attempts: u32,
    /// GET/HEAD/PUT/DELETE/OPTIONS... (or the route opted in for the others).
    pub idempotent: bool,
    /// The request body can be sent again (fully buffered).
    pub replayable: bool,
    /// Bytes of the answer already went to the client: nothing can be retried.
    pub response_started: bool,
    /// Time left before the route's total deadline.
    pub remaining: Duration,
}

/// The answer for one failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again (on another pod when there is one); the retry is counted and budgeted.
    Retry,
    /// No retry; but a failure on a pooled connection the pod had already closed never
    /// reached it, and may be replayed once on a fresh connection (pingora decides, knowing
    /// whether the connection was reused).
    ReplayIfStaleConnection,
    /// No further try.
    Stop,
}

/// Whether the route's policy allows one more try after `cause` (budget not included).
pub fn may_retry(retry: Option<&RetrySpec>, cause: RetryOn, s: &TryState) -> bool {
    if !can_send_again(s) {
        return false;
    }
    match retry {
        // A connect failure never reached the pod: safe to retry whatever the method.
        // A shed request may always go on to another pod (at least as often as a connect failure).
        Some(r) if cause == RetryOn::Overloaded => s.attempts < r.attempts.max(CONNECT_ATTEMPTS_WITHOUT_POLICY),
        Some(r) => {
            r.retries_on(cause) && s.attempts < r.attempts && (s.idempotent || r.non_idempotent || cause.never_ran())
        }
        None => cause.never_ran() && s.attempts < CONNECT_ATTEMPTS_WITHOUT_POLICY,
    }
}

/// With `retry_on_stable`, the first (canary) try of a canary request that failed may be
/// retried once on stable even where the route's policy would not retry: same safety rules
/// (the body can be sent again, nothing was answered yet, time is left, and a request a pod
/// may have run only when idempotent or opted in).
pub fn may_retry_on_stable(cause: RetryOn, s: &TryState) -> bool {
    can_send_again(s) && s.attempts == 1 && (s.idempotent || cause.never_ran())
}

/// Nothing of the answer went out, the body can be sent again, and time is left.
fn can_send_again(s: &TryState) -> bool {
    !s.response_started && s.replayable && !s.remaining.is_zero()
}

/// Decides after a try of `routed` failed with `cause`: policy, then pods left (a route
/// without a retry policy only fails over to another pod), then the budget. A canary's failed
/// first try under `retry_on_stable` goes on to stable (its own retry, budgeted like any).
/// Counts the retry (or the budget refusal) in `arena_retries_total`.
pub fn decide(routed: &Routed, cause: RetryOn, s: &TryState) -> Verdict {
    let route = &routed.route;
    let spec = route.spec.retry.as_ref();
    // The next try's version differs from the failed one's: a canary failing over to stable.
    let to_stable = routed.version() == Some(Version::Canary) && routed.try_version() == Some(Version::Stable);
    let allowed = may_retry(spec, cause, s) || (to_stable && may_retry_on_stable(cause, s));
    if !allowed {
        return stale_or_stop(s);
    }
    let more_pods = to_stable || routed.cluster().endpoints().active.len() > routed.tries.tried.len();
    if spec.is_none() && !more_pods {
        return stale_or_stop(s);
    }
    if let Some(budget) = &route.budget {
        if !budget.try_retry() {
            route.metrics.retry("budget_exhausted");
            return stale_or_stop(s);
        }
    }
    route.metrics.retry(cause.as_str());
    Verdict::Retry
}

fn stale_or_stop(s: &TryState) -> Verdict {
    if s.idempotent && s.replayable && !s.response_started {
        Verdict::ReplayIfStaleConnection
    } else {
        Verdict::Stop
    }
}

/// Jittered exponential backoff before try number `attempts + 1`: base × 2^(attempts−1) × [0.5, 1.5).
pub fn backoff<R: Rng>(base: Duration, attempts: u32, rng: &mut R) -> Duration {
    let exp = 1u32 << attempts.saturating_sub(1).min(6);
    base.saturating_mul(exp).mul_f64(rng.random_range(0.5..1.5))
}

/// The pause before the next try of a retrying request (none for the first try, none for a
/// route without a retry policy), never past the deadline.
pub fn pause<R: Rng>(spec: Option<&RetrySpec>, attempts: u32, remaining: Duration, rng: &mut R) -> Duration {
    match spec {
        Some(r) if attempts > 0 => backoff(r.backoff, attempts, rng).min(remaining),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
