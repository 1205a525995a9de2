//! Admit: what a request must pass before any pod is tried — the head size limit, no
//! internal headers from the client, a route that matches, the route's rate limit, the body
//! size limit and the cluster's circuit breaker. Each check is a plain function over the
//! request's parts.

use std::net::IpAddr;
use std::sync::Arc;

use arena_core::cluster::Cluster;
use arena_core::config::fields::is_internal_header;
use arena_core::resilience::rate_limit::Decision;
use http::HeaderMap;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::ctx::BodyState;
use super::error::GatewayError;
use crate::config::{ClientLimits, LimitScope};
use crate::listener::guard::ClientStream;
use crate::metrics::Metrics;
use crate::route::{host_of, RequestView, Route};
use crate::state::Snapshot;

/// The connection's part of admission, as each request head arrives: the connection guard
/// learns the head is parsed (its deadline ends; the body and the answer are timed per read
/// and per write from here), a connection past `max_connection_duration` — or of a draining
/// gateway — closes after this answer, and pipelined requests are answered in order.
pub fn connection(session: &mut Session, limits: &ClientLimits, draining: bool) {
    let mut over_age = false;
    if let Some(guard) = session.stream().and_then(ClientStream::of) {
        let conn = guard.conn();
        conn.head_parsed();
        over_age = conn.retiring();
    }
    if draining || over_age {
        // This answer says `connection: close`: the client reconnects (elsewhere, if leaving).
        session.set_keepalive(None);
    }
    let s = session.as_mut();
    s.set_read_timeout(Some(limits.body_timeout));
    s.set_write_timeout(Some(limits.send_timeout));
    s.set_pipelining_enabled(true);
}

/// Drops every `x-arena-*` header a client sent, before routing and forwarding: they are the
/// gateway's own signals (its debug answers, its internal ones), so a client can neither fake
/// one towards a pod, a hedged try or a function, nor steer a route with it. One scan of the
/// names; removing (and cloning a name, a refcount) only when one is there.
pub fn internal_headers(req: &mut RequestHeader) {
    while let Some(name) = req.headers.keys().find(|k| is_internal_header(k.as_str())).cloned() {
        req.remove_header(&name);
    }
}

/// Size of the request head: what arrived on the wire for HTTP/1 (free), else an estimate.
pub fn head_size(session: &Session) -> usize {
    match session.as_http1() {
        Some(h1) => h1.get_headers_raw_bytes().len(),
        None => header_bytes(session.req_header()),
    }
}

/// Request line plus every header as it would be written.
pub fn header_bytes(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.raw_path().len() + 12;
    req.headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// 431 when the head is over `limit`.
pub fn check_head(size: usize, limit: usize) -> Result<(), GatewayError> {
    if size > limit {
        return Err(GatewayError::HeadersTooLarge { limit });
    }
    Ok(())
}

/// The first route (in file order) whose match holds.
pub fn find_route(snapshot: &Snapshot, req: &RequestHeader) -> Option<Arc<Route>> {
    let view = RequestView {
        method: &req.method,
        // Extracting the host costs a header lookup: only when some route matches on it.
        host: if snapshot.routes.uses_host() {
            host_of(&req.headers, &req.uri)
        } else {
            ""
        },
        path: req.uri.path(),
        headers: &req.headers,
    };
    snapshot.routes.find(&view).cloned()
}

/// The route's rate limit for this client: 429 when its key has no token left.
pub async fn rate_limit(
    route: &Route,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
    snapshot: &Snapshot,
    metrics: &Metrics,
) -> Result<(), GatewayError> {
    let Some(limit) = &route.limit else { return Ok(()) };
    let key = limit.key(client_ip, headers);
    let shared = limit.spec.scope == LimitScope::Cluster;
    let decision = match (shared, snapshot.redis.as_deref()) {
        // Only the shared limit talks to Redis; keep its big future off the hot path.
        (true, Some(redis)) => Box::pin(limit.check(key, Some(redis))).await,
        _ => limit.check_local(key),
    };
    let Decision::Deny { retry_after } = decision else {
        return Ok(());
    };
    let scope = if shared { "cluster" } else { "local" };
    metrics
        .rate_limited
        .with_label_values(&[route.spec.name.as_str(), scope])
        .inc();
    Err(GatewayError::RateLimited {
        retry_after,
        limit: limit.spec.requests_per_second,
    })
}

/// Declared body length: `Some(0)` for requests without a body, `None` when unknown (chunked).
pub fn declared_body_len(session: &mut Session) -> Option<usize> {
    let http1 = session.as_http1().is_some();
    let headers = &session.req_header().headers;
    match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()),
        // HTTP/1: neither Content-Length nor Transfer-Encoding means no body (RFC 9112 §6.3).
        None if http1 && !headers.contains_key(http::header::TRANSFER_ENCODING) => Some(0),
        None => session.as_mut().is_body_empty().then_some(0),
    }
}

/// What the declared length says about the body: 413 over `limit`, not replayable over the
/// route's replay buffer.
pub fn body(declared: Option<usize>, limit: usize, replay_buffer: usize) -> Result<BodyState, GatewayError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    Ok(BodyState {
        bytes: 0,
        empty: declared == Some(0),
        too_big_to_replay: declared.is_some_and(|n| n > replay_buffer),
    })
}

/// Counts a body chunk as it arrives (the declared length may be absent or a lie).
pub fn body_chunk(body: &mut BodyState, len: usize, limit: usize, replay_buffer: usize) -> Result<(), GatewayError> {
    body.bytes += len;
    if body.bytes > limit {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    if body.bytes > replay_buffer {
        body.too_big_to_replay = true;
    }
    Ok(())
}

/// Fail fast (503) while the cluster the request goes to is at `max_in_flight`, before
/// anything else is read.
pub fn circuit(cluster: &Cluster) -> Result<(), GatewayError> {
    if cluster.circuit_open() {
        return Err(GatewayError::CircuitOpen {
            cluster: cluster.name().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;
