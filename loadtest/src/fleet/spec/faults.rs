//! Decoding `faults:` into a timeline of [`Fault`]s, their default labels, and the checks of
//! the timeline against the fleet once both are decoded.

use std::time::Duration;

use arena_core::diag::yaml::{self, Seg};
use saphyr::MarkedYamlOwned;

use super::file::{ActionFile, FaultFile};
use super::{hint, Action, Fault, FleetSpec};
use crate::scenario::{Diagnostics, Scenario};

/// The faults, in time order; those missing what their action needs are reported and left out.
pub(super) fn decode(node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Vec<Fault> {
    let items: Vec<(usize, FaultFile)> = diags.decode_list(node, "faults");
    let mut out = Vec::new();
    for (i, f) in items {
        let item = Item { f: &f, i };
        if let Some(action) = item.action(diags) {
            let label = f.label.clone().unwrap_or_else(|| describe(&action));
            out.push(Fault {
                at: f.at.0,
                action,
                label,
            });
        }
    }
    out.sort_by_key(|f| f.at);
    out
}

/// Fault `i` of the list as written.
struct Item<'f> {
    f: &'f FaultFile,
    i: usize,
}

impl Item<'_> {
    /// The action (`set:` alone means `action: set`, nothing means a reload), or None once
    /// what it lacks is reported.
    fn action(&self, diags: &mut Diagnostics<'_>) -> Option<Action> {
        let f = self.f;
        let kind = f.action.unwrap_or(if f.set.is_some() {
            ActionFile::Set
        } else {
            ActionFile::Reload
        });
        match kind {
            ActionFile::Set => match (&f.set, self.pod(diags)) {
                (Some(knobs), Some(pod)) => Some(Action::SetPod {
                    pod,
                    knobs: serde_json::to_value(knobs).unwrap_or_default(),
                }),
                (None, _) => self.lacks("`action: set` needs `set: { latency_ms: 150 }` or similar", diags),
                _ => None,
            },
            ActionFile::Stuck | ActionFile::Unstuck => self.pod(diags).map(|pod| Action::SetPod {
                pod,
                knobs: serde_json::json!({ "stuck": kind == ActionFile::Stuck }),
            }),
            ActionFile::Crash => self.pod(diags).map(|pod| Action::Crash { pod }),
            ActionFile::Restart => self.pod(diags).map(|pod| Action::Restart { pod }),
            ActionFile::Dns => match &f.records {
                Some(r) => Some(Action::Dns { records: r.clone() }),
                None => self.lacks("`action: dns` needs `records:`", diags),
            },
            ActionFile::Admin => Some(Action::Admin {
                method: f.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
                path: f.path.clone().unwrap_or_else(|| "/clusters".into()),
            }),
            ActionFile::Reload => Some(Action::Reload),
            ActionFile::RestartGateway => Some(Action::RestartGateway),
            ActionFile::UpgradeGateway => Some(Action::UpgradeGateway),
            ActionFile::Config => match &f.config {
                Some(c) => Some(Action::Config { config: c.clone() }),
                None => self.lacks("`action: config` needs `config:` (the new gateway config body)", diags),
            },
            ActionFile::StopDns => Some(Action::StopDns),
            ActionFile::StartDns => Some(Action::StartDns),
            ActionFile::StopFaas | ActionFile::StartFaas => match &f.faas {
                Some(name) if kind == ActionFile::StopFaas => Some(Action::StopFaas { name: name.clone() }),
                Some(name) => Some(Action::StartFaas { name: name.clone() }),
                None => self.lacks("this action needs `faas:` (the function's name)", diags),
            },
        }
    }

    /// The `pod:` an action needs, reported at the fault when missing.
    fn pod(&self, diags: &mut Diagnostics<'_>) -> Option<String> {
        let p = self.f.pod.clone();
        if p.is_none() {
            diags.error_at(
                &[Seg::Key("faults"), Seg::Index(self.i)],
                "this action needs `pod:`",
                None,
            );
        }
        p
    }

    /// Reports at the fault's `action:` that it lacks a field; no action then.
    fn lacks(&self, message: &str, diags: &mut Diagnostics<'_>) -> Option<Action> {
        diags.error_at(
            &[Seg::Key("faults"), Seg::Index(self.i), Seg::Key("action")],
            message,
            None,
        );
        None
    }
}

/// Faults against the fleet: it must exist, and have the pods, gateway, DNS server and
/// functions the faults act on.
pub(super) fn cross_check(s: &Scenario<FleetSpec, Vec<Fault>>, diags: &mut Diagnostics<'_>) {
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
        check(f, &[Seg::Key("faults"), Seg::Index(i)], fleet, total, diags);
    }
}

/// One fault (at `path`) against the fleet and the load's duration `total`.
fn check(f: &Fault, path: &[Seg], fleet: &FleetSpec, total: Duration, diags: &mut Diagnostics<'_>) {
    if f.at > total {
        diags.warn_at(
            path,
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
            path,
            format!("fault names unknown pod `{p}`"),
            Some(hint(p, &fleet.pods)),
        );
    }
    let needs_gateway = matches!(
        f.action,
        Action::Admin { .. } | Action::Reload | Action::Config { .. } | Action::RestartGateway | Action::UpgradeGateway
    );
    if needs_gateway && fleet.gateway.is_none() {
        diags.error_at(path, "this fault acts on the gateway, but the fleet has none", None);
    }
    if matches!(f.action, Action::Dns { .. } | Action::StopDns | Action::StartDns) && fleet.dns.is_none() {
        diags.error_at(path, "a DNS fault needs `fleet.dns`", None);
    }
    if let Action::StopFaas { name } | Action::StartFaas { name } = &f.action {
        if !fleet.faas.contains(name) {
            diags.error_at(path, format!("fault names unknown function `{name}`"), None);
        }
    }
}

/// The default marker label of an action.
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
        Action::UpgradeGateway => "gateway binary upgraded".into(),
        Action::StopFaas { name } => format!("function {name} down"),
        Action::StartFaas { name } => format!("function {name} up"),
        Action::StopDns => "DNS server down".into(),
        Action::StartDns => "DNS server back".into(),
    }
}
