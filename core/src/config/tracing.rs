//! `tracing:` — OpenTelemetry traces, the same section in the gateway's, the sidecar's and the
//! load tester's files: where spans go, which new traces are recorded, which are always kept.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fields::parse_share;
use super::ser::human_opt;
use super::Dur;
use crate::diag::{Diagnostics, Seg};

/// Slow enough to always keep (with `always: [slow]`) when `slow` is not given.
pub const SLOW: Duration = Duration::from_millis(250);
/// Share of new traces recorded when `sample_ratio` is not given.
pub const SAMPLE_RATIO: f64 = 0.01;

/// The section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    /// The collector's OTLP/HTTP base URL (spans are POSTed to `<it>/v1/traces`).
    pub otlp_endpoint: String,
    /// `http` (OTLP/HTTP protobuf).
    #[serde(default)]
    pub protocol: Option<String>,
    /// Share of new traces recorded (a caller's sampled flag is followed), e.g. `1%`.
    #[serde(default)]
    pub sample_ratio: Option<String>,
    /// Requests kept whatever the ratio: `error`, `slow`.
    #[serde(default)]
    pub always: Option<Vec<String>>,
    #[serde(default)]
    pub slow: Option<Dur>,
    #[serde(default)]
    pub service_name: Option<String>,
    /// Extra resource attributes (`deployment.environment: prod`).
    #[serde(default)]
    pub resource: Option<BTreeMap<String, String>>,
}

/// Which requests are traced and where their spans go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracingSpec {
    /// OTLP/HTTP base URL (restart-only).
    pub otlp_endpoint: String,
    /// Share of new traces recorded from the start (a caller's sampled flag is followed).
    pub sample_ratio: f64,
    /// Every 5xx / failed request is kept, whatever the ratio.
    pub keep_errors: bool,
    /// Requests at least this slow are kept, whatever the ratio.
    #[serde(serialize_with = "human_opt")]
    pub keep_slow: Option<Duration>,
    pub service_name: String,
    pub resource: Vec<(String, String)>,
}

impl TracingSpec {
    /// Whether a finished request's trace is exported: recorded from the start (`sampled`), or
    /// an error or a slow request that this spec always keeps — decided at the end, so a 1 %
    /// ratio still keeps every failed or slow one.
    pub fn keeps(&self, sampled: bool, failed: bool, elapsed: Duration) -> bool {
        sampled || (self.keep_errors && failed) || self.keep_slow.is_some_and(|slow| elapsed >= slow)
    }
}

fn at(key: &'static str) -> [Seg; 2] {
    [Seg::Key("tracing"), Seg::Key(key)]
}

/// Validates the section; `service` names the spans' service when `service_name` is not given.
pub fn tracing(c: &mut Diagnostics<'_>, t: &TracingFile, service: &str) -> Option<TracingSpec> {
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
            "protocol `grpc` is not built into Arena",
            Some("use `protocol: http` (OTLP/HTTP protobuf, port 4318 on a collector)".into()),
        ),
        other => c.error_at(
            &at("protocol"),
            format!("unknown protocol `{other}`"),
            Some("`http` (OTLP/HTTP protobuf)".into()),
        ),
    }
    let sample_ratio = match t.sample_ratio.as_deref() {
        None => SAMPLE_RATIO,
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
    let service_name = t.service_name.clone().unwrap_or_else(|| service.into());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(keep_errors: bool, keep_slow: Option<Duration>) -> TracingSpec {
        TracingSpec {
            otlp_endpoint: "http://127.0.0.1:4318".into(),
            sample_ratio: 0.0,
            keep_errors,
            keep_slow,
            service_name: "t".into(),
            resource: vec![],
        }
    }

    #[test]
    fn errors_and_slow_requests_are_kept_whatever_the_head_decision() {
        let s = spec(true, Some(SLOW));
        let fast = Duration::from_millis(5);
        assert!(!s.keeps(false, false, fast));
        assert!(s.keeps(true, false, fast));
        assert!(s.keeps(false, true, fast));
        assert!(s.keeps(false, false, SLOW));
        let off = spec(false, None);
        assert!(!off.keeps(false, true, Duration::from_secs(9)));
        assert!(off.keeps(true, false, fast));
    }
}
