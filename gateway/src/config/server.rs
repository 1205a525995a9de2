//! `server:` — process-wide knobs, every one with a production default.

use std::path::PathBuf;
use std::time::Duration;

use arena_core::config::defaults::{client as cdef, server as def};
use arena_core::config::{dur_or, Dur};
use arena_core::diag::{Diagnostics, Seg};

use super::file::{ClientFile, ServerFile};
use super::{ClientLimits, Server};

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
        work_stealing: s.work_stealing.unwrap_or(def::WORK_STEALING),
        upstream_keepalive_pool_size: pool,
        drain_delay: dur_or(s.drain_delay, def::DRAIN_DELAY),
        grace_period: dur_or(s.grace_period, def::GRACE_PERIOD),
        graceful_shutdown_timeout: dur_or(s.graceful_shutdown_timeout, def::GRACEFUL_SHUTDOWN_TIMEOUT),
        max_request_header_bytes: s.max_request_header_bytes.unwrap_or(def::MAX_REQUEST_HEADER_BYTES),
        max_request_body_bytes: s.max_request_body_bytes.unwrap_or(def::MAX_REQUEST_BODY_BYTES),
        watch_debounce: dur_or(s.watch_debounce, def::WATCH_DEBOUNCE),
        h2c: s.h2c,
        upgrade_sock: super::upgrade::upgrade_sock(c, s.upgrade_sock.as_deref()),
        state_file: state_file(c, s.state_file.as_deref()),
        client: client(c, s.client.as_ref()),
    }
}

/// `server.state_file`: absolute when written; else `releases.json` in systemd's
/// `$STATE_DIRECTORY` (its first entry), else none (release states live in memory).
fn state_file(c: &mut Diagnostics<'_>, written: Option<&str>) -> Option<PathBuf> {
    match written {
        Some(text) => {
            let path = PathBuf::from(text);
            if !path.is_absolute() {
                c.error_at(
                    &[Seg::Key("server"), Seg::Key("state_file")],
                    format!("server.state_file `{text}` is not an absolute path"),
                    Some(
                        "write e.g. /var/lib/arena-gateway/releases.json (a state directory the gateway can write)"
                            .into(),
                    ),
                );
            }
            Some(path)
        }
        None => c
            .env("STATE_DIRECTORY")
            .and_then(|v| v.split(':').next().map(PathBuf::from))
            .filter(|d| d.is_absolute())
            .map(|d| d.join(def::STATE_FILE_NAME)),
    }
}

/// Durations a client limit may take: at least a second (a zero would close every connection
/// at once), at most a day (beyond, it is no limit at all and overflows clocks).
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(86_400);

fn client(c: &mut Diagnostics<'_>, f: Option<&ClientFile>) -> ClientLimits {
    let f = f.cloned().unwrap_or_default();
    let h2 = f.h2.clone().unwrap_or_default();
    let mut timeout = |key: &'static str, value: Option<Dur>, default: Duration| {
        let d = dur_or(value, default);
        if !(MIN_CLIENT_TIMEOUT..=MAX_CLIENT_TIMEOUT).contains(&d) {
            c.error_at(
                &[Seg::Key("server"), Seg::Key("client"), Seg::Key(key)],
                format!("server.client.{key} must be between 1s and 1 day"),
                Some(format!("the default is {}", humantime::format_duration(default))),
            );
            return default;
        }
        d
    };
    let limits = ClientLimits {
        header_timeout: timeout("header_timeout", f.header_timeout, cdef::HEADER_TIMEOUT),
        keepalive_timeout: timeout("keepalive_timeout", f.keepalive_timeout, cdef::KEEPALIVE_TIMEOUT),
        body_timeout: timeout("body_timeout", f.body_timeout, cdef::BODY_TIMEOUT),
        send_timeout: timeout("send_timeout", f.send_timeout, cdef::SEND_TIMEOUT),
        max_connection_duration: timeout(
            "max_connection_duration",
            f.max_connection_duration,
            cdef::MAX_CONNECTION_DURATION,
        ),
        tls_handshake_timeout: timeout(
            "tls_handshake_timeout",
            f.tls_handshake_timeout,
            cdef::TLS_HANDSHAKE_TIMEOUT,
        ),
        h2_idle_timeout: timeout("h2", h2.idle_timeout, cdef::H2_IDLE_TIMEOUT),
        max_requests_per_connection: f
            .max_requests_per_connection
            .unwrap_or(cdef::MAX_REQUESTS_PER_CONNECTION),
        max_connections: f.max_connections.unwrap_or(cdef::MAX_CONNECTIONS),
        max_connections_per_ip: f.max_connections_per_ip.unwrap_or(cdef::MAX_CONNECTIONS_PER_IP),
        h2_max_concurrent_streams: h2.max_concurrent_streams.unwrap_or(cdef::H2_MAX_CONCURRENT_STREAMS),
    };
    for (key, value) in [
        ("max_requests_per_connection", limits.max_requests_per_connection),
        ("max_connections", limits.max_connections),
        ("max_connections_per_ip", limits.max_connections_per_ip),
    ] {
        if value == 0 {
            c.error_at(
                &[Seg::Key("server"), Seg::Key("client"), Seg::Key(key)],
                format!("server.client.{key} must be at least 1"),
                None,
            );
        }
    }
    if limits.h2_max_concurrent_streams == 0 {
        c.error_at(
            &[Seg::Key("server"), Seg::Key("client"), Seg::Key("h2")],
            "server.client.h2.max_concurrent_streams must be at least 1",
            None,
        );
    }
    limits
}
