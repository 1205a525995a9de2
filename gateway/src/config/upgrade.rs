//! `server.upgrade_sock` — the Unix socket a new process (`run --upgrade`) listens on while
//! the running one hands it the listening sockets (pingora's graceful upgrade).

use std::path::{Path, PathBuf};

use arena_core::config::defaults::server as def;
use arena_core::diag::{Diagnostics, Seg};

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCK_PATH: usize = 107;

/// The socket path as written, or the default in the runtime directory.
pub fn upgrade_sock(c: &mut Diagnostics<'_>, written: Option<&str>) -> PathBuf {
    let at = [Seg::Key("server"), Seg::Key("upgrade_sock")];
    let Some(text) = written.map(str::trim) else {
        return default_sock(c);
    };
    let path = PathBuf::from(text);
    let example = Path::new(def::UPGRADE_SOCK_DIR).join(def::UPGRADE_SOCK_FILE);
    if text.is_empty() {
        c.error_at(
            &at,
            "empty server.upgrade_sock",
            Some(format!("an absolute path such as `{}`", example.display())),
        );
    } else if !path.is_absolute() {
        // Both processes must name the same file whatever directory each was started in.
        c.error_at(
            &at,
            format!("server.upgrade_sock `{text}` is not an absolute path"),
            Some(format!(
                "e.g. `{}`: the running and the new process must name the same file",
                example.display()
            )),
        );
    } else if text.len() > MAX_SOCK_PATH {
        c.error_at(
            &at,
            format!(
                "server.upgrade_sock is {} bytes long; a Unix socket path holds at most {MAX_SOCK_PATH}",
                text.len()
            ),
            Some("put the socket in a shorter directory (a runtime directory such as /run/NAME)".into()),
        );
    }
    path
}

/// `upgrade.sock` in systemd's `$RUNTIME_DIRECTORY` (its first entry) when that is usable,
/// else in the fixed runtime directory.
fn default_sock(c: &Diagnostics<'_>) -> PathBuf {
    let runtime = c
        .env("RUNTIME_DIRECTORY")
        .and_then(|v| v.split(':').next().map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(def::UPGRADE_SOCK_FILE))
        .filter(|p| p.as_os_str().len() <= MAX_SOCK_PATH);
    runtime.unwrap_or_else(|| Path::new(def::UPGRADE_SOCK_DIR).join(def::UPGRADE_SOCK_FILE))
}
