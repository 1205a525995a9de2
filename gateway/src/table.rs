//! Human-readable route table for `arena-gateway routes`.

use std::fmt::Write;

use crate::config::{Config, PathMatch, Source};

/// One line per route in match order, with the pods behind it.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<3} {:<16} {:<20} {:<26} {:<10} {:<14} {:<8} PODS",
        "#", "ROUTE", "HOST", "PATH", "METHODS", "CLUSTER", "TIMEOUT"
    );
    for (i, r) in config.routes.iter().enumerate() {
        let m = &r.matcher;
        let path = match &m.path {
            PathMatch::Any => "*".to_string(),
            PathMatch::Prefix(p) => format!("{p}*"),
            PathMatch::Exact(p) => p.clone(),
        };
        let methods = m
            .methods
            .as_ref()
            .map(|v| v.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "*".into());
        let mut host = m.host.clone().unwrap_or_else(|| "*".into());
        for (k, v) in &m.headers {
            let _ = write!(host, " [{k}={v}]");
        }
        let pods = config
            .clusters
            .iter()
            .find(|c| c.name == r.cluster)
            .map(|c| {
                let src = match &c.source {
                    Source::Static(list) => list.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
                    Source::Dns(d) => format!(
                        "dns {:?} {}{}",
                        d.record,
                        d.name,
                        d.port.map(|p| format!(":{p}")).unwrap_or_default()
                    ),
                };
                format!(
                    "{} via {}",
                    src,
                    serde_json::to_string(&c.lb).unwrap_or_default().trim_matches('"')
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<3} {:<16} {:<20} {:<26} {:<10} {:<14} {:<8} {}",
            i + 1,
            r.name,
            host,
            path,
            methods,
            r.cluster,
            humantime::format_duration(r.timeout).to_string(),
            pods
        );
    }
    out
}
