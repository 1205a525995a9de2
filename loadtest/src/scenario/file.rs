//! The scenario file as written: serde structs mirroring the YAML one to one.
//!
//! Unknown keys are errors (`deny_unknown_fields`); meaning (rates per mode, template variables,
//! threshold expressions) is checked afterwards in `validate`, which sees the whole file.

use std::collections::BTreeMap;

use arena_core::config::Dur;
use serde::Deserialize;

use super::AbuseKind;

/// Top-level keys; `fleet` and `faults` are decoded by [`super::ScenarioHooks`].
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "target",
    "mode",
    "http",
    "stages",
    "requests",
    "vars",
    "errors",
    "thresholds",
    "seed",
    "fleet",
    "faults",
    "abuse",
    "release",
    "tracing",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// 1 (HTTP/1.1 keep-alive) or 2 (h2c with prior knowledge).
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(default)]
    pub connections: Option<usize>,
    /// HTTP/2 only: concurrent requests per connection.
    #[serde(default)]
    pub streams: Option<usize>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub duration: Dur,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub ramp: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    /// Label in reports (default: `METHOD path`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// A template variable: exactly one generator key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarFile {
    /// Uniform choice among these strings.
    #[serde(default)]
    pub pick: Option<Vec<String>>,
    /// Uniform integer in `[low, high]`, both inclusive.
    #[serde(default)]
    pub range: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ModeFile {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "closed")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ErrorsFile {
    #[serde(rename = "5xx")]
    Status5xx,
    #[serde(rename = "non_2xx")]
    Non2xx,
}

/// One element of `abuse:`; `from` is an address, a range `A-B` or a comma-separated list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseFile {
    pub kind: AbuseKind,
    pub connections: usize,
    #[serde(default)]
    pub byte_every: Option<Dur>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub start: Option<Dur>,
    #[serde(default)]
    pub stop: Option<Dur>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

/// `release:`: the grey release to follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFile {
    pub name: String,
    #[serde(default)]
    pub poll: Option<Dur>,
    /// Request header carrying the user id (per-user version tracking).
    #[serde(default)]
    pub users: Option<String>,
    /// `ip:port` of the gateway's admin listener (default: the fleet's gateway).
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
}
