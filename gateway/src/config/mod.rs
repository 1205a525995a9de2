//! Configuration: YAML file → typed file structs → validated [`Config`].
//!
//! Loading reports every problem at once with `file:line:column` and a hint; a config with
//! errors is never returned, so a reload can only ever swap in something that validated.

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
pub use file::{LbKind, RecordKind};

/// A validated gateway configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    pub debug_headers: bool,
    pub server: Server,
    pub clusters: Vec<ClusterSpec>,
    pub routes: Vec<RouteSpec>,
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
    pub upstream_keepalive_pool_size: usize,
    #[serde(serialize_with = "human")]
    pub grace_period: Duration,
    #[serde(serialize_with = "human")]
    pub graceful_shutdown_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_body_bytes: usize,
    #[serde(serialize_with = "human")]
    pub watch_debounce: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub source: Source,
    pub lb: LbKind,
    pub hash_key: Option<HashKey>,
    #[serde(serialize_with = "human")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "human")]
    pub idle_timeout: Duration,
    pub load: LoadTuning,
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
