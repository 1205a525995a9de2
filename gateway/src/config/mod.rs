//! Configuration: YAML file → typed file structs → validated [`Config`].
//!
//! Loading reports every problem at once with `file:line:column` and a hint; a config with
//! errors is never returned, so a reload can only ever swap in something that validated.

mod access_log;
pub mod file;
pub mod listeners;
pub mod server;
mod upgrade;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arena_core::config::ser::{human, human_opt};
use serde::Serialize;

pub use arena_core::config::defaults;
pub use arena_core::config::Secret;
pub use arena_core::config::{
    ClusterSpec, DnsSpec, FaasKind, FaasSpec, FaasTarget, FallbackOn, FallbackSpec, HashKey, HedgeAfter, HedgeSpec,
    LbKind, LimitKey, LimitScope, LoadTuning, Match, OutlierSpec, PathMatch, RateLimitSpec, RecordKind, RedisSpec,
    ReleaseScope, ReleaseSpec, RetryOn, RetrySpec, RouteSpec, Source,
};
pub use arena_core::diag::{ConfigErrors, Diagnostic, Severity};
pub use file::ReadToken;

/// A validated gateway configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    pub debug_headers: bool,
    pub server: Server,
    pub clusters: Vec<ClusterSpec>,
    pub routes: Vec<RouteSpec>,
    pub faas: Vec<FaasSpec>,
    pub redis: Option<RedisSpec>,
    pub access_log: Option<AccessLogSpec>,
    /// Grey releases: which routes split between a stable and a canary cluster.
    pub releases: Vec<ReleaseSpec>,
    /// OpenTelemetry traces (`None`: off, no cost on the request path).
    pub tracing: Option<TracingSpec>,
}

/// Which requests are traced and where their spans go (shared with the sidecar and the load
/// tester).
pub use arena_core::config::TracingSpec;

/// Which requests get an access-log line, and where lines go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessLogSpec {
    pub output: LogOutput,
    /// Share (0..1) of requests that are neither errors nor slow.
    pub sample: f64,
    #[serde(serialize_with = "human_opt")]
    pub slow: Option<Duration>,
    pub errors: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogOutput {
    Stdout,
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub http2: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub address: SocketAddr,
    pub token_env: Option<String>,
    /// Bearer token for mutating calls (and reads when required), read from `token_env` at
    /// load time; never shown.
    #[serde(skip)]
    pub token: Option<Secret>,
    pub read_token: ReadToken,
}

impl Admin {
    /// Whether reads (every call but the probes) need the token.
    pub fn reads_need_token(&self) -> bool {
        self.read_token == ReadToken::Required
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    pub threads: usize,
    /// Restart-only, like `threads`.
    pub work_stealing: bool,
    #[serde(serialize_with = "human")]
    pub drain_delay: Duration,
    pub upstream_keepalive_pool_size: usize,
    #[serde(serialize_with = "human")]
    pub grace_period: Duration,
    #[serde(serialize_with = "human")]
    pub graceful_shutdown_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_body_bytes: usize,
    #[serde(serialize_with = "human")]
    pub watch_debounce: Duration,
    pub h2c: bool,
    /// Where `run --upgrade` takes over the listening sockets (absolute; restart-only).
    pub upgrade_sock: PathBuf,
    /// Where release states persist (`None`: in memory only).
    pub state_file: Option<PathBuf>,
    pub client: ClientLimits,
}

/// What one client connection may hold (see `defaults::client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClientLimits {
    #[serde(serialize_with = "human")]
    pub header_timeout: Duration,
    #[serde(serialize_with = "human")]
    pub keepalive_timeout: Duration,
    #[serde(serialize_with = "human")]
    pub body_timeout: Duration,
    #[serde(serialize_with = "human")]
    pub send_timeout: Duration,
    pub max_requests_per_connection: u32,
    #[serde(serialize_with = "human")]
    pub max_connection_duration: Duration,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    #[serde(serialize_with = "human")]
    pub tls_handshake_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    #[serde(serialize_with = "human")]
    pub h2_idle_timeout: Duration,
}

/// Result of a successful load: the config and the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    /// Hash of the text it was loaded from (a file watch skips events that change nothing).
    pub text_hash: u64,
}

/// Loads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let (text, origin) = arena_core::diag::read_config(path)?;
    load_str(&text, &origin)
}

/// Loads and validates configuration text; `origin` names it in messages.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    validate::load(text, origin)
}

pub use validate::{engine_sections, text_hash, EngineFiles, EngineSections};
