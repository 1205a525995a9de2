//! Starts the real `arena-gateway` binary on free loopback ports with a test configuration,
//! and `arena-pod` sample pods, each killed when the test ends.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arena_testkit::free_addr;

use super::procs::{Proc, TempDir};

/// Bearer token the test gateways accept for mutating admin calls.
pub const TOKEN: &str = "test-token";

/// A running gateway process.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    server_extra: String,
    admin_extra: String,
    pub proc: Proc,
    _dir: TempDir,
}

impl Gateway {
    /// The listener/admin header every test config starts with.
    pub fn header(addr: SocketAddr, admin: SocketAddr, server_extra: &str) -> String {
        Self::header_with(addr, admin, "", server_extra)
    }

    /// Like [`Gateway::header`], with extra `admin:` lines (each indented two spaces).
    fn header_with(addr: SocketAddr, admin: SocketAddr, admin_extra: &str, server_extra: &str) -> String {
        format!(
            "listeners:\n  - name: public\n    address: {addr}\nadmin:\n  address: {admin}\n  token_env: ARENA_TEST_ADMIN_TOKEN\n{admin_extra}debug_headers: true\nserver:\n  threads: 2\n  watch_debounce: 200ms\n{server_extra}"
        )
    }

    fn own_header(&self) -> String {
        Self::header_with(self.addr, self.admin, &self.admin_extra, &self.server_extra)
    }

    /// Starts a gateway whose config is the standard header plus `body` (clusters, routes...).
    pub fn start(body: &str) -> Gateway {
        Self::start_with("", body)
    }

    /// Like [`Gateway::start`], with extra `server:` lines (each indented two spaces).
    pub fn start_with(server_extra: &str, body: &str) -> Gateway {
        Self::launch(server_extra, body, Layout::Plain, &[])
    }

    /// Like [`Gateway::start`], with extra `admin:` lines (each indented two spaces) and `env`
    /// added to the gateway process's environment.
    pub fn start_admin(admin_extra: &str, body: &str, env: &[(&str, &str)]) -> Gateway {
        Self::launch_with(admin_extra, "", body, Layout::Plain, env)
    }

    /// Like [`Gateway::start`], with `env` added to the gateway process's environment (e.g.
    /// AWS credentials), leaving the test process's own environment alone.
    pub fn start_with_env(body: &str, env: &[(&str, &str)]) -> Gateway {
        Self::launch("", body, Layout::Plain, env)
    }

    /// Like [`Gateway::start`], with the config laid out as a Kubernetes ConfigMap volume does
    /// it: `gateway.yaml -> ..data/gateway.yaml`, `..data -> ..v1` (see [`Gateway::update_configmap`]).
    pub fn start_configmap(body: &str) -> Gateway {
        Self::launch("", body, Layout::ConfigMap, &[])
    }

    /// Like [`Gateway::start`], with `gateway.yaml` a symlink to `real/gateway.yaml` (a deploy
    /// tool's checkout); [`Gateway::write_real`] edits the target in place.
    pub fn start_symlinked(body: &str) -> Gateway {
        Self::launch("", body, Layout::Symlinked, &[])
    }

    /// Rewrites the symlink target of a [`Gateway::start_symlinked`] config in place.
    pub fn write_real(&self, body: &str) {
        let real = self.config.parent().unwrap().join("real/gateway.yaml");
        std::fs::write(real, format!("{}{body}", self.own_header())).unwrap();
    }

    fn launch(server_extra: &str, body: &str, layout: Layout, env: &[(&str, &str)]) -> Gateway {
        Self::launch_with("", server_extra, body, layout, env)
    }

    fn launch_with(admin_extra: &str, server_extra: &str, body: &str, layout: Layout, env: &[(&str, &str)]) -> Gateway {
        let dir = TempDir::new("gw");
        let addr = free_addr("127.0.0.1").unwrap();
        let admin = free_addr("127.0.0.1").unwrap();
        let config = dir.0.join("gateway.yaml");
        let text = format!("{}{body}", Self::header_with(addr, admin, admin_extra, server_extra));
        match layout {
            Layout::Plain => std::fs::write(&config, text).unwrap(),
            Layout::ConfigMap => {
                configmap_version(&dir.0, 1, &text);
                std::os::unix::fs::symlink("..data/gateway.yaml", &config).unwrap();
            }
            Layout::Symlinked => {
                std::fs::create_dir(dir.0.join("real")).unwrap();
                std::fs::write(dir.0.join("real/gateway.yaml"), text).unwrap();
                std::os::unix::fs::symlink(dir.0.join("real/gateway.yaml"), &config).unwrap();
            }
        }
        // Logs go to the process's log file, quoted when a test fails; ARENA_TEST_LOG=info
        // raises their level, ARENA_KEEP_SCRATCH=1 keeps them after a passing test too.
        let level = std::env::var("ARENA_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut env_all = vec![("ARENA_TEST_ADMIN_TOKEN", TOKEN), ("RUST_LOG", level.as_str())];
        env_all.extend_from_slice(env);
        let mut proc = Proc(arena_testkit::arena::start_gateway(&config, &env_all).unwrap_or_else(|e| panic!("{e}")));
        for a in [addr, admin] {
            proc.wait_listening(a, Duration::from_secs(15))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        Gateway {
            addr,
            admin,
            config,
            server_extra: server_extra.to_string(),
            admin_extra: admin_extra.to_string(),
            proc,
            _dir: dir,
        }
    }

    /// Updates a [`Gateway::start_configmap`] config the way the kubelet's atomic writer does:
    /// a new `..vN` directory, `..data_tmp -> ..vN` renamed over `..data`, the old one removed.
    pub fn update_configmap(&self, version: u32, body: &str) {
        let dir = self.config.parent().unwrap();
        configmap_version(dir, version, &format!("{}{body}", self.own_header()));
        std::fs::remove_dir_all(dir.join(format!("..v{}", version - 1))).unwrap();
    }

    /// Rewrites the config file (same listeners/admin) with a new body.
    pub fn write_body(&self, body: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, format!("{}{body}", self.own_header())).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }
}

/// How a test gateway's config file is laid out on disk.
enum Layout {
    Plain,
    ConfigMap,
    Symlinked,
}

/// Writes `..vN/gateway.yaml` in `dir` and points `..data` at it atomically (symlink + rename).
fn configmap_version(dir: &std::path::Path, version: u32, text: &str) {
    let versioned = format!("..v{version}");
    std::fs::create_dir(dir.join(&versioned)).unwrap();
    std::fs::write(dir.join(&versioned).join("gateway.yaml"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&versioned, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

/// A running sample pod.
pub struct Pod {
    pub addr: SocketAddr,
    pub proc: Proc,
}

impl Pod {
    /// Starts `arena-pod` on `ip` (a free port) with extra flags.
    pub fn start(ip: &str, args: &[&str]) -> Pod {
        Self::start_at(&format!("{ip}:0"), args)
    }

    /// Starts `arena-pod` on an exact `ip:port` (DNS tests give every pod the same port).
    pub fn start_at(listen: &str, args: &[&str]) -> Pod {
        let (proc, addr) = arena_testkit::arena::start_pod("arena-pod", listen, args).unwrap_or_else(|e| panic!("{e}"));
        Pod { addr, proc: Proc(proc) }
    }

    /// Changes the pod's fault knobs live (`{"latency_ms": 5}`, `{"stuck": true}`...).
    pub fn set(&self, json: &str) {
        arena_testkit::arena::set_pod(self.addr, json).unwrap_or_else(|e| panic!("{e}"));
    }
}
