//! Unit tests of `live`: quantiles from histogram buckets, windows between two samples, the
//! error ring.
#![allow(clippy::unwrap_used)]
use super::*;

fn totals(requests: u64, errors: u64, buckets: &[(f64, u64)]) -> RouteTotals {
    RouteTotals {
        requests,
        errors,
        buckets: buckets.to_vec(),
    }
}

const INF: f64 = f64::INFINITY;

#[test]
fn quantiles_interpolate_inside_their_bucket() {
    // 100 observations: 50 up to 10 ms, 40 more up to 20 ms, 10 more up to 50 ms.
    let b = [(0.01, 50), (0.02, 90), (0.05, 100), (INF, 100)];
    assert_eq!(quantile(0.5, &b), Some(0.01));
    let p99 = quantile(0.99, &b).unwrap();
    assert!((p99 - 0.047).abs() < 1e-9, "{p99}");
    assert_eq!(quantile(0.5, &[(0.01, 0), (INF, 0)]), None);
    assert_eq!(quantile(0.5, &[]), None);
}

#[test]
fn a_quantile_in_the_open_bucket_is_the_largest_bound() {
    let b = [(0.01, 1), (10.0, 1), (INF, 100)];
    assert_eq!(quantile(0.99, &b), Some(10.0));
}

#[test]
fn empty_buckets_below_the_rank_are_skipped() {
    let b = [(0.001, 0), (0.0025, 0), (0.005, 10), (INF, 10)];
    let p50 = quantile(0.5, &b).unwrap();
    assert!((0.0025..=0.005).contains(&p50), "{p50}");
}

#[test]
fn a_window_is_the_difference_of_two_samples() {
    let before = totals(100, 5, &[(0.01, 90), (0.1, 100), (INF, 100)]);
    let after = totals(300, 25, &[(0.01, 190), (0.1, 300), (INF, 300)]);
    let w = totals_window(&before, &after, 2.0);
    assert_eq!(w.requests, 200);
    assert_eq!(w.rate, 100.0);
    assert_eq!(w.error_rate, Some(0.1));
    // 100 of the 200 were under 10 ms: the median sits at that bound.
    assert_eq!(w.p50_ms, Some(10.0));
    assert!(w.p99_ms.unwrap() > 10.0 && w.p99_ms.unwrap() <= 100.0);
}

#[test]
fn a_window_without_answers_has_no_rates_to_show() {
    let t = totals(7, 1, &[(0.01, 7), (INF, 7)]);
    let w = totals_window(&t, &t, 1.0);
    assert_eq!((w.requests, w.rate, w.error_rate, w.p99_ms), (0, 0.0, None, None));
}

#[test]
fn counts_that_went_down_read_as_nothing() {
    let before = totals(500, 50, &[(0.01, 500), (INF, 500)]);
    let after = totals(10, 0, &[(0.01, 10), (INF, 10)]);
    let w = totals_window(&before, &after, 1.0);
    assert_eq!(w.requests, 0);
}

#[test]
fn merged_histograms_add_up() {
    let mut sum = RouteTotals::default();
    merge(&mut sum, &totals(10, 1, &[(0.01, 10), (INF, 10)]));
    merge(&mut sum, &totals(5, 2, &[(0.01, 1), (INF, 5)]));
    assert_eq!(sum, totals(15, 3, &[(0.01, 11), (INF, 15)]));
}

#[test]
fn the_error_ring_keeps_the_newest_lines_first() {
    let live = Live::default();
    for i in 0..RECENT_ERRORS + 5 {
        live.error_line(format!("{i}"));
    }
    let lines = live.recent_errors();
    assert_eq!(lines.len(), RECENT_ERRORS);
    assert_eq!(lines[0], format!("{}", RECENT_ERRORS + 4));
    assert_eq!(lines[RECENT_ERRORS - 1], "5");
}
