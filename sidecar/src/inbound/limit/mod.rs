//! Admission: at most ⌊limit⌋ requests reach the app at once; the next ones wait in a bounded
//! FIFO queue for at most the queue timeout, the rest are shed.
//!
//! The fast path is one compare-and-swap on the in-flight count (it never admits above the
//! limit). Waiting and handing a freed slot to the queue's head happen under one small lock,
//! so a slot freed while someone queues is never lost: the releaser decrements, then drains
//! the queue if anyone waits; a waiter counts itself as queued before its last try.
//!
//! The limit itself is static, or moved by an algorithm of [`gradient`] or [`aimd`] from the
//! latencies the permits report when they end.

pub mod aimd;
pub mod gradient;
pub mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::{LimitSpec, QueueSpec};
use aimd::Aimd;
use gradient::Gradient;
use window::Window;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QueueFull,
    QueueTimeout,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }
}

/// The algorithm that moves the limit.
enum Control {
    Fixed,
    Gradient(Mutex<Gradient>),
    Aimd(Mutex<Aimd>),
}

/// How a finished request went, for the limit algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Answered in time, after this long at the app.
    Answered(Duration),
    /// Cut at the request timeout.
    TimedOut,
    /// Neither says anything about the app's latency (the client left, the app was down).
    Ignore,
}

/// The sidecar's admission gate.
pub struct Limiter {
    /// ⌊limit⌋ as admitted now.
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    /// Mirrors `waiters.len()` (written under its lock) so a release needs no lock when
    /// nobody waits.
    queued: AtomicUsize,
    waiters: Mutex<VecDeque<oneshot::Sender<()>>>,
    queue: Mutex<QueueSpec>,
    control: Control,
    /// Latencies of the current gradient interval.
    window: Window,
    /// Highest in-flight count of the current interval (Gradient2's "app limited" guard).
    peak: AtomicUsize,
    next_tick: AtomicU64,
    epoch: Instant,
}

/// A slot at the app; dropping it frees the slot (or hands it to the queue's head).
pub struct Permit {
    limiter: Arc<Limiter>,
}

impl Permit {
    /// Ends the request: reports how it went to the limit algorithm, then frees the slot.
    pub fn finish(self, sample: Sample) {
        self.limiter.record(sample, Instant::now());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (each critical section
    // is a few plain operations), so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Limiter {
    pub fn new(spec: &LimitSpec, queue: QueueSpec) -> Arc<Self> {
        let control = match spec {
            LimitSpec::Fixed { .. } => Control::Fixed,
            LimitSpec::Gradient(g) => Control::Gradient(Mutex::new(Gradient::new(g.clone()))),
            LimitSpec::Aimd(a) => Control::Aimd(Mutex::new(Aimd::new(a.clone()))),
        };
        Arc::new(Limiter {
            limit: AtomicUsize::new(spec.initial() as usize),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            waiters: Mutex::new(VecDeque::new()),
            queue: Mutex::new(queue),
            control,
            window: Window::new(),
            peak: AtomicUsize::new(0),
            next_tick: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The algorithm's view for `/load`: (baseline, last sample, gradient), when adaptive.
    pub fn adaptive_view(&self) -> Option<gradient::View> {
        match &self.control {
            Control::Gradient(g) => Some(lock(g).view()),
            _ => None,
        }
    }

    /// A reload: new queue settings; a new static limit applies at once (an adaptive one
    /// keeps its learned value).
    pub fn reconfigure(&self, spec: &LimitSpec, queue: QueueSpec) {
        *lock(&self.queue) = queue;
        if let (LimitSpec::Fixed { limit }, Control::Fixed) = (spec, &self.control) {
            self.set_limit(*limit as usize);
        }
    }

    fn set_limit(&self, limit: usize) {
        let old = self.limit.swap(limit.max(1), Ordering::SeqCst);
        if limit > old {
            self.drain_queue();
        }
    }

    /// One slot, if the limit has room now.
    fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        let mut cur = self.in_flight.load(Ordering::SeqCst);
        while cur < limit {
            match self
                .in_flight
                .compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.peak.fetch_max(cur + 1, Ordering::Relaxed);
                    return true;
                }
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Admits now, or after waiting in the queue, or refuses.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, Refusal> {
        if self.try_take() {
            return Ok(self.permit());
        }
        let (rx, timeout) = {
            let queue = *lock(&self.queue);
            let mut waiters = lock(&self.waiters);
            // Counted as queued before the last try: a release that misses this waiter's
            // entry sees the count and drains (see the module comment).
            self.queued.store(waiters.len() + 1, Ordering::SeqCst);
            if self.try_take() {
                self.queued.store(waiters.len(), Ordering::SeqCst);
                return Ok(self.permit());
            }
            if waiters.len() >= queue.max as usize {
                waiters.retain(|w| !w.is_closed());
            }
            if waiters.len() >= queue.max as usize {
                self.queued.store(waiters.len(), Ordering::SeqCst);
                return Err(Refusal::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            waiters.push_back(tx);
            self.queued.store(waiters.len(), Ordering::SeqCst);
            (rx, queue.timeout)
        };
        let mut rx = rx;
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(())) => Ok(self.permit()),
            _ => {
                // A slot handed over just as the wait ended is still ours: use it.
                rx.close();
                if rx.try_recv().is_ok() {
                    return Ok(self.permit());
                }
                let mut waiters = lock(&self.waiters);
                waiters.retain(|w| !w.is_closed());
                self.queued.store(waiters.len(), Ordering::SeqCst);
                Err(Refusal::QueueTimeout)
            }
        }
    }

    /// A permit for a slot already counted in `in_flight`.
    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            limiter: Arc::clone(self),
        }
    }

    fn release(&self) {
        if self.queued.load(Ordering::SeqCst) > 0 {
            let mut waiters = lock(&self.waiters);
            if self.in_flight.load(Ordering::SeqCst) <= self.limit.load(Ordering::SeqCst) {
                // Hand the slot straight to the oldest live waiter: in-flight stays the same.
                while let Some(w) = waiters.pop_front() {
                    if w.send(()).is_ok() {
                        self.queued.store(waiters.len(), Ordering::SeqCst);
                        return;
                    }
                }
            }
            self.queued.store(waiters.len(), Ordering::SeqCst);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.drain_queue();
        }
    }

    /// Gives free slots to waiters, oldest first.
    fn drain_queue(&self) {
        let mut waiters = lock(&self.waiters);
        while !waiters.is_empty() && self.try_take() {
            let mut handed = false;
            while let Some(w) = waiters.pop_front() {
                if w.send(()).is_ok() {
                    handed = true;
                    break;
                }
            }
            if !handed {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.queued.store(waiters.len(), Ordering::SeqCst);
    }

    /// Feeds a finished request to the algorithm; the gradient's interval ends here too (the
    /// first request past its end runs it), so an idle sidecar does no work.
    fn record(&self, sample: Sample, now: Instant) {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        match &self.control {
            Control::Fixed => {}
            Control::Aimd(a) => {
                let new = lock(a).on_sample(sample, in_flight);
                if let Some(new) = new {
                    self.set_limit(new);
                }
            }
            Control::Gradient(g) => {
                match sample {
                    Sample::Answered(rtt) => self.window.record(rtt),
                    Sample::TimedOut => {
                        let new = lock(g).on_timeout();
                        self.set_limit(new);
                    }
                    Sample::Ignore => {}
                }
                let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
                let due = self.next_tick.load(Ordering::Relaxed);
                if now_us < due {
                    return;
                }
                let Ok(mut g) = g.try_lock() else {
                    return;
                };
                let interval = g.interval().as_micros() as u64;
                if self
                    .next_tick
                    .compare_exchange(due, now_us + interval, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    return;
                }
                let window = self.window.take();
                let peak = self.peak.swap(in_flight, Ordering::Relaxed);
                if let Some(new) = g.on_interval(&window, peak, now) {
                    drop(g);
                    self.set_limit(new);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "limit_tests.rs"]
mod tests;
