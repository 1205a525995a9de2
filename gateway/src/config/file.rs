//! The gateway's own sections as written: serde structs that mirror the YAML one to one (the
//! shared sections — clusters, routes, faas, redis — are `arena_core::config`'s).
//!
//! Unknown keys are errors (`deny_unknown_fields`); meaning (references, addresses, overlaps)
//! is checked later by `validate`, which can see the whole file at once.

pub use arena_core::config::Dur;
use serde::Deserialize;

/// Top-level sections; decoded one by one so each reports its own problems.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listeners",
    "access_log",
    "admin",
    "debug_headers",
    "server",
    "clusters",
    "routes",
    "faas",
    "redis",
    "releases",
    "tracing",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert_file: String,
    pub key_file: String,
    /// Offer HTTP/2 through ALPN (default on).
    #[serde(default = "yes")]
    pub http2: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub address: String,
    #[serde(default)]
    pub token_env: Option<String>,
    /// Whether reads (`/metrics`, `/config`, ...) need the token too (default: required beyond
    /// loopback, optional on it).
    #[serde(default)]
    pub read_token: Option<ReadToken>,
}

/// `admin.read_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadToken {
    /// Every admin call but the probes (`/healthz`, `/readyz`) needs the bearer token.
    Required,
    /// Reads are open; only mutating calls need the token.
    Optional,
}

/// Process-wide knobs; every one has a production default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Worker threads for the proxy service (default: number of CPUs).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Whether idle worker threads take tasks from busy ones (tokio's multi-thread scheduler),
    /// or each thread keeps the connections it was given (current-thread runtimes).
    #[serde(default)]
    pub work_stealing: Option<bool>,
    /// Idle upstream connections kept in total across pods (pingora's default of 128 is too small).
    #[serde(default)]
    pub upstream_keepalive_pool_size: Option<usize>,
    /// After SIGTERM, time to keep accepting while `/readyz` says 503 and answers close their
    /// connections, so load balancers and keep-alive clients move away first (default 0).
    #[serde(default)]
    pub drain_delay: Option<Dur>,
    /// Then, listeners closed: time for in-flight requests and open connections to finish.
    #[serde(default)]
    pub grace_period: Option<Dur>,
    /// Then, time allowed for the runtimes to stop.
    #[serde(default)]
    pub graceful_shutdown_timeout: Option<Dur>,
    /// Largest request header block accepted; bigger gets 431.
    #[serde(default)]
    pub max_request_header_bytes: Option<usize>,
    /// Largest request body accepted; bigger gets 413.
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    /// Debounce for the config file watcher (0 disables watching).
    #[serde(default)]
    pub watch_debounce: Option<Dur>,
    /// Accept HTTP/2 without TLS (prior knowledge, h2c) on plaintext listeners.
    #[serde(default)]
    pub h2c: bool,
    /// Unix socket over which `run --upgrade` takes the listening sockets from the running
    /// process (default: `upgrade.sock` in the runtime directory).
    #[serde(default)]
    pub upgrade_sock: Option<String>,
    /// Where release states are kept across restarts (default: `releases.json` in systemd's
    /// `$STATE_DIRECTORY`; without either, in memory only).
    #[serde(default)]
    pub state_file: Option<String>,
    /// What one client connection may hold (timeouts, caps).
    #[serde(default)]
    pub client: Option<ClientFile>,
}

/// Client connection limits; every one has an edge default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    #[serde(default)]
    pub header_timeout: Option<Dur>,
    #[serde(default)]
    pub keepalive_timeout: Option<Dur>,
    #[serde(default)]
    pub body_timeout: Option<Dur>,
    #[serde(default)]
    pub send_timeout: Option<Dur>,
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    #[serde(default)]
    pub max_connection_duration: Option<Dur>,
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    #[serde(default)]
    pub tls_handshake_timeout: Option<Dur>,
    #[serde(default)]
    pub h2: Option<H2File>,
}

/// HTTP/2 client connections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2File {
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
}

/// One JSON line per request worth keeping: errors and slow requests always, a sample of the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// `stdout` (default), `stderr` or a file path (appended to).
    #[serde(default)]
    pub output: Option<String>,
    /// Share of other requests logged, e.g. `1%` (default 0).
    #[serde(default)]
    pub sample: Option<String>,
    /// Requests at least this slow are always logged (default: none).
    #[serde(default)]
    pub slow: Option<Dur>,
    /// Log every 5xx and gateway-made error answer (default true).
    #[serde(default)]
    pub errors: Option<bool>,
}

/// OpenTelemetry traces: the section the sidecar and the load tester share.
pub use arena_core::config::TracingFile;
