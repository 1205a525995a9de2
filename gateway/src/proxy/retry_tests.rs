//! Unit tests of `retry`.
#![allow(clippy::unwrap_used)]
use super::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn spec(attempts: u32, on: Vec<RetryOn>) -> RetrySpec {
    RetrySpec {
        attempts,
        on,
        budget_percent: 20.0,
        min_per_second: 10,
        backoff: Duration::from_millis(20),
        non_idempotent: false,
    }
}

fn state(attempts: u32) -> TryState {
    TryState {
        attempts,
        idempotent: true,
        replayable: true,
        response_started: false,
        remaining: Duration::from_secs(1),
    }
}

#[test]
fn policy_limits_causes_attempts_and_methods() {
    let r = spec(2, vec![RetryOn::Timeout, RetryOn::Status5xx]);
    assert!(may_retry(Some(&r), RetryOn::Timeout, &state(1)));
    assert!(
        !may_retry(Some(&r), RetryOn::Timeout, &state(2)),
        "attempts include the first"
    );
    assert!(!may_retry(Some(&r), RetryOn::Reset, &state(1)), "reset not listed");
    let post = TryState {
        idempotent: false,
        ..state(1)
    };
    assert!(!may_retry(Some(&r), RetryOn::Timeout, &post));
    let r3 = spec(2, vec![RetryOn::ConnectFailure]);
    assert!(
        may_retry(Some(&r3), RetryOn::ConnectFailure, &post),
        "nothing reached the pod"
    );
    let r2 = RetrySpec {
        non_idempotent: true,
        ..r.clone()
    };
    assert!(may_retry(Some(&r2), RetryOn::Timeout, &post));
    for blocked in [
        TryState {
            response_started: true,
            ..state(1)
        },
        TryState {
            replayable: false,
            ..state(1)
        },
        TryState {
            remaining: Duration::ZERO,
            ..state(1)
        },
    ] {
        assert!(!may_retry(Some(&r), RetryOn::Timeout, &blocked));
    }
    // Without a retry block only connect failures fail over.
    assert!(may_retry(None, RetryOn::ConnectFailure, &state(2)));
    assert!(!may_retry(None, RetryOn::ConnectFailure, &state(3)));
    assert!(!may_retry(None, RetryOn::Timeout, &state(1)));
}

#[test]
fn backoff_grows_with_jitter() {
    let mut rng = SmallRng::seed_from_u64(9);
    for attempts in 1..5u32 {
        let b = backoff(Duration::from_millis(10), attempts, &mut rng);
        let nominal = Duration::from_millis(10 * (1 << (attempts - 1)));
        assert!(b >= nominal / 2 && b < nominal * 3 / 2, "{attempts}: {b:?}");
    }
}
