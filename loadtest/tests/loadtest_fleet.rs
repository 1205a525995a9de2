//! Scenarios that bring up their own fleet (gateway + pods as real processes) and break it on a
//! timeline: the run must serve through a pod crash, record the fault markers, and `check`
//! must point at fleet/fault mistakes with `file:line:col`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arena-lt-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SCENARIO: &str = r#"name: fleet-crash
mode: open
http: { connections: 16, timeout: 3s }
stages:
  - { duration: 6s, rate: 100 }
requests:
  - { method: GET, path: "/v1/matches/{m}/live" }
vars:
  m: { pick: [a, b] }
fleet:
  pods:
    - { name: pod-1, ip: 127.0.0.151, args: [--latency, 1ms] }
    - { name: pod-2, ip: 127.0.0.152, args: [--latency, 1ms] }
  gateway:
    config: |
      clusters:
        - name: api
          endpoints: ["${pod:pod-1}", "${pod:pod-2}"]
          connect_timeout: 100ms
      routes:
        - name: api
          match: { path_prefix: /v1 }
          cluster: api
          retry: { attempts: 2, on: [connect_failure, reset] }
faults:
  - { at: 2s, pod: pod-2, action: crash, label: "pod-2 crashes" }
  - { at: 4s, pod: pod-2, action: restart }
thresholds: ["errors < 0.1%", "share(127.0.0.151) > 40%"]
"#;

#[test]
fn fleet_survives_a_pod_crash_and_records_markers() {
    let dir = scratch("run");
    let file = dir.join("fleet-crash.yaml");
    std::fs::write(&file, SCENARIO).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arena-loadtest"))
        .args(["run", "--quiet", "--threads", "1", "--out"])
        .arg(&dir)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("pod-2 crashes"), "{stdout}");
    assert!(stdout.contains("pod-2 restarts"), "{stdout}");
    let json = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("JSON report");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let labels: Vec<String> = report["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["pod-2 crashes", "pod-2 restarts"]);
    // Nothing the fleet started outlives the run.
    let left = Command::new("pgrep").args(["-f", "127.0.0.15[12]"]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_points_at_fleet_and_fault_mistakes() {
    let dir = scratch("check");
    let file = dir.join("bad.yaml");
    let bad = SCENARIO
        .replace("ip: 127.0.0.152", "ip: 10.0.0.2")
        .replace(
            "{ at: 4s, pod: pod-2, action: restart }",
            "{ at: 4s, pod: pod-9, action: restart }",
        )
        .replace("${pod:pod-2}", "${pod:pod-3}");
    std::fs::write(&file, bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arena-loadtest"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("must be a 127.x.y.z address") && err.contains("bad.yaml:13:26"),
        "{err}"
    );
    assert!(err.contains("unknown fleet member `${pod:pod-3}`"), "{err}");
    assert!(
        err.contains("fault names unknown pod `pod-9`") && err.contains("did you mean `pod-1`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateway_restart_fault_brings_it_back() {
    let dir = scratch("restart");
    let file = dir.join("restart.yaml");
    let text = SCENARIO
        .replace("name: fleet-crash", "name: fleet-restart")
        .replace("127.0.0.151", "127.0.0.153")
        .replace("127.0.0.152", "127.0.0.154")
        .replace(
            "  - { at: 2s, pod: pod-2, action: crash, label: \"pod-2 crashes\" }\n  - { at: 4s, pod: pod-2, action: restart }\n",
            "  - { at: 2s, action: restart_gateway }\n",
        )
        // A restart drops what is in flight; the run must recover, not be perfect.
        .replace("thresholds: [\"errors < 0.1%\", \"share(127.0.0.153) > 40%\"]", "thresholds: [\"errors < 40%\"]");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arena-loadtest"))
        .args(["run", "--quiet", "--threads", "1", "--out"])
        .arg(&dir)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("gateway restarts") && !stdout.contains("failed:"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
