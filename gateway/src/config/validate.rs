//! The gateway document → validated [`Config`]: each top-level section decoded on its own,
//! then validated by its section's module (the shared ones by `arena_core::config`), with
//! every problem collected at its position.

use arena_core::config::{
    cluster, defaults, faas, limits, release, route, ClusterFile, ClusterSpec, FaasFile, FaasSpec, RedisFile,
    RedisSpec, ReleaseFile, ReleaseSpec, RouteFile, RouteSpec, SharedBudget,
};
use arena_core::diag::{parse_document, yaml, Diagnostics, Env, Seg};

use super::file::{AccessLogFile, AdminFile, ListenerFile, ServerFile, TracingFile, TOP_LEVEL_KEYS};
use super::{access_log, listeners, server, Config, ConfigErrors, Diagnostic, Loaded};

/// Parses, decodes and validates configuration text against the process environment.
pub fn load(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    load_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// Like [`load`], with environment variables (`${env:NAME}`, `admin.token_env`) from `env`.
pub fn load_with_env(text: &str, origin: &str, env: Env<'_>) -> Result<Loaded, ConfigErrors> {
    let root = parse_document(text, origin)?;
    let mut c = Diagnostics::with_env(&root, origin, text, env);
    let config = build(&mut c);
    let diags = c.into_list();
    if diags.iter().any(Diagnostic::is_error) {
        return Err(ConfigErrors(diags));
    }
    match config {
        Some(config) => Ok(Loaded {
            config,
            warnings: diags,
            text_hash: text_hash(text),
        }),
        None => Err(ConfigErrors(diags)),
    }
}

/// Hash of a configuration text, to tell a changed file from a touched one.
pub fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The top-level sections as decoded (each list item on its own, with its index).
#[derive(Default)]
struct Sections {
    listeners: Vec<(usize, ListenerFile)>,
    admin: Option<AdminFile>,
    debug_headers: bool,
    server: ServerFile,
    clusters: Vec<(usize, ClusterFile)>,
    routes: Vec<(usize, RouteFile)>,
    faas: Vec<(usize, FaasFile)>,
    redis: Option<RedisFile>,
    access_log: Option<AccessLogFile>,
    releases: Vec<(usize, ReleaseFile)>,
    tracing: Option<TracingFile>,
}

fn sections(c: &mut Diagnostics<'_>) -> Sections {
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
            "releases" => s.releases = c.decode_list(value, "releases"),
            "redis" => s.redis = c.decode(value),
            "access_log" => {
                s.access_log = if yaml::is_null(value) {
                    Some(AccessLogFile::default())
                } else {
                    c.decode(value)
                }
            }
            "admin" => s.admin = c.decode(value),
            "tracing" => s.tracing = c.decode(value),
            "debug_headers" => s.debug_headers = c.decode(value).unwrap_or(defaults::DEBUG_HEADERS),
            "server" => {
                if !yaml::is_null(value) {
                    s.server = c.decode(value).unwrap_or_default();
                }
            }
            other => c.unknown_key(key_node, other, "top-level key", TOP_LEVEL_KEYS),
        }
    }
    s
}

fn build(c: &mut Diagnostics<'_>) -> Option<Config> {
    let s = sections(c);
    let listeners = listeners::listeners(c, &s.listeners);
    let admin = listeners::admin(c, s.admin, &listeners);
    let server = server::server(c, &s.server);
    let engine = engine_sections(
        c,
        &EngineFiles {
            clusters: &s.clusters,
            routes: &s.routes,
            faas: &s.faas,
            redis: s.redis.as_ref(),
            releases: &s.releases,
        },
    );
    let access_log = s.access_log.as_ref().map(|a| access_log::access_log(c, a));
    let tracing = s
        .tracing
        .as_ref()
        .and_then(|t| arena_core::config::tracing::tracing(c, t, "arena-gateway"));
    Some(Config {
        listeners,
        admin: admin?,
        debug_headers: s.debug_headers,
        server,
        clusters: engine.clusters,
        routes: engine.routes,
        faas: engine.faas,
        redis: engine.redis,
        access_log,
        releases: engine.releases,
        tracing,
    })
}

/// The routing engine's sections as decoded (the gateway's top level, or a sidecar's
/// `outbound:`), each list item with its index.
pub struct EngineFiles<'f> {
    pub clusters: &'f [(usize, ClusterFile)],
    pub routes: &'f [(usize, RouteFile)],
    pub faas: &'f [(usize, FaasFile)],
    pub redis: Option<&'f RedisFile>,
    pub releases: &'f [(usize, ReleaseFile)],
}

/// The routing engine's sections, validated.
pub struct EngineSections {
    pub clusters: Vec<ClusterSpec>,
    pub routes: Vec<RouteSpec>,
    pub faas: Vec<FaasSpec>,
    pub redis: Option<RedisSpec>,
    pub releases: Vec<ReleaseSpec>,
}

/// Validates clusters (their TLS files read as the proxy will dial with them, so `check`
/// accepts only what loads), functions, Redis, routes and releases, with the references
/// between them; `c`'s root is the mapping that holds them.
pub fn engine_sections(c: &mut Diagnostics<'_>, f: &EngineFiles<'_>) -> EngineSections {
    let clusters = cluster::validate(c, f.clusters);
    for (i, spec) in &clusters {
        if let Some(Err(e)) = spec.tls.as_ref().map(crate::proxy::peer_tls::PeerTls::load) {
            c.error_at(
                &[Seg::Key("clusters"), Seg::Index(*i), Seg::Key("tls")],
                format!("cluster `{}` tls: {e}", spec.name),
                Some("`arena-sidecar certs init` and `certs issue` make a dev CA and workload certificates".into()),
            );
        }
    }
    let faas = faas::validate(c, f.faas);
    let redis = f.redis.and_then(|r| limits::redis(c, r));
    let canaries: Vec<&str> = f.releases.iter().map(|(_, r)| r.canary.as_str()).collect();
    let refs = route::References {
        also_used: &canaries,
        clusters: &clusters,
        faas: &faas,
        redis: SharedBudget {
            redis: f.redis.is_some(),
            replicas: f.redis.and_then(|r| r.replicas),
        },
    };
    let routes = route::validate(c, f.routes, &refs);
    let releases = release::validate(c, f.releases, &clusters, &routes, f.redis.is_some());
    EngineSections {
        clusters: clusters.into_iter().map(|(_, c)| c).collect(),
        routes: routes.into_iter().map(|(_, r)| r).collect(),
        faas,
        redis,
        releases,
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
