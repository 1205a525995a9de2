//! `server:` — process-wide knobs, every one with a production default.

use arena_core::config::defaults::server as def;
use arena_core::config::dur_or;
use arena_core::diag::{Diagnostics, Seg};

use super::file::ServerFile;
use super::Server;

pub fn server(c: &mut Diagnostics<'_>, s: &ServerFile) -> Server {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = s.threads.unwrap_or(cpus);
    if threads == 0 {
        c.error_at(
            &[Seg::Key("server"), Seg::Key("threads")],
            "threads must be at least 1",
            None,
        );
    }
    Server {
        threads: threads.max(1),
        upstream_keepalive_pool_size: s
            .upstream_keepalive_pool_size
            .unwrap_or(def::UPSTREAM_KEEPALIVE_POOL_SIZE),
        drain_delay: dur_or(s.drain_delay, def::DRAIN_DELAY),
        grace_period: dur_or(s.grace_period, def::GRACE_PERIOD),
        graceful_shutdown_timeout: dur_or(s.graceful_shutdown_timeout, def::GRACEFUL_SHUTDOWN_TIMEOUT),
        max_request_header_bytes: s.max_request_header_bytes.unwrap_or(def::MAX_REQUEST_HEADER_BYTES),
        max_request_body_bytes: s.max_request_body_bytes.unwrap_or(def::MAX_REQUEST_BODY_BYTES),
        watch_debounce: dur_or(s.watch_debounce, def::WATCH_DEBOUNCE),
        h2c: s.h2c,
        upgrade_sock: super::upgrade::upgrade_sock(c, s.upgrade_sock.as_deref()),
    }
}
