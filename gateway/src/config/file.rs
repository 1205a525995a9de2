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
pub const TOP_LEVEL_KEYS: &[&str] = &["listeners", "admin", "debug_headers", "server", "clusters", "routes"];

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
    /// Time to keep serving after SIGTERM before closing listeners.
    #[serde(default)]
    pub grace_period: Option<Dur>,
    /// Time allowed for in-flight requests to finish after the grace period.
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
}
