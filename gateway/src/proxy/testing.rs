//! Test support for the stages: a real snapshot (routes, clusters, budgets, functions) built
//! from a YAML body, the way the gateway builds one, so decisions are tested on the objects
//! they run on — no socket involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::route::Route;
use crate::state::Snapshot;

/// A snapshot of `body` (clusters, routes, faas...) under a minimal listener section.
pub fn snapshot(body: &str) -> Arc<Snapshot> {
    let text = format!("listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\n{body}");
    let loaded = crate::config::load_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Snapshot::build(loaded.config, None, &Metrics::new().unwrap(), 1).unwrap())
}

/// The route named `name`.
pub fn route(snap: &Snapshot, name: &str) -> Arc<Route> {
    snap.routes
        .iter()
        .find(|r| r.spec.name == name)
        .cloned()
        .expect("route in the test config")
}

/// A request routed on `route` (split as a request without headers from 10.0.0.1 would be)
/// whose tries went to `pods_tried` pods.
pub fn routed(route: &Arc<Route>, pods_tried: usize) -> crate::proxy::ctx::Routed {
    let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    let target = crate::proxy::split::target(route, &http::HeaderMap::new(), ip);
    let mut r = crate::proxy::ctx::Routed::new(Arc::clone(route), target, tokio::time::Instant::now());
    for i in 0..pods_tried {
        r.tries
            .tried
            .push(std::net::SocketAddr::from(([127, 0, 0, 200], 9000 + i as u16)));
    }
    r.tries.count = pods_tried as u32;
    r
}
