//! The gateway in front of sidecars, with apps that never report load themselves: a sidecar
//! that sheds (its limit is full) or sees its app CPU-heavy gets less traffic, with no client
//! error and no ejection; a sidecar drains on SIGTERM with no failed request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::support::gateway::{Gateway, Pod};
use common::support::http::{client, get, send};
use common::Sidecar;

/// `workers` clients send `n` GETs in all; returns (status → count, pod → count).
async fn load(addr: std::net::SocketAddr, n: usize, workers: usize) -> (HashMap<u16, usize>, HashMap<String, usize>) {
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(async move {
                let c = client();
                let mut out = Vec::new();
                for _ in 0..n / workers {
                    let r = send(
                        &c,
                        http::Method::GET,
                        addr,
                        "/v1/matches",
                        &[],
                        b"",
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap();
                    out.push((r.status, r.header("x-pod").unwrap_or("-").to_string()));
                }
                out
            })
        })
        .collect();
    let (mut statuses, mut pods) = (HashMap::new(), HashMap::new());
    for t in tasks {
        for (s, p) in t.await.unwrap() {
            *statuses.entry(s).or_insert(0) += 1;
            *pods.entry(p).or_insert(0) += 1;
        }
    }
    (statuses, pods)
}

fn gateway(sidecars: &[&Sidecar]) -> Gateway {
    let endpoints: Vec<String> = sidecars.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [{}] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        endpoints.join(", ")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sidecar_sheds_to_other_pods_without_client_errors_or_ejection() {
    let pods: Vec<Pod> = ["a", "b", "c"]
        .iter()
        .map(|n| Pod::start("127.0.0.1", &["--name", n, "--latency", "20ms"]))
        .collect();
    let small = Sidecar::start(
        "127.0.0.41",
        pods[0].addr,
        "  max_concurrency: 2\n  queue: { max: 0 }\n",
        "",
    );
    let b = Sidecar::start("127.0.0.42", pods[1].addr, "  max_concurrency: 64\n", "");
    let c = Sidecar::start("127.0.0.43", pods[2].addr, "  max_concurrency: 64\n", "");
    for s in [&small, &b, &c] {
        s.wait_ready(200);
    }
    let gw = gateway(&[&small, &b, &c]);
    let (statuses, served) = load(gw.addr, 600, 12).await;
    assert_eq!(statuses.get(&200), Some(&600), "{statuses:?}");
    let a = *served.get("a").unwrap_or(&0);
    assert!(a * 4 < 600, "the full pod served {a} of 600: {served:?}");
    assert!(small.metric("arena_sidecar_inbound_shed_total{reason=\"queue_full\"}") > 0.0);
    let view = get(&client(), gw.admin, "/clusters", &[]).await.json();
    let pod = view["clusters"][0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == small.addr.to_string())
        .unwrap()
        .clone();
    assert_eq!(pod["state"], "healthy", "{pod}");
    let m = get(&client(), gw.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("arena_retries_total{cause=\"overloaded\",route=\"r\"}"),
        "{m}"
    );
}

/// A fake cgroup whose `cpu.stat` a thread advances at `cores_busy` of wall time, with a
/// half-core `cpu.max`.
fn busy_cgroup(dir: &std::path::Path, cores_busy: f64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cpu.max"), "50000 100000\n").unwrap();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut usage = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // Whole files, as the kernel serves them: a reader never sees a half-written one.
            let tmp = dir.join(".cpu.stat");
            std::fs::write(&tmp, format!("usage_usec {usage}\nuser_usec {usage}\nsystem_usec 0\n")).unwrap();
            std::fs::rename(&tmp, dir.join("cpu.stat")).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            usage += (20_000.0 * cores_busy) as u64;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_heavy_app_gets_less_traffic() {
    let scratch = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pods: Vec<Pod> = ["hot", "cool1", "cool2"]
        .iter()
        .map(|n| Pod::start("127.0.0.1", &["--name", n, "--latency", "2ms"]))
        .collect();
    let mut sidecars = Vec::new();
    let mut writers = Vec::new();
    for (i, (pod, busy)) in pods.iter().zip([0.9, 0.02, 0.02]).enumerate() {
        let dir = scratch.path().join(format!("cg{i}"));
        writers.push(busy_cgroup(&dir, busy, Arc::clone(&stop)));
        let cpu = format!("  cpu: {{ cgroup: {}, interval: 100ms }}\n", dir.display());
        sidecars.push(Sidecar::start(&format!("127.0.0.{}", 44 + i), pod.addr, &cpu, ""));
    }
    for s in &sidecars {
        s.wait_ready(200);
    }
    // The hot app's sidecar reads 0.9 / 0.5 cores ≈ 1.8 once it has two samples.
    arena_testkit::wait::until("the hot app's CPU measured", Duration::from_secs(10), || {
        sidecars[0].load()["cpu_utilization"].as_f64().is_some_and(|u| u > 1.2)
    })
    .unwrap();
    assert_eq!(sidecars[0].load()["cpu_source"], "cgroup");
    let gw = gateway(&[&sidecars[0], &sidecars[1], &sidecars[2]]);
    // Sequential: no queueing anywhere, only the reported CPU tells the pods apart.
    let (statuses, served) = load(gw.addr, 300, 1).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(statuses.get(&200), Some(&300), "{statuses:?}");
    let hot = *served.get("hot").unwrap_or(&0);
    assert!(hot * 4 < 300, "the CPU-heavy pod served {hot} of 300: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_with_no_failed_request() {
    let pods: Vec<Pod> = ["a", "b"]
        .iter()
        .map(|n| Pod::start("127.0.0.1", &["--name", n, "--latency", "100ms"]))
        .collect();
    let drain = "server:\n  drain_delay: 500ms\n  grace_period: 5s\n";
    let mut a = Sidecar::start("127.0.0.47", pods[0].addr, "", drain);
    let b = Sidecar::start("127.0.0.48", pods[1].addr, "", drain);
    a.wait_ready(200);
    b.wait_ready(200);
    let gw = gateway(&[&a, &b]);
    let running = tokio::spawn(load(gw.addr, 240, 12));
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.proc.signal("TERM");
    // Draining: not ready at once, still serving.
    let (statuses, served) = running.await.unwrap();
    assert_eq!(statuses.get(&200), Some(&240), "{statuses:?}");
    assert!(served.get("a").is_some_and(|n| *n > 0), "{served:?}");
    arena_testkit::wait::until("the drained sidecar exits", Duration::from_secs(10), || {
        a.proc.0.exited()
    })
    .unwrap();
    let status = a.proc.0.try_status().unwrap();
    assert!(status.success(), "exit {status:?}: {}", a.proc.0.log_tail(20));
}
