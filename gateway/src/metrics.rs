//! Prometheus metrics. Hot-path handles are resolved once per route at (re)load, so a request
//! only bumps atomics. Per-pod gauges are read from the live endpoints at scrape time by the
//! admin API's collector (`admin::pod_gauges`).

use arena_core::release::Version;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Process-wide metric families.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub unrouted: IntCounterVec,
    retries: IntCounterVec,
    pub dns_refreshes: IntCounterVec,
    pub reloads: IntCounterVec,
    pub config_generation: IntGauge,
    pub last_reload_success: IntGauge,
    pub rate_limited: IntCounterVec,
    hedges: IntCounterVec,
    pub faas_requests: IntCounterVec,
    pub faas_duration: HistogramVec,
    pub access_log_dropped: IntCounter,
    pub client_connections: IntGauge,
    /// Spans the trace exporter sent to the collector.
    pub trace_spans_exported: IntCounter,
    /// Spans dropped: the exporter's queue was full or the collector failed.
    pub trace_spans_dropped: IntCounter,
    pub connections_refused: IntCounterVec,
    pub client_closed: IntCounterVec,
    pub releases: ReleaseFamilies,
}

/// The release families: per-version traffic (bumped through [`ReleaseMetrics`]), and the
/// rollout's state, set by the release task.
pub struct ReleaseFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Canary weight in percent.
    pub weight: GaugeVec,
    /// 1 for the release's current phase, 0 for the others.
    pub phase: IntGaugeVec,
    pub verdicts: IntCounterVec,
    pub transitions: IntCounterVec,
    pub rollbacks: IntCounterVec,
}

/// Handles for one release's two versions, bumped without label lookups.
pub struct ReleaseMetrics {
    /// [stable, canary] × status class.
    by_class: [[IntCounter; 5]; 2],
    duration: [Histogram; 2],
}

impl ReleaseMetrics {
    /// One answered request of `version`.
    pub fn record(&self, version: Version, status: u16, seconds: f64) {
        let v = usize::from(version == Version::Canary);
        self.by_class[v][class_index(status)].inc();
        self.duration[v].observe(seconds);
    }
}

fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// Handles for one route, bumped without label lookups (retries and hedges, rare, look theirs up).
pub struct RouteMetrics {
    name: String,
    by_class: [IntCounter; 5],
    pub duration: Histogram,
    retries: IntCounterVec,
    hedges: IntCounterVec,
}

impl RouteMetrics {
    /// A retry (by cause) or a retry the budget refused (`budget_exhausted`).
    pub fn retry(&self, cause: &str) {
        self.retries.with_label_values(&[self.name.as_str(), cause]).inc();
    }

    /// Hedged tries `launched`, or hedges that `won`.
    pub fn hedge(&self, result: &str, n: u32) {
        self.hedges
            .with_label_values(&[self.name.as_str(), result])
            .inc_by(u64::from(n));
    }

    pub fn record(&self, status: u16, seconds: f64) {
        self.by_class[class_index(status)].inc();
        self.duration.observe(seconds);
    }

    /// The route's cumulative counts now (for the admin UI's samples: read, never written).
    pub fn totals(&self) -> RouteTotals {
        use prometheus::core::Metric as _;
        let proto = self.duration.metric();
        let mut buckets: Vec<(f64, u64)> = proto
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        buckets.push((f64::INFINITY, self.duration.get_sample_count()));
        RouteTotals {
            requests: self.by_class.iter().map(IntCounter::get).sum(),
            errors: self.by_class[4].get(),
            buckets,
        }
    }
}

/// A route's cumulative counts at one moment: answers, 5xx (and unanswered) answers, and the
/// latency histogram as (upper bound in seconds, cumulative count), ending with +Inf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTotals {
    pub requests: u64,
    pub errors: u64,
    pub buckets: Vec<(f64, u64)>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

fn histogram_vec(
    registry: &Registry,
    opts: HistogramOpts,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(opts.buckets(buckets.to_vec()), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

/// `metric`, registered.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers every family; fails only on a programming error in a metric name.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counters = |name: &str, help: &str, labels: &[&str]| counter_vec(&registry, name, help, labels);
        let latency = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let faas_latency = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];
        Ok(Metrics {
            requests: counters(
                "arena_requests_total",
                "Requests answered, by route, cluster and status class",
                &["route", "cluster", "class"],
            )?,
            duration: histogram_vec(
                &registry,
                HistogramOpts::new("arena_request_duration_seconds", "End-to-end request latency by route"),
                &latency,
                &["route"],
            )?,
            hedges: counters(
                "arena_hedges_total",
                "Hedged tries launched, and hedges that won",
                &["route", "result"],
            )?,
            rate_limited: counters(
                "arena_rate_limited_total",
                "Requests refused with 429, by route and limit scope",
                &["route", "scope"],
            )?,
            faas_requests: counters(
                "arena_faas_requests_total",
                "Requests replayed on a function, by function, reason and result",
                &["function", "reason", "result"],
            )?,
            faas_duration: histogram_vec(
                &registry,
                HistogramOpts::new(
                    "arena_faas_duration_seconds",
                    "Function invocation latency (cold starts show as the slow tail)",
                ),
                &faas_latency,
                &["function"],
            )?,
            unrouted: counters(
                "arena_unrouted_requests_total",
                "Requests answered before reaching a route, by reason",
                &["reason"],
            )?,
            retries: counters(
                "arena_retries_total",
                "Upstream attempts beyond the first, by route and cause",
                &["route", "cause"],
            )?,
            dns_refreshes: counters(
                "arena_dns_refresh_total",
                "DNS discovery lookups by cluster and result",
                &["cluster", "result"],
            )?,
            reloads: counters(
                "arena_config_reloads_total",
                "Configuration reloads by trigger and result",
                &["trigger", "result"],
            )?,
            access_log_dropped: registered(
                &registry,
                IntCounter::new(
                    "arena_access_log_dropped_total",
                    "Access-log lines dropped because the writer fell behind",
                )?,
            )?,
            config_generation: registered(
                &registry,
                IntGauge::new("arena_config_generation", "Generation of the configuration in use")?,
            )?,
            last_reload_success: registered(
                &registry,
                IntGauge::new(
                    "arena_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last accepted configuration",
                )?,
            )?,
            client_connections: registered(
                &registry,
                IntGauge::new("arena_client_connections", "Client connections open now")?,
            )?,
            trace_spans_exported: registered(
                &registry,
                IntCounter::new(
                    "arena_trace_spans_exported_total",
                    "Spans the trace exporter delivered to the OTLP collector",
                )?,
            )?,
            trace_spans_dropped: registered(
                &registry,
                IntCounter::new(
                    "arena_trace_spans_dropped_total",
                    "Spans dropped because the exporter's queue was full or the collector failed",
                )?,
            )?,
            connections_refused: counters(
                "arena_client_connections_refused_total",
                "Client connections closed at accept, by reason (caps, TLS handshake)",
                &["reason"],
            )?,
            client_closed: counters(
                "arena_client_closed_total",
                "Client connections the guard closed: header_timeout (408), headers_too_large (431), idle",
                &["reason"],
            )?,
            releases: ReleaseFamilies {
                requests: counters(
                    "arena_release_requests_total",
                    "Requests of a release's routes by the version that answered and status class",
                    &["release", "version", "class"],
                )?,
                duration: histogram_vec(
                    &registry,
                    HistogramOpts::new(
                        "arena_release_request_duration_seconds",
                        "End-to-end latency of a release's requests by the version that answered",
                    ),
                    &latency,
                    &["release", "version"],
                )?,
                weight: registered(
                    &registry,
                    GaugeVec::new(
                        Opts::new(
                            "arena_release_weight_percent",
                            "Share of users sent to the canary, percent",
                        ),
                        &["release"],
                    )?,
                )?,
                phase: registered(
                    &registry,
                    IntGaugeVec::new(
                        Opts::new(
                            "arena_release_phase",
                            "1 for the release's phase (progressing, paused, promoted, rolled_back)",
                        ),
                        &["release", "phase"],
                    )?,
                )?,
                verdicts: counters(
                    "arena_release_verdicts_total",
                    "Analysis verdicts (one per 100 ms tick): healthy, breach, insufficient",
                    &["release", "verdict"],
                )?,
                transitions: counters(
                    "arena_release_transitions_total",
                    "Rollout transitions by the phase entered",
                    &["release", "to"],
                )?,
                rollbacks: counters(
                    "arena_release_rollbacks_total",
                    "Rollbacks by reason: error_rate, latency (automatic), operator",
                    &["release", "reason"],
                )?,
            },
            registry,
        }
        .client_series())
    }

    /// Starts the client-connection series at zero: every reason is known up front, and a
    /// dashboard should read 0, not "no data", on a gateway nobody abused yet.
    fn client_series(self) -> Self {
        for reason in [
            "max_connections",
            "max_connections_per_ip",
            "tls_handshake_timeout",
            "tls_error",
        ] {
            self.connections_refused.with_label_values(&[reason]);
        }
        for reason in ["header_timeout", "headers_too_large", "idle"] {
            self.client_closed.with_label_values(&[reason]);
        }
        self
    }

    /// Handles for `release`'s versions.
    pub fn release(&self, release: &str) -> ReleaseMetrics {
        let f = &self.releases;
        let v = |version: &str| CLASSES.map(|c| f.requests.with_label_values(&[release, version, c]));
        ReleaseMetrics {
            by_class: [v("stable"), v("canary")],
            duration: [
                f.duration.with_label_values(&[release, "stable"]),
                f.duration.with_label_values(&[release, "canary"]),
            ],
        }
    }

    pub fn route(&self, route: &str, cluster: &str) -> RouteMetrics {
        RouteMetrics {
            name: route.to_string(),
            by_class: CLASSES.map(|c| self.requests.with_label_values(&[route, cluster, c])),
            duration: self.duration.with_label_values(&[route]),
            retries: self.retries.clone(),
            hedges: self.hedges.clone(),
        }
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
