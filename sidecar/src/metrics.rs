//! The sidecar's Prometheus series (`arena_sidecar_*`). Counters are bumped on the request
//! path; gauges of state (in flight, queued, limit, app state, CPU) are read at scrape time.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::health::{AppState, Shed};

/// The request counter's series, resolved once (no label lookup per request).
pub struct Outcomes {
    pub ok: IntCounter,
    pub timeout: IntCounter,
    pub shed: IntCounter,
    pub error: IntCounter,
}

pub struct Metrics {
    pub registry: Registry,
    /// By outcome: ok, timeout, shed, error.
    pub requests: IntCounterVec,
    pub outcomes: Outcomes,
    pub duration: Histogram,
    pub queue_wait: Histogram,
    pub shed: IntCounterVec,
    pub timeouts: IntCounter,
    pub captures: IntCounterVec,
    pub in_flight: IntGauge,
    pub queued: IntGauge,
    pub limit: IntGauge,
    pub app_state: IntGaugeVec,
    pub cpu: Gauge,
    pub cpu_source: IntGaugeVec,
    pub reported: Gauge,
    pub adaptive: GaugeVec,
    pub client_connections: IntGauge,
    pub connections_refused: IntCounterVec,
    pub client_closed: IntCounterVec,
    pub reloads: IntCounterVec,
    pub tls_handshakes: IntCounterVec,
    pub cert_reloads: IntCounterVec,
    pub cert_expiry: Gauge,
    pub trace_spans_exported: IntCounter,
    pub trace_spans_dropped: IntCounter,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let requests = counters(
            &r,
            "arena_sidecar_inbound_requests_total",
            "Inbound requests by outcome: ok (the app answered), timeout (cut), shed (not sent to the app), error",
            &["outcome"],
        )?;
        let outcome = |o: &str| requests.with_label_values(&[o]);
        let m = Metrics {
            outcomes: Outcomes {
                ok: outcome("ok"),
                timeout: outcome("timeout"),
                shed: outcome("shed"),
                error: outcome("error"),
            },
            requests: requests.clone(),
            duration: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "arena_sidecar_inbound_request_duration_seconds",
                        "Time at the app of answered requests",
                    )
                    .buckets(latency.clone()),
                )?,
            )?,
            queue_wait: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "arena_sidecar_inbound_queue_wait_seconds",
                        "Time queued requests waited for a slot",
                    )
                    .buckets(latency),
                )?,
            )?,
            shed: counters(
                &r,
                "arena_sidecar_inbound_shed_total",
                "Requests answered 503 + x-arena-overloaded without reaching the app, by reason",
                &["reason"],
            )?,
            timeouts: reg(
                &r,
                IntCounter::new("arena_sidecar_timeouts_total", "Requests cut at request_timeout")?,
            )?,
            captures: counters(
                &r,
                "arena_sidecar_captures_total",
                "Captures of cut requests: written, dropped (writer behind), failed",
                &["result"],
            )?,
            in_flight: reg(
                &r,
                IntGauge::new("arena_sidecar_inbound_in_flight", "Requests at the app now")?,
            )?,
            queued: reg(
                &r,
                IntGauge::new("arena_sidecar_inbound_queued", "Requests waiting for a slot now")?,
            )?,
            limit: reg(
                &r,
                IntGauge::new("arena_sidecar_concurrency_limit", "Requests the app may hold at once")?,
            )?,
            app_state: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "arena_sidecar_app_state",
                        "1 for the app's state: starting, ready, stuck, dead",
                    ),
                    &["state"],
                )?,
            )?,
            cpu: reg(
                &r,
                Gauge::new(
                    "arena_sidecar_cpu_utilization",
                    "The app's CPU use against its allowance (smoothed; NaN when unmeasurable)",
                )?,
            )?,
            cpu_source: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "arena_sidecar_cpu_source",
                        "1 for where CPU use is read: cgroup, procfs, none",
                    ),
                    &["source"],
                )?,
            )?,
            reported: reg(
                &r,
                Gauge::new(
                    "arena_sidecar_reported_utilization",
                    "application_utilization of the last load report sent",
                )?,
            )?,
            adaptive: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "arena_sidecar_limit_view",
                        "The adaptive limit's inputs: baseline_seconds, sample_seconds, gradient",
                    ),
                    &["value"],
                )?,
            )?,
            client_connections: reg(
                &r,
                IntGauge::new("arena_sidecar_client_connections", "Inbound connections open now")?,
            )?,
            connections_refused: counters(
                &r,
                "arena_sidecar_client_connections_refused_total",
                "Inbound connections closed at accept, by reason (caps, TLS handshake)",
                &["reason"],
            )?,
            client_closed: counters(
                &r,
                "arena_sidecar_client_closed_total",
                "Inbound connections the guard closed: header_timeout, headers_too_large, idle",
                &["reason"],
            )?,
            reloads: counters(
                &r,
                "arena_sidecar_config_reloads_total",
                "Configuration reloads by trigger and result",
                &["trigger", "result"],
            )?,
            tls_handshakes: counters(
                &r,
                "arena_sidecar_tls_handshakes_total",
                "Client certificates checked on the pod port: ok, unknown_ca, expired, identity_refused, other",
                &["result"],
            )?,
            cert_reloads: counters(
                &r,
                "arena_sidecar_cert_reloads_total",
                "Certificate file re-reads that changed something: ok, rejected (the old set stays)",
                &["result"],
            )?,
            cert_expiry: reg(
                &r,
                Gauge::new(
                    "arena_sidecar_cert_expiry_timestamp_seconds",
                    "notAfter of the pod port's certificate (unix time)",
                )?,
            )?,
            trace_spans_exported: reg(
                &r,
                IntCounter::new(
                    "arena_sidecar_trace_spans_exported_total",
                    "Spans the sidecar's trace exporter delivered to the OTLP collector",
                )?,
            )?,
            trace_spans_dropped: reg(
                &r,
                IntCounter::new(
                    "arena_sidecar_trace_spans_dropped_total",
                    "Spans dropped because the exporter's queue was full or the collector failed",
                )?,
            )?,
            registry: r,
        };
        // Every series starts at zero: a dashboard should read 0, not "no data".
        for s in Shed::ALL {
            m.shed.with_label_values(&[s.as_str()]);
        }
        for r in ["written", "dropped", "failed"] {
            m.captures.with_label_values(&[r]);
        }
        for s in AppState::ALL {
            m.app_state.with_label_values(&[s.as_str()]);
        }
        Ok(m)
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
