//! Split: where a routed request goes — the version of the route's release (stable or
//! canary: forced by a header, else by the user's sticky cohort at the current weight), so
//! the cluster that serves it, and the sticky key a `consistent_hash` cluster hashes on.

use std::net::IpAddr;

use http::HeaderMap;

use arena_core::release::{Choice, Version};

use crate::config::{HashKey, LbKind};
use crate::route::Route;

/// The split's decision for one request.
#[derive(Debug, Default)]
pub struct Target {
    /// The release's choice, when the route has a release.
    pub split: Option<Choice>,
    /// What `consistent_hash` hashes (boxed: only such clusters have one, and the request
    /// context moves with the request future).
    pub hash_key: Option<Box<[u8]>>,
}

/// Decides the target of a request on `route`.
pub fn target(route: &Route, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Target {
    let split = route.release.as_ref().map(|r| {
        let mut c = r.release.choose(headers, client_ip);
        // A canary with no pod to serve (all ejected, DNS empty) sends its users to stable
        // rather than to an error or the function.
        if c.version == Version::Canary && !r.canary.has_available() {
            c.version = Version::Stable;
        }
        c
    });
    let cluster = match (&split, &route.release) {
        (Some(c), Some(r)) if c.version == Version::Canary => &r.canary.spec,
        _ => &route.cluster.spec,
    };
    if cluster.lb != LbKind::ConsistentHash {
        return Target { split, hash_key: None };
    }
    let hash_key = match &cluster.hash_key {
        Some(HashKey::Header(h)) => headers.get(h).map(|v| v.as_bytes().into()),
        Some(HashKey::Cookie(name)) => cookie(headers, name).map(Into::into),
        Some(HashKey::ClientIp) => client_ip.map(|ip| ip.to_string().into_bytes().into()),
        None => None,
    };
    Target { split, hash_key }
}

/// The value of cookie `name` among all `Cookie` headers (the first of that name); its
/// tests, property tests included, are core's.
pub use arena_core::release::cookie;

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;
