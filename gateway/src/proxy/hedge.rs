//! Hedging: for idempotent, bodyless requests on routes with `hedge`, another try goes to
//! another pod when the first has not answered after `hedge.after` (fixed, or the route's live
//! percentile); the first good answer wins and the others are cancelled.
//!
//! The race ([`race`]) is plain concurrency over tries it does not know: a [`Racer`] starts
//! them and is told how they end. The gateway's racer ([`PodRace`]) starts each try with the
//! try engine (`attempt`), decides retries with `retry` and classifies failures with
//! `classify`, exactly as pingora's proxy loop does; it only drives the connection itself,
//! because pingora runs one upstream try at a time.
//!
//! Connections: pingora 0.9.1 keeps its proxy loop's connector private (`HttpProxy` builds it
//! from `ServerConf` and exposes no handle), so hedged tries use a second pool, the
//! [`Hedger`]'s: the same size as `server.upstream_keepalive_pool_size`, per-pod idle timeout
//! from the cluster, used only by hedged routes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::{Error, ErrorType};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::attempt;
use super::classify::{classify, Fault};
use super::ctx::{Routed, Try};
use super::error::GatewayError;
use super::random;
use super::retry::{self, TryState, Verdict};
use crate::config::defaults::hedge::PERCENTILE_FALLBACK;
use crate::config::{HedgeAfter, HedgeSpec, RetryOn};
use crate::route::Route;

/// The connection pool of hedged tries.
pub struct Hedger {
    connector: Arc<Connector>,
}

impl Hedger {
    pub fn new(pool_size: usize) -> Self {
        Hedger {
            connector: Arc::new(Connector::new(Some(ConnectorOptions::new(pool_size)))),
        }
    }

    /// Returns a connection whose answer was read to the end to the pool.
    pub async fn release(&self, s: HttpSession, peer: &HttpPeer) {
        self.connector
            .release_http_session(s, peer, peer.options.idle_timeout)
            .await;
    }
}

/// How long to wait before hedging.
pub fn hedge_delay(spec: &HedgeSpec, route: &Route) -> Duration {
    match spec.after {
        HedgeAfter::Fixed(d) => d,
        // Until the route has a latency history (after start or a reload), hedge after a
        // fixed delay rather than not at all: a stuck pod must not cost a whole timeout.
        HedgeAfter::Percentile(_) => route
            .latency
            .as_ref()
            .and_then(|w| w.current())
            .map_or(PERCENTILE_FALLBACK, |d| d.max(Duration::from_millis(1))),
    }
}

/// The hedge plan of a request, when it is hedged: only requests that can be sent twice
/// (idempotent, no body) on routes with `hedge`.
pub fn plan(route: &Route, idempotent: bool, bodyless: bool, deadline: Instant) -> Option<Plan> {
    let spec = route.spec.hedge?;
    (idempotent && bodyless).then(|| Plan {
        delay: hedge_delay(&spec, route),
        max_extra: spec.max_extra,
        deadline,
    })
}

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
                        end.failure = Some(GatewayError::BadStatus { pod: racer.pod(idx), status });
                        end.server_error = Some((idx, s));
                        Some(RetryOn::Status5xx)
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

/// A try the race launched: its pod, its peer (to pool the connection) and the try until it ends.
pub struct Launched {
    pub pod: SocketAddr,
    pub peer: HttpPeer,
    pub open: Option<Try>,
}

/// The gateway's racer: real tries on the route's pods.
pub struct PodRace<'a> {
    pub routed: &'a mut Routed,
    pub hedger: &'a Hedger,
    /// The request every try sends.
    pub request: RequestHeader,
    /// Each launched try, by index.
    pub tries: Vec<Launched>,
    /// Retry facts that do not change during the race.
    pub idempotent: bool,
}

impl Racer for PodRace<'_> {
    type Session = HttpSession;

    fn launch(&mut self) -> Result<(usize, TryFuture<HttpSession>), GatewayError> {
        let (t, per_try) = random::with_rng(|rng| attempt::start(self.routed, false, Instant::now(), rng))?;
        let peer = attempt::peer(&self.routed.cluster().spec, t.pod, per_try, true);
        let idx = self.tries.len();
        let (connector, req, p) = (Arc::clone(&self.hedger.connector), self.request.clone(), peer.clone());
        let pod = t.pod;
        self.tries.push(Launched {
            pod,
            peer,
            open: Some(t),
        });
        Ok((idx, Box::pin(one_try(connector, p, req, per_try, pod))))
    }

    fn hedge_allowed(&mut self) -> bool {
        self.routed.route.budget.as_ref().is_none_or(|b| b.try_retry())
    }

    fn failed(&mut self, idx: usize, fault: &Fault) {
        if let Some(t) = self.tries.get_mut(idx).and_then(|l| l.open.take()) {
            attempt::failed(&self.routed.route, t, fault);
        }
    }

    fn pod(&self, idx: usize) -> Option<SocketAddr> {
        self.tries.get(idx).map(|l| l.pod)
    }

    fn may_retry(&mut self, cause: RetryOn) -> bool {
        let state = TryState {
            attempts: self.routed.tries.count,
            idempotent: self.idempotent,
            replayable: true,
            response_started: false,
            remaining: self.routed.remaining(Instant::now()),
        };
        retry::decide(&self.routed.route, cause, &state, self.routed.tries.tried.len()) == Verdict::Retry
    }
}

impl PodRace<'_> {
    /// Ends the tries that lost: one that started before the winner (or when nothing won) and
    /// still had not answered is counted against its pod; later ones only release their slot.
    pub fn settle_losers(&mut self, winner: Option<usize>) {
        let winner_started = winner
            .and_then(|w| self.tries.get(w))
            .and_then(|l| l.open.as_ref())
            .map(Try::started);
        for (i, l) in self.tries.iter_mut().enumerate() {
            if Some(i) == winner {
                continue;
            }
            if let Some(t) = l.open.take() {
                if winner_started.is_none_or(|ws| t.started() <= ws) {
                    attempt::lost_to_a_faster_pod(&self.routed.route, t);
                }
            }
        }
    }

    /// The chosen try's answer header, recorded as its try's end (load report stripped).
    pub fn take_answer(&mut self, idx: usize, s: &HttpSession) -> Option<(ResponseHeader, HttpPeer)> {
        let l = self.tries.get_mut(idx)?;
        let t = l.open.take()?;
        let mut header = s.response_header()?.clone();
        self.routed.tries.last_pod = Some(t.pod);
        attempt::answered(&self.routed.route, Some(t), &mut header);
        Some((header, l.peer.clone()))
    }
}

/// One hedged try: connect (or reuse), send the head, read the answer's head, within `per_try`.
async fn one_try(
    connector: Arc<Connector>,
    peer: HttpPeer,
    req: RequestHeader,
    per_try: Duration,
    pod: SocketAddr,
) -> Reply<HttpSession> {
    let work = async {
        let (mut s, _reused) = connector.get_http_session(&peer).await?;
        s.set_read_timeout(Some(per_try));
        s.set_write_timeout(Some(per_try));
        s.write_request_header(Box::new(req)).await?;
        s.finish_request_body().await?;
        s.read_response_header().await?;
        Ok::<_, Box<Error>>(s)
    };
    let result = match tokio::time::timeout(per_try, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::explain(ErrorType::ReadTimedout, "try exceeded per_try_timeout")),
    };
    match result {
        Ok(s) => match s.response_header().map(|h| h.status.as_u16()) {
            Some(status) => Reply::Answer(s, status),
            None => Reply::Failed(classify(&Error::new(ErrorType::InvalidHTTPHeader).into_up(), Some(pod))),
        },
        Err(e) => Reply::Failed(classify(&e.into_up(), Some(pod))),
    }
}

#[cfg(test)]
#[path = "hedge_tests.rs"]
mod tests;
