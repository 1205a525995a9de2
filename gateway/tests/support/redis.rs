//! A real `redis-server` on a free loopback port, killed when the test ends.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use super::procs::Proc;

/// Starts redis-server (no persistence) and waits until it listens.
pub fn start() -> (Proc, SocketAddr) {
    let (proc, addr) = arena_testkit::redis::start().unwrap_or_else(|e| panic!("{e}"));
    (Proc(proc), addr)
}
