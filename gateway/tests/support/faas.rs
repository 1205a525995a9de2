//! Real FaaS runtimes on loopback for the gateway's fallback invokers: the Functions Framework
//! (an HTTP function, `loadtest/faas/http/main.py`) and serverless-offline (the AWS Lambda
//! Invoke API for `loadtest/faas/lambda/handler.js`). Both are installed by
//! `deploy/local/faas-setup.sh`; each runs in its own process group, killed whole on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::procs::{free_addr, TempDir};

/// Installs both runtimes; named in every "missing" panic.
pub const SETUP: &str = "deploy/local/faas-setup.sh";

/// Name the Lambda emulator exposes `verify` under: `<service>-<stage>-<function>`.
pub const LAMBDA_FUNCTION: &str = "arena-faas-dev-verify";

/// The workspace root (`gateway/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A child leading its own process group, with stdout and stderr in a log file. The whole group
/// (the child and anything it forked, e.g. gunicorn workers) is killed and the child reaped on
/// drop.
pub struct ProcGroup {
    child: Option<Child>,
    pgid: u32,
    pub name: String,
    pub log: PathBuf,
    _dir: TempDir,
}

impl ProcGroup {
    pub fn spawn(name: &str, mut cmd: Command) -> ProcGroup {
        let dir = TempDir::new(name);
        let log = dir.0.join("output.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ProcGroup {
            pgid: child.id(),
            child: Some(child),
            name: name.to_string(),
            log,
            _dir: dir,
        }
    }

    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// The process group still runs (its leader has not exited).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The last `n` bytes of what the group printed, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&text[text.len().saturating_sub(n)..]).into_owned()
    }

    fn signal_group(&self, sig: &str) {
        // Fails harmlessly (ESRCH) once every member is gone.
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg("--")
            .arg(format!("-{}", self.pgid))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to the group.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        self.signal_group("TERM");
        let deadline = Instant::now() + grace;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group("KILL");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL to the whole group at once: the runtime crashes.
    pub fn kill_now(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        self.signal_group("KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ProcGroup {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); `None` on any transport
/// failure. Returns the status and body.
pub fn http_call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, raw[start..].to_vec()))
}

/// Polls `probe` every 100 ms until it holds, panicking (with the runtime's output) when `proc`
/// exits or `limit` passes. Returns how long it took.
fn wait_ready(proc: &mut ProcGroup, limit: Duration, what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if probe() {
            return start.elapsed();
        }
        if !proc.running() {
            panic!(
                "{} exited before {what}; its output:\n{}",
                proc.name,
                proc.log_tail(4000)
            );
        }
        if start.elapsed() > limit {
            panic!(
                "{} not ready ({what}) within {limit:?}; its output:\n{}",
                proc.name,
                proc.log_tail(4000)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{} is missing ({what}): run `{SETUP}` first (installs functions-framework into target/faas/venv \
         and serverless-offline into loadtest/faas/lambda/node_modules)",
        path.display()
    );
}

/// `loadtest/faas/http/main.py` served by the Functions Framework (gunicorn) on a free loopback
/// port, like a Cloud Run function.
pub struct HttpFunction {
    pub addr: SocketAddr,
    /// How long the runtime took to answer its health check.
    pub started_in: Duration,
    proc: ProcGroup,
}

impl HttpFunction {
    pub fn start() -> HttpFunction {
        let root = repo_root();
        let ff = root.join("target/faas/venv/bin/functions-framework");
        require(&ff, "the Functions Framework venv");
        let source = root.join("loadtest/faas/http/main.py");
        let addr = free_addr("127.0.0.1");
        let mut cmd = Command::new(&ff);
        cmd.arg("--target=handler")
            .arg("--source")
            .arg(&source)
            .arg("--host")
            .arg(addr.ip().to_string())
            .arg("--port")
            .arg(addr.port().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        let mut proc = ProcGroup::spawn("faas-http", cmd);
        let started_in = wait_ready(
            &mut proc,
            Duration::from_secs(30),
            "GET /_fn/healthz answered 200",
            || matches!(http_call(addr, "GET", "/_fn/healthz", b""), Some((200, _))),
        );
        HttpFunction { addr, started_in, proc }
    }

    /// Base URL for `FaasTarget::Http`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL to the runtime and its workers: the function goes down.
    pub fn kill(&mut self) {
        self.proc.kill_now();
    }
}

/// `loadtest/faas/lambda` run by `serverless offline`: the Lambda Invoke API on `endpoint` and
/// the same function behind an emulated API Gateway (HTTP API) on `http_addr`.
pub struct LambdaEmulator {
    /// `http://127.0.0.1:<lambdaPort>`, for `FaasTarget::AwsLambda { endpoint }`.
    pub endpoint: String,
    pub lambda_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// How long until the first invocation (a cold start) answered.
    pub started_in: Duration,
    proc: ProcGroup,
}

impl LambdaEmulator {
    pub fn start() -> LambdaEmulator {
        let dir = repo_root().join("loadtest/faas/lambda");
        let sls = dir.join("node_modules/.bin/serverless");
        require(&sls, "serverless + serverless-offline");
        let lambda_addr = free_addr("127.0.0.1");
        let mut http_addr = free_addr("127.0.0.1");
        while http_addr == lambda_addr {
            http_addr = free_addr("127.0.0.1");
        }
        let mut cmd = Command::new(&sls);
        cmd.current_dir(&dir)
            .args(["offline", "start", "--host", "127.0.0.1", "--lambdaPort"])
            .arg(lambda_addr.port().to_string())
            .arg("--httpPort")
            .arg(http_addr.port().to_string())
            // Fully offline: no telemetry, no notification fetches, no prompts, plain output.
            .env("SLS_TELEMETRY_DISABLED", "1")
            .env("SLS_NOTIFICATIONS_MODE", "off")
            .env("SLS_INTERACTIVE_SETUP_DISABLE", "1")
            .env("SLS_DEPRECATION_DISABLE", "*")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0");
        let mut proc = ProcGroup::spawn("faas-lambda", cmd);
        let path = format!("/2015-03-31/functions/{LAMBDA_FUNCTION}/invocations");
        let event = br#"{"version":"2.0","rawPath":"/_fn/healthz","requestContext":{"http":{"method":"GET"}}}"#;
        let started_in = wait_ready(
            &mut proc,
            Duration::from_secs(60),
            "the Invoke API answered",
            || matches!(http_call(lambda_addr, "POST", &path, event), Some((200, body)) if body.windows(11).any(|w| w == b"faas-lambda")),
        );
        LambdaEmulator {
            endpoint: format!("http://{lambda_addr}"),
            lambda_addr,
            http_addr,
            started_in,
            proc,
        }
    }

    /// Stops the emulator (TERM, then KILL to its process group): the function goes down.
    pub fn stop(&mut self) {
        self.proc.stop(Duration::from_secs(2));
    }
}
