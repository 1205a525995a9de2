//! Rate limits per route: GCRA keyed by client IP (IPv6 by prefix, /64 by default), a header
//! or the route itself; the key's hash is stable across builds ([`key`]), and the local key
//! table withstands key floods ([`local`]).
//!
//! `scope: local` counts in this process. `scope: cluster` shares one budget across gateway
//! replicas through an atomic Redis script (GCRA on Redis' own clock); when Redis is slow or
//! down the gateway falls back to a local limiter at `local_share` of the rate (by default
//! `1 / redis.replicas`, so the replicas together stay within the rate) and retries Redis after
//! a short pause, so a Redis outage never stops traffic.
//!
//! Cluster scope leases tokens: one round trip takes up to `batch` tokens from the shared bucket
//! and this gateway spends them locally; when the bucket is empty, Redis says when `batch`
//! tokens will be there again and the key is refused locally until then. Redis sees about one
//! call per `batch` admitted requests and almost none for a key that is being refused; one key
//! has at most one batch in flight. Leased tokens were counted when taken, so over time the
//! replicas admit no more than the shared rate; within a short window they may admit up to
//! `burst` plus the tokens still held in leases (taken within the last [`LEASE_TTL`]), after
//! which unspent ones lapse.

pub mod key;
mod lease;
pub mod local;
mod redis;

pub(crate) use redis::lazy_connection;

use std::net::IpAddr;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::config::{LimitKey, LimitScope, RateLimitSpec};
pub use key::{client_prefix, redis_key, Fnv1a, KeyHash, REDIS_PREFIX};
pub use lease::LEASE_TTL;
use lease::{want_of, Lease};
pub use local::LocalLimiter;
use redis::Grant;
pub use redis::RedisLimits;

/// Verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allow { remaining: u32 },
    Deny { retry_after: Duration },
}

/// The limit of one route.
pub struct RouteLimit {
    pub spec: RateLimitSpec,
    route: String,
    local: LocalLimiter,
    leases: DashMap<KeyHash, Lease>,
    /// Uniform draw in [0, 1) spreading replicas' next ask when the shared bucket ran short
    /// (injectable for tests).
    jitter: fn() -> f64,
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
            leases: DashMap::new(),
            jitter: rand::random::<f64>,
        }
    }

    /// The key of a request (stable across builds: see [`key`]). Requests without one (no
    /// peer address, header absent) share one bucket.
    pub fn key(&self, client_ip: Option<IpAddr>, headers: &http::HeaderMap) -> KeyHash {
        match &self.spec.key {
            LimitKey::ClientIp => key::of_client(client_ip, self.spec.ipv6_prefix),
            LimitKey::Header(name) => key::of_header(headers.get(name).map(|v| v.as_bytes())),
            LimitKey::Route => key::of_route(),
        }
    }

    pub async fn check(&self, key: KeyHash, redis: Option<&RedisLimits>) -> Decision {
        if self.spec.scope == LimitScope::Cluster {
            if let Some(r) = redis {
                if let Some(d) = self.check_shared(key, r).await {
                    return d;
                }
            }
        }
        self.check_local(key)
    }

    /// Spends a leased token, refuses while the shared bucket is known to be empty, or leases
    /// more from Redis; `None` when Redis cannot answer (the caller falls back to local).
    async fn check_shared(&self, key: KeyHash, redis: &RedisLimits) -> Option<Decision> {
        let now = Instant::now();
        if let Some(d) = self.spend_lease(key, now) {
            return Some(d);
        }
        let keep = self.claim_fetch(key, now);
        let want = want_of(&self.spec, keep);
        let name = redis_key(&self.route, key);
        let Some(grant) = redis.take(&name, &self.spec, want).await else {
            if keep {
                if let Some(mut lease) = self.leases.get_mut(&key) {
                    lease.fetching = false;
                }
            }
            return None;
        };
        Some(self.record_grant(key, keep, grant, Instant::now()))
    }

    /// Whether this miss fetches a batch for the key's lease (marking it in flight). Not when
    /// batches are off, another fetch is in flight, or a full lease table cannot take the key
    /// (bounded memory): then the request asks Redis for its own single token.
    fn claim_fetch(&self, key: KeyHash, now: Instant) -> bool {
        let full = self.leases.len() >= self.spec.max_keys && !self.leases.contains_key(&key);
        if self.spec.batch <= 1 || full {
            return false;
        }
        let mut lease = self.leases.entry(key).or_insert_with(|| Lease::empty(now));
        !std::mem::replace(&mut lease.fetching, true)
    }

    /// The local answer from this key's lease, if it can give one.
    fn spend_lease(&self, key: KeyHash, now: Instant) -> Option<Decision> {
        let mut lease = self.leases.get_mut(&key)?;
        if now.saturating_duration_since(lease.taken_at) > LEASE_TTL {
            return None;
        }
        if lease.tokens > 0 {
            lease.tokens -= 1;
            return Some(Decision::Allow {
                remaining: lease.tokens,
            });
        }
        (now < lease.refill_at).then(|| Decision::Deny {
            retry_after: lease.refill_at - now,
        })
    }

    /// Admits or refuses on Redis' answer; keeps the rest of the grant for later requests.
    fn record_grant(&self, key: KeyHash, keep: bool, grant: Grant, now: Instant) -> Decision {
        let mut allowed = grant.granted > 0;
        let mut tokens = grant.granted.saturating_sub(1);
        // Every replica that came up short computes the same moment the bucket refills; whoever
        // asks first then would take the whole batch, and the same one would win every time.
        // A random extra wait of up to one more refill makes the winner random: replicas share
        // the budget fairly, and the tokens wait in the shared bucket meanwhile (not lost).
        let wait = if grant.granted < want_of(&self.spec, keep) {
            grant.wait.mul_f64(1.0 + (self.jitter)())
        } else {
            grant.wait
        };
        let lease = if keep {
            Some(self.leases.entry(key).or_insert_with(|| Lease::empty(now)))
        } else {
            self.leases.get_mut(&key)
        };
        if let Some(mut lease) = lease {
            // Lapsed tokens are dropped; tokens that arrived meanwhile are used before refusing.
            let held = if now.saturating_duration_since(lease.taken_at) <= LEASE_TTL {
                lease.tokens
            } else {
                0
            };
            if keep {
                tokens += held;
                if !allowed && tokens > 0 {
                    tokens -= 1;
                    allowed = true;
                }
                *lease = Lease {
                    tokens,
                    refill_at: now + wait,
                    taken_at: now,
                    fetching: false,
                };
            } else if !allowed && held > 0 {
                lease.tokens = held - 1;
                allowed = true;
                tokens = held - 1;
            }
        }
        if allowed {
            Decision::Allow {
                remaining: grant.remaining.saturating_add(tokens),
            }
        } else {
            Decision::Deny {
                retry_after: wait.max(Duration::from_millis(1)),
            }
        }
    }

    /// The in-process check (scope local, or cluster while Redis is out of the picture).
    pub fn check_local(&self, key: KeyHash) -> Decision {
        self.local.check(key)
    }

    pub fn sweep(&self) {
        self.local.sweep();
        let now = Instant::now();
        self.leases
            .retain(|_, l| now.saturating_duration_since(l.taken_at) <= LEASE_TTL || now < l.refill_at);
    }

    /// Keys holding a lease (for tests and `/clusters`-style introspection).
    pub fn leased_keys(&self) -> usize {
        self.leases.len()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
