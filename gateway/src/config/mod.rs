//! Configuration: YAML file → typed file structs → validated [`Config`].
//!
//! Loading reports every problem at once with `file:line:column` and a hint; a config with
//! errors is never returned, so a reload can only ever swap in something that validated.

pub mod check;
pub mod diagnostic;
pub mod file;
mod validate;

pub mod yaml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use serde::{Serialize, Serializer};

pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use file::{FaasKind, FallbackOn, LbKind, LimitScope, RecordKind, RetryOn};

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
}

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
    /// Bearer token for mutating calls, read from `token_env` at load time.
    #[serde(skip)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    pub threads: usize,
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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub source: Source,
    pub lb: LbKind,
    pub hash_key: Option<HashKey>,
    #[serde(serialize_with = "human")]
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept; `None` keeps it until the pod closes it.
    #[serde(serialize_with = "human_opt")]
    pub idle_timeout: Option<Duration>,
    pub load: LoadTuning,
    /// Deadline of one try (the route timeout bounds all tries together).
    #[serde(serialize_with = "human_opt")]
    pub per_try_timeout: Option<Duration>,
    /// Circuit breaker on the cluster's total in-flight requests.
    pub max_in_flight: Option<u32>,
    pub outlier: OutlierSpec,
}

/// Passive outlier ejection: a pod failing `consecutive_failures` times in a row is taken out
/// for `base_ejection × 2^(times ejected before)`, at most `max_ejection`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutlierSpec {
    pub consecutive_failures: u32,
    #[serde(serialize_with = "human")]
    pub base_ejection: Duration,
    #[serde(serialize_with = "human")]
    pub max_ejection: Duration,
    pub max_ejected_percent: u32,
}

impl Default for OutlierSpec {
    fn default() -> Self {
        OutlierSpec {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(60),
            max_ejected_percent: 50,
        }
    }
}

/// Where a cluster's pods come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Static(Vec<SocketAddr>),
    Dns(DnsSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSpec {
    pub name: String,
    pub port: Option<u16>,
    pub record: RecordKind,
    pub resolver: Option<SocketAddr>,
    #[serde(serialize_with = "human")]
    pub min_refresh: Duration,
    #[serde(serialize_with = "human")]
    pub max_refresh: Duration,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
}

/// What `consistent_hash` hashes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    Header(#[serde(serialize_with = "header_name")] HeaderName),
    Cookie(String),
    ClientIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadTuning {
    #[serde(serialize_with = "human")]
    pub decay: Duration,
    #[serde(serialize_with = "human")]
    pub default_rtt: Duration,
    #[serde(serialize_with = "human")]
    pub report_ttl: Duration,
    pub error_penalty: f64,
}

impl Default for LoadTuning {
    fn default() -> Self {
        LoadTuning {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            report_ttl: Duration::from_secs(5),
            error_penalty: 4.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub cluster: String,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    pub retry: Option<RetrySpec>,
    pub hedge: Option<HedgeSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub fallback: Option<FallbackSpec>,
    pub replay_buffer_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrySpec {
    /// Total tries, the first included.
    pub attempts: u32,
    pub on: Vec<RetryOn>,
    pub budget_percent: f64,
    pub min_per_second: u32,
    #[serde(serialize_with = "human")]
    pub backoff: Duration,
    pub non_idempotent: bool,
}

impl RetrySpec {
    pub fn retries_on(&self, cause: RetryOn) -> bool {
        self.on.contains(&cause)
    }
}

/// When to send a hedged (extra) try.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeAfter {
    Fixed(#[serde(serialize_with = "human")] Duration),
    /// The route's live latency quantile (0.95 for `p95`).
    Percentile(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HedgeSpec {
    pub after: HedgeAfter,
    pub max_extra: u32,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    ClientIp,
    Header(#[serde(serialize_with = "header_name")] HeaderName),
    Route,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitSpec {
    pub requests_per_second: u32,
    pub burst: u32,
    pub key: LimitKey,
    pub scope: LimitScope,
    pub max_keys: usize,
    pub local_share: f64,
    /// Tokens leased from Redis per round trip (scope cluster).
    pub batch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackSpec {
    pub faas: String,
    pub on: Vec<FallbackOn>,
    pub spillover_above_load: Option<f64>,
    /// Share of normal traffic sent to the function to keep it warm (0..1).
    pub warm_share: f64,
}

impl FallbackSpec {
    pub fn on(&self, why: FallbackOn) -> bool {
        self.on.contains(&why)
    }
}

/// A function the gateway can replay requests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaasSpec {
    pub name: String,
    pub target: FaasTarget,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    pub max_concurrency: u32,
    /// Extra headers, `${env:..}` already expanded (values are not shown by `/config`).
    #[serde(serialize_with = "header_names_only")]
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaasTarget {
    Http {
        url: String,
    },
    AwsLambda {
        function: String,
        region: String,
        endpoint: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisSpec {
    pub url: String,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
}

/// Request predicate of a route; every present part must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Lower-case host without port.
    pub host: Option<String>,
    pub path: PathMatch,
    #[serde(serialize_with = "methods")]
    pub methods: Option<Vec<Method>>,
    #[serde(serialize_with = "header_pairs")]
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
}

/// Result of a successful load: the config and the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Loads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &origin),
        Err(e) => Err(ConfigErrors(vec![Diagnostic::new(
            Severity::Error,
            &origin,
            None,
            format!("cannot read configuration: {e}"),
            Some("check the path given with -c/--config".into()),
        )])),
    }
}

/// Loads and validates configuration text; `origin` names it in messages.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    validate::load(text, origin)
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

fn human_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&humantime::format_duration(*d)),
        None => s.serialize_none(),
    }
}

fn header_names_only<S: Serializer>(h: &[(HeaderName, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.iter().map(|(k, _)| k.as_str()))
}

fn header_name<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}

fn methods<S: Serializer>(m: &Option<Vec<Method>>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(list) => s.collect_seq(list.iter().map(Method::as_str)),
        None => s.serialize_none(),
    }
}

fn header_pairs<S: Serializer>(h: &[(HeaderName, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| (k.as_str(), v)))
}
