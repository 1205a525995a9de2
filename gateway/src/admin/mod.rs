//! Admin API on its own listener: health, readiness, metrics, effective config, live pod
//! table, reload, the releases (state, live comparison, operators' controls) and the web UI
//! (`/ui`, polling `/ui/state`). Mutating calls need the bearer token named by `admin.token_env`; with
//! `admin.read_token: required` (the default beyond loopback) so does every other call but
//! the probes — checked before routing, so an endpoint added later is covered too.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::state::Gateway;

pub mod live;
pub mod pod_gauges;
pub mod releases;
pub mod ui;

/// Largest admin request body read (a weight or a rollback reason).
const MAX_BODY: usize = 4096;

/// The admin application served by pingora's HTTP app service.
pub struct AdminApi {
    gw: Arc<Gateway>,
}

impl AdminApi {
    /// The admin API; registers the per-pod gauges `/metrics` serves.
    pub fn new(gw: Arc<Gateway>) -> Self {
        let gauges = pod_gauges::PodGauges::new(gw.snapshots());
        if let Err(e) = gw.metrics.registry.register(Box::new(gauges)) {
            tracing::error!(error = %e, "per-pod gauges unavailable");
        }
        AdminApi { gw }
    }

    fn authorized(&self, auth: Option<&[u8]>) -> Result<(), Box<Response<Vec<u8>>>> {
        authorize(&self.gw.snapshot().config.admin, auth)
    }

    /// Routes one admin request; pure apart from reading gateway state, so it is testable.
    pub fn handle(&self, method: &Method, path: &str, auth: Option<&[u8]>) -> Response<Vec<u8>> {
        self.handle_with(method, path, None, auth, b"")
    }

    /// Like [`AdminApi::handle`], with the query string and the request body.
    pub fn handle_with(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        auth: Option<&[u8]>,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        // Probes stay open (the kubelet sends no token); anything else is a read when so
        // configured — unknown paths included, so they do not even list the endpoints.
        let probe = matches!(path, "/healthz" | "/readyz");
        if let Err(resp) = gate_read(&self.gw.snapshot().config.admin, probe, auth) {
            return *resp;
        }
        if path == "/releases" || path.starts_with("/releases/") {
            // Changing a release is a mutation: the token, whatever read_token says.
            if method == Method::POST {
                if let Err(resp) = self.authorized(auth) {
                    return *resp;
                }
            }
            if let Some((status, value)) = releases::handle(&self.gw, method, path, query, body) {
                return json_response(status, &value);
            }
        }
        match (method, path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") if self.gw.is_draining() => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "draining": true}),
            ),
            (&Method::GET, "/readyz") => {
                let snap = self.gw.snapshot();
                let waiting: Vec<&str> = snap
                    .clusters
                    .iter()
                    .filter(|c| !c.is_ready())
                    .map(|c| c.name())
                    .collect();
                if waiting.is_empty() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"ready": false, "waiting_for_discovery": waiting}),
                    )
                }
            }
            (&Method::GET, "/metrics") => Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(self.gw.metrics.render())
                .unwrap_or_else(|_| Response::new(Vec::new())),
            (&Method::GET, "/config") => {
                let snap = self.gw.snapshot();
                json_response(
                    StatusCode::OK,
                    &json!({"generation": snap.generation, "reload": self.gw.reload_status(), "config": &*snap.config}),
                )
            }
            (&Method::GET, "/clusters") => {
                let snap = self.gw.snapshot();
                let views: Vec<_> = snap.clusters.iter().map(|c| c.view()).collect();
                json_response(
                    StatusCode::OK,
                    &json!({"generation": snap.generation, "clusters": views}),
                )
            }
            (&Method::GET, "/ui" | "/ui/") => ui::page_response(StatusCode::OK),
            (&Method::GET, "/ui/state") => ui::state_response(&self.gw),
            (&Method::POST, "/reload") => {
                if let Err(resp) = self.authorized(auth) {
                    return *resp;
                }
                match self.gw.reload("admin") {
                    Ok(status) => json_response(
                        StatusCode::OK,
                        &json!({"result": "ok", "generation": status.generation, "warnings": status.diagnostics}),
                    ),
                    Err(errors) => json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"result": "rejected", "generation": self.gw.snapshot().generation, "errors": errors.0}),
                    ),
                }
            }
            (
                _,
                "/healthz" | "/readyz" | "/metrics" | "/config" | "/clusters" | "/reload" | "/ui" | "/ui/"
                | "/ui/state",
            ) => json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "method_not_allowed"})),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "endpoints": ["/healthz", "/readyz", "/metrics", "/config", "/clusters", "/ui", "/ui/state", "POST /reload", "/releases", "/releases/NAME", "POST /releases/NAME/{weight,pause,resume,promote,rollback}"]}),
            ),
        }
    }
}

/// One admin call as read from the session: small bodies (a weight, a reason) are kept, a
/// bigger one is drained so the connection stays usable.
pub struct AdminRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub auth: Option<Vec<u8>>,
    pub body: Vec<u8>,
    /// The client accepts `text/html` (a browser navigating).
    pub wants_html: bool,
}

impl AdminApi {
    /// Answers one call read from the session. Like [`AdminApi::handle_with`], except that a
    /// browser opening `/ui` without the read token (a navigation carries none) gets the 401
    /// with the page itself — code, no data — which asks for the token and sends it on its
    /// polls; any other client gets the JSON 401 every read answers.
    pub fn handle_call(&self, c: &AdminRequest) -> Response<Vec<u8>> {
        let page = c.wants_html && c.method == Method::GET && matches!(c.path.as_str(), "/ui" | "/ui/");
        if page && self.gw.snapshot().config.admin.reads_need_token() && self.authorized(c.auth.as_deref()).is_err() {
            return ui::page_response(StatusCode::UNAUTHORIZED);
        }
        self.handle_with(&c.method, &c.path, c.query.as_deref(), c.auth.as_deref(), &c.body)
    }
}

/// Reads an admin call, or the answer to a body that is too large.
pub async fn read_request(session: &mut ServerSession) -> Result<AdminRequest, Box<Response<Vec<u8>>>> {
    let req = session.req_header();
    let mut call = AdminRequest {
        method: req.method.clone(),
        path: req.uri.path().to_string(),
        query: req.uri.query().map(str::to_string),
        auth: req
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec()),
        body: Vec::new(),
        wants_html: req
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html")),
    };
    while let Ok(Some(chunk)) = session.read_request_body().await {
        if call.body.len() + chunk.len() > MAX_BODY {
            let _ = session.drain_request_body().await;
            return Err(Box::new(json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "body_too_large", "message": format!("admin bodies are at most {MAX_BODY} bytes")}),
            )));
        }
        call.body.extend_from_slice(&chunk);
    }
    Ok(call)
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        with_length(match read_request(session).await {
            Ok(c) => self.handle_call(&c),
            Err(answer) => *answer,
        })
    }
}

/// Sets `content-length` on an admin answer: without it pingora ends the body by closing the
/// connection, so a scraper's or the UI's keep-alive connection could never be reused.
/// Shared with the sidecar's admin.
pub fn with_length(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let n = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
    resp
}

/// Checks a call's `Authorization` against the admin token (`Bearer <token>`): the answer to
/// send when it is missing, wrong, or no token is configured. Shared with the sidecar's admin.
pub fn authorize(admin: &crate::config::Admin, auth: Option<&[u8]>) -> Result<(), Box<Response<Vec<u8>>>> {
    let Some(token) = admin.token.as_ref() else {
        return Err(Box::new(json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "forbidden", "message": "this admin call needs a token and none is configured: set admin.token_env and export that variable"}),
        )));
    };
    let given = auth.and_then(|a| a.strip_prefix(b"Bearer ")).unwrap_or_default();
    if constant_time_eq(given, token.expose().as_bytes()) {
        Ok(())
    } else {
        let mut resp = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "unauthorized", "message": "missing or wrong bearer token"}),
        );
        resp.headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        Err(Box::new(resp))
    }
}

/// The read gate of every admin call: probes stay open (the kubelet sends no token); anything
/// else needs the token when `admin.read_token` is required. Shared with the sidecar's admin.
pub fn gate_read(admin: &crate::config::Admin, probe: bool, auth: Option<&[u8]>) -> Result<(), Box<Response<Vec<u8>>>> {
    if probe || !admin.reads_need_token() {
        return Ok(());
    }
    authorize(admin, auth)
}

/// Token comparison that takes the same time wherever the first wrong byte is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

pub fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(body.as_bytes().to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}
