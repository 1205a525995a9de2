//! A real `redis-server` on a free loopback port, killed when the test ends.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use arena_testkit::free_addr;

use super::procs::{wait_listening, Proc};

/// Starts redis-server (no persistence) and waits until it listens.
pub fn start() -> (Proc, SocketAddr) {
    let addr = free_addr("127.0.0.1").unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &addr.port().to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .stdout(std::process::Stdio::null());
    let proc = Proc::spawn("redis-server", cmd);
    wait_listening(addr, Duration::from_secs(10));
    (proc, addr)
}
