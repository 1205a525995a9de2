//! Unit tests of `latency`.
use super::*;

#[test]
fn tracks_the_percentile_of_recent_samples() {
    let w = LatencyWindow::new(0.95);
    assert_eq!(w.current(), None);
    for i in 1..=128u64 {
        w.record(Duration::from_millis(i));
    }
    let p95 = w.current().map(|d| d.as_millis());
    assert!(matches!(p95, Some(121..=123)), "{p95:?}");
    // Old samples roll out of the window.
    for _ in 0..SAMPLES {
        w.record(Duration::from_millis(5));
    }
    assert_eq!(w.current(), Some(Duration::from_millis(5)));
}
