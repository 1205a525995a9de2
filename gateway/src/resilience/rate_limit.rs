//! Rate limits per route: GCRA (governor) keyed by client IP, a header or the route itself.
//!
//! `scope: local` counts in this process. `scope: cluster` shares one budget across gateway
//! replicas through an atomic Redis script (GCRA on Redis' own clock); when Redis is slow or
//! down the gateway falls back to a local limiter at `local_share` of the rate and retries
//! Redis after a short pause, so a Redis outage never stops traffic.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::config::{LimitKey, LimitScope, RateLimitSpec, RedisSpec};

/// Verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allow { remaining: u32 },
    Deny { retry_after: Duration },
}

/// Key value for one request: a 64-bit hash of the IP / header / route.
pub type KeyHash = u64;

/// Bucket shared by all keys once `max_keys` are tracked (bounded memory under key spraying).
const OVERFLOW_KEY: KeyHash = u64::MAX;

type Keyed<C> = RateLimiter<KeyHash, DefaultKeyedStateStore<KeyHash>, C, StateInformationMiddleware>;

/// In-process GCRA limiter with a bounded key set.
pub struct LocalLimiter<C: Clock + Clone = DefaultClock> {
    limiter: Keyed<C>,
    clock: C,
    max_keys: usize,
}

fn quota(per_second: f64, burst: u32) -> Quota {
    let per_second = per_second.max(0.001);
    let period = Duration::from_secs_f64(1.0 / per_second);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl LocalLimiter<DefaultClock> {
    pub fn new(per_second: f64, burst: u32, max_keys: usize) -> Self {
        Self::with_clock(per_second, burst, max_keys, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalLimiter<C> {
    pub fn with_clock(per_second: f64, burst: u32, max_keys: usize, clock: C) -> Self {
        let limiter: RateLimiter<
            KeyHash,
            DefaultKeyedStateStore<KeyHash>,
            C,
            governor::middleware::NoOpMiddleware<C::Instant>,
        > = RateLimiter::new(
            quota(per_second, burst),
            DefaultKeyedStateStore::default(),
            clock.clone(),
        );
        let limiter = limiter.with_middleware::<StateInformationMiddleware>();
        LocalLimiter {
            limiter,
            clock,
            max_keys,
        }
    }

    pub fn check(&self, key: KeyHash) -> Decision {
        let key = if self.limiter.len() >= self.max_keys {
            OVERFLOW_KEY
        } else {
            key
        };
        match self.limiter.check_key(&key) {
            Ok(snapshot) => Decision::Allow {
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Decision::Deny {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// Forgets keys whose bucket is full again (run periodically).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// GCRA in one atomic script on Redis' clock: returns {allowed, retry_after_us, remaining}.
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now, 0}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor(tolerance / 1000) + 1000)
return {1, 0, math.floor((now - allow_at) / interval)}
";

/// Shared connection to Redis for every cluster-scope limit of the process.
pub struct RedisLimits {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    script: redis::Script,
    timeout: Duration,
    /// While set, Redis is considered down and limits are local.
    down_until: Mutex<Option<Instant>>,
}

/// How long to stay on local limits after a Redis failure before trying it again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

impl RedisLimits {
    pub fn new(spec: &RedisSpec) -> Result<Self, redis::RedisError> {
        Ok(RedisLimits {
            client: redis::Client::open(spec.url.as_str())?,
            conn: OnceLock::new(),
            script: redis::Script::new(GCRA_SCRIPT),
            timeout: spec.timeout,
            down_until: Mutex::new(None),
        })
    }

    fn is_down(&self) -> bool {
        let mut d = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        match *d {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *d = None;
                false
            }
            None => false,
        }
    }

    fn mark_down(&self, why: &str) {
        let mut d = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        if d.is_none() {
            tracing::warn!(
                reason = why,
                "redis unavailable; cluster rate limits fall back to local shares"
            );
        }
        *d = Some(Instant::now() + REDIS_RETRY_AFTER);
    }

    fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.conn.get_or_init(|| c).clone())
    }

    /// One shared-budget check; `None` when Redis cannot answer in time.
    async fn check(&self, key: &str, spec: &RateLimitSpec) -> Option<Decision> {
        if self.is_down() {
            return None;
        }
        let mut conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                self.mark_down(&e.to_string());
                return None;
            }
        };
        let interval_us = (1_000_000.0 / spec.requests_per_second as f64).max(1.0) as u64;
        let tolerance_us = interval_us * spec.burst as u64;
        let mut invocation = self.script.key(key);
        invocation.arg(interval_us).arg(tolerance_us);
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((1, _, remaining))) => Some(Decision::Allow {
                remaining: remaining.clamp(0, u32::MAX as i64) as u32,
            }),
            Ok(Ok((_, wait_us, _))) => Some(Decision::Deny {
                retry_after: Duration::from_micros(wait_us.max(0) as u64),
            }),
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("timeout");
                None
            }
        }
    }
}

/// The limit of one route.
pub struct RouteLimit {
    pub spec: RateLimitSpec,
    route: String,
    local: LocalLimiter,
}

impl RouteLimit {
    pub fn new(route: &str, spec: &RateLimitSpec) -> Self {
        let rate = match spec.scope {
            LimitScope::Local => spec.requests_per_second as f64,
            // Only used while Redis is unreachable.
            LimitScope::Cluster => spec.requests_per_second as f64 * spec.local_share,
        };
        let burst = match spec.scope {
            LimitScope::Local => spec.burst,
            LimitScope::Cluster => ((spec.burst as f64 * spec.local_share).ceil() as u32).max(1),
        };
        RouteLimit {
            spec: spec.clone(),
            route: route.to_string(),
            local: LocalLimiter::new(rate, burst, spec.max_keys),
        }
    }

    /// The key of a request, or `None` when the request has no such key (header absent):
    /// those share one bucket.
    pub fn key(&self, client_ip: Option<IpAddr>, headers: &http::HeaderMap) -> KeyHash {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match &self.spec.key {
            LimitKey::ClientIp => client_ip.hash(&mut h),
            LimitKey::Header(name) => headers.get(name).map(|v| v.as_bytes()).hash(&mut h),
            LimitKey::Route => 0u8.hash(&mut h),
        }
        // Never collide with the overflow bucket.
        h.finish().min(OVERFLOW_KEY - 1)
    }

    pub async fn check(&self, key: KeyHash, redis: Option<&RedisLimits>) -> Decision {
        if self.spec.scope == LimitScope::Cluster {
            if let Some(r) = redis {
                let name = format!("arena:rl:{}:{key:016x}", self.route);
                if let Some(d) = r.check(&name, &self.spec).await {
                    return d;
                }
            }
        }
        self.check_local(key)
    }

    /// The in-process check (scope local, or cluster while Redis is out of the picture).
    pub fn check_local(&self, key: KeyHash) -> Decision {
        self.local.check(key)
    }

    pub fn sweep(&self) {
        self.local.sweep();
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
