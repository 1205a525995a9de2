//! A real `redis-server` on a free loopback port (no persistence), killed with its guard.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::{free_addr, Process};

/// Starts redis-server on 127.0.0.1 and waits until it listens.
pub fn start() -> Result<(Process, SocketAddr), String> {
    let addr = free_addr("127.0.0.1")?;
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
    ]);
    let mut proc = Process::spawn("redis-server", cmd)?;
    proc.wait_listening(addr, Duration::from_secs(10))?;
    Ok((proc, addr))
}
