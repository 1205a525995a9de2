//! The sidecar's sections as written: serde structs that mirror the YAML one to one. Unknown
//! keys are errors; meaning (ranges, references between keys) is checked by `validate`.

use std::fmt;

use arena_core::config::Dur;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Top-level sections.
pub const TOP_LEVEL_KEYS: &[&str] = &["inbound", "outbound", "admin", "server", "tracing"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundFile {
    pub listen: String,
    pub app: String,
    #[serde(default)]
    pub app_check: Option<AppCheckFile>,
    #[serde(default)]
    pub max_concurrency: Option<ConcurrencyFile>,
    #[serde(default)]
    pub queue: Option<QueueFile>,
    #[serde(default)]
    pub request_timeout: Option<Dur>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    #[serde(default)]
    pub stuck_after: Option<u32>,
    #[serde(default)]
    pub liveness_grace: Option<Dur>,
    #[serde(default)]
    pub capture: Option<CaptureFile>,
    #[serde(default)]
    pub cpu: Option<CpuFile>,
    #[serde(default)]
    pub tls: Option<InboundTlsFile>,
}

/// mTLS on the pod port: the gateway must present a certificate of the CA (and, with `allow`,
/// one of these SPIFFE identities).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundTlsFile {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    #[serde(default)]
    pub allow: Vec<String>,
    /// How often the files are re-read for rotation (default 10s).
    #[serde(default)]
    pub reload_interval: Option<Dur>,
}

/// How the sidecar learns that the app serves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCheckFile {
    #[serde(default)]
    pub interval: Option<Dur>,
    /// `GET` this path (an answer below 500 is good); without it a TCP connect is the check.
    #[serde(default)]
    pub path: Option<String>,
}

/// `max_concurrency:` — a number, `adaptive`, or an algorithm's settings.
#[derive(Debug, Clone)]
pub enum ConcurrencyFile {
    Fixed(u64),
    /// Any other word: validation names the ones it knows.
    Word(String),
    Algorithm(Box<LimitFile>),
}

impl<'de> Deserialize<'de> for ConcurrencyFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConcurrencyFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, `adaptive`, or `{ algorithm: gradient | aimd, ... }`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConcurrencyFile, E> {
                Ok(ConcurrencyFile::Fixed(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConcurrencyFile, E> {
                u64::try_from(v)
                    .map(ConcurrencyFile::Fixed)
                    .map_err(|_| E::custom(format!("max_concurrency must be at least 1, not {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConcurrencyFile, E> {
                Ok(ConcurrencyFile::Word(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ConcurrencyFile, A::Error> {
                let f = LimitFile::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ConcurrencyFile::Algorithm(Box::new(f)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The adaptive limit's knobs (the keys of both algorithms; validation tells them apart).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitFile {
    pub algorithm: String,
    #[serde(default)]
    pub initial: Option<u32>,
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
    // gradient
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub min_samples: Option<u32>,
    #[serde(default)]
    pub percentile: Option<u32>,
    #[serde(default)]
    pub buffer: Option<f64>,
    #[serde(default)]
    pub smoothing: Option<f64>,
    #[serde(default)]
    pub baseline_window: Option<Dur>,
    // both
    #[serde(default)]
    pub backoff: Option<f64>,
    // aimd
    #[serde(default)]
    pub latency_threshold: Option<Dur>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    #[serde(default)]
    pub max: Option<u32>,
    #[serde(default)]
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureFile {
    pub dir: String,
    #[serde(default)]
    pub max_files: Option<u32>,
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Header names whose values are written as `<redacted>`.
    #[serde(default)]
    pub redact: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuFile {
    /// `auto` (the app's cgroup when visible), `off`, or a cgroup v2 directory.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// Count the processes with this name (`/proc/PID/comm`) instead of the port's holders.
    #[serde(default)]
    pub process: Option<String>,
    /// The app container's CPU limit, e.g. from the Downward API (`limits.cpu`, divisor 1m).
    #[serde(default)]
    pub limit_millicores: Option<String>,
    #[serde(default)]
    pub interval: Option<Dur>,
}
