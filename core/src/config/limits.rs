//! `routes[].rate_limit:` and `redis:` — how many requests a key may make, counted on this
//! proxy or shared across replicas through Redis.

use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::defaults::{rate_limit as def, redis as redis_def};
use super::fields::path;
use super::ser::{header_name, human};
use super::{dur_or, Dur};
use crate::diag::{Diagnostics, Seg};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Local,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub requests_per_second: u32,
    #[serde(default)]
    pub burst: Option<u32>,
    /// `client_ip` (default), `header:NAME` or `route`.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub scope: Option<LimitScope>,
    /// Keys tracked at most; idle keys are evicted first.
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// With `scope: cluster` and Redis unreachable, this gateway admits this share of the rate.
    #[serde(default)]
    pub local_share: Option<f64>,
    /// With `scope: cluster`: tokens taken from Redis per round trip and spent locally
    /// (default: 1 % of the rate, at least 1, at most `burst`).
    #[serde(default)]
    pub batch: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: String,
    /// Longest wait for Redis on the request path before falling back to local limits.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    ClientIp,
    Header(#[serde(serialize_with = "header_name")] HeaderName),
    Route,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitSpec {
    pub requests_per_second: u32,
    pub burst: u32,
    pub key: LimitKey,
    pub scope: LimitScope,
    pub max_keys: usize,
    pub local_share: f64,
    /// Tokens leased from Redis per round trip (scope cluster).
    pub batch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisSpec {
    pub url: String,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
}

/// Validates one `rate_limit:` block found at `base`; `redis` tells whether the file has a
/// `redis:` section (which `scope: cluster` needs).
pub fn rate_limit(c: &mut Diagnostics<'_>, base: &[Seg], rl: &RateLimitFile, redis: bool) -> Option<RateLimitSpec> {
    let at = |key: &'static str| path(base, &[key]);
    let key = match rl.key.as_deref().map(str::trim) {
        None | Some("client_ip") => Some(LimitKey::ClientIp),
        Some("route") => Some(LimitKey::Route),
        Some(k) => k
            .strip_prefix("header:")
            .and_then(|h| HeaderName::from_str(h.trim()).ok())
            .map(LimitKey::Header),
    };
    if key.is_none() {
        c.error_at(
            &at("key"),
            "bad rate_limit.key",
            Some("`client_ip`, `header:NAME` or `route`".into()),
        );
    }
    if rl.requests_per_second == 0 {
        c.error_at(
            &at("requests_per_second"),
            "requests_per_second must be at least 1",
            None,
        );
    }
    let scope = rl.scope.unwrap_or(def::SCOPE);
    if scope == LimitScope::Cluster && !redis {
        c.error_at(
            &at("scope"),
            "rate_limit scope `cluster` needs a `redis:` section",
            Some("add `redis: { url: redis://127.0.0.1:6379 }`, or use `scope: local`".into()),
        );
    }
    let share = rl.local_share.unwrap_or(def::LOCAL_SHARE);
    if !(0.0..=1.0).contains(&share) || share == 0.0 {
        c.error_at(&at("local_share"), "local_share must be in (0, 1]", None);
    }
    let burst = rl.burst.unwrap_or(rl.requests_per_second).max(1);
    check_batch(c, &at("batch"), rl.batch, burst, scope);
    Some(RateLimitSpec {
        requests_per_second: rl.requests_per_second.max(1),
        burst,
        key: key?,
        scope,
        max_keys: rl.max_keys.unwrap_or(def::MAX_KEYS).max(1),
        local_share: share,
        batch: rl
            .batch
            .unwrap_or(rl.requests_per_second / def::BATCH_FRACTION)
            .clamp(1, burst),
    })
}

fn check_batch(c: &mut Diagnostics<'_>, at: &[Seg], batch: Option<u32>, burst: u32, scope: LimitScope) {
    match batch {
        Some(0) => c.error_at(at, "batch must be at least 1", None),
        Some(b) if b > burst => c.error_at(
            at,
            format!("batch {b} is larger than burst {burst}"),
            Some("Redis can never grant more than `burst` tokens at once: lower `batch` or raise `burst`".into()),
        ),
        Some(_) if scope == LimitScope::Local => c.warn_at(
            at,
            "batch has no effect with `scope: local`",
            Some("it sets how many tokens a gateway takes from Redis per round trip with `scope: cluster`".into()),
        ),
        _ => {}
    }
}

/// Validates the `redis:` section.
pub fn redis(c: &mut Diagnostics<'_>, r: &RedisFile) -> Option<RedisSpec> {
    let ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|p| r.url.starts_with(p));
    if !ok {
        c.error_at(
            &[Seg::Key("redis"), Seg::Key("url")],
            format!("bad redis url `{}`", r.url),
            Some("e.g. `redis://127.0.0.1:6379`".into()),
        );
        return None;
    }
    // The client's own parse, so a URL the check accepts is one the gateway can use.
    if let Err(e) = ::redis::Client::open(r.url.as_str()) {
        let hint = if r.url.starts_with("rediss://") {
            "this build talks to Redis without TLS: use `redis://` (through a TLS tunnel if needed)"
        } else {
            "e.g. `redis://127.0.0.1:6379` or `redis://:password@host:6379/0`"
        };
        c.error_at(
            &[Seg::Key("redis"), Seg::Key("url")],
            format!("bad redis url `{}`: {e}", r.url),
            Some(hint.into()),
        );
        return None;
    }
    Some(RedisSpec {
        url: r.url.clone(),
        timeout: dur_or(r.timeout, redis_def::TIMEOUT),
    })
}
