//! Route table: the first route whose match holds (in file order) takes the request.

use std::sync::Arc;

pub use arena_core::route::{host_of, RequestView};

use crate::config::RouteSpec;
use crate::faas::Function;
use crate::metrics::RouteMetrics;
use arena_core::cluster::Cluster;
use arena_core::release::Release;
use arena_core::resilience::budget::RetryBudget;
use arena_core::resilience::latency::LatencyWindow;
use arena_core::resilience::rate_limit::RouteLimit;

/// A route ready to serve: its spec, its cluster, its resilience state and metric handles.
pub struct Route {
    pub spec: RouteSpec,
    pub cluster: Arc<Cluster>,
    pub metrics: RouteMetrics,
    pub budget: Option<RetryBudget>,
    pub limit: Option<RouteLimit>,
    pub fallback: Option<Arc<Function>>,
    /// Recent latencies, kept only for routes that hedge at a live percentile.
    pub latency: Option<LatencyWindow>,
    /// The release splitting this route between `cluster` (stable) and a canary cluster.
    pub release: Option<RouteRelease>,
    /// TLS to `cluster`'s pods, when it has `tls`.
    pub tls: Option<Arc<crate::proxy::peer_tls::PeerTls>>,
}

/// A route's release: the release itself (weight, cohorts, windows) and its canary cluster.
pub struct RouteRelease {
    pub release: Arc<Release>,
    pub canary: Arc<Cluster>,
    pub metrics: crate::metrics::ReleaseMetrics,
    /// TLS to the canary cluster's pods.
    pub canary_tls: Option<Arc<crate::proxy::peer_tls::PeerTls>>,
}

/// Routes in file order.
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    /// Some route matches on host: only then is the request's host worth extracting.
    uses_host: bool,
}

impl RouteTable {
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        let uses_host = routes.iter().any(|r| r.spec.matcher.host.is_some());
        RouteTable { routes, uses_host }
    }

    pub fn uses_host(&self) -> bool {
        self.uses_host
    }

    pub fn find(&self, req: &RequestView<'_>) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.spec.matcher.matches(req))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }
}
