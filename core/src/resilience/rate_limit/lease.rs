//! Tokens of one key leased from the shared bucket and spent locally.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimitSpec;

/// How long leased tokens stay spendable: a pause in traffic lets them lapse instead of
/// allowing a late burst.
pub const LEASE_TTL: Duration = Duration::from_secs(1);

/// Tokens of one key leased from Redis (scope cluster).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) tokens: u32,
    /// Before this, an empty lease refuses locally (Redis said the bucket is empty until then).
    pub(super) refill_at: Instant,
    pub(super) taken_at: Instant,
    /// A batch is being fetched: other misses meanwhile ask for single tokens, so one key never
    /// has more than one batch in flight (no hoarding by a burst of concurrent misses).
    pub(super) fetching: bool,
}

impl Lease {
    pub(super) fn empty(now: Instant) -> Self {
        Lease {
            tokens: 0,
            refill_at: now,
            taken_at: now,
            fetching: false,
        }
    }
}

/// Tokens asked of Redis per round trip: the batch when the lease can be kept, else one.
pub(super) fn want_of(spec: &RateLimitSpec, keep: bool) -> u32 {
    if keep {
        spec.batch
    } else {
        1
    }
}
