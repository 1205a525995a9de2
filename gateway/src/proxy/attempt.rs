//! Attempt decisions as plain functions: classify a failed try, decide whether another try
//! is allowed, how long to back off, and whether the FaaS fallback takes over.

use std::time::Duration;

use pingora::{Error, ErrorType};
use rand::Rng;

use crate::config::{FallbackOn, RetryOn, RetrySpec};
use crate::error::GatewayError;

/// Connect failures are retried this often when the route has no `retry` block: nothing
/// reached the pod, so another pod may always take the request.
pub const DEFAULT_CONNECT_ATTEMPTS: u32 = 3;

/// What went wrong with one try.
pub fn cause_of(e: &Error) -> RetryOn {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | SocketError
        | BindError => RetryOn::ConnectFailure,
        ReadTimedout | WriteTimedout => RetryOn::Timeout,
        HTTPStatus(s) if *s >= 500 => RetryOn::Status5xx,
        _ => RetryOn::Reset,
    }
}

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

/// Whether the route's policy allows one more try after `cause` (budget not included).
pub fn may_retry(retry: Option<&RetrySpec>, cause: RetryOn, s: &TryState) -> bool {
    if s.response_started || !s.replayable || s.remaining.is_zero() {
        return false;
    }
    match retry {
        // A connect failure never reached the pod: safe to retry whatever the method.
        Some(r) => {
            r.retries_on(cause)
                && s.attempts < r.attempts
                && (s.idempotent || r.non_idempotent || cause == RetryOn::ConnectFailure)
        }
        None => cause == RetryOn::ConnectFailure && s.attempts < DEFAULT_CONNECT_ATTEMPTS,
    }
}

/// Jittered exponential backoff before try number `attempts + 1`: base × 2^(attempts−1) × [0.5, 1.5).
pub fn backoff<R: Rng>(base: Duration, attempts: u32, rng: &mut R) -> Duration {
    let exp = 1u32 << attempts.saturating_sub(1).min(6);
    base.saturating_mul(exp).mul_f64(rng.random_range(0.5..1.5))
}

/// Why a request goes to the function instead of (or after) the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaasReason {
    RetriesExhausted,
    NoHealthyPods,
    CircuitOpen,
    Spillover,
    Warm,
}

impl FaasReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FaasReason::RetriesExhausted => "retries_exhausted",
            FaasReason::NoHealthyPods => "no_healthy_pods",
            FaasReason::CircuitOpen => "circuit_open",
            FaasReason::Spillover => "spillover",
            FaasReason::Warm => "warm",
        }
    }

    /// Warm-up and spillover traffic may still go to the pods if the function fails.
    pub fn pods_can_still_serve(self) -> bool {
        matches!(self, FaasReason::Spillover | FaasReason::Warm)
    }
}

/// Which fallback trigger a final error corresponds to, if any.
pub fn fallback_reason(err: &GatewayError) -> Option<(FallbackOn, FaasReason)> {
    match err {
        GatewayError::NoEndpoints { .. } => Some((FallbackOn::NoHealthyPods, FaasReason::NoHealthyPods)),
        GatewayError::CircuitOpen { .. } => Some((FallbackOn::CircuitOpen, FaasReason::CircuitOpen)),
        GatewayError::Unreachable { .. } | GatewayError::UpstreamTimeout { .. } | GatewayError::BadStatus { .. } => {
            Some((FallbackOn::RetriesExhausted, FaasReason::RetriesExhausted))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod tests;
