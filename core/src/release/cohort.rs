//! Which version serves a request: force rules first, then the user's cohort — a bucket in
//! `0..10000` from their sticky key, on the canary while it is below the weight in basis points.
//!
//! The bucket is FNV-1a 64 over the release name, a `0xff` separator (never in UTF-8, so name
//! and key cannot run into each other) and the key, then splitmix64's finalizer, `% 10000`:
//! fixed bytes in, fixed arithmetic, so every build and replica puts a user in the same cohort.
//! Salting by release name gives each release its own cohorts (the same users are not always
//! the guinea pigs). Raising the weight only adds buckets, so a user on the canary stays there.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::release::FULL_BP;
use crate::config::{ReleaseSpec, StickyKey};
use crate::resilience::rate_limit::{client_prefix, Fnv1a};

/// Buckets a release splits users into (one per basis point).
pub const BUCKETS: u16 = FULL_BP;

/// IPv6 clients are one user per /64: privacy addresses rotate within it, and a user must not
/// hop between versions when they do.
const IPV6_PREFIX: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    Stable,
    Canary,
}

impl Version {
    /// Label for metrics, logs and debug headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Stable => "stable",
            Version::Canary => "canary",
        }
    }
}

/// Why a request went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A `force.canary` header matched.
    ForcedCanary,
    /// A `force.stable` header matched (wins over `force.canary`).
    ForcedStable,
    /// The user's bucket against the weight.
    Cohort,
    /// No sticky key and no client address: stable, the safe side.
    NoKey,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::ForcedCanary => "forced_canary",
            Why::ForcedStable => "forced_stable",
            Why::Cohort => "cohort",
            Why::NoKey => "no_key",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub version: Version,
    pub why: Why,
}

/// FNV-1a 64 finished by splitmix64's mix: FNV alone spreads similar short keys (`user-1`,
/// `user-2`) poorly over the low digits that `% 10000` keeps.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bucket (`0..10000`) of `key` in release `release`; see the module docs.
pub fn bucket(release: &str, key: &[u8]) -> u16 {
    let mut h = Fnv1a::new();
    h.write(release.as_bytes());
    h.write(&[0xff]);
    h.write(key);
    // 2^64 is not a multiple of 10000: the skew is below 1e-15, far under any weight's step.
    (mix(h.finish()) % u64::from(BUCKETS)) as u16
}

/// Whether a bucket is on the canary at `weight_bp`.
pub fn on_canary(bucket: u16, weight_bp: u16) -> bool {
    bucket < weight_bp
}

/// The value of cookie `name` among all `Cookie` headers (the first one of that name).
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

/// The bytes a client address stands for: IPv4 octets (also when IPv4-mapped), or the first
/// 8 octets (the /64) of an IPv6 address. In a buffer: no allocation on the request path.
fn ip_key(ip: IpAddr) -> ([u8; 8], usize) {
    let mut buf = [0u8; 8];
    match client_prefix(ip, IPV6_PREFIX) {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            (buf, 4)
        }
        IpAddr::V6(v6) => {
            buf.copy_from_slice(&v6.octets()[..8]);
            (buf, 8)
        }
    }
}

/// The written key (header or cookie), when present and not empty.
fn written_key<'a>(sticky: &StickyKey, headers: &'a HeaderMap) -> Option<&'a [u8]> {
    let key = match sticky {
        StickyKey::Header(h) => headers.get(h).map(HeaderValue::as_bytes),
        StickyKey::Cookie(name) => cookie(headers, name),
        StickyKey::ClientIp => None,
    };
    // An empty value would put everyone without one in the same cohort.
    key.filter(|k| !k.is_empty())
}

/// The bytes that pick a request's cohort: the sticky header or cookie, else (missing or
/// empty) the client address; `None` without either.
pub fn sticky_key<'a>(spec: &ReleaseSpec, headers: &'a HeaderMap, client_ip: Option<IpAddr>) -> Option<Cow<'a, [u8]>> {
    if let Some(k) = written_key(&spec.sticky, headers) {
        return Some(Cow::Borrowed(k));
    }
    let (buf, len) = ip_key(client_ip?);
    Some(Cow::Owned(buf[..len].to_vec()))
}

fn matches_any(rules: &[(HeaderName, HeaderValue)], headers: &HeaderMap) -> bool {
    rules
        .iter()
        .any(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
}

/// Where a request goes at `weight_bp`. `force.stable` wins over `force.canary` (a "never on
/// the canary" tenant must hold whatever else a request carries); then the cohort. At 0 % and
/// 100 % the key is not even read. Allocates nothing.
pub fn choose(spec: &ReleaseSpec, weight_bp: u16, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Choice {
    let pick = |version, why| Choice { version, why };
    if matches_any(&spec.force_stable, headers) {
        return pick(Version::Stable, Why::ForcedStable);
    }
    if matches_any(&spec.force_canary, headers) {
        return pick(Version::Canary, Why::ForcedCanary);
    }
    if weight_bp == 0 {
        return pick(Version::Stable, Why::Cohort);
    }
    if weight_bp >= BUCKETS {
        return pick(Version::Canary, Why::Cohort);
    }
    let b = match (written_key(&spec.sticky, headers), client_ip) {
        (Some(k), _) => bucket(&spec.name, k),
        (None, Some(ip)) => {
            let (buf, len) = ip_key(ip);
            bucket(&spec.name, &buf[..len])
        }
        (None, None) => return pick(Version::Stable, Why::NoKey),
    };
    let version = if on_canary(b, weight_bp) {
        Version::Canary
    } else {
        Version::Stable
    };
    pick(version, Why::Cohort)
}

#[cfg(test)]
#[path = "cohort_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "cohort_props.rs"]
mod props;
