//! The race: runs tries concurrently until one answers well — hedging after a delay,
//! retrying when a failure leaves nothing in flight, giving up at the deadline — without
//! knowing what a try is: a [`Racer`] starts them and is told how they end. Deterministic
//! under paused time (see the tests).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::RetryOn;
use crate::proxy::classify::Fault;
use crate::proxy::error::GatewayError;

/// When to hedge and until when to wait.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub delay: Duration,
    /// Hedged tries beyond the first, at most.
    pub max_extra: u32,
    pub deadline: Instant,
}

/// How one try of a race ended.
pub enum Reply<S> {
    /// The pod answered (`status` ≥ 500 is a server error, not a win).
    Answer(S, u16),
    Failed(Fault),
}

/// A try's future, as a [`Racer`] starts it.
pub type TryFuture<S> = Pin<Box<dyn Future<Output = Reply<S>> + Send>>;

/// The tries of one race, seen from the race.
pub trait Racer {
    type Session: Send + 'static;
    /// Starts one more try (on a pod not tried yet); the error when none can start.
    fn launch(&mut self) -> Result<(usize, TryFuture<Self::Session>), GatewayError>;
    /// A hedge (not a retry) is due: may it go (the retry budget pays for hedges too)?
    fn hedge_allowed(&mut self) -> bool;
    /// Try `idx` failed with `fault`.
    fn failed(&mut self, idx: usize, fault: &Fault);
    /// Nothing is in flight after a failure with `cause`: may the request be tried again?
    fn may_retry(&mut self, cause: RetryOn) -> bool;
    /// The pod try `idx` went to (for error messages).
    fn pod(&self, idx: usize) -> Option<SocketAddr>;
    /// Try `idx` answered `status` ≥ 500 in `session`: how it failed — a server error, or a
    /// request the pod shed unprocessed (`Overloaded`, the try then already ended as busy).
    fn bad_answer(&mut self, _idx: usize, _session: &Self::Session, _status: u16) -> RetryOn {
        RetryOn::Status5xx
    }
}

/// How a race ended.
pub struct RaceEnd<S> {
    /// The first good answer, with its try's index.
    pub winner: Option<(usize, S)>,
    /// The last server-error answer, passed on when nothing better came and no fallback wants it.
    pub server_error: Option<(usize, S)>,
    /// Why the request was not served, when it was not.
    pub failure: Option<GatewayError>,
    /// Hedged tries launched.
    pub hedges: u32,
}

/// Runs tries until one answers well, hedging after `plan.delay` (at most `plan.max_extra`
/// times) and retrying when a failure leaves nothing in flight, until `plan.deadline`. Tries
/// still running when it returns are cancelled.
pub async fn race<R: Racer>(plan: &Plan, racer: &mut R) -> RaceEnd<R::Session> {
    let mut set: JoinSet<(usize, Reply<R::Session>)> = JoinSet::new();
    let mut end = RaceEnd {
        winner: None,
        server_error: None,
        failure: None,
        hedges: 0,
    };
    let mut last = None;
    let mut spawn = |set: &mut JoinSet<_>, (idx, fut): (usize, TryFuture<R::Session>)| {
        last = Some(idx);
        set.spawn(async move { (idx, fut.await) });
    };
    match racer.launch() {
        Ok(t) => spawn(&mut set, t),
        Err(e) => end.failure = Some(e),
    }
    let mut extra = 0u32;
    let mut last_launch = Instant::now();
    while !set.is_empty() {
        let hedge_at = if extra < plan.max_extra {
            last_launch + plan.delay
        } else {
            plan.deadline
        };
        tokio::select! {
            joined = set.join_next() => {
                let Some(Ok((idx, reply))) = joined else { continue };
                let cause = match reply {
                    Reply::Answer(s, status) if status < 500 => {
                        end.winner = Some((idx, s));
                        break;
                    }
                    Reply::Answer(s, status) => {
                        let cause = racer.bad_answer(idx, &s, status);
                        end.failure = Some(GatewayError::BadStatus { pod: racer.pod(idx), status });
                        end.server_error = Some((idx, s));
                        Some(cause)
                    }
                    Reply::Failed(fault) => {
                        racer.failed(idx, &fault);
                        let cause = fault.retry_on;
                        end.failure = Some(fault.error);
                        cause
                    }
                };
                if set.is_empty() && cause.is_some_and(|c| racer.may_retry(c)) {
                    if let Ok(t) = racer.launch() {
                        spawn(&mut set, t);
                    }
                }
            }
            _ = tokio::time::sleep_until(hedge_at), if hedge_at < plan.deadline => {
                extra += 1;
                match racer.hedge_allowed().then(|| racer.launch()) {
                    Some(Ok(t)) => {
                        spawn(&mut set, t);
                        end.hedges += 1;
                        last_launch = Instant::now();
                    }
                    _ => extra = plan.max_extra,
                }
            }
            _ = tokio::time::sleep_until(plan.deadline) => {
                end.failure = Some(GatewayError::UpstreamTimeout {
                    pod: last.and_then(|i| racer.pod(i)),
                });
                break;
            }
        }
    }
    set.abort_all();
    end
}

#[cfg(test)]
#[path = "race_tests.rs"]
mod tests;
