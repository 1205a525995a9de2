//! `clusters:` — the pods behind a name: where they come from (a list, or DNS: see `dns`), how
//! one is picked, and the live-load and outlier tuning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::defaults::cluster as def;
use super::dns::dns_spec;
pub use super::dns::{DnsFile, DnsSpec, RecordKind};
use super::fields::{check_unique, internal_header_error, is_internal_header, parse_addr};
use super::ser::{header_name, human, human_opt};
use super::{dur_or, Dur};
use crate::diag::{Diagnostics, Seg};

// ------------------------------------------------------------------------------ as written

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    #[default]
    P2cEwma,
    LeastInflight,
    RoundRobin,
    ConsistentHash,
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
    /// Deadline of one try; the connection of a try that overruns it is dropped.
    #[serde(default)]
    pub per_try_timeout: Option<Dur>,
    /// Circuit breaker: requests in flight to the whole cluster beyond this fail fast.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub outlier: Option<OutlierFile>,
    /// (m)TLS to the pods (sidecars' pod ports).
    #[serde(default)]
    pub tls: Option<ClusterTlsFile>,
}

/// `tls:` of a cluster: the CA the pods' certificates chain to, the client certificate to
/// present (mTLS), and the name to check the pods' certificates for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsFile {
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    /// A DNS name the pods' certificates carry.
    #[serde(default)]
    pub server_name: Option<String>,
    /// The pods' SPIFFE identity; checked through its DNS form (`SA.NS.sa.identity.TD`).
    #[serde(default)]
    pub spiffe_id: Option<String>,
}

/// Passive outlier ejection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    #[serde(default)]
    pub base_ejection: Option<Dur>,
    #[serde(default)]
    pub max_ejection: Option<Dur>,
    #[serde(default)]
    pub max_ejected_percent: Option<u32>,
}

// ------------------------------------------------------------------------------ validated

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub source: Source,
    pub lb: LbKind,
    pub hash_key: Option<HashKey>,
    #[serde(serialize_with = "human")]
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept; `None` keeps it until the pod closes it.
    #[serde(serialize_with = "human_opt")]
    pub idle_timeout: Option<Duration>,
    pub load: LoadTuning,
    /// Deadline of one try (the route timeout bounds all tries together).
    #[serde(serialize_with = "human_opt")]
    pub per_try_timeout: Option<Duration>,
    /// Circuit breaker on the cluster's total in-flight requests.
    pub max_in_flight: Option<u32>,
    pub outlier: OutlierSpec,
    pub tls: Option<ClusterTlsSpec>,
}

/// Validated `tls:` of a cluster (the files are read by the proxy that dials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterTlsSpec {
    pub ca_file: PathBuf,
    /// Client certificate chain and key, together or not at all.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The SNI sent and the DNS name the pods' certificates must carry.
    pub server_name: String,
    /// The SPIFFE ID `server_name` was derived from, when one was given.
    pub spiffe_id: Option<String>,
}

/// Passive outlier ejection: a pod failing `consecutive_failures` times in a row is taken out
/// for `base_ejection × 2^(times ejected before)`, at most `max_ejection`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutlierSpec {
    pub consecutive_failures: u32,
    #[serde(serialize_with = "human")]
    pub base_ejection: Duration,
    #[serde(serialize_with = "human")]
    pub max_ejection: Duration,
    pub max_ejected_percent: u32,
}

impl Default for OutlierSpec {
    fn default() -> Self {
        OutlierSpec {
            consecutive_failures: def::OUTLIER_CONSECUTIVE_FAILURES,
            base_ejection: def::OUTLIER_BASE_EJECTION,
            max_ejection: def::OUTLIER_MAX_EJECTION,
            max_ejected_percent: def::OUTLIER_MAX_EJECTED_PERCENT,
        }
    }
}

/// Where a cluster's pods come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Static(Vec<SocketAddr>),
    Dns(DnsSpec),
}

/// What `consistent_hash` hashes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    Header(#[serde(serialize_with = "header_name")] HeaderName),
    Cookie(String),
    ClientIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadTuning {
    #[serde(serialize_with = "human")]
    pub decay: Duration,
    #[serde(serialize_with = "human")]
    pub default_rtt: Duration,
    #[serde(serialize_with = "human")]
    pub report_ttl: Duration,
    pub error_penalty: f64,
}

impl Default for LoadTuning {
    fn default() -> Self {
        LoadTuning {
            decay: def::LOAD_DECAY,
            default_rtt: def::LOAD_DEFAULT_RTT,
            report_ttl: def::LOAD_REPORT_TTL,
            error_penalty: def::LOAD_ERROR_PENALTY,
        }
    }
}

// ------------------------------------------------------------------------------ validation

/// Validates the decoded `clusters:` items; returns `(index, spec)` of the valid ones.
pub fn validate(c: &mut Diagnostics<'_>, items: &[(usize, ClusterFile)]) -> Vec<(usize, ClusterSpec)> {
    check_unique(c, "clusters", items.iter().map(|(i, cl)| (*i, cl.name.as_str())));
    let mut out = Vec::new();
    for (i, cl) in items {
        let at = |key: &'static str| [Seg::Key("clusters"), Seg::Index(*i), Seg::Key(key)];
        let source = source(c, *i, cl);
        let hash_key = hash_key(c, &at, cl);
        let load = load_tuning(c, &at("load"), cl.load.as_ref());
        let outlier = outlier(c, &at("outlier"), cl.outlier.as_ref());
        if cl.max_in_flight == Some(0) {
            c.error_at(
                &at("max_in_flight"),
                "max_in_flight must be at least 1",
                Some("leave it out for no limit".into()),
            );
        }
        if cl.per_try_timeout.is_some_and(|d| d.0.is_zero()) {
            c.error_at(
                &at("per_try_timeout"),
                "per_try_timeout must be greater than zero",
                None,
            );
        }
        let Some(source) = source else { continue };
        out.push((
            *i,
            ClusterSpec {
                name: cl.name.clone(),
                source,
                lb: cl.lb,
                hash_key,
                connect_timeout: dur_or(cl.connect_timeout, def::CONNECT_TIMEOUT),
                idle_timeout: cl.idle_timeout.map(|d| d.0),
                load,
                per_try_timeout: cl.per_try_timeout.map(|d| d.0),
                max_in_flight: cl.max_in_flight,
                outlier,
                tls: cl.tls.as_ref().and_then(|t| tls(c, &at("tls"), t)),
            },
        ));
    }
    out
}

fn tls(c: &mut Diagnostics<'_>, at: &[Seg], t: &ClusterTlsFile) -> Option<ClusterTlsSpec> {
    let client = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => {
            c.error_at(
                at,
                "tls needs `cert_file` and `key_file` together",
                Some("both for mTLS (the sidecars require a client certificate), neither for TLS only".into()),
            );
            return None;
        }
    };
    let (server_name, spiffe_id) = match (&t.server_name, &t.spiffe_id) {
        (Some(name), None) => {
            if !crate::identity::is_dns_name(name) {
                c.error_at(
                    &super::fields::path(at, &["server_name"]),
                    format!("server_name `{name}` is not a DNS name"),
                    Some("the name the pods' certificates carry as a DNS SAN".into()),
                );
                return None;
            }
            (name.clone(), None)
        }
        (None, Some(id)) => {
            let parsed = match crate::identity::SpiffeId::parse(id) {
                Ok(p) => p,
                Err(why) => {
                    c.error_at(
                        &super::fields::path(at, &["spiffe_id"]),
                        format!("spiffe_id `{id}` is not a SPIFFE ID: {why}"),
                        Some("write e.g. spiffe://arena/ns/demo/sa/match-api".into()),
                    );
                    return None;
                }
            };
            let Some(dns) = crate::identity::dns_form(&parsed) else {
                c.error_at(
                    &super::fields::path(at, &["spiffe_id"]),
                    format!("spiffe_id `{id}` has no DNS form"),
                    Some(
                        "the gateway checks a workload identity through its DNS form, which needs the shape \
                         spiffe://TD/ns/NAMESPACE/sa/SERVICEACCOUNT (lowercase, no dots in the names)"
                            .into(),
                    ),
                );
                return None;
            };
            (dns, Some(id.clone()))
        }
        _ => {
            c.error_at(
                at,
                "tls needs exactly one of `server_name` and `spiffe_id`",
                Some("the identity the pods' certificates must prove; without one nothing would be checked".into()),
            );
            return None;
        }
    };
    Some(ClusterTlsSpec {
        ca_file: PathBuf::from(&t.ca_file),
        client,
        server_name,
        spiffe_id,
    })
}

fn source(c: &mut Diagnostics<'_>, i: usize, cl: &ClusterFile) -> Option<Source> {
    match (&cl.endpoints, &cl.dns) {
        (Some(_), Some(_)) => {
            c.error_at(
                &[Seg::Key("clusters"), Seg::Index(i), Seg::Key("dns")],
                format!("cluster `{}` has both `endpoints` and `dns`", cl.name),
                Some("use one source of pods per cluster".into()),
            );
            None
        }
        (None, None) => {
            c.error_at(
                &[Seg::Key("clusters"), Seg::Index(i)],
                format!("cluster `{}` has no pods", cl.name),
                Some(
                    "add `endpoints: [\"10.0.0.1:9100\"]` or `dns: { name: svc.ns.svc.cluster.local, port: 9100 }`"
                        .into(),
                ),
            );
            None
        }
        (Some(list), None) => static_endpoints(c, i, &cl.name, list),
        (None, Some(d)) => dns_spec(c, i, d).map(Source::Dns),
    }
}

fn hash_key(c: &mut Diagnostics<'_>, at: &impl Fn(&'static str) -> [Seg; 3], cl: &ClusterFile) -> Option<HashKey> {
    match (&cl.hash_key, cl.lb) {
        (Some(k), LbKind::ConsistentHash) => parse_hash_key(c, &at("hash_key"), k),
        (None, LbKind::ConsistentHash) => {
            c.error_at(
                &at("lb"),
                "consistent_hash needs a `hash_key`",
                Some("e.g. `hash_key: header:x-user-id`, `cookie:session` or `client_ip`".into()),
            );
            None
        }
        (Some(_), _) => {
            c.warn_at(
                &at("hash_key"),
                "hash_key is ignored unless `lb: consistent_hash`",
                None,
            );
            None
        }
        (None, _) => None,
    }
}

fn load_tuning(c: &mut Diagnostics<'_>, at: &[Seg], file: Option<&LoadFile>) -> LoadTuning {
    let f = file.cloned().unwrap_or_default();
    let load = LoadTuning {
        decay: dur_or(f.decay, def::LOAD_DECAY),
        default_rtt: dur_or(f.default_rtt, def::LOAD_DEFAULT_RTT),
        report_ttl: dur_or(f.report_ttl, def::LOAD_REPORT_TTL),
        error_penalty: f.error_penalty.unwrap_or(def::LOAD_ERROR_PENALTY),
    };
    if load.decay.is_zero() {
        c.error_at(at, "load.decay must be greater than zero", None);
    }
    if !(1.0..=1000.0).contains(&load.error_penalty) {
        c.error_at(at, "load.error_penalty must be between 1 and 1000", None);
    }
    load
}

fn outlier(c: &mut Diagnostics<'_>, at: &[Seg], file: Option<&OutlierFile>) -> OutlierSpec {
    let o = file.cloned().unwrap_or_default();
    let outlier = OutlierSpec {
        consecutive_failures: o.consecutive_failures.unwrap_or(def::OUTLIER_CONSECUTIVE_FAILURES),
        base_ejection: dur_or(o.base_ejection, def::OUTLIER_BASE_EJECTION),
        max_ejection: dur_or(o.max_ejection, def::OUTLIER_MAX_EJECTION),
        max_ejected_percent: o.max_ejected_percent.unwrap_or(def::OUTLIER_MAX_EJECTED_PERCENT),
    };
    if outlier.max_ejected_percent > 100 {
        c.error_at(at, "outlier.max_ejected_percent must be 0..100", None);
    }
    if outlier.base_ejection > outlier.max_ejection {
        c.error_at(at, "outlier.base_ejection is longer than outlier.max_ejection", None);
    }
    outlier
}

fn static_endpoints(c: &mut Diagnostics<'_>, i: usize, name: &str, list: &[String]) -> Option<Source> {
    if list.is_empty() {
        c.error_at(
            &[Seg::Key("clusters"), Seg::Index(i), Seg::Key("endpoints")],
            format!("cluster `{name}` has an empty endpoint list"),
            None,
        );
        return None;
    }
    let mut addrs = Vec::new();
    let mut ok = true;
    for (j, e) in list.iter().enumerate() {
        let path = [
            Seg::Key("clusters"),
            Seg::Index(i),
            Seg::Key("endpoints"),
            Seg::Index(j),
        ];
        match parse_addr(c, &path, e, "endpoint") {
            Some(a) if addrs.contains(&a) => c.warn_at(&path, format!("endpoint {a} is listed twice"), None),
            Some(a) => addrs.push(a),
            None => ok = false,
        }
    }
    ok.then_some(Source::Static(addrs))
}

fn parse_hash_key(c: &mut Diagnostics<'_>, path: &[Seg], k: &str) -> Option<HashKey> {
    let bad = "write `header:NAME`, `cookie:NAME` or `client_ip`";
    let key = if k == "client_ip" {
        Some(HashKey::ClientIp)
    } else if let Some(h) = k.strip_prefix("header:") {
        HeaderName::from_str(h.trim()).ok().map(HashKey::Header)
    } else if let Some(name) = k.strip_prefix("cookie:") {
        (!name.trim().is_empty()).then(|| HashKey::Cookie(name.trim().to_string()))
    } else {
        None
    };
    if key.is_none() {
        c.error_at(path, format!("bad hash_key `{k}`"), Some(bad.into()));
    }
    if let Some(HashKey::Header(h)) = &key {
        if is_internal_header(h.as_str()) {
            internal_header_error(c, path, h.as_str(), "hash_key");
            return None;
        }
    }
    key
}
