//! Decoding `fleet:`: pods with their loopback addresses, functions, DNS records, and the
//! gateway config's references to all of them.

use std::net::Ipv4Addr;

use arena_core::diag::yaml::{self, Seg};
use saphyr::MarkedYamlOwned;

use super::file::{DnsFile, FleetFile, GatewayFile, PodFile};
use super::{hint, placeholders, FleetSpec, PodSpec};
use crate::scenario::Diagnostics;

/// The fleet; `None` only when `fleet:` does not decode at all.
pub(super) fn decode(node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<FleetSpec> {
    let f: FleetFile = diags.decode(node)?;
    let pods = pods(&f.pods, diags);
    let faas: Vec<String> = f.faas.iter().map(|x| x.name.clone()).collect();
    if let Some(d) = &f.dns {
        check_records(d, &pods, diags);
    }
    if let Some(g) = &f.gateway {
        check_references(g, &pods, &faas, f.dns.is_some(), diags);
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

/// Every pod, each on its own loopback IP and with a unique name.
fn pods(written: &[PodFile], diags: &mut Diagnostics<'_>) -> Vec<PodSpec> {
    let mut pods: Vec<PodSpec> = Vec::new();
    for (i, p) in written.iter().enumerate() {
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
    pods
}

/// DNS records name pods of the fleet or plain IPv4 addresses.
fn check_records(dns: &DnsFile, pods: &[PodSpec], diags: &mut Diagnostics<'_>) {
    let known = |name: &str| pods.iter().any(|p| p.name == name) || name.parse::<Ipv4Addr>().is_ok();
    for (name, targets) in &dns.records {
        for t in targets.iter().filter(|t| !known(t)) {
            diags.error_at(
                &[Seg::Key("fleet"), Seg::Key("dns"), Seg::Key("records")],
                format!("DNS record `{name}` names unknown pod `{t}`"),
                Some(hint(t, pods)),
            );
        }
    }
}

/// `${pod:NAME}`, `${faas:NAME}` and `${dns}` in the gateway config name members that exist.
fn check_references(g: &GatewayFile, pods: &[PodSpec], faas: &[String], dns: bool, diags: &mut Diagnostics<'_>) {
    for (kind, name) in placeholders(&g.config) {
        let found = match kind {
            "pod" => pods.iter().any(|p| p.name == name),
            "faas" => faas.iter().any(|x| x == name),
            _ => dns,
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
