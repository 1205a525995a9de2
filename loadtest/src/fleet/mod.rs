//! Local fleets and fault timelines: a scenario can bring up its own gateway, pods, functions
//! and DNS server, then break them on schedule while the load runs; every fault becomes a
//! marker in the reports.

mod run;
mod spec;

use std::sync::{Arc, Mutex, PoisonError};

pub use run::{http_call, Fleet};
pub use spec::{placeholders, Action, Fault, FleetHooks, FleetSpec, PodSpec};

use crate::engine::{Observer, RunContext};

/// Fires the faults at their offsets from the start of the load.
pub struct Timeline {
    fleet: Arc<Mutex<Fleet>>,
    faults: Vec<Fault>,
}

impl Timeline {
    pub fn new(fleet: Arc<Mutex<Fleet>>, faults: Vec<Fault>) -> Self {
        Timeline { fleet, faults }
    }
}

impl Observer for Timeline {
    fn on_start(&mut self, ctx: &RunContext) {
        let start = tokio::time::Instant::from_std(ctx.start);
        let markers = ctx.markers.clone();
        let fleet = Arc::clone(&self.fleet);
        let faults = std::mem::take(&mut self.faults);
        tokio::spawn(async move {
            for f in faults {
                tokio::time::sleep_until(start + f.at).await;
                let fleet = Arc::clone(&fleet);
                let action = f.action.clone();
                // Actions block (process control, HTTP): keep them off the load's threads.
                let result = tokio::task::spawn_blocking(move || {
                    fleet.lock().unwrap_or_else(PoisonError::into_inner).apply(&action)
                })
                .await;
                match result {
                    Ok(Ok(())) => markers.push_at(f.at, f.label.clone()),
                    Ok(Err(e)) => {
                        eprintln!("arena-loadtest: fault `{}` failed: {e}", f.label);
                        // Keep the marker one short line: the full error went to stderr.
                        let short: String = e
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .chars()
                            .take(80)
                            .collect();
                        markers.push_at(f.at, format!("{} (failed: {short})", f.label));
                    }
                    Err(e) => markers.push_at(f.at, format!("{} (failed: {e})", f.label)),
                }
            }
        });
    }
}
