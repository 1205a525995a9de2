//! Parsing of the `endpoint-load-metrics` response header (ORCA TEXT form).
//!
//! Example: `TEXT cpu_utilization=0.42, application_utilization=0.5, named_metrics.inflight=3`.
//! Like xDS weighted round robin, `application_utilization` wins over `cpu_utilization` when it
//! is present and positive.

/// Header a pod uses to report its own load.
pub const HEADER: &str = "endpoint-load-metrics";
/// The same, pre-parsed for header map lookups on the hot path.
pub const HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);

/// Header on a pod's answer (any status, usually 503) saying it shed the request unprocessed
/// because it is full — what `arena-sidecar` sends when its queue overflows. The gateway
/// retries elsewhere, reads the pod as busy, and does not eject it.
pub const OVERLOADED: &str = "x-arena-overloaded";
/// The same, pre-parsed.
pub const OVERLOADED_NAME: http::HeaderName = http::HeaderName::from_static(OVERLOADED);

/// What a pod said about its load in one response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    /// 0.0 = idle, 1.0 = at capacity (may exceed 1 when overloaded).
    pub utilization: f64,
    /// The pod's own count of requests in progress (from all clients), if reported.
    pub inflight: Option<u32>,
}

/// Parses a header value; `None` when it is not a usable TEXT report.
pub fn parse(value: &[u8]) -> Option<LoadReport> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let body = text.strip_prefix("TEXT")?;
    let mut cpu = None;
    let mut app = None;
    let mut inflight = None;
    for pair in body.split(',') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "cpu_utilization" => cpu = v.parse::<f64>().ok(),
            "application_utilization" => app = v.parse::<f64>().ok(),
            "named_metrics.inflight" => inflight = v.parse::<f64>().ok().filter(|x| *x >= 0.0).map(|x| x as u32),
            _ => {}
        }
    }
    let utilization = app.filter(|u| *u > 0.0).or(cpu)?;
    if !utilization.is_finite() || utilization < 0.0 {
        return None;
    }
    Some(LoadReport {
        // A pod claiming 50x overload is lying or broken; cap so one bad report cannot dominate.
        utilization: utilization.min(4.0),
        inflight,
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "report_props.rs"]
mod props;
