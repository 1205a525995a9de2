//! Unit tests of `budget`.
use super::*;

#[tokio::test(start_paused = true)]
async fn caps_retries_to_percent_plus_floor() {
    let b = RetryBudget::new(20.0, 1);
    for _ in 0..1000 {
        b.on_request();
    }
    // 20% of 1000 plus 1/s over the 10 s window.
    let granted = (0..1000).filter(|_| b.try_retry()).count();
    assert_eq!(granted, 210);
}

#[tokio::test(start_paused = true)]
async fn window_slides_and_refills() {
    let b = RetryBudget::new(0.0, 2);
    assert_eq!((0..100).filter(|_| b.try_retry()).count(), 20);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!((0..100).filter(|_| b.try_retry()).count(), 0, "still inside the window");
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(
        (0..100).filter(|_| b.try_retry()).count(),
        20,
        "old retries left the window"
    );
}
