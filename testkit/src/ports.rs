//! Free ports on loopback addresses for the processes a test or a fleet starts.
//!
//! Chosen below the kernel's ephemeral range: a port-0 bind would come from that range, where
//! any outgoing connection (of a parallel test, or of the load itself) may take the port before
//! the child binds it. A port is never handed out twice by one process.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Mutex, PoisonError};

/// Lowest port handed out: clear of the well-known and most registered service ports.
const LOW: u16 = 10_000;
/// The ephemeral range's start when `/proc` does not say (Linux's default).
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
const ATTEMPTS: usize = 500;

static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// First port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// Both TCP and UDP are free: a DNS server takes its port for both.
fn free_on(ip: Ipv4Addr, port: u16) -> bool {
    let tcp = TcpListener::bind((ip, port));
    let udp = UdpSocket::bind((ip, port));
    tcp.is_ok() && udp.is_ok()
}

/// A port free for TCP and UDP on every one of `ips` (127.0.0.1 when empty) right now.
///
/// Only loopback addresses are accepted: nothing the kit starts may listen elsewhere.
pub fn free_port(ips: &[Ipv4Addr]) -> Result<u16, String> {
    let ips = if ips.is_empty() {
        &[Ipv4Addr::LOCALHOST][..]
    } else {
        ips
    };
    if let Some(ip) = ips.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!("{ip} is not a loopback address (127.0.0.0/8)"));
    }
    let low = ephemeral_low();
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..ATTEMPTS {
        let port = if low > LOW + 1_000 {
            LOW + rand::random::<u16>() % (low - LOW)
        } else {
            // No room below the ephemeral range: take what the kernel gives.
            let l = TcpListener::bind((ips[0], 0)).map_err(|e| format!("bind {}:0: {e}", ips[0]))?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        if !given.contains(&port) && ips.iter().all(|ip| free_on(*ip, port)) {
            given.insert(port);
            return Ok(port);
        }
    }
    let list: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    Err(format!(
        "no port free for TCP and UDP on {} after {ATTEMPTS} tries",
        list.join(", ")
    ))
}

/// A free address on the loopback IPv4 address `ip` (`"127.0.0.1"`; see [`free_port`]).
pub fn free_addr(ip: &str) -> Result<SocketAddr, String> {
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("`{ip}` is not an IPv4 address: {e}"))?;
    Ok(SocketAddr::from((ip, free_port(&[ip])?)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ports_are_free_below_the_ephemeral_range_and_never_repeat() {
        let ips = [Ipv4Addr::new(127, 0, 0, 201), Ipv4Addr::new(127, 0, 0, 202)];
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let port = free_port(&ips).unwrap();
            assert!(port < ephemeral_low() || ephemeral_low() <= LOW + 1_000, "{port}");
            assert!(seen.insert(port), "{port} handed out twice");
            for ip in ips {
                assert!(free_on(ip, port), "{ip}:{port} not free");
            }
        }
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let err = free_addr("10.0.0.1").unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
    }
}
