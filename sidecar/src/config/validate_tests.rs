//! Unit tests of the module above.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::config::LimitSpec;

fn load(text: &str) -> Result<Loaded, Vec<String>> {
    load_with_env(text, "sidecar.yaml", &|name| (name == "CPU").then(|| "500".to_string()))
        .map_err(|e| e.0.iter().map(|d| d.to_string()).collect())
}

const MIN: &str = "inbound: { listen: 127.0.0.1:9100, app: 127.0.0.1:8080 }\n";

#[test]
fn the_smallest_config_gets_every_default() {
    let c = load(MIN).unwrap().config;
    assert_eq!(c.inbound.request_timeout, def::REQUEST_TIMEOUT);
    assert!(matches!(c.inbound.limit, LimitSpec::Gradient(ref g) if g.initial == 16 && g.max == 1000));
    assert_eq!(c.inbound.queue.max, 128);
    assert_eq!(c.server.threads, 1);
    assert_eq!(c.admin.address.to_string(), def::ADMIN_ADDRESS);
    assert!(c.inbound.capture.is_none());
}

#[test]
fn every_shape_of_max_concurrency() {
    let with = |v: &str| {
        load(&format!(
            "inbound: {{ listen: 127.0.0.1:9100, app: 127.0.0.1:8080, max_concurrency: {v} }}\n"
        ))
    };
    assert_eq!(with("64").unwrap().config.inbound.limit, LimitSpec::Fixed { limit: 64 });
    assert!(matches!(
        with("adaptive").unwrap().config.inbound.limit,
        LimitSpec::Gradient(_)
    ));
    let aimd = with("{ algorithm: aimd, initial: 4, min: 1, max: 8, latency_threshold: 200ms }").unwrap();
    assert!(
        matches!(aimd.config.inbound.limit, LimitSpec::Aimd(ref a) if a.initial == 4 && a.latency_threshold.as_millis() == 200)
    );
    for (bad, says) in [
        ("0", "between 1 and"),
        ("-3", "at least 1"),
        ("lots", "neither a number nor `adaptive`"),
        ("{ algorithm: pid }", "unknown algorithm `pid`"),
        ("{ algorithm: aimd, percentile: 90 }", "`percentile` is an gradient key"),
        ("{ algorithm: gradient, min: 10, initial: 5 }", "min ≤ initial ≤ max"),
        ("{ algorithm: gradient, backoff: 0.2 }", "backoff must be in [0.5, 1)"),
        ("{ algorithm: gradient, smoothing: 0 }", "smoothing must be in (0, 1]"),
        ("{ algorithm: gradient, bogus: 1 }", "bogus"),
    ] {
        let errors = with(bad).expect_err(bad);
        assert!(errors.iter().any(|e| e.contains(says)), "{bad}: {errors:?}");
    }
}

#[test]
fn all_problems_are_reported_with_positions() {
    let text = "inbound:\n  listen: 127.0.0.1:9100\n  app: 127.0.0.1:9100\n  request_timeout: 0s\n  capture: { dir: relative/dir, max_files: 0 }\n  cpu: { cgroup: sometimes }\nserver: { upgrade_sock: /tmp/x }\noutbound: {}\n";
    let errors = load(text).unwrap_err();
    for says in [
        "sidecar.yaml:2:",
        "is also inbound.app",
        "request_timeout must be between",
        "not an absolute path",
        "max_files must be between",
        "cpu.cgroup `sometimes`",
        "`server.upgrade_sock` is a gateway key",
        "`outbound` needs `listen`",
    ] {
        assert!(errors.iter().any(|e| e.contains(says)), "{says}: {errors:#?}");
    }
}

#[test]
fn capture_cpu_and_env() {
    let text = "inbound:\n  listen: 0.0.0.0:9100\n  app: 127.0.0.1:8080\n  capture: { dir: /var/lib/arena/captures }\n  cpu: { limit_millicores: '${env:CPU}', cgroup: off }\n";
    let c = load(text).unwrap().config;
    let cap = c.inbound.capture.unwrap();
    assert_eq!(cap.max_files, 100);
    assert!(cap.redact.contains(&"authorization".to_string()));
    assert_eq!(c.inbound.cpu.limit_millicores, Some(500));
    assert_eq!(c.inbound.cpu.cgroup, crate::config::CgroupChoice::Off);
    let unset =
        load("inbound:\n  listen: 0.0.0.0:9100\n  app: 127.0.0.1:8080\n  cpu: { limit_millicores: '${env:NOPE}' }\n");
    assert!(unset.unwrap_err().iter().any(|e| e.contains("`NOPE` is unset")));
    let missing = load("admin: { address: 127.0.0.1:15000 }\n").unwrap_err();
    assert!(missing.iter().any(|e| e.contains("missing section `inbound`")));
    let warned = load("inbound: { listen: 0.0.0.0:9100, app: 10.0.0.5:8080 }\n").unwrap();
    assert!(warned.warnings.iter().any(|w| w.to_string().contains("not loopback")));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the text, loading returns (never panics), and what loads is in range.
        #[test]
        fn any_text_loads_or_is_rejected(text in "(inbound|admin|server|queue|max_concurrency|listen|app|capture|cpu|[a-z_]{1,8})?[:{}\\[\\], \n0-9a-z./_'-]{0,160}") {
            let _ = load(&text);
            let _ = load(&format!("{MIN}{text}"));
            if let Ok(l) = load(&format!("inbound: {{ listen: 127.0.0.1:9100, app: 127.0.0.1:8080, max_concurrency: {text} }}")) {
                let i = l.config.inbound.limit.initial();
                prop_assert!((1..=def::MAX_LIMIT).contains(&i));
            }
        }
    }
}

#[test]
fn outbound_uses_the_gateways_keys_and_rules_at_their_positions() {
    let ok = load(&format!(
        "{MIN}outbound:\n  listen: 127.0.0.1:15001\n  clusters:\n    - {{ name: players, endpoints: [\"127.0.0.1:9200\"] }}\n  routes:\n    - {{ name: p, match: {{}}, cluster: players }}\n"
    ))
    .unwrap();
    let engine = ok.config.outbound.unwrap();
    assert_eq!(engine.listeners[0].address.to_string(), "127.0.0.1:15001");
    assert_eq!(engine.routes[0].cluster, "players");
    let errors = load(&format!(
        "{MIN}outbound:\n  listen: 127.0.0.1:9100\n  clusters:\n    - {{ name: players }}\n  rootes: []\n  routes:\n    - {{ name: p, match: {{}}, cluster: plaiers }}\n"
    ))
    .unwrap_err();
    for says in [
        "sidecar.yaml:5:7",
        "has no pods",
        "did you mean `routes`",
        "plaiers",
        "is also the inbound, app or admin address",
    ] {
        assert!(errors.iter().any(|e| e.contains(says)), "{says}: {errors:#?}");
    }
    let missing = load(&format!("{MIN}outbound: {{ clusters: [] }}\n")).unwrap_err();
    assert!(missing.iter().any(|e| e.contains("needs `listen`")), "{missing:?}");
}
