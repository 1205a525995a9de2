//! `routes[].rate_limit:` and `redis:` — how many requests a key may make, counted on this
//! proxy or shared across replicas through Redis.

use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::defaults::{rate_limit as def, redis as redis_def};
use super::fields::{expand_env, internal_header_error, is_internal_header, path};
use super::secret::{redact_url, Secret};
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
    /// With `scope: cluster` and Redis unreachable, this gateway admits this share of the rate
    /// (default `1 / redis.replicas`).
    #[serde(default)]
    pub local_share: Option<f64>,
    /// `key: client_ip`: an IPv6 client is counted by this prefix (default /64).
    #[serde(default)]
    pub ipv6_prefix: Option<u8>,
    /// With `scope: cluster`: tokens taken from Redis per round trip and spent locally
    /// (default: 1 % of the rate, at least 1, at most `burst`).
    #[serde(default)]
    pub batch: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// May use `${env:NAME}` (e.g. for the password); `/config` shows it masked.
    pub url: String,
    /// Longest wait for Redis on the request path before falling back to local limits.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// The most gateways that share this Redis (e.g. the HPA's `maxReplicas`): while Redis is
    /// unreachable each admits `1 / replicas` of a `scope: cluster` rate.
    #[serde(default)]
    pub replicas: Option<u32>,
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
    /// Prefix length an IPv6 client is counted by (`key: client_ip`).
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisSpec {
    /// The URL the client connects to, `${env:}` expanded: never shown.
    #[serde(skip)]
    pub url: Secret,
    /// The URL as written, credentials and query values masked: what `/config` shows.
    #[serde(rename = "url")]
    pub shown_url: String,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    pub replicas: Option<u32>,
}

/// What a route's limit knows of the file's `redis:` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedBudget {
    /// The file has a `redis:` section (which `scope: cluster` needs), valid or not.
    pub redis: bool,
    /// Its `replicas`, when written.
    pub replicas: Option<u32>,
}

/// Validates one `rate_limit:` block found at `base`; `shared` is what the file's `redis:`
/// section says (`scope: cluster` needs one, and its `replicas` for the default share).
pub fn rate_limit(
    c: &mut Diagnostics<'_>,
    base: &[Seg],
    rl: &RateLimitFile,
    shared: SharedBudget,
) -> Option<RateLimitSpec> {
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
    let key = match key {
        Some(LimitKey::Header(h)) if is_internal_header(h.as_str()) => {
            internal_header_error(c, &at("key"), h.as_str(), "rate_limit.key");
            None
        }
        k => k,
    };
    if rl.requests_per_second == 0 {
        c.error_at(
            &at("requests_per_second"),
            "requests_per_second must be at least 1",
            None,
        );
    }
    let scope = rl.scope.unwrap_or(def::SCOPE);
    if scope == LimitScope::Cluster && !shared.redis {
        c.error_at(
            &at("scope"),
            "rate_limit scope `cluster` needs a `redis:` section",
            Some("add `redis: { url: redis://127.0.0.1:6379, replicas: 3 }`, or use `scope: local`".into()),
        );
    }
    let share = local_share(c, &at, rl, scope, shared);
    let burst = rl.burst.unwrap_or(rl.requests_per_second).max(1);
    check_batch(c, &at("batch"), rl.batch, burst, scope);
    let ipv6_prefix = rl.ipv6_prefix.unwrap_or(def::IPV6_PREFIX);
    if !(1..=128).contains(&ipv6_prefix) {
        c.error_at(
            &at("ipv6_prefix"),
            format!("ipv6_prefix must be 1..128, not {ipv6_prefix}"),
            Some("64 (one customer's network) is the usual; 128 counts every address on its own".into()),
        );
    }
    if rl.ipv6_prefix.is_some() && key.as_ref().is_some_and(|k| *k != LimitKey::ClientIp) {
        c.warn_at(
            &at("ipv6_prefix"),
            "ipv6_prefix has no effect unless `key: client_ip`",
            None,
        );
    }
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
        ipv6_prefix: ipv6_prefix.clamp(1, 128),
    })
}

/// The share of the rate this gateway admits on its own while Redis is unreachable: written,
/// else `1 / redis.replicas`. A cluster limit with neither is an error — defaulting to the
/// whole rate would let N replicas admit N times the rate during a Redis outage.
fn local_share(
    c: &mut Diagnostics<'_>,
    at: &impl Fn(&'static str) -> Vec<Seg>,
    rl: &RateLimitFile,
    scope: LimitScope,
    shared: SharedBudget,
) -> f64 {
    let replicas = shared.replicas.filter(|n| (1..=redis_def::MAX_REPLICAS).contains(n));
    let Some(share) = rl.local_share else {
        if scope == LimitScope::Cluster && shared.redis && shared.replicas.is_none() {
            c.error_at(
                &at("scope"),
                "rate_limit scope `cluster` needs `redis.replicas` (or `local_share`)",
                Some(
                    "while Redis is unreachable each gateway admits its own share of the rate: set \
                     `redis: { ..., replicas: N }` to the most gateways that share this Redis (e.g. \
                     the HPA's maxReplicas) and each admits 1/N"
                        .into(),
                ),
            );
        }
        return def::local_share(replicas.unwrap_or(1));
    };
    if !(0.0..=1.0).contains(&share) || share == 0.0 {
        c.error_at(&at("local_share"), "local_share must be in (0, 1]", None);
        return def::local_share(replicas.unwrap_or(1));
    }
    if let Some(n) = replicas.filter(|_| scope == LimitScope::Cluster) {
        let total = share * f64::from(n);
        if total > 1.0 + 1e-9 {
            c.warn_at(
                &at("local_share"),
                format!("with redis.replicas {n}, local_share {share} admits {total:.2}× the rate while Redis is down"),
                Some(format!(
                    "leave local_share out for 1/{n} ({:.4}), or lower it",
                    def::local_share(n)
                )),
            );
        }
    }
    share
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

/// Validates the `redis:` section. Messages show the URL as written with its credentials
/// masked: they reach logs, `POST /reload` answers and `/config`'s reload diagnostics.
pub fn redis(c: &mut Diagnostics<'_>, r: &RedisFile) -> Option<RedisSpec> {
    let at = [Seg::Key("redis"), Seg::Key("url")];
    let shown = redact_url(&r.url);
    if let Some(n) = r.replicas.filter(|n| !(1..=redis_def::MAX_REPLICAS).contains(n)) {
        c.error_at(
            &[Seg::Key("redis"), Seg::Key("replicas")],
            format!("replicas must be 1..{}, not {n}", redis_def::MAX_REPLICAS),
            Some("the most gateway replicas that share this Redis, e.g. the HPA's maxReplicas".into()),
        );
    }
    let url = match expand_env(&r.url, |n| c.env(n)) {
        Ok(u) => u,
        Err(e) => {
            c.error_at(
                &at,
                format!("redis url: {e}"),
                Some("export the variable before starting the gateway".into()),
            );
            return None;
        }
    };
    let ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|p| url.starts_with(p));
    if !ok {
        c.error_at(
            &at,
            format!("bad redis url `{shown}`"),
            Some("e.g. `redis://127.0.0.1:6379`".into()),
        );
        return None;
    }
    // The client's own parse, so a URL the check accepts is one the gateway can use. Its
    // message is not quoted: it may repeat the URL, password included.
    if ::redis::Client::open(url.as_str()).is_err() {
        let hint = if url.starts_with("rediss://") {
            "this build talks to Redis without TLS: use `redis://` (through a TLS tunnel if needed)"
        } else {
            "e.g. `redis://127.0.0.1:6379` or `redis://:${env:REDIS_PASSWORD}@host:6379/0`"
        };
        c.error_at(
            &at,
            format!("bad redis url `{shown}`: the Redis client cannot use it"),
            Some(hint.into()),
        );
        return None;
    }
    Some(RedisSpec {
        url: Secret::new(url),
        shown_url: shown,
        timeout: dur_or(r.timeout, redis_def::TIMEOUT),
        replicas: r.replicas,
    })
}
