//! Unit tests of `endpoint`.
#![allow(clippy::unwrap_used)]
use super::*;

fn ep(port: u16) -> Arc<Endpoint> {
    Endpoint::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Origin::Static,
        &LoadTuning::default(),
        &LoadBoard::new(),
    )
}

#[tokio::test(start_paused = true)]
async fn slow_answer_raises_cost_at_once_and_decays_later() {
    // A low starting cost so a handful of samples dominate the estimate.
    let t = LoadTuning {
        default_rtt: Duration::from_millis(1),
        ..LoadTuning::default()
    };
    let board = LoadBoard::new();
    let fast = Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 1)), Origin::Static, &t, &board);
    let slow = Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 2)), Origin::Static, &t, &board);
    for _ in 0..5 {
        let g = fast.start();
        tokio::time::advance(Duration::from_millis(5)).await;
        g.success(&t, None);
    }
    let g = slow.start();
    tokio::time::advance(Duration::from_millis(150)).await;
    g.success(&t, None);
    let now = Instant::now();
    assert!(slow.cost(now, &t) > 10.0 * fast.cost(now, &t));
    // While the fast pod keeps answering, the idle slow pod's estimate decays below it, so
    // the slow pod gets re-probed rather than being shunned forever.
    tokio::time::advance(Duration::from_secs(60)).await;
    let g = fast.start();
    tokio::time::advance(Duration::from_millis(5)).await;
    g.success(&t, None);
    let now = Instant::now();
    assert!(slow.cost(now, &t) < fast.cost(now, &t));
}

#[tokio::test(start_paused = true)]
async fn in_flight_and_report_scale_cost() {
    let t = LoadTuning::default();
    let a = ep(1);
    let b = ep(2);
    let now = Instant::now();
    assert_eq!(a.cost(now, &t), b.cost(now, &t));
    let _held = a.start();
    assert_eq!(a.in_flight(), 1);
    assert!(a.cost(now, &t) > b.cost(now, &t));
    drop(_held);
    assert_eq!(a.in_flight(), 0);
    // b reports it is busy
    let g = b.start();
    g.success(
        &t,
        Some(LoadReport {
            utilization: 0.95,
            inflight: Some(12),
        }),
    );
    let g = a.start();
    g.success(
        &t,
        Some(LoadReport {
            utilization: 0.1,
            inflight: Some(0),
        }),
    );
    let now = Instant::now();
    assert!(b.cost(now, &t) > 10.0 * a.cost(now, &t));
    // reports expire
    tokio::time::advance(t.report_ttl + Duration::from_secs(1)).await;
    let now = Instant::now();
    assert_eq!(a.cost(now, &t), b.cost(now, &t));
}

#[tokio::test(start_paused = true)]
async fn failures_penalise_then_recover() {
    let t = LoadTuning::default();
    let a = ep(1);
    let b = ep(2);
    a.start().failure(&t, None);
    b.start().success(&t, None);
    let now = Instant::now();
    assert!(a.cost(now, &t) > 3.0 * b.cost(now, &t));
    assert_eq!(a.view(now, &t).failures, 1);
    tokio::time::advance(Duration::from_secs(120)).await;
    let now = Instant::now();
    assert!(a.view(now, &t).penalty < 1.01);
}

/// Issue 10: a `default_rtt` below the 1 µs floor (`0s`) made the seed's `clamp` bounds cross
/// once a peer had served.
#[tokio::test(start_paused = true)]
async fn a_default_rtt_below_the_floor_seeds_without_a_panic() {
    for default_rtt in [Duration::ZERO, Duration::from_nanos(1), Duration::from_nanos(999)] {
        let t = LoadTuning {
            default_rtt,
            ..LoadTuning::default()
        };
        let peer = Endpoint::new(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            Origin::Static,
            &t,
            &LoadBoard::new(),
        );
        let g = peer.start();
        tokio::time::advance(Duration::from_millis(5)).await;
        g.success(&t, None);
        let seed = Endpoint::seed(&[peer], Instant::now(), &t);
        assert_eq!(seed.rtt, default_rtt, "never more pessimistic than the default");
    }
}
