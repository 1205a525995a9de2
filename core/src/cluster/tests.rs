//! Unit tests of `cluster`.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::config::LoadTuning;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn spec(addrs: &[u8]) -> ClusterSpec {
    ClusterSpec {
        name: "c".into(),
        source: Source::Static(
            addrs
                .iter()
                .map(|i| SocketAddr::from(([127, 0, 0, *i], 9100)))
                .collect(),
        ),
        lb: LbKind::P2cEwma,
        hash_key: None,
        connect_timeout: Duration::from_millis(100),
        idle_timeout: None,
        load: LoadTuning::default(),
        per_try_timeout: None,
        max_in_flight: Some(2),
        outlier: crate::config::OutlierSpec {
            consecutive_failures: 2,
            ..Default::default()
        },
        tls: None,
    }
}

#[tokio::test(start_paused = true)]
async fn removed_pod_drains_then_disappears_and_state_is_kept() {
    let c = Cluster::new(spec(&[11, 12]), None);
    let a11 = c.endpoints().active[0].clone();
    let held = a11.start();
    c.replace_endpoints(&[SocketAddr::from(([127, 0, 0, 12], 9100))], Origin::Dns, None);
    let set = c.endpoints();
    assert_eq!(set.active.len(), 1);
    assert_eq!(set.draining.len(), 1);
    assert!(set.draining[0].is_draining());
    drop(set);
    // the draining pod is never picked
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..20 {
        assert_eq!(
            c.pick(None, |_| true, &mut rng).unwrap().addr.ip().to_string(),
            "127.0.0.12"
        );
    }
    drop(held);
    c.sweep_drained();
    assert!(c.endpoints().draining.is_empty());
    // a reload keeps the very same endpoint objects (and so their counters)
    let before = c.endpoints().active[0].clone();
    let c2 = Cluster::new(spec(&[12, 13]), Some(&c));
    assert!(Arc::ptr_eq(&before, &c2.endpoints().active[0]));
    assert_eq!(c2.endpoints().active.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn failing_pod_is_ejected_and_circuit_breaker_counts() {
    let c = Cluster::new(spec(&[11, 12, 13, 14]), None);
    let bad = c.endpoints().active[0].clone();
    let g1 = c.start(&bad);
    let g2 = c.start(&bad);
    assert_eq!(c.in_flight(), 2);
    assert!(c.circuit_open());
    assert_eq!(c.finish(g1, false, None), None);
    assert!(c.finish(g2, false, None).is_some(), "second consecutive failure ejects");
    assert!(!c.circuit_open());
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..50 {
        assert_ne!(c.pick(None, |_| true, &mut rng).unwrap().addr, bad.addr);
    }
    assert_eq!(c.view().pods[0].state, "ejected");
    // The cap (50% of 4) allows a second ejection but not a third.
    for i in 1..4 {
        let e = c.endpoints().active[i].clone();
        let a = c.start(&e);
        let b = c.start(&e);
        c.finish(a, false, None);
        let ejected = c.finish(b, false, None).is_some();
        assert_eq!(ejected, i == 1, "pod {i}");
    }
    assert!(c.has_available());
}

#[tokio::test(start_paused = true)]
async fn a_joining_pod_is_eased_in_not_starved() {
    let c = Cluster::new(spec(&[11, 12, 13]), None);
    let tuning = LoadTuning::default();
    // The serving pods answer in 3 ms, for long enough that their estimates have converged.
    for _ in 0..60 {
        tokio::time::advance(Duration::from_millis(500)).await;
        let flights: Vec<_> = c.endpoints().active.iter().map(|e| e.start()).collect();
        tokio::time::advance(Duration::from_millis(3)).await;
        for f in flights {
            // They report light load, as arena-pod --load-report does.
            let report = crate::balance::report::LoadReport {
                utilization: 0.1,
                inflight: None,
            };
            f.success(&tuning, Some(report));
        }
    }
    let addrs: Vec<SocketAddr> = [11, 12, 13, 14]
        .iter()
        .map(|i| SocketAddr::from(([127, 0, 0, *i], 9100)))
        .collect();
    c.replace_endpoints(&addrs, Origin::Dns, None);
    let set = c.endpoints();
    let now = tokio::time::Instant::now();
    let new = set
        .active
        .iter()
        .find(|e| e.addr.ip().to_string() == "127.0.0.14")
        .unwrap();
    let old = &set.active[0];
    let (new_ms, old_ms) = (new.view(now, &tuning).ewma_ms, old.view(now, &tuning).ewma_ms);
    // Twice the serving pods' estimate: cautious, but nowhere near the 30 ms default.
    assert!(
        (new_ms - 2.0 * old_ms).abs() < 0.01,
        "new {new_ms} ms, serving {old_ms} ms"
    );
    assert!(new_ms < tuning.default_rtt.as_secs_f64() * 1000.0 / 2.0);
    // It claims no report it never sent (so spillover does not count a fresh pod as busy)...
    assert_eq!(new.reported_utilization(now, &tuning), None);
    // ...and is costed at what the serving pods report: a pod that has not reported yet must
    // not look five times busier than lightly loaded reporting pods.
    let (new_cost, old_cost) = (new.cost(now, &tuning), old.cost(now, &tuning));
    assert!(
        (new_cost / old_cost - new_ms / old_ms).abs() < 0.01,
        "new {new_cost}, serving {old_cost}"
    );
    // Idle pods everywhere: the newcomer loses every pair for now...
    let mut rng = SmallRng::seed_from_u64(7);
    let picks = |rng: &mut SmallRng| {
        (0..400)
            .filter(|_| c.pick(None, |_| true, rng).unwrap().addr.ip().to_string() == "127.0.0.14")
            .count()
    };
    assert_eq!(picks(&mut rng), 0);
    // ...but as soon as the serving pods are busy it takes its share.
    let held: Vec<_> = set
        .active
        .iter()
        .filter(|e| e.addr != new.addr)
        .map(|e| e.start())
        .collect();
    assert!(
        picks(&mut rng) > 50,
        "a joining pod must get traffic when the others are busy"
    );
    drop(held);
}

#[test]
fn the_breaker_never_admits_more_than_max_in_flight_from_racing_threads() {
    // Threads start tries together, hold them a moment, let go, again: with the check and the
    // count as one step, the cluster's count never passes the cap (2), and every slot taken
    // is given back.
    let c = Cluster::new(spec(&[11, 12]), None);
    let ep = c.endpoints().active[0].clone();
    let peak = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (c, ep, peak, barrier) = (&c, &ep, &peak, &barrier);
            s.spawn(move || {
                for _ in 0..300 {
                    barrier.wait();
                    let slot = c.try_start_at(ep, Instant::now());
                    peak.fetch_max(c.in_flight(), Ordering::Relaxed);
                    barrier.wait();
                    drop(slot);
                }
            });
        }
    });
    assert_eq!(peak.load(Ordering::Relaxed), 2, "the cap held and was reached");
    assert_eq!(c.in_flight(), 0, "every slot given back");
    let unlimited = Cluster::new(
        ClusterSpec {
            max_in_flight: None,
            ..spec(&[11])
        },
        None,
    );
    let ep = unlimited.endpoints().active[0].clone();
    let slots: Vec<_> = (0..5)
        .map(|_| unlimited.try_start_at(&ep, Instant::now()).unwrap())
        .collect();
    assert_eq!(unlimited.in_flight(), 5);
    drop(slots);
    assert_eq!(unlimited.in_flight(), 0);
}
