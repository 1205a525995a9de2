//! What the sidecar's requests, admin and control thread share: the configuration in use
//! (validate-then-swap on reload), the limiter, the app's health, the measured CPU, the
//! capture writer and the metrics.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use arena_core::diag::{ConfigErrors, Diagnostic, Severity};
use arena_gateway::config::ClientLimits;
use arena_gateway::listener::ClientLimitsSource;

use crate::config::{self, CaptureSpec, Config};
use crate::health::{AppState, Health};
use crate::inbound::capture::Captures;
use crate::inbound::limit::Limiter;
use crate::metrics::Metrics;
use crate::tls::InboundTls;

/// The running sidecar.
pub struct Sidecar {
    config: ArcSwap<Config>,
    capture: ArcSwap<Option<Arc<CaptureSpec>>>,
    pub config_path: Option<PathBuf>,
    pub limiter: Arc<Limiter>,
    pub health: Health,
    /// f64 bits of the app's smoothed CPU use; NaN when unmeasurable.
    cpu: AtomicU64,
    cpu_source: Mutex<&'static str>,
    pub captures: Captures,
    pub metrics: Metrics,
    draining: AtomicBool,
    /// The drain's second phase: new requests are shed `draining` (the gateway sends them to
    /// another pod) while the last ones at the app finish.
    refusing: AtomicBool,
    /// When the last request arrived (µs since `epoch`): the sidecar leaves once it is quiet.
    last_request_us: AtomicU64,
    epoch: std::time::Instant,
    generation: AtomicU64,
    reload_lock: Mutex<()>,
    /// The pod port's mTLS state (certificates re-read on rotation), when configured.
    pub tls: Option<Arc<InboundTls>>,
    /// TLS refusal counts already added to the metrics.
    tls_counted: Mutex<[u64; 5]>,
    /// The outbound side (the gateway's engine), when configured.
    outbound: std::sync::OnceLock<Arc<arena_gateway::state::Gateway>>,
    /// The trace exporter, when `tracing` was configured at start.
    pub tracer: Option<arena_gateway::trace::Tracer>,
}

impl Sidecar {
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        metrics: Metrics,
        tls: Option<Arc<InboundTls>>,
    ) -> std::io::Result<Arc<Self>> {
        let inbound = &config.inbound;
        let limiter = Limiter::new(&inbound.limit, inbound.queue);
        let health = Health::new(inbound.stuck_after, inbound.liveness_grace);
        let captures = Captures::start(metrics.captures.clone())?;
        let capture = inbound.capture.clone().map(Arc::new);
        let tracer = match &config.tracing {
            Some(spec) => Some(arena_gateway::trace::Tracer::start(
                spec,
                "arena-sidecar",
                metrics.trace_spans_exported.clone(),
                metrics.trace_spans_dropped.clone(),
            )?),
            None => None,
        };
        Ok(Arc::new(Sidecar {
            config: ArcSwap::from_pointee(config),
            capture: ArcSwap::from_pointee(capture),
            config_path,
            limiter,
            health,
            cpu: AtomicU64::new(f64::NAN.to_bits()),
            cpu_source: Mutex::new("none"),
            captures,
            metrics,
            draining: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            last_request_us: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            generation: AtomicU64::new(1),
            reload_lock: Mutex::new(()),
            tls,
            tls_counted: Mutex::new([0; 5]),
            outbound: std::sync::OnceLock::new(),
            tracer,
        }))
    }

    /// Attaches the outbound side (once, at start).
    pub fn set_outbound(&self, gw: Arc<arena_gateway::state::Gateway>) {
        let _ = self.outbound.set(gw);
    }

    pub fn outbound(&self) -> Option<&Arc<arena_gateway::state::Gateway>> {
        self.outbound.get()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn capture_spec(&self) -> Option<Arc<CaptureSpec>> {
        self.capture.load().as_ref().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn cpu(&self) -> Option<f64> {
        let v = f64::from_bits(self.cpu.load(Ordering::Relaxed));
        v.is_finite().then_some(v)
    }

    pub fn set_cpu(&self, value: Option<f64>, source: &'static str) {
        self.cpu.store(value.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
        if let Ok(mut s) = self.cpu_source.lock() {
            *s = source;
        }
    }

    pub fn cpu_source(&self) -> &'static str {
        self.cpu_source.lock().map_or("none", |s| *s)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// From now on new requests are shed `draining`.
    pub fn start_refusing(&self) {
        self.refusing.store(true, Ordering::Relaxed);
    }

    pub fn is_refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// A request arrived (any, shed ones included).
    pub fn request_arrived(&self) {
        let us = self.epoch.elapsed().as_micros() as u64;
        self.last_request_us.store(us, Ordering::Relaxed);
    }

    /// How long since the last request arrived.
    pub fn quiet_for(&self) -> std::time::Duration {
        let last = self.last_request_us.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_micros() as u64;
        std::time::Duration::from_micros(now.saturating_sub(last))
    }

    /// `/readyz`: the app is ready and the sidecar is not draining.
    pub fn ready(&self) -> bool {
        !self.is_draining() && self.health.ready()
    }

    /// Re-reads the configuration file; a config with errors never replaces the one in use.
    /// Restart-only keys keep their running value, with a warning.
    pub fn reload(&self, trigger: &str) -> Result<Vec<Diagnostic>, ConfigErrors> {
        let _one_at_a_time = self
            .reload_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(path) = &self.config_path else {
            return Err(ConfigErrors(vec![Diagnostic::new(
                Severity::Error,
                "reload",
                None,
                "this sidecar was not started from a file".into(),
                None,
            )]));
        };
        let result = config::load_file(path);
        let result_label = if result.is_ok() { "ok" } else { "rejected" };
        self.metrics.reloads.with_label_values(&[trigger, result_label]).inc();
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                for d in &e.0 {
                    tracing::error!("{d}");
                }
                tracing::error!(trigger, "configuration rejected; the running one stays");
                return Err(e);
            }
        };
        let old = self.config();
        let mut new = loaded.config;
        let mut warnings = loaded.warnings;
        let origin = path.display().to_string();
        let mut keep = |changed: bool, key: &str| {
            if changed {
                warnings.push(Diagnostic::new(
                    Severity::Warning,
                    &origin,
                    None,
                    format!("`{key}` changes only at restart; the running value stays"),
                    Some("restart the sidecar (its pod) to apply it".into()),
                ));
            }
        };
        keep(new.inbound.listen != old.inbound.listen, "inbound.listen");
        keep(new.inbound.app != old.inbound.app, "inbound.app");
        keep(new.admin.address != old.admin.address, "admin.address");
        keep(new.server.threads != old.server.threads, "server.threads");
        keep(
            new.server.upstream_keepalive_pool_size != old.server.upstream_keepalive_pool_size,
            "server.upstream_keepalive_pool_size",
        );
        keep(
            std::mem::discriminant(&new.inbound.limit) != std::mem::discriminant(&old.inbound.limit),
            "the max_concurrency algorithm",
        );
        new.inbound.listen = old.inbound.listen;
        new.inbound.app = old.inbound.app;
        new.admin.address = old.admin.address;
        new.server.threads = old.server.threads;
        new.server.upstream_keepalive_pool_size = old.server.upstream_keepalive_pool_size;
        if std::mem::discriminant(&new.inbound.limit) != std::mem::discriminant(&old.inbound.limit) {
            new.inbound.limit = old.inbound.limit.clone();
        }
        if let (Some(tls), Some(spec)) = (&self.tls, &new.inbound.tls) {
            tls.set_allow(spec.files().allow);
        }
        keep(
            new.inbound.tls.is_some() != old.inbound.tls.is_some(),
            "inbound.tls (on or off)",
        );
        // The exporter runs with its endpoint; the ratio and what is kept follow the reload.
        let endpoint = |c: &Config| {
            c.tracing
                .as_ref()
                .map(|t| (t.otlp_endpoint.clone(), t.service_name.clone()))
        };
        if endpoint(&new) != endpoint(&old) {
            keep(true, "tracing (on or off, otlp_endpoint, service_name)");
            new.tracing.clone_from(&old.tracing);
        }
        self.limiter.reconfigure(&new.inbound.limit, new.inbound.queue);
        self.health
            .reconfigure(new.inbound.stuck_after, new.inbound.liveness_grace);
        self.capture.store(Arc::new(new.inbound.capture.clone().map(Arc::new)));
        self.config.store(Arc::new(new));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        tracing::info!(trigger, generation, "configuration reloaded");
        Ok(warnings)
    }

    /// Sets the scrape-time gauges.
    pub fn refresh_gauges(&self) {
        let m = &self.metrics;
        m.in_flight.set(self.limiter.in_flight() as i64);
        m.queued.set(self.limiter.queued() as i64);
        m.limit.set(self.limiter.limit() as i64);
        let state = self.health.state();
        for s in AppState::ALL {
            m.app_state.with_label_values(&[s.as_str()]).set(i64::from(s == state));
        }
        m.cpu.set(self.cpu().unwrap_or(f64::NAN));
        let source = self.cpu_source();
        for s in ["cgroup", "procfs", "none"] {
            m.cpu_source.with_label_values(&[s]).set(i64::from(s == source));
        }
        if let Some(tls) = &self.tls {
            let mut counted = self
                .tls_counted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let refusals = tls.refusals();
            let now = refusals
                .iter()
                .map(|(reason, n)| (*reason, *n))
                .chain(std::iter::once(("ok", tls.accepted())));
            for (i, (result, n)) in now.enumerate() {
                if let Some(seen) = counted.get_mut(i) {
                    m.tls_handshakes
                        .with_label_values(&[result])
                        .inc_by(n.saturating_sub(*seen));
                    *seen = n;
                }
            }
            if let (_, Some(not_after)) = tls.serials() {
                m.cert_expiry.set(not_after as f64);
            }
        }
        if let Some(v) = self.limiter.adaptive_view() {
            m.adaptive
                .with_label_values(&["baseline_seconds"])
                .set(v.baseline_ms.map_or(f64::NAN, |b| b / 1000.0));
            m.adaptive
                .with_label_values(&["sample_seconds"])
                .set(v.sample_ms.map_or(f64::NAN, |b| b / 1000.0));
            m.adaptive.with_label_values(&["gradient"]).set(v.gradient);
        }
    }
}

impl ClientLimitsSource for Sidecar {
    fn client_limits(&self) -> (ClientLimits, usize) {
        let c = self.config.load();
        (c.server.client, c.server.max_request_header_bytes)
    }
}
