//! Zero-downtime binary upgrade, on top of pingora's: a new process started with `run
//! --upgrade` listens on `server.upgrade_sock`; the running one, on SIGQUIT, sends it every
//! listening socket (each proxy listener and the admin listener) over that socket, accepts
//! beside it for pingora's 5 s, then stops accepting and gives the requests it still has
//! `server.grace_period` before it exits.
//!
//! What this module adds around that: the running process honours SIGQUIT only while a new
//! process really waits on the socket (pingora would otherwise shut the only server down),
//! `run --upgrade` checks that it can make the socket before pingora tries (pingora panics when
//! it cannot), and [`upgrade`] is the one command that starts the new process, waits until it
//! waits, signals the old one and waits for the handover — leaving the old process untouched
//! whenever the new one fails before it.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pingora::server::ExecutionPhase;
use tokio::sync::broadcast;

/// The kernel's table of Unix sockets (Linux; pingora's upgrade is Linux-only too).
const UNIX_SOCKETS: &str = "/proc/net/unix";
/// `__SO_ACCEPTCON` in that table's flags: the socket listens.
const SO_ACCEPTCON: u32 = 1 << 16;
/// Pause between two looks at the new process.
const POLL: Duration = Duration::from_millis(20);

/// A new process listens on `sock` now, waiting for the listening sockets.
///
/// Read from the kernel's socket table rather than by connecting: the new process takes the
/// first connection it accepts for the transfer, so a probe would spoil it.
pub fn successor_waiting(sock: &Path) -> bool {
    std::fs::read(UNIX_SOCKETS).is_ok_and(|table| listening_in(&String::from_utf8_lossy(&table), sock))
}

/// Whether `table` (the text of `/proc/net/unix`) has a listening socket bound at `sock`.
fn listening_in(table: &str, sock: &Path) -> bool {
    let want = sock.to_string_lossy();
    // Columns: Num RefCount Protocol Flags Type St Inode Path; the path may hold spaces.
    table.lines().skip(1).any(|line| {
        let flags = line.split_whitespace().nth(3);
        let listening = flags
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .is_some_and(|f| f & SO_ACCEPTCON != 0);
        listening && line.strip_suffix(want.as_ref()).is_some_and(|rest| rest.ends_with(' '))
    })
}

/// Checks, before pingora binds `sock` (and panics if it cannot), that no other new process
/// waits there and that the socket can be made.
pub fn prepare(sock: &Path) -> Result<(), String> {
    if successor_waiting(sock) {
        return Err(format!(
            "another new process already waits on {} for the listening sockets: let that upgrade finish first",
            sock.display()
        ));
    }
    if let Ok(meta) = std::fs::symlink_metadata(sock) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket (server.upgrade_sock must name a file of its own)",
                sock.display()
            ));
        }
    }
    let dir = sock.parent().unwrap_or(Path::new("/"));
    let probe = dir.join(format!(".arena-upgrade-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create the upgrade socket {} ({e}): its directory must exist and be writable (server.upgrade_sock)",
            sock.display()
        )),
    }
}

/// Logs the handover as pingora moves through it, and tells systemd once the process serves.
pub fn follow_phases(mut phases: broadcast::Receiver<ExecutionPhase>) {
    let spawned = std::thread::Builder::new()
        .name("arena-phases".into())
        .spawn(move || loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::Running) => {
                    if let Err(e) = crate::systemd::notify_ready() {
                        tracing::warn!(error = %e, "cannot tell systemd the gateway is ready");
                    }
                }
                Ok(ExecutionPhase::GracefulUpgradeCloseTimeout) => tracing::info!(
                    "listening sockets handed over: both processes accept for a few seconds, then this one stops"
                ),
                Ok(ExecutionPhase::ShutdownGracePeriod) => {
                    tracing::info!("listeners closed: requests in flight get server.grace_period")
                }
                Ok(ExecutionPhase::Terminated) | Err(broadcast::error::RecvError::Closed) => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot follow the server's phases (no systemd readiness)");
    }
}

/// Why [`upgrade`] stopped; every case but [`Failed::Handover`] leaves the old process as it was.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error("no gateway runs with pid {pid}: {reason}")]
    NoOldProcess { pid: u32, reason: String },
    #[error("another upgrade is under way: a new process already waits on {0}")]
    Busy(PathBuf),
    #[error("cannot start the new process: {0}")]
    Spawn(String),
    #[error("the new process (pid {new}) exited ({status}) before taking over; pid {old} keeps serving")]
    NewExited { new: u32, status: ExitStatus, old: u32 },
    #[error(
        "the new process did not get ready to take over within {timeout:?} and was stopped; pid {old} keeps serving"
    )]
    NotWaiting { timeout: Duration, old: u32 },
    #[error("cannot signal pid {old} (SIGQUIT: {reason}); the new process was stopped and pid {old} keeps serving")]
    Signal { old: u32, reason: String },
    #[error(
        "the new process (pid {new}) did not get the listening sockets ({what}); if pid {old} had sent them it \
         drains and exits, else it keeps serving: check that both name the same server.upgrade_sock"
    )]
    Handover { new: u32, old: u32, what: String },
}

/// Upgrades the gateway running as `old` to this binary with `config` (whose
/// `server.upgrade_sock` is `sock`): starts `run -c CONFIG --upgrade`, waits until it waits on
/// the socket, sends `old` SIGQUIT and waits until the new process has taken the sockets.
/// Returns the new process's pid; it keeps running after this process exits. Under systemd,
/// the new process is named the service's main process.
pub fn upgrade(config: &Path, sock: &Path, old: u32, timeout: Duration) -> Result<u32, Failed> {
    let old_pid = i32::try_from(old)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| Failed::NoOldProcess {
            pid: old,
            reason: "not a process id".into(),
        })?;
    kill(old_pid, None).map_err(|e| Failed::NoOldProcess {
        pid: old,
        reason: e.desc().into(),
    })?;
    if successor_waiting(sock) {
        return Err(Failed::Busy(sock.to_path_buf()));
    }
    let exe = std::env::current_exe().map_err(|e| Failed::Spawn(format!("cannot locate this binary: {e}")))?;
    let mut child = Command::new(&exe)
        .args(["run", "--upgrade", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        // Under systemd this command, the control process, names the new main process below.
        .env_remove(crate::systemd::NOTIFY_SOCKET)
        .spawn()
        .map_err(|e| Failed::Spawn(format!("{}: {e}", exe.display())))?;
    let new = child.id();

    // The new process validates its config, builds everything that can fail, then waits.
    match wait_for(&mut child, timeout, || successor_waiting(sock)) {
        Ok(()) => {}
        Err(Wait::Exited(status)) => return Err(Failed::NewExited { new, status, old }),
        Err(Wait::TimedOut) => {
            stop(&mut child);
            return Err(Failed::NotWaiting { timeout, old });
        }
    }
    if let Err(e) = kill(old_pid, Signal::SIGQUIT) {
        stop(&mut child);
        return Err(Failed::Signal {
            old,
            reason: e.desc().into(),
        });
    }
    // It stops waiting on the socket once it holds the listening sockets.
    match wait_for(&mut child, timeout, || !successor_waiting(sock)) {
        Ok(()) => {
            if let Err(e) = crate::systemd::notify_main(new) {
                eprintln!("arena-gateway: cannot tell systemd that pid {new} is the main process now: {e}");
            }
            Ok(new)
        }
        Err(Wait::Exited(status)) => Err(Failed::Handover {
            new,
            old,
            what: format!("it exited: {status}"),
        }),
        Err(Wait::TimedOut) => {
            stop(&mut child);
            Err(Failed::Handover {
                new,
                old,
                what: format!("still waiting after {timeout:?}, stopped"),
            })
        }
    }
}

enum Wait {
    Exited(ExitStatus),
    TimedOut,
}

/// Polls `done` until it holds, failing early when `child` exits.
fn wait_for(child: &mut Child, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), Wait> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Wait::Exited(status));
        }
        if done() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Wait::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TABLE: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 51234 /run/arena-gateway/upgrade.sock
0000000000000000: 00000003 00000000 00000000 0001 03 51240 /run/arena-gateway/other.sock
0000000000000000: 00000002 00000000 00010000 0001 01  7001 /tmp/with space/up.sock
0000000000000000: 00000002 00000000 00010000 0005 01 61002 @abstract
";

    #[test]
    fn a_listening_socket_at_the_path_is_a_waiting_successor() {
        assert!(listening_in(TABLE, Path::new("/run/arena-gateway/upgrade.sock")));
        assert!(listening_in(TABLE, Path::new("/tmp/with space/up.sock")));
        // Connected, not listening.
        assert!(!listening_in(TABLE, Path::new("/run/arena-gateway/other.sock")));
        // Only whole paths match.
        assert!(!listening_in(TABLE, Path::new("gateway/upgrade.sock")));
        assert!(!listening_in(TABLE, Path::new("/nowhere.sock")));
    }

    #[test]
    fn a_real_listener_shows_in_the_kernel_table() {
        let dir = std::env::temp_dir().join(format!("arena-upgrade-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("u.sock");
        assert!(!successor_waiting(&sock));
        prepare(&sock).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(successor_waiting(&sock));
        assert!(prepare(&sock).unwrap_err().contains("already waits"));
        drop(listener);
        assert!(
            !successor_waiting(&sock),
            "a closed socket whose file is left is not waiting"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prepare_names_what_is_wrong_with_the_path() {
        let missing = prepare(Path::new("/nonexistent-arena-dir/u.sock")).unwrap_err();
        assert!(missing.contains("directory must exist"), "{missing}");
        let dir = std::env::temp_dir().join(format!("arena-upgrade-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare(&file).unwrap_err().contains("not a socket"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
