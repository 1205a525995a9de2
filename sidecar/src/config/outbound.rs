//! `outbound:` — the app's own calls to other services, through the sidecar on a loopback
//! port, with the gateway's engine: its routing, DNS discovery, live-load balancing, retries,
//! timeouts, outlier ejection, grey-release splits and (m)TLS to the pods, configured with the
//! gateway's keys and validated by the gateway's validators. The result is a gateway config
//! whose one listener is `outbound.listen`.

use std::net::SocketAddr;

use arena_core::config::fields::parse_addr;
use arena_core::config::{ClusterFile, FaasFile, RedisFile, ReleaseFile, RouteFile};
use arena_core::diag::{yaml, Diagnostics, Seg};
use arena_gateway::config::{engine_sections, Config as EngineConfig, EngineFiles, Listener};

use super::Config;

/// Keys of `outbound:`.
pub const KEYS: &[&str] = &[
    "listen",
    "clusters",
    "routes",
    "releases",
    "redis",
    "faas",
    "debug_headers",
];

/// Validates `outbound:` (`c`'s root) into the gateway config the outbound proxy runs; the
/// admin and server settings are the sidecar's own.
pub fn validate(c: &mut Diagnostics<'_>, sidecar: Option<&Config>) -> Option<Box<EngineConfig>> {
    let root = c.root();
    let Some(entries) = yaml::entries(root) else {
        c.error_at(
            &[],
            "`outbound` must be a mapping",
            Some(format!("keys: {}", KEYS.join(", "))),
        );
        return None;
    };
    let mut listen: Option<SocketAddr> = None;
    let mut clusters: Vec<(usize, ClusterFile)> = Vec::new();
    let mut routes: Vec<(usize, RouteFile)> = Vec::new();
    let mut releases: Vec<(usize, ReleaseFile)> = Vec::new();
    let mut faas: Vec<(usize, FaasFile)> = Vec::new();
    let mut redis: Option<RedisFile> = None;
    let mut debug_headers = false;
    let mut saw_listen = false;
    for (key, key_node, value) in entries {
        match key.as_str() {
            "listen" => {
                saw_listen = true;
                let text: Option<String> = c.decode(value);
                listen = text.and_then(|t| parse_addr(c, &[Seg::Key("listen")], &t, "outbound.listen"));
            }
            "clusters" => clusters = c.decode_list(value, "clusters"),
            "routes" => routes = c.decode_list(value, "routes"),
            "releases" => releases = c.decode_list(value, "releases"),
            "faas" => faas = c.decode_list(value, "faas"),
            "redis" => redis = c.decode(value),
            "debug_headers" => debug_headers = c.decode(value).unwrap_or(false),
            other => c.unknown_key(key_node, other, "outbound key", KEYS),
        }
    }
    if !saw_listen {
        c.error_at(
            &[],
            "`outbound` needs `listen`",
            Some("the loopback port the app sends its calls to, e.g. `listen: 127.0.0.1:15001`".into()),
        );
    }
    if let Some(a) = listen {
        if !a.ip().is_loopback() {
            c.warn_at(
                &[Seg::Key("listen")],
                format!("outbound.listen {a} is not loopback"),
                Some("only the app beside the sidecar should reach its outbound port".into()),
            );
        }
    }
    let engine = engine_sections(
        c,
        &EngineFiles {
            clusters: &clusters,
            routes: &routes,
            faas: &faas,
            redis: redis.as_ref(),
            releases: &releases,
        },
    );
    let sidecar = sidecar?;
    let listen = listen?;
    if listen == sidecar.inbound.listen || listen == sidecar.inbound.app || listen == sidecar.admin.address {
        c.error_at(
            &[Seg::Key("listen")],
            format!("outbound.listen {listen} is also the inbound, app or admin address"),
            Some("give the outbound side its own loopback port".into()),
        );
        return None;
    }
    Some(Box::new(EngineConfig {
        listeners: vec![Listener {
            name: "outbound".into(),
            address: listen,
            tls: None,
        }],
        admin: sidecar.admin.clone(),
        debug_headers,
        server: sidecar.server.clone(),
        clusters: engine.clusters,
        routes: engine.routes,
        faas: engine.faas,
        redis: engine.redis,
        access_log: None,
        releases: engine.releases,
        tracing: None,
    }))
}
