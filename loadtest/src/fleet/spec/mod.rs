//! The `fleet:` and `faults:` sections of a scenario: what to start, and what to break when.
//!
//! The sections as written are in `file`; `members` checks the fleet, `faults` the timeline
//! and how it fits the fleet.

mod faults;
mod file;
mod members;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use arena_core::diag::yaml::{self, Seg};
use saphyr::MarkedYamlOwned;

use crate::scenario::{Diagnostics, Scenario, ScenarioHooks};

/// A validated fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub gateway: Option<String>,
    pub pods: Vec<PodSpec>,
    pub faas: Vec<String>,
    pub dns: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct PodSpec {
    pub name: String,
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    pub args: Vec<String>,
}

/// One timed action of the fault timeline.
#[derive(Debug, Clone)]
pub struct Fault {
    pub at: Duration,
    pub action: Action,
    /// Marker text in reports.
    pub label: String,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// `POST /_pod/config` with these knobs.
    SetPod {
        pod: String,
        knobs: serde_json::Value,
    },
    /// Kill the pod's process (SIGKILL: a crash, not a shutdown).
    Crash {
        pod: String,
    },
    /// Start a crashed pod again with its original flags.
    Restart {
        pod: String,
    },
    /// Replace the DNS answers (names → pods or IPs).
    Dns {
        records: BTreeMap<String, Vec<String>>,
    },
    /// Call the gateway admin API (with the fleet's token).
    Admin {
        method: String,
        path: String,
    },
    /// SIGHUP the gateway.
    Reload,
    /// Rewrite the gateway's config body and SIGHUP it.
    Config {
        config: String,
    },
    /// Stop the gateway and start it again on the same ports.
    RestartGateway,
    /// Zero-downtime binary upgrade: a new gateway process (`run --upgrade`) takes over the
    /// listening sockets, the old one drains and exits.
    UpgradeGateway,
    StopFaas {
        name: String,
    },
    StartFaas {
        name: String,
    },
    /// Kill the DNS server: lookups time out (a cluster DNS blip).
    StopDns,
    /// Start the DNS server again on the same address with the current records.
    StartDns,
}

/// Decodes `fleet:`/`faults:` for the scenario loader.
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetHooks;

impl ScenarioHooks for FleetHooks {
    type Fleet = FleetSpec;
    type Faults = Vec<Fault>;

    fn fleet(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<FleetSpec> {
        members::decode(node, diags)
    }

    fn faults(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<Vec<Fault>> {
        Some(faults::decode(node, diags))
    }

    fn validate(&self, s: &Scenario<FleetSpec, Vec<Fault>>, diags: &mut Diagnostics<'_>) {
        faults::cross_check(s, diags);
        // Without `admin:` the release is polled on the fleet's gateway.
        let polls_fleet = s.release.as_ref().is_some_and(|r| r.admin.is_none());
        if polls_fleet && s.fleet.as_ref().is_some_and(|f| f.gateway.is_none()) {
            diags.error_at(
                &[Seg::Key("release")],
                "`release` is polled on the fleet's gateway, but the fleet has none",
                Some("add `fleet.gateway`, or give `release.admin`".into()),
            );
        }
    }
}

/// Points at the closest pod name, for a name that is not one.
fn hint(name: &str, pods: &[PodSpec]) -> String {
    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    match yaml::closest(name, &names) {
        Some(best) => format!("did you mean `{best}`? pods: {}", names.join(", ")),
        None => format!("pods: {}", names.join(", ")),
    }
}

/// `${pod:NAME}`, `${faas:NAME}` and `${dns}` references in a gateway config body.
pub fn placeholders(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        match inner.split_once(':') {
            Some((kind @ ("pod" | "faas"), name)) => out.push((kind, name)),
            None if inner == "dns" => out.push(("dns", "")),
            // Other `${...}` (e.g. `${env:X}`) belong to the gateway itself.
            _ => {}
        }
        rest = &after[end + 1..];
    }
    out
}
