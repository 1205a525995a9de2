//! The shared bucket of `scope: cluster` limits: one atomic GCRA script on Redis' own clock,
//! with a bounded wait and a pause on local limits after a failure (Redis down never stops
//! traffic).

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::config::{RateLimitSpec, RedisSpec};

/// A connection manager to `client` that connects on first use, bounded by `timeout` per
/// connect and per answer, one retry, reconnects backing off to at most 500 ms: what every
/// gateway use of Redis (shared limits, release states) wants — a slow Redis costs a timeout,
/// never a stuck caller.
pub(crate) fn lazy_connection(client: &redis::Client, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// GCRA in one atomic script on Redis' own clock, taking up to ARGV[3] tokens at once.
/// Returns {granted, wait_us, remaining}: wait_us is how long until ARGV[3] tokens are available
/// again after this call (0 when they already are).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + tolerance - tat) / interval)
if room < 0 then room = 0 end
local n = math.min(want, room)
if n > 0 then
  tat = tat + n * interval
  redis.call('SET', KEYS[1], tat, 'PX', math.floor(tolerance / 1000) + 1000)
end
local wait = tat + want * interval - tolerance - now
if wait < 0 then wait = 0 end
return {n, wait, room - n}
";

/// One answer of the shared bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grant {
    /// Tokens taken (0 = refused).
    pub(super) granted: u32,
    /// Until the bucket holds the wanted number of tokens again.
    pub(super) wait: Duration,
    /// Tokens left in the shared bucket.
    pub(super) remaining: u32,
}

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
            client: redis::Client::open(spec.url.expose())?,
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
        let c = lazy_connection(&self.client, self.timeout)?;
        Ok(self.conn.get_or_init(|| c).clone())
    }

    /// Takes up to `want` tokens from the shared bucket; `None` when Redis cannot answer in time.
    pub(super) async fn take(&self, key: &str, spec: &RateLimitSpec, want: u32) -> Option<Grant> {
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
        invocation.arg(interval_us).arg(tolerance_us).arg(want.max(1));
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut conn);
        let count = |v: i64| v.clamp(0, u32::MAX as i64) as u32;
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((granted, wait_us, remaining))) => Some(Grant {
                granted: count(granted),
                wait: Duration::from_micros(wait_us.max(0) as u64),
                remaining: count(remaining),
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
