//! Configuration: YAML → typed file structs ([`file`]) → validated [`Config`], with the
//! gateway's loader (every problem at once, `file:line:column`, a hint) and its validators for
//! the shared sections (`admin`, `server`).

pub mod defaults;
pub mod file;
pub mod outbound;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arena_core::config::ser::human;
use arena_core::diag::{ConfigErrors, Diagnostic};
use serde::Serialize;

pub use arena_gateway::config::{Admin, Server};
pub use validate::{load_str, load_with_env};

/// A validated sidecar configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub inbound: Inbound,
    pub admin: Admin,
    pub server: Server,
    /// The app's outbound calls through the gateway's engine (its one listener is
    /// `outbound.listen`).
    pub outbound: Option<Box<arena_gateway::config::Config>>,
    /// Traces of inbound requests, with the gateway's keys (`service_name` defaults to
    /// `arena-sidecar`).
    pub tracing: Option<arena_core::config::TracingSpec>,
}

/// The pod side: the port the gateway dials and the app behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Inbound {
    pub listen: SocketAddr,
    pub app: SocketAddr,
    pub app_check: AppCheck,
    pub limit: LimitSpec,
    pub queue: QueueSpec,
    #[serde(serialize_with = "human")]
    pub request_timeout: Duration,
    #[serde(serialize_with = "human")]
    pub connect_timeout: Duration,
    pub stuck_after: u32,
    #[serde(serialize_with = "human")]
    pub liveness_grace: Duration,
    pub capture: Option<CaptureSpec>,
    pub cpu: CpuSpec,
    pub tls: Option<InboundTlsSpec>,
}

/// mTLS on the pod port (files re-read on change: rotation without restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundTlsSpec {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// SPIFFE IDs, or prefixes ending `/*`; empty admits any certificate of the CA.
    pub allow: Vec<String>,
    #[serde(serialize_with = "human")]
    pub reload_interval: Duration,
}

impl InboundTlsSpec {
    /// The files and parsed allow list (validation has parsed each entry already).
    pub fn files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            allow: self
                .allow
                .iter()
                .filter_map(|a| crate::identity::Allow::parse(a).ok())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppCheck {
    #[serde(serialize_with = "human")]
    pub interval: Duration,
    pub path: Option<String>,
}

/// How many requests the app gets at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "algorithm")]
pub enum LimitSpec {
    Fixed { limit: u32 },
    Gradient(GradientSpec),
    Aimd(AimdSpec),
}

impl LimitSpec {
    /// The limit a fresh limiter starts from.
    pub fn initial(&self) -> u32 {
        match self {
            LimitSpec::Fixed { limit } => *limit,
            LimitSpec::Gradient(g) => g.initial,
            LimitSpec::Aimd(a) => a.initial,
        }
    }
}

/// Envoy's gradient controller with Gradient2's smoothing (see `inbound::limit::gradient`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradientSpec {
    pub initial: u32,
    pub min: u32,
    pub max: u32,
    #[serde(serialize_with = "human")]
    pub interval: Duration,
    pub min_samples: u32,
    pub percentile: u32,
    pub buffer: f64,
    pub smoothing: f64,
    #[serde(serialize_with = "human")]
    pub baseline_window: Duration,
    pub backoff: f64,
}

/// Additive increase, multiplicative decrease on timeouts and slow answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AimdSpec {
    pub initial: u32,
    pub min: u32,
    pub max: u32,
    #[serde(serialize_with = "human")]
    pub latency_threshold: Duration,
    pub backoff: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueSpec {
    pub max: u32,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
}

/// Where cut requests are written for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureSpec {
    pub dir: PathBuf,
    pub max_files: u32,
    pub max_body_bytes: usize,
    /// Lower-case header names written as `<redacted>`.
    pub redact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuSpec {
    pub cgroup: CgroupChoice,
    pub process: Option<String>,
    pub limit_millicores: Option<u32>,
    #[serde(serialize_with = "human")]
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupChoice {
    Auto,
    Off,
    Dir(PathBuf),
}

/// Result of a successful load: the config and the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    pub text_hash: u64,
}

/// Loads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let (text, origin) = arena_core::diag::read_config(path)?;
    load_str(&text, &origin)
}
