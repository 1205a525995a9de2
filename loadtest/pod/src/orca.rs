//! ORCA load report (`endpoint-load-metrics`, TEXT encoding) for `--load-report`.

use std::fmt::Write as _;

use http::HeaderValue;

/// Response header carrying the ORCA load report.
pub const LOAD_METRICS_HEADER: &str = "endpoint-load-metrics";

/// Reported utilization: the forced value if any, else `in_flight / capacity`
/// clamped to 1.0.
pub(crate) fn utilization(forced: Option<f64>, in_flight: u64, capacity: u32) -> f64 {
    match forced {
        Some(u) => u,
        None => (in_flight as f64 / f64::from(capacity.max(1))).min(1.0),
    }
}

/// `TEXT cpu_utilization=U, application_utilization=U, named_metrics.inflight=N`.
///
/// The pod has no real CPU signal, so both utilizations carry the same
/// in-flight based value; balancers may key on either.
pub(crate) fn header_value(utilization: f64, in_flight: u64) -> Option<HeaderValue> {
    let mut s = String::with_capacity(96);
    // Writing into a String cannot fail.
    let _ = write!(
        s,
        "TEXT cpu_utilization={utilization:.2}, application_utilization={utilization:.2}, named_metrics.inflight={in_flight}"
    );
    // Only digits and ASCII punctuation, so this always succeeds.
    HeaderValue::try_from(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_text_report() {
        let v = header_value(utilization(None, 3, 64), 3);
        assert_eq!(
            v.as_ref().and_then(|v| v.to_str().ok()),
            Some("TEXT cpu_utilization=0.05, application_utilization=0.05, named_metrics.inflight=3")
        );
    }

    #[test]
    fn utilization_is_clamped_or_forced() {
        assert_eq!(utilization(None, 200, 64), 1.0);
        assert_eq!(utilization(Some(0.42), 200, 64), 0.42);
        assert_eq!(utilization(None, 32, 64), 0.5);
    }
}
