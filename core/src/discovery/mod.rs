//! Pod discovery: static lists need nothing; DNS clusters get a refresher task that follows
//! the answer's TTL and keeps the last good pod set when a lookup fails.

pub mod dns;

use std::sync::{Arc, Weak};

use prometheus::IntCounterVec;
use tokio::time::Instant;

use crate::balance::Origin;
use crate::cluster::Cluster;
use crate::config::Source;

use dns::{next_refresh, DnsResolver};

/// Refreshes one DNS cluster until the cluster is dropped (replaced by a reload).
pub async fn run(cluster: Weak<Cluster>, refreshes: IntCounterVec) {
    let Some((spec, name)) = cluster.upgrade().and_then(|c| match &c.spec.source {
        Source::Dns(d) => Some((d.clone(), c.name().to_string())),
        Source::Static(_) => None,
    }) else {
        return;
    };
    let resolver = match DnsResolver::new(&spec) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(cluster = %name, error = %e, "DNS discovery cannot start");
            if let Some(c) = cluster.upgrade() {
                c.update_discovery(|s| {
                    s.last_result = e.kind().into();
                    s.last_error = Some(e.to_string());
                });
            }
            return;
        }
    };
    loop {
        let outcome = resolver.resolve(&spec).await;
        let Some(c) = cluster.upgrade() else { return };
        let delay = match outcome {
            Ok(res) => {
                let before: Vec<_> = c.endpoints().active.iter().map(|e| e.addr).collect();
                c.replace_endpoints(&res.addrs, Origin::Dns, None);
                if before != res.addrs {
                    tracing::info!(cluster = %name, pods = ?res.addrs, ttl = ?res.ttl, "DNS pod set changed");
                }
                c.update_discovery(|s| {
                    s.last_result = "ok".into();
                    s.last_error = None;
                    s.last_success = Some(Instant::now());
                    s.resolved = true;
                    s.stale = false;
                    s.refreshes += 1;
                });
                refreshes.with_label_values(&[name.as_str(), "ok"]).inc();
                next_refresh(&spec, Ok(res.ttl))
            }
            Err(e) => {
                let kept = c.endpoints().active.len();
                tracing::warn!(cluster = %name, error = %e, kept_pods = kept, "DNS lookup failed; keeping the last good pod set");
                c.update_discovery(|s| {
                    s.last_result = e.kind().into();
                    s.last_error = Some(e.to_string());
                    s.stale = s.resolved;
                    s.refreshes += 1;
                    s.failures += 1;
                });
                refreshes.with_label_values(&[name.as_str(), e.kind()]).inc();
                next_refresh(&spec, Err(()))
            }
        };
        drop(c);
        tokio::time::sleep(delay).await;
    }
}

/// Drops drained pods of every cluster in `clusters` once their last request finished.
pub fn sweep(clusters: &[Arc<Cluster>]) {
    for c in clusters {
        c.sweep_drained();
    }
}
