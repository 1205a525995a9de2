//! Unit tests of `rate_limit`.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::config::{LimitKey, LimitScope, RateLimitSpec};
use governor::clock::FakeRelativeClock;

#[test]
fn admits_burst_then_the_rate() {
    let clock = FakeRelativeClock::default();
    let l = LocalLimiter::with_clock(10.0, 5, 100, clock.clone());
    let admitted = (0..20).filter(|_| matches!(l.check(1), Decision::Allow { .. })).count();
    assert_eq!(admitted, 5, "burst");
    match l.check(1) {
        Decision::Deny { retry_after } => assert!(retry_after <= Duration::from_millis(100)),
        d => panic!("{d:?}"),
    }
    // One second later: ten more (the rate), no more.
    clock.advance(Duration::from_secs(1));
    let admitted = (0..20).filter(|_| matches!(l.check(1), Decision::Allow { .. })).count();
    assert_eq!(admitted, 5, "bucket refills up to its burst size");
    // Other keys have their own budget.
    assert!(matches!(l.check(2), Decision::Allow { remaining: 4 }));
}

#[test]
fn key_set_is_bounded() {
    let clock = FakeRelativeClock::default();
    let l = LocalLimiter::with_clock(1.0, 1, 3, clock.clone());
    for k in 0..100 {
        let _ = l.check(k);
    }
    assert!(l.keys() <= 4, "{} keys tracked", l.keys());
    clock.advance(Duration::from_secs(5));
    l.sweep();
    assert_eq!(l.keys(), 0);
}

fn cluster_spec(batch: u32) -> RateLimitSpec {
    RateLimitSpec {
        requests_per_second: 100,
        burst: 20,
        key: LimitKey::Route,
        scope: LimitScope::Cluster,
        max_keys: 2,
        local_share: 0.5,
        batch,
    }
}

fn grant(granted: u32, wait_ms: u64, remaining: u32) -> Grant {
    Grant {
        granted,
        wait: Duration::from_millis(wait_ms),
        remaining,
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_spent_locally_then_asks_again() {
    let l = RouteLimit::new("r", &cluster_spec(5));
    let now = Instant::now();
    // One round trip gave 5 tokens: this request takes one, four wait in the lease.
    assert_eq!(
        l.record_grant(1, true, grant(5, 0, 10), now),
        Decision::Allow { remaining: 14 }
    );
    for left in (0..4).rev() {
        assert_eq!(l.spend_lease(1, now), Some(Decision::Allow { remaining: left }));
    }
    // Empty, and Redis said more are available at once: the next request asks Redis.
    assert_eq!(l.spend_lease(1, now), None);
    // Another key has no lease.
    assert_eq!(l.spend_lease(2, now), None);
}

#[tokio::test(start_paused = true)]
async fn an_empty_shared_bucket_refuses_locally_until_refill() {
    let mut l = RouteLimit::new("r", &cluster_spec(5));
    l.jitter = || 0.0;
    let now = Instant::now();
    assert_eq!(
        l.record_grant(1, true, grant(0, 200, 0), now),
        Decision::Deny {
            retry_after: Duration::from_millis(200)
        }
    );
    tokio::time::advance(Duration::from_millis(50)).await;
    assert_eq!(
        l.spend_lease(1, Instant::now()),
        Some(Decision::Deny {
            retry_after: Duration::from_millis(150)
        })
    );
    // When the batch is due again, Redis is asked.
    tokio::time::advance(Duration::from_millis(150)).await;
    assert_eq!(l.spend_lease(1, Instant::now()), None);

    // A partial grant admits, keeps what it can, then refuses until the rest has accrued.
    assert!(matches!(
        l.record_grant(1, true, grant(2, 30, 0), Instant::now()),
        Decision::Allow { remaining: 1 }
    ));
    assert!(matches!(
        l.spend_lease(1, Instant::now()),
        Some(Decision::Allow { remaining: 0 })
    ));
    assert!(matches!(l.spend_lease(1, Instant::now()), Some(Decision::Deny { .. })));
}

#[tokio::test(start_paused = true)]
async fn unspent_tokens_lapse_and_are_swept() {
    let l = RouteLimit::new("r", &cluster_spec(5));
    let _ = l.record_grant(1, true, grant(5, 0, 0), Instant::now());
    assert_eq!(l.leased_keys(), 1);
    tokio::time::advance(LEASE_TTL + Duration::from_millis(1)).await;
    assert_eq!(l.spend_lease(1, Instant::now()), None, "a lapsed lease is not spent");
    // A fresh grant replaces the lapsed tokens rather than adding to them.
    assert_eq!(
        l.record_grant(1, true, grant(3, 0, 0), Instant::now()),
        Decision::Allow { remaining: 2 }
    );
    tokio::time::advance(LEASE_TTL + Duration::from_millis(1)).await;
    l.sweep();
    assert_eq!(l.leased_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn grants_not_kept_leave_no_lease() {
    let l = RouteLimit::new("r", &cluster_spec(1));
    assert_eq!(
        l.record_grant(1, false, grant(1, 0, 7), Instant::now()),
        Decision::Allow { remaining: 7 }
    );
    assert_eq!(l.leased_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn short_grants_spread_the_next_ask() {
    let mut l = RouteLimit::new("r", &cluster_spec(5));
    l.jitter = || 0.5;
    // Came up short: wait for the refill plus half a refill more.
    assert_eq!(
        l.record_grant(1, true, grant(0, 100, 0), Instant::now()),
        Decision::Deny {
            retry_after: Duration::from_millis(150)
        }
    );
    // A full grant does not wait.
    let _ = l.record_grant(2, true, grant(5, 0, 0), Instant::now());
    for _ in 0..4 {
        assert!(matches!(l.spend_lease(2, Instant::now()), Some(Decision::Allow { .. })));
    }
    assert_eq!(l.spend_lease(2, Instant::now()), None);
}

#[tokio::test(start_paused = true)]
async fn one_batch_in_flight_per_key_and_no_refusal_while_tokens_are_held() {
    let mut l = RouteLimit::new("r", &cluster_spec(5));
    l.jitter = || 0.0;
    let now = Instant::now();
    // The first miss fetches the batch; a concurrent miss asks for its own single token.
    assert!(l.claim_fetch(1, now));
    assert!(!l.claim_fetch(1, now));
    // The single-token ask came back empty-handed before the batch arrived: refused.
    assert!(matches!(
        l.record_grant(1, false, grant(0, 50, 0), now),
        Decision::Deny { .. }
    ));
    // The batch arrives; the next miss may fetch again.
    assert!(matches!(
        l.record_grant(1, true, grant(5, 0, 0), now),
        Decision::Allow { remaining: 4 }
    ));
    assert!(l.claim_fetch(1, now));
    // A concurrent single-token ask that got nothing uses a held token instead of refusing.
    assert_eq!(
        l.record_grant(1, false, grant(0, 50, 0), now),
        Decision::Allow { remaining: 3 }
    );
    // So does a batch fetch that got nothing.
    assert_eq!(
        l.record_grant(1, true, grant(0, 50, 0), now),
        Decision::Allow { remaining: 2 }
    );
    // A full table does not take new keys: their misses ask for single tokens.
    assert!(l.claim_fetch(2, now));
    assert!(!l.claim_fetch(3, now), "max_keys is 2");
}

/// A rate above 1e9/s (`requests_per_second` takes any u32) made the period round to zero,
/// which governor refuses: the fallback quota was one request per second.
#[test]
fn rates_beyond_a_billion_per_second_stay_unlimited_in_practice() {
    for rate in [2e9, 4_294_967_295.0] {
        let clock = FakeRelativeClock::default();
        let l = LocalLimiter::with_clock(rate, 1, 100, clock.clone());
        assert!(matches!(l.check(1), Decision::Allow { .. }));
        clock.advance(Duration::from_millis(1));
        assert!(matches!(l.check(1), Decision::Allow { .. }), "{rate}/s after 1 ms");
    }
}
