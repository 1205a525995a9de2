//! The load engine: a [`Plan`] made from a scenario, [`run`] with an [`Observer`], and the
//! merged [`RunResult`].
//!
//! Measurement is honest by construction: in open loop every request has an intended send
//! time from the schedule and its latency is counted from there (coordinated omission
//! corrected), and the generator measures its own schedule lag so a run where the load tester
//! itself fell behind is flagged INVALID rather than silently reported.
//!
//! Seams for fleets and fault timelines: [`PlanOptions::target`] takes the base URL a fleet
//! brought up; [`Observer`] gets the run's start instant, a tick of elapsed time, and each
//! closed window; [`MarkerSink`] (cloneable, thread-safe) records fault markers that appear
//! in every report. A scenario's `abuse:` attacks run on a thread of their own ([`abuse`]);
//! the result then splits the measured traffic into [`Phases`] with and without them.

pub mod abuse;
pub mod client;
mod controller;
mod h1;
mod merge;
pub mod mix;
mod observe;
mod pace;
mod phases;
mod plan;
pub mod progress;
mod result;
pub mod schedule;
pub mod stats;
mod trace;
mod worker;

use std::fmt;
use std::time::Duration;

pub use abuse::{AbuseCounts, AbuseResult, AbuseWindow, AttackResult};
pub use controller::{run, run_blocking};
pub use mix::RequestMix;
pub use observe::{Fanout, Marker, MarkerSink, Observer, RunContext, StopHandle};
pub use phases::{PhaseStats, Phases};
pub(crate) use plan::Shared;
pub use plan::{Plan, PlanOptions};
pub use result::{RunResult, Validity};
pub use schedule::Schedule;
pub use stats::{Counts, Quantiles, Totals, Window};
pub use trace::TraceCounts;

/// A run is INVALID when the generator's schedule lag p99 exceeds this: more than 1% of
/// requests left over 10 ms late because the load tester itself could not keep up.
pub const MAX_LAG_P99: Duration = Duration::from_millis(10);
/// How often [`Observer::on_tick`] is called.
pub const TICK: Duration = Duration::from_millis(100);
/// Time between planning and the first request: worker threads start and connect meanwhile.
const LEAD: Duration = Duration::from_millis(200);

/// Errors that prevent a run from starting.
#[derive(Debug, Clone)]
pub enum EngineError {
    /// No usable target URL.
    Target(String),
    /// The scenario cannot be turned into requests.
    Plan(String),
    /// A thread or runtime could not be started.
    Start(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Target(m) => write!(f, "target: {m}"),
            EngineError::Plan(m) => write!(f, "plan: {m}"),
            EngineError::Start(m) => write!(f, "start: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Formats microseconds for humans: `850µs`, `12.3ms`, `1.20s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}
