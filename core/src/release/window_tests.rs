//! Unit tests of `window`: synthetic instants (`origin + offset`) stand for the clock.
#![allow(clippy::unwrap_used)]
use super::*;

const WINDOW: Duration = Duration::from_secs(10);
const SLICE: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn buckets_cover_the_range_in_order_within_two_percent() {
    assert_eq!(BUCKETS, 698);
    let mut last = 0;
    for us in (0..200)
        .chain((200..MAX_US).step_by(997))
        .chain([MAX_US, MAX_US + 1, u64::MAX])
    {
        let i = index(us);
        assert!(i >= last && i < BUCKETS, "{us} µs → {i}");
        last = i;
        if (10..=MAX_US).contains(&us) {
            let v = value(i) as f64;
            assert!(
                (v - us as f64).abs() / us as f64 <= 1.0 / 64.0 + 1e-9,
                "{us} µs reads as {v}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn counts_failures_and_forgets_what_left_the_window() {
    let t0 = Instant::now();
    let w = VersionWindow::new(WINDOW, t0);
    assert_eq!(w.window(), WINDOW);
    assert_eq!(w.snapshot(t0), WindowStats::default());
    for i in 0..100u64 {
        w.record(t0 + ms(i * 10), ms(5), i % 5 == 0);
    }
    let s = w.snapshot(t0 + ms(1000));
    assert_eq!((s.requests, s.failures), (100, 20));
    assert!((s.error_rate - 0.2).abs() < 1e-12);
    // A slice leaves once a whole window of slices began after it.
    assert_eq!(w.snapshot(t0 + ms(9_999)).requests, 100);
    assert_eq!(w.snapshot(t0 + ms(10_000)).requests, 50);
    assert_eq!(w.snapshot(t0 + ms(10_499)).requests, 50);
    assert_eq!(w.snapshot(t0 + ms(10_500)).requests, 0);
    // The paused clock is what the gateway passes in.
    tokio::time::advance(ms(20_000)).await;
    assert_eq!(w.snapshot(Instant::now()).requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_reused_slice_starts_empty() {
    let t0 = Instant::now();
    let w = VersionWindow::new(WINDOW, t0);
    w.record(t0, ms(1), true);
    // Same slot, one window later: the old sample is cleared, not added to.
    w.record(t0 + WINDOW, ms(1), false);
    let s = w.snapshot(t0 + WINDOW);
    assert_eq!((s.requests, s.failures), (1, 0));
    // A late sample for time the slot no longer holds is dropped.
    w.record(t0 + SLICE / 2, ms(1), true);
    assert_eq!(w.snapshot(t0 + WINDOW).failures, 0);
    // Before the origin counts as the origin.
    let w = VersionWindow::new(WINDOW, t0 + ms(100));
    w.record(t0, ms(1), false);
    assert_eq!(w.snapshot(t0 + ms(100)).requests, 1);
}

#[tokio::test(start_paused = true)]
async fn quantiles_are_within_two_percent() {
    let t0 = Instant::now();
    let w = VersionWindow::new(WINDOW, t0);
    // 1..=10_000 × 37 µs: p50 = 185 ms, p99 = 366.3 ms.
    for i in 1..=10_000u64 {
        w.record(
            t0 + Duration::from_micros(i * 100),
            Duration::from_micros(i * 37),
            false,
        );
    }
    let s = w.snapshot(t0 + ms(1_000));
    let close = |got: Duration, want: f64| (got.as_secs_f64() * 1e6 - want).abs() / want <= 0.02;
    assert!(close(s.p50, 185_000.0), "{:?}", s.p50);
    assert!(close(s.p99, 366_300.0), "{:?}", s.p99);
    // Out of range: clamped, not lost.
    let w = VersionWindow::new(WINDOW, t0);
    w.record(t0, Duration::from_secs(3600), true);
    w.record(t0, Duration::ZERO, false);
    let s = w.snapshot(t0);
    assert_eq!(s.requests, 2);
    assert!(
        s.p99 >= Duration::from_secs(59) && s.p99 <= Duration::from_secs(61),
        "{:?}",
        s.p99
    );
    assert_eq!(s.p50, Duration::ZERO);
}

#[test]
fn a_tiny_window_still_works() {
    let t0 = Instant::now();
    let w = VersionWindow::new(Duration::ZERO, t0);
    assert_eq!(w.window(), ms(1));
    w.record(t0, ms(1), false);
    assert_eq!(w.snapshot(t0).requests, 1);
    assert_eq!(w.snapshot(t0 + ms(2)).requests, 0);
}

/// Threads racing over slices that roll over under them: no panic, nothing counted twice,
/// and once they are done the window holds exactly the recent samples.
#[test]
fn concurrent_records_across_rollovers_stay_sane() {
    let t0 = Instant::now();
    let w = std::sync::Arc::new(VersionWindow::new(WINDOW, t0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    // Time moves on at 1 ms per sample, each thread a little out of step.
                    w.record(t0 + ms(i + t * 3), ms(i % 50), i % 10 == 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let end = t0 + ms(20_000);
    let s = w.snapshot(end);
    // The last 10 s (19.5 s of slices + the current): at most 4 threads × 10_000 samples.
    assert!(s.requests <= 40_000 + 4 * 12, "{s:?}");
    assert!(s.requests >= 30_000, "{s:?}");
    assert!(s.failures <= s.requests);
    // Quiet again, every slice comes round cleanly.
    for i in 0..SLICES as u64 {
        w.record(end + WINDOW + SLICE * i as u32, ms(1), false);
    }
    assert_eq!(
        w.snapshot(end + WINDOW + SLICE * (SLICES as u32 - 1)).requests,
        SLICES as u64
    );
}
