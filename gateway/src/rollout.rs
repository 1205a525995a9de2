//! Rollouts: the gateway's side of its releases — the task that judges every release each
//! 100 ms and applies the verdict, operators' requests from the admin API, and keeping the
//! states: the state file (every release, after every change) and, for `scope: cluster`,
//! Redis, synced every 250 ms so a rollback on one replica reaches the others within a second.
//!
//! Every change is logged, counted (`arena_release_transitions_total`,
//! `arena_release_rollbacks_total`) and written out in one place ([`Rollouts::changed`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arena_core::config::release::percent_text;
use arena_core::config::{RedisSpec, ReleaseScope};
use arena_core::release::store::{FileStore, RedisStore, Synced};
use arena_core::release::{unix_ms_now, BreachReason, Operator, Phase, Release, ReleaseState, Transition, Verdict};

use crate::metrics::Metrics;
use crate::state::{Gateway, Snapshot};

/// How often every release is judged.
pub const TICK: Duration = Duration::from_millis(100);
/// How often `scope: cluster` releases are synced with Redis.
pub const SYNC_EVERY: u32 = 3;

/// What made a release change, for logs and `arena_release_rollbacks_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// This replica's analysis.
    Analysis,
    /// An operator (admin API, `canary` CLI).
    Operator,
    /// Another replica, through Redis.
    Replica,
}

/// The stores and the lock that keeps two writers of the state file apart.
#[derive(Default)]
pub struct Rollouts {
    file: Mutex<()>,
    redis: Mutex<Option<(RedisSpec, Arc<RedisStore>)>>,
}

impl Rollouts {
    /// The states saved in `path` (empty when there is no file, or it could not be read).
    pub fn load_file(path: Option<&Path>) -> BTreeMap<String, ReleaseState> {
        path.map(|p| FileStore::new(p).load()).unwrap_or_default()
    }

    /// What each release of `config` starts from: the state file's state, or for `scope:
    /// cluster` the newer of it and Redis' (read once, bounded by the Redis timeout), so a
    /// new replica serves the fleet's weight from its first request, not a first step.
    pub fn initial(&self, config: &crate::config::Config) -> BTreeMap<String, ReleaseState> {
        let mut states = Self::load_file(config.server.state_file.as_deref());
        let shared: Vec<_> = config
            .releases
            .iter()
            .filter(|r| r.scope == ReleaseScope::Cluster)
            .collect();
        let (Some(spec), false) = (config.redis.as_ref(), shared.is_empty()) else {
            return states;
        };
        // A store of its own: its connection lives on this short-lived runtime, not on the
        // control plane's, which builds the one it syncs with.
        let store = match RedisStore::new(spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "release states cannot be read from redis");
                return states;
            }
        };
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return states;
        };
        for release in shared {
            let stored = rt.block_on(store.load(&release.name));
            match stored {
                Ok(s) => {
                    let local = states.remove(&release.name);
                    if let Some(best) = arena_core::release::store::pick(release, [local, s]) {
                        states.insert(release.name.clone(), best);
                    }
                }
                Err(e) => {
                    tracing::warn!(release = %release.name, error = %e, "release state not read from redis; starting from the local one")
                }
            }
        }
        states
    }

    /// The Redis store for `spec`, built once per Redis definition.
    fn redis(&self, spec: &RedisSpec) -> Option<Arc<RedisStore>> {
        let mut r = self.redis.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, store)) = r.as_ref() {
            if s == spec {
                return Some(Arc::clone(store));
            }
        }
        match RedisStore::new(spec) {
            Ok(store) => {
                let store = Arc::new(store);
                *r = Some((spec.clone(), Arc::clone(&store)));
                Some(store)
            }
            Err(e) => {
                tracing::error!(error = %e, "release states cannot be shared through redis");
                None
            }
        }
    }

    /// Writes every release's state to the state file, if there is one.
    pub fn save(&self, snap: &Snapshot) {
        let Some(path) = snap.config.server.state_file.as_deref() else {
            return;
        };
        // Releases the config no longer has keep their entries: put back, they carry on.
        let _one = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let store = FileStore::new(path);
        let mut states = if path.exists() { store.load() } else { BTreeMap::new() };
        states.extend(snap.releases.iter().map(|r| (r.name().to_string(), r.state())));
        if let Err(e) = store.save(&states) {
            tracing::warn!(file = %path.display(), error = %e, "release states not saved");
        }
    }

    /// Logs, counts and saves a change of `release`.
    pub fn changed(&self, snap: &Snapshot, metrics: &Metrics, release: &Release, t: &Transition, cause: Cause) {
        tracing::warn!(
            release = release.name(),
            from = t.from.as_str(),
            to = t.to.as_str(),
            weight = %percent_text(t.weight_bp),
            cause = ?cause,
            reason = %t.reason,
            "release changed"
        );
        let f = &metrics.releases;
        f.transitions.with_label_values(&[release.name(), t.to.as_str()]).inc();
        if t.to == Phase::RolledBack && t.from != Phase::RolledBack {
            let reason = match cause {
                Cause::Operator => "operator",
                Cause::Replica => "replica",
                Cause::Analysis => match release.verdict_and_phase().0.map(|v| v.verdict) {
                    Some(Verdict::Breach {
                        reason: BreachReason::ErrorRate,
                        ..
                    }) => "error_rate",
                    Some(Verdict::Breach {
                        reason: BreachReason::Latency,
                        ..
                    }) => "latency",
                    _ => "analysis",
                },
            };
            f.rollbacks.with_label_values(&[release.name(), reason]).inc();
        }
        gauges(metrics, release);
        self.save(snap);
    }

    /// An operator's request on release `name`.
    pub fn apply(&self, gw: &Gateway, name: &str, op: Operator) -> Result<Transition, ApplyError> {
        let snap = gw.snapshot();
        let release = snap.release(name).ok_or(ApplyError::Unknown)?;
        let t = release.apply(op, unix_ms_now()).map_err(ApplyError::Refused)?;
        self.changed(&snap, &gw.metrics, release, &t, Cause::Operator);
        Ok(t)
    }
}

/// Why an operator's request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    Unknown,
    Refused(String),
}

/// Sets the weight and phase gauges of `release`.
pub fn gauges(metrics: &Metrics, release: &Release) {
    let f = &metrics.releases;
    let (_, current) = release.verdict_and_phase();
    f.weight
        .with_label_values(&[release.name()])
        .set(f64::from(release.weight_bp()) / 100.0);
    for phase in [Phase::Progressing, Phase::Paused, Phase::Promoted, Phase::RolledBack] {
        f.phase
            .with_label_values(&[release.name(), phase.as_str()])
            .set(i64::from(phase == current));
    }
}

/// The release task (on the control plane): judges every release each [`TICK`], applies the
/// verdict, and syncs `scope: cluster` releases with Redis every [`SYNC_EVERY`] ticks.
pub async fn run(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        let snap = gw.snapshot();
        if snap.releases.is_empty() {
            continue;
        }
        let now = tokio::time::Instant::now();
        for release in &snap.releases {
            judge(&gw, &snap, release, now);
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(SYNC_EVERY) {
            sync(&gw, &snap).await;
        }
    }
}

fn judge(gw: &Gateway, snap: &Snapshot, release: &Release, now: tokio::time::Instant) {
    let t = release.tick(now, unix_ms_now());
    let verdict = release.verdict_and_phase().0.map(|v| v.verdict);
    let label = match verdict {
        Some(Verdict::Healthy { .. }) => "healthy",
        Some(Verdict::Breach { .. }) => "breach",
        _ => "insufficient",
    };
    gw.metrics
        .releases
        .verdicts
        .with_label_values(&[release.name(), label])
        .inc();
    match t {
        Some(t) => gw.rollouts.changed(snap, &gw.metrics, release, &t, Cause::Analysis),
        None => gauges(&gw.metrics, release),
    }
}

async fn sync(gw: &Gateway, snap: &Snapshot) {
    let Some(spec) = snap.config.redis.as_ref() else {
        return;
    };
    let shared: Vec<&Arc<Release>> = snap
        .releases
        .iter()
        .filter(|r| r.spec().scope == ReleaseScope::Cluster)
        .collect();
    if shared.is_empty() {
        return;
    }
    let Some(store) = gw.rollouts.redis(spec) else {
        return;
    };
    for release in shared {
        let before = release.state();
        match store.sync(release).await {
            Ok(Synced::Adopted | Synced::Yielded) => {
                let after = release.state();
                let t = Transition {
                    at_ms: unix_ms_now(),
                    from: before.phase,
                    to: after.phase,
                    weight_bp: after.weight_bp,
                    reason: after
                        .history
                        .last()
                        .map_or_else(|| "state of another replica".to_string(), |h| h.reason.clone()),
                };
                gw.rollouts.changed(snap, &gw.metrics, release, &t, Cause::Replica);
            }
            Ok(Synced::Unchanged | Synced::Published) => {}
            Err(e) => tracing::debug!(release = release.name(), error = %e, "release sync skipped"),
        }
    }
}
