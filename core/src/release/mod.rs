//! Grey releases: a share of a route's traffic on a canary cluster, sticky per user
//! ([`cohort`]), judged against the stable version over a sliding window ([`window`],
//! [`verdict`]) and stepped up, paused or rolled back by a small state machine ([`machine`]).
//!
//! [`Release`] is what the gateway holds per release. The request path reads the weight (one
//! atomic load), picks a version ([`Release::choose`]) and records the outcome
//! ([`Release::record`], lock-free); a task calls [`Release::tick`] every 100 ms, which judges
//! both windows and applies the verdict; the admin API calls [`Release::apply`] and
//! [`Release::state`]. With `scope: cluster` every replica judges its own traffic and shares
//! the resulting state: [`Release::adopt`] takes another replica's newer state (higher
//! generation), so a breach seen anywhere rolls back everywhere. States outlive the process in
//! a file, and in Redis for `scope: cluster` ([`store`]).

pub mod cohort;
pub mod machine;
pub mod store;
pub mod verdict;
pub mod window;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

pub use cohort::{bucket, choose, cookie, on_canary, sticky_key, Choice, Version, Why};
pub use machine::{reconcile, unix_ms_now, Operator, Phase, ReleaseState, Transition, VerdictRecord, HISTORY};
pub use store::{FileStore, RedisStore, Saved, StoreError, Synced};
pub use verdict::{judge, BreachReason, Observed, Verdict};
pub use window::{VersionWindow, WindowStats};

use crate::config::ReleaseSpec;

/// One release at run time: its spec, its state and both versions' windows.
#[derive(Debug)]
pub struct Release {
    spec: ReleaseSpec,
    state: Mutex<ReleaseState>,
    /// The state's weight, for the request path without the lock.
    weight: AtomicU16,
    /// Shared with the release this one was reloaded from, so no data is lost on a reload.
    stable: Arc<VersionWindow>,
    canary: Arc<VersionWindow>,
}

impl Release {
    /// A release starting (or restarting) with `persisted` state, reconciled by fingerprint.
    pub fn new(spec: ReleaseSpec, persisted: Option<ReleaseState>, now: Instant, now_ms: u64) -> Release {
        let window = spec.analysis.window;
        Release::build(
            spec,
            persisted,
            Arc::new(VersionWindow::new(window, now)),
            Arc::new(VersionWindow::new(window, now)),
            now_ms,
        )
    }

    fn build(
        spec: ReleaseSpec,
        persisted: Option<ReleaseState>,
        stable: Arc<VersionWindow>,
        canary: Arc<VersionWindow>,
        now_ms: u64,
    ) -> Release {
        let state = reconcile(&spec, persisted, now_ms);
        Release {
            weight: AtomicU16::new(state.weight_bp),
            state: Mutex::new(state),
            spec,
            stable,
            canary,
        }
    }

    /// This release under a reloaded `spec` of the same name: the state carries over by the
    /// fingerprint rule, and so do the windows while the rollout and the window length are
    /// the same (requests still in flight on the old one keep counting).
    pub fn reload(&self, spec: ReleaseSpec, now: Instant, now_ms: u64) -> Release {
        self.reload_from(spec, None, now, now_ms)
    }

    /// Like [`Release::reload`], also considering `shared` (e.g. the state Redis holds for a
    /// `scope: cluster` release): the newer of the two that belongs to the new rollout wins
    /// (see [`store::pick`]).
    pub fn reload_from(&self, spec: ReleaseSpec, shared: Option<ReleaseState>, now: Instant, now_ms: u64) -> Release {
        let persisted = store::pick(&spec, [Some(self.state()), shared]);
        let same = spec.fingerprint == self.spec.fingerprint && spec.analysis.window == self.stable.window();
        if !same {
            return Release::new(spec, persisted, now, now_ms);
        }
        Release::build(spec, persisted, self.stable.clone(), self.canary.clone(), now_ms)
    }

    pub fn spec(&self) -> &ReleaseSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn lock(&self) -> MutexGuard<'_, ReleaseState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The canary's weight now, in basis points.
    pub fn weight_bp(&self) -> u16 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Where a request goes at the current weight.
    pub fn choose(&self, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Choice {
        cohort::choose(&self.spec, self.weight_bp(), headers, client_ip)
    }

    /// Counts one answered (or unanswered) request of `version`; `failed`: a 5xx or no answer.
    pub fn record(&self, version: Version, now: Instant, latency: Duration, failed: bool) {
        match version {
            Version::Stable => self.stable.record(now, latency, failed),
            Version::Canary => self.canary.record(now, latency, failed),
        }
    }

    /// Both windows at `now`: (stable, canary).
    pub fn windows(&self, now: Instant) -> (WindowStats, WindowStats) {
        (self.stable.snapshot(now), self.canary.snapshot(now))
    }

    /// Judges both windows and applies the verdict; the transition, if one was made (the
    /// caller persists the new state and logs it).
    pub fn tick(&self, now: Instant, now_ms: u64) -> Option<Transition> {
        let (stable, canary) = self.windows(now);
        let verdict = judge(&self.spec.analysis, &stable, &canary);
        let mut st = self.lock();
        let t = st.on_verdict(&self.spec, verdict, now_ms);
        self.weight.store(st.weight_bp, Ordering::Relaxed);
        t
    }

    /// An operator's request; refused with the reason when it makes no sense in this phase.
    pub fn apply(&self, op: Operator, now_ms: u64) -> Result<Transition, String> {
        let mut st = self.lock();
        let t = st.apply(&self.spec, &op, now_ms)?;
        self.weight.store(st.weight_bp, Ordering::Relaxed);
        Ok(t)
    }

    /// The latest verdict and the phase, without copying the history (read every tick).
    pub fn verdict_and_phase(&self) -> (Option<VerdictRecord>, Phase) {
        let st = self.lock();
        (st.last_verdict, st.phase)
    }

    /// A copy of the state (for the admin API and the stores).
    pub fn state(&self) -> ReleaseState {
        self.lock().clone()
    }

    /// Takes another replica's state when it is newer (higher generation) and belongs to this
    /// very rollout (same fingerprint, fits the spec); true when taken.
    pub fn adopt(&self, state: ReleaseState) -> bool {
        self.take(state, |theirs, ours| theirs > ours)
    }

    /// Takes the state a store kept instead of ours (a lost compare-and-set): newer *or equal*
    /// generation, since equal means another replica made a different change from the same
    /// state first. True when taken.
    pub fn yield_to(&self, state: ReleaseState) -> bool {
        self.take(state, |theirs, ours| theirs >= ours)
    }

    fn take(&self, state: ReleaseState, newer: impl Fn(u64, u64) -> bool) -> bool {
        if !state.is_consistent(&self.spec) {
            return false;
        }
        let mut st = self.lock();
        if !newer(state.generation, st.generation) {
            return false;
        }
        // Our latest verdict stays when we have one: it is what this replica's traffic says
        // (theirs is in the reason of the transition they made).
        let ours = st.last_verdict;
        *st = state;
        st.last_verdict = ours.or(st.last_verdict);
        if st.history.len() > HISTORY {
            let excess = st.history.len() - HISTORY;
            st.history.drain(..excess);
        }
        self.weight.store(st.weight_bp, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
