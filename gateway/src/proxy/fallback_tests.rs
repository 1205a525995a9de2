//! Unit tests of `fallback`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn final_errors_map_to_fallback_triggers() {
    assert_eq!(
        reason_after(&GatewayError::NoEndpoints { cluster: "c".into() }),
        Some((FallbackOn::NoHealthyPods, FaasReason::NoHealthyPods))
    );
    assert_eq!(reason_after(&GatewayError::NoRoute), None);
}

use arena_core::balance::report::LoadReport;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::time::Duration;

use crate::proxy::testing::{route, snapshot};

const FUNCTION: &str = "faas: [{ name: f, kind: http, url: \"http://127.0.0.1:1\" }]\n";

fn draws(route: &Route, n: usize, seed: u64) -> Vec<Option<FaasReason>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| divert(route, &route.cluster, &mut rng)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_cluster_without_pods_diverts_to_the_function() {
    // A DNS cluster before its first answer has no pod at all.
    let snap = snapshot(&format!(
        "{FUNCTION}clusters: [{{ name: c, dns: {{ name: c.svc, port: 9100, resolver: \"127.0.0.1:1\" }} }}]\nroutes: [{{ name: r, match: {{}}, cluster: c, fallback: {{ faas: f }} }}]\n"
    ));
    let r = route(&snap, "r");
    assert_eq!(
        divert(&r, &r.cluster, &mut SmallRng::seed_from_u64(1)),
        Some(FaasReason::NoHealthyPods)
    );
    assert!(!FaasReason::NoHealthyPods.pods_can_still_serve());
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_diverts_while_it_is_open() {
    let snap = snapshot(&format!(
        "{FUNCTION}clusters: [{{ name: c, endpoints: [\"127.0.0.11:9100\"], max_in_flight: 1 }}]\nroutes: [{{ name: r, match: {{}}, cluster: c, fallback: {{ faas: f }} }}]\n"
    ));
    let r = route(&snap, "r");
    assert_eq!(draws(&r, 1, 1), vec![None]);
    let pod = r.cluster.endpoints().active[0].clone();
    let held = r.cluster.start(&pod);
    assert_eq!(draws(&r, 1, 1), vec![Some(FaasReason::CircuitOpen)]);
    drop(held);
    assert_eq!(draws(&r, 1, 1), vec![None]);
}

#[tokio::test(start_paused = true)]
async fn spillover_while_every_pod_reports_load_above_the_threshold() {
    let snap = snapshot(&format!(
        "{FUNCTION}clusters: [{{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"] }}]\nroutes: [{{ name: r, match: {{}}, cluster: c, fallback: {{ faas: f, spillover_above_load: 0.9 }} }}]\n"
    ));
    let r = route(&snap, "r");
    let report = |u| LoadReport {
        utilization: u,
        inflight: None,
    };
    let pods: Vec<_> = r.cluster.endpoints().active.to_vec();
    r.cluster.finish(r.cluster.start(&pods[0]), true, Some(report(0.95)));
    assert_eq!(draws(&r, 1, 1), vec![None], "one pod has not said it is busy");
    r.cluster.finish(r.cluster.start(&pods[1]), true, Some(report(0.97)));
    assert_eq!(draws(&r, 1, 1), vec![Some(FaasReason::Spillover)]);
    assert!(FaasReason::Spillover.pods_can_still_serve());
    // Reports expire: a pod that stopped reporting is not known to be busy.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(draws(&r, 1, 1), vec![None]);
}

#[tokio::test(start_paused = true)]
async fn the_warm_share_is_a_seeded_draw() {
    let snap = snapshot(&format!(
        "{FUNCTION}clusters: [{{ name: c, endpoints: [\"127.0.0.11:9100\"] }}]\nroutes: [{{ name: r, match: {{}}, cluster: c, fallback: {{ faas: f, warm_share: 10% }} }}]\n"
    ));
    let r = route(&snap, "r");
    let warm = draws(&r, 1000, 7);
    let n = warm.iter().filter(|d| **d == Some(FaasReason::Warm)).count();
    assert!((70..=130).contains(&n), "{n} of 1000 for 10%");
    assert_eq!(warm, draws(&r, 1000, 7), "the same seed, the same draws");
    assert!(after_retries(&r));
}

#[test]
fn a_request_a_pod_may_have_run_is_replayed_only_when_safe() {
    use FaasReason::*;
    // Never reached a pod: always safe.
    assert!(replay_is_safe(NoHealthyPods, false, false, None));
    assert!(replay_is_safe(CircuitOpen, false, false, None));
    assert!(replay_is_safe(
        RetriesExhausted,
        false,
        false,
        Some(RetryOn::ConnectFailure)
    ));
    // May have run on a pod: a POST runs twice only if the route says it may.
    for cause in [RetryOn::Timeout, RetryOn::Reset, RetryOn::Status5xx] {
        assert!(
            !replay_is_safe(RetriesExhausted, false, false, Some(cause)),
            "{cause:?}"
        );
        assert!(replay_is_safe(RetriesExhausted, false, true, Some(cause)), "{cause:?}");
        assert!(replay_is_safe(RetriesExhausted, true, false, Some(cause)), "{cause:?}");
    }
}
