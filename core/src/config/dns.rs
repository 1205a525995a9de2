//! `clusters[].dns:` — pods from DNS A/AAAA or SRV records (a Kubernetes headless service):
//! the name, the record kind, the server and how often to look again.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::defaults::dns as dns_def;
use super::fields::parse_addr;
use super::ser::human;
use super::{dur_or, Dur};
use crate::diag::{Diagnostics, Seg};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
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

pub(super) fn dns_spec(c: &mut Diagnostics<'_>, i: usize, d: &DnsFile) -> Option<DnsSpec> {
    let at = |key: &'static str| [Seg::Key("clusters"), Seg::Index(i), Seg::Key("dns"), Seg::Key(key)];
    let mut ok = true;
    if d.name.trim().is_empty() {
        c.error_at(&at("name"), "dns.name must not be empty", None);
        ok = false;
    }
    if d.port.is_none() && d.record != RecordKind::Srv {
        c.error_at(
            &at("record"),
            "A/AAAA records carry no port: set `dns.port`",
            Some("or use `record: srv`, which gives a port per pod".into()),
        );
        ok = false;
    }
    let resolver = match &d.resolver {
        Some(r) => {
            let parsed = parse_addr(c, &at("resolver"), r, "resolver");
            ok &= parsed.is_some();
            parsed
        }
        None => None,
    };
    let min_refresh = dur_or(d.min_refresh, dns_def::MIN_REFRESH);
    let max_refresh = dur_or(d.max_refresh, dns_def::MAX_REFRESH);
    if min_refresh > max_refresh {
        c.error_at(
            &at("min_refresh"),
            "dns.min_refresh is greater than dns.max_refresh",
            None,
        );
        ok = false;
    }
    if min_refresh.is_zero() {
        c.error_at(
            &at("min_refresh"),
            "dns.min_refresh must be greater than zero",
            Some("a zero refresh would query the DNS server in a loop".into()),
        );
        ok = false;
    }
    let timeout = dur_or(d.timeout, dns_def::TIMEOUT);
    if timeout.is_zero() {
        // The resolver refuses it: the cluster would load but never resolve.
        c.error_at(&at("timeout"), "dns.timeout must be greater than zero", None);
        ok = false;
    }
    ok.then(|| DnsSpec {
        name: d.name.trim().to_string(),
        port: d.port,
        record: d.record,
        resolver,
        min_refresh,
        max_refresh,
        timeout,
    })
}
