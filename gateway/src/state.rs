//! Shared gateway state: the immutable [`Snapshot`] requests read, swapped whole on reload.
//!
//! Reload = load + validate, then swap. A rejected file never replaces the running config, and
//! requests already in flight keep the snapshot they started with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::config::{self, Config, ConfigErrors, Diagnostic, HedgeAfter, Severity, Source};
use crate::faas::Function;
use crate::metrics::Metrics;
use crate::proxy::peer_tls::PeerTls;
use crate::route::{Route, RouteRelease, RouteTable};
use arena_core::cluster::Cluster;
use arena_core::release::{unix_ms_now, Release, ReleaseState};
use arena_core::resilience::budget::RetryBudget;
use arena_core::resilience::latency::LatencyWindow;
use arena_core::resilience::rate_limit::{RedisLimits, RouteLimit};

/// Everything a request needs, consistent with one configuration generation.
pub struct Snapshot {
    pub generation: u64,
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub clusters: Vec<Arc<Cluster>>,
    pub functions: Vec<Arc<Function>>,
    pub redis: Option<Arc<RedisLimits>>,
    /// The releases, in file order; each keeps its state and windows across reloads.
    pub releases: Vec<Arc<Release>>,
    /// TLS material of the clusters with `tls`, by cluster name.
    pub peer_tls: Vec<(String, Arc<PeerTls>)>,
}

/// A release's persisted state by name (the state file, or Redis), read when a release
/// starts without a running one to carry over.
pub type StoredRelease<'a> = &'a dyn Fn(&str) -> Option<ReleaseState>;

impl Snapshot {
    /// Builds runtime state for `config`, reusing clusters (and so pods, pools' keys and DNS
    /// refreshers) of `previous` whose definition did not change.
    pub fn build(
        config: Config,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        generation: u64,
    ) -> Result<Snapshot, String> {
        Self::build_with(config, previous, metrics, generation, &|_| None)
    }

    /// Like [`Snapshot::build`]; a release not running in `previous` starts from `stored`
    /// (reconciled by fingerprint: a changed rollout starts over).
    pub fn build_with(
        config: Config,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        generation: u64,
        stored: StoredRelease<'_>,
    ) -> Result<Snapshot, String> {
        let clusters: Vec<Arc<Cluster>> = config
            .clusters
            .iter()
            .map(|spec| {
                let prev = previous.and_then(|p| p.cluster(&spec.name));
                match prev {
                    Some(p) if p.spec == *spec => Arc::clone(p),
                    _ => Cluster::new(spec.clone(), prev.map(|p| &**p)),
                }
            })
            .collect();
        // TLS files are read again only when their cluster's spec or their bytes changed.
        let mut peer_tls = Vec::new();
        for spec in &config.clusters {
            let Some(tls) = &spec.tls else { continue };
            let kept = previous
                .and_then(|p| Some((p.cluster(&spec.name)?, p.tls_of(&spec.name)?)))
                .filter(|(c, t)| c.spec.tls.as_ref() == Some(tls) && !t.changed(tls))
                .map(|(_, t)| Arc::clone(t));
            let loaded = match kept {
                Some(t) => t,
                None => Arc::new(PeerTls::load(tls).map_err(|e| format!("cluster `{}` tls: {e}", spec.name))?),
            };
            peer_tls.push((spec.name.clone(), loaded));
        }
        let tls_of = |name: &str| peer_tls.iter().find(|(n, _)| n == name).map(|(_, t)| Arc::clone(t));
        // Functions keep their connection pools and concurrency permits when unchanged.
        let mut functions = Vec::with_capacity(config.faas.len());
        for spec in &config.faas {
            match previous.and_then(|p| p.functions.iter().find(|f| f.spec == *spec)) {
                Some(f) => functions.push(Arc::clone(f)),
                None => functions.push(Arc::new(
                    Function::new(spec.clone()).map_err(|e| format!("function `{}`: {e}", spec.name))?,
                )),
            }
        }
        let redis = match (
            &config.redis,
            previous.and_then(|p| p.redis.as_ref().map(|r| (r, &p.config.redis))),
        ) {
            (Some(spec), Some((r, Some(old)))) if old == spec => Some(Arc::clone(r)),
            (Some(spec), _) => Some(Arc::new(RedisLimits::new(spec).map_err(|e| format!("redis: {e}"))?)),
            (None, _) => None,
        };
        let (now, now_ms) = (tokio::time::Instant::now(), unix_ms_now());
        let releases: Vec<Arc<Release>> = config
            .releases
            .iter()
            .map(|spec| {
                let running = previous.and_then(|p| p.releases.iter().find(|r| r.name() == spec.name));
                Arc::new(match running {
                    Some(r) => r.reload(spec.clone(), now, now_ms),
                    None => Release::new(spec.clone(), stored(&spec.name), now, now_ms),
                })
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let cluster = clusters.iter().find(|c| c.name() == r.cluster)?;
                let release = releases
                    .iter()
                    .find(|rel| rel.spec().routes.contains(&r.name))
                    .and_then(|rel| {
                        let canary = clusters.iter().find(|c| c.name() == rel.spec().canary)?;
                        Some(RouteRelease {
                            release: Arc::clone(rel),
                            canary: Arc::clone(canary),
                            metrics: metrics.release(rel.name()),
                            canary_tls: tls_of(canary.name()),
                        })
                    });
                let latency = match r.hedge.map(|h| h.after) {
                    Some(HedgeAfter::Percentile(q)) => Some(LatencyWindow::new(q)),
                    _ => None,
                };
                Some(Arc::new(Route {
                    metrics: metrics.route(&r.name, &r.cluster),
                    cluster: Arc::clone(cluster),
                    budget: r
                        .retry
                        .as_ref()
                        .map(|rt| RetryBudget::new(rt.budget_percent, rt.min_per_second)),
                    limit: r.rate_limit.as_ref().map(|l| RouteLimit::new(&r.name, l)),
                    fallback: r
                        .fallback
                        .as_ref()
                        .and_then(|f| functions.iter().find(|x| x.name() == f.faas).cloned()),
                    latency,
                    release,
                    tls: tls_of(cluster.name()),
                    spec: r.clone(),
                }))
            })
            .collect();
        Ok(Snapshot {
            generation,
            config: Arc::new(config),
            routes: RouteTable::new(routes),
            clusters,
            functions,
            redis,
            releases,
            peer_tls,
        })
    }

    /// The TLS material of cluster `name`, when it has `tls`.
    pub fn tls_of(&self, name: &str) -> Option<&Arc<PeerTls>> {
        self.peer_tls.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Whether some cluster's TLS files changed since they were loaded (rotation).
    pub fn tls_files_changed(&self) -> bool {
        self.clusters
            .iter()
            .any(|c| match (&c.spec.tls, self.tls_of(c.name())) {
                (Some(spec), Some(t)) => t.changed(spec),
                _ => false,
            })
    }

    pub fn release(&self, name: &str) -> Option<&Arc<Release>> {
        self.releases.iter().find(|r| r.name() == name)
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name() == name)
    }

    /// DNS clusters of this snapshot that `previous` did not already run.
    pub fn new_dns_clusters(&self, previous: Option<&Snapshot>) -> Vec<Arc<Cluster>> {
        self.clusters
            .iter()
            .filter(|c| matches!(c.spec.source, Source::Dns(_)))
            .filter(|c| previous.is_none_or(|p| !p.clusters.iter().any(|o| Arc::ptr_eq(o, c))))
            .cloned()
            .collect()
    }
}

/// Result of the last reload attempt, for `/config` and the admin API.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReloadStatus {
    pub generation: u64,
    pub last_trigger: Option<String>,
    pub last_result: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    /// Times the file watch looked at the file (whether or not it changed): an event it
    /// ignored is visible here.
    pub watch_checks: u64,
    /// Hash of the file text last tried (accepted or rejected), so a file watch ignores events
    /// that change nothing — including a bad file it has already reported.
    #[serde(skip)]
    pub tried_hash: Option<u64>,
    /// Modification time of the file when its text was last rejected: a rejection can come
    /// from other files (a TLS certificate not installed yet), so touching the file retries it.
    #[serde(skip)]
    pub rejected_mtime: Option<std::time::SystemTime>,
}

/// The process-wide gateway.
pub struct Gateway {
    snapshot: Arc<ArcSwap<Snapshot>>,
    pub metrics: Metrics,
    pub config_path: Option<PathBuf>,
    reload_lock: Mutex<ReloadStatus>,
    /// Runtime of the control plane, where discovery tasks live.
    control: OnceLock<tokio::runtime::Handle>,
    /// Where the access log opened at start writes (restart-only: a reload cannot move it).
    pub access_log_output: Option<config::LogOutput>,
    /// Set on SIGTERM: the process is leaving (see [`Gateway::start_draining`]).
    draining: std::sync::atomic::AtomicBool,
    /// Set on SIGQUIT: a new process takes the listeners (see [`Gateway::start_handover`]).
    handing_over: std::sync::atomic::AtomicBool,
    /// Where release states are kept, and operators' changes to them.
    pub rollouts: crate::rollout::Rollouts,
    /// Turns the file's text into a gateway config at each reload (a sidecar's reads its
    /// `outbound:` section).
    loader: Loader,
    /// The trace exporter, when `tracing` was configured at start (its endpoint is restart-only).
    pub tracer: Option<crate::trace::Tracer>,
    /// The admin UI's per-second samples and the last error lines.
    pub live: crate::admin::live::Live,
}

/// Validates configuration text (the file's, named `origin`) into a gateway config.
pub type Loader = Arc<dyn Fn(&str, &str) -> Result<config::Loaded, ConfigErrors> + Send + Sync>;

impl Gateway {
    /// The gateway for a loaded `config`; `text_hash` is the hash of the file text it was
    /// loaded from (so the file watch ignores events that do not change it).
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        text_hash: Option<u64>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, String> {
        Self::with_loader(config, config_path, text_hash, metrics, Arc::new(config::load_str))
    }

    /// Like [`Gateway::new`], reloading through `loader` (the gateway's own document format
    /// or another's that holds the same sections).
    pub fn with_loader(
        config: Config,
        config_path: Option<PathBuf>,
        text_hash: Option<u64>,
        metrics: Metrics,
        loader: Loader,
    ) -> Result<Arc<Self>, String> {
        let access_log_output = config.access_log.as_ref().map(|a| a.output.clone());
        let tracer = match &config.tracing {
            Some(spec) => Some(
                crate::trace::Tracer::start(
                    spec,
                    "arena-gateway",
                    metrics.trace_spans_exported.clone(),
                    metrics.trace_spans_dropped.clone(),
                )
                .map_err(|e| format!("cannot start the trace exporter: {e}"))?,
            ),
            None => None,
        };
        let rollouts = crate::rollout::Rollouts::default();
        let stored = rollouts.initial(&config);
        let snapshot = Snapshot::build_with(config, None, &metrics, 1, &|name| stored.get(name).cloned())?;
        for r in &snapshot.releases {
            crate::rollout::gauges(&metrics, r);
        }
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        metrics.config_generation.set(1);
        metrics.last_reload_success.set(unix_now());
        Ok(Arc::new(Gateway {
            snapshot,
            metrics,
            config_path,
            reload_lock: Mutex::new(ReloadStatus {
                generation: 1,
                tried_hash: text_hash,
                ..Default::default()
            }),
            control: OnceLock::new(),
            access_log_output,
            draining: std::sync::atomic::AtomicBool::new(false),
            handing_over: std::sync::atomic::AtomicBool::new(false),
            rollouts,
            loader,
            tracer,
            live: Default::default(),
        }))
    }

    /// The snapshot requests should use now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The swappable snapshot itself, for readers that outlive one request (scrape-time gauges).
    pub fn snapshots(&self) -> Arc<ArcSwap<Snapshot>> {
        Arc::clone(&self.snapshot)
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload_lock.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// SIGTERM arrived and `server.drain_delay` runs: `/readyz` says 503 (load balancers stop
    /// sending) and answers close their connections (keep-alive clients reconnect to another
    /// replica) while the listeners still accept.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// SIGQUIT arrived and a new process takes over the listening sockets: answers close their
    /// connections, so keep-alive clients reconnect (to the new process, once this one stops
    /// accepting) instead of finding their idle connection closed at the shutdown. `/readyz`
    /// stays 200: the same sockets go on serving.
    pub fn start_handover(&self) {
        self.handing_over.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers close their connections: draining after SIGTERM, or handing over after SIGQUIT.
    pub fn closes_connections(&self) -> bool {
        self.is_draining() || self.handing_over.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Called once by the control plane so reloads can start discovery tasks on it.
    pub fn set_control_runtime(&self, handle: tokio::runtime::Handle) {
        let _ = self.control.set(handle);
    }

    /// Re-reads the config file and swaps it in if it validates.
    pub fn reload(self: &Arc<Self>, trigger: &str) -> Result<ReloadStatus, ConfigErrors> {
        self.reload_from_file(trigger, false).map(|s| s.unwrap_or_default())
    }

    /// Like [`Self::reload`], but does nothing (`Ok(None)`) when the file text is the one last
    /// accepted: editors and `touch` fire watch events without changing anything.
    pub fn reload_if_changed(self: &Arc<Self>, trigger: &str) -> Result<Option<ReloadStatus>, ConfigErrors> {
        self.reload_from_file(trigger, true)
    }

    fn reload_from_file(
        self: &Arc<Self>,
        trigger: &str,
        only_if_changed: bool,
    ) -> Result<Option<ReloadStatus>, ConfigErrors> {
        let Some(path) = &self.config_path else {
            return Err(one_error("reload", "the gateway was not started from a file".into()));
        };
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| one_error(&origin, format!("cannot read configuration: {e}")))?;
        let hash = config::text_hash(&text);
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut status = self.reload_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if only_if_changed {
            status.watch_checks += 1;
        }
        let same_rejection = status.rejected_mtime.is_none() || status.rejected_mtime == mtime;
        if only_if_changed && status.tried_hash == Some(hash) && same_rejection {
            return Ok(None);
        }
        status.tried_hash = Some(hash);
        status.rejected_mtime = None;
        status.last_trigger = Some(trigger.to_string());
        match self.swap_in(&text, &origin, trigger, status.generation + 1) {
            Ok(warnings) => {
                status.generation += 1;
                status.last_result = Some("ok".into());
                status.diagnostics = warnings;
                Ok(Some(status.clone()))
            }
            Err(errors) => {
                self.metrics.reloads.with_label_values(&[trigger, "rejected"]).inc();
                for d in errors.errors() {
                    tracing::error!(
                        trigger,
                        "config rejected, keeping generation {}: {d}",
                        status.generation
                    );
                }
                status.last_result = Some("rejected".into());
                status.rejected_mtime = mtime;
                status.diagnostics = errors.0.clone();
                Err(errors)
            }
        }
    }

    /// Validates `text` and, when it is good, swaps in its snapshot as `generation` (the
    /// restart-only parts keep their running values); returns its warnings.
    fn swap_in(
        &self,
        text: &str,
        origin: &str,
        trigger: &str,
        generation: u64,
    ) -> Result<Vec<Diagnostic>, ConfigErrors> {
        let loaded = (self.loader)(text, origin)?;
        let old = self.snapshot.load_full();
        let (config, mut warnings) = (loaded.config, loaded.warnings);
        let opened = self.access_log_output.as_ref();
        let config = keep_restart_only_parts(config, &old.config, opened, &mut warnings);
        // A release new to this config may have run before (a restart, or a config that
        // dropped it for a while): it starts from the state file.
        let stored = crate::rollout::Rollouts::load_file(config.server.state_file.as_deref());
        let snap = Snapshot::build_with(config, Some(&old), &self.metrics, generation, &|name| {
            stored.get(name).cloned()
        })
        .map(Arc::new)
        .map_err(|e| one_error(origin, e))?;
        let fresh_dns = snap.new_dns_clusters(Some(&old));
        self.snapshot.store(Arc::clone(&snap));
        self.rollouts.save(&snap);
        self.start_discovery(fresh_dns);
        for w in &warnings {
            tracing::warn!(trigger, "{w}");
        }
        tracing::info!(trigger, generation, "configuration reloaded");
        self.metrics.reloads.with_label_values(&[trigger, "ok"]).inc();
        self.metrics.config_generation.set(generation as i64);
        self.metrics.last_reload_success.set(unix_now());
        Ok(warnings)
    }

    /// Starts DNS refreshers for `clusters` on the control plane (no-op before it runs; the
    /// control plane starts the initial ones itself).
    pub fn start_discovery(&self, clusters: Vec<Arc<Cluster>>) {
        if let Some(rt) = self.control.get() {
            for c in clusters {
                rt.spawn(arena_core::discovery::run(
                    Arc::downgrade(&c),
                    self.metrics.dns_refreshes.clone(),
                ));
            }
        }
    }

    /// DNS clusters of the current snapshot (for the control plane's start).
    pub fn current_dns_clusters(&self) -> Vec<Arc<Cluster>> {
        self.snapshot.load().new_dns_clusters(None)
    }

    /// Ready when every cluster has a resolved pod list.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().clusters.iter().all(|c| c.is_ready())
    }
}

/// Listeners, the admin address and process settings are bound at start; keep the running
/// ones and say so, rather than pretend a reload applied them.
fn keep_restart_only_parts(
    mut new: Config,
    old: &Config,
    log_output: Option<&config::LogOutput>,
    warnings: &mut Vec<Diagnostic>,
) -> Config {
    let mut note = |what: &str| {
        warnings.push(Diagnostic::new(
            Severity::Warning,
            "reload",
            None,
            format!("{what} changed: takes effect only after a restart; the running value is kept"),
            None,
        ))
    };
    if new.listeners != old.listeners {
        note("listeners");
        new.listeners = old.listeners.clone();
    }
    if new.admin.address != old.admin.address || new.admin.token != old.admin.token {
        note("admin");
        new.admin = old.admin.clone();
    }
    // The writer is opened at start: its output stays, and a log not opened then needs a restart.
    match (&mut new.access_log, log_output) {
        (Some(n), Some(opened)) if n.output != *opened => {
            note("access_log.output");
            n.output = opened.clone();
        }
        (Some(_), None) => {
            note("access_log (not opened at start)");
            new.access_log = None;
        }
        _ => {}
    }
    // The exporter is started with its endpoint; sampling and what is kept follow the reload.
    match (&mut new.tracing, &old.tracing) {
        (Some(n), Some(o))
            if n.otlp_endpoint != o.otlp_endpoint || n.service_name != o.service_name || n.resource != o.resource =>
        {
            note("tracing.otlp_endpoint/service_name/resource");
            n.otlp_endpoint = o.otlp_endpoint.clone();
            n.service_name = o.service_name.clone();
            n.resource = o.resource.clone();
        }
        (Some(_), None) => {
            note("tracing (no exporter was started)");
            new.tracing = None;
        }
        _ => {}
    }
    let (nc, oc) = (&mut new.server.client, &old.server.client);
    if nc.max_requests_per_connection != oc.max_requests_per_connection
        || nc.h2_max_concurrent_streams != oc.h2_max_concurrent_streams
        || nc.h2_idle_timeout != oc.h2_idle_timeout
    {
        note("server.client.max_requests_per_connection/h2");
        nc.max_requests_per_connection = oc.max_requests_per_connection;
        nc.h2_max_concurrent_streams = oc.h2_max_concurrent_streams;
        nc.h2_idle_timeout = oc.h2_idle_timeout;
    }
    if new.server.h2c != old.server.h2c {
        note("server.h2c");
        new.server.h2c = old.server.h2c;
    }
    // The running process hands its sockets over where it was started to; a new path is
    // used by the processes started with this file.
    if new.server.upgrade_sock != old.server.upgrade_sock {
        note("server.upgrade_sock");
        new.server.upgrade_sock = old.server.upgrade_sock.clone();
    }
    if new.server.threads != old.server.threads
        || new.server.work_stealing != old.server.work_stealing
        || new.server.upstream_keepalive_pool_size != old.server.upstream_keepalive_pool_size
    {
        note("server.threads/work_stealing/upstream_keepalive_pool_size");
        new.server.threads = old.server.threads;
        new.server.work_stealing = old.server.work_stealing;
        new.server.upstream_keepalive_pool_size = old.server.upstream_keepalive_pool_size;
    }
    new
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A configuration problem with no position (the file as a whole).
fn one_error(origin: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![Diagnostic::new(Severity::Error, origin, None, message, None)])
}

#[cfg(test)]
#[path = "state_props.rs"]
mod props;
