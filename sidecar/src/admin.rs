//! Admin API (loopback by default): the probes — `/healthz` (the sidecar serves), `/readyz`
//! (the app is ready and the sidecar not draining: the pod's readiness), `/livez` (the app is
//! not dead-stuck: the app container's liveness) — and `/load`, `/metrics`, `/config`,
//! `POST /reload`. The gateway's token rules: probes are open, reads need the token when
//! `admin.read_token` is required, mutations always do.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use arena_gateway::admin::{authorize, gate_read, json_response, read_request, text};

use crate::state::Sidecar;

pub struct AdminApi {
    sc: Arc<Sidecar>,
    /// The gateway's admin over the outbound side (its `/clusters`, `/releases`, series).
    outbound: std::sync::OnceLock<Option<arena_gateway::admin::AdminApi>>,
}

impl AdminApi {
    pub fn new(sc: Arc<Sidecar>) -> Self {
        AdminApi {
            sc,
            outbound: std::sync::OnceLock::new(),
        }
    }

    fn outbound(&self) -> Option<&arena_gateway::admin::AdminApi> {
        self.outbound
            .get_or_init(|| {
                self.sc
                    .outbound()
                    .map(|gw| arena_gateway::admin::AdminApi::new(Arc::clone(gw)))
            })
            .as_ref()
    }

    fn authorized(&self, auth: Option<&[u8]>) -> Result<(), Box<Response<Vec<u8>>>> {
        authorize(&self.sc.config().admin, auth)
    }

    /// The `/load` view: what the load reports are made of.
    pub fn load_view(&self) -> serde_json::Value {
        let sc = &self.sc;
        json!({
            "state": sc.health.state().as_str(),
            "draining": sc.is_draining(),
            "in_flight": sc.limiter.in_flight(),
            "queued": sc.limiter.queued(),
            "limit": sc.limiter.limit(),
            "adaptive": sc.limiter.adaptive_view(),
            "cpu_utilization": sc.cpu(),
            "cpu_source": sc.cpu_source(),
            "consecutive_timeouts": sc.health.consecutive_timeouts(),
        })
    }

    /// Routes one admin request (the query and body are the outbound side's release calls').
    pub fn handle_with(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        auth: Option<&[u8]>,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        let probe = matches!(path, "/healthz" | "/readyz" | "/livez");
        if let Err(resp) = gate_read(&self.sc.config().admin, probe, auth) {
            return *resp;
        }
        if path == "/clusters" || path == "/releases" || path.starts_with("/releases/") {
            return match self.outbound() {
                // Same token rules there: it reads the same admin section.
                Some(gw) => gw.handle_with(method, path, query, auth, body),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "not_found", "message": "no outbound side is configured"}),
                ),
            };
        }
        let sc = &self.sc;
        match (method, path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") if sc.ready() => text(StatusCode::OK, "ready\n"),
            (&Method::GET, "/readyz") => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "app": sc.health.state().as_str(), "draining": sc.is_draining()}),
            ),
            (&Method::GET, "/livez") if sc.health.live() => text(StatusCode::OK, "live\n"),
            (&Method::GET, "/livez") => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"live": false, "app": sc.health.state().as_str(), "reason": "stuck past liveness_grace"}),
            ),
            (&Method::GET, "/load") => json_response(StatusCode::OK, &self.load_view()),
            (&Method::GET, "/metrics") => {
                sc.refresh_gauges();
                let mut body = sc.metrics.render();
                if let (Some(gw), Some(_)) = (sc.outbound(), self.outbound()) {
                    // The outbound side keeps the gateway's series names (same dashboards).
                    body.extend_from_slice(&gw.metrics.render());
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(body)
                    .unwrap_or_else(|_| Response::new(Vec::new()))
            }
            (&Method::GET, "/config") => json_response(
                StatusCode::OK,
                &json!({"generation": sc.generation(), "config": &*sc.config()}),
            ),
            (&Method::POST, "/reload") => {
                if let Err(resp) = self.authorized(auth) {
                    return *resp;
                }
                match sc.reload("admin") {
                    Ok(warnings) => json_response(
                        StatusCode::OK,
                        &json!({"result": "ok", "generation": sc.generation(), "warnings": warnings}),
                    ),
                    Err(errors) => json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"result": "rejected", "generation": sc.generation(), "errors": errors.0}),
                    ),
                }
            }
            (_, "/healthz" | "/readyz" | "/livez" | "/load" | "/metrics" | "/config" | "/reload") => {
                json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "method_not_allowed"}))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "endpoints": ["/healthz", "/readyz", "/livez", "/load", "/metrics", "/config", "POST /reload", "/clusters", "/releases"]}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        arena_gateway::admin::with_length(match read_request(session).await {
            Ok(c) => self.handle_with(&c.method, &c.path, c.query.as_deref(), c.auth.as_deref(), &c.body),
            Err(answer) => *answer,
        })
    }
}
