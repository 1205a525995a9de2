//! Listener, connection driver and the API request pipeline
//! (stuck → delay → error injection → route → load report → crash accounting).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::PodConfig;
use super::state::{InFlight, PodState};
use super::{control, data, orca};

/// Response body type of every pod response.
pub(crate) type PodBody = Full<Bytes>;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_POD: HeaderName = HeaderName::from_static("x-pod");
const X_POD_VERSION: HeaderName = HeaderName::from_static("x-pod-version");
const LOAD_METRICS: HeaderName = HeaderName::from_static(orca::LOAD_METRICS_HEADER);
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Generous accept backlog: benchmarks open many connections at once.
const LISTEN_BACKLOG: u32 = 4096;
/// How long open connections may take to finish once the pod stops.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a pod stopped serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodExit {
    /// The shutdown signal passed to [`BoundPod::run_until`] fired.
    Shutdown,
    /// `--crash-after` was reached; the binary exits with code 1.
    Crashed {
        /// Responses served before the crash.
        served: u64,
    },
}

/// A pod whose listener is bound but which is not serving yet.
pub struct BoundPod {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<PodState>,
}

/// Binds `config.listen` and prepares the pod. With port 0 the OS picks the
/// port; read it back with [`BoundPod::local_addr`].
pub async fn bind(config: PodConfig) -> io::Result<BoundPod> {
    let socket = if config.listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a restarted pod (crash-after scenarios) rebind its port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(config.listen)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let addr = listener.local_addr()?;
    let name = config.name.clone().unwrap_or_else(|| addr.to_string());
    let state = Arc::new(PodState::new(&config, name)?);
    Ok(BoundPod { listener, addr, state })
}

/// Binds and serves until `--crash-after` is reached (or forever).
pub async fn serve(config: PodConfig) -> io::Result<PodExit> {
    bind(config).await?.run().await
}

impl BoundPod {
    /// The actual listening address (resolves port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pod name used in bodies and `x-pod`.
    pub fn name(&self) -> &str {
        &self.state.id.name
    }

    /// Serves until `--crash-after` is reached (or forever).
    pub async fn run(self) -> io::Result<PodExit> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `signal` completes or `--crash-after` is reached, then
    /// stops accepting and gives open connections [`DRAIN_GRACE`] to finish.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> io::Result<PodExit> {
        let Self { listener, state, .. } = self;
        let builder = {
            let mut b = http1::Builder::new();
            // Idle keep-alive connections belong to the gateway's pool; hyper's
            // default 30 s header timeout would close them under it.
            b.keep_alive(true).header_read_timeout(None);
            b
        };
        let mut shutdown = state.shutdown.subscribe();
        let mut conns = JoinSet::new();
        tokio::pin!(signal);

        loop {
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                () = &mut signal => {
                    state.begin_shutdown();
                    break;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        conns.spawn(serve_connection(state.clone(), builder.clone(), stream));
                    }
                    Err(e) => {
                        // Rare (fd exhaustion); back off instead of spinning.
                        eprintln!("arena-pod: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
            // Reap finished connection tasks so the set does not grow unbounded.
            while conns.try_join_next().is_some() {}
        }

        // Refuse new connections right away, as a dead process would.
        drop(listener);
        let drained = tokio::time::timeout(DRAIN_GRACE, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            conns.shutdown().await;
        }

        Ok(if state.crashed.load(Ordering::Acquire) {
            PodExit::Crashed {
                served: state.counters.served.load(Ordering::Relaxed),
            }
        } else {
            PodExit::Shutdown
        })
    }
}

/// Drives one keep-alive HTTP/1.1 connection until it closes or the pod stops.
async fn serve_connection(state: Arc<PodState>, builder: http1::Builder, stream: TcpStream) {
    // Small JSON responses: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let mut shutdown = state.shutdown.subscribe();
    let svc_state = state.clone();
    let service = service_fn(move |req| handle(svc_state.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut shutdown) => {}
    }
    // Finish the in-flight response (e.g. the last one before a crash), then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Completes once shutdown begins. The watch guard is dropped inside, which
/// keeps callers' futures `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Returned to hyper to drop a connection without answering (post-crash or
/// shutdown while stuck), which is what a dead process looks like.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pod dropped the request")
    }
}

impl std::error::Error for Dropped {}

async fn handle(state: Arc<PodState>, req: Request<Incoming>) -> Result<Response<PodBody>, Dropped> {
    let request_id = req.headers().get(X_REQUEST_ID).cloned();
    let mut resp = if req.uri().path().starts_with("/_pod/") {
        control::handle(&state, req).await
    } else {
        api(&state, req).await.ok_or(Dropped)?
    };
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, APPLICATION_JSON);
    headers.insert(X_POD, state.id.x_pod.clone());
    headers.insert(X_POD_VERSION, state.id.x_pod_version.clone());
    if let Some(id) = request_id {
        headers.insert(X_REQUEST_ID, id);
    }
    Ok(resp)
}

/// The esports API with the fault knobs applied. `None` means "never answer".
async fn api(state: &PodState, req: Request<Incoming>) -> Option<Response<PodBody>> {
    if state.crashed.load(Ordering::Relaxed) {
        return None;
    }
    let counters = &state.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&counters.in_flight);
    let knobs = &state.knobs;
    let (parts, body) = req.into_parts();

    // A stuck pod still reads the whole request, it just never answers.
    let mut body = Some(body);
    let mut body_len = None;
    if knobs.is_stuck() {
        body_len = Some(count_body(body.take()?).await?);
        if !state.park_while_stuck().await {
            return None;
        }
    }

    let mut delay = knobs.latency();
    let jitter_us = u64::try_from(knobs.jitter().as_micros()).unwrap_or(u64::MAX);
    if jitter_us > 0 {
        delay += Duration::from_micros(rand::rng().random_range(0..=jitter_us));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let error_rate = knobs.error_rate();
    let inject = error_rate > 0.0 && (error_rate >= 1.0 || rand::rng().random::<f64>() < error_rate);
    let mut resp = if inject {
        counters.errors_injected.fetch_add(1, Ordering::Relaxed);
        let mut r = json_response(state.fail_status, state.bodies.injected_error.clone());
        if state.shed {
            r.headers_mut().insert(
                http::HeaderName::from_static(OVERLOADED),
                http::HeaderValue::from_static("1"),
            );
            r.headers_mut()
                .insert(LOAD_METRICS, http::HeaderValue::from_static("TEXT cpu_utilization=1.0"));
        }
        r
    } else {
        route(state, &parts.method, parts.uri.path(), body, body_len).await?
    };

    if state.load_report {
        // Current load, this request included.
        let in_flight = counters.in_flight.load(Ordering::Relaxed);
        let u = orca::utilization(knobs.report_utilization(), in_flight, state.capacity);
        if let Some(v) = orca::header_value(u, in_flight) {
            resp.headers_mut().insert(LOAD_METRICS, v);
        }
    }

    let served = counters.served.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(limit) = state.crash_after {
        if served > limit {
            return None;
        }
        if served == limit {
            // This response still goes out: connections drain gracefully.
            state.crashed.store(true, Ordering::Release);
            state.begin_shutdown();
        }
    }
    Some(resp)
}

/// The shed answer's header, as the gateway reads it (`arena_core::balance::report::OVERLOADED`;
/// the sample pod does not link arena-core).
pub const OVERLOADED: &str = "x-arena-overloaded";

/// Size of a replay file.
pub const REPLAY_BYTES: usize = 8 * 1024 * 1024;

/// The replay file every match shares: built once, then handed out by reference count.
fn replay() -> Bytes {
    static REPLAY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    REPLAY
        .get_or_init(|| Bytes::from((0..REPLAY_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>()))
        .clone()
}

/// API endpoints, classified from the path alone.
enum Route<'a> {
    Matches,
    Live(&'a str),
    Player(&'a str),
    /// A match's replay file: a large binary answer (for slow-reader and streaming tests).
    Replay(&'a str),
    Verify,
    NotFound,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        match path {
            "/v1/matches" => Route::Matches,
            "/v1/verify" => Route::Verify,
            _ => {
                if let Some(id) = path
                    .strip_prefix("/v1/matches/")
                    .and_then(|rest| rest.strip_suffix("/live"))
                {
                    Route::Live(id)
                } else if let Some(id) = path
                    .strip_prefix("/v1/matches/")
                    .and_then(|rest| rest.strip_suffix("/replay"))
                {
                    Route::Replay(id)
                } else if let Some(id) = path
                    .strip_prefix("/v1/players/")
                    .and_then(|rest| rest.strip_suffix("/stats"))
                {
                    Route::Player(id)
                } else {
                    Route::NotFound
                }
            }
        }
    }
}

/// Dispatches an API request. `body` is `None` (and `body_len` known) if it
/// was already consumed while stuck. `None` if the body could not be read.
async fn route(
    state: &PodState,
    method: &Method,
    path: &str,
    body: Option<Incoming>,
    body_len: Option<u64>,
) -> Option<Response<PodBody>> {
    let b = &state.bodies;
    let route = Route::of(path);
    let allowed = match route {
        Route::NotFound => return Some(json_response(StatusCode::NOT_FOUND, b.not_found.clone())),
        Route::Verify => Method::POST,
        _ => Method::GET,
    };
    if *method != allowed {
        let mut resp = json_response(StatusCode::METHOD_NOT_ALLOWED, b.method_not_allowed.clone());
        let allow = if allowed == Method::GET { "GET" } else { "POST" };
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        return Some(resp);
    }
    Some(match route {
        Route::Matches => json_response(StatusCode::OK, b.matches.clone()),
        Route::Live(id) => by_id(state, id, data::live_body),
        Route::Player(id) => by_id(state, id, data::player_body),
        Route::Replay(id) if data::valid_id(id) => {
            let mut resp = Response::new(Full::new(replay()));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            resp
        }
        Route::Replay(_) => json_response(StatusCode::NOT_FOUND, b.not_found.clone()),
        Route::Verify => {
            let bytes = match (body_len, body) {
                (Some(n), _) => n,
                (None, Some(body)) => count_body(body).await?,
                (None, None) => 0,
            };
            let out = state.id.object(&format!(r#""verified":true,"bytes":{bytes}"#));
            json_response(StatusCode::OK, Bytes::from(out))
        }
        Route::NotFound => json_response(StatusCode::NOT_FOUND, b.not_found.clone()),
    })
}

fn by_id(state: &PodState, id: &str, render: fn(&super::state::Identity, &str) -> String) -> Response<PodBody> {
    if data::valid_id(id) {
        json_response(StatusCode::OK, Bytes::from(render(&state.id, id)))
    } else {
        json_response(StatusCode::BAD_REQUEST, state.bodies.bad_id.clone())
    }
}

/// Reads a body to the end, counting bytes without buffering it.
/// `None` if the client went away mid-body.
async fn count_body(mut body: Incoming) -> Option<u64> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.ok()?.data_ref() {
            n += data.len() as u64;
        }
    }
    Some(n)
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<PodBody> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp
}
