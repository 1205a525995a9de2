//! One generator thread: a current-thread tokio runtime with its own connections, scheduler
//! and recorder, sharing nothing with the other workers but read-only plan data (wrk's model).
//!
//! Open loop: the scheduler queues every W-th request of the schedule at its intended time;
//! idle lanes (one per connection, or per HTTP/2 stream slot) take them in order. A queued
//! request keeps its intended time, so time spent waiting for a free connection counts as
//! latency. Closed loop: each lane sends back-to-back until the end.

mod lanes;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio::time::sleep_until;

use super::client::{Answer, Failure};
use super::pace::Pacer;
use super::stats::{Ending, Recorder, WorkerMsg};
use super::trace::{ClientTrace, Outcome};
use super::Shared;
use crate::release;
use crate::scenario::{HttpVersion, Mode};
use lanes::{h1_lane, h2_lane, H2Slot};

/// How often a sleeping scheduler looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Shortest pause of the scheduler: above ~5k requests/s per worker it wakes for batches, not
/// per request (each wake-up of an idle thread costs tens of µs of CPU on a VM); this bounds
/// the schedule lag the pacing itself adds.
const MIN_PACE: Duration = Duration::from_micros(200);

/// What went out for one job: when it left, the user id it carried, its trace.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub at: Instant,
    pub user: Option<u32>,
    pub trace: Option<ClientTrace>,
}

/// This worker's share of the run.
pub(crate) struct WorkerSpec {
    pub id: usize,
    pub connections: usize,
    pub start: Instant,
    /// End of the load phase.
    pub end: Instant,
    /// After this, queued or in-flight requests are abandoned and counted as timeouts.
    pub drain_deadline: Instant,
    pub max_outstanding: usize,
}

struct State {
    shared: Arc<Shared>,
    spec: WorkerSpec,
    rec: RefCell<Recorder>,
    /// Open loop: intended times of queued requests, oldest first.
    queue: RefCell<VecDeque<Instant>>,
    /// Wakes idle lanes when the queue gets work or the schedule ends.
    work: Notify,
    schedule_done: Cell<bool>,
    /// Queued + in-flight requests (open loop).
    outstanding: Cell<usize>,
}

/// Runs one worker thread to completion; results go through `tx`.
pub(crate) fn run(shared: Arc<Shared>, spec: WorkerSpec, tx: tokio::sync::mpsc::UnboundedSender<WorkerMsg>) {
    let mut rec = Recorder::new(spec.id, spec.start, shared.blank.clone(), shared.mix.names().len(), tx);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            rec.error_sample(|| format!("worker runtime: {e}"));
            rec.finish();
            return;
        }
    };
    let state = Rc::new(State {
        shared,
        spec,
        rec: RefCell::new(rec),
        queue: RefCell::new(VecDeque::new()),
        work: Notify::new(),
        schedule_done: Cell::new(false),
        outstanding: Cell::new(0),
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, worker(state.clone()));
    state.rec.borrow_mut().finish();
}

async fn worker(st: Rc<State>) {
    let sh = &st.shared;
    let mut lanes = Vec::new();
    let mut lane_id = 0u64;
    for _ in 0..st.spec.connections {
        match sh.http.version {
            HttpVersion::Http1 => {
                lanes.push(tokio::task::spawn_local(h1_lane(st.clone(), lane_id)));
                lane_id += 1;
            }
            HttpVersion::Http2 => {
                let slot = Rc::new(H2Slot::default());
                for _ in 0..sh.http.streams {
                    lanes.push(tokio::task::spawn_local(h2_lane(st.clone(), slot.clone(), lane_id)));
                    lane_id += 1;
                }
            }
        }
    }
    let ticker = tokio::task::spawn_local(ticker(st.clone()));
    if sh.mode == Mode::Open {
        schedule(&st).await;
    }
    for lane in lanes {
        let _ = lane.await;
    }
    ticker.abort();
    let _ = ticker.await;
    // Requests still queued past the drain deadline were never answered (after a stop
    // they were never meant to be sent: drop them uncounted).
    let now = Instant::now();
    let left: Vec<Instant> = st.queue.borrow_mut().drain(..).collect();
    if sh.stop.is_stopped() {
        return;
    }
    let mut rec = st.rec.borrow_mut();
    for intended in left {
        rec.record(now, intended, usize::MAX, Ending::Timeout, 0);
    }
}

/// Closes a window at every second boundary, so idle workers report too.
async fn ticker(st: Rc<State>) {
    let mut next = st.spec.start + Duration::from_secs(1);
    loop {
        sleep_until(next.into()).await;
        st.rec.borrow_mut().roll(Instant::now());
        next += Duration::from_secs(1);
    }
}

/// Open-loop scheduler: queues this worker's requests at their intended times.
async fn schedule(st: &State) {
    // Precise wake-ups: tokio's millisecond timer would add its granularity to every latency.
    let mut pacer = Pacer::new();
    let mut last_wake = Instant::now();
    let sh = &st.shared;
    let step = sh.threads as u64;
    let start = st.spec.start;
    let mut k = st.spec.id as u64;
    let mut hint = 0usize;
    let mut next = sh.schedule.time_of(k, &mut hint);
    'run: while let Some(t) = next {
        let mut due = start + Duration::from_secs_f64(t);
        let mut now = Instant::now();
        if due > now {
            // At high rates wake at most every MIN_PACE and queue a batch.
            pacer
                .sleep_until(due.max(last_wake + MIN_PACE).min(now + STOP_POLL))
                .await;
            if sh.stop.is_stopped() {
                break;
            }
            now = Instant::now();
            if due > now {
                continue;
            }
        }
        // Queue everything that is due.
        last_wake = now;
        let mut rec = st.rec.borrow_mut();
        let mut queue = st.queue.borrow_mut();
        loop {
            rec.lag(now, now.saturating_duration_since(due));
            if st.outstanding.get() >= st.spec.max_outstanding {
                rec.dropped(now);
            } else {
                queue.push_back(due);
                st.outstanding.set(st.outstanding.get() + 1);
                st.work.notify_one();
            }
            k += step;
            next = sh.schedule.time_of(k, &mut hint);
            match next {
                Some(t) => {
                    due = start + Duration::from_secs_f64(t);
                    if due > now {
                        break;
                    }
                }
                None => break 'run,
            }
        }
    }
    st.schedule_done.set(true);
    st.work.notify_waiters();
}

impl State {
    /// The intended time of the next request this lane should send, or None when done.
    async fn next_job(&self) -> Option<Instant> {
        match self.shared.mode {
            Mode::Closed => {
                let now = Instant::now();
                (now < self.spec.end && !self.shared.stop.is_stopped()).then_some(now)
            }
            Mode::Open => loop {
                if self.shared.stop.is_stopped() {
                    return None;
                }
                if let Some(t) = self.queue.borrow_mut().pop_front() {
                    return Some(t);
                }
                if self.schedule_done.get() {
                    return None;
                }
                self.work.notified().await;
            },
        }
    }

    fn finished_one(&self) {
        if self.shared.mode == Mode::Open {
            self.outstanding.set(self.outstanding.get().saturating_sub(1));
        }
    }

    /// Records the result of one exchange; returns whether the connection is still usable.
    /// `sent`: what went out (for the per-user tracking and the request's span), if anything.
    fn settle(
        &self,
        intended: Instant,
        entry: usize,
        sent: Option<Sent>,
        result: Result<Result<Answer, Failure>, ()>,
    ) -> bool {
        let now = Instant::now();
        if let (Some(tracing), Some(Sent { at, trace: Some(t), .. })) = (&self.shared.tracing, sent) {
            let outcome = match &result {
                Ok(Ok(a)) => Outcome::Status {
                    code: a.status,
                    error: self.shared.errors.is_error(a.status),
                },
                Ok(Err(_)) => Outcome::Transport,
                Err(()) => Outcome::Timeout,
            };
            tracing.finish(t, entry, outcome, at.saturating_duration_since(intended));
        }
        let user = sent.and_then(|s| Some((s.user?, s.at)));
        let mut rec = self.rec.borrow_mut();
        let usable = match result {
            Ok(Ok(answer)) => {
                let code = answer.status;
                rec.headers(&answer.debug);
                if let (Some(tracker), Some((id, sent))) = (&self.shared.users, user) {
                    let served = answer.debug.release().and_then(release::header::parse);
                    if let Some((_, version)) = served.filter(|(name, _)| *name == tracker.release()) {
                        let sent_ms = sent.saturating_duration_since(self.spec.start).as_millis();
                        rec.moved(tracker.observe(id, u64::try_from(sent_ms).unwrap_or(u64::MAX), version));
                    }
                }
                rec.record(
                    now,
                    intended,
                    entry,
                    Ending::Status(code, self.shared.errors.is_error(code)),
                    answer.bytes,
                );
                true
            }
            Ok(Err(f)) => {
                rec.record(now, intended, entry, Ending::Transport, 0);
                rec.error_sample(|| f.message());
                false
            }
            Err(()) => {
                rec.record(now, intended, entry, Ending::Timeout, 0);
                false
            }
        };
        drop(rec);
        self.finished_one();
        usable
    }

    /// Deadline of a request sent now.
    fn deadline(&self) -> Instant {
        (Instant::now() + self.shared.http.timeout).min(self.spec.drain_deadline)
    }

    /// True (after recording a timeout) when the job came too late to be sent at all.
    fn abandon_if_late(&self, intended: Instant) -> bool {
        if Instant::now() < self.spec.drain_deadline {
            return false;
        }
        self.settle(intended, usize::MAX, None, Err(()));
        true
    }

    /// Trace and span ids: from the OS, not the run's seed (two runs with one seed must not
    /// send the same trace ids to a collector).
    fn trace_rng() -> SmallRng {
        SmallRng::from_os_rng()
    }

    fn rng(&self, lane: u64) -> SmallRng {
        let id = self.spec.id as u64;
        SmallRng::seed_from_u64(self.shared.seed ^ (id << 40) ^ lane.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}
