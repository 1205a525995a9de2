//! File descriptors for thousands of abusive connections: the open-file limit raised up to the
//! hard limit, and source-address binds that do not reserve a port.

use serde::Serialize;

/// The process's open-file limit after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised (equal to `soft` when it was enough).
    pub was: u64,
}

/// Raises the soft open-file limit towards `wanted` (at most to the hard limit); the limits
/// afterwards, or `None` where they cannot be read. Processes started later (a fleet's
/// gateway) inherit it.
#[cfg(target_os = "linux")]
pub fn raise_fd_limit(wanted: u64) -> Option<FdLimit> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= wanted {
        return Some(FdLimit { soft, hard, was: soft });
    }
    let new = wanted.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
        Ok(()) => Some(FdLimit {
            soft: new,
            hard,
            was: soft,
        }),
        Err(_) => Some(FdLimit { soft, hard, was: soft }),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn raise_fd_limit(_wanted: u64) -> Option<FdLimit> {
    None
}

/// Descriptors open in this process now.
pub(super) fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// `IP_BIND_ADDRESS_NO_PORT`: the port is picked at connect time, per destination, so a few
/// source addresses can hold many connections. Best effort (IPv4 only).
#[cfg(target_os = "linux")]
pub(super) fn bind_without_port(sock: &tokio::net::TcpSocket) {
    let _ = nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::IpBindAddressNoPort, &true);
}

#[cfg(not(target_os = "linux"))]
pub(super) fn bind_without_port(_sock: &tokio::net::TcpSocket) {}
