//! The request path, one module per stage in path order, and the pingora `ProxyHttp` glue
//! that walks a request through them:
//!
//! admit ([`admit`]: head size, route, rate limit, body size, circuit) → split ([`split`]:
//! target cluster and sticky key) → try ([`attempt`]: the one try engine, used by pingora's
//! proxy loop and by [`hedge`]d tries alike; [`retry`] decides each retry; [`classify`](mod@classify) turns
//! every failure into a cause, a side and a status) → fall back ([`fallback`]: FaaS) →
//! respond ([`respond`]: headers, errors, metrics, [`access_log`]).
//!
//! [`ctx`] is the per-request state by phase. This file only maps pingora's callbacks onto
//! the stages; every decision is a plain function in its stage.

pub mod access_log;
pub mod admit;
pub mod attempt;
pub mod classify;
pub mod ctx;
pub mod error;
pub mod fallback;
pub mod hedge;
pub mod peer_tls;
mod random;
mod request_id;
pub mod respond;
pub mod retry;
pub mod split;
#[cfg(test)]
mod testing;
pub mod trace;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};
use tokio::time::Instant;

use crate::config::RetryOn;
use crate::listener::guard::ClientStream;
use crate::state::Gateway;
use access_log::AccessLog;
use classify::{classify, Fault};
use ctx::{RequestCtx, Routed};
use error::{GatewayError, Side};
use hedge::Hedger;
use random::with_rng;
use retry::{TryState, Verdict};

pub use request_id::RequestIds;

/// The request id header: read from the client, set on tries and (when asked) on answers.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The gateway's proxy logic.
pub struct ArenaProxy {
    gw: Arc<Gateway>,
    ids: RequestIds,
    hedger: Hedger,
    access_log: Option<Arc<AccessLog>>,
}

impl ArenaProxy {
    pub fn new(gw: Arc<Gateway>, access_log: Option<Arc<AccessLog>>) -> Self {
        let pool = gw.snapshot().config.server.upstream_keepalive_pool_size;
        ArenaProxy {
            gw,
            ids: RequestIds::new(),
            hedger: Hedger::new(pool),
            access_log,
        }
    }

    /// Records `err` as the request's outcome and returns the pingora error that stops it.
    fn fail(ctx: &mut RequestCtx, err: GatewayError) -> Box<Error> {
        let e = err.to_pingora();
        ctx.outcome.error = Some(Box::new(err));
        e
    }

    /// Ends the span of the try in flight (when traced), failed with `failure` if given.
    fn end_span(ctx: &mut RequestCtx, failure: Option<&'static str>) {
        if let Some(tr) = ctx.trace.as_deref_mut() {
            tr.end_current(None, failure);
        }
    }

    /// Hands a finished request's trace to the exporter when it is kept.
    fn finish_trace(&self, session: &Session, ctx: &mut RequestCtx) {
        let (Some(tr), Some(tracer), Some(spec)) = (ctx.trace.take(), &self.gw.tracer, &ctx.snapshot.config.tracing)
        else {
            return;
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let error = ctx.outcome.error.as_deref();
        let failed = error.is_some_and(|e| e.side() != Side::Client) || tr.tries.iter().any(|t| t.failure.is_some());
        if !trace::keep(spec, &tr, status, failed, ctx.started.elapsed()) {
            return;
        }
        let req = session.req_header();
        tracer.submit(crate::trace::Finished {
            end: std::time::SystemTime::now(),
            method: req.method.as_str().to_string(),
            path: req.uri.path().to_string(),
            status,
            route: ctx.route_name().map(str::to_string),
            release: ctx.release_version().map(|(r, v)| (r.to_string(), v.as_str())),
            served_by: ctx.outcome.served_by.as_deref().map(str::to_string),
            error: error.map(GatewayError::code),
            request_id: ctx.rid().to_string(),
            client_ip: ctx.client_ip,
            rate_limited: matches!(error, Some(GatewayError::RateLimited { .. })),
            trace: *tr,
        });
    }

    /// Retry facts of the request now.
    fn try_state(session: &Session, routed: &Routed) -> TryState {
        let opted_in = routed.route.spec.retry.as_ref().is_some_and(|r| r.non_idempotent);
        TryState {
            attempts: routed.tries.count,
            idempotent: session.req_header().method.is_idempotent() || opted_in,
            replayable: !routed.body.too_big_to_replay && !session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
            remaining: routed.remaining(Instant::now()),
        }
    }

    /// Ends the try in flight with `fault` and decides whether another one follows.
    fn after_failure(session: &Session, ctx: &mut RequestCtx, fault: &Fault) -> Verdict {
        if fault.retry_on.is_some() {
            ctx.outcome.last_cause = fault.retry_on;
        }
        Self::end_span(ctx, Some(fault.retry_on.map_or("error", trace::cause_name)));
        let Some(routed) = ctx.routed.as_mut() else {
            return Verdict::Stop;
        };
        if let Some(t) = routed.tries.current.take() {
            attempt::failed(routed, t, fault);
        }
        match fault.retry_on {
            Some(cause) => retry::decide(routed, cause, &Self::try_state(session, routed)),
            None => Verdict::Stop,
        }
    }
}

#[async_trait]
impl ProxyHttp for ArenaProxy {
    type CTX = RequestCtx;

    /// No downstream modules: pingora's default builds and runs a disabled (level 0)
    /// response-compression module for every request; nothing here compresses.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.gw.snapshot())
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let incoming = session.req_header().headers.get(&X_REQUEST_ID);
        ctx.id.value = self.ids.for_request(incoming);
        ctx.id.from_client = incoming.is_some_and(|v| *v == ctx.id.value);
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        if let Some(spec) = &ctx.snapshot.config.tracing {
            let t = with_rng(|rng| trace::begin(&session.req_header().headers, spec, rng));
            ctx.trace = Some(Box::new(t));
        }
        admit::internal_headers(session.req_header_mut());
        let server = &ctx.snapshot.config.server;
        admit::connection(session, &server.client, self.gw.closes_connections());
        let limit = server.max_request_header_bytes;
        admit::check_head(admit::head_size(session), limit).map_err(|e| Self::fail(ctx, e))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(route) = admit::find_route(&ctx.snapshot, session.req_header()) else {
            return respond::reject(session, ctx, GatewayError::NoRoute).await;
        };
        let target = split::target(&route, &session.req_header().headers, ctx.client_ip);
        ctx.routed = Some(Routed::new(Arc::clone(&route), target, ctx.started));
        if route.limit.is_some() {
            let headers = &session.req_header().headers;
            if let Err(e) = admit::rate_limit(&route, ctx.client_ip, headers, &ctx.snapshot, &self.gw.metrics).await {
                return respond::reject(session, ctx, e).await;
            }
        }
        let limit = ctx.snapshot.config.server.max_request_body_bytes;
        let body = admit::body(admit::declared_body_len(session), limit, route.spec.replay_buffer_bytes);
        let body = match body {
            Ok(b) => b,
            Err(e) => return respond::reject(session, ctx, e).await,
        };
        if let Some(r) = ctx.routed.as_mut() {
            r.body = body;
        }
        if let Some(budget) = &route.budget {
            budget.on_request();
        }
        if route.fallback.is_some() {
            // Boxed: rare, and it would grow every request's future.
            if let Some(done) = Box::pin(fallback::divert_request(session, ctx, &self.gw.metrics)).await {
                return done;
            }
        }
        if let Some(Err(e)) = ctx.routed.as_ref().map(|r| admit::circuit(r.cluster())) {
            return respond::reject(session, ctx, e).await;
        }
        let idempotent = session.req_header().method.is_idempotent();
        let deadline = ctx.routed.as_ref().map_or(ctx.started, |r| r.deadline);
        match hedge::plan(&route, idempotent, body.empty, deadline) {
            Some(plan) => Box::pin(hedge::serve(session, ctx, plan, &self.hedger, &self.gw.metrics)).await,
            None => Ok(false),
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(chunk), Some(routed)) = (body.as_ref(), ctx.routed.as_mut()) else {
            return Ok(());
        };
        let limit = ctx.snapshot.config.server.max_request_body_bytes;
        let replay = routed.route.spec.replay_buffer_bytes;
        admit::body_chunk(&mut routed.body, chunk.len(), limit, replay).map_err(|e| Self::fail(ctx, e))
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let Some(routed) = ctx.routed.as_mut() else {
            return Err(Self::fail(
                ctx,
                GatewayError::Internal("upstream_peer without a route".into()),
            ));
        };
        if routed.tries.count > 0 {
            // A retry: back off first (never past the deadline).
            let retry = routed.route.spec.retry.as_ref();
            let remaining = routed.remaining(Instant::now());
            let pause = with_rng(|rng| retry::pause(retry, routed.tries.count, remaining, rng));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        let started = with_rng(|rng| attempt::start(routed, true, Instant::now(), rng));
        let (t, per_try) = match started {
            Ok(s) => s,
            Err(e) => return Err(Self::fail(ctx, e)),
        };
        let peer = attempt::peer(
            &routed.cluster().spec,
            t.pod(),
            per_try,
            routed.body.empty,
            routed.peer_tls(),
        );
        if let Some(tr) = ctx.trace.as_deref_mut() {
            let kind = match routed.tries.count {
                1 => trace::TryKind::First,
                _ => trace::TryKind::Retry,
            };
            with_rng(|rng| tr.start_try(t.pod(), kind, t.version, rng));
        }
        routed.tries.current = Some(t);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        attempt::forwarding_headers(upstream, &ctx.id, ctx.client_ip)?;
        if let Some(tr) = ctx.trace.as_deref() {
            if let Some(span) = tr.current() {
                tr.propagate(span, upstream)?;
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(routed) = ctx.routed.as_mut() else {
            return Ok(());
        };
        let t = routed.tries.current.take();
        let (status, failed, open) = attempt::answered(routed, t, upstream);
        // A good answer's try stays open until its body ends (see the body filter).
        routed.tries.current = open;
        if let Some(tr) = ctx.trace.as_deref_mut() {
            if let Some(span) = tr.current() {
                match failed {
                    Some(cause) => tr.end_try(span, Some(status), Some(trace::cause_name(cause))),
                    None => tr.answered(span, status),
                }
            }
        }
        let Some(cause) = failed else {
            return Ok(());
        };
        let state = Self::try_state(session, routed);
        // Decided here, where the status is known: a retry means the pod's answer is not
        // passed on. The error's retry flag carries the decision to pingora's loop.
        if retry::decide(routed, cause, &state) == Verdict::Retry {
            let mut e = classify::pod_answered(status);
            e.set_retry(true);
            return Err(e);
        }
        if fallback::after_retries(&routed.route) {
            // Hand over to fail_to_proxy, which replays the request on the function.
            let pod = routed.tries.last_pod();
            ctx.outcome.last_cause = Some(cause);
            return Err(Self::fail(ctx, GatewayError::BadStatus { pod, status }));
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        let Some(routed) = ctx.routed.as_mut() else {
            return Ok(None);
        };
        if end_of_stream {
            // The whole answer is in: the pod's slot is free.
            if routed.tries.current.take().is_some() {
                Self::end_span(ctx, None);
            }
        } else if Instant::now() >= routed.deadline {
            // A pod trickling its answer past the route's deadline is cut, and it is the pod's
            // timeout: the per-read timeout alone would let one byte per read hold it forever.
            let pod = routed.tries.last_pod();
            let err = GatewayError::UpstreamTimeout { pod };
            if let Some(t) = routed.tries.current.take() {
                let fault = classify::Fault {
                    error: err.clone(),
                    retry_on: Some(RetryOn::Timeout),
                };
                attempt::failed(routed, t, &fault);
            }
            Self::end_span(ctx, Some("timeout"));
            return Err(Self::fail(ctx, err));
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        respond::pod_headers(response, ctx, ctx.last_pod())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let fault = classify::connect_failure(&e, ctx.last_pod());
        // Nothing reached the pod: retried whatever the method (the policy knows).
        let verdict = Self::after_failure(session, ctx, &fault);
        e.set_retry(verdict == Verdict::Retry);
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
        let mut e = match ctx.last_pod() {
            Some(pod) => e.more_context(format!("pod {pod}")),
            None => e,
        };
        let fault = classify(&e, ctx.last_pod());
        if fault.retry_on == Some(RetryOn::Status5xx) {
            // A 5xx raised by upstream_response_filter: its retry was decided there.
            return e;
        }
        match Self::after_failure(session, ctx, &fault) {
            Verdict::Retry => e.set_retry(true),
            Verdict::ReplayIfStaleConnection if fault.side() != Side::Client => e.retry.decide_reuse(client_reused),
            _ => e.set_retry(false),
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let fault = classify(e, ctx.last_pod());
        if let Some(routed) = ctx.routed.as_mut() {
            if let Some(t) = routed.tries.current.take() {
                attempt::failed(routed, t, &fault);
                Self::end_span(ctx, Some(fault.retry_on.map_or("error", trace::cause_name)));
            }
        }
        ctx.outcome.closing = true;
        let err = ctx.outcome.error.take().map_or(fault.error, |b| *b);
        let (error_code, can_reuse_downstream) =
            Box::pin(fallback::answer_failure(session, ctx, err, &self.gw.metrics)).await;
        FailToProxy {
            error_code,
            can_reuse_downstream,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // Releases the in-flight slot if the client went away mid-try.
        if let Some(r) = ctx.routed.as_mut() {
            r.tries.current.take();
        }
        if let Some(guard) = session.stream().and_then(ClientStream::of) {
            guard.conn().request_done();
        }
        respond::finish(
            session,
            ctx,
            &self.gw.metrics,
            self.access_log.as_deref(),
            &self.gw.live,
        );
        if ctx.trace.is_some() {
            self.finish_trace(session, ctx);
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        // Client mistakes are counted in metrics; logging each would let clients flood the log.
        // A request the function served is a success, not an error.
        ctx.outcome.served_by.is_some() || ctx.outcome.error.as_ref().is_some_and(|e| e.side() == Side::Client)
    }
}
