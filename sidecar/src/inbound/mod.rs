//! The inbound proxy (pod port → the app on loopback), in request order:
//!
//! admit (the app's state of [`crate::health`], then the [`limit`]er: a slot, a place in the
//! queue, or a shed answer) → forward (one fixed peer, the request timeout from the moment it
//! is forwarded; the body's first bytes tapped for [`capture`]) → answer (the merged load
//! [`report`] on every response) → end (the latency to the limit algorithm; a cut request to
//! the capture ring and the stuck counter).
//!
//! This file maps pingora's callbacks onto those steps; [`respond`] writes the sidecar's own
//! answers. No retries happen here (the gateway decides those), except pingora's replay of a
//! request whose pooled connection turned out to be closed before anything was sent.

pub mod capture;
pub mod limit;
pub mod report;
pub mod respond;

use std::sync::Arc;
use std::time::Duration;

use arena_core::balance::report::{HEADER, HEADER_NAME};
use arena_gateway::listener::guard::ClientStream;
use arena_gateway::proxy::RequestIds;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use tokio::time::Instant;

use arena_gateway::proxy::trace::{self, RequestTrace, TryKind};

use crate::config::{CaptureSpec, Config};
use crate::health::Shed;
use crate::state::Sidecar;
use capture::{BodyTap, Cut, Record};
use limit::{Permit, Sample};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long an idle connection to the app stays pooled.
const APP_IDLE: Duration = Duration::from_secs(60);

/// How a request ended, as far as the sidecar is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// The app's whole answer arrived after this long.
    Answered(Duration),
    Shed(Shed),
    TimedOut,
    Failed,
}

/// Per-request state.
pub struct Ctx {
    config: Arc<Config>,
    id: HeaderValue,
    /// The caller sent this id (the gateway always does): the request already carries it.
    id_from_caller: bool,
    permit: Option<Permit>,
    probe: bool,
    forwarded: Option<Instant>,
    deadline: Option<Instant>,
    capture: Option<(Arc<CaptureSpec>, BodyTap)>,
    app_down: bool,
    outcome: Outcome,
    /// The request's trace, when tracing is on: the caller's try is its parent.
    trace: Option<Box<RequestTrace>>,
}

/// The sidecar's inbound proxy logic.
pub struct InboundProxy {
    sc: Arc<Sidecar>,
    ids: RequestIds,
}

impl InboundProxy {
    pub fn new(sc: Arc<Sidecar>) -> Self {
        InboundProxy {
            sc,
            ids: RequestIds::new(),
        }
    }

    /// The load report as of now (`full`: the answer is a shed or the app is stuck). An
    /// answer's own request is done at the app: it does not count as in flight.
    fn own_load(&self, full: bool) -> report::Own {
        let answering = usize::from(!full);
        report::Own {
            in_flight: self.sc.limiter.in_flight().saturating_sub(answering),
            queued: self.sc.limiter.queued(),
            limit: self.sc.limiter.limit(),
            cpu: self.sc.cpu(),
            full: full || self.sc.health.stuck(),
        }
    }

    async fn shed(&self, session: &mut Session, ctx: &mut Ctx, why: Shed) -> Result<bool> {
        ctx.outcome = Outcome::Shed(why);
        self.sc.metrics.shed.with_label_values(&[why.as_str()]).inc();
        let load = report::render(self.own_load(true), None);
        respond::shed(session, why, &ctx.id, load).await?;
        Ok(true)
    }

    /// A request cut at the timeout: counted, captured, and it counts towards "stuck".
    fn timed_out(&self, session: &Session, ctx: &mut Ctx) {
        ctx.outcome = Outcome::TimedOut;
        let now = Instant::now();
        self.sc.metrics.timeouts.inc();
        self.sc.health.on_timeout(now);
        if let Some(p) = ctx.permit.take() {
            p.finish(Sample::TimedOut);
        }
        if let Some((spec, tap)) = &ctx.capture {
            let elapsed = ctx
                .forwarded
                .map_or(Duration::ZERO, |f| now.saturating_duration_since(f));
            let cut = Cut {
                id: ctx.id.to_str().unwrap_or("request"),
                head: session.req_header(),
                body: Some(tap),
                elapsed_ms: elapsed.as_millis() as u64,
                timeout_ms: ctx.config.inbound.request_timeout.as_millis() as u64,
                app: ctx.config.inbound.app.to_string(),
                client: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip().to_string()),
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let record = Record::of(&cut, &spec.redact, now_ms);
            self.sc.captures.submit(Arc::clone(spec), record);
        }
    }
}

/// Ends the span of the forward to the app (when traced), failed with `failure` if given.
fn end_span(ctx: &mut Ctx, failure: Option<&'static str>) {
    if let Some(tr) = ctx.trace.as_deref_mut() {
        tr.end_current(None, failure);
    }
}

impl InboundProxy {
    /// Hands a finished request's trace to the exporter when it is kept (sampled, an error —
    /// sheds and cuts included — or slow).
    fn finish_trace(&self, session: &Session, ctx: &mut Ctx) {
        let (Some(tr), Some(tracer), Some(spec)) = (ctx.trace.take(), &self.sc.tracer, &ctx.config.tracing) else {
            return;
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let error = match ctx.outcome {
            Outcome::Shed(why) => Some(why.as_str()),
            Outcome::TimedOut => Some("app_timeout"),
            Outcome::Failed => Some("error"),
            Outcome::Pending | Outcome::Answered(_) => None,
        };
        let elapsed = std::time::SystemTime::now()
            .duration_since(tr.start)
            .unwrap_or_default();
        if !trace::keep(spec, &tr, status, error.is_some(), elapsed) {
            return;
        }
        let req = session.req_header();
        tracer.submit(arena_gateway::trace::Finished {
            end: std::time::SystemTime::now(),
            method: req.method.as_str().to_string(),
            path: req.uri.path().to_string(),
            status,
            route: Some("inbound".into()),
            release: None,
            served_by: None,
            error,
            request_id: ctx.id.to_str().unwrap_or_default().to_string(),
            client_ip: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            rate_limited: false,
            trace: *tr,
        });
    }
}

fn is_timeout(e: &Error) -> bool {
    matches!(e.etype(), ErrorType::ReadTimedout | ErrorType::WriteTimedout) && e.esource() == &ErrorSource::Upstream
}

fn is_connect_failure(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout | ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError
    )
}

#[async_trait]
impl ProxyHttp for InboundProxy {
    type CTX = Ctx;

    /// No downstream modules: pingora's default builds and runs a disabled (level 0)
    /// response-compression module for every request; nothing here compresses.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            config: self.sc.config(),
            id: HeaderValue::from_static(""),
            id_from_caller: false,
            permit: None,
            probe: false,
            forwarded: None,
            deadline: None,
            capture: None,
            app_down: false,
            outcome: Outcome::Pending,
            trace: None,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let incoming = session.req_header().headers.get(&X_REQUEST_ID);
        ctx.id = self.ids.for_request(incoming);
        ctx.id_from_caller = incoming.is_some_and(|v| *v == ctx.id);
        if let Some(spec) = &ctx.config.tracing {
            ctx.trace = Some(Box::new(trace::begin(
                &session.req_header().headers,
                spec,
                &mut rand::rng(),
            )));
        }
        self.sc.request_arrived();
        if self.sc.is_draining() {
            // Callers move to other pods: each connection closes after its answer.
            session.as_mut().set_keepalive(None);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if self.sc.is_refusing() {
            return self.shed(session, ctx, Shed::Draining).await;
        }
        match self.sc.health.admit() {
            Ok(probe) => ctx.probe = probe,
            Err(why) => return self.shed(session, ctx, why).await,
        }
        let waited_from = Instant::now();
        let queued = self.sc.limiter.in_flight() >= self.sc.limiter.limit();
        match self.sc.limiter.acquire().await {
            Ok(p) => ctx.permit = Some(p),
            Err(why) => {
                let shed = match why {
                    limit::Refusal::QueueFull => Shed::QueueFull,
                    limit::Refusal::QueueTimeout => Shed::QueueTimeout,
                };
                return self.shed(session, ctx, shed).await;
            }
        }
        if queued {
            self.sc.metrics.queue_wait.observe(waited_from.elapsed().as_secs_f64());
        }
        if let Some(spec) = self.sc.capture_spec() {
            let tap = BodyTap::new(spec.max_body_bytes);
            ctx.capture = Some((spec, tap));
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _eos: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(chunk), Some((_, tap))) = (body.as_ref(), ctx.capture.as_mut()) {
            tap.push(chunk);
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let inbound = &ctx.config.inbound;
        let now = Instant::now();
        // The timeout runs from the first forward: queue time is not the app's.
        let deadline = *ctx.deadline.get_or_insert(now + inbound.request_timeout);
        ctx.forwarded.get_or_insert(now);
        let remaining = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
        let mut peer = HttpPeer::new(inbound.app, false, String::new());
        peer.options.connection_timeout = Some(inbound.connect_timeout.min(remaining));
        peer.options.read_timeout = Some(remaining);
        peer.options.write_timeout = Some(remaining);
        peer.options.idle_timeout = Some(APP_IDLE);
        peer.options.normalize_header_case = true;
        if let Some(tr) = ctx.trace.as_deref_mut() {
            // A second call replays on a fresh connection a request whose pooled one was closed.
            let kind = if tr.tries.is_empty() {
                TryKind::First
            } else {
                TryKind::Retry
            };
            tr.start_try(inbound.app, kind, None, &mut rand::rng());
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(tr) = ctx.trace.as_deref() {
            if let Some(span) = tr.current() {
                tr.propagate(span, upstream)?;
            }
        }
        if ctx.id_from_caller {
            return Ok(());
        }
        upstream.insert_header(X_REQUEST_ID, ctx.id.clone())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(tr) = ctx.trace.as_deref_mut() {
            if let Some(span) = tr.current() {
                tr.answered(span, upstream.status.as_u16());
            }
        }
        let app = upstream.headers.get(&HEADER_NAME).map(HeaderValue::as_bytes);
        let (value, utilization) = report::render_with_utilization(self.own_load(false), app);
        self.sc.metrics.reported.set(utilization);
        upstream.insert_header(HEADER, value)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        let now = Instant::now();
        if end_of_stream {
            let at_app = ctx
                .forwarded
                .map_or(Duration::ZERO, |f| now.saturating_duration_since(f));
            ctx.outcome = Outcome::Answered(at_app);
        } else if ctx.deadline.is_some_and(|d| now >= d) {
            // An answer trickling past the timeout is cut too: a per-read timeout alone would
            // let one byte per read hold the slot forever.
            return Err(Error::explain(ErrorType::ReadTimedout, "the app's answer ran past request_timeout").into_up());
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.app_down = true;
        e.set_retry(false);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("app {}", peer._address));
        if is_timeout(&e) {
            e.set_retry(false);
        } else {
            // Only a pooled connection the app had closed, with the body still replayable.
            e.retry
                .decide_reuse(client_reused && !session.as_ref().retry_buffer_truncated());
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let status = if is_timeout(e) {
            end_span(ctx, Some("timeout"));
            self.timed_out(session, ctx);
            504
        } else if ctx.app_down || is_connect_failure(e) {
            // Never reached the app: the gateway may send it to another pod.
            let why = Shed::AppUnavailable;
            ctx.outcome = Outcome::Shed(why);
            self.sc.metrics.shed.with_label_values(&[why.as_str()]).inc();
            let load = report::render(self.own_load(true), None);
            if session.response_written().is_none() {
                let _ = respond::shed(session, why, &ctx.id, load).await;
            }
            return FailToProxy {
                error_code: 503,
                can_reuse_downstream: true,
            };
        } else {
            ctx.outcome = Outcome::Failed;
            end_span(ctx, Some("error"));
            match (e.esource(), e.etype()) {
                (ErrorSource::Downstream, ErrorType::ReadTimedout) => 408,
                (ErrorSource::Downstream, _) => 400,
                (_, ErrorType::HTTPStatus(code)) if (400..600).contains(code) => *code,
                (ErrorSource::Internal, _) => 500,
                _ => 502,
            }
        };
        if session.response_written().is_none() {
            respond::error(session, status, &ctx.id).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let m = &self.sc.metrics;
        match ctx.outcome {
            Outcome::Answered(at_app) => {
                self.sc.health.on_answer();
                m.outcomes.ok.inc();
                m.duration.observe(at_app.as_secs_f64());
                if let Some(p) = ctx.permit.take() {
                    p.finish(Sample::Answered(at_app));
                }
            }
            Outcome::TimedOut => m.outcomes.timeout.inc(),
            Outcome::Shed(_) => m.outcomes.shed.inc(),
            Outcome::Pending | Outcome::Failed => m.outcomes.error.inc(),
        }
        // Whatever else happened (the caller left mid-answer), the slot is free now.
        if let Some(p) = ctx.permit.take() {
            p.finish(Sample::Ignore);
        }
        if ctx.probe {
            self.sc.health.end_probe();
        }
        if let Some(guard) = session.stream().and_then(ClientStream::of) {
            guard.conn().request_done();
        }
        if ctx.trace.is_some() {
            self.finish_trace(session, ctx);
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _error: &Error) -> bool {
        // Sheds and cuts are counted and logged once, in their own words.
        matches!(ctx.outcome, Outcome::Shed(_) | Outcome::TimedOut)
    }
}
