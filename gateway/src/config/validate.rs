//! File structs → validated [`Config`], collecting every problem with its position.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};
use saphyr::MarkedYamlOwned;

use super::check::{parse_document, Diagnostics};
use super::file::{self, AdminFile, ClusterFile, LbKind, ListenerFile, RouteFile, ServerFile, TOP_LEVEL_KEYS};
use super::file::{FaasKind, LimitScope, RetryOn};
use super::yaml::{self, Seg};
use super::{
    AccessLogSpec, Admin, ClusterSpec, Config, ConfigErrors, Diagnostic, DnsSpec, FaasSpec, FaasTarget, FallbackOn,
    FallbackSpec, HashKey, HedgeAfter, HedgeSpec, LimitKey, Listener, LoadTuning, Loaded, LogOutput, Match,
    OutlierSpec, PathMatch, RateLimitSpec, RecordKind, RedisSpec, RetrySpec, RouteSpec, Server, Source, Tls,
};

type Check<'a> = Diagnostics<'a>;

/// Parses, decodes and validates configuration text.
pub fn load(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    let root = parse_document(text, origin)?;
    let mut c = Diagnostics::new(&root, origin, text);
    let config = build(&mut c);
    let diags = c.into_list();
    if diags.iter().any(Diagnostic::is_error) {
        return Err(ConfigErrors(diags));
    }
    match config {
        Some(config) => Ok(Loaded {
            config,
            warnings: diags,
        }),
        None => Err(ConfigErrors(diags)),
    }
}

#[derive(Default)]
struct Sections {
    listeners: Vec<(usize, ListenerFile)>,
    admin: Option<AdminFile>,
    debug_headers: bool,
    server: ServerFile,
    clusters: Vec<(usize, ClusterFile)>,
    routes: Vec<(usize, RouteFile)>,
    faas: Vec<(usize, file::FaasFile)>,
    redis: Option<file::RedisFile>,
    access_log: Option<file::AccessLogFile>,
}

fn sections(c: &mut Check<'_>) -> Sections {
    let mut s = Sections::default();
    if yaml::is_null(c.root()) {
        return s;
    }
    let Some(entries) = yaml::entries(c.root()) else {
        c.error_at(
            &[],
            "the configuration must be a mapping of sections",
            Some(format!("top-level keys: {}", TOP_LEVEL_KEYS.join(", "))),
        );
        return s;
    };
    for (key, key_node, value) in entries {
        match key.as_str() {
            "listeners" => s.listeners = c.decode_list(value, "listeners"),
            "clusters" => s.clusters = c.decode_list(value, "clusters"),
            "routes" => s.routes = c.decode_list(value, "routes"),
            "faas" => s.faas = c.decode_list(value, "faas"),
            "redis" => s.redis = c.decode(value),
            "access_log" => {
                s.access_log = if yaml::is_null(value) {
                    Some(file::AccessLogFile::default())
                } else {
                    c.decode(value)
                }
            }
            "admin" => s.admin = c.decode(value),
            "debug_headers" => s.debug_headers = c.decode(value).unwrap_or(false),
            "server" => {
                if !yaml::is_null(value) {
                    s.server = c.decode(value).unwrap_or_default();
                }
            }
            other => {
                let hint = match yaml::closest(other, TOP_LEVEL_KEYS) {
                    Some(best) => format!("did you mean `{best}`? top-level keys: {}", TOP_LEVEL_KEYS.join(", ")),
                    None => format!("top-level keys: {}", TOP_LEVEL_KEYS.join(", ")),
                };
                c.error(
                    yaml::pos(key_node),
                    format!("unknown top-level key `{other}`"),
                    Some(hint),
                );
            }
        }
    }
    s
}

fn build(c: &mut Check<'_>) -> Option<Config> {
    let s = sections(c);
    let listeners = listeners(c, &s.listeners);
    let admin = admin(c, s.admin, &listeners);
    let server = server(c, &s.server);
    let clusters = clusters(c, &s.clusters);
    let faas = faas(c, &s.faas);
    let redis = s.redis.as_ref().and_then(|r| redis(c, r));
    let access_log = s.access_log.as_ref().map(|a| access_log(c, a));
    let extras = RouteExtras {
        faas: &faas,
        redis: s.redis.is_some(),
    };
    let routes = routes(c, &s.routes, &clusters, &extras);
    Some(Config {
        listeners,
        admin: admin?,
        debug_headers: s.debug_headers,
        server,
        clusters: clusters.into_iter().map(|(_, c)| c).collect(),
        routes: routes.into_iter().map(|(_, r)| r).collect(),
        faas,
        redis,
        access_log,
    })
}

fn parse_addr(c: &mut Check<'_>, path: &[Seg], text: &str, what: &str) -> Option<SocketAddr> {
    match SocketAddr::from_str(text.trim()) {
        Ok(a) => Some(a),
        Err(_) => {
            c.error_at(
                path,
                format!("bad {what} address `{text}`"),
                Some(
                    "write an IP and a port, e.g. `127.0.0.1:8080` or `[::1]:8080` (names are not resolved here)"
                        .into(),
                ),
            );
            None
        }
    }
}

fn check_unique<'n>(c: &mut Check<'_>, section: &'static str, names: impl Iterator<Item = (usize, &'n str)>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names {
        if name.trim().is_empty() {
            c.error_at(
                &[Seg::Key(section), Seg::Index(i), Seg::Key("name")],
                "name must not be empty",
                None,
            );
        } else if let Some(first) = seen.get(name) {
            let first_line = yaml::locate(c.root(), &[Seg::Key(section), Seg::Index(*first)]).line;
            c.error_at(
                &[Seg::Key(section), Seg::Index(i), Seg::Key("name")],
                format!("duplicate name `{name}` in {section}"),
                Some(format!("first defined at line {first_line}; names must be unique")),
            );
        } else {
            seen.insert(name, i);
        }
    }
}

fn listeners(c: &mut Check<'_>, items: &[(usize, ListenerFile)]) -> Vec<Listener> {
    if items.is_empty() && !c.list().iter().any(|d| d.message.contains("listeners")) {
        c.error_at(
            &[Seg::Key("listeners")],
            "no listeners configured",
            Some("add `listeners: [{ name: public, address: 127.0.0.1:8080 }]`".into()),
        );
    }
    check_unique(c, "listeners", items.iter().map(|(i, l)| (*i, l.name.as_str())));
    let mut out = Vec::new();
    let mut addrs: HashSet<SocketAddr> = HashSet::new();
    for (i, l) in items {
        let path = [Seg::Key("listeners"), Seg::Index(*i), Seg::Key("address")];
        let Some(address) = parse_addr(c, &path, &l.address, "listener") else {
            continue;
        };
        if !addrs.insert(address) {
            c.error_at(&path, format!("address {address} is used by two listeners"), None);
        }
        let tls = l.tls.as_ref().map(|t| Tls {
            cert_file: PathBuf::from(&t.cert_file),
            key_file: PathBuf::from(&t.key_file),
            http2: t.http2,
        });
        if let Some(t) = &tls {
            for (key, file) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
                if let Err(e) = std::fs::metadata(file) {
                    c.error_at(
                        &[Seg::Key("listeners"), Seg::Index(*i), Seg::Key("tls"), Seg::Key(key)],
                        format!("cannot read {key} `{}`: {e}", file.display()),
                        Some("give a PEM file readable by the gateway".into()),
                    );
                }
            }
        }
        out.push(Listener {
            name: l.name.clone(),
            address,
            tls,
        });
    }
    out
}

fn admin(c: &mut Check<'_>, a: Option<AdminFile>, listeners: &[Listener]) -> Option<Admin> {
    let a = a.unwrap_or(AdminFile {
        address: "127.0.0.1:9901".into(),
        token_env: None,
    });
    let address = parse_addr(c, &[Seg::Key("admin"), Seg::Key("address")], &a.address, "admin")?;
    if listeners.iter().any(|l| l.address == address) {
        c.error_at(
            &[Seg::Key("admin"), Seg::Key("address")],
            format!("admin address {address} is also a listener"),
            Some("give the admin API its own port".into()),
        );
    }
    if !address.ip().is_loopback() && a.token_env.is_none() {
        c.warn_at(
            &[Seg::Key("admin"), Seg::Key("address")],
            "admin API listens beyond loopback without a token",
            Some("set `admin.token_env` so mutating calls need a bearer token".into()),
        );
    }
    let token = a
        .token_env
        .as_ref()
        .and_then(|name| std::env::var(name).ok())
        .filter(|t| !t.is_empty());
    if let (Some(name), None) = (&a.token_env, &token) {
        c.warn_at(
            &[Seg::Key("admin"), Seg::Key("token_env")],
            format!("environment variable `{name}` is unset: mutating admin calls (POST /reload) are disabled"),
            Some(format!("export {name}=<secret> before starting the gateway")),
        );
    }
    Some(Admin {
        address,
        token_env: a.token_env,
        token,
    })
}

fn server(c: &mut Check<'_>, s: &ServerFile) -> Server {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = s.threads.unwrap_or(cpus);
    if threads == 0 {
        c.error_at(
            &[Seg::Key("server"), Seg::Key("threads")],
            "threads must be at least 1",
            None,
        );
    }
    let dur = |d: Option<file::Dur>, default: Duration| d.map(|d| d.0).unwrap_or(default);
    Server {
        threads: threads.max(1),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size.unwrap_or(4096),
        drain_delay: dur(s.drain_delay, Duration::ZERO),
        grace_period: dur(s.grace_period, Duration::from_secs(5)),
        graceful_shutdown_timeout: dur(s.graceful_shutdown_timeout, Duration::from_secs(10)),
        max_request_header_bytes: s.max_request_header_bytes.unwrap_or(32 * 1024),
        max_request_body_bytes: s.max_request_body_bytes.unwrap_or(1024 * 1024),
        watch_debounce: dur(s.watch_debounce, Duration::from_millis(500)),
        h2c: s.h2c,
    }
}

fn clusters(c: &mut Check<'_>, items: &[(usize, ClusterFile)]) -> Vec<(usize, ClusterSpec)> {
    check_unique(c, "clusters", items.iter().map(|(i, cl)| (*i, cl.name.as_str())));
    let mut out = Vec::new();
    for (i, cl) in items {
        let at = |key: &'static str| [Seg::Key("clusters"), Seg::Index(*i), Seg::Key(key)];
        let source = match (&cl.endpoints, &cl.dns) {
            (Some(_), Some(_)) => {
                c.error_at(
                    &at("dns"),
                    format!("cluster `{}` has both `endpoints` and `dns`", cl.name),
                    Some("use one source of pods per cluster".into()),
                );
                None
            }
            (None, None) => {
                c.error_at(
                    &[Seg::Key("clusters"), Seg::Index(*i)],
                    format!("cluster `{}` has no pods", cl.name),
                    Some(
                        "add `endpoints: [\"10.0.0.1:9100\"]` or `dns: { name: svc.ns.svc.cluster.local, port: 9100 }`"
                            .into(),
                    ),
                );
                None
            }
            (Some(list), None) => static_endpoints(c, *i, &cl.name, list),
            (None, Some(d)) => dns_spec(c, *i, d).map(Source::Dns),
        };
        let hash_key = match (&cl.hash_key, cl.lb) {
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
        };
        let d = LoadTuning::default();
        let load = cl.load.clone().unwrap_or_default();
        let load = LoadTuning {
            decay: load.decay.map(|x| x.0).unwrap_or(d.decay),
            default_rtt: load.default_rtt.map(|x| x.0).unwrap_or(d.default_rtt),
            report_ttl: load.report_ttl.map(|x| x.0).unwrap_or(d.report_ttl),
            error_penalty: load.error_penalty.unwrap_or(d.error_penalty),
        };
        if load.decay.is_zero() {
            c.error_at(&at("load"), "load.decay must be greater than zero", None);
        }
        if !(1.0..=1000.0).contains(&load.error_penalty) {
            c.error_at(&at("load"), "load.error_penalty must be between 1 and 1000", None);
        }
        let o = cl.outlier.clone();
        let d = OutlierSpec::default();
        let outlier = OutlierSpec {
            consecutive_failures: o
                .as_ref()
                .and_then(|o| o.consecutive_failures)
                .unwrap_or(d.consecutive_failures),
            base_ejection: o
                .as_ref()
                .and_then(|o| o.base_ejection)
                .map(|x| x.0)
                .unwrap_or(d.base_ejection),
            max_ejection: o
                .as_ref()
                .and_then(|o| o.max_ejection)
                .map(|x| x.0)
                .unwrap_or(d.max_ejection),
            max_ejected_percent: o
                .as_ref()
                .and_then(|o| o.max_ejected_percent)
                .unwrap_or(d.max_ejected_percent),
        };
        if outlier.max_ejected_percent > 100 {
            c.error_at(&at("outlier"), "outlier.max_ejected_percent must be 0..100", None);
        }
        if outlier.base_ejection > outlier.max_ejection {
            c.error_at(
                &at("outlier"),
                "outlier.base_ejection is longer than outlier.max_ejection",
                None,
            );
        }
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
                connect_timeout: cl.connect_timeout.map(|d| d.0).unwrap_or(Duration::from_millis(250)),
                idle_timeout: cl.idle_timeout.map(|d| d.0),
                load,
                per_try_timeout: cl.per_try_timeout.map(|d| d.0),
                max_in_flight: cl.max_in_flight,
                outlier,
            },
        ));
    }
    out
}

fn static_endpoints(c: &mut Check<'_>, i: usize, name: &str, list: &[String]) -> Option<Source> {
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

fn dns_spec(c: &mut Check<'_>, i: usize, d: &file::DnsFile) -> Option<DnsSpec> {
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
    let min_refresh = d.min_refresh.map(|x| x.0).unwrap_or(Duration::from_secs(1));
    let max_refresh = d.max_refresh.map(|x| x.0).unwrap_or(Duration::from_secs(30));
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
    ok.then(|| DnsSpec {
        name: d.name.trim().to_string(),
        port: d.port,
        record: d.record,
        resolver,
        min_refresh,
        max_refresh,
        timeout: d.timeout.map(|x| x.0).unwrap_or(Duration::from_secs(2)),
    })
}

fn parse_hash_key(c: &mut Check<'_>, path: &[Seg], k: &str) -> Option<HashKey> {
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
    key
}

/// `name` of every cluster item in the file, valid or not.
fn declared_cluster_names(root: &MarkedYamlOwned) -> Vec<String> {
    declared_names(root, "clusters")
}

/// `name` of every item of a list section, valid or not.
fn declared_names(root: &MarkedYamlOwned, section: &str) -> Vec<String> {
    let Some(section) = yaml::entries(root).and_then(|e| e.into_iter().find(|(k, _, _)| k == section)) else {
        return Vec::new();
    };
    yaml::items(section.2)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            yaml::entries(item)?
                .into_iter()
                .find(|(k, _, _)| k == "name")
                .and_then(|(_, _, v)| yaml::scalar(v))
        })
        .collect()
}

/// What routes may refer to besides clusters.
struct RouteExtras<'a> {
    faas: &'a [FaasSpec],
    redis: bool,
}

fn routes(
    c: &mut Check<'_>,
    items: &[(usize, RouteFile)],
    clusters: &[(usize, ClusterSpec)],
    extras: &RouteExtras<'_>,
) -> Vec<(usize, RouteSpec)> {
    check_unique(c, "routes", items.iter().map(|(i, r)| (*i, r.name.as_str())));
    let names: Vec<&str> = clusters.iter().map(|(_, c)| c.name.as_str()).collect();
    // Clusters written in the file but rejected are already reported; a route naming one of
    // them is not a second, misleading "unknown cluster" error.
    let declared = declared_cluster_names(c.root());
    let all: Vec<&str> = declared.iter().map(String::as_str).collect();
    let mut out: Vec<(usize, RouteSpec)> = Vec::new();
    for (i, r) in items {
        let at = |key: &'static str| vec![Seg::Key("routes"), Seg::Index(*i), Seg::Key(key)];
        let known = names.contains(&r.cluster.as_str());
        if !known && !all.contains(&r.cluster.as_str()) {
            let names = &all;
            let hint = match yaml::closest(&r.cluster, names) {
                Some(best) => format!("did you mean `{best}`? defined clusters: {}", names.join(", ")),
                None if names.is_empty() => "define it under `clusters:`".to_string(),
                None => format!("defined clusters: {}", names.join(", ")),
            };
            c.error_at(
                &at("cluster"),
                format!("route `{}` references unknown cluster `{}`", r.name, r.cluster),
                Some(hint),
            );
        }
        let matcher = matcher(c, *i, &r.matcher);
        let timeout = r.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(15));
        if timeout.is_zero() {
            c.error_at(&at("timeout"), "route timeout must be greater than zero", None);
        }
        let resilience = route_resilience(c, *i, r, extras);
        let Some(matcher) = matcher else { continue };
        if let Some((j, earlier)) = out.iter().find(|(_, e)| covers(&e.matcher, &matcher)) {
            let line = yaml::locate(c.root(), &[Seg::Key("routes"), Seg::Index(*j)]).line;
            c.warn_at(
                &[Seg::Key("routes"), Seg::Index(*i), Seg::Key("name")],
                format!(
                    "route `{}` is shadowed by earlier route `{}` and never matches",
                    r.name, earlier.name
                ),
                Some(format!(
                    "routes match first-to-last; move it above line {line} or narrow `{}`",
                    earlier.name
                )),
            );
        }
        if known {
            out.push((
                *i,
                RouteSpec {
                    name: r.name.clone(),
                    matcher,
                    cluster: r.cluster.clone(),
                    timeout,
                    retry: resilience.retry,
                    hedge: resilience.hedge,
                    rate_limit: resilience.rate_limit,
                    fallback: resilience.fallback,
                    replay_buffer_bytes: r.replay_buffer_bytes.unwrap_or(64 * 1024),
                },
            ));
        }
    }
    let used: BTreeSet<&str> = out.iter().map(|(_, r)| r.cluster.as_str()).collect();
    for (i, cl) in clusters {
        if !used.contains(cl.name.as_str()) {
            c.warn_at(
                &[Seg::Key("clusters"), Seg::Index(*i), Seg::Key("name")],
                format!("cluster `{}` is not used by any route", cl.name),
                None,
            );
        }
    }
    out
}

fn matcher(c: &mut Check<'_>, i: usize, m: &file::MatchFile) -> Option<Match> {
    let at = |key: &'static str| [Seg::Key("routes"), Seg::Index(i), Seg::Key("match"), Seg::Key(key)];
    let mut ok = true;
    let path = match (&m.path_prefix, &m.path) {
        (Some(_), Some(_)) => {
            c.error_at(
                &at("path"),
                "use either `path` (exact) or `path_prefix`, not both",
                None,
            );
            ok = false;
            PathMatch::Any
        }
        (Some(p), None) | (None, Some(p)) if !p.starts_with('/') => {
            let key = if m.path.is_some() { "path" } else { "path_prefix" };
            c.error_at(&at(key), format!("path `{p}` must start with `/`"), None);
            ok = false;
            PathMatch::Any
        }
        (Some(p), None) if p == "/" => PathMatch::Any,
        (Some(p), None) => PathMatch::Prefix(p.clone()),
        (None, Some(p)) => PathMatch::Exact(p.clone()),
        (None, None) => PathMatch::Any,
    };
    let methods = match &m.methods {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for (j, name) in list.iter().enumerate() {
                let upper = name.trim().to_ascii_uppercase();
                match Method::from_str(&upper) {
                    Ok(meth)
                        if ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"].contains(&upper.as_str()) =>
                    {
                        out.push(meth)
                    }
                    _ => {
                        c.error_at(
                            &[
                                Seg::Key("routes"),
                                Seg::Index(i),
                                Seg::Key("match"),
                                Seg::Key("methods"),
                                Seg::Index(j),
                            ],
                            format!("unknown HTTP method `{name}`"),
                            Some("one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS".into()),
                        );
                        ok = false;
                    }
                }
            }
            Some(out)
        }
    };
    let mut headers = Vec::new();
    for (k, v) in m.headers.iter().flatten() {
        match HeaderName::from_str(&k.to_ascii_lowercase()) {
            Ok(h) => headers.push((h, v.clone())),
            Err(_) => {
                c.error_at(&at("headers"), format!("bad header name `{k}`"), None);
                ok = false;
            }
        }
    }
    let host = m.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
    if host.as_deref().is_some_and(|h| h.is_empty() || h.contains('/')) {
        c.error_at(
            &at("host"),
            "bad host",
            Some("write a bare host name such as `api.arena.gg`".into()),
        );
        ok = false;
    }
    ok.then_some(Match {
        host,
        path,
        methods,
        headers,
    })
}

#[derive(Default)]
struct Resilience {
    retry: Option<RetrySpec>,
    hedge: Option<HedgeSpec>,
    rate_limit: Option<RateLimitSpec>,
    fallback: Option<FallbackSpec>,
}

fn route_resilience(c: &mut Check<'_>, i: usize, r: &RouteFile, extras: &RouteExtras<'_>) -> Resilience {
    let at = |key: &'static str, sub: &'static str| [Seg::Key("routes"), Seg::Index(i), Seg::Key(key), Seg::Key(sub)];
    let mut out = Resilience::default();
    if r.replay_buffer_bytes.is_some_and(|n| n > 64 * 1024) {
        c.error_at(
            &[Seg::Key("routes"), Seg::Index(i), Seg::Key("replay_buffer_bytes")],
            "replay_buffer_bytes is at most 65536",
            Some("pingora keeps at most 64 KiB of a request body for replay".into()),
        );
    }
    if let Some(rt) = &r.retry {
        if !(1..=10).contains(&rt.attempts) {
            c.error_at(
                &at("retry", "attempts"),
                "retry.attempts must be 1..10 (tries in total, the first included)",
                None,
            );
        }
        let budget = rt.budget_percent.unwrap_or(20.0);
        if !(0.0..=100.0).contains(&budget) {
            c.error_at(
                &at("retry", "budget_percent"),
                "retry.budget_percent must be 0..100",
                None,
            );
        }
        out.retry = Some(RetrySpec {
            attempts: rt.attempts.clamp(1, 10),
            on: rt
                .on
                .clone()
                .unwrap_or_else(|| vec![RetryOn::ConnectFailure, RetryOn::Reset, RetryOn::Timeout]),
            budget_percent: budget,
            min_per_second: rt.min_per_second.unwrap_or(10),
            backoff: rt.backoff.map(|d| d.0).unwrap_or(Duration::from_millis(25)),
            non_idempotent: rt.non_idempotent,
        });
    }
    if let Some(h) = &r.hedge {
        let text = h.after.trim();
        let after = if let Some(p) = text.strip_prefix('p') {
            p.parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0 && *p < 100.0)
                .map(|p| HedgeAfter::Percentile(p / 100.0))
        } else {
            humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .map(HedgeAfter::Fixed)
        };
        match after {
            Some(after) => {
                out.hedge = Some(HedgeSpec {
                    after,
                    max_extra: h.max_extra.unwrap_or(1).clamp(1, 3),
                })
            }
            None => c.error_at(
                &at("hedge", "after"),
                format!("bad hedge.after `{text}`"),
                Some("a duration such as `50ms`, or a live percentile such as `p95`".into()),
            ),
        }
    }
    if let Some(rl) = &r.rate_limit {
        let key = match rl.key.as_deref().map(str::trim) {
            None | Some("client_ip") => Some(LimitKey::ClientIp),
            Some("route") => Some(LimitKey::Route),
            Some(k) => k
                .strip_prefix("header:")
                .and_then(|h| HeaderName::from_str(h.trim()).ok())
                .map(LimitKey::Header),
        };
        if key.is_none() {
            c.error_at(
                &at("rate_limit", "key"),
                "bad rate_limit.key",
                Some("`client_ip`, `header:NAME` or `route`".into()),
            );
        }
        if rl.requests_per_second == 0 {
            c.error_at(
                &at("rate_limit", "requests_per_second"),
                "requests_per_second must be at least 1",
                None,
            );
        }
        let scope = rl.scope.unwrap_or(LimitScope::Local);
        if scope == LimitScope::Cluster && !extras.redis {
            c.error_at(
                &at("rate_limit", "scope"),
                "rate_limit scope `cluster` needs a `redis:` section",
                Some("add `redis: { url: redis://127.0.0.1:6379 }`, or use `scope: local`".into()),
            );
        }
        let share = rl.local_share.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&share) || share == 0.0 {
            c.error_at(&at("rate_limit", "local_share"), "local_share must be in (0, 1]", None);
        }
        let burst = rl.burst.unwrap_or(rl.requests_per_second).max(1);
        match rl.batch {
            Some(0) => c.error_at(&at("rate_limit", "batch"), "batch must be at least 1", None),
            Some(b) if b > burst => c.error_at(
                &at("rate_limit", "batch"),
                format!("batch {b} is larger than burst {burst}"),
                Some("Redis can never grant more than `burst` tokens at once: lower `batch` or raise `burst`".into()),
            ),
            Some(_) if scope == LimitScope::Local => c.warn_at(
                &at("rate_limit", "batch"),
                "batch has no effect with `scope: local`",
                Some("it sets how many tokens a gateway takes from Redis per round trip with `scope: cluster`".into()),
            ),
            _ => {}
        }
        if let Some(key) = key {
            out.rate_limit = Some(RateLimitSpec {
                requests_per_second: rl.requests_per_second.max(1),
                burst,
                key,
                scope,
                max_keys: rl.max_keys.unwrap_or(100_000).max(1),
                local_share: share,
                batch: rl.batch.unwrap_or(rl.requests_per_second / 100).clamp(1, burst),
            });
        }
    }
    if let Some(f) = &r.fallback {
        let names: Vec<&str> = extras.faas.iter().map(|f| f.name.as_str()).collect();
        if !names.contains(&f.faas.as_str()) && !declared_names(c.root(), "faas").contains(&f.faas) {
            let hint = match yaml::closest(&f.faas, &names) {
                Some(best) => format!("did you mean `{best}`? defined functions: {}", names.join(", ")),
                None if names.is_empty() => "define it under `faas:`".into(),
                None => format!("defined functions: {}", names.join(", ")),
            };
            c.error_at(
                &at("fallback", "faas"),
                format!("fallback names unknown function `{}`", f.faas),
                Some(hint),
            );
        }
        let warm = match f.warm_share.as_deref() {
            None => Some(0.0),
            Some(t) => parse_share(t),
        };
        if warm.is_none() {
            c.error_at(
                &at("fallback", "warm_share"),
                "bad warm_share",
                Some("a share such as `1%` or `0.01`".into()),
            );
        }
        if f.spillover_above_load.is_some_and(|x| !(0.0..=4.0).contains(&x)) {
            c.error_at(
                &at("fallback", "spillover_above_load"),
                "spillover_above_load is a utilisation, e.g. 0.9",
                None,
            );
        }
        out.fallback = Some(FallbackSpec {
            faas: f.faas.clone(),
            on: f.on.clone().unwrap_or_else(|| {
                vec![
                    FallbackOn::RetriesExhausted,
                    FallbackOn::NoHealthyPods,
                    FallbackOn::CircuitOpen,
                ]
            }),
            spillover_above_load: f.spillover_above_load,
            warm_share: warm.unwrap_or(0.0),
        });
    }
    out
}

/// Expands `${env:NAME}`; an unset variable is an error, not an empty string.
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${env:`".into());
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(v) => out.push_str(&v),
            Err(_) => return Err(format!("environment variable `{name}` is unset")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn faas(c: &mut Check<'_>, items: &[(usize, file::FaasFile)]) -> Vec<FaasSpec> {
    check_unique(c, "faas", items.iter().map(|(i, f)| (*i, f.name.as_str())));
    let mut out = Vec::new();
    for (i, f) in items {
        let at = |key: &'static str| [Seg::Key("faas"), Seg::Index(*i), Seg::Key(key)];
        let target = match f.kind {
            FaasKind::Http => match &f.url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(FaasTarget::Http {
                    url: u.trim_end_matches('/').to_string(),
                }),
                Some(u) => {
                    c.error_at(
                        &at("url"),
                        format!("bad function url `{u}`"),
                        Some("an http:// or https:// URL".into()),
                    );
                    None
                }
                None => {
                    c.error_at(&[Seg::Key("faas"), Seg::Index(*i)], "kind `http` needs a `url`", None);
                    None
                }
            },
            FaasKind::AwsLambda => match (&f.function, &f.region) {
                (Some(function), Some(region)) => {
                    if f.endpoint
                        .as_deref()
                        .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                    {
                        c.error_at(&at("endpoint"), "endpoint must be an http:// or https:// URL", None);
                    }
                    Some(FaasTarget::AwsLambda {
                        function: function.clone(),
                        region: region.clone(),
                        endpoint: f.endpoint.as_ref().map(|e| e.trim_end_matches('/').to_string()),
                    })
                }
                _ => {
                    c.error_at(
                        &[Seg::Key("faas"), Seg::Index(*i)],
                        "kind `aws_lambda` needs `function` and `region`",
                        None,
                    );
                    None
                }
            },
        };
        let mut headers = Vec::new();
        for (k, v) in f.headers.iter().flatten() {
            let name = HeaderName::from_str(&k.to_ascii_lowercase());
            match (name, expand_env(v)) {
                (Ok(n), Ok(v)) if http::HeaderValue::from_str(&v).is_ok() => headers.push((n, v)),
                (Err(_), _) => c.error_at(&at("headers"), format!("bad header name `{k}`"), None),
                (_, Err(e)) => c.error_at(
                    &at("headers"),
                    format!("header `{k}`: {e}"),
                    Some("export the variable before starting the gateway".into()),
                ),
                _ => c.error_at(
                    &at("headers"),
                    format!("header `{k}` has a value that is not a valid header value"),
                    None,
                ),
            }
        }
        if f.max_concurrency == Some(0) {
            c.error_at(&at("max_concurrency"), "max_concurrency must be at least 1", None);
        }
        let Some(target) = target else { continue };
        out.push(FaasSpec {
            name: f.name.clone(),
            target,
            timeout: f.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(3)),
            max_concurrency: f.max_concurrency.unwrap_or(256).max(1),
            headers,
        });
    }
    out
}

/// A share such as `1%` or `0.01`, within 0..=1.
fn parse_share(text: &str) -> Option<f64> {
    let t = text.trim();
    match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => t.parse::<f64>().ok(),
    }
    .filter(|x| (0.0..=1.0).contains(x))
}

fn access_log(c: &mut Check<'_>, a: &file::AccessLogFile) -> AccessLogSpec {
    let sample = match a.sample.as_deref() {
        None => 0.0,
        Some(t) => parse_share(t).unwrap_or_else(|| {
            c.error_at(
                &[Seg::Key("access_log"), Seg::Key("sample")],
                format!("bad access_log.sample `{t}`"),
                Some("a share such as `1%` or `0.01` (0 to 100%)".into()),
            );
            0.0
        }),
    };
    let output = match a.output.as_deref().map(str::trim) {
        None | Some("stdout") => LogOutput::Stdout,
        Some("stderr") => LogOutput::Stderr,
        Some("") => {
            c.error_at(
                &[Seg::Key("access_log"), Seg::Key("output")],
                "empty access_log.output",
                Some("`stdout`, `stderr` or a file path".into()),
            );
            LogOutput::Stdout
        }
        Some(path) => LogOutput::File(PathBuf::from(path)),
    };
    AccessLogSpec {
        output,
        sample,
        slow: a.slow.map(|d| d.0),
        errors: a.errors.unwrap_or(true),
    }
}

fn redis(c: &mut Check<'_>, r: &file::RedisFile) -> Option<RedisSpec> {
    let ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|p| r.url.starts_with(p));
    if !ok {
        c.error_at(
            &[Seg::Key("redis"), Seg::Key("url")],
            format!("bad redis url `{}`", r.url),
            Some("e.g. `redis://127.0.0.1:6379`".into()),
        );
        return None;
    }
    Some(RedisSpec {
        url: r.url.clone(),
        timeout: r.timeout.map(|d| d.0).unwrap_or(Duration::from_millis(50)),
    })
}

/// True when every request matching `b` also matches `a` (so `b` after `a` is dead).
fn covers(a: &Match, b: &Match) -> bool {
    let host = a.host.is_none() || a.host == b.host;
    let path = match (&a.path, &b.path) {
        (PathMatch::Any, _) => true,
        (PathMatch::Prefix(pa), PathMatch::Prefix(pb) | PathMatch::Exact(pb)) => pb.starts_with(pa.as_str()),
        (PathMatch::Exact(pa), PathMatch::Exact(pb)) => pa == pb,
        _ => false,
    };
    let methods = match (&a.methods, &b.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ma), Some(mb)) => mb.iter().all(|m| ma.contains(m)),
    };
    let headers = a.headers.iter().all(|h| b.headers.contains(h));
    host && path && methods && headers
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
