//! Hedging: for idempotent, bodyless requests on routes with `hedge`, another try goes to
//! another pod when the first has not answered after `hedge.after` (fixed, or the route's live
//! percentile); the first good answer wins and the others are cancelled.
//!
//! The race ([`race`](mod@race)) is plain concurrency over tries it does not know: a [`Racer`] starts
//! them and is told how they end. The gateway's racer (`pods`) starts each try with the try
//! engine (`attempt`), decides retries with `retry` and classifies failures with `classify`,
//! exactly as pingora's proxy loop does; it only drives the connection itself, because
//! pingora runs one upstream try at a time. [`serve`] is the stage: race, then answer.
//!
//! Connections: pingora 0.9.1 keeps its proxy loop's connector private (`HttpProxy` builds it
//! from `ServerConf` and exposes no handle), so hedged tries use a second pool, the
//! [`Hedger`]'s: the same size as `server.upstream_keepalive_pool_size`, per-pod idle timeout
//! from the cluster, used only by hedged routes.

mod pods;
pub mod race;

use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::Result;
use tokio::time::Instant;

use super::classify::classify;
use super::ctx::{RequestCtx, Try};
use super::error::GatewayError;
use super::{attempt, fallback, respond};
use crate::config::defaults::hedge::PERCENTILE_FALLBACK;
use crate::config::{HedgeAfter, HedgeSpec, RetryOn};
use crate::metrics::Metrics;
use crate::route::Route;
use pods::PodRace;
pub use race::{race, Plan, RaceEnd, Racer, Reply, TryFuture};

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

/// Serves a hedged request completely: the race, then the winner's answer, a pod's server
/// error, the function or the error. Always answers the client (or fails writing to it).
pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: Plan,
    hedger: &Hedger,
    metrics: &Metrics,
) -> Result<bool> {
    let request = attempt::upstream_request(session.req_header(), &ctx.id, ctx.client_ip)?;
    let Some(routed) = ctx.routed.as_mut() else {
        return Ok(false);
    };
    let mut race = PodRace::new(routed, hedger, request, ctx.trace.as_deref_mut());
    let end = race::race(&plan, &mut race).await;
    race.settle_losers(end.winner.as_ref().map(|(i, _)| *i));
    if let Some((idx, s)) = &end.winner {
        if let Some(status) = s.response_header().map(|h| h.status.as_u16()) {
            race.note_answer(*idx, status);
        }
    }
    let route = Arc::clone(&race.routed.route);
    if end.hedges > 0 {
        route.metrics.hedge("launched", end.hedges);
    }
    // A 5xx the race kept is the pod's answer: the pod saw the request.
    let seen_by_a_pod = if end.server_error.is_some() {
        Some(RetryOn::Status5xx)
    } else {
        race.last_cause
    };
    let chosen = match (end.winner, end.server_error) {
        (Some((idx, s)), _) => {
            if idx > 0 {
                route.metrics.hedge("won", 1);
            }
            Some((idx, s))
        }
        (None, Some(bad)) if !fallback::after_retries(&route) => Some(bad),
        _ => None,
    };
    let answer = chosen.and_then(|(idx, s)| race.take_answer(idx, &s).map(|(h, peer, t)| (h, peer, t, s)));
    match answer {
        Some((header, peer, open, s)) => relay(session, ctx, header, (peer, s, open), hedger).await,
        None => {
            // Without a recorded cause the race ran out of time: the pods had the request.
            ctx.outcome.last_cause = seen_by_a_pod.or(Some(RetryOn::Timeout));
            let err = end
                .failure
                .unwrap_or(GatewayError::UpstreamTimeout { pod: ctx.last_pod() });
            fallback::answer_failure(session, ctx, err, metrics).await;
            Ok(true)
        }
    }
}

/// Streams the chosen try's answer to the client and pools its connection. The try stays open
/// while its body flows: a pod that fails mid-body has it counted against it.
async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut header: ResponseHeader,
    (peer, mut s, open): (HttpPeer, HttpSession, Option<Try>),
    hedger: &Hedger,
) -> Result<bool> {
    respond::pod_headers(&mut header, ctx, ctx.last_pod())?;
    session.write_response_header(Box::new(header), false).await?;
    loop {
        let chunk = match s.read_response_body().await {
            Ok(chunk) => chunk,
            Err(e) => {
                if let (Some(t), Some(routed)) = (open, ctx.routed.as_ref()) {
                    let pod = t.pod();
                    attempt::failed(routed, t, &classify(&e.into_up(), Some(pod)));
                }
                return Ok(true);
            }
        };
        match chunk {
            Some(chunk) => session.write_response_body(Some(chunk), false).await?,
            None => break,
        }
    }
    session.write_response_body(None, true).await?;
    drop(open);
    if s.response_done() {
        hedger.release(s, &peer).await;
    }
    Ok(true)
}
