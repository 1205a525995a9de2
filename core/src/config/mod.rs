//! The configuration sections every Arena proxy shares — clusters, routes, functions, Redis,
//! grey releases — each as its file struct (what the YAML says, `deny_unknown_fields`), its
//! validated spec (what the engine reads) and the validator between them, which reports every
//! problem at its position. A proxy's own document (the gateway's listeners and server knobs,
//! the sidecar's inbound side) decodes its sections and hands these ones here.
//!
//! All defaults are named in [`defaults`].

pub mod cluster;
pub mod defaults;
pub mod dns;
pub mod faas;
pub mod fields;
pub mod limits;
pub mod protection;
pub mod release;
pub mod route;
pub mod secret;
pub mod tracing;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use cluster::{
    ClusterFile, ClusterSpec, ClusterTlsSpec, DnsSpec, HashKey, LbKind, LoadTuning, OutlierSpec, RecordKind, Source,
};
pub use faas::{FaasFile, FaasKind, FaasSpec, FaasTarget};
pub use limits::{LimitKey, LimitScope, RateLimitSpec, RedisFile, RedisSpec, SharedBudget};
pub use protection::{FallbackOn, FallbackSpec, HedgeAfter, HedgeSpec, RetryOn, RetrySpec};
pub use release::{AnalysisSpec, OnFailure, ReleaseFile, ReleaseScope, ReleaseSpec, StickyKey};
pub use route::{Match, PathMatch, RouteFile, RouteSpec};
pub use secret::{redact_url, Secret};
pub use tracing::{TracingFile, TracingSpec};

/// Human duration (`250ms`, `2s`, `1m`), parsed by humantime; at most
/// [`defaults::MAX_DURATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parsed = humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!("bad duration `{s}`: {e} (write e.g. `250ms`, `2s`, `1m`)"))
        })?;
        check_duration(&s, parsed)
            .map(Dur)
            .map_err(|(message, hint)| serde::de::Error::custom(crate::diag::yaml::with_hint(message, hint)))
    }
}

/// `d` (written `text`) when it is within [`defaults::MAX_DURATION`], else the error's
/// message and hint.
pub fn check_duration(text: &str, d: Duration) -> Result<Duration, (String, String)> {
    if d <= defaults::MAX_DURATION {
        return Ok(d);
    }
    Err((
        format!("duration `{}` is longer than 365 days", text.trim()),
        "durations are at most 365 days (longer ones would overflow the clock arithmetic); write e.g. `30s`, `5m` or `1h`"
            .into(),
    ))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The value of an optional duration key, or its default.
pub fn dur_or(d: Option<Dur>, default: Duration) -> Duration {
    d.map_or(default, |d| d.0)
}

/// Serde helpers that print specs the way they are written (`250ms`, header names).
pub mod ser {
    use std::time::Duration;

    use http::{HeaderName, Method};
    use serde::Serializer;

    pub fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn human_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Names only: values may be secrets (`${env:...}` expanded at load).
    pub fn header_names_only<S: Serializer>(h: &[(HeaderName, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(h.iter().map(|(k, _)| k.as_str()))
    }

    pub fn header_name<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(h.as_str())
    }

    pub fn methods<S: Serializer>(m: &Option<Vec<Method>>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(list) => s.collect_seq(list.iter().map(Method::as_str)),
            None => s.serialize_none(),
        }
    }

    pub fn header_pairs<S: Serializer>(h: &[(HeaderName, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(h.iter().map(|(k, v)| (k.as_str(), v)))
    }
}
