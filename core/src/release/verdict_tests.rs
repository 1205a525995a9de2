//! Unit tests of `verdict`.
#![allow(clippy::unwrap_used)]
use super::*;

fn analysis() -> AnalysisSpec {
    AnalysisSpec {
        window: Duration::from_secs(10),
        min_requests: 100,
        max_error_rate_delta: 0.01,
        max_p99_ratio: 1.5,
    }
}

fn stats(requests: u64, failures: u64, p99_ms: f64) -> WindowStats {
    WindowStats {
        requests,
        failures,
        error_rate: if requests == 0 {
            0.0
        } else {
            failures as f64 / requests as f64
        },
        p50: Duration::from_secs_f64(p99_ms / 2000.0),
        p99: Duration::from_secs_f64(p99_ms / 1000.0),
    }
}

fn reason(v: &Verdict) -> Option<BreachReason> {
    match v {
        Verdict::Breach { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn nothing_is_judged_before_the_canary_has_min_requests() {
    let v = judge(&analysis(), &stats(5000, 0, 20.0), &stats(99, 99, 900.0));
    assert!(matches!(v, Verdict::Insufficient { min_requests: 100, .. }), "{v:?}");
    assert_eq!(v.observed().canary_requests, 99);
    assert!(
        v.summary().contains("canary 99 / stable 5000 requests"),
        "{}",
        v.summary()
    );
}

#[test]
fn error_rate_breaches_strictly_above_the_delta() {
    let a = analysis();
    // Stable 1 %, canary 2 %: exactly the delta, healthy.
    assert!(judge(&a, &stats(1000, 10, 20.0), &stats(1000, 20, 20.0)).is_healthy());
    let v = judge(&a, &stats(1000, 10, 20.0), &stats(1000, 21, 20.0));
    assert_eq!(reason(&v), Some(BreachReason::ErrorRate));
    assert!(
        v.summary().contains("canary 2.10% vs stable 1.00%") && v.summary().contains("more than 1.00% above"),
        "{}",
        v.summary()
    );
    // A canary no worse than a failing stable is not the canary's fault.
    assert!(judge(&a, &stats(1000, 300, 20.0), &stats(1000, 300, 20.0)).is_healthy());
}

#[test]
fn a_quiet_stable_side_is_a_zero_baseline() {
    let a = analysis();
    // Stable has 10 requests, 5 failed: too few to trust; the canary's 20 % is judged against 0.
    let v = judge(&a, &stats(10, 5, 20.0), &stats(500, 100, 20.0));
    assert_eq!(reason(&v), Some(BreachReason::ErrorRate));
    // No stable traffic at all (100 %): errors still count, latency cannot be compared.
    assert_eq!(
        reason(&judge(&a, &stats(0, 0, 0.0), &stats(500, 10, 20.0))),
        Some(BreachReason::ErrorRate)
    );
    assert!(judge(&a, &stats(0, 0, 0.0), &stats(500, 5, 900.0)).is_healthy());
}

#[test]
fn latency_breaches_above_the_ratio_and_the_noise_floor() {
    let a = analysis();
    let v = judge(&a, &stats(1000, 0, 20.0), &stats(1000, 0, 31.0));
    assert_eq!(reason(&v), Some(BreachReason::Latency));
    assert!(
        v.summary()
            .contains("canary p99 31.0 ms vs stable 20.0 ms, more than 1.5×"),
        "{}",
        v.summary()
    );
    assert!(
        judge(&a, &stats(1000, 0, 20.0), &stats(1000, 0, 30.0)).is_healthy(),
        "exactly 1.5×"
    );
    // Sub-millisecond differences are noise, however large the ratio.
    assert!(judge(&a, &stats(1000, 0, 0.2), &stats(1000, 0, 1.1)).is_healthy());
    assert_eq!(
        reason(&judge(&a, &stats(1000, 0, 0.2), &stats(1000, 0, 1.3))),
        Some(BreachReason::Latency)
    );
    // A faster canary is fine; too little stable traffic means no latency comparison.
    assert!(judge(&a, &stats(1000, 0, 20.0), &stats(1000, 0, 5.0)).is_healthy());
    assert!(judge(&a, &stats(99, 0, 20.0), &stats(1000, 0, 80.0)).is_healthy());
    // Errors are checked first.
    let v = judge(&a, &stats(1000, 0, 20.0), &stats(1000, 500, 80.0));
    assert_eq!(reason(&v), Some(BreachReason::ErrorRate));
}

#[test]
fn verdicts_serialize_with_their_numbers_and_read_back() {
    let v = judge(&analysis(), &stats(1000, 0, 20.0), &stats(1000, 200, 20.0));
    let json = serde_json::to_value(v).unwrap();
    assert_eq!(json["verdict"], "breach");
    assert_eq!(json["reason"], "error_rate");
    assert_eq!(json["canary_requests"], 1000);
    assert_eq!(json["canary_error_rate"], 0.2);
    assert_eq!(json["stable_p99_ms"], 20.0);
    assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), v);
    let h = judge(&analysis(), &stats(1000, 0, 20.0), &stats(1000, 0, 20.0));
    assert_eq!(serde_json::to_value(h).unwrap()["verdict"], "healthy");
    let i = judge(&analysis(), &stats(0, 0, 0.0), &stats(0, 0, 0.0));
    let back: Verdict = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(back, i);
}
