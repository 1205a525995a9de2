//! What keeps the gateway up when pods misbehave: rate limits, outlier ejection, the retry
//! budget, and the decisions of whether and where to retry. All pure and clock-injected.

pub mod budget;
pub mod latency;
pub mod outlier;
pub mod rate_limit;
