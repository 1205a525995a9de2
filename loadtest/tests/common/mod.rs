//! Helpers shared by the integration tests: an in-process pod, scratch directories, and running
//! the `arena-loadtest` binary and reading the report it wrote.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use arena_pod::{bind, PodConfig};
use arena_testkit::Scratch;

/// Load tests share two cores: run them one at a time so they measure the target, not each other.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts an in-process `arena-pod` on `ip:0`.
pub async fn pod(ip: &str) -> SocketAddr {
    let pod = bind(PodConfig::new(format!("{ip}:0").parse().unwrap())).await.unwrap();
    let addr = pod.local_addr();
    tokio::spawn(pod.run());
    addr
}

/// A fresh, empty scratch directory for one test (`arena-lt-{name}-XXXXXX` in the temp dir),
/// removed on drop unless the test fails; `ARENA_LT_KEEP_REPORT=1` keeps it (and its reports).
pub fn scratch(name: &str) -> Scratch {
    let mut dir = Scratch::new(&format!("lt-{name}")).unwrap();
    if std::env::var_os("ARENA_LT_KEEP_REPORT").is_some() {
        dir.keep();
    }
    dir
}

/// Writes `body` to `dir/name`; returns the file's path.
pub fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// The `arena-loadtest` binary under test.
pub fn loadtest_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arena-loadtest"))
}

/// `run SCENARIO --quiet --threads 1 --out OUT EXTRA...`
pub fn run_args(scenario: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["run", scenario, "--quiet", "--threads", "1", "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Exit status, stdout and stderr of a finished run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON report a run wrote into `dir`.
pub fn json_report(dir: &Path) -> serde_json::Value {
    let json = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("JSON report");
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

/// Runs `cmd` to the end like [`Command::output`], but within `limit`: past it the run gets a
/// Ctrl-C (so it still stops its fleet), then a kill, and the test fails with what it printed.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let now = Instant::now();
        if now >= deadline + Duration::from_secs(15) {
            let _ = child.kill();
        } else if now >= deadline && !interrupted {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(!interrupted, "still running after {limit:?}:\n{}", text(&out));
    out
}
