//! End-to-end tests of the `arena-pod` binary (plus one in-process pod),
//! spoken to over real loopback HTTP/1.1 connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Upper bound for any single step that is expected to succeed.
const STEP: Duration = Duration::from_secs(10);

/// A running `arena-pod` child process, killed when dropped.
struct Pod {
    child: Child,
    addr: SocketAddr,
}

impl Pod {
    /// Starts the binary on `ip:0` and waits for its `listening on` line.
    fn start(ip: &str, args: &[&str]) -> Pod {
        let listen = format!("{ip}:0");
        let mut child = Command::new(env!("CARGO_BIN_EXE_arena-pod"))
            .args(["--listen", &listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn arena-pod");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child can never block on a full pipe.
            for _ in lines {}
        });
        let mut pod = Pod {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let line = rx
            .recv_timeout(STEP)
            .expect("arena-pod did not print its address in time");
        let addr = line
            .strip_prefix("arena-pod listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        pod.addr = addr.parse().expect("printed address parses");
        assert_eq!(pod.addr.ip().to_string(), ip);
        assert_ne!(pod.addr.port(), 0);
        pod
    }

    /// Waits (bounded) for the process to exit on its own.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 client connection.
struct Client {
    sender: SendRequest<Full<Bytes>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Client { sender }
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> hyper::Result<Reply> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("non-JSON body {bytes:?}: {e}"));
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            json,
        })
    }

    /// Sends and expects an answer within [`STEP`].
    async fn call(&mut self, method: Method, path: &str, body: &str) -> Reply {
        tokio::time::timeout(STEP, self.send(request(method, path, body)))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer in time"))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.call(Method::GET, path, "").await
    }
}

fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "arena-pod")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

fn assert_identity(reply: &Reply, pod: &str, version: &str) {
    assert_eq!(header(reply, "x-pod"), pod);
    assert_eq!(header(reply, "x-pod-version"), version);
    assert_eq!(header(reply, "content-type"), "application/json");
    assert_eq!(reply.json["pod"], pod);
    assert_eq!(reply.json["version"], version);
}

/// Polls `/_pod/stats` until `field` equals `want` (bounded by [`STEP`]).
async fn wait_stat(addr: SocketAddr, field: &str, want: u64) {
    let deadline = Instant::now() + STEP;
    let mut control = Client::connect(addr).await;
    loop {
        let stats = control.get("/_pod/stats").await;
        if stats.json[field] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} never reached {want}: {}",
            stats.json
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Parses `TEXT k=v, k=v` into pairs.
fn parse_orca_text(value: &str) -> Vec<(String, f64)> {
    let rest = value.strip_prefix("TEXT ").expect("TEXT prefix");
    rest.split(',')
        .map(|kv| {
            let (k, v) = kv.trim().split_once('=').expect("key=value");
            (k.to_owned(), v.parse::<f64>().expect("numeric value"))
        })
        .collect()
}

fn orca_value(pairs: &[(String, f64)], key: &str) -> f64 {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} missing from {pairs:?}"))
        .1
}

#[tokio::test]
async fn json_endpoints_identify_the_pod() {
    let pod = Pod::start("127.0.0.21", &["--name", "pod-a", "--version", "canary"]);
    // Everything below shares one keep-alive connection.
    let mut c = Client::connect(pod.addr).await;

    let mut req = request(Method::GET, "/v1/matches", "");
    req.headers_mut().insert("x-request-id", "req-123".parse().unwrap());
    let matches = tokio::time::timeout(STEP, c.send(req)).await.unwrap().unwrap();
    assert_eq!(matches.status, StatusCode::OK);
    assert_identity(&matches, "pod-a", "canary");
    assert_eq!(header(&matches, "x-request-id"), "req-123");
    let list = matches.json["matches"].as_array().unwrap();
    assert!(list.len() >= 3);
    let games: Vec<&str> = list.iter().map(|m| m["game"].as_str().unwrap()).collect();
    assert!(games.contains(&"League of Legends") && games.contains(&"CS2"));
    assert!(list.iter().any(|m| m["status"] == "live"));
    let first_id = list[0]["id"].as_str().unwrap().to_owned();

    let live = c.get(&format!("/v1/matches/{first_id}/live")).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_identity(&live, "pod-a", "canary");
    assert_eq!(live.json["match_id"], first_id.as_str());
    assert!(live.json["score"]["home"].is_u64() && live.json["kills"]["away"].is_u64());
    assert!(live.headers.get("x-request-id").is_none());

    let other = c.get("/v1/matches/some-unknown-match/live").await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.json["match_id"], "some-unknown-match");

    let player = c.get("/v1/players/zywoo/stats").await;
    assert_eq!(player.status, StatusCode::OK);
    assert_identity(&player, "pod-a", "canary");
    assert_eq!(player.json["player_id"], "zywoo");
    assert!(player.json["kda"].as_f64().unwrap() > 0.0);

    let verify = c.call(Method::POST, "/v1/verify", &"x".repeat(1500)).await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_identity(&verify, "pod-a", "canary");
    assert_eq!(verify.json["verified"], true);
    assert_eq!(verify.json["bytes"], 1500);

    let missing = c.get("/v2/nothing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_identity(&missing, "pod-a", "canary");

    let wrong_method = c.call(Method::POST, "/v1/matches", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);

    let health = c.get("/_pod/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_identity(&health, "pod-a", "canary");

    // Control-plane requests are not counted as API traffic.
    let stats = c.get("/_pod/stats").await;
    assert_eq!(stats.json["requests"], 7);
    assert_eq!(stats.json["in_flight"], 0);
    assert_eq!(stats.json["errors_injected"], 0);
}

#[tokio::test]
async fn default_name_is_the_bound_address() {
    let pod = Pod::start("127.0.0.22", &[]);
    let reply = Client::connect(pod.addr).await.get("/v1/matches").await;
    assert_identity(&reply, &pod.addr.to_string(), "v1");
}

#[tokio::test]
async fn error_rate_one_fails_every_api_request() {
    let pod = Pod::start("127.0.0.23", &["--name", "bad", "--error-rate", "1.0"]);
    let mut c = Client::connect(pod.addr).await;
    for path in ["/v1/matches", "/v1/players/p1/stats", "/v1/matches/m1/live"] {
        let reply = c.get(path).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_identity(&reply, "bad", "v1");
        assert!(reply.json["error"].is_string());
    }
    // The control plane is never failed.
    assert_eq!(c.get("/_pod/healthz").await.status, StatusCode::OK);
    assert_eq!(c.get("/_pod/stats").await.json["errors_injected"], 3);
}

#[tokio::test]
async fn fail_status_is_configurable() {
    let pod = Pod::start("127.0.0.24", &["--error-rate", "1", "--fail-status", "503"]);
    let reply = Client::connect(pod.addr).await.get("/v1/matches").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json["status"], 503);
}

#[tokio::test]
async fn config_changes_knobs_live() {
    let pod = Pod::start("127.0.0.25", &["--name", "knobs"]);
    let mut c = Client::connect(pod.addr).await;
    assert_eq!(c.get("/v1/matches").await.status, StatusCode::OK);

    let set = c
        .call(Method::POST, "/_pod/config", r#"{"error_rate":1.0,"latency_ms":150}"#)
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.json["error_rate"], 1.0);
    assert_eq!(set.json["latency_ms"], 150.0);
    assert_eq!(set.json["stuck"], false);

    let started = Instant::now();
    assert_eq!(c.get("/v1/matches").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let bad = c.call(Method::POST, "/_pod/config", r#"{"error_rate":2}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A rejected patch changes nothing.
    assert_eq!(c.get("/_pod/config").await.json["error_rate"], 1.0);

    c.call(Method::POST, "/_pod/config", r#"{"error_rate":0,"latency_ms":0}"#)
        .await;
    assert_eq!(c.get("/v1/matches").await.status, StatusCode::OK);
}

#[tokio::test]
async fn stuck_pod_never_answers_until_unstuck() {
    let pod = Pod::start("127.0.0.26", &["--name", "zombie", "--stuck"]);

    // A request that stays parked while the pod is stuck.
    let mut parked = Client::connect(pod.addr).await;
    let parked = tokio::spawn(async move { parked.send(request(Method::GET, "/v1/players/p1/stats", "")).await });

    // Another one the client gives up on.
    let mut impatient = Client::connect(pod.addr).await;
    let outcome = tokio::time::timeout(
        Duration::from_millis(500),
        impatient.send(request(Method::GET, "/v1/matches", "")),
    )
    .await;
    assert!(outcome.is_err(), "a stuck pod answered");
    drop(impatient);

    // The control plane still answers; the abandoned request is released.
    wait_stat(pod.addr, "in_flight", 1).await;
    let mut control = Client::connect(pod.addr).await;
    assert_eq!(control.get("/_pod/healthz").await.status, StatusCode::OK);

    let unstuck = control.call(Method::POST, "/_pod/config", r#"{"stuck":false}"#).await;
    assert_eq!(unstuck.status, StatusCode::OK);
    assert_eq!(unstuck.json["stuck"], false);

    // The parked request is answered now, and so are new ones.
    let reply = tokio::time::timeout(STEP, parked)
        .await
        .expect("parked request released")
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_identity(&reply, "zombie", "v1");
    let fresh = Client::connect(pod.addr).await.get("/v1/matches").await;
    assert_eq!(fresh.status, StatusCode::OK);
}

#[tokio::test]
async fn crash_after_exits_with_code_1() {
    let mut pod = Pod::start("127.0.0.27", &["--crash-after", "3"]);
    let mut c = Client::connect(pod.addr).await;
    // Health probes do not count towards the crash.
    assert_eq!(c.get("/_pod/healthz").await.status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(c.get("/v1/matches").await.status, StatusCode::OK);
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = pod.wait_exit(STEP);
        (pod, status)
    })
    .await
    .unwrap()
    .1
    .expect("pod did not exit after 3 requests");
    assert_eq!(status.code(), Some(1));
}

#[tokio::test]
async fn load_report_header_is_parseable() {
    let pod = Pod::start(
        "127.0.0.28",
        &["--load-report", "--capacity", "4", "--report-utilization", "0.42"],
    );
    let mut c = Client::connect(pod.addr).await;

    let forced = c.get("/v1/matches").await;
    let pairs = parse_orca_text(header(&forced, "endpoint-load-metrics"));
    assert_eq!(orca_value(&pairs, "application_utilization"), 0.42);
    assert_eq!(orca_value(&pairs, "cpu_utilization"), 0.42);
    assert_eq!(orca_value(&pairs, "named_metrics.inflight"), 1.0);

    // Back to measured utilization: in-flight / capacity. Park two requests
    // so the first one answered sees both in flight.
    c.call(
        Method::POST,
        "/_pod/config",
        r#"{"report_utilization":null,"stuck":true}"#,
    )
    .await;
    let mut handles = Vec::new();
    for _ in 0..2 {
        let mut parked = Client::connect(pod.addr).await;
        handles.push(tokio::spawn(async move {
            parked.get("/v1/matches/cs2-iem25-gf/live").await
        }));
    }
    wait_stat(pod.addr, "in_flight", 2).await;
    c.call(Method::POST, "/_pod/config", r#"{"stuck":false}"#).await;

    let mut max_inflight = 0.0f64;
    for h in handles {
        let reply = tokio::time::timeout(STEP, h).await.unwrap().unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        let pairs = parse_orca_text(header(&reply, "endpoint-load-metrics"));
        let inflight = orca_value(&pairs, "named_metrics.inflight");
        assert_eq!(orca_value(&pairs, "application_utilization"), (inflight / 4.0).min(1.0));
        max_inflight = max_inflight.max(inflight);
    }
    assert_eq!(max_inflight, 2.0);
}

#[tokio::test]
async fn in_process_pod_serves_and_shuts_down() {
    use arena_pod::{bind, PodConfig, PodExit};

    let mut config = PodConfig::new("127.0.0.29:0".parse().unwrap());
    config.name = Some("inproc".into());
    let pod = bind(config).await.unwrap();
    let addr = pod.local_addr();
    assert_eq!(pod.name(), "inproc");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pod.run_until(async {
        let _ = stop_rx.await;
    }));

    let reply = Client::connect(addr).await.get("/v1/players/p9/stats").await;
    assert_identity(&reply, "inproc", "v1");

    stop_tx.send(()).unwrap();
    let exit = tokio::time::timeout(STEP, task).await.unwrap().unwrap();
    assert_eq!(exit.unwrap(), PodExit::Shutdown);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
