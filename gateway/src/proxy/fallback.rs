//! Glue for the FaaS fallback: when to divert before trying pods, gathering the request for
//! replay, and writing the function's answer to the client.

use std::time::Instant as StdInstant;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use rand::Rng;

use super::attempt::FaasReason;
use super::RequestCtx;
use crate::config::FallbackOn;
use crate::faas::{is_hop_header, FaasError, FaasRequest, Function};
use crate::metrics::Metrics;
use crate::route::Route;

/// Whether to send the request to the function before any pod is tried.
pub fn divert<R: Rng>(route: &Route, rng: &mut R) -> Option<FaasReason> {
    let f = route.spec.fallback.as_ref()?;
    route.fallback.as_ref()?;
    let cluster = &route.cluster;
    if f.on(FallbackOn::NoHealthyPods) && !cluster.has_available() {
        return Some(FaasReason::NoHealthyPods);
    }
    if f.on(FallbackOn::CircuitOpen) && cluster.circuit_open() {
        return Some(FaasReason::CircuitOpen);
    }
    if f.spillover_above_load.is_some_and(|t| cluster.all_busier_than(t)) {
        return Some(FaasReason::Spillover);
    }
    if f.warm_share > 0.0 && rng.random::<f64>() < f.warm_share {
        return Some(FaasReason::Warm);
    }
    None
}

/// Declared body length: `Some(0)` for requests without a body, `None` when unknown (chunked).
pub fn declared_body_len(session: &mut Session) -> Option<usize> {
    let headers = &session.req_header().headers;
    match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()),
        // HTTP/1: neither Content-Length nor Transfer-Encoding means no body (RFC 9112 §6.3).
        None if session.as_http1().is_some() && !headers.contains_key(http::header::TRANSFER_ENCODING) => Some(0),
        None => session.as_mut().is_body_empty().then_some(0),
    }
}

/// Reads the whole request body into pingora's retry buffer (so pods can still be tried
/// afterwards) and returns it; `None` when it is larger than `limit`.
pub async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    session.as_mut().enable_retry_buffering();
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// The request as received, ready for a function.
pub fn faas_request(session: &Session, ctx: &RequestCtx, body: Bytes) -> FaasRequest {
    let req = session.req_header();
    FaasRequest {
        method: req.method.clone(),
        path_and_query: req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: req.headers.clone(),
        body,
        client_ip: ctx.client_ip,
        request_id: ctx.rid().to_string(),
    }
}

/// Invokes the function and, on success, answers the client with its response.
pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    function: &Function,
    reason: FaasReason,
    body: Bytes,
    metrics: &Metrics,
    debug: bool,
) -> std::result::Result<(), FaasError> {
    let req = faas_request(session, ctx, body);
    let t0 = StdInstant::now();
    let result = function.invoke(&req).await;
    metrics
        .faas_duration
        .with_label_values(&[function.name()])
        .observe(t0.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    metrics
        .faas_requests
        .with_label_values(&[function.name(), reason.as_str(), outcome])
        .inc();
    let resp = result?;
    let write = async {
        let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 5))?;
        for (k, v) in &resp.headers {
            if !is_hop_header(k.as_str()) && k.as_str() != super::report::HEADER {
                h.append_header(k.clone(), v.clone())?;
            }
        }
        h.insert_header(http::header::CONTENT_LENGTH, resp.body.len().to_string())?;
        h.insert_header("x-request-id", ctx.request_id.clone())?;
        if debug {
            h.insert_header("x-arena-backend", format!("faas={}", function.name()))?;
            if let Some(route) = &ctx.route {
                h.insert_header("x-arena-route", route.spec.name.as_str())?;
            }
            h.insert_header("x-arena-attempts", ctx.attempts.to_string())?;
        }
        if ctx.closing {
            // pingora writes `Connection` itself from the session's keep-alive setting.
            session.as_mut().set_keepalive(None);
        }
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(resp.body.clone()), true).await
    };
    ctx.served_by = Some(function.name().into());
    if let Err(e) = write.await {
        // The client went away; the function did its job.
        tracing::debug!(error = %e, "writing the function's answer failed");
    }
    Ok(())
}
