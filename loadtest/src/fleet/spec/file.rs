//! The `fleet:` and `faults:` sections as written: serde structs mirroring the YAML (unknown
//! keys are errors); meaning is checked in `members` and `faults`.

use std::collections::BTreeMap;

use arena_core::config::Dur;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    #[serde(default)]
    pub gateway: Option<GatewayFile>,
    #[serde(default)]
    pub pods: Vec<PodFile>,
    #[serde(default)]
    pub faas: Vec<FaasFile>,
    #[serde(default)]
    pub dns: Option<DnsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Gateway YAML without `listeners`/`admin` (the fleet adds them). `${pod:NAME}`,
    /// `${faas:NAME}` and `${dns}` expand to addresses of fleet members, `${pod-port}` to the
    /// port all pods without their own `port` share (for DNS records).
    pub config: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodFile {
    pub name: String,
    pub ip: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaasFile {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// Name → pod names or IPv4 addresses.
    pub records: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionFile {
    Set,
    Stuck,
    Unstuck,
    Crash,
    Restart,
    Dns,
    Admin,
    Reload,
    Config,
    RestartGateway,
    UpgradeGateway,
    StopFaas,
    StartFaas,
    StopDns,
    StartDns,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    pub at: Dur,
    #[serde(default)]
    pub action: Option<ActionFile>,
    #[serde(default)]
    pub pod: Option<String>,
    /// `action: set`: the pod's live knobs (`latency_ms`, `jitter_ms`, `error_rate`, `stuck`,
    /// `report_utilization`).
    #[serde(default)]
    pub set: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub records: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub faas: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}
