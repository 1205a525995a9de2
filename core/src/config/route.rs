//! `routes:` — which requests go where (first match in file order wins), with their total
//! timeout; what protects them (retries, hedging, rate limit, fallback) is in `protection`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::{Deserialize, Serialize};

use super::defaults::route as def;
use super::fields::{check_unique, declared_names, internal_header_error, is_internal_header, unknown_name_hint};
use super::limits::{RateLimitFile, RateLimitSpec};
use super::protection::{protection, FallbackFile, FallbackSpec, HedgeFile, HedgeSpec, RetryFile, RetrySpec};
use super::ser::{header_pairs, human, methods};
use super::{dur_or, ClusterSpec, Dur, FaasSpec};
use crate::diag::{yaml, Diagnostics, Seg};

// ------------------------------------------------------------------------------ as written

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: MatchFile,
    pub cluster: String,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub retry: Option<RetryFile>,
    #[serde(default)]
    pub hedge: Option<HedgeFile>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitFile>,
    #[serde(default)]
    pub fallback: Option<FallbackFile>,
    /// Request bodies up to this size are kept for replay (retry, hedge, FaaS).
    #[serde(default)]
    pub replay_buffer_bytes: Option<usize>,
}

// ------------------------------------------------------------------------------ validated

#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub cluster: String,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    pub retry: Option<RetrySpec>,
    pub hedge: Option<HedgeSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub fallback: Option<FallbackSpec>,
    pub replay_buffer_bytes: usize,
}

/// Request predicate of a route; every present part must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Lower-case host without port.
    pub host: Option<String>,
    pub path: PathMatch,
    #[serde(serialize_with = "methods")]
    pub methods: Option<Vec<Method>>,
    #[serde(serialize_with = "header_pairs")]
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
}

// ------------------------------------------------------------------------------ validation

/// What routes may refer to besides clusters.
pub struct References<'a> {
    pub clusters: &'a [(usize, ClusterSpec)],
    pub faas: &'a [FaasSpec],
    /// What the file's `redis:` section says (needed by `scope: cluster` limits).
    pub redis: super::limits::SharedBudget,
    /// Clusters used other than by a route (a release's canary): not "unused".
    pub also_used: &'a [&'a str],
}

/// Validates the decoded `routes:` items; warns about shadowed routes and unused clusters.
pub fn validate(
    c: &mut Diagnostics<'_>,
    items: &[(usize, RouteFile)],
    refs: &References<'_>,
) -> Vec<(usize, RouteSpec)> {
    check_unique(c, "routes", items.iter().map(|(i, r)| (*i, r.name.as_str())));
    let mut out: Vec<(usize, RouteSpec)> = Vec::new();
    for (i, r) in items {
        let known = check_cluster(c, *i, r, refs.clusters);
        let matcher = matcher(c, *i, &r.matcher);
        let timeout = dur_or(r.timeout, def::TIMEOUT);
        if timeout.is_zero() {
            c.error_at(&at(*i, "timeout"), "route timeout must be greater than zero", None);
        }
        let protection = protection(c, *i, r, refs);
        let Some(matcher) = matcher else { continue };
        warn_if_shadowed(c, *i, r, &matcher, &out);
        if known {
            out.push((
                *i,
                RouteSpec {
                    name: r.name.clone(),
                    matcher,
                    cluster: r.cluster.clone(),
                    timeout,
                    retry: protection.retry,
                    hedge: protection.hedge,
                    rate_limit: protection.rate_limit,
                    fallback: protection.fallback,
                    replay_buffer_bytes: r.replay_buffer_bytes.unwrap_or(def::REPLAY_BUFFER_BYTES),
                },
            ));
        }
    }
    warn_unused_clusters(c, &out, refs);
    out
}

fn at(i: usize, key: &'static str) -> [Seg; 3] {
    [Seg::Key("routes"), Seg::Index(i), Seg::Key(key)]
}

/// True when the route's cluster is defined (and valid); reports an unknown one.
fn check_cluster(c: &mut Diagnostics<'_>, i: usize, r: &RouteFile, clusters: &[(usize, ClusterSpec)]) -> bool {
    if clusters.iter().any(|(_, cl)| cl.name == r.cluster) {
        return true;
    }
    // Clusters written in the file but rejected are already reported; a route naming one of
    // them is not a second, misleading "unknown cluster" error.
    let declared = declared_names(c.root(), "clusters");
    if !declared.contains(&r.cluster) {
        let names: Vec<&str> = declared.iter().map(String::as_str).collect();
        c.error_at(
            &at(i, "cluster"),
            format!("route `{}` references unknown cluster `{}`", r.name, r.cluster),
            Some(unknown_name_hint(&r.cluster, &names, "clusters", "clusters")),
        );
    }
    false
}

fn warn_if_shadowed(c: &mut Diagnostics<'_>, i: usize, r: &RouteFile, matcher: &Match, earlier: &[(usize, RouteSpec)]) {
    let Some((j, first)) = earlier.iter().find(|(_, e)| covers(&e.matcher, matcher)) else {
        return;
    };
    let line = yaml::locate(c.root(), &[Seg::Key("routes"), Seg::Index(*j)]).line;
    c.warn_at(
        &at(i, "name"),
        format!(
            "route `{}` is shadowed by earlier route `{}` and never matches",
            r.name, first.name
        ),
        Some(format!(
            "routes match first-to-last; move it above line {line} or narrow `{}`",
            first.name
        )),
    );
}

fn warn_unused_clusters(c: &mut Diagnostics<'_>, routes: &[(usize, RouteSpec)], refs: &References<'_>) {
    let used: BTreeSet<&str> = routes
        .iter()
        .map(|(_, r)| r.cluster.as_str())
        .chain(refs.also_used.iter().copied())
        .collect();
    for (i, cl) in refs.clusters {
        if !used.contains(cl.name.as_str()) {
            c.warn_at(
                &[Seg::Key("clusters"), Seg::Index(*i), Seg::Key("name")],
                format!("cluster `{}` is not used by any route", cl.name),
                None,
            );
        }
    }
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fn matcher(c: &mut Diagnostics<'_>, i: usize, m: &MatchFile) -> Option<Match> {
    let at = |key: &'static str| [Seg::Key("routes"), Seg::Index(i), Seg::Key("match"), Seg::Key(key)];
    let path = path_match(c, &at, m);
    let mut ok = path.is_some();
    let mut methods = None;
    if let Some(list) = &m.methods {
        let mut out = Vec::new();
        for (j, name) in list.iter().enumerate() {
            let upper = name.trim().to_ascii_uppercase();
            match Method::from_str(&upper) {
                Ok(meth) if METHODS.contains(&upper.as_str()) => out.push(meth),
                _ => {
                    let mut p = at("methods").to_vec();
                    p.push(Seg::Index(j));
                    c.error_at(
                        &p,
                        format!("unknown HTTP method `{name}`"),
                        Some("one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS".into()),
                    );
                    ok = false;
                }
            }
        }
        methods = Some(out);
    }
    let mut headers = Vec::new();
    for (k, v) in m.headers.iter().flatten() {
        match HeaderName::from_str(&k.to_ascii_lowercase()) {
            Ok(h) if is_internal_header(h.as_str()) => {
                internal_header_error(c, &at("headers"), h.as_str(), "a route match");
                ok = false;
            }
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
    ok.then(|| Match {
        host,
        path: path.unwrap_or_default(),
        methods,
        headers,
    })
}

fn path_match(c: &mut Diagnostics<'_>, at: &impl Fn(&'static str) -> [Seg; 4], m: &MatchFile) -> Option<PathMatch> {
    match (&m.path_prefix, &m.path) {
        (Some(_), Some(_)) => {
            c.error_at(
                &at("path"),
                "use either `path` (exact) or `path_prefix`, not both",
                None,
            );
            None
        }
        (Some(p), None) | (None, Some(p)) if !p.starts_with('/') => {
            let key = if m.path.is_some() { "path" } else { "path_prefix" };
            c.error_at(&at(key), format!("path `{p}` must start with `/`"), None);
            None
        }
        (Some(p), None) if p == "/" => Some(PathMatch::Any),
        (Some(p), None) => Some(PathMatch::Prefix(p.clone())),
        (None, Some(p)) => Some(PathMatch::Exact(p.clone())),
        (None, None) => Some(PathMatch::Any),
    }
}

/// True when every request matching `b` also matches `a` (so `b` after `a` is dead).
pub fn covers(a: &Match, b: &Match) -> bool {
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
