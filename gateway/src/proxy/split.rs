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
    let split = route.release.as_ref().map(|r| r.release.choose(headers, client_ip));
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

/// The value of cookie `name` among all `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .next()
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "split_props.rs"]
mod props;
