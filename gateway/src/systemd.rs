//! systemd's notify protocol for `Type=notify` units: once the process serves it sends
//! `READY=1` and `MAINPID=<its pid>` to `$NOTIFY_SOCKET`. After an upgrade, `arena-gateway
//! upgrade` (the unit's `ExecReload` control process, which `NotifyAccess=exec` lets speak)
//! names the new process as the main one, so systemd follows it rather than the old one that
//! is about to exit.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable systemd passes the notify socket in.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd this process is the service's main process and ready; `Ok(false)` when not
/// run by systemd (`NOTIFY_SOCKET` unset).
pub fn notify_ready() -> io::Result<bool> {
    notify(&format!("READY=1\nMAINPID={}\n", std::process::id()))
}

/// Tells systemd that `pid` is now the service's main process, and ready.
pub fn notify_main(pid: u32) -> io::Result<bool> {
    notify(&format!("MAINPID={pid}\nREADY=1\n"))
}

fn notify(message: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let target = target.to_string_lossy();
    match target.strip_prefix('@') {
        // An abstract socket name (what systemd normally passes).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(message.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(message.as_bytes(), target.as_ref())?;
        }
    }
    Ok(true)
}
