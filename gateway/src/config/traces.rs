//! `tracing:` — OpenTelemetry traces of requests and their tries, exported over OTLP.

use std::time::Duration;

use arena_core::config::fields::parse_share;
use arena_core::diag::{Diagnostics, Seg};

use super::file::TracingFile;
use super::TracingSpec;

/// Slow enough to always keep (with `always: [slow]`) when `slow` is not given.
const SLOW: Duration = Duration::from_millis(250);
const SERVICE_NAME: &str = "arena-gateway";

fn at(key: &'static str) -> [Seg; 2] {
    [Seg::Key("tracing"), Seg::Key(key)]
}

pub fn tracing(c: &mut Diagnostics<'_>, t: &TracingFile) -> Option<TracingSpec> {
    let endpoint = t.otlp_endpoint.trim().trim_end_matches('/').to_string();
    let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if !scheme_ok || endpoint.len() <= "https://".len() {
        c.error_at(
            &at("otlp_endpoint"),
            format!("otlp_endpoint `{}` is not an http(s) URL", t.otlp_endpoint),
            Some("the collector's OTLP/HTTP base, e.g. http://otel-collector:4318 (spans go to /v1/traces)".into()),
        );
    }
    match t.protocol.as_deref().unwrap_or("http") {
        "http" => {}
        "grpc" => c.error_at(
            &at("protocol"),
            "protocol `grpc` is not built into this gateway",
            Some("use `protocol: http` (OTLP/HTTP protobuf, port 4318 on a collector)".into()),
        ),
        other => c.error_at(
            &at("protocol"),
            format!("unknown protocol `{other}`"),
            Some("`http` (OTLP/HTTP protobuf)".into()),
        ),
    }
    let sample_ratio = match t.sample_ratio.as_deref() {
        None => 0.01,
        Some(text) => parse_share(text).unwrap_or_else(|| {
            c.error_at(
                &at("sample_ratio"),
                format!("bad tracing.sample_ratio `{text}`"),
                Some("a share of new traces such as `1%` or `0.01` (0 to 100%)".into()),
            );
            0.0
        }),
    };
    let (mut keep_errors, mut keep_slow) = (false, false);
    for (i, a) in t
        .always
        .as_deref()
        .unwrap_or(&["error".to_string(), "slow".to_string()])
        .iter()
        .enumerate()
    {
        match a.as_str() {
            "error" => keep_errors = true,
            "slow" => keep_slow = true,
            other => c.error_at(
                &[Seg::Key("tracing"), Seg::Key("always"), Seg::Index(i)],
                format!("unknown `always` entry `{other}`"),
                Some("`error` (every 5xx or failed request) and `slow` (at least `slow`)".into()),
            ),
        }
    }
    let slow = t.slow.map_or(SLOW, |d| d.0);
    let service_name = t.service_name.clone().unwrap_or_else(|| SERVICE_NAME.into());
    if service_name.trim().is_empty() {
        c.error_at(&at("service_name"), "service_name is empty", None);
    }
    Some(TracingSpec {
        otlp_endpoint: endpoint,
        sample_ratio,
        keep_errors,
        keep_slow: keep_slow.then_some(slow),
        service_name,
        resource: t.resource.clone().unwrap_or_default().into_iter().collect(),
    })
}
