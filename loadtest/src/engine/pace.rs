//! Precise wake-ups for the open-loop scheduler.
//!
//! tokio's timer wheel ticks in milliseconds, so sleeping until an intended send time would
//! add up to a millisecond (often more) of schedule lag, and so of measured latency, to every
//! request. On Linux a `timerfd` registered with the worker's own reactor wakes the scheduler
//! within tens of microseconds, without a helper thread or a cross-thread wake-up; elsewhere
//! (or if the timerfd cannot be created) the tokio timer is used.

use std::time::{Duration, Instant};

/// Waits longer than this go through tokio's timer first (cheap, coarse), then the precise one.
const COARSE_ABOVE: Duration = Duration::from_millis(3);

/// A reusable precise sleeper, one per worker thread (needs that thread's tokio reactor).
pub struct Pacer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<linux::Timer>>,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            #[cfg(target_os = "linux")]
            fd: linux::Timer::new().and_then(register),
        }
    }

    /// Whether wake-ups are precise (timerfd) rather than millisecond-granular.
    pub fn is_precise(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.fd.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Sleeps until `deadline` (returns at once if it has passed).
    pub async fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        if deadline - now > COARSE_ABOVE || !self.is_precise() {
            let coarse = if self.is_precise() {
                deadline - Duration::from_millis(2)
            } else {
                deadline
            };
            tokio::time::sleep_until(coarse.into()).await;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || fd.get_ref().arm(left).is_err() {
                return;
            }
            loop {
                let Ok(mut guard) = fd.readable().await else { return };
                match guard.try_io(|t| t.get_ref().consume()) {
                    Ok(_) => return,
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

/// Registers the timer with the current reactor.
///
/// `AsyncFd::new` is deprecated because a caller could close the fd while it is registered; here
/// the `TimerFd` owns its fd and is moved into the `AsyncFd`, which drops (deregisters) it last,
/// so that cannot happen — and the non-deprecated `register` would need `unsafe`.
#[cfg(target_os = "linux")]
#[allow(deprecated)]
fn register(t: linux::Timer) -> Option<tokio::io::unix::AsyncFd<linux::Timer>> {
    tokio::io::unix::AsyncFd::with_interest(t, tokio::io::Interest::READABLE).ok()
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

    /// A non-blocking one-shot monotonic timerfd.
    pub struct Timer(TimerFd);

    impl Timer {
        pub fn new() -> Option<Timer> {
            TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .ok()
            .map(Timer)
        }

        /// Arms the timer to fire once after `after` (> 0).
        pub fn arm(&self, after: Duration) -> io::Result<()> {
            self.0
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(after)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(io::Error::from)
        }

        /// Reads the expiry count; `WouldBlock` until the timer fired.
        pub fn consume(&self) -> io::Result<()> {
            self.0.wait().map_err(io::Error::from)
        }
    }

    impl AsRawFd for Timer {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }
}
