//! Unit tests of `rate_limit`.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::config::{LimitKey, LimitScope, RateLimitSpec};

#[tokio::test(start_paused = true)]
async fn admits_burst_then_the_rate() {
    let l = LocalLimiter::new(10.0, 5, 100);
    let admitted = (0..20).filter(|_| matches!(l.check(1), Decision::Allow { .. })).count();
    assert_eq!(admitted, 5, "burst");
    match l.check(1) {
        Decision::Deny { retry_after } => assert!(retry_after <= Duration::from_millis(100)),
        d => panic!("{d:?}"),
    }
    // One second later: ten more (the rate), no more.
    tokio::time::advance(Duration::from_secs(1)).await;
    let admitted = (0..20).filter(|_| matches!(l.check(1), Decision::Allow { .. })).count();
    assert_eq!(admitted, 5, "bucket refills up to its burst size");
    // Other keys have their own budget.
    assert!(matches!(l.check(2), Decision::Allow { remaining: 4 }));
}

#[tokio::test(start_paused = true)]
async fn key_set_is_bounded() {
    let l = LocalLimiter::new(1.0, 1, 3);
    for k in 0..100 {
        let _ = l.check(k);
    }
    assert_eq!(l.keys(), 3, "{} keys tracked", l.keys());
    tokio::time::advance(Duration::from_secs(5)).await;
    l.sweep();
    assert_eq!(l.keys(), 0);
}

/// Admitted requests of `key` in `n` tries.
fn admitted(l: &LocalLimiter, key: KeyHash, n: usize) -> usize {
    (0..n)
        .filter(|_| matches!(l.check(key), Decision::Allow { .. }))
        .count()
}

/// The defect: once `max_keys` were tracked, every request — known clients' too — went to the
/// one overflow bucket, so a flood of one-off keys took known clients' budget away.
#[tokio::test(start_paused = true)]
async fn a_key_flood_leaves_known_clients_their_own_buckets() {
    let l = LocalLimiter::new(10.0, 10, 8);
    // Two known clients: one has spent its burst, one has spent half.
    assert_eq!(admitted(&l, 1, 20), 10);
    assert_eq!(admitted(&l, 2, 5), 5);
    // A flood of 1000 new keys fills the table and then shares the overflow bucket.
    let flood: usize = (1000..2000).map(|k| admitted(&l, k, 3)).sum();
    assert_eq!(l.keys(), 8, "bounded");
    // The first two flood keys (the table below half) start full, the next four with one
    // request each; beyond the table the rest of the flood shares one burst of 10.
    assert_eq!(flood, 2 * 3 + 4 + 10, "the flood's take");
    // Known clients kept their own state: the spent one is still refused (no reset), the
    // other still has its other half (not pushed into the spent overflow bucket).
    assert_eq!(admitted(&l, 1, 5), 0);
    assert_eq!(admitted(&l, 2, 20), 5);
}

#[tokio::test(start_paused = true)]
async fn new_keys_past_half_the_table_earn_their_burst() {
    let l = LocalLimiter::new(10.0, 10, 4);
    assert_eq!(admitted(&l, 1, 20), 10, "below half: a whole burst");
    assert_eq!(admitted(&l, 2, 20), 10);
    assert_eq!(admitted(&l, 3, 20), 1, "past half: one request");
    // It earns the rest at the rate, up to the whole burst.
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(admitted(&l, 3, 20), 5);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(admitted(&l, 3, 20), 10);
}

#[tokio::test(start_paused = true)]
async fn sweeps_forget_only_full_buckets() {
    let l = LocalLimiter::new(10.0, 10, 4);
    assert_eq!(admitted(&l, 1, 20), 10, "spent: refills over 1 s");
    assert_eq!(admitted(&l, 2, 1), 1, "one request: full again after 100 ms");
    tokio::time::advance(Duration::from_millis(500)).await;
    l.sweep();
    assert_eq!(
        l.keys(),
        1,
        "key 2 is full again and forgotten; key 1 is still refilling"
    );
    // Key 1 was not reset by the sweep: it has what it earned in 500 ms, no more.
    assert_eq!(admitted(&l, 1, 20), 5);
    // A forgotten key comes back with a full bucket: what it had anyway.
    assert_eq!(admitted(&l, 2, 20), 10);
    // The room a sweep frees goes to new keys, which get their own bucket again.
    for k in 10..12 {
        assert_eq!(admitted(&l, k, 1), 1);
    }
    assert_eq!(l.keys(), 4);
    assert_eq!(admitted(&l, 99, 20), 10, "overflow bucket: its own burst");
    assert_eq!(admitted(&l, 98, 20), 0, "shared by every key beyond the table");
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
        ipv6_prefix: 64,
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
/// which governor refused: the fallback quota was one request per second.
#[tokio::test(start_paused = true)]
async fn rates_beyond_a_billion_per_second_stay_unlimited_in_practice() {
    for rate in [2e9, 4_294_967_295.0] {
        let l = LocalLimiter::new(rate, 1, 100);
        assert!(matches!(l.check(1), Decision::Allow { .. }));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(matches!(l.check(1), Decision::Allow { .. }), "{rate}/s after 1 ms");
    }
}

#[tokio::test(start_paused = true)]
async fn ipv6_clients_share_a_bucket_per_prefix() {
    let mut spec = cluster_spec(1);
    spec.scope = LimitScope::Local;
    spec.key = LimitKey::ClientIp;
    spec.burst = 2;
    let l = RouteLimit::new("r", &spec);
    let none = http::HeaderMap::new();
    let key = |ip: &str| l.key(ip.parse().ok(), &none);
    // A client rotating through its /64 is one client.
    assert!(matches!(l.check_local(key("2001:db8::1")), Decision::Allow { .. }));
    assert!(matches!(l.check_local(key("2001:db8::2")), Decision::Allow { .. }));
    assert!(matches!(l.check_local(key("2001:db8::3")), Decision::Deny { .. }));
    assert!(matches!(l.check_local(key("2001:db8:0:1::1")), Decision::Allow { .. }));
}
