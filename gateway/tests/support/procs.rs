//! Child processes and ports for integration tests: thin panicking layers over
//! `arena_testkit` (a failing harness call fails the test, with the kit's message).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use arena_testkit::Scratch;

/// Path of a workspace binary in the same target profile directory as this test.
pub fn bin(name: &str) -> PathBuf {
    // Cargo names the binary for the gateway's own tests; others (the sidecar's) find it
    // beside them.
    if let (true, Some(path)) = (name == "arena-gateway", option_env!("CARGO_BIN_EXE_arena-gateway")) {
        return PathBuf::from(path);
    }
    arena_testkit::bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// A child process (leading its own process group), killed whole and reaped on drop; its
/// output is in a log file that a failing test keeps and quotes.
pub struct Proc(pub arena_testkit::Process);

impl Proc {
    /// Spawns `cmd` and waits up to `timeout` for a stdout line containing `ready`; returns the
    /// process and that line.
    pub fn spawn_until(name: &str, cmd: Command, ready: &str, timeout: Duration) -> (Proc, String) {
        let (proc, line) =
            arena_testkit::Process::spawn_until_line(name, cmd, ready, timeout).unwrap_or_else(|e| panic!("{e}"));
        (Proc(proc), line)
    }

    /// Spawns `cmd` without waiting for output.
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        Proc(arena_testkit::Process::spawn(name, cmd).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Sends a signal by name (`HUP`, `TERM`, `STOP`, ...).
    pub fn signal(&self, sig: &str) {
        self.0.signal(sig).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Deref for Proc {
    type Target = arena_testkit::Process;

    fn deref(&self) -> &arena_testkit::Process {
        &self.0
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut arena_testkit::Process {
        &mut self.0
    }
}

/// Waits until a TCP connect to `addr` succeeds.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) {
    arena_testkit::wait::listening(addr, timeout).unwrap_or_else(|e| panic!("{e}"));
}

/// A scratch directory (`dir.0` derefs to its path), removed on drop unless the test fails.
pub struct TempDir(pub Scratch);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(Scratch::new(tag).unwrap_or_else(|e| panic!("{e}")))
    }
}

/// Runs `arena-sidecar certs ARGS` (a dev CA, workload certificates); panics with its stderr.
pub fn sidecar_certs(args: &[&str]) {
    let out = Command::new(bin("arena-sidecar"))
        .arg("certs")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "arena-sidecar certs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
