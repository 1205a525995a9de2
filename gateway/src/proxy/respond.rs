//! Respond: the headers the gateway adds to every answer (request id, debug headers), error
//! answers, and the end of a request — its metrics and its access-log line.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::access_log::{self, AccessLog};
use super::ctx::RequestCtx;
use super::error::{GatewayError, Side};
use super::X_REQUEST_ID;
use crate::admin::live::Live;
use crate::metrics::Metrics;

/// Who answered, for the `x-arena-backend` debug header.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    Pod(SocketAddr),
    Function(&'a str),
    /// The gateway itself, after the tries (an error answer).
    Gateway,
    /// The gateway itself, before any try (an early rejection).
    Rejected,
}

/// The `x-arena-*` debug headers, when the config turns them on: who answered, the route, how
/// many pods were tried. One place for pod, function and error answers alike.
pub fn debug_headers(h: &mut ResponseHeader, ctx: &RequestCtx, backend: Backend<'_>) -> Result<()> {
    if !ctx.debug() {
        return Ok(());
    }
    match backend {
        Backend::Pod(pod) => h.insert_header("x-arena-backend", pod.to_string())?,
        Backend::Function(name) => h.insert_header("x-arena-backend", format!("faas={name}"))?,
        Backend::Gateway | Backend::Rejected => {}
    }
    if let Some(route) = ctx.route_name() {
        h.insert_header("x-arena-route", route)?;
    }
    if let Some((release, version)) = ctx.release_version() {
        h.insert_header("x-arena-release", format!("{release}={}", version.as_str()))?;
    }
    if !matches!(backend, Backend::Rejected) {
        h.insert_header("x-arena-attempts", ctx.attempts().to_string())?;
    }
    Ok(())
}

/// Headers added to an answer from a pod. The id is echoed to clients that sent one (or when
/// debugging); skipping it otherwise saves a header insert on every successful answer.
pub fn pod_headers(h: &mut ResponseHeader, ctx: &RequestCtx, pod: Option<SocketAddr>) -> Result<()> {
    if ctx.id.from_client || ctx.debug() {
        // a pod's answer keeps no header case: a `HeaderName` goes in as is (pingora patch 6)
        h.insert_header(&X_REQUEST_ID, ctx.id.value.clone())?;
    }
    let backend = pod.map_or(Backend::Gateway, Backend::Pod);
    debug_headers(h, ctx, backend)
}

/// Writes `err` as the answer, unless an answer was already started. `reusable`: the client's
/// connection may carry the next request (else it is told to close).
pub async fn error(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError, reusable: bool) {
    if matches!(err, GatewayError::FallbackFailed { .. }) {
        // pingora's own line for this request names the pods' failure only.
        tracing::warn!(request_id = ctx.rid(), detail = %err, "fallback failed");
    }
    if session.response_written().is_none() {
        if let Ok((mut header, body)) = err.render(ctx.rid()) {
            if !reusable {
                // pingora writes `Connection` itself from the session's keep-alive setting.
                session.as_mut().set_keepalive(None);
            }
            let _ = debug_headers(&mut header, ctx, Backend::Gateway);
            if session.write_response_header(Box::new(header), false).await.is_ok() {
                let _ = session.write_response_body(Some(body), true).await;
            }
        }
    }
    ctx.outcome.error = Some(Box::new(err));
}

/// Whether the client's connection can carry its next request after a failed one: only when
/// its request was read whole and it did nothing wrong. Closing after every upstream failure
/// would turn one bad pod into a reconnect storm.
pub fn reusable_after(err: &GatewayError, ctx: &RequestCtx, body_done: bool) -> bool {
    !ctx.outcome.closing && err.side() != Side::Client && body_done
}

/// Answers the client directly with `err` before any pod was tried; always `Ok(true)` (the
/// request is done) unless writing fails.
pub async fn reject(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) -> Result<bool> {
    let (mut header, body) = err.render(ctx.rid())?;
    debug_headers(&mut header, ctx, Backend::Rejected)?;
    if err.side() == Side::Client && !matches!(err, GatewayError::NoRoute | GatewayError::RateLimited { .. }) {
        // The rest of the request may be unread: do not reuse the connection.
        session.as_mut().set_keepalive(None);
    }
    ctx.outcome.error = Some(Box::new(err));
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}

/// The end of a request: its metrics, its access-log line when the policy wants one, and for
/// a 5xx or unanswered request that line in the admin UI's recent errors too.
pub fn finish(session: &Session, ctx: &RequestCtx, metrics: &Metrics, log: Option<&AccessLog>, live: &Live) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let elapsed = ctx.started.elapsed();
    match &ctx.routed {
        Some(r) => {
            r.route.metrics.record(status, elapsed.as_secs_f64());
            if let (Some(rel), Some(v)) = (&r.route.release, r.served_version()) {
                rel.metrics.record(v, status, elapsed.as_secs_f64());
            }
        }
        None => {
            let reason = ctx.outcome.error.as_deref().map_or("client_closed", GatewayError::code);
            metrics.unrouted.with_label_values(&[reason]).inc();
        }
    }
    let error = status == 0 || status >= 500;
    let logged = match (log, &ctx.snapshot.config.access_log) {
        (Some(log), Some(spec)) if access_log::wanted(spec, status, elapsed, rand::random::<f64>) => Some(log),
        _ => None,
    };
    if logged.is_none() && !error {
        return;
    }
    let line = log_line(session, ctx, status, elapsed);
    match logged {
        Some(log) if error => {
            live.error_line(line.clone());
            log.write(line);
        }
        Some(log) => log.write(line),
        None => live.error_line(line),
    }
}

/// The access-log line of a finished request.
fn log_line(session: &Session, ctx: &RequestCtx, status: u16, elapsed: Duration) -> String {
    let req = session.req_header();
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or_default();
    let route = ctx.routed.as_ref().map(|r| &r.route.spec);
    let detail = ctx.outcome.error.as_deref().map(GatewayError::to_string);
    let release = ctx.release_version();
    let line = access_log::Line {
        ts: access_log::Line::now(),
        request_id: ctx.rid(),
        client_ip: ctx.client_ip,
        method: req.method.as_str(),
        host: access_log::clip(host),
        path: access_log::clip(req.uri.path_and_query().map_or("/", |p| p.as_str())),
        status,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        route: route.map(|r| r.name.as_str()),
        cluster: ctx.routed.as_ref().map(|r| r.cluster_of(r.served_version()).name()),
        release: release.map(|(name, _)| name),
        version: release.map(|(_, v)| v.as_str()),
        backend: access_log::Line::backend(ctx.outcome.served_by.as_deref(), ctx.last_pod()),
        attempts: ctx.attempts(),
        error: ctx.outcome.error.as_deref().map(GatewayError::code),
        detail: detail.as_deref().map(access_log::clip),
    };
    line.to_json()
}
