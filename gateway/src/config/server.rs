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
    if threads > def::MAX_THREADS {
        c.error_at(
            &[Seg::Key("server"), Seg::Key("threads")],
            format!("threads must be at most {}", def::MAX_THREADS),
            Some("one per CPU is the usual choice; leave it out for that".into()),
        );
    }
    let pool = s
        .upstream_keepalive_pool_size
        .unwrap_or(def::UPSTREAM_KEEPALIVE_POOL_SIZE);
    if pool > def::MAX_UPSTREAM_KEEPALIVE_POOL_SIZE {
        c.error_at(
            &[Seg::Key("server"), Seg::Key("upstream_keepalive_pool_size")],
            format!(
                "upstream_keepalive_pool_size must be at most {}",
                def::MAX_UPSTREAM_KEEPALIVE_POOL_SIZE
            ),
            Some("the pools are allocated at this size when the gateway starts".into()),
        );
    }
    Server {
        threads: threads.max(1),
        upstream_keepalive_pool_size: pool,
        drain_delay: dur_or(s.drain_delay, def::DRAIN_DELAY),
        grace_period: dur_or(s.grace_period, def::GRACE_PERIOD),
        graceful_shutdown_timeout: dur_or(s.graceful_shutdown_timeout, def::GRACEFUL_SHUTDOWN_TIMEOUT),
        max_request_header_bytes: s.max_request_header_bytes.unwrap_or(def::MAX_REQUEST_HEADER_BYTES),
        max_request_body_bytes: s.max_request_body_bytes.unwrap_or(def::MAX_REQUEST_BODY_BYTES),
        watch_debounce: dur_or(s.watch_debounce, def::WATCH_DEBOUNCE),
        h2c: s.h2c,
    }
}
