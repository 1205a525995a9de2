//! The `fleet:` and `faults:` sections of a scenario: what to start, and what to break when.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use arena_core::config::Dur;
use arena_core::diag::yaml::{self, Seg};
use saphyr::MarkedYamlOwned;
use serde::Deserialize;

use crate::scenario::{Diagnostics, Scenario, ScenarioHooks};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    gateway: Option<GatewayFile>,
    #[serde(default)]
    pods: Vec<PodFile>,
    #[serde(default)]
    faas: Vec<FaasFile>,
    #[serde(default)]
    dns: Option<DnsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    /// Gateway YAML without `listeners`/`admin` (the fleet adds them). `${pod:NAME}`,
    /// `${faas:NAME}` and `${dns}` expand to addresses of fleet members, `${pod-port}` to the
    /// port all pods without their own `port` share (for DNS records).
    config: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PodFile {
    name: String,
    ip: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaasFile {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsFile {
    /// Name → pod names or IPv4 addresses.
    records: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ActionFile {
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
    StopFaas,
    StartFaas,
    StopDns,
    StartDns,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    at: Dur,
    #[serde(default)]
    action: Option<ActionFile>,
    #[serde(default)]
    pod: Option<String>,
    /// `action: set`: the pod's live knobs (`latency_ms`, `jitter_ms`, `error_rate`, `stuck`,
    /// `report_utilization`).
    #[serde(default)]
    set: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    records: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    faas: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

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
        let f: FleetFile = diags.decode(node)?;
        let mut pods: Vec<PodSpec> = Vec::new();
        for (i, p) in f.pods.iter().enumerate() {
            let at = |k: &'static str| [Seg::Key("fleet"), Seg::Key("pods"), Seg::Index(i), Seg::Key(k)];
            let ip = match p.ip.parse::<Ipv4Addr>() {
                Ok(ip) if ip.is_loopback() => Some(ip),
                _ => {
                    diags.error_at(
                        &at("ip"),
                        format!("pod ip `{}` must be a 127.x.y.z address", p.ip),
                        Some("every fake pod gets its own loopback IP, e.g. 127.0.0.11".into()),
                    );
                    None
                }
            };
            if pods.iter().any(|q| q.name == p.name) {
                diags.error_at(&at("name"), format!("duplicate pod name `{}`", p.name), None);
            }
            // A pod with a bad address is reported above but kept by name, so faults and
            // gateway references to it are not reported a second time.
            pods.push(PodSpec {
                name: p.name.clone(),
                ip: ip.unwrap_or(Ipv4Addr::LOCALHOST),
                port: p.port,
                args: p.args.clone(),
            });
        }
        let faas: Vec<String> = f.faas.iter().map(|x| x.name.clone()).collect();
        let known = |name: &str| pods.iter().any(|p| p.name == name) || name.parse::<Ipv4Addr>().is_ok();
        if let Some(d) = &f.dns {
            for (name, targets) in &d.records {
                for t in targets.iter().filter(|t| !known(t)) {
                    diags.error_at(
                        &[Seg::Key("fleet"), Seg::Key("dns"), Seg::Key("records")],
                        format!("DNS record `{name}` names unknown pod `{t}`"),
                        Some(hint(t, &pods)),
                    );
                }
            }
        }
        if let Some(g) = &f.gateway {
            for (kind, name) in placeholders(&g.config) {
                let found = match kind {
                    "pod" => pods.iter().any(|p| p.name == name),
                    "faas" => faas.iter().any(|x| x == name),
                    _ => f.dns.is_some(),
                };
                if !found {
                    diags.error_at(
                        &[Seg::Key("fleet"), Seg::Key("gateway"), Seg::Key("config")],
                        format!(
                            "gateway config refers to unknown fleet member `${{{kind}{}}}`",
                            if name.is_empty() {
                                String::new()
                            } else {
                                format!(":{name}")
                            }
                        ),
                        Some("define it under fleet.pods / fleet.faas / fleet.dns".into()),
                    );
                }
            }
        }
        if f.gateway.is_none() && pods.is_empty() {
            diags.error(yaml::pos(node), "a fleet needs a gateway or at least one pod", None);
        }
        // Returned even when something was reported (the load fails anyway), so the
        // cross-checks in `validate` still run and report everything at once.
        Some(FleetSpec {
            gateway: f.gateway.map(|g| g.config),
            pods,
            faas,
            dns: f.dns.map(|d| d.records),
        })
    }

    fn faults(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<Vec<Fault>> {
        let items: Vec<(usize, FaultFile)> = diags.decode_list(node, "faults");
        let mut out = Vec::new();
        for (i, f) in items {
            let at_path = |k: &'static str| [Seg::Key("faults"), Seg::Index(i), Seg::Key(k)];
            let kind = f.action.unwrap_or(if f.set.is_some() {
                ActionFile::Set
            } else {
                ActionFile::Reload
            });
            let pod = |diags: &mut Diagnostics<'_>| -> Option<String> {
                let p = f.pod.clone();
                if p.is_none() {
                    diags.error_at(&[Seg::Key("faults"), Seg::Index(i)], "this action needs `pod:`", None);
                }
                p
            };
            let action = match kind {
                ActionFile::Set => match (&f.set, pod(diags)) {
                    (Some(knobs), Some(pod)) => Some(Action::SetPod {
                        pod,
                        knobs: serde_json::to_value(knobs).unwrap_or_default(),
                    }),
                    (None, _) => {
                        diags.error_at(
                            &at_path("action"),
                            "`action: set` needs `set: { latency_ms: 150 }` or similar",
                            None,
                        );
                        None
                    }
                    _ => None,
                },
                ActionFile::Stuck | ActionFile::Unstuck => pod(diags).map(|pod| Action::SetPod {
                    pod,
                    knobs: serde_json::json!({ "stuck": kind == ActionFile::Stuck }),
                }),
                ActionFile::Crash => pod(diags).map(|pod| Action::Crash { pod }),
                ActionFile::Restart => pod(diags).map(|pod| Action::Restart { pod }),
                ActionFile::Dns => match &f.records {
                    Some(r) => Some(Action::Dns { records: r.clone() }),
                    None => {
                        diags.error_at(&at_path("action"), "`action: dns` needs `records:`", None);
                        None
                    }
                },
                ActionFile::Admin => Some(Action::Admin {
                    method: f.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
                    path: f.path.clone().unwrap_or_else(|| "/clusters".into()),
                }),
                ActionFile::Reload => Some(Action::Reload),
                ActionFile::RestartGateway => Some(Action::RestartGateway),
                ActionFile::Config => match &f.config {
                    Some(c) => Some(Action::Config { config: c.clone() }),
                    None => {
                        diags.error_at(
                            &at_path("action"),
                            "`action: config` needs `config:` (the new gateway config body)",
                            None,
                        );
                        None
                    }
                },
                ActionFile::StopDns => Some(Action::StopDns),
                ActionFile::StartDns => Some(Action::StartDns),
                ActionFile::StopFaas | ActionFile::StartFaas => match &f.faas {
                    Some(name) if kind == ActionFile::StopFaas => Some(Action::StopFaas { name: name.clone() }),
                    Some(name) => Some(Action::StartFaas { name: name.clone() }),
                    None => {
                        diags.error_at(
                            &at_path("action"),
                            "this action needs `faas:` (the function's name)",
                            None,
                        );
                        None
                    }
                },
            };
            if let Some(action) = action {
                let label = f.label.clone().unwrap_or_else(|| describe(&action));
                out.push(Fault {
                    at: f.at.0,
                    action,
                    label,
                });
            }
        }
        out.sort_by_key(|f| f.at);
        Some(out)
    }

    fn validate(&self, s: &Scenario<FleetSpec, Vec<Fault>>, diags: &mut Diagnostics<'_>) {
        let faults = s.faults.as_deref().unwrap_or_default();
        let fleet_written = yaml::entries(diags.root()).is_some_and(|e| e.iter().any(|(k, _, _)| k == "fleet"));
        if !faults.is_empty() && s.fleet.is_none() && !fleet_written {
            diags.error_at(
                &[Seg::Key("faults")],
                "faults act on fleet members: add a `fleet:` section",
                None,
            );
            return;
        }
        let Some(fleet) = &s.fleet else { return };
        let total = s.duration();
        for (i, f) in faults.iter().enumerate() {
            let path = [Seg::Key("faults"), Seg::Index(i)];
            if f.at > total {
                diags.warn_at(
                    &path,
                    format!(
                        "fault `{}` at {:?} is after the end of the load ({total:?})",
                        f.label, f.at
                    ),
                    None,
                );
            }
            let pod = match &f.action {
                Action::SetPod { pod, .. } | Action::Crash { pod } | Action::Restart { pod } => Some(pod),
                _ => None,
            };
            if let Some(p) = pod.filter(|p| !fleet.pods.iter().any(|q| &q.name == *p)) {
                diags.error_at(
                    &path,
                    format!("fault names unknown pod `{p}`"),
                    Some(hint(p, &fleet.pods)),
                );
            }
            let needs_gateway = matches!(
                f.action,
                Action::Admin { .. } | Action::Reload | Action::Config { .. } | Action::RestartGateway
            );
            if needs_gateway && fleet.gateway.is_none() {
                diags.error_at(&path, "this fault acts on the gateway, but the fleet has none", None);
            }
            if matches!(f.action, Action::Dns { .. } | Action::StopDns | Action::StartDns) && fleet.dns.is_none() {
                diags.error_at(&path, "a DNS fault needs `fleet.dns`", None);
            }
            if let Action::StopFaas { name } | Action::StartFaas { name } = &f.action {
                if !fleet.faas.contains(name) {
                    diags.error_at(&path, format!("fault names unknown function `{name}`"), None);
                }
            }
        }
    }
}

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

fn describe(a: &Action) -> String {
    match a {
        Action::SetPod { pod, knobs } => format!("{pod}: {knobs}"),
        Action::Crash { pod } => format!("{pod} crashes"),
        Action::Restart { pod } => format!("{pod} restarts"),
        Action::Dns { records } => format!(
            "DNS: {}",
            records
                .iter()
                .map(|(k, v)| format!("{k} → {}", v.join(",")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Action::Admin { method, path } => format!("admin {method} {path}"),
        Action::Reload => "gateway reload (SIGHUP)".into(),
        Action::Config { .. } => "gateway config changed".into(),
        Action::RestartGateway => "gateway restarts".into(),
        Action::StopFaas { name } => format!("function {name} down"),
        Action::StartFaas { name } => format!("function {name} up"),
        Action::StopDns => "DNS server down".into(),
        Action::StartDns => "DNS server back".into(),
    }
}
