//! The configuration file as written: serde structs that mirror the YAML one to one.
//!
//! Unknown keys are errors (`deny_unknown_fields`); meaning (references, addresses, overlaps)
//! is checked later by `validate`, which can see the whole file at once.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Human duration (`250ms`, `2s`, `1m`), parsed by humantime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("bad duration `{s}`: {e} (write e.g. `250ms`, `2s`, `1m`)")))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

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
}

/// Process-wide knobs; every one has a production default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Worker threads for the proxy service (default: number of CPUs).
    #[serde(default)]
    pub threads: Option<usize>,
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
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    #[default]
    P2cEwma,
    LeastInflight,
    RoundRobin,
    ConsistentHash,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    A,
    Aaaa,
    Srv,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    pub name: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "record_a")]
    pub record: RecordKind,
    /// `ip:port` of the DNS server; the system resolver when absent.
    #[serde(default)]
    pub resolver: Option<String>,
    #[serde(default)]
    pub min_refresh: Option<Dur>,
    #[serde(default)]
    pub max_refresh: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
}

fn record_a() -> RecordKind {
    RecordKind::A
}

/// Tuning of the live-load signal.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadFile {
    /// Time constant of the peak-EWMA latency.
    #[serde(default)]
    pub decay: Option<Dur>,
    /// Cost a new pod starts with, so it is not swamped before it has a history.
    #[serde(default)]
    pub default_rtt: Option<Dur>,
    /// How long a pod's `endpoint-load-metrics` report counts.
    #[serde(default)]
    pub report_ttl: Option<Dur>,
    /// Multiplier applied to a pod's cost after an error, decaying with `decay`.
    #[serde(default)]
    pub error_penalty: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: String,
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    #[serde(default)]
    pub dns: Option<DnsFile>,
    #[serde(default)]
    pub lb: LbKind,
    /// `header:NAME`, `cookie:NAME` or `client_ip` (consistent_hash only).
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
    #[serde(default)]
    pub load: Option<LoadFile>,
    /// Deadline of one try; the connection of a try that overruns it is dropped.
    #[serde(default)]
    pub per_try_timeout: Option<Dur>,
    /// Circuit breaker: requests in flight to the whole cluster beyond this fail fast.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub outlier: Option<OutlierFile>,
}

/// Passive outlier ejection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    #[serde(default)]
    pub base_ejection: Option<Dur>,
    #[serde(default)]
    pub max_ejection: Option<Dur>,
    #[serde(default)]
    pub max_ejected_percent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: MatchFile,
    pub cluster: String,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub retry: Option<RetryFile>,
    #[serde(default)]
    pub hedge: Option<HedgeFile>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitFile>,
    #[serde(default)]
    pub fallback: Option<FallbackFile>,
    /// Request bodies up to this size are kept for replay (retry, hedge, FaaS).
    #[serde(default)]
    pub replay_buffer_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    ConnectFailure,
    Reset,
    Timeout,
    #[serde(rename = "5xx")]
    Status5xx,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Total tries per request, the first included (2 = one retry).
    pub attempts: u32,
    #[serde(default)]
    pub on: Option<Vec<RetryOn>>,
    /// Retries allowed as a percentage of live requests...
    #[serde(default)]
    pub budget_percent: Option<f64>,
    /// ...plus this many per second, so quiet routes can still retry.
    #[serde(default)]
    pub min_per_second: Option<u32>,
    /// Base of the jittered backoff between tries.
    #[serde(default)]
    pub backoff: Option<Dur>,
    /// Also retry POST/PATCH (only when the request is known to be safe to replay).
    #[serde(default)]
    pub non_idempotent: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeFile {
    /// A duration, or `pNN` for the route's live latency percentile.
    pub after: String,
    #[serde(default)]
    pub max_extra: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Local,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub requests_per_second: u32,
    #[serde(default)]
    pub burst: Option<u32>,
    /// `client_ip` (default), `header:NAME` or `route`.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub scope: Option<LimitScope>,
    /// Keys tracked at most; idle keys are evicted first.
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// With `scope: cluster` and Redis unreachable, this gateway admits this share of the rate.
    #[serde(default)]
    pub local_share: Option<f64>,
    /// With `scope: cluster`: tokens taken from Redis per round trip and spent locally
    /// (default: 1 % of the rate, at least 1, at most `burst`).
    #[serde(default)]
    pub batch: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackOn {
    RetriesExhausted,
    NoHealthyPods,
    CircuitOpen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackFile {
    pub faas: String,
    #[serde(default)]
    pub on: Option<Vec<FallbackOn>>,
    #[serde(default)]
    pub spillover_above_load: Option<f64>,
    /// `1%` or `0.01`.
    #[serde(default)]
    pub warm_share: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaasKind {
    Http,
    AwsLambda,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaasFile {
    pub name: String,
    pub kind: FaasKind,
    /// kind http: base URL; the request path and query are appended.
    #[serde(default)]
    pub url: Option<String>,
    /// kind aws_lambda: function name or ARN.
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// kind aws_lambda: Lambda API endpoint override (e.g. a local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Extra request headers; values may use `${env:NAME}`.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: String,
    /// Longest wait for Redis on the request path before falling back to local limits.
    #[serde(default)]
    pub timeout: Option<Dur>,
}
