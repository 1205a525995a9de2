//! Route table: the first route whose match holds (in file order) takes the request.

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::cluster::Cluster;
use crate::config::{Match, PathMatch, RouteSpec};
use crate::faas::Function;
use crate::metrics::RouteMetrics;
use crate::resilience::budget::RetryBudget;
use crate::resilience::latency::LatencyWindow;
use crate::resilience::rate_limit::RouteLimit;

/// The parts of a request that routing looks at.
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// Lower-case host without port (empty when absent).
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// Host of a request: the `Host` header, else the URI authority; port and case dropped.
pub fn host_of<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> &'a str {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        // [v6]:port
        return h.split(']').next().map(|s| &h[..s.len() + 1]).unwrap_or(h);
    }
    h.rsplit_once(':').map(|(host, _)| host).unwrap_or(h)
}

impl Match {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(h) = &self.host {
            if !req.host.eq_ignore_ascii_case(h) {
                return false;
            }
        }
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => req.path == p,
            // `/v1/matches` matches `/v1/matches` and `/v1/matches/7`, not `/v1/matchesX`.
            PathMatch::Prefix(p) => {
                req.path.starts_with(p.as_str())
                    && (p.ends_with('/')
                        || req.path.len() == p.len()
                        || req.path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        };
        if !path_ok {
            return false;
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(req.method) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(k, v)| req.headers.get(k).is_some_and(|got| got.as_bytes() == v.as_bytes()))
    }
}

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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
