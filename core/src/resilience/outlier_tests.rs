//! Unit tests of `outlier`.
use super::*;

fn spec() -> OutlierSpec {
    OutlierSpec {
        consecutive_failures: 3,
        base_ejection: Duration::from_secs(5),
        max_ejection: Duration::from_secs(30),
        max_ejected_percent: 50,
    }
}

#[tokio::test(start_paused = true)]
async fn ejects_after_consecutive_failures_then_probes_back_with_backoff() {
    let h = Health::default();
    let s = spec();
    let now = Instant::now();
    assert_eq!(h.record_failure(now, &s, || true), None);
    h.record_success(); // a success resets the streak
    assert_eq!(h.record_failure(now, &s, || true), None);
    assert_eq!(h.record_failure(now, &s, || true), None);
    assert_eq!(h.record_failure(now, &s, || true), Some(Duration::from_secs(5)));
    assert!(!h.is_available(now));
    assert!(h.view(now).ejected);

    tokio::time::advance(Duration::from_secs(5)).await;
    let now = Instant::now();
    assert!(h.is_available(now), "ejection expired: half-open");
    // Half-open: one failure re-ejects at once, for twice as long.
    assert_eq!(h.record_failure(now, &s, || true), Some(Duration::from_secs(10)));
    tokio::time::advance(Duration::from_secs(10)).await;
    let now = Instant::now();
    assert!(h.is_available(now));
    h.record_success();
    assert!(!h.view(now).probing);
    // Proven healthy again: a single failure no longer ejects.
    assert_eq!(h.record_failure(now, &s, || true), None);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_and_cap_can_refuse() {
    let h = Health::default();
    let s = spec();
    for _ in 0..3 {
        h.record_failure(Instant::now(), &s, || false);
    }
    assert!(h.is_available(Instant::now()), "cluster cap refused the ejection");
    let mut last = Duration::ZERO;
    for _ in 0..6 {
        let now = Instant::now();
        while h.record_failure(now, &s, || true).map(|d| last = d).is_none() {}
        tokio::time::advance(last).await;
        assert!(h.is_available(Instant::now()));
    }
    assert_eq!(last, Duration::from_secs(30));
}

#[test]
fn cap_never_ejects_everything() {
    assert_eq!(ejection_cap(1, 100), 0);
    assert_eq!(ejection_cap(4, 50), 2);
    assert_eq!(ejection_cap(3, 50), 1);
    assert_eq!(ejection_cap(4, 100), 3);
}
