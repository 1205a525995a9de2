//! Per-pod gauges for `/metrics`, read from the live endpoint objects of the current snapshot
//! when Prometheus scrapes (nothing is written on the request path for them).

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::Opts;
use tokio::time::Instant;

use crate::state::Snapshot;

/// Gauges read from the live endpoint objects when Prometheus scrapes.
pub struct PodGauges {
    snapshot: Arc<ArcSwap<Snapshot>>,
    descs: Vec<Desc>,
}

const POD_GAUGES: [(&str, &str); 8] = [
    (
        "arena_endpoint_in_flight",
        "Requests in flight to the pod from this gateway",
    ),
    ("arena_endpoint_ewma_seconds", "Peak-EWMA latency estimate of the pod"),
    (
        "arena_endpoint_reported_utilization",
        "Utilisation the pod last reported in endpoint-load-metrics (-1 when none is fresh)",
    ),
    ("arena_endpoint_cost", "Balancer cost of the pod (lower is preferred)"),
    ("arena_endpoint_requests_total", "Requests sent to the pod"),
    ("arena_endpoint_failures_total", "Failed requests to the pod"),
    (
        "arena_endpoint_ejected",
        "1 while the pod is ejected by outlier detection",
    ),
    ("arena_endpoint_ejections_total", "Times the pod was ejected"),
];

impl PodGauges {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        let mut descs: Vec<Desc> = POD_GAUGES
            .iter()
            .filter_map(|(n, h)| {
                Desc::new(
                    (*n).into(),
                    (*h).into(),
                    vec!["cluster".into(), "pod".into(), "state".into()],
                    Default::default(),
                )
                .ok()
            })
            .collect();
        descs.extend(
            Desc::new(
                "arena_cluster_endpoints".into(),
                "Pods per cluster and state".into(),
                vec!["cluster".into(), "state".into()],
                Default::default(),
            )
            .ok(),
        );
        descs.extend(
            Desc::new(
                "arena_discovery_stale".into(),
                "1 while a DNS cluster serves its last good answer after a failed lookup".into(),
                vec!["cluster".into()],
                Default::default(),
            )
            .ok(),
        );
        PodGauges { snapshot, descs }
    }
}

impl Collector for PodGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snap = self.snapshot.load();
        let now = Instant::now();
        let mut gauges: Vec<prometheus::GaugeVec> = POD_GAUGES
            .iter()
            .filter_map(|(n, h)| prometheus::GaugeVec::new(Opts::new(*n, *h), &["cluster", "pod", "state"]).ok())
            .collect();
        let counts = prometheus::GaugeVec::new(
            Opts::new("arena_cluster_endpoints", "Pods per cluster and state"),
            &["cluster", "state"],
        )
        .ok();
        let stale = prometheus::GaugeVec::new(
            Opts::new("arena_discovery_stale", "1 while serving a stale DNS answer"),
            &["cluster"],
        )
        .ok();
        for cluster in &snap.clusters {
            let set = cluster.endpoints();
            let name = cluster.name();
            for (state, list) in [("healthy", &set.active), ("draining", &set.draining)] {
                if let Some(c) = &counts {
                    c.with_label_values(&[name, state]).set(list.len() as f64);
                }
                for e in list.iter() {
                    let v = e.view(now, &cluster.spec.load);
                    let h = e.health.view(now);
                    let pod = e.addr.to_string();
                    let values = [
                        v.in_flight as f64,
                        v.ewma_ms / 1000.0,
                        v.reported_utilization.unwrap_or(-1.0),
                        v.cost,
                        v.requests as f64,
                        v.failures as f64,
                        if h.ejected { 1.0 } else { 0.0 },
                        h.ejections as f64,
                    ];
                    for (g, value) in gauges.iter_mut().zip(values) {
                        g.with_label_values(&[name, &pod, state]).set(value);
                    }
                }
            }
            if let Some(s) = &stale {
                s.with_label_values(&[name])
                    .set(if cluster.discovery_status().stale { 1.0 } else { 0.0 });
            }
        }
        let mut out: Vec<MetricFamily> = gauges.iter().flat_map(|g| g.collect()).collect();
        out.extend(counts.iter().flat_map(|c| c.collect()));
        out.extend(stale.iter().flat_map(|c| c.collect()));
        out
    }
}
