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

/// Two pods; route `r` retries 5xx up to 3 tries with a budget of 1 retry/s (10 per window).
const BUDGETED: &str = "\
clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"] }]
routes:
  - { name: r, match: {}, cluster: c, retry: { attempts: 3, on: [5xx], budget_percent: 0, min_per_second: 1 } }
";

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_retries_and_refills_with_time() {
    let snap = crate::proxy::testing::snapshot(BUDGETED);
    let route = crate::proxy::testing::route(&snap, "r");
    let s = state(1);
    let granted = (0..15)
        .filter(|_| decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Status5xx, &s) == Verdict::Retry)
        .count();
    assert_eq!(granted, 10, "min_per_second × the 10 s window, no more");
    // Refused by the budget, a GET on a stale pooled connection may still be replayed once.
    assert_eq!(
        decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Status5xx, &s),
        Verdict::ReplayIfStaleConnection
    );
    let post = TryState { idempotent: false, ..s };
    assert_eq!(
        decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Status5xx, &post),
        Verdict::Stop
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Status5xx, &s),
        Verdict::Retry
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_policy_only_connect_failures_fail_over_and_only_to_another_pod() {
    let snap = crate::proxy::testing::snapshot(
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"] }]\nroutes: [{ name: r, match: {}, cluster: c }]\n",
    );
    let route = crate::proxy::testing::route(&snap, "r");
    assert_eq!(
        decide(
            &crate::proxy::testing::routed(&route, 1),
            RetryOn::ConnectFailure,
            &state(1)
        ),
        Verdict::Retry
    );
    assert_ne!(
        decide(
            &crate::proxy::testing::routed(&route, 2),
            RetryOn::ConnectFailure,
            &state(2)
        ),
        Verdict::Retry,
        "both pods tried"
    );
    assert_ne!(
        decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Timeout, &state(1)),
        Verdict::Retry
    );
    assert_ne!(
        decide(&crate::proxy::testing::routed(&route, 1), RetryOn::Status5xx, &state(1)),
        Verdict::Retry
    );
}

#[test]
fn the_pause_before_a_try() {
    let mut rng = SmallRng::seed_from_u64(1);
    let r = spec(3, vec![RetryOn::Timeout]);
    assert_eq!(
        pause(Some(&r), 0, Duration::from_secs(1), &mut rng),
        Duration::ZERO,
        "first try"
    );
    assert_eq!(
        pause(None, 2, Duration::from_secs(1), &mut rng),
        Duration::ZERO,
        "no policy"
    );
    let p = pause(Some(&r), 1, Duration::from_secs(1), &mut rng);
    assert!(p >= Duration::from_millis(10) && p < Duration::from_millis(30), "{p:?}");
    assert_eq!(
        pause(Some(&r), 5, Duration::from_millis(3), &mut rng),
        Duration::from_millis(3),
        "never past the deadline"
    );
}

#[test]
fn a_shed_request_goes_on_whatever_the_policy_and_the_method() {
    let post = TryState {
        idempotent: false,
        ..state(1)
    };
    // Not listed in `on`, a POST, a policy of one try: still retried (it never ran).
    assert!(may_retry(
        Some(&spec(1, vec![RetryOn::Status5xx])),
        RetryOn::Overloaded,
        &post
    ));
    assert!(may_retry(None, RetryOn::Overloaded, &post));
    // Bounded like connect failures without a policy...
    assert!(!may_retry(None, RetryOn::Overloaded, &state(3)));
    assert!(!may_retry(Some(&spec(1, vec![])), RetryOn::Overloaded, &state(3)));
    // ...and never once the answer started or the body cannot be sent again.
    let started = TryState {
        response_started: true,
        ..state(1)
    };
    assert!(!may_retry(None, RetryOn::Overloaded, &started));
    // A 5xx POST is not retried without opting in: the pod may have run it.
    assert!(!may_retry(
        Some(&spec(2, vec![RetryOn::Status5xx])),
        RetryOn::Status5xx,
        &post
    ));
}
