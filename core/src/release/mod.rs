//! Grey releases: a share of a route's traffic on a canary cluster, sticky per user
//! ([`cohort`]), judged against the stable version over a sliding window ([`window`],
//! [`verdict`]) and stepped up, paused or rolled back by a small state machine ([`machine`]).

pub mod cohort;
pub mod machine;
pub mod verdict;
pub mod window;

pub use cohort::{bucket, choose, cookie, on_canary, sticky_key, Choice, Version, Why};
pub use machine::{reconcile, unix_ms_now, Operator, Phase, ReleaseState, Transition, VerdictRecord, HISTORY};
pub use verdict::{judge, BreachReason, Observed, Verdict};
pub use window::{VersionWindow, WindowStats};

#[cfg(test)]
mod testing;
