//! Unit tests of `rate_limit`.
#![allow(clippy::unwrap_used)]
use super::*;
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
