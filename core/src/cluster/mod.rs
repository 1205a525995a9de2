//! A cluster: the live set of pods behind one name, and how to pick one of them.
//!
//! The pod set is immutable and swapped whole (ArcSwap) when discovery changes it; the pods'
//! live counters sit on the shared [`Endpoint`]s, so they survive set changes and reloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use crate::balance::report::LoadReport;
use crate::balance::{self, Endpoint, HashRing, InFlight, LoadBoard, LoadView, Origin};
use crate::config::{ClusterSpec, LbKind, Source};
use crate::resilience::outlier::{ejection_cap, HealthView};

/// The pods of a cluster at one moment.
pub struct EndpointSet {
    /// Pods that take new requests.
    pub active: Vec<Arc<Endpoint>>,
    /// Pods that left discovery; they finish their in-flight requests and take no new ones.
    pub draining: Vec<Arc<Endpoint>>,
    ring: Option<HashRing>,
}

impl EndpointSet {
    fn new(active: Vec<Arc<Endpoint>>, draining: Vec<Arc<Endpoint>>, lb: LbKind) -> Self {
        let ring = (lb == LbKind::ConsistentHash).then(|| HashRing::new(&active));
        EndpointSet { active, draining, ring }
    }
}

/// Outcome of the latest discovery attempt, shown in `/clusters` and metrics.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DiscoveryStatus {
    /// `ok`, or the failure kind (`timeout`, `nxdomain`, ...).
    pub last_result: String,
    pub last_error: Option<String>,
    /// Seconds since the last successful resolution.
    pub last_success_age_s: Option<f64>,
    #[serde(skip)]
    pub last_success: Option<Instant>,
    /// True once at least one resolution succeeded (the cluster is ready).
    pub resolved: bool,
    /// True while serving a previous answer because the latest lookup failed.
    pub stale: bool,
    pub refreshes: u64,
    pub failures: u64,
}

/// Runtime state of one configured cluster.
pub struct Cluster {
    pub spec: ClusterSpec,
    set: ArcSwap<EndpointSet>,
    rr: AtomicUsize,
    discovery: Mutex<DiscoveryStatus>,
    /// Requests in flight to any pod of the cluster (the circuit breaker's gauge).
    in_flight: Arc<AtomicU32>,
    /// What the pods have reported lately (the stand-in load of pods that have not).
    board: Arc<LoadBoard>,
}

impl Cluster {
    /// Builds a cluster; pods already known (same address in `previous`) keep their live state.
    pub fn new(spec: ClusterSpec, previous: Option<&Cluster>) -> Arc<Self> {
        let (addrs, origin, status) = match &spec.source {
            Source::Static(list) => (
                list.clone(),
                Origin::Static,
                DiscoveryStatus {
                    last_result: "static".into(),
                    resolved: true,
                    ..Default::default()
                },
            ),
            // Until the first answer, carry over what the previous config had resolved.
            Source::Dns(_) => {
                match previous.filter(|p| matches!(p.spec.source, Source::Dns(_)) && p.spec.source == spec.source) {
                    Some(p) => (
                        p.set.load().active.iter().map(|e| e.addr).collect(),
                        Origin::Dns,
                        p.discovery_status(),
                    ),
                    None => (Vec::new(), Origin::Dns, DiscoveryStatus::default()),
                }
            }
        };
        let cluster = Arc::new(Cluster {
            set: ArcSwap::from_pointee(EndpointSet::new(Vec::new(), Vec::new(), spec.lb)),
            spec,
            rr: AtomicUsize::new(0),
            discovery: Mutex::new(status),
            in_flight: Arc::new(AtomicU32::new(0)),
            // The endpoints carried over keep reporting to the board they were made with.
            board: previous.map_or_else(LoadBoard::new, |p| Arc::clone(&p.board)),
        });
        let prev_set = previous.map(|p| p.set.load_full());
        cluster.replace_endpoints(&addrs, origin, prev_set.as_deref());
        cluster
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn endpoints(&self) -> arc_swap::Guard<Arc<EndpointSet>> {
        self.set.load()
    }

    /// Installs a new pod list. Known pods keep their state; pods that left start draining.
    pub fn replace_endpoints(&self, addrs: &[SocketAddr], origin: Origin, carry_from: Option<&EndpointSet>) {
        let current = self.set.load_full();
        let mut known: HashMap<SocketAddr, Arc<Endpoint>> = HashMap::new();
        for src in [Some(&*current), carry_from].into_iter().flatten() {
            for e in src.active.iter().chain(src.draining.iter()) {
                known.entry(e.addr).or_insert_with(|| Arc::clone(e));
            }
        }
        let mut active = Vec::with_capacity(addrs.len());
        // New pods start relative to the ones already serving (this set, or the one a reload
        // carries state from).
        let peers: Vec<Arc<Endpoint>> = current
            .active
            .iter()
            .chain(carry_from.map(|c| c.active.as_slice()).unwrap_or_default())
            .cloned()
            .collect();
        let seed = Endpoint::seed(&peers, tokio::time::Instant::now(), &self.spec.load);
        for a in addrs {
            if active.iter().any(|e: &Arc<Endpoint>| e.addr == *a) {
                continue;
            }
            let ep = known
                .remove(a)
                .unwrap_or_else(|| Endpoint::seeded(*a, origin, seed, &self.board));
            ep.set_draining(false);
            active.push(ep);
        }
        // Whatever is left was known and is gone now: drain it while requests are in flight.
        let mut draining: Vec<Arc<Endpoint>> = known.into_values().filter(|e| e.in_flight() > 0).collect();
        for e in &draining {
            e.set_draining(true);
        }
        draining.sort_by_key(|e| e.addr);
        self.set
            .store(Arc::new(EndpointSet::new(active, draining, self.spec.lb)));
    }

    /// Drops drained pods that have finished their last request.
    pub fn sweep_drained(&self) {
        let set = self.set.load_full();
        if set.draining.iter().any(|e| e.in_flight() == 0) {
            let draining = set.draining.iter().filter(|e| e.in_flight() > 0).cloned().collect();
            self.set
                .store(Arc::new(EndpointSet::new(set.active.clone(), draining, self.spec.lb)));
        }
    }

    /// Picks a pod for a request. `hash_key` feeds consistent hashing (falls back to p2c when the
    /// request has no key); `eligible` filters out pods already tried. Ejected pods are skipped.
    pub fn pick<R: Rng>(
        &self,
        hash_key: Option<&[u8]>,
        eligible: impl Fn(&Endpoint) -> bool,
        rng: &mut R,
    ) -> Option<Arc<Endpoint>> {
        self.pick_at(hash_key, eligible, rng, Instant::now())
    }

    /// [`Self::pick`] at a `now` the caller already read (the request path reads the clock once).
    pub fn pick_at<R: Rng>(
        &self,
        hash_key: Option<&[u8]>,
        eligible: impl Fn(&Endpoint) -> bool,
        rng: &mut R,
        now: Instant,
    ) -> Option<Arc<Endpoint>> {
        let set = self.set.load();
        let eps = &set.active;
        let ok = |e: &Endpoint| eligible(e) && e.health.is_available(now);
        let i = match (self.spec.lb, &set.ring, hash_key) {
            (LbKind::ConsistentHash, Some(ring), Some(key)) => ring.pick(key, eps, ok),
            (LbKind::RoundRobin, ..) => balance::round_robin(eps, ok, &self.rr),
            (LbKind::LeastInflight, ..) => balance::least_inflight(eps, ok, rng),
            _ => balance::p2c(eps, ok, rng, now, &self.spec.load),
        }?;
        eps.get(i).cloned()
    }

    /// Starts a request on `endpoint`, counted for the pod and the cluster's circuit breaker.
    pub fn start(&self, endpoint: &Arc<Endpoint>) -> InFlight {
        self.start_at(endpoint, Instant::now())
    }

    /// [`Self::start`] at a `now` the caller already read.
    pub fn start_at(&self, endpoint: &Arc<Endpoint>, now: Instant) -> InFlight {
        endpoint.start_counted_at(Some(Arc::clone(&self.in_flight)), now)
    }

    /// Starts a request on `endpoint` unless the cluster is at `max_in_flight` (`None`: the
    /// breaker is open). The check and the count are one compare-and-swap, so requests started
    /// at the same moment on several threads can never overrun the cap.
    pub fn try_start_at(&self, endpoint: &Arc<Endpoint>, now: Instant) -> Option<InFlight> {
        let Some(max) = self.spec.max_in_flight else {
            return Some(self.start_at(endpoint, now));
        };
        self.in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(endpoint.start_reserved_at(Some(Arc::clone(&self.in_flight)), now))
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// True while the cluster is at `max_in_flight`.
    pub fn circuit_open(&self) -> bool {
        self.spec.max_in_flight.is_some_and(|max| self.in_flight() >= max)
    }

    /// Ends an attempt: feeds the load signal and the outlier detector. Returns the ejection
    /// time when this failure ejected the pod.
    pub fn finish(&self, guard: InFlight, ok: bool, report: Option<LoadReport>) -> Option<Duration> {
        let ep = Arc::clone(guard.endpoint());
        if ok {
            guard.success(&self.spec.load, report);
            ep.health.record_success();
            return None;
        }
        guard.failure(&self.spec.load, report);
        let set = self.set.load();
        let cap = ejection_cap(set.active.len(), self.spec.outlier.max_ejected_percent);
        let ejected = ep.health.record_failure(Instant::now(), &self.spec.outlier, || {
            set.active.iter().filter(|e| e.health.is_ejected()).count() < cap
        });
        if let Some(time) = ejected {
            tracing::warn!(cluster = %self.spec.name, pod = %ep.addr, seconds = time.as_secs_f64(), "pod ejected after consecutive failures");
        }
        ejected
    }

    /// A try's answer began well: the load signal and the outlier state learn it now; the slot
    /// is released when `guard` drops (the answer's end), or the try still fails with [`Self::finish`].
    pub fn answered(&self, guard: &mut InFlight, report: Option<LoadReport>) {
        guard.answered(&self.spec.load, report);
        guard.endpoint().health.record_success();
    }

    /// Ends an attempt the pod shed unprocessed (see `InFlight::shed`): busy, not broken.
    pub fn shed(&self, guard: InFlight, report: Option<LoadReport>) {
        guard.shed(&self.spec.load, report);
    }

    /// Whether any pod could take a request now.
    pub fn has_available(&self) -> bool {
        let now = Instant::now();
        self.set.load().active.iter().any(|e| e.health.is_available(now))
    }

    /// True when every available pod reports utilisation above `threshold` (spillover).
    /// Pods without a fresh report are not known to be busy, so they keep traffic local.
    pub fn all_busier_than(&self, threshold: f64) -> bool {
        let now = Instant::now();
        let set = self.set.load();
        let mut any = false;
        for e in set.active.iter().filter(|e| e.health.is_available(now)) {
            match e.reported_utilization(now, &self.spec.load) {
                Some(u) if u > threshold => any = true,
                _ => return false,
            }
        }
        any
    }

    pub fn discovery_status(&self) -> DiscoveryStatus {
        let mut s = self.discovery.lock().unwrap_or_else(PoisonError::into_inner).clone();
        s.last_success_age_s = s
            .last_success
            .map(|t| Instant::now().saturating_duration_since(t).as_secs_f64());
        s
    }

    pub fn update_discovery(&self, f: impl FnOnce(&mut DiscoveryStatus)) {
        f(&mut self.discovery.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Ready when the pod list has been resolved at least once.
    pub fn is_ready(&self) -> bool {
        self.discovery.lock().unwrap_or_else(PoisonError::into_inner).resolved
    }

    /// JSON-able view for `/clusters`.
    pub fn view(&self) -> ClusterView {
        let now = Instant::now();
        let set = self.set.load();
        let pod = |e: &Arc<Endpoint>, state: &'static str| {
            let health = e.health.view(now);
            PodView {
                address: e.addr,
                state: if state == "healthy" && health.ejected {
                    "ejected"
                } else {
                    state
                },
                source: e.origin,
                load: e.view(now, &self.spec.load),
                health,
            }
        };
        ClusterView {
            name: self.spec.name.clone(),
            lb: self.spec.lb,
            discovery: self.discovery_status(),
            pods: set
                .active
                .iter()
                .map(|e| pod(e, "healthy"))
                .chain(set.draining.iter().map(|e| pod(e, "draining")))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    pub address: SocketAddr,
    pub state: &'static str,
    pub source: Origin,
    #[serde(flatten)]
    pub load: LoadView,
    pub health: HealthView,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub name: String,
    pub lb: LbKind,
    pub discovery: DiscoveryStatus,
    pub pods: Vec<PodView>,
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
