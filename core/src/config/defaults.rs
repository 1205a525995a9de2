//! Every default of the configuration language, named, in one place: what a key means when
//! a file leaves it out. Validators read these; nothing else writes a default inline.

use std::time::Duration;

/// `debug_headers`: answers carry no `x-arena-*` headers unless asked.
pub const DEBUG_HEADERS: bool = false;

/// Longest duration any key accepts (365 days): far beyond any sane timeout, refresh or
/// ejection, and far from where `Instant + Duration` and nanosecond counts overflow (a longer
/// one is an error at load, never a panic on the request path).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Process-wide knobs (`server:`).
pub mod server {
    use super::Duration;

    /// Idle upstream connections kept (pingora's own default of 128 is too small for many pods).
    pub const UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 4096;
    /// Largest pool accepted: pools are allocated at their full size when the gateway starts.
    pub const MAX_UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 1 << 20;
    /// Most proxy worker threads accepted (each is started with the gateway).
    pub const MAX_THREADS: usize = 1024;
    /// Tasks move between the proxy's worker threads (tokio's multi-thread scheduler), or each
    /// thread runs its own connections (current-thread runtimes, pingora's no-steal mode: the
    /// per-worker model of nginx and Envoy). Off measured 3.7 % less CPU per request (arena,
    /// everything on, 25.51 vs 26.50 µs) and p99 2.39 vs 2.86 ms at saturation, one thread
    /// (loadtest/results/proxy-cost-20261201T180358Z.md) — but on SIGINT under load pingora's
    /// no-steal shutdown was seen spinning in its accept loop ("Tokio context being shutdown")
    /// instead of exiting, so the default stays on until that is fixed.
    pub const WORK_STEALING: bool = true;
    /// After SIGTERM, time spent accepting with `/readyz` 503 before listeners close.
    pub const DRAIN_DELAY: Duration = Duration::ZERO;
    /// Then, time in-flight requests get to finish.
    pub const GRACE_PERIOD: Duration = Duration::from_secs(5);
    /// Then, time the runtimes get to stop.
    pub const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest request head accepted; bigger gets 431.
    pub const MAX_REQUEST_HEADER_BYTES: usize = 32 * 1024;
    /// Largest request body accepted; bigger gets 413.
    pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
    /// Quiet time before a changed config file is reloaded.
    pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);
    /// `upgrade_sock`: the file `run --upgrade` waits on for the running process's listening
    /// sockets, in `$RUNTIME_DIRECTORY` (what systemd's `RuntimeDirectory=` sets) when that is
    /// an absolute path, else in [`UPGRADE_SOCK_DIR`].
    pub const UPGRADE_SOCK_FILE: &str = "upgrade.sock";
    /// `state_file` when unset: this file in systemd's `$STATE_DIRECTORY` (`StateDirectory=`).
    pub const STATE_FILE_NAME: &str = "releases.json";
    pub const UPGRADE_SOCK_DIR: &str = "/run/arena-gateway";
}

/// Client connections (`server.client:`): what one client — or a crowd of bad mobile networks —
/// may hold, in the spirit of nginx's and Envoy's edge defaults.
pub mod client {
    use super::Duration;

    /// The whole request head: from the connection's start for its first request, from the
    /// first byte for later ones. Overrun → 408 and close.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Idle between requests on a keep-alive connection. Overrun → closed quietly.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Between two reads of a request body (nginx's `client_body_timeout`).
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Between two writes to a client that stopped reading (nginx's `send_timeout`).
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;
    /// After this, a connection's next answer closes it (`connection: close`).
    pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(3600);
    /// Connections open at once; beyond, new ones are closed at once.
    pub const MAX_CONNECTIONS: u32 = 100_000;
    /// Per client IPv4 address, or IPv6 /64.
    pub const MAX_CONNECTIONS_PER_IP: u32 = 1_000;
    pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
    pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
}

/// The admin API (`admin:`).
pub mod admin {
    /// Loopback only unless the operator says otherwise.
    pub const ADDRESS: &str = "127.0.0.1:9901";
    /// `read_token` on a loopback address: reads (`/metrics`, `/config`, ...) are open to
    /// whoever can reach the host's loopback, as before.
    pub const READ_TOKEN_REQUIRED_ON_LOOPBACK: bool = false;
    /// `read_token` on any other address: reads need the bearer token too (the config and the
    /// pod table describe the fleet; only `/healthz` and `/readyz` stay open for probes).
    pub const READ_TOKEN_REQUIRED_BEYOND_LOOPBACK: bool = true;
}

/// A cluster of pods (`clusters:`).
pub mod cluster {
    use super::Duration;

    pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
    /// Time constant of the peak-EWMA latency estimate.
    pub const LOAD_DECAY: Duration = Duration::from_secs(10);
    /// Latency a pod starts at before it has answered, so it is eased in, not swamped.
    pub const LOAD_DEFAULT_RTT: Duration = Duration::from_millis(30);
    /// How long a pod's `endpoint-load-metrics` report counts.
    pub const LOAD_REPORT_TTL: Duration = Duration::from_secs(5);
    /// Cost multiplier after a failure, decaying with `decay`.
    pub const LOAD_ERROR_PENALTY: f64 = 4.0;
    pub const OUTLIER_CONSECUTIVE_FAILURES: u32 = 5;
    pub const OUTLIER_BASE_EJECTION: Duration = Duration::from_secs(5);
    pub const OUTLIER_MAX_EJECTION: Duration = Duration::from_secs(60);
    pub const OUTLIER_MAX_EJECTED_PERCENT: u32 = 50;
}

/// DNS discovery of a cluster (`clusters[].dns:`).
pub mod dns {
    use super::Duration;

    /// The answer's TTL is clamped to `[min_refresh, max_refresh]`.
    pub const MIN_REFRESH: Duration = Duration::from_secs(1);
    pub const MAX_REFRESH: Duration = Duration::from_secs(30);
    pub const TIMEOUT: Duration = Duration::from_secs(2);
}

/// A route (`routes:`).
pub mod route {
    use super::Duration;

    /// Total time for a request, retries included.
    pub const TIMEOUT: Duration = Duration::from_secs(15);
    /// Request bodies up to this size are kept for replay; also the most pingora keeps.
    pub const REPLAY_BUFFER_BYTES: usize = 64 * 1024;
    pub const MAX_REPLAY_BUFFER_BYTES: usize = 64 * 1024;
}

/// `routes[].retry:`.
pub mod retry {
    use super::Duration;

    /// Tries in total, the first included, may be 1..=MAX_ATTEMPTS.
    pub const MAX_ATTEMPTS: u32 = 10;
    /// Retries may add this percentage of the live request rate...
    pub const BUDGET_PERCENT: f64 = 20.0;
    /// ...plus this many per second, so quiet routes can still retry.
    pub const MIN_PER_SECOND: u32 = 10;
    pub const BACKOFF: Duration = Duration::from_millis(25);
    /// Connect failures are retried this often on a route without a `retry` block: nothing
    /// reached the pod, so another pod may always take the request.
    pub const CONNECT_ATTEMPTS_WITHOUT_POLICY: u32 = 3;
    /// What is retried when `retry.on` is left out (a 5xx may be the pod's considered answer).
    pub const ON: &[crate::config::RetryOn] = &[
        crate::config::RetryOn::ConnectFailure,
        crate::config::RetryOn::Reset,
        crate::config::RetryOn::Timeout,
    ];
}

/// `routes[].hedge:`.
pub mod hedge {
    use super::Duration;

    pub const MAX_EXTRA: u32 = 1;
    pub const MAX_EXTRA_LIMIT: u32 = 3;
    /// Delay of a `pNN` hedge while the route has no latency history yet (after start or a
    /// reload): hedge after a fixed time rather than not at all.
    pub const PERCENTILE_FALLBACK: Duration = Duration::from_millis(50);
}

/// `routes[].rate_limit:`.
pub mod rate_limit {
    use crate::config::LimitScope;

    /// Counted on this gateway alone (`cluster` shares the budget through Redis).
    pub const SCOPE: LimitScope = LimitScope::Local;
    // The key defaults to the client IP and `burst` to one second of the rate.
    /// Keys tracked at most per route, each with its own bucket; beyond, new keys share one
    /// overflow bucket until idle buckets are swept (known keys keep theirs).
    pub const MAX_KEYS: usize = 100_000;
    /// `key: client_ip` counts an IPv6 client by this prefix: one customer's network (a /64
    /// is what an ISP hands a single line), so rotating addresses within it gains nothing.
    pub const IPV6_PREFIX: u8 = 64;
    /// Share of the rate each gateway admits locally while Redis is unreachable (`scope:
    /// cluster`): `1 / redis.replicas`, so the replicas together never admit more than the rate.
    pub fn local_share(replicas: u32) -> f64 {
        1.0 / f64::from(replicas.max(1))
    }
    /// Tokens leased per Redis round trip: 1 / this of the rate (at least 1, at most burst).
    pub const BATCH_FRACTION: u32 = 100;
}

/// `routes[].fallback:`.
pub mod fallback {
    use crate::config::FallbackOn;

    /// Every trigger, when `fallback.on` is left out.
    pub const ON: &[FallbackOn] = &[
        FallbackOn::RetriesExhausted,
        FallbackOn::NoHealthyPods,
        FallbackOn::CircuitOpen,
    ];
    /// Share of normal traffic sent to the function to keep it warm.
    pub const WARM_SHARE: f64 = 0.0;
}

/// A grey release (`releases:`).
pub mod release {
    use super::Duration;
    use crate::config::{OnFailure, ReleaseScope, StickyKey};

    /// A user's cohort is picked by their address (IPv6 by its /64) unless told otherwise.
    pub const STICKY: StickyKey = StickyKey::ClientIp;
    /// Starting weight (basis points) of a release without steps: nothing until an operator
    /// sets one, or the file does.
    pub const WEIGHT_BP: u16 = 0;
    /// Time at a step with a healthy verdict before the next.
    pub const STEP_INTERVAL: Duration = Duration::from_secs(30);
    /// Sliding window compared between the versions.
    pub const WINDOW: Duration = Duration::from_secs(10);
    /// Requests per version in the window before a verdict is given.
    pub const MIN_REQUESTS: u64 = 100;
    /// The canary's failure rate may exceed stable's by this share (1 %).
    pub const MAX_ERROR_RATE_DELTA: f64 = 0.01;
    /// The canary's p99 may be this multiple of stable's.
    pub const MAX_P99_RATIO: f64 = 1.5;
    pub const ON_FAILURE: OnFailure = OnFailure::Rollback;
    /// A canary try that failed is retried on a stable pod.
    pub const RETRY_ON_STABLE: bool = true;
    /// State kept by this gateway (`cluster` shares it through Redis).
    pub const SCOPE: ReleaseScope = ReleaseScope::Local;
}

/// `access_log:`.
pub mod access_log {
    /// Every 5xx and gateway-made error answer is logged.
    pub const ERRORS: bool = true;
    /// Share of the other requests logged.
    pub const SAMPLE: f64 = 0.0;
}

/// `faas:` functions.
pub mod faas {
    use super::Duration;

    /// Must cover a cold start.
    pub const TIMEOUT: Duration = Duration::from_secs(3);
    pub const MAX_CONCURRENCY: u32 = 256;
}

/// `redis:`.
pub mod redis {
    use super::Duration;

    /// Longest wait for Redis on the request path before falling back to local limits.
    pub const TIMEOUT: Duration = Duration::from_millis(50);
    /// Largest `replicas` accepted (a typo guard: far above any fleet sharing one Redis).
    pub const MAX_REPLICAS: u32 = 10_000;
}
