//! What callers see and do while a run goes: the [`Observer`] hooks and their [`RunContext`],
//! the [`StopHandle`], and fault [`Marker`]s collected by a [`MarkerSink`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use super::Window;
use crate::scenario::BaseUrl;

/// Asks a running engine to stop early (Ctrl-C); cloneable and thread-safe.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A labelled point in time of a run (a fault injected, a pod killed...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// Time since the start of the load.
    #[serde(rename = "at_s", serialize_with = "secs")]
    pub at: Duration,
    pub label: String,
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Collects [`Marker`]s from any thread while a run is going; clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MarkerSink(Arc<Mutex<MarkerState>>);

#[derive(Debug, Default)]
struct MarkerState {
    start: Option<Instant>,
    markers: Vec<Marker>,
}

impl MarkerSink {
    fn state(&self) -> std::sync::MutexGuard<'_, MarkerState> {
        // A panic while holding this lock cannot leave the list inconsistent: keep using it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `label` now (at 0 before the run started).
    pub fn push(&self, label: impl Into<String>) {
        let mut st = self.state();
        let at = st.start.map_or(Duration::ZERO, |s| s.elapsed());
        st.markers.push(Marker {
            at,
            label: label.into(),
        });
    }

    /// Records `label` at an explicit offset from the start.
    pub fn push_at(&self, at: Duration, label: impl Into<String>) {
        self.state().markers.push(Marker {
            at,
            label: label.into(),
        });
    }

    /// Markers so far, in time order.
    pub fn snapshot(&self) -> Vec<Marker> {
        let mut m = self.state().markers.clone();
        m.sort_by_key(|m| m.at);
        m
    }

    pub(super) fn set_start(&self, start: Instant) {
        self.state().start = Some(start);
    }
}

/// What an [`Observer`] can see and do during a run.
pub struct RunContext {
    /// When the first request is due; fault offsets (`at:`) count from here.
    pub start: Instant,
    /// Scheduled load duration.
    pub duration: Duration,
    pub target: BaseUrl,
    pub markers: MarkerSink,
    pub stop: StopHandle,
}

impl RunContext {
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Hooks called by [`run`](super::run) on the caller's task (keep them quick; spawn longer work).
///
/// A fault timeline typically spawns its own task in `on_start` that sleeps until
/// `ctx.start + at` for each action, performs it and pushes a marker.
pub trait Observer {
    /// Before the first request (the start instant lies [`LEAD`](super::LEAD) ahead).
    fn on_start(&mut self, _ctx: &RunContext) {}
    /// Every [`TICK`](super::TICK) while the run goes.
    fn on_tick(&mut self, _elapsed: Duration, _ctx: &RunContext) {}
    /// Each time a 1-second window is complete (all workers reported it).
    fn on_window(&mut self, _window: &Window, _ctx: &RunContext) {}
    /// After the last request finished.
    fn on_finish(&mut self, _ctx: &RunContext) {}
}

impl Observer for () {}

/// Several observers, called in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Fanout<'_> {
    fn on_start(&mut self, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_start(ctx));
    }
    fn on_tick(&mut self, elapsed: Duration, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_tick(elapsed, ctx));
    }
    fn on_window(&mut self, window: &Window, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_window(window, ctx));
    }
    fn on_finish(&mut self, ctx: &RunContext) {
        self.0.iter_mut().for_each(|o| o.on_finish(ctx));
    }
}
