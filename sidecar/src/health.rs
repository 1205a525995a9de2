//! The app's state as the sidecar sees it, and what it tells Kubernetes:
//!
//! `Starting` (the port does not answer yet: `/readyz` 503, requests shed `starting`) → a good
//! check → `Ready` → `stuck_after` consecutive timeouts → `Stuck` (`/readyz` 503, load reported
//! full, one probe request at a time reaches the app, the rest are shed `stuck`) → an answer
//! in time → `Ready`; stuck for `liveness_grace` → `Dead` (`/livez` 503: the kubelet restarts
//! the app container) → the port refuses (the restart) → `Starting`. `Ready` with three failed
//! checks in a row → `Starting`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Failed checks in a row that take a ready app back to `Starting`.
const FAILED_CHECKS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AppState {
    Starting = 0,
    Ready = 1,
    Stuck = 2,
    Dead = 3,
}

impl AppState {
    pub const ALL: [AppState; 4] = [AppState::Starting, AppState::Ready, AppState::Stuck, AppState::Dead];

    fn from_u8(v: u8) -> Self {
        match v {
            1 => AppState::Ready,
            2 => AppState::Stuck,
            3 => AppState::Dead,
            _ => AppState::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Starting => "starting",
            AppState::Ready => "ready",
            AppState::Stuck => "stuck",
            AppState::Dead => "dead",
        }
    }
}

/// Why a request did not reach the app (the `x-arena-overloaded` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    QueueFull,
    QueueTimeout,
    Stuck,
    Starting,
    AppUnavailable,
    /// The sidecar is stopping: the request goes to another pod.
    Draining,
}

impl Shed {
    pub const ALL: [Shed; 6] = [
        Shed::QueueFull,
        Shed::QueueTimeout,
        Shed::Stuck,
        Shed::Starting,
        Shed::AppUnavailable,
        Shed::Draining,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shed::QueueFull => "queue_full",
            Shed::QueueTimeout => "queue_timeout",
            Shed::Stuck => "stuck",
            Shed::Starting => "starting",
            Shed::AppUnavailable => "app_unavailable",
            Shed::Draining => "draining",
        }
    }
}

pub struct Health {
    state: AtomicU8,
    timeouts: AtomicU32,
    failed_checks: AtomicU32,
    probing: AtomicBool,
    /// µs since `epoch` when the app became stuck.
    stuck_since: AtomicU64,
    epoch: Instant,
    stuck_after: AtomicU32,
    grace_us: AtomicU64,
}

impl Health {
    pub fn new(stuck_after: u32, grace: Duration) -> Self {
        Health {
            state: AtomicU8::new(AppState::Starting as u8),
            timeouts: AtomicU32::new(0),
            failed_checks: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            stuck_since: AtomicU64::new(0),
            epoch: Instant::now(),
            stuck_after: AtomicU32::new(stuck_after),
            grace_us: AtomicU64::new(micros(grace)),
        }
    }

    /// A reload's new thresholds.
    pub fn reconfigure(&self, stuck_after: u32, grace: Duration) {
        self.stuck_after.store(stuck_after, Ordering::Relaxed);
        self.grace_us.store(micros(grace), Ordering::Relaxed);
    }

    pub fn state(&self) -> AppState {
        AppState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set(&self, s: AppState) {
        self.state.store(s as u8, Ordering::Release);
    }

    fn now_us(&self, now: Instant) -> u64 {
        micros(now.saturating_duration_since(self.epoch))
    }

    /// Whether a request may go to the app now; `Ok(true)` when it is the one request a
    /// stuck app gets (its end calls [`Health::end_probe`]).
    pub fn admit(&self) -> Result<bool, Shed> {
        match self.state() {
            AppState::Ready => Ok(false),
            AppState::Starting => Err(Shed::Starting),
            AppState::Stuck | AppState::Dead => {
                if self
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    Ok(true)
                } else {
                    Err(Shed::Stuck)
                }
            }
        }
    }

    /// The probe request of a stuck app ended: the next request may probe.
    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// The app answered a request in time.
    pub fn on_answer(&self) {
        self.timeouts.store(0, Ordering::Relaxed);
        if matches!(self.state(), AppState::Stuck | AppState::Dead) {
            tracing::info!("the app answered in time again: ready");
            self.set(AppState::Ready);
        }
    }

    /// A request was cut at the timeout.
    pub fn on_timeout(&self, now: Instant) {
        let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.stuck_after.load(Ordering::Relaxed)
            && self
                .state
                .compare_exchange(
                    AppState::Ready as u8,
                    AppState::Stuck as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            self.stuck_since.store(self.now_us(now), Ordering::Relaxed);
            tracing::warn!(timeouts = n, "the app is stuck: not ready, load reported full");
        }
    }

    /// One app check: `ok` when its port (or check path) answered.
    pub fn on_check(&self, ok: bool, now: Instant) {
        let state = self.state();
        if ok {
            self.failed_checks.store(0, Ordering::Relaxed);
        } else {
            self.failed_checks.fetch_add(1, Ordering::Relaxed);
        }
        match (state, ok) {
            (AppState::Starting, true) => {
                tracing::info!("the app answers: ready");
                self.timeouts.store(0, Ordering::Relaxed);
                self.set(AppState::Ready);
            }
            (AppState::Ready, false) if self.failed_checks.load(Ordering::Relaxed) >= FAILED_CHECKS => {
                tracing::warn!("the app stopped answering its checks: starting");
                self.set(AppState::Starting);
            }
            (AppState::Stuck, _) => {
                let since = self.stuck_since.load(Ordering::Relaxed);
                if self.now_us(now).saturating_sub(since) >= self.grace_us.load(Ordering::Relaxed) {
                    tracing::error!("the app stayed stuck past liveness_grace: /livez now fails so it is restarted");
                    self.set(AppState::Dead);
                }
            }
            (AppState::Dead, false) => {
                // The port refuses: the kubelet is restarting the app.
                self.timeouts.store(0, Ordering::Relaxed);
                self.set(AppState::Starting);
            }
            _ => {}
        }
    }

    /// `/readyz`: traffic should come here.
    pub fn ready(&self) -> bool {
        self.state() == AppState::Ready
    }

    /// `/livez` (the app container's liveness probe): false once it is dead.
    pub fn live(&self) -> bool {
        self.state() != AppState::Dead
    }

    /// Whether the load report should read full.
    pub fn stuck(&self) -> bool {
        matches!(self.state(), AppState::Stuck | AppState::Dead)
    }

    pub fn consecutive_timeouts(&self) -> u32 {
        self.timeouts.load(Ordering::Relaxed)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn starting_ready_stuck_dead_and_back() {
        let h = Health::new(3, Duration::from_secs(10));
        assert_eq!(h.admit().err(), Some(Shed::Starting));
        assert!(!h.ready() && h.live());
        h.on_check(true, Instant::now());
        assert_eq!(h.admit(), Ok(false));

        for _ in 0..2 {
            h.on_timeout(Instant::now());
        }
        assert!(h.ready(), "two timeouts are not stuck");
        h.on_answer();
        for _ in 0..2 {
            h.on_timeout(Instant::now());
        }
        assert!(h.ready(), "an answer in time resets the count");
        h.on_timeout(Instant::now());
        assert_eq!(h.state(), AppState::Stuck);
        assert!(!h.ready() && h.live() && h.stuck());

        // One probe at a time.
        assert_eq!(h.admit(), Ok(true));
        assert_eq!(h.admit(), Err(Shed::Stuck));
        h.end_probe();
        assert_eq!(h.admit(), Ok(true));

        tokio::time::advance(Duration::from_secs(9)).await;
        h.on_check(true, Instant::now());
        assert!(h.live(), "within the grace");
        tokio::time::advance(Duration::from_secs(1)).await;
        h.on_check(true, Instant::now());
        assert_eq!(h.state(), AppState::Dead);
        assert!(!h.live());

        // Restarted: the port refuses, then answers.
        h.on_check(false, Instant::now());
        assert_eq!(h.state(), AppState::Starting);
        h.on_check(true, Instant::now());
        assert!(h.ready() && h.live());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_app_that_answers_is_ready_again_and_failed_checks_unready_it() {
        let h = Health::new(1, Duration::from_secs(10));
        h.on_check(true, Instant::now());
        h.on_timeout(Instant::now());
        assert!(h.stuck());
        h.on_answer();
        assert!(h.ready());
        h.on_check(false, Instant::now());
        h.on_check(false, Instant::now());
        assert!(h.ready());
        h.on_check(false, Instant::now());
        assert_eq!(h.state(), AppState::Starting);
    }
}
