//! The pingora `ProxyHttp` implementation: thin glue that walks a request through
//! route match → rate limit → (FaaS diversion) → pick → attempt (timeouts, retries) →
//! (FaaS fallback) → response, calling plain modules for every decision.

pub mod access_log;
pub mod attempt;
mod fallback;
mod hedge;
mod request_id;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::config::{HashKey, LbKind, LimitScope, RetryOn};
use crate::error::{Blame, GatewayError};
use crate::route::{host_of, RequestView, Route};
use crate::state::{Gateway, Snapshot};
use arena_core::balance::{report, InFlight};
use arena_core::resilience::rate_limit::Decision;
use attempt::{FaasReason, TryState};

pub use request_id::RequestIds;

// Pre-parsed names for lookups (inserts use `&'static str`, which pingora handles cheapest).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's IP as a header value, IPv4 formatted by hand (the common case, hot path).
fn ip_header_value(ip: IpAddr) -> Option<HeaderValue> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + (octet / 10) % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            HeaderValue::from_bytes(&buf[..n]).ok()
        }
        IpAddr::V6(_) => HeaderValue::from_str(&ip.to_string()).ok(),
    }
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

fn with_rng<T>(f: impl FnOnce(&mut SmallRng) -> T) -> T {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// Per-request state shared across the proxy phases.
pub struct RequestCtx {
    started: Instant,
    /// `x-request-id`, kept as a header value and cloned cheaply wherever it is needed.
    request_id: HeaderValue,
    /// The client sent its own `x-request-id` (so the answer echoes it).
    client_sent_id: bool,
    client_ip: Option<IpAddr>,
    snapshot: Option<Arc<Snapshot>>,
    route: Option<Arc<Route>>,
    deadline: Option<Instant>,
    attempts: u32,
    /// Pods tried so far (inline: no allocation for the usual one to three tries).
    tried: SmallVec<[SocketAddr; 2]>,
    inflight: Option<InFlight>,
    pod: Option<SocketAddr>,
    /// Boxed: only consistent-hash routes have one, and the context moves with the request.
    hash_key: Option<Box<[u8]>>,
    /// Boxed: rare, and the context is moved around with every request future.
    error: Option<Box<GatewayError>>,
    body_bytes: usize,
    /// The body did not fit the replay buffer: no retry, no fallback replay.
    body_too_big_to_replay: bool,
    /// A retry already decided in `upstream_response_filter` (5xx), for `error_while_proxy`.
    retry_decided: bool,
    /// Name of the function that answered, when one did.
    served_by: Option<Box<str>>,
    /// The request has no body (no write timeout needed, hedging possible).
    bodyless: bool,
    /// The answer is written from pingora's failure path, after which pingora closes the
    /// client connection whatever we say: tell the client so it does not reuse it.
    closing: bool,
}

impl RequestCtx {
    /// The request id as text (ids are checked to be visible ASCII).
    pub fn rid(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }
}

/// The gateway's proxy logic.
pub struct ArenaProxy {
    gw: Arc<Gateway>,
    ids: RequestIds,
    hedger: hedge::Hedger,
}

/// Adds the headers the gateway sets on every request to a pod.
fn add_forwarding_headers(upstream: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    // `&'static str` names are pingora's cheapest insert: no title-casing, no allocation. A
    // client's own id is already in the copied request: no insert needed.
    if !ctx.client_sent_id {
        upstream.insert_header("x-request-id", ctx.request_id.clone())?;
    }
    if let Some(ip) = ctx.client_ip {
        let xff = match upstream.headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {ip}")).ok(),
            None => ip_header_value(ip),
        };
        if let Some(xff) = xff {
            upstream.insert_header("x-forwarded-for", xff)?;
        }
    }
    Ok(())
}

/// True when the route replays on its function once the pods' tries are spent.
fn wants_fallback(route: &Route) -> bool {
    route.fallback.is_some()
        && route
            .spec
            .fallback
            .as_ref()
            .is_some_and(|f| f.on(crate::config::FallbackOn::RetriesExhausted))
}

impl ArenaProxy {
    pub fn new(gw: Arc<Gateway>) -> Self {
        let pool = gw.snapshot().config.server.upstream_keepalive_pool_size;
        ArenaProxy {
            gw,
            ids: RequestIds::new(),
            hedger: hedge::Hedger::new(pool),
        }
    }

    /// Writes the request's access-log line when the policy wants one.
    fn access_log(&self, session: &Session, ctx: &RequestCtx, status: u16, elapsed: std::time::Duration) {
        let Some(log) = &self.gw.access_log else {
            return;
        };
        let snapshot;
        let config = match &ctx.snapshot {
            Some(s) => &s.config,
            None => {
                snapshot = self.gw.snapshot();
                &snapshot.config
            }
        };
        let Some(spec) = &config.access_log else {
            return;
        };
        if !access_log::wanted(spec, status, elapsed, rand::random::<f64>) {
            return;
        }
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host())
            .unwrap_or_default();
        let line = access_log::Line {
            ts: access_log::Line::now(),
            request_id: ctx.rid(),
            client_ip: ctx.client_ip,
            method: req.method.as_str(),
            host: access_log::clip(host),
            path: access_log::clip(req.uri.path_and_query().map_or("/", |p| p.as_str())),
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            route: ctx.route.as_ref().map(|r| r.spec.name.as_str()),
            cluster: ctx.route.as_ref().map(|r| r.spec.cluster.as_str()),
            backend: access_log::Line::backend(ctx.served_by.as_deref(), ctx.pod),
            attempts: ctx.attempts,
            error: ctx.error.as_deref().map(GatewayError::code),
        };
        log.write(line.to_json());
    }

    /// Headers the gateway adds to every answer from a pod.
    fn response_headers(&self, response: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
        let debug = self.debug_headers(ctx);
        // Echo the id to clients that sent one (or when debugging); error answers always carry
        // it. Skipping it otherwise saves a header insert on every successful answer.
        if ctx.client_sent_id || debug {
            response.insert_header("x-request-id", ctx.request_id.clone())?;
        }
        if debug {
            if let Some(pod) = ctx.pod {
                response.insert_header("x-arena-backend", pod.to_string())?;
            }
            if let Some(route) = &ctx.route {
                response.insert_header("x-arena-route", route.spec.name.as_str())?;
            }
            response.insert_header("x-arena-attempts", ctx.attempts.to_string())?;
        }
        Ok(())
    }

    /// Final answer for a request the pods could not serve: the route's function when the
    /// policy says so, else the classified error. Returns (status, connection reusable).
    async fn answer_failure(&self, session: &mut Session, ctx: &mut RequestCtx, mut err: GatewayError) -> (u16, bool) {
        let fallback = ctx
            .route
            .as_ref()
            .and_then(|r| r.spec.fallback.as_ref().map(|f| (f.clone(), r.fallback.is_some())));
        if let (Some((spec, true)), Some((on, reason)), None) =
            (fallback, attempt::fallback_reason(&err), session.response_written())
        {
            if spec.on(on) {
                match Box::pin(self.try_faas(session, ctx, reason)).await {
                    Ok(()) => {
                        ctx.error = None;
                        let status = session.response_written().map_or(200, |r| r.status.as_u16());
                        return (status, !ctx.closing && session.as_mut().is_body_done());
                    }
                    Err(why) => {
                        err = GatewayError::FallbackFailed {
                            upstream: err.to_string(),
                            faas: why,
                        };
                    }
                }
            }
        }
        let status = err.status();
        // Keep the client's connection when its request was read whole: closing it after every
        // upstream failure would turn one bad pod into a reconnect storm.
        let reusable = !ctx.closing && err.blame() != Blame::Client && session.as_mut().is_body_done();
        if let (None, Ok((mut header, body))) = (session.response_written(), err.render(ctx.rid())) {
            if !reusable {
                // pingora writes `Connection` itself from the session's keep-alive setting.
                session.as_mut().set_keepalive(None);
            }
            if self.debug_headers(ctx) {
                if let Some(route) = &ctx.route {
                    let _ = header.insert_header("x-arena-route", route.spec.name.as_str());
                }
                let _ = header.insert_header("x-arena-attempts", ctx.attempts.to_string());
            }
            if session.write_response_header(Box::new(header), false).await.is_ok() {
                let _ = session.write_response_body(Some(body), true).await;
            }
        }
        ctx.error = Some(Box::new(err));
        (status, reusable)
    }

    /// Answers the client directly with a classified error (no upstream involved).
    async fn reject(&self, session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) -> Result<bool> {
        let (mut header, body) = err.render(ctx.rid())?;
        if self.debug_headers(ctx) {
            if let Some(route) = &ctx.route {
                header.insert_header("x-arena-route", route.spec.name.as_str())?;
            }
        }
        if err.blame() == Blame::Client && !matches!(err, GatewayError::NoRoute | GatewayError::RateLimited { .. }) {
            // The rest of the request may be unread: do not reuse the connection.
            session.as_mut().set_keepalive(None);
        }
        ctx.error = Some(Box::new(err));
        session.write_response_header(Box::new(header), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }

    fn debug_headers(&self, ctx: &RequestCtx) -> bool {
        ctx.snapshot.as_ref().is_some_and(|s| s.config.debug_headers)
    }

    fn fail(ctx: &mut RequestCtx, err: GatewayError) -> Box<Error> {
        let e = err.to_pingora();
        ctx.error = Some(Box::new(err));
        e
    }

    fn try_state(session: &Session, ctx: &RequestCtx) -> TryState {
        let route = ctx.route.as_ref();
        let non_idempotent_ok = route
            .and_then(|r| r.spec.retry.as_ref())
            .is_some_and(|r| r.non_idempotent);
        TryState {
            attempts: ctx.attempts,
            idempotent: session.req_header().method.is_idempotent() || non_idempotent_ok,
            replayable: !ctx.body_too_big_to_replay && !session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
            remaining: ctx.deadline.map_or(std::time::Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            }),
        }
    }

    /// Policy + budget: may this request be tried again after `cause`? Counts the retry.
    fn retry_allowed(&self, session: &Session, ctx: &RequestCtx, cause: RetryOn) -> bool {
        let Some(route) = &ctx.route else { return false };
        let spec = route.spec.retry.as_ref();
        if !attempt::may_retry(spec, cause, &Self::try_state(session, ctx)) {
            return false;
        }
        // With more pods untried, or a retry policy that accepts the same pod again.
        let more_pods = route.cluster.endpoints().active.len() > ctx.tried.len();
        if spec.is_none() && !more_pods {
            return false;
        }
        if let Some(budget) = &route.budget {
            if !budget.try_retry() {
                self.gw
                    .metrics
                    .retries
                    .with_label_values(&[route.spec.name.as_str(), "budget_exhausted"])
                    .inc();
                return false;
            }
        }
        let label = match cause {
            RetryOn::ConnectFailure => "connect_failure",
            RetryOn::Reset => "reset",
            RetryOn::Timeout => "timeout",
            RetryOn::Status5xx => "5xx",
        };
        self.gw
            .metrics
            .retries
            .with_label_values(&[route.spec.name.as_str(), label])
            .inc();
        true
    }

    /// Ends the current try as failed, feeding the balancer and outlier detection.
    fn end_try_failed(ctx: &mut RequestCtx) {
        if let (Some(guard), Some(route)) = (ctx.inflight.take(), ctx.route.as_ref()) {
            route.cluster.finish(guard, false, None);
        }
    }

    /// Replays the request on the route's function for `reason`. `Ok(true)` when it answered.
    async fn try_faas(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        reason: FaasReason,
    ) -> std::result::Result<(), String> {
        let Some(route) = ctx.route.clone() else {
            return Err("no route".into());
        };
        let Some(function) = route.fallback.clone() else {
            return Err("no function".into());
        };
        let limit = route.spec.replay_buffer_bytes;
        let body = if session.as_mut().is_body_done() {
            // Already read (or proxied) in full: pingora's retry buffer holds it.
            match session.as_ref().get_retry_buffer() {
                Some(b) => b,
                None if session.as_mut().is_body_empty() => Bytes::new(),
                None => return Err("request body was not kept for replay".into()),
            }
        } else {
            match fallback::declared_body_len(session) {
                Some(n) if n > limit => return Err(format!("request body of {n} bytes is over the replay buffer")),
                None if reason.pods_can_still_serve() => return Err("body of unknown length is not diverted".into()),
                _ => {}
            }
            let prior = session.as_ref().get_retry_buffer().unwrap_or_default();
            match fallback::read_body(session, limit).await {
                Ok(Some(rest)) if prior.is_empty() => rest,
                Ok(Some(rest)) => [prior, rest].concat().into(),
                Ok(None) => {
                    ctx.body_too_big_to_replay = true;
                    return Err("request body is over the replay buffer".into());
                }
                Err(e) => return Err(format!("reading the request body: {e}")),
            }
        };
        let debug = self.debug_headers(ctx);
        fallback::serve(session, ctx, &function, reason, body, &self.gw.metrics, debug)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Size of the request head as it arrived, for the 431 limit.
/// Size of the request head: what arrived on the wire for HTTP/1 (free), else an estimate.
fn head_size(session: &Session) -> usize {
    match session.as_http1() {
        Some(h1) => h1.get_headers_raw_bytes().len(),
        None => header_bytes(session.req_header()),
    }
}

fn header_bytes(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.raw_path().len() + 12;
    req.headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .next()
}

#[async_trait]
impl ProxyHttp for ArenaProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            client_sent_id: false,
            client_ip: None,
            snapshot: None,
            route: None,
            deadline: None,
            attempts: 0,
            tried: SmallVec::new(),
            inflight: None,
            pod: None,
            hash_key: None,
            error: None,
            body_bytes: 0,
            body_too_big_to_replay: false,
            retry_decided: false,
            served_by: None,
            bodyless: true,
            closing: false,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let incoming = session.req_header().headers.get(&X_REQUEST_ID);
        ctx.request_id = self.ids.for_request(incoming);
        ctx.client_sent_id = incoming.is_some_and(|v| *v == ctx.request_id);
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        if self.gw.is_draining() {
            // Leaving: this answer closes the connection, so the client reconnects elsewhere.
            session.set_keepalive(None);
        }
        let snapshot = self.gw.snapshot();
        let limit = snapshot.config.server.max_request_header_bytes;
        ctx.snapshot = Some(snapshot);
        if head_size(session) > limit {
            return Err(Self::fail(ctx, GatewayError::HeadersTooLarge { limit }));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(snapshot) = ctx.snapshot.clone() else {
            return self
                .reject(session, ctx, GatewayError::Internal("no configuration".into()))
                .await;
        };
        let req = session.req_header();
        let view = RequestView {
            method: &req.method,
            host: if snapshot.routes.uses_host() {
                host_of(&req.headers, &req.uri)
            } else {
                ""
            },
            path: req.uri.path(),
            headers: &req.headers,
        };
        let Some(route) = snapshot.routes.find(&view).cloned() else {
            return self.reject(session, ctx, GatewayError::NoRoute).await;
        };
        ctx.route = Some(Arc::clone(&route));

        if let Some(limit) = &route.limit {
            let key = limit.key(ctx.client_ip, &session.req_header().headers);
            let decision = match (limit.spec.scope, snapshot.redis.as_deref()) {
                // Only the shared limit talks to Redis; keep its big future off the hot path.
                (LimitScope::Cluster, Some(redis)) => Box::pin(limit.check(key, Some(redis))).await,
                _ => limit.check_local(key),
            };
            if let Decision::Deny { retry_after } = decision {
                let scope = if limit.spec.scope == LimitScope::Cluster {
                    "cluster"
                } else {
                    "local"
                };
                self.gw
                    .metrics
                    .rate_limited
                    .with_label_values(&[route.spec.name.as_str(), scope])
                    .inc();
                let err = GatewayError::RateLimited {
                    retry_after,
                    limit: limit.spec.requests_per_second,
                };
                return self.reject(session, ctx, err).await;
            }
        }

        let limit = snapshot.config.server.max_request_body_bytes;
        let declared = fallback::declared_body_len(session);
        if declared.is_some_and(|n| n > limit) {
            return self.reject(session, ctx, GatewayError::BodyTooLarge { limit }).await;
        }
        ctx.body_too_big_to_replay = declared.is_some_and(|n| n > route.spec.replay_buffer_bytes);
        ctx.bodyless = declared == Some(0);

        let req = session.req_header();
        let cluster = &route.cluster.spec;
        if cluster.lb == LbKind::ConsistentHash {
            ctx.hash_key = match &cluster.hash_key {
                Some(HashKey::Header(h)) => req.headers.get(h).map(|v| v.as_bytes().into()),
                Some(HashKey::Cookie(name)) => cookie(&req.headers, name).map(Into::into),
                Some(HashKey::ClientIp) => ctx.client_ip.map(|ip| ip.to_string().into_bytes().into()),
                None => None,
            };
        }
        ctx.deadline = Some(ctx.started + route.spec.timeout);
        if let Some(budget) = &route.budget {
            budget.on_request();
        }

        if let Some(reason) = with_rng(|rng| fallback::divert(&route, rng)) {
            match Box::pin(self.try_faas(session, ctx, reason)).await {
                Ok(()) => return Ok(true),
                Err(why) if reason.pods_can_still_serve() => {
                    tracing::debug!(reason = reason.as_str(), %why, "function did not serve; using pods");
                }
                Err(why) => {
                    let upstream = match reason {
                        FaasReason::CircuitOpen => {
                            format!("cluster `{}` is at its in-flight limit", route.cluster.name())
                        }
                        _ => format!("cluster `{}` has no pod available", route.cluster.name()),
                    };
                    return self
                        .reject(session, ctx, GatewayError::FallbackFailed { upstream, faas: why })
                        .await;
                }
            }
        }
        if route.cluster.circuit_open() {
            let err = GatewayError::CircuitOpen {
                cluster: route.cluster.name().to_string(),
            };
            return self.reject(session, ctx, err).await;
        }
        if let Some(spec) = route.spec.hedge {
            if ctx.bodyless
                && session.req_header().method.is_idempotent()
                && hedge::hedge_delay(&spec, &route).is_some()
            {
                return Box::pin(self.serve_hedged(session, ctx, route, spec)).await;
            }
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len();
            let limit = ctx
                .snapshot
                .as_ref()
                .map_or(usize::MAX, |s| s.config.server.max_request_body_bytes);
            if ctx.body_bytes > limit {
                return Err(Self::fail(ctx, GatewayError::BodyTooLarge { limit }));
            }
            if ctx
                .route
                .as_ref()
                .is_some_and(|r| ctx.body_bytes > r.spec.replay_buffer_bytes)
            {
                ctx.body_too_big_to_replay = true;
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            return Err(Self::fail(
                ctx,
                GatewayError::Internal("upstream_peer without a route".into()),
            ));
        };
        let cluster = &route.cluster;
        if ctx.attempts > 0 {
            if let Some(r) = &route.spec.retry {
                let remaining = ctx
                    .deadline
                    .map_or(r.backoff, |d| d.saturating_duration_since(Instant::now()));
                let pause = with_rng(|rng| attempt::backoff(r.backoff, ctx.attempts, rng)).min(remaining);
                tokio::time::sleep(pause).await;
            }
        }
        let remaining = ctx
            .deadline
            .map_or(route.spec.timeout, |d| d.saturating_duration_since(Instant::now()));
        if remaining.is_zero() {
            return Err(Self::fail(ctx, GatewayError::UpstreamTimeout { pod: ctx.pod }));
        }
        if cluster.circuit_open() {
            let err = GatewayError::CircuitOpen {
                cluster: cluster.name().to_string(),
            };
            return Err(Self::fail(ctx, err));
        }
        let tried = &ctx.tried;
        let key = ctx.hash_key.as_deref();
        let picked = with_rng(|rng| {
            cluster
                .pick(key, |e| !tried.contains(&e.addr), rng)
                // A retry on a cluster whose every pod was tried may go back to one of them.
                .or_else(|| {
                    if tried.is_empty() {
                        None
                    } else {
                        cluster.pick(key, |_| true, rng)
                    }
                })
        });
        let Some(endpoint) = picked else {
            let err = GatewayError::NoEndpoints {
                cluster: cluster.name().to_string(),
            };
            return Err(Self::fail(ctx, err));
        };
        let addr = endpoint.addr;
        ctx.attempts += 1;
        ctx.tried.push(addr);
        ctx.pod = Some(addr);
        ctx.inflight = Some(cluster.start(&endpoint));
        let spec = &cluster.spec;
        // The try's deadline: the per-try timeout, never past the route's total deadline.
        let per_try = spec.per_try_timeout.map_or(remaining, |p| p.min(remaining));
        let mut peer = HttpPeer::new(addr, false, String::new());
        let opts = &mut peer.options;
        opts.connection_timeout = Some(spec.connect_timeout.min(per_try));
        opts.total_connection_timeout = Some(spec.connect_timeout.min(per_try));
        opts.read_timeout = Some(per_try);
        // Each timeout is a timer armed on every read or write: set only those that matter.
        if !ctx.bodyless {
            opts.write_timeout = Some(per_try);
        }
        opts.idle_timeout = spec.idle_timeout;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        add_forwarding_headers(upstream, ctx)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Pod load is internal information: never pass it on to clients.
        let report = match upstream.headers.get(&report::HEADER_NAME) {
            Some(v) => {
                let r = report::parse(v.as_bytes());
                upstream.remove_header(&report::HEADER_NAME);
                r
            }
            None => None,
        };
        let Some(route) = ctx.route.clone() else { return Ok(()) };
        let status = upstream.status.as_u16();
        let failed = upstream.status.is_server_error();
        if let Some(guard) = ctx.inflight.take() {
            if !failed {
                if let Some(w) = &route.latency {
                    w.record(guard.started().elapsed());
                }
            }
            route.cluster.finish(guard, !failed, report);
        }
        if !failed {
            return Ok(());
        }
        if self.retry_allowed(session, ctx, RetryOn::Status5xx) {
            ctx.retry_decided = true;
            let mut e = Error::explain(ErrorType::HTTPStatus(status), "pod answered a server error; retrying");
            e.set_retry(true);
            return Err(e);
        }
        if wants_fallback(&route) {
            // Hand over to fail_to_proxy, which replays the request on the function.
            return Err(Self::fail(ctx, GatewayError::BadStatus { pod: ctx.pod, status }));
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.response_headers(response, ctx)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        Self::end_try_failed(ctx);
        // Nothing reached the pod, so this is safe to retry whatever the method.
        let retry = self.retry_allowed(session, ctx, RetryOn::ConnectFailure);
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        Self::end_try_failed(ctx);
        let mut e = match ctx.pod {
            Some(pod) => e.more_context(format!("pod {pod}")),
            None => e,
        };
        if std::mem::take(&mut ctx.retry_decided) {
            e.set_retry(true);
            return e;
        }
        let cause = attempt::cause_of(&e);
        if cause != RetryOn::Status5xx && self.retry_allowed(session, ctx, cause) {
            e.set_retry(true);
        } else if session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none()
        {
            // A pooled connection the pod had already closed: safe to replay on a fresh one.
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        Self::end_try_failed(ctx);
        ctx.closing = true;
        let err = ctx
            .error
            .as_deref()
            .cloned()
            .unwrap_or_else(|| GatewayError::from_pingora(e, ctx.pod));
        let (error_code, can_reuse_downstream) = Box::pin(self.answer_failure(session, ctx, err)).await;
        FailToProxy {
            error_code,
            can_reuse_downstream,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // Releases the in-flight slot if the client went away mid-attempt.
        ctx.inflight.take();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        match &ctx.route {
            Some(route) => route.metrics.record(status, elapsed.as_secs_f64()),
            None => {
                let reason = ctx.error.as_deref().map_or("client_closed", GatewayError::code);
                self.gw.metrics.unrouted.with_label_values(&[reason]).inc();
            }
        }
        self.access_log(session, ctx, status, elapsed);
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        // Client mistakes are counted in metrics; logging each would let clients flood the log.
        // A request the function served is a success, not an error.
        ctx.served_by.is_some() || ctx.error.as_ref().is_some_and(|e| e.blame() == Blame::Client)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
