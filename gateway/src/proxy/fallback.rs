//! Fall back: when the request goes to the route's function instead of (or after) the pods —
//! diverted before any try ([`divert`]: no healthy pod, circuit open, spillover, warm-up
//! share), or after the tries failed ([`reason_after`]) — gathering the request for replay and
//! writing the function's answer. [`answer_failure`] is the last word on a request the pods
//! could not serve: the function when the policy says so, else the classified error.

use std::time::Instant as StdInstant;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use rand::Rng;

use super::admit::declared_body_len;
use super::ctx::RequestCtx;
use super::error::GatewayError;
use super::random::with_rng;
use super::respond::{self, Backend};
use crate::config::{FallbackOn, RetryOn};
use crate::faas::{is_hop_header, FaasError, FaasRequest, Function};
use crate::metrics::Metrics;
use crate::route::Route;
use arena_core::cluster::Cluster;

/// Why a request goes to the function instead of (or after) the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaasReason {
    RetriesExhausted,
    NoHealthyPods,
    CircuitOpen,
    Spillover,
    Warm,
}

impl FaasReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FaasReason::RetriesExhausted => "retries_exhausted",
            FaasReason::NoHealthyPods => "no_healthy_pods",
            FaasReason::CircuitOpen => "circuit_open",
            FaasReason::Spillover => "spillover",
            FaasReason::Warm => "warm",
        }
    }

    /// Warm-up and spillover traffic may still go to the pods if the function fails.
    pub fn pods_can_still_serve(self) -> bool {
        matches!(self, FaasReason::Spillover | FaasReason::Warm)
    }
}

/// Whether to send the request to the function before any pod is tried.
pub fn divert<R: Rng>(route: &Route, cluster: &Cluster, rng: &mut R) -> Option<FaasReason> {
    let f = route.spec.fallback.as_ref()?;
    route.fallback.as_ref()?;
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

/// The divert stage: sends the request to the route's function before any try when
/// [`divert`] says so. `Some(done)` when the request was answered (by the function, or with
/// the error when no pod could serve it either); `None` to go on to the pods.
pub async fn divert_request(session: &mut Session, ctx: &mut RequestCtx, metrics: &Metrics) -> Option<Result<bool>> {
    let routed = ctx.routed.as_ref()?;
    let (route, cluster) = (
        std::sync::Arc::clone(&routed.route),
        std::sync::Arc::clone(routed.cluster()),
    );
    let reason = with_rng(|rng| divert(&route, &cluster, rng))?;
    match Box::pin(replay(session, ctx, reason, metrics)).await {
        Ok(()) => Some(Ok(true)),
        Err(why) if reason.pods_can_still_serve() => {
            tracing::debug!(reason = reason.as_str(), %why, "function did not serve; using pods");
            None
        }
        Err(why) => {
            let err = diverted_failure(&cluster, reason, why);
            Some(respond::reject(session, ctx, err).await)
        }
    }
}

/// Which fallback trigger a final error corresponds to, if any.
pub fn reason_after(err: &GatewayError) -> Option<(FallbackOn, FaasReason)> {
    match err {
        GatewayError::NoEndpoints { .. } => Some((FallbackOn::NoHealthyPods, FaasReason::NoHealthyPods)),
        GatewayError::CircuitOpen { .. } => Some((FallbackOn::CircuitOpen, FaasReason::CircuitOpen)),
        GatewayError::Unreachable { .. } | GatewayError::UpstreamTimeout { .. } | GatewayError::BadStatus { .. } => {
            Some((FallbackOn::RetriesExhausted, FaasReason::RetriesExhausted))
        }
        _ => None,
    }
}

/// True when the route replays on its function once the pods' tries are spent (so a pod's
/// final 5xx is not passed on).
pub fn after_retries(route: &Route) -> bool {
    route.fallback.is_some()
        && route
            .spec
            .fallback
            .as_ref()
            .is_some_and(|f| f.on(FallbackOn::RetriesExhausted))
}

/// The error for a diverted request whose function failed while no pod could serve it.
pub fn diverted_failure(cluster: &Cluster, reason: FaasReason, why: String) -> GatewayError {
    let upstream = match reason {
        FaasReason::CircuitOpen => format!("cluster `{}` is at its in-flight limit", cluster.name()),
        _ => format!("cluster `{}` has no pod available", cluster.name()),
    };
    GatewayError::FallbackFailed { upstream, faas: why }
}

/// Whether the function may replay a request that failed on the pods for `reason`: a request
/// that may have reached a pod (a timeout, a reset, a 5xx) runs twice if replayed, so only an
/// idempotent one — or one the route opted in (`retry.non_idempotent`) — is; one that never
/// reached a pod (no pod, open circuit, a connect failure) always may be.
pub fn replay_is_safe(reason: FaasReason, idempotent: bool, opted_in: bool, last_cause: Option<RetryOn>) -> bool {
    reason != FaasReason::RetriesExhausted || idempotent || opted_in || last_cause.is_some_and(RetryOn::never_ran)
}

/// Final answer for a request the pods could not serve: the route's function when the policy
/// says so, else the error. Returns (status, the client's connection is reusable).
pub async fn answer_failure(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut err: GatewayError,
    metrics: &Metrics,
) -> (u16, bool) {
    let policy = ctx.routed.as_ref().and_then(|r| {
        r.route
            .spec
            .fallback
            .as_ref()
            .map(|f| (f.clone(), r.route.fallback.is_some()))
    });
    let idempotent = session.req_header().method.is_idempotent();
    let opted_in = ctx
        .routed
        .as_ref()
        .and_then(|r| r.route.spec.retry.as_ref())
        .is_some_and(|r| r.non_idempotent);
    if let (Some((spec, true)), Some((on, reason)), None) = (policy, reason_after(&err), session.response_written()) {
        if spec.on(on) && replay_is_safe(reason, idempotent, opted_in, ctx.outcome.last_cause) {
            match Box::pin(replay(session, ctx, reason, metrics)).await {
                Ok(()) => {
                    ctx.outcome.error = None;
                    let status = session.response_written().map_or(200, |r| r.status.as_u16());
                    return (status, !ctx.outcome.closing && session.as_mut().is_body_done());
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
    let reusable = respond::reusable_after(&err, ctx, session.as_mut().is_body_done());
    respond::error(session, ctx, err, reusable).await;
    (status, reusable)
}

/// Replays the request on the route's function for `reason`; `Ok` when it answered.
pub async fn replay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    reason: FaasReason,
    metrics: &Metrics,
) -> std::result::Result<(), String> {
    let Some(routed) = ctx.routed.as_mut() else {
        return Err("no route".into());
    };
    let Some(function) = routed.route.fallback.clone() else {
        return Err("no function".into());
    };
    let limit = routed.route.spec.replay_buffer_bytes;
    let body = match gather_body(session, limit, reason).await {
        Ok(b) => b,
        Err(Gather::TooBig(why)) => {
            routed.body.too_big_to_replay = true;
            return Err(why);
        }
        Err(Gather::Other(why)) => return Err(why),
    };
    serve(session, ctx, &function, reason, body, metrics)
        .await
        .map_err(|e| e.to_string())
}

enum Gather {
    TooBig(String),
    Other(String),
}

/// The whole request body for a replay, kept in pingora's retry buffer so pods can still be
/// tried afterwards.
async fn gather_body(session: &mut Session, limit: usize, reason: FaasReason) -> std::result::Result<Bytes, Gather> {
    if session.as_mut().is_body_done() {
        // Already read (or proxied) in full: pingora's retry buffer holds it.
        return match session.as_ref().get_retry_buffer() {
            Some(b) => Ok(b),
            None if session.as_mut().is_body_empty() => Ok(Bytes::new()),
            None => Err(Gather::Other("request body was not kept for replay".into())),
        };
    }
    match declared_body_len(session) {
        Some(n) if n > limit => {
            return Err(Gather::Other(format!(
                "request body of {n} bytes is over the replay buffer"
            )))
        }
        None if reason.pods_can_still_serve() => {
            return Err(Gather::Other("body of unknown length is not diverted".into()))
        }
        _ => {}
    }
    let prior = session.as_ref().get_retry_buffer().unwrap_or_default();
    match read_body(session, limit).await {
        Ok(Some(rest)) if prior.is_empty() => Ok(rest),
        Ok(Some(rest)) => Ok([prior, rest].concat().into()),
        Ok(None) => Err(Gather::TooBig("request body is over the replay buffer".into())),
        Err(e) => Err(Gather::Other(format!("reading the request body: {e}"))),
    }
}

/// Reads the whole request body into pingora's retry buffer (so pods can still be tried
/// afterwards) and returns it; `None` when it is larger than `limit`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
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
fn faas_request(session: &Session, ctx: &RequestCtx, body: Bytes) -> FaasRequest {
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
async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    function: &Function,
    reason: FaasReason,
    body: Bytes,
    metrics: &Metrics,
) -> std::result::Result<(), FaasError> {
    let mut req = faas_request(session, ctx, body);
    if let Some(tr) = ctx.trace.as_deref_mut() {
        let span = super::random::with_rng(|rng| tr.start_faas(function.name(), reason.as_str(), rng));
        if let Some(v) = tr.traceparent_value(span) {
            req.headers.insert(super::trace::TRACEPARENT, v);
            req.headers.remove(&super::trace::B3);
        }
    }
    let t0 = StdInstant::now();
    let result = function.invoke(&req).await;
    if let Some(tr) = ctx.trace.as_deref_mut() {
        match &result {
            Ok(r) => tr.end_faas(Some(r.status), None),
            Err(e) => tr.end_faas(None, Some(e.kind())),
        }
    }
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
            if !is_hop_header(k.as_str()) && k.as_str() != arena_core::balance::report::HEADER {
                h.append_header(k.clone(), v.clone())?;
            }
        }
        h.insert_header(http::header::CONTENT_LENGTH, resp.body.len().to_string())?;
        h.insert_header("x-request-id", ctx.id.value.clone())?;
        respond::debug_headers(&mut h, ctx, Backend::Function(function.name()))?;
        if ctx.outcome.closing {
            // pingora writes `Connection` itself from the session's keep-alive setting.
            session.as_mut().set_keepalive(None);
        }
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(resp.body.clone()), true).await
    };
    let written = write.await;
    ctx.outcome.served_by = Some(function.name().into());
    if let Err(e) = written {
        // The client went away; the function did its job.
        tracing::debug!(error = %e, "writing the function's answer failed");
    }
    Ok(())
}

#[cfg(test)]
#[path = "fallback_tests.rs"]
mod tests;
