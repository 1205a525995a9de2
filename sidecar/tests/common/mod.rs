//! Starts the real `arena-sidecar` binary in front of a sample pod on loopback, with the
//! gateway tests' helpers (pods, gateway, HTTP client) alongside.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arena_testkit::free_addr;

#[path = "../../../gateway/tests/support/mod.rs"]
pub mod support;

use support::procs::{Proc, TempDir};

pub const READY: Duration = Duration::from_secs(20);

/// A running sidecar.
pub struct Sidecar {
    /// The pod port the gateway dials.
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub proc: Proc,
    pub dir: TempDir,
}

impl Sidecar {
    /// A sidecar on `ip` (a free port) in front of `app`, with extra `inbound:` lines (each
    /// indented two spaces) and extra top-level text. Returns once its admin answers.
    pub fn start(ip: &str, app: SocketAddr, inbound_extra: &str, extra: &str) -> Sidecar {
        let addr = free_addr(ip).unwrap();
        let admin = free_addr("127.0.0.1").unwrap();
        let dir = TempDir::new("sidecar");
        let config = dir.0.file("sidecar.yaml");
        std::fs::write(
            &config,
            format!(
                "inbound:\n  listen: {addr}\n  app: {app}\n  app_check: {{ interval: 100ms }}\n{inbound_extra}admin:\n  address: {admin}\n{extra}"
            ),
        )
        .unwrap();
        let proc = arena_testkit::arena::start_sidecar("arena-sidecar", &config, &[]).unwrap_or_else(|e| panic!("{e}"));
        let mut proc = Proc(proc);
        proc.0
            .wait_http_ok(admin, "/healthz", READY)
            .unwrap_or_else(|e| panic!("{e}"));
        proc.0.wait_listening(addr, READY).unwrap_or_else(|e| panic!("{e}"));
        Sidecar {
            addr,
            admin,
            config,
            proc,
            dir,
        }
    }

    /// Waits until `/readyz` answers `status`.
    pub fn wait_ready(&self, status: u16) {
        arena_testkit::wait::until(&format!("sidecar /readyz {status}"), READY, || {
            arena_testkit::http::call(self.admin, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == status)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn admin_get(&self, path: &str) -> arena_testkit::http::Reply {
        arena_testkit::http::call(self.admin, "GET", path, &[], b"").unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn load(&self) -> serde_json::Value {
        serde_json::from_slice(&self.admin_get("/load").body).unwrap()
    }

    /// The value of a metric line starting with `series` (name and labels).
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.admin_get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

/// The `key=value` of an ORCA TEXT report.
pub fn orca(report: &str, key: &str) -> Option<f64> {
    report.strip_prefix("TEXT ")?.split(", ").find_map(|p| {
        p.split_once('=')
            .filter(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
    })
}
