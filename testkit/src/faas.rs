//! Real FaaS runtimes on loopback: the Functions Framework (an HTTP function,
//! `loadtest/faas/http/main.py`) and serverless-offline (the AWS Lambda Invoke API for
//! `loadtest/faas/lambda/handler.js`). Both are installed by `deploy/local/faas-setup.sh`; each
//! runs in its own process group, killed whole on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::arena::repo_root;
use crate::ports::free_addr;
use crate::process::Process;

/// Installs both runtimes; named in every "missing" error.
pub const SETUP: &str = "deploy/local/faas-setup.sh";

/// Name the Lambda emulator exposes `verify` under: `<service>-<stage>-<function>`.
pub const LAMBDA_FUNCTION: &str = "arena-faas-dev-verify";

/// How long the Functions Framework gets to answer its health check (gunicorn boots workers).
pub const HTTP_READY: Duration = Duration::from_secs(30);
/// How long serverless-offline gets to answer a first (cold) invocation.
pub const LAMBDA_READY: Duration = Duration::from_secs(60);
/// Grace between SIGTERM and SIGKILL when a runtime is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

fn require(path: &Path, what: &str) -> Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!(
            "{} is missing ({what}): run `{SETUP}` first (installs functions-framework into target/faas/venv \
             and serverless-offline into loadtest/faas/lambda/node_modules)",
            path.display()
        ))
    }
}

/// The Functions Framework's launcher in the venv of `deploy/local/faas-setup.sh`.
pub fn functions_framework() -> Result<PathBuf, String> {
    let ff = repo_root().join("target/faas/venv/bin/functions-framework");
    require(&ff, "the Functions Framework venv")?;
    Ok(ff)
}

/// `loadtest/faas/http/main.py` served by the Functions Framework (gunicorn), like a Cloud Run
/// function.
pub struct HttpFunction {
    pub addr: SocketAddr,
    /// How long the runtime took to answer its health check.
    pub started_in: Duration,
    proc: Process,
}

impl HttpFunction {
    /// Starts the function on a free port of 127.0.0.1.
    pub fn start() -> Result<HttpFunction, String> {
        Self::start_at("faas-http", free_addr("127.0.0.1")?)
    }

    /// Starts the function as `name` on `addr` (a fleet restarts it on the same address) and
    /// waits until `GET /_fn/healthz` answers 200.
    pub fn start_at(name: &str, addr: SocketAddr) -> Result<HttpFunction, String> {
        let ff = functions_framework()?;
        let mut cmd = Command::new(&ff);
        cmd.arg("--target=handler")
            .arg("--source")
            .arg(repo_root().join("loadtest/faas/http/main.py"))
            .arg("--host")
            .arg(addr.ip().to_string())
            .arg("--port")
            .arg(addr.port().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        let mut proc = Process::spawn(name, cmd)?;
        let started_in = proc.wait_http_ok(addr, "/_fn/healthz", HTTP_READY)?;
        Ok(HttpFunction { addr, started_in, proc })
    }

    /// Base URL for `FaasTarget::Http`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL to the runtime and its workers: the function goes down.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.proc
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
    proc: Process,
}

impl LambdaEmulator {
    pub fn start() -> Result<LambdaEmulator, String> {
        let dir = repo_root().join("loadtest/faas/lambda");
        let sls = dir.join("node_modules/.bin/serverless");
        require(&sls, "serverless + serverless-offline")?;
        // Never equal: the port picker does not hand out a port twice.
        let lambda_addr = free_addr("127.0.0.1")?;
        let http_addr = free_addr("127.0.0.1")?;
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
        let mut proc = Process::spawn("faas-lambda", cmd)?;
        let path = format!("/2015-03-31/functions/{LAMBDA_FUNCTION}/invocations");
        let event = br#"{"version":"2.0","rawPath":"/_fn/healthz","requestContext":{"http":{"method":"GET"}}}"#;
        let invoked = || {
            crate::http::call(
                lambda_addr,
                "POST",
                &path,
                &[("content-type", "application/json")],
                event,
            )
            .is_ok_and(|r| r.status == 200 && r.body.windows(11).any(|w| w == b"faas-lambda"))
        };
        let started_in = proc.wait_until("the Invoke API answered", LAMBDA_READY, invoked)?;
        Ok(LambdaEmulator {
            endpoint: format!("http://{lambda_addr}"),
            lambda_addr,
            http_addr,
            started_in,
            proc,
        })
    }

    /// Stops the emulator (TERM, then KILL to its process group): the function goes down.
    pub fn stop(&mut self) {
        self.proc.stop(STOP_GRACE);
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.proc
    }
}
