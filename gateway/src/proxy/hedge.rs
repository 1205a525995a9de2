//! Hedged requests: for idempotent, bodyless requests on routes with `hedge`, a second try
//! goes to another pod when the first has not answered after `hedge.after` (fixed, or the
//! route's live percentile). The first good answer wins; the losers are cancelled (their
//! connections dropped). pingora's proxy loop runs one try at a time, so these tries are
//! driven here with pingora's own HTTP connector.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{attempt, with_rng, ArenaProxy, RequestCtx};
use crate::config::{HedgeAfter, HedgeSpec, RetryOn};
use crate::error::GatewayError;
use crate::route::Route;
use arena_core::balance::{report, InFlight};

/// Hedge delay of a `pNN` route before it has enough latency samples.
const PERCENTILE_FALLBACK: Duration = Duration::from_millis(50);

/// Connection pool for hedged tries (separate from the proxy loop's pool).
pub struct Hedger {
    connector: Arc<Connector>,
}

impl Hedger {
    pub fn new(pool_size: usize) -> Self {
        Hedger {
            connector: Arc::new(Connector::new(Some(ConnectorOptions::new(pool_size)))),
        }
    }
}

/// One try in flight: its pod, peer and in-flight slot.
struct Try {
    addr: SocketAddr,
    peer: HttpPeer,
    guard: Option<InFlight>,
    started: Instant,
}

/// How long to wait before hedging, or `None` to not hedge this request.
pub fn hedge_delay(spec: &HedgeSpec, route: &Route) -> Option<Duration> {
    match spec.after {
        HedgeAfter::Fixed(d) => Some(d),
        // Until the route has a latency history (after start or a reload), hedge after a
        // fixed delay rather than not at all: a stuck pod must not cost a whole timeout.
        HedgeAfter::Percentile(_) => Some(
            route
                .latency
                .as_ref()
                .and_then(|w| w.current())
                .map_or(PERCENTILE_FALLBACK, |d| d.max(Duration::from_millis(1))),
        ),
    }
}

async fn one_try(
    connector: Arc<Connector>,
    peer: HttpPeer,
    req: RequestHeader,
    per_try: Duration,
) -> pingora::Result<HttpSession> {
    let work = async {
        let (mut s, _reused) = connector.get_http_session(&peer).await?;
        s.set_read_timeout(Some(per_try));
        s.set_write_timeout(Some(per_try));
        s.write_request_header(Box::new(req)).await?;
        s.finish_request_body().await?;
        s.read_response_header().await?;
        Ok(s)
    };
    match tokio::time::timeout(per_try, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::explain(ErrorType::ReadTimedout, "try exceeded per_try_timeout")),
    }
}

impl ArenaProxy {
    /// The request to send to pods: the client's, with the gateway's headers added.
    fn upstream_request(session: &Session, ctx: &RequestCtx) -> pingora::Result<RequestHeader> {
        let mut req = session.req_header().clone();
        req.set_version(http::Version::HTTP_11);
        if !req.headers.contains_key(http::header::HOST) {
            if let Some(a) = req.uri.authority().map(|a| a.as_str().to_string()) {
                req.insert_header(http::header::HOST, a)?;
            }
        }
        super::add_forwarding_headers(&mut req, ctx)?;
        Ok(req)
    }

    /// Picks a pod not tried yet and starts a try on it.
    fn launch(
        &self,
        set: &mut JoinSet<(usize, pingora::Result<HttpSession>)>,
        tries: &mut Vec<Try>,
        ctx: &mut RequestCtx,
        route: &Route,
        req: &RequestHeader,
    ) -> bool {
        let cluster = &route.cluster;
        let remaining = ctx
            .deadline
            .map_or(route.spec.timeout, |d| d.saturating_duration_since(Instant::now()));
        if remaining.is_zero() || cluster.circuit_open() {
            return false;
        }
        let tried = &ctx.tried;
        let Some(ep) = with_rng(|rng| cluster.pick(ctx.hash_key.as_deref(), |e| !tried.contains(&e.addr), rng)) else {
            return false;
        };
        let spec = &cluster.spec;
        let per_try = spec.per_try_timeout.map_or(remaining, |p| p.min(remaining));
        let mut peer = HttpPeer::new(ep.addr, false, String::new());
        peer.options.connection_timeout = Some(spec.connect_timeout.min(per_try));
        peer.options.total_connection_timeout = Some(spec.connect_timeout.min(per_try));
        peer.options.idle_timeout = spec.idle_timeout;
        ctx.attempts += 1;
        ctx.tried.push(ep.addr);
        ctx.pod = Some(ep.addr);
        let idx = tries.len();
        tries.push(Try {
            addr: ep.addr,
            peer: peer.clone(),
            guard: Some(cluster.start(&ep)),
            started: Instant::now(),
        });
        let connector = Arc::clone(&self.hedger.connector);
        let req = req.clone();
        set.spawn(async move { (idx, one_try(connector, peer, req, per_try).await) });
        true
    }

    /// Serves a hedged request completely. Always answers the client (or fails writing to it).
    pub(super) async fn serve_hedged(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: Arc<Route>,
        spec: HedgeSpec,
    ) -> pingora::Result<bool> {
        let req = Self::upstream_request(session, ctx)?;
        let delay = hedge_delay(&spec, &route);
        let deadline = ctx.deadline.unwrap_or_else(|| Instant::now() + route.spec.timeout);
        let mut set = JoinSet::new();
        let mut tries: Vec<Try> = Vec::new();
        let mut extra = 0u32;
        let mut failure: Option<GatewayError> = None;
        let mut server_error: Option<(usize, HttpSession)> = None;
        let mut winner: Option<(usize, HttpSession)> = None;
        let name = route.spec.name.clone();

        if !self.launch(&mut set, &mut tries, ctx, &route, &req) {
            failure = Some(GatewayError::NoEndpoints {
                cluster: route.cluster.name().to_string(),
            });
        }
        let mut last_launch = Instant::now();
        while !set.is_empty() {
            let hedge_at = match delay {
                Some(d) if extra < spec.max_extra => last_launch + d,
                _ => deadline,
            };
            tokio::select! {
                joined = set.join_next() => {
                    let Some(Ok((idx, result))) = joined else { continue };
                    let t = &mut tries[idx];
                    match result {
                        Ok(s) if s.response_header().is_some_and(|h| !h.status.is_server_error()) => {
                            winner = Some((idx, s));
                            break;
                        }
                        Ok(s) => {
                            let status = s.response_header().map_or(502, |h| h.status.as_u16());
                            failure = Some(GatewayError::BadStatus { pod: Some(t.addr), status });
                            server_error = Some((idx, s));
                            if set.is_empty() && self.retry_allowed(session, ctx, RetryOn::Status5xx) {
                                self.launch(&mut set, &mut tries, ctx, &route, &req);
                            }
                        }
                        Err(e) => {
                            if let Some(g) = t.guard.take() {
                                route.cluster.finish(g, false, None);
                            }
                            let cause = attempt::cause_of(&e);
                            failure = Some(GatewayError::from_pingora(&e.into_up(), Some(t.addr)));
                            if set.is_empty() && self.retry_allowed(session, ctx, cause) {
                                self.launch(&mut set, &mut tries, ctx, &route, &req);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(hedge_at), if hedge_at < deadline => {
                    extra += 1;
                    let budget_ok = route.budget.as_ref().is_none_or(|b| b.try_retry());
                    if budget_ok && self.launch(&mut set, &mut tries, ctx, &route, &req) {
                        self.gw.metrics.hedges.with_label_values(&[name.as_str(), "launched"]).inc();
                        last_launch = Instant::now();
                    } else {
                        extra = spec.max_extra;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    failure = Some(GatewayError::UpstreamTimeout { pod: ctx.pod });
                    break;
                }
            }
        }
        // Cancel the losers. A try that started before the winner and still had not answered
        // was slower than a whole request elsewhere: count it against its pod (a stuck pod
        // gets ejected this way even though hedging hides it from clients).
        set.abort_all();
        let winner_started = winner.as_ref().map(|(w, _)| tries[*w].started);
        for (i, t) in tries.iter_mut().enumerate() {
            if winner.as_ref().is_some_and(|(w, _)| *w == i) {
                continue;
            }
            if let Some(g) = t.guard.take() {
                if winner_started.is_none_or(|ws| t.started <= ws) {
                    route.cluster.finish(g, false, None);
                }
            }
        }
        match (winner, server_error) {
            (Some((idx, s)), _) => {
                if idx > 0 {
                    self.gw.metrics.hedges.with_label_values(&[name.as_str(), "won"]).inc();
                }
                self.relay(session, ctx, &route, idx, &mut tries, s).await
            }
            (None, Some((idx, s))) if !super::wants_fallback(&route) => {
                self.relay(session, ctx, &route, idx, &mut tries, s).await
            }
            _ => {
                let err = failure.unwrap_or(GatewayError::UpstreamTimeout { pod: ctx.pod });
                self.answer_failure(session, ctx, err).await;
                Ok(true)
            }
        }
    }

    /// Streams the chosen try's answer to the client and returns its connection to the pool.
    async fn relay(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        idx: usize,
        tries: &mut [Try],
        mut s: HttpSession,
    ) -> pingora::Result<bool> {
        let t = &mut tries[idx];
        let mut header: ResponseHeader = match s.response_header() {
            Some(h) => h.clone(),
            None => {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "hedged try without a response header",
                ))
            }
        };
        let rep = header
            .headers
            .get(report::HEADER)
            .and_then(|v| report::parse(v.as_bytes()));
        header.remove_header(report::HEADER);
        ctx.pod = Some(t.addr);
        let ok = !header.status.is_server_error();
        if ok {
            if let Some(w) = &route.latency {
                w.record(t.started.elapsed());
            }
        }
        if let Some(g) = t.guard.take() {
            route.cluster.finish(g, ok, rep);
        }
        self.response_headers(&mut header, ctx)?;
        session.write_response_header(Box::new(header), false).await?;
        while let Some(chunk) = s.read_response_body().await? {
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await?;
        if s.response_done() {
            self.hedger
                .connector
                .release_http_session(s, &t.peer, t.peer.options.idle_timeout)
                .await;
        }
        Ok(true)
    }
}
