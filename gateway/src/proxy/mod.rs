//! The pingora `ProxyHttp` implementation: thin glue that walks a request through
//! route match → cluster → pick → attempt → response, calling the plain modules for each decision.

mod request_id;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::balance::{report, InFlight};
use crate::config::{HashKey, LbKind};
use crate::error::GatewayError;
use crate::route::{host_of, RequestView, Route};
use crate::state::{Gateway, Snapshot};

pub use request_id::RequestIds;

/// Attempts per request for failures that never reached a pod (connect errors).
const MAX_CONNECT_ATTEMPTS: u8 = 3;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// Per-request state shared across the proxy phases.
pub struct RequestCtx {
    started: Instant,
    request_id: String,
    snapshot: Option<Arc<Snapshot>>,
    route: Option<Arc<Route>>,
    deadline: Option<Instant>,
    attempts: u8,
    tried: Vec<SocketAddr>,
    inflight: Option<InFlight>,
    pod: Option<SocketAddr>,
    hash_key: Option<Vec<u8>>,
    error: Option<GatewayError>,
    body_bytes: usize,
}

/// The gateway's proxy logic.
pub struct ArenaProxy {
    gw: Arc<Gateway>,
    ids: RequestIds,
}

impl ArenaProxy {
    pub fn new(gw: Arc<Gateway>) -> Self {
        ArenaProxy {
            gw,
            ids: RequestIds::new(),
        }
    }

    /// Answers the client directly with a classified error (no upstream involved).
    async fn reject(&self, session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) -> Result<bool> {
        let (header, body) = err.render(&ctx.request_id)?;
        ctx.error = Some(err);
        session.write_response_header(Box::new(header), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }

    fn debug_headers(&self, ctx: &RequestCtx) -> bool {
        ctx.snapshot.as_ref().is_some_and(|s| s.config.debug_headers)
    }
}

/// Size of the request head as it arrived, for the 431 limit.
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

fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

#[async_trait]
impl ProxyHttp for ArenaProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            snapshot: None,
            route: None,
            deadline: None,
            attempts: 0,
            tried: Vec::new(),
            inflight: None,
            pod: None,
            hash_key: None,
            error: None,
            body_bytes: 0,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        ctx.request_id = self.ids.for_request(session.req_header().headers.get("x-request-id"));
        let snapshot = self.gw.snapshot();
        let limit = snapshot.config.server.max_request_header_bytes;
        ctx.snapshot = Some(snapshot);
        if header_bytes(session.req_header()) > limit {
            let err = GatewayError::HeadersTooLarge { limit };
            let e = err.to_pingora();
            ctx.error = Some(err);
            return Err(e);
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
            host: host_of(&req.headers, &req.uri),
            path: req.uri.path(),
            headers: &req.headers,
        };
        let Some(route) = snapshot.routes.find(&view).cloned() else {
            return self.reject(session, ctx, GatewayError::NoRoute).await;
        };
        let limit = snapshot.config.server.max_request_body_bytes;
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            ctx.route = Some(route);
            return self.reject(session, ctx, GatewayError::BodyTooLarge { limit }).await;
        }
        let cluster = &route.cluster.spec;
        if cluster.lb == LbKind::ConsistentHash {
            ctx.hash_key = match &cluster.hash_key {
                Some(HashKey::Header(h)) => req.headers.get(h).map(|v| v.as_bytes().to_vec()),
                Some(HashKey::Cookie(name)) => cookie(&req.headers, name).map(<[u8]>::to_vec),
                Some(HashKey::ClientIp) => client_ip(session).map(|ip| ip.to_string().into_bytes()),
                None => None,
            };
        }
        ctx.deadline = Some(ctx.started + route.spec.timeout);
        ctx.route = Some(route);
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
                let err = GatewayError::BodyTooLarge { limit };
                let e = err.to_pingora();
                ctx.error = Some(err);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            let err = GatewayError::Internal("upstream_peer without a route".into());
            let e = err.to_pingora();
            ctx.error = Some(err);
            return Err(e);
        };
        let now = Instant::now();
        let remaining = ctx
            .deadline
            .map_or(route.spec.timeout, |d| d.saturating_duration_since(now));
        if remaining.is_zero() {
            let err = GatewayError::UpstreamTimeout { pod: ctx.pod };
            let e = err.to_pingora();
            ctx.error = Some(err);
            return Err(e);
        }
        let cluster = &route.cluster;
        let tried = &ctx.tried;
        let picked = RNG.with(|r| {
            cluster.pick(
                ctx.hash_key.as_deref(),
                |e| !tried.contains(&e.addr),
                &mut *r.borrow_mut(),
            )
        });
        let Some(endpoint) = picked else {
            let err = GatewayError::NoEndpoints {
                cluster: cluster.name().to_string(),
            };
            let e = err.to_pingora();
            ctx.error = Some(err);
            return Err(e);
        };
        let addr = endpoint.addr;
        ctx.attempts += 1;
        ctx.tried.push(addr);
        ctx.pod = Some(addr);
        ctx.inflight = Some(endpoint.start());
        let spec = &cluster.spec;
        let mut peer = HttpPeer::new(addr, false, String::new());
        let opts = &mut peer.options;
        opts.connection_timeout = Some(spec.connect_timeout.min(remaining));
        opts.total_connection_timeout = Some(spec.connect_timeout.min(remaining));
        opts.read_timeout = Some(remaining);
        opts.write_timeout = Some(remaining);
        opts.idle_timeout = Some(spec.idle_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(ip) = client_ip(session) {
            let xff = match upstream.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let report = upstream
            .headers
            .get(report::HEADER)
            .and_then(|v| report::parse(v.as_bytes()));
        // Pod load is internal information: never pass it on to clients.
        upstream.remove_header(report::HEADER);
        if let (Some(guard), Some(route)) = (ctx.inflight.take(), ctx.route.as_ref()) {
            let tuning = &route.cluster.spec.load;
            if upstream.status.is_server_error() {
                guard.failure(tuning, report);
            } else {
                guard.success(tuning, report);
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response.insert_header("x-request-id", ctx.request_id.as_str())?;
        if self.debug_headers(ctx) {
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

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(guard), Some(route)) = (ctx.inflight.take(), ctx.route.as_ref()) {
            guard.failure(&route.cluster.spec.load, None);
        }
        // Nothing reached the pod, so another pod may take the request whatever its method.
        let more_pods = ctx
            .route
            .as_ref()
            .is_some_and(|r| r.cluster.endpoints().active.len() > ctx.tried.len());
        if ctx.attempts < MAX_CONNECT_ATTEMPTS && more_pods {
            e.set_retry(true);
            if let Some(route) = &ctx.route {
                self.gw
                    .metrics
                    .retries
                    .with_label_values(&[route.spec.name.as_str(), "connect_failure"])
                    .inc();
            }
        }
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
        if let (Some(guard), Some(route)) = (ctx.inflight.take(), ctx.route.as_ref()) {
            guard.failure(&route.cluster.spec.load, None);
        }
        let mut e = match ctx.pod {
            Some(pod) => e.more_context(format!("pod {pod}")),
            None => e,
        };
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            // A pooled connection the pod had already closed: safe to replay on a fresh one.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let err = ctx
            .error
            .clone()
            .unwrap_or_else(|| GatewayError::from_pingora(e, ctx.pod));
        let status = err.status();
        // Keep the client's connection when its request was read whole: closing it after every
        // upstream failure would turn one bad pod into a reconnect storm.
        let reusable = err.blame() != crate::error::Blame::Client && session.as_mut().is_body_done();
        if let (None, Ok((mut header, body))) = (session.response_written(), err.render(&ctx.request_id)) {
            if !reusable {
                let _ = header.insert_header(http::header::CONNECTION, "close");
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
        ctx.error = Some(err);
        FailToProxy {
            error_code: status,
            can_reuse_downstream: reusable,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // Releases the in-flight slot if the client went away mid-attempt.
        ctx.inflight.take();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed().as_secs_f64();
        match &ctx.route {
            Some(route) => route.metrics.record(status, elapsed),
            None => {
                let reason = ctx.error.as_ref().map_or("client_closed", GatewayError::code);
                self.gw.metrics.unrouted.with_label_values(&[reason]).inc();
            }
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        // Client mistakes are counted in metrics; logging each would let clients flood the log.
        ctx.error
            .as_ref()
            .is_some_and(|e| e.blame() == crate::error::Blame::Client)
    }
}
