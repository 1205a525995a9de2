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
