//! Prometheus metrics. Hot-path handles are resolved once per route at (re)load, so a request
//! only bumps atomics; per-pod gauges are read from the live endpoints at scrape time.

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio::time::Instant;

use crate::state::Snapshot;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Process-wide metric families.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub unrouted: IntCounterVec,
    pub retries: IntCounterVec,
    pub dns_refreshes: IntCounterVec,
    pub reloads: IntCounterVec,
    pub config_generation: IntGauge,
    pub last_reload_success: IntGauge,
    pub rate_limited: IntCounterVec,
    pub hedges: IntCounterVec,
    pub faas_requests: IntCounterVec,
    pub faas_duration: HistogramVec,
    pub access_log_dropped: IntCounter,
}

/// Handles for one route, bumped without label lookups.
pub struct RouteMetrics {
    by_class: [IntCounter; 5],
    pub duration: Histogram,
}

impl RouteMetrics {
    pub fn record(&self, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.by_class[class].inc();
        self.duration.observe(seconds);
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Registers every family; fails only on a programming error in a metric name.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "arena_requests_total",
            "Requests answered, by route, cluster and status class",
            &["route", "cluster", "class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("arena_request_duration_seconds", "End-to-end request latency by route").buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        let faas_duration = HistogramVec::new(
            HistogramOpts::new(
                "arena_faas_duration_seconds",
                "Function invocation latency (cold starts show as the slow tail)",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            &["function"],
        )?;
        registry.register(Box::new(faas_duration.clone()))?;
        Ok(Metrics {
            hedges: counter_vec(
                &registry,
                "arena_hedges_total",
                "Hedged tries launched, and hedges that won",
                &["route", "result"],
            )?,
            rate_limited: counter_vec(
                &registry,
                "arena_rate_limited_total",
                "Requests refused with 429, by route and limit scope",
                &["route", "scope"],
            )?,
            faas_requests: counter_vec(
                &registry,
                "arena_faas_requests_total",
                "Requests replayed on a function, by function, reason and result",
                &["function", "reason", "result"],
            )?,
            faas_duration,
            unrouted: counter_vec(
                &registry,
                "arena_unrouted_requests_total",
                "Requests answered before reaching a route, by reason",
                &["reason"],
            )?,
            retries: counter_vec(
                &registry,
                "arena_retries_total",
                "Upstream attempts beyond the first, by route and cause",
                &["route", "cause"],
            )?,
            dns_refreshes: counter_vec(
                &registry,
                "arena_dns_refresh_total",
                "DNS discovery lookups by cluster and result",
                &["cluster", "result"],
            )?,
            reloads: counter_vec(
                &registry,
                "arena_config_reloads_total",
                "Configuration reloads by trigger and result",
                &["trigger", "result"],
            )?,
            access_log_dropped: {
                let c = IntCounter::new(
                    "arena_access_log_dropped_total",
                    "Access-log lines dropped because the writer fell behind",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            config_generation: gauge(
                &registry,
                "arena_config_generation",
                "Generation of the configuration in use",
            )?,
            last_reload_success: gauge(
                &registry,
                "arena_config_last_reload_success_timestamp_seconds",
                "Unix time of the last accepted configuration",
            )?,
            registry,
            requests,
            duration,
        })
    }

    pub fn route(&self, route: &str, cluster: &str) -> RouteMetrics {
        RouteMetrics {
            by_class: CLASSES.map(|c| self.requests.with_label_values(&[route, cluster, c])),
            duration: self.duration.with_label_values(&[route]),
        }
    }

    /// Adds the per-pod collector that reads the current snapshot at scrape time.
    pub fn watch_endpoints(&self, snapshot: Arc<ArcSwap<Snapshot>>) {
        let _ = self.registry.register(Box::new(EndpointCollector::new(snapshot)));
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Gauges read from the live endpoint objects when Prometheus scrapes.
struct EndpointCollector {
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

impl EndpointCollector {
    fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
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
        EndpointCollector { snapshot, descs }
    }
}

impl Collector for EndpointCollector {
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
