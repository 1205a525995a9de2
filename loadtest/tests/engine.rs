//! Engine tests against real sockets on loopback: schedule accuracy, coordinated-omission
//! correction, debug-header accounting, HTTP/2, markers, and the HTML report's well-formedness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arena_loadtest::engine::{self, Observer, Plan, PlanOptions, RunContext, RunResult};
use arena_loadtest::report::Report;
use arena_loadtest::scenario::{self, NoExtensions, Scenario};
use bytes::Bytes;
use common::{pod, scratch, SERIAL};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

fn load(yaml: &str) -> Scenario {
    match scenario::load(yaml, "test.yaml", &NoExtensions) {
        Ok(s) => s,
        Err(e) => panic!("scenario rejected:\n{e}"),
    }
}

async fn run(s: &Scenario, target: SocketAddr, threads: usize, observer: &mut dyn Observer) -> RunResult {
    let opts = PlanOptions {
        target: Some(format!("http://{target}")),
        threads: Some(threads),
        ..PlanOptions::default()
    };
    let plan = Plan::new(s, &opts).unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine::run(plan, observer))
        .await
        .expect("run finished in time")
        .unwrap()
}

/// Slow samples (≥ `limit`) in the run's latency histogram.
fn slow(r: &RunResult, limit: Duration) -> u64 {
    let limit = limit.as_micros() as u64;
    r.latency
        .iter_recorded()
        .filter(|v| v.value_iterated_to() >= limit)
        .map(|v| v.count_at_value())
        .sum()
}

/// A run must be valid, except that on a busy shared machine the generator may fall behind its
/// schedule (that is what the validity flag is for): tolerate only that reason.
fn assert_valid_unless_busy(r: &RunResult) {
    if !r.validity.valid {
        let only_lag = r
            .validity
            .reasons
            .iter()
            .all(|x| x.contains("fell behind its schedule"));
        assert!(only_lag, "run invalid: {:?}", r.validity.reasons);
        eprintln!("note: machine busy, generator lagged: {:?}", r.validity.reasons);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate() {
    let _g = SERIAL.lock().await;
    let addr = pod("127.0.0.41").await;
    let s = load(
        "name: rate\nmode: open\nhttp: { connections: 16 }\nstages: [{ duration: 2s, rate: 500 }]\n\
         requests: [{ path: /v1/matches }]\n",
    );
    let r = run(&s, addr, 2, &mut ()).await;
    assert_valid_unless_busy(&r);
    assert_eq!(r.intended_total, 1000);
    let sent = r.totals.sent as f64;
    assert!((950.0..=1050.0).contains(&sent), "sent {sent}, want 1000 ± 5%");
    assert_eq!(r.totals.errors, 0, "errors: {:?}", r.error_samples);
    assert_eq!(r.statuses.get(&200).copied(), Some(1000));
    // Spread over time as scheduled, not bunched: each second holds about half.
    for w in &r.windows[..2] {
        assert!(
            (450..=550).contains(&w.requests),
            "window {} had {} requests",
            w.t,
            w.requests
        );
        assert!((w.intended - 500.0).abs() < 1.0);
    }
    assert!(r.elapsed < Duration::from_millis(2600), "took {:?}", r.elapsed);
}

/// Fault timeline through the observer seam: stall the pod for one second, mark it.
struct Stall {
    pod: SocketAddr,
    at: Duration,
    len: Duration,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Stall {
    fn new(pod: SocketAddr, at: Duration, len: Duration) -> Self {
        Stall {
            pod,
            at,
            len,
            task: None,
        }
    }

    /// Waits until the pod has recovered (the fault task ends).
    async fn finish(&mut self) {
        self.task.take().unwrap().await.unwrap();
    }
}

async fn pod_latency(pod: SocketAddr, ms: u64) {
    let stream = TcpStream::connect(pod).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/_pod/config")
        .header("host", pod.to_string())
        .body(Full::new(Bytes::from(format!(r#"{{"latency_ms":{ms}}}"#))))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert!(resp.status().is_success());
}

impl Observer for Stall {
    fn on_start(&mut self, ctx: &RunContext) {
        let (pod, start, at, len, markers) = (self.pod, ctx.start, self.at, self.len, ctx.markers.clone());
        self.task = Some(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            pod_latency(pod, len.as_millis() as u64).await;
            markers.push("pod stalls (latency 1s)");
            tokio::time::sleep_until((start + at + len).into()).await;
            pod_latency(pod, 0).await;
            markers.push("pod recovers");
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinated_omission_is_corrected() {
    let _g = SERIAL.lock().await;
    let addr = pod("127.0.0.42").await;
    let rate = 400.0;
    let stall = Duration::from_secs(1);
    let open = load(&format!(
        "name: co\nmode: open\nhttp: {{ connections: 16, timeout: 5s }}\nstages: [{{ duration: 4s, rate: {rate} }}]\n\
         requests: [{{ path: /v1/matches }}]\n"
    ));
    let mut stall_obs = Stall::new(addr, Duration::from_secs(1), stall);
    let r = run(&open, addr, 2, &mut stall_obs).await;
    stall_obs.finish().await;
    assert_eq!(r.totals.errors, 0, "errors: {:?}", r.error_samples);
    let open_slow = slow(&r, Duration::from_millis(500));
    let want = rate * stall.as_secs_f64() / 2.0;
    assert!(
        open_slow as f64 >= 0.7 * want,
        "open loop saw only {open_slow} samples >= 500ms, expected about {want}"
    );
    assert!(r.latency.max() >= 900_000, "max {}µs", r.latency.max());
    assert!(r.latency.value_at_quantile(0.99) >= 900_000);
    let labels: Vec<&str> = r.markers.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["pod stalls (latency 1s)", "pod recovers"]);
    assert!((r.markers[0].at.as_secs_f64() - 1.0).abs() < 0.3, "{:?}", r.markers[0]);

    // The same stall seen by a closed loop: each connection waits once, the backlog is hidden.
    let closed = load(
        "name: co-closed\nmode: closed\nhttp: { connections: 16, timeout: 5s }\nstages: [{ duration: 4s }]\n\
         requests: [{ path: /v1/matches }]\n",
    );
    let mut stall_obs = Stall::new(addr, Duration::from_secs(1), stall);
    let c = run(&closed, addr, 2, &mut stall_obs).await;
    stall_obs.finish().await;
    let closed_slow = slow(&c, Duration::from_millis(500));
    eprintln!(
        "1s stall at {rate} rps: open loop {open_slow} samples >= 500ms (p99 {}µs, max {}µs); closed loop {closed_slow} (p99 {}µs)",
        r.latency.value_at_quantile(0.99),
        r.latency.max(),
        c.latency.value_at_quantile(0.99)
    );
    assert!(
        closed_slow * 4 < open_slow,
        "closed loop {closed_slow} slow samples vs open loop {open_slow}"
    );
}

/// A stand-in gateway answering with Arena debug headers: every 4th response from the function.
async fn debug_header_server(ip: &str, h2: bool) -> SocketAddr {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let n = n.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                async move {
                    let _ = req.into_body().collect().await;
                    let backend = match i % 4 {
                        0 => "faas=esports-fn",
                        1 | 2 => "127.0.0.11:9100",
                        _ => "127.0.0.12:9100",
                    };
                    let status = if i % 50 == 7 { 503 } else { 200 };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("x-arena-backend", backend)
                            .header("x-arena-route", "matches")
                            .header("x-arena-attempts", if i.is_multiple_of(10) { "2" } else { "1" })
                            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    });
    addr
}

const MIX: &str =
    "requests:\n  - { weight: 3, path: \"/v1/matches/{id}/live\", headers: { x-user-id: \"{user}\" } }\n  \
                   - { weight: 1, method: POST, path: /v1/verify, body: '{\"kills\":{kills}}' }\n\
                   vars:\n  id: { pick: [a, b] }\n  user: { range: [1, 9] }\n  kills: { range: [0, 30] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_headers_markers_and_html_report() {
    let _g = SERIAL.lock().await;
    let addr = debug_header_server("127.0.0.43", false).await;
    let s = load(&format!(
        "name: report\ndescription: \"headers & <markers>\"\nmode: open\nhttp: {{ connections: 8 }}\n\
         stages: [{{ duration: 1s, rate: 100 }}, {{ duration: 2s, rate: 300, ramp: true }}]\n{MIX}\
         thresholds: [\"faas_share > 20%\", \"share(127.0.0.11) > 40%\", \"errors < 5%\", \"p99 < 1us\"]\n"
    ));
    struct Mark;
    impl Observer for Mark {
        fn on_start(&mut self, ctx: &RunContext) {
            ctx.markers
                .push_at(Duration::from_millis(1500), "kill <pod-1> & \"restart\"");
        }
    }
    let r = run(&s, addr, 2, &mut Mark).await;
    assert_valid_unless_busy(&r);
    let total = r.totals.requests;
    assert_eq!(total, 100 + 400);
    let faas = r.backend_share("faas=");
    assert!((0.2..0.3).contains(&faas), "faas share {faas}");
    assert_eq!(r.routes.get("matches").copied(), Some(total));
    assert_eq!(r.attempts.values().sum::<u64>(), total);
    assert!(r.totals.status_errors > 0 && r.totals.status_errors == r.statuses[&503]);
    let by_name: u64 = r.requests_by_name.values().sum();
    assert_eq!(by_name, total);
    assert!(r.requests_by_name["GET /v1/matches/{id}/live"] > r.requests_by_name["POST /v1/verify"]);

    let report = Report::new(&s, &r);
    let verdicts: Vec<bool> = report.thresholds.iter().map(|t| t.pass).collect();
    assert_eq!(verdicts, [true, true, true, false]);
    assert_eq!(report.exit_code(), 1);

    let dir = scratch("report");
    let (json_path, html_path) = report.write(&dir).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["markers"][0]["label"], "kill <pod-1> & \"restart\"");
    assert!(json["windows"].as_array().unwrap().len() >= 3);
    assert!(json["windows"][1]["backends"]["faas=esports-fn"].as_u64().unwrap() > 0);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_xml(&html).unwrap_or_else(|e| panic!("HTML is not well-formed: {e}"));
    for id in ["chart-latency", "chart-throughput", "chart-errors", "chart-backends"] {
        let start = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("missing {id}"));
        let svg = &html[html[..start].rfind("<svg").unwrap()..];
        let svg = &svg[..svg.find("</svg>").unwrap() + 6];
        check_xml(svg).unwrap_or_else(|e| panic!("{id} is not valid XML: {e}"));
        assert!(
            svg.contains("kill &lt;pod-1&gt; &amp; &quot;restart&quot;"),
            "{id} lacks the marker"
        );
        assert!(svg.contains("<polyline") || svg.contains("<polygon"));
    }
    assert!(html.contains("faas=esports-fn"));
    assert!(!html.contains("<script") && !html.contains("http://fonts") && !html.contains("<link"));
    // ARENA_LT_KEEP_REPORT=1 keeps the files for a look in a browser.
    if std::env::var_os("ARENA_LT_KEEP_REPORT").is_some() {
        eprintln!("report kept: {}", html_path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge() {
    let _g = SERIAL.lock().await;
    let addr = debug_header_server("127.0.0.44", true).await;
    let s = load(&format!(
        "name: h2\nmode: open\nhttp: {{ version: 2, connections: 2, streams: 8 }}\n\
         stages: [{{ duration: 1s, rate: 400 }}]\n{MIX}"
    ));
    let r = run(&s, addr, 1, &mut ()).await;
    assert_valid_unless_busy(&r);
    assert_eq!(r.totals.requests, 400);
    assert_eq!(
        r.totals.transport_errors + r.totals.timeouts,
        0,
        "{:?}",
        r.error_samples
    );
    assert!(r.statuses[&200] > 350);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_and_refused_connections() {
    let _g = SERIAL.lock().await;
    let addr = pod("127.0.0.45").await;
    let s = load(
        "name: closed\nmode: closed\nhttp: { connections: 4 }\nstages: [{ duration: 1s }]\n\
         requests: [{ path: /v1/matches }]\n",
    );
    let r = run(&s, addr, 2, &mut ()).await;
    assert_valid_unless_busy(&r);
    assert!(r.totals.requests > 500, "closed loop only did {}", r.totals.requests);
    assert_eq!(r.totals.errors, 0);
    assert_eq!(r.intended_total, 0);

    // Nobody listens: every request is a transport error, and the run still ends on time.
    let dead: SocketAddr = "127.0.0.46:9".parse().unwrap();
    let s = load(
        "name: dead\nmode: open\nhttp: { connections: 4 }\nstages: [{ duration: 1s, rate: 50 }]\n\
         requests: [{ path: / }]\n",
    );
    let r = run(&s, dead, 1, &mut ()).await;
    assert_eq!(r.totals.requests, 50);
    assert_eq!(r.totals.transport_errors, 50);
    assert!(
        r.error_samples.iter().any(|e| e.starts_with("connect:")),
        "{:?}",
        r.error_samples
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_max_in_flight_invalidates_the_run() {
    let _g = SERIAL.lock().await;
    let addr = pod("127.0.0.47").await;
    pod_latency(addr, 300).await;
    let s = load(
        "name: overflow\nmode: open\nhttp: { connections: 1, max_in_flight: 5 }\n\
         stages: [{ duration: 1s, rate: 100 }]\nrequests: [{ path: /v1/matches }]\n",
    );
    let r = run(&s, addr, 1, &mut ()).await;
    assert!(r.totals.dropped > 50, "dropped {}", r.totals.dropped);
    assert!(!r.validity.valid);
    assert!(r.validity.reasons.iter().any(|x| x.contains("dropped")));
    assert_eq!(Report::new(&s, &r).exit_code(), 2);
}

/// Minimal XML well-formedness check: balanced, properly nested tags, quoted attributes,
/// valid entity references, one root element.
fn check_xml(doc: &str) -> Result<(), String> {
    let b = doc.as_bytes();
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    let text_ok = |t: &str| -> Result<(), String> {
        let mut rest = t;
        while let Some(p) = rest.find('&') {
            let after = &rest[p + 1..];
            let end = after
                .find(';')
                .ok_or_else(|| format!("bare & near {:?}", &after[..after.len().min(20)]))?;
            let name = &after[..end];
            let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()) && name.len() > 1);
            if !ok {
                return Err(format!("bad entity &{name};"));
            }
            rest = &after[end + 1..];
        }
        if t.contains('>') {
            return Err("raw > in text".into());
        }
        Ok(())
    };
    while i < b.len() {
        let Some(lt) = doc[i..].find('<').map(|p| p + i) else {
            text_ok(&doc[i..])?;
            break;
        };
        text_ok(&doc[i..lt])?;
        let rest = &doc[lt..];
        if rest.starts_with("<!--") {
            i = lt + rest.find("-->").ok_or("unclosed comment")? + 3;
        } else if rest.starts_with("<!DOCTYPE") || rest.starts_with("<?") {
            i = lt + rest.find('>').ok_or("unclosed declaration")? + 1;
        } else if let Some(close) = rest.strip_prefix("</") {
            let end = close.find('>').ok_or("unclosed end tag")?;
            let name = close[..end].trim();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            i = lt + 2 + end + 1;
        } else {
            let mut j = lt + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b"-_:".contains(&b[j])) {
                j += 1;
            }
            let name = &doc[lt + 1..j];
            if name.is_empty() {
                return Err(format!("bad tag at byte {lt}"));
            }
            loop {
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                match b.get(j) {
                    Some(b'>') => {
                        if stack.is_empty() {
                            roots += 1;
                        }
                        stack.push(name);
                        j += 1;
                        break;
                    }
                    Some(b'/') if b.get(j + 1) == Some(&b'>') => {
                        if stack.is_empty() {
                            roots += 1;
                        }
                        j += 2;
                        break;
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        while j < b.len() && (b[j].is_ascii_alphanumeric() || b"-_:".contains(&b[j])) {
                            j += 1;
                        }
                        if b.get(j) != Some(&b'=') {
                            return Err(format!("attribute without value in <{name}>"));
                        }
                        let q = *b.get(j + 1).ok_or("eof")?;
                        if q != b'"' && q != b'\'' {
                            return Err(format!("unquoted attribute in <{name}>"));
                        }
                        let end = doc[j + 2..].find(q as char).ok_or("unclosed attribute")? + j + 2;
                        let value = &doc[j + 2..end];
                        if value.contains('<') {
                            return Err(format!("< in attribute of <{name}>"));
                        }
                        text_ok(&value.replace('>', ""))?;
                        j = end + 1;
                    }
                    _ => return Err(format!("malformed <{name}> at byte {j}")),
                }
            }
            i = j;
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

#[test]
fn xml_checker_catches_breakage() {
    assert!(check_xml("<a><b x=\"1\"/>t &amp; u</a>").is_ok());
    assert!(check_xml("<a><b></a></b>").is_err());
    assert!(check_xml("<a>x & y</a>").is_err());
    assert!(check_xml("<a x=1></a>").is_err());
    assert!(check_xml("<a></a><b></b>").is_err());
}
