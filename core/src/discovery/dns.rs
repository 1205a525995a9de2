//! DNS pod discovery: turns one cluster's [`DnsSpec`] into pod socket addresses.
//!
//! A/AAAA names give the pod IPs directly (with the configured port); SRV names (how a
//! Kubernetes headless service publishes its pods) give a target and port per pod, and the
//! targets are resolved to IPs. Every refresh asks the server again: hickory's cache is
//! disabled so a change on the server shows up at the next refresh.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ProtoDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{IntoName, Name, RData, Record};
use hickory_resolver::TokioResolver;
use tokio::task::JoinSet;

use crate::config::{DnsSpec, RecordKind};

/// Retries after a failed query (hickory's `attempts` counts retries): one retry covers a
/// lost UDP packet without stretching a refresh much past the timeout.
const RETRIES: usize = 1;

/// A resolver bound to one [`DnsSpec`]'s server settings (create once per cluster, reuse for
/// every refresh).
#[derive(Debug, Clone)]
pub struct DnsResolver {
    inner: TokioResolver,
}

/// The outcome of one successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Pod addresses, sorted and deduplicated; never empty.
    pub addrs: Vec<SocketAddr>,
    /// How long the answer may be cached: the smallest TTL of the records used.
    pub ttl: Duration,
}

/// Classified failure; `Display` gives a short operator-facing reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// No answer within the configured timeout (after retrying).
    #[error("DNS query timed out")]
    Timeout,
    /// The name does not exist.
    #[error("name does not exist (NXDOMAIN)")]
    NxDomain,
    /// The name exists but has no records of the requested kind (or none usable).
    #[error("no matching records")]
    NoRecords,
    /// The server answered with an error rcode (SERVFAIL, REFUSED, ...); holds the rcode.
    #[error("DNS server error: {0}")]
    ServFail(String),
    /// Transport or protocol failure talking to the server.
    #[error("DNS transport error: {0}")]
    Io(String),
    /// The spec cannot be used (bad name, missing port, unreadable system resolver config).
    #[error("invalid DNS settings: {0}")]
    Config(String),
}

impl DnsError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsError::Timeout => "timeout",
            DnsError::NxDomain => "nxdomain",
            DnsError::NoRecords => "no_records",
            DnsError::ServFail(_) => "servfail",
            DnsError::Io(_) => "io",
            DnsError::Config(_) => "config",
        }
    }
}

/// Next refresh delay: the answer's TTL clamped to `[min_refresh, max_refresh]`; after a
/// failure `min_refresh`, so a broken lookup is retried soon.
pub fn next_refresh(spec: &DnsSpec, outcome: Result<Duration, ()>) -> Duration {
    match outcome {
        // max-then-min rather than `clamp`, which panics if the bounds are inverted.
        Ok(ttl) => ttl.max(spec.min_refresh).min(spec.max_refresh),
        Err(()) => spec.min_refresh,
    }
}

impl DnsResolver {
    /// Builds a resolver that talks only to `spec.resolver` (or, when unset, the servers in
    /// `/etc/resolv.conf`), over UDP with TCP for truncated answers.
    pub fn new(spec: &DnsSpec) -> Result<Self, DnsError> {
        if spec.timeout.is_zero() {
            return Err(DnsError::Config("timeout must be greater than zero".into()));
        }
        let mut builder = match spec.resolver {
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
                // No search domains: the name is queried exactly as configured.
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| DnsError::Config(format!("system resolver: {e}")))?,
        };
        let opts = builder.options_mut();
        opts.timeout = spec.timeout;
        opts.attempts = RETRIES;
        // Fresh answers every refresh. The cache is also cleared before each lookup;
        // `positive_max_ttl` is left alone because it would rewrite the TTLs we report.
        opts.cache_size = 0;
        opts.negative_max_ttl = Some(Duration::ZERO);
        // /etc/hosts must not shadow what the cluster DNS says.
        opts.use_hosts_file = ResolveHosts::Never;
        opts.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(format!("building resolver: {e}")))?;
        Ok(Self { inner })
    }

    /// One lookup. Returns the pod socket addresses (sorted, deduplicated) and the TTL the
    /// answer may be cached for (min TTL across records).
    pub async fn resolve(&self, spec: &DnsSpec) -> Result<Resolution, DnsError> {
        self.inner.clear_cache();
        // hickory bounds each query; this bounds the whole refresh (SRV = SRV query, then
        // target queries in parallel) even if a search list multiplies the queries.
        let budget = spec.timeout.saturating_mul(2 * (RETRIES as u32 + 1));
        match tokio::time::timeout(budget, self.resolve_uncapped(spec)).await {
            Ok(result) => result,
            Err(_) => Err(DnsError::Timeout),
        }
    }

    async fn resolve_uncapped(&self, spec: &DnsSpec) -> Result<Resolution, DnsError> {
        let name = spec
            .name
            .as_str()
            .into_name()
            .map_err(|e| DnsError::Config(format!("invalid name {:?}: {e}", spec.name)))?;
        match spec.record {
            RecordKind::A | RecordKind::Aaaa => {
                let port = spec
                    .port
                    .ok_or_else(|| DnsError::Config("a port is required for A/AAAA discovery".into()))?;
                let v6 = spec.record == RecordKind::Aaaa;
                let (ips, ttl) = lookup_ips(&self.inner, name, v6).await?;
                let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();
                finish(addrs, ttl)
            }
            RecordKind::Srv => self.resolve_srv(name).await,
        }
    }

    async fn resolve_srv(&self, name: Name) -> Result<Resolution, DnsError> {
        let lookup = self.inner.srv_lookup(name).await.map_err(classify)?;
        let SrvAnswer {
            targets,
            mut ips,
            mut ttl,
        } = srv_answer(lookup.answers(), lookup.additionals())?;

        let mut pending = JoinSet::new();
        for target in targets.keys().filter(|t| !ips.contains_key(*t)) {
            let resolver = self.inner.clone();
            let target = target.clone();
            pending.spawn(async move {
                let (v4, v6) = tokio::join!(
                    lookup_ips(&resolver, target.clone(), false),
                    lookup_ips(&resolver, target.clone(), true)
                );
                (target, v4, v6)
            });
        }
        while let Some(joined) = pending.join_next().await {
            let (target, v4, v6) = joined.map_err(|e| DnsError::Io(format!("target lookup task: {e}")))?;
            for result in [v4, v6] {
                match result {
                    Ok((found, t)) => {
                        ttl = ttl.min(t);
                        ips.entry(target.clone()).or_default().extend(found);
                    }
                    // A target without addresses of this family (or one already gone) just
                    // contributes nothing.
                    Err(DnsError::NoRecords | DnsError::NxDomain) => {}
                    // Anything transient fails the whole refresh: a partial set would drop
                    // healthy pods, whereas the caller keeps the last good set on error.
                    Err(e) => return Err(e),
                }
            }
        }
        finish(srv_addrs(&targets, &ips), ttl)
    }
}

/// What an SRV answer says, before any target is looked up.
#[derive(Debug, Default, PartialEq, Eq)]
struct SrvAnswer {
    /// Target → ports; one pod may publish several ports.
    targets: HashMap<Name, Vec<u16>>,
    /// Addresses of targets the server shipped along as additional records (glue).
    ips: HashMap<Name, Vec<IpAddr>>,
    /// The smallest TTL of the records used.
    ttl: u32,
}

/// Reads an SRV answer (records and additional records exactly as the server sent them; pure,
/// so any records can be fed to it): `NoRecords` when no SRV record names a pod.
fn srv_answer(answers: &[Record], additionals: &[Record]) -> Result<SrvAnswer, DnsError> {
    let mut ttl = u32::MAX;
    let mut targets: HashMap<Name, Vec<u16>> = HashMap::new();
    for record in answers {
        ttl = ttl.min(record.ttl);
        if let RData::SRV(srv) = &record.data {
            // "." means "service not available here" (RFC 2782).
            if !srv.target.is_root() {
                targets.entry(srv.target.clone()).or_default().push(srv.port);
            }
        }
    }
    if targets.is_empty() {
        return Err(DnsError::NoRecords);
    }
    // Servers usually ship the target addresses as additional records; use them and only
    // query the targets they left out.
    let mut ips: HashMap<Name, Vec<IpAddr>> = HashMap::new();
    let mut glue_ttl = u32::MAX;
    for record in additionals {
        if targets.contains_key(&record.name) {
            if let Some(ip) = record_ip(record) {
                glue_ttl = glue_ttl.min(record.ttl);
                ips.entry(record.name.clone()).or_default().push(ip);
            }
        }
    }
    if !ips.is_empty() {
        ttl = ttl.min(glue_ttl);
    }
    Ok(SrvAnswer { targets, ips, ttl })
}

/// Every (address, port) pair of the targets whose addresses are known.
fn srv_addrs(targets: &HashMap<Name, Vec<u16>>, ips: &HashMap<Name, Vec<IpAddr>>) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for (target, ports) in targets {
        for ip in ips.get(target).map(Vec::as_slice).unwrap_or_default() {
            addrs.extend(ports.iter().map(|&port| SocketAddr::new(*ip, port)));
        }
    }
    addrs
}

/// A or AAAA lookup of `name`: the addresses plus the min TTL over the answer (CNAMEs included).
async fn lookup_ips(resolver: &TokioResolver, name: Name, v6: bool) -> Result<(Vec<IpAddr>, u32), DnsError> {
    let lookup = if v6 {
        resolver.ipv6_lookup(name).await
    } else {
        resolver.ipv4_lookup(name).await
    }
    .map_err(classify)?;
    let answers = lookup.answers();
    let ttl = answers.iter().map(|r| r.ttl).min().unwrap_or(u32::MAX);
    let ips: Vec<IpAddr> = answers
        .iter()
        .filter_map(record_ip)
        .filter(|ip| ip.is_ipv6() == v6)
        .collect();
    if ips.is_empty() {
        return Err(DnsError::NoRecords);
    }
    Ok((ips, ttl))
}

fn record_ip(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

fn finish(mut addrs: Vec<SocketAddr>, ttl: u32) -> Result<Resolution, DnsError> {
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(DnsError::NoRecords);
    }
    Ok(Resolution {
        addrs,
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

fn classify(err: NetError) -> DnsError {
    match err {
        NetError::Timeout => DnsError::Timeout,
        NetError::Dns(ProtoDnsError::NoRecordsFound(no)) => {
            if no.response_code == ResponseCode::NXDomain {
                DnsError::NxDomain
            } else {
                DnsError::NoRecords
            }
        }
        NetError::Dns(ProtoDnsError::ResponseCode(code)) => DnsError::ServFail(response_code_name(code)),
        NetError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => DnsError::Timeout,
        other => DnsError::Io(other.to_string()),
    }
}

/// Mnemonic rcode names, as operators see them in dig output.
fn response_code_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "dns_props.rs"]
mod props;
