//! The workspace's own binaries: where they are, and launchers for `arena-pod` (a sample pod)
//! and `arena-gateway` shared by the gateway's tests and the load tester's fleet.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::Process;

/// How long a pod gets to print its listening line (generous: a fleet may start it on a loaded
/// machine).
pub const POD_READY: Duration = Duration::from_secs(30);

/// The workspace root (this crate lives in `testkit/`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory of the running executable, where cargo puts the workspace's binaries: a test
/// runs from `target/<profile>/deps/`, a binary from `target/<profile>/`.
pub fn bin_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the running executable: {e}"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// A workspace binary (`arena-gateway`, `arena-pod`) next to the running executable.
pub fn bin(name: &str) -> Result<PathBuf, String> {
    let path = bin_dir()?.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`, \
             with `--release` for a release run)",
            path.display()
        ))
    }
}

/// Starts `arena-pod --listen LISTEN ARGS...` (`ip:0` for any port) and waits for its
/// `listening on ADDR` line; returns the process and the address it bound.
pub fn start_pod(name: &str, listen: &str, args: &[&str]) -> Result<(Process, SocketAddr), String> {
    let mut cmd = Command::new(bin("arena-pod")?);
    cmd.arg("--listen").arg(listen).args(args);
    let (proc, line) = Process::spawn_until_line(name, cmd, "listening on", POD_READY)?;
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{name}: no address in `{line}`"))?;
    Ok((proc, addr))
}

/// Changes a pod's fault knobs live (`{"latency_ms": 5}`, `{"stuck": true}`...).
pub fn set_pod(addr: SocketAddr, json: &str) -> Result<(), String> {
    let r = crate::http::call(
        addr,
        "POST",
        "/_pod/config",
        &[("content-type", "application/json")],
        json.as_bytes(),
    )?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("pod {addr} refused knobs {json}: {} {}", r.status, r.text()))
    }
}

/// Runs `BINARY check -c CONFIG` (`arena-gateway`, `arena-sidecar`) with `env` added; `Err`
/// with its diagnostics when the config is invalid.
pub fn check_config(binary: &str, config: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let out = Command::new(bin(binary)?)
        .args(["check", "-c"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run {binary} check: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{binary} config {} invalid:\n{}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// [`check_config`] of `arena-gateway`.
pub fn check_gateway(config: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    check_config("arena-gateway", config, env)
}

/// Checks `config`, then starts `arena-sidecar run -c CONFIG` with `env` added. The caller
/// waits for what it needs (its admin `/healthz`, the app's readiness...).
pub fn start_sidecar(name: &str, config: &Path, env: &[(&str, &str)]) -> Result<Process, String> {
    check_config("arena-sidecar", config, env)?;
    let mut cmd = Command::new(bin("arena-sidecar")?);
    cmd.args(["run", "-c"]).arg(config).envs(env.iter().copied());
    Process::spawn(name, cmd)
}

/// Checks `config`, then starts `arena-gateway run -c CONFIG` with `env` added to its
/// environment. The caller waits for what it needs (listening, `/readyz`...).
pub fn start_gateway(config: &Path, env: &[(&str, &str)]) -> Result<Process, String> {
    check_gateway(config, env)?;
    let mut cmd = Command::new(bin("arena-gateway")?);
    cmd.args(["run", "-c"]).arg(config).envs(env.iter().copied());
    Process::spawn("arena-gateway", cmd)
}

/// Checks `config`, then starts `arena-gateway run -c CONFIG --upgrade` with `env` added: it
/// waits on the config's `server.upgrade_sock` until the running gateway is sent SIGQUIT (see
/// [`crate::wait::unix_listening`] for when it waits).
pub fn start_gateway_upgrade(config: &Path, env: &[(&str, &str)]) -> Result<Process, String> {
    check_gateway(config, env)?;
    let mut cmd = Command::new(bin("arena-gateway")?);
    cmd.args(["run", "--upgrade", "-c"])
        .arg(config)
        .envs(env.iter().copied());
    Process::spawn("arena-gateway (upgrade)", cmd)
}
