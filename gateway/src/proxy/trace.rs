//! The trace of one request, built on the request path only from plain fields (no span
//! objects, no locks): the caller's context (W3C `traceparent`, or B3), the head decision, and
//! one record per try — pod, attempt, why it was started (first, retry after a cause, hedge),
//! how it ended. At the end of the request [`keep`] decides (so errors and slow requests are
//! kept whatever the ratio) and a kept trace goes to the exporter thread ([`crate::trace`]).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use arena_core::release::Version;
use arena_core::tracecontext::{self, Parent, SpanId, TraceId};
use http::{HeaderMap, HeaderName};
use rand::Rng;
use smallvec::SmallVec;

use crate::config::{RetryOn, TracingSpec};

/// The W3C header a try's request carries.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const B3: HeaderName = HeaderName::from_static("b3");

/// Why a try was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryKind {
    First,
    /// After the previous try failed (how it failed is that try's `failure`).
    Retry,
    /// Raced beside a slow one.
    Hedge,
}

/// One try.
#[derive(Debug, Clone)]
pub struct TrySpan {
    pub span_id: SpanId,
    pub pod: SocketAddr,
    /// 1 for the first try.
    pub attempt: u32,
    pub kind: TryKind,
    /// For a retry: how the try before it failed.
    pub after: Option<&'static str>,
    pub version: Option<Version>,
    pub start: SystemTime,
    pub end: Option<SystemTime>,
    pub status: Option<u16>,
    /// How it failed (`5xx`, `timeout`, `overloaded`, `lost_race`...), when it did.
    pub failure: Option<&'static str>,
}

/// One function invocation (the FaaS fallback).
#[derive(Debug, Clone)]
pub struct FaasSpan {
    pub span_id: SpanId,
    pub function: String,
    /// Why the function was called (`no_endpoints`, `spillover`, `warm`...).
    pub reason: &'static str,
    pub start: SystemTime,
    pub end: Option<SystemTime>,
    pub status: Option<u16>,
    /// How the invocation failed, when it did.
    pub error: Option<&'static str>,
}

/// The request's trace so far.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The caller's span, when it sent a context.
    pub parent: Option<SpanId>,
    /// The head decision: the caller's sampled flag, else the ratio.
    pub sampled: bool,
    /// This request's server span.
    pub span_id: SpanId,
    pub start: SystemTime,
    pub tries: SmallVec<[TrySpan; 2]>,
    pub faas: Option<FaasSpan>,
}

/// Starts the trace of a request with `headers` (a caller's `traceparent`, else `b3`, is
/// joined; otherwise a new trace, recorded from the start with `spec.sample_ratio`).
pub fn begin<R: Rng>(headers: &HeaderMap, spec: &TracingSpec, rng: &mut R) -> RequestTrace {
    let parent: Option<Parent> = headers
        .get(&TRACEPARENT)
        .and_then(|v| tracecontext::parse_traceparent(v.as_bytes()))
        .or_else(|| headers.get(&B3).and_then(|v| tracecontext::parse_b3(v.as_bytes())));
    let (trace_id, parent_span, sampled) = match parent {
        Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
        None => (
            rng.random::<u128>().max(1),
            None,
            rng.random::<f64>() < spec.sample_ratio,
        ),
    };
    RequestTrace {
        trace_id,
        parent: parent_span,
        sampled,
        span_id: rng.random::<u64>().max(1),
        start: SystemTime::now(),
        tries: SmallVec::new(),
        faas: None,
    }
}

impl RequestTrace {
    /// Records a try starting now; returns its span id (the parent the pod continues from).
    pub fn start_try<R: Rng>(
        &mut self,
        pod: SocketAddr,
        kind: TryKind,
        version: Option<Version>,
        rng: &mut R,
    ) -> SpanId {
        let span_id = rng.random::<u64>().max(1);
        let after = match kind {
            TryKind::Retry => self.tries.last().and_then(|t| t.failure),
            _ => None,
        };
        self.tries.push(TrySpan {
            span_id,
            pod,
            attempt: self.tries.len() as u32 + 1,
            kind,
            after,
            version,
            start: SystemTime::now(),
            end: None,
            status: None,
            failure: None,
        });
        span_id
    }

    /// The try started last (pingora's proxy loop has one in flight at a time).
    pub fn current(&self) -> Option<SpanId> {
        self.tries.last().map(|t| t.span_id)
    }

    /// Ends try `span` now (first end wins: a later, vaguer one does not overwrite it).
    pub fn end_try(&mut self, span: SpanId, status: Option<u16>, failure: Option<&'static str>) {
        if let Some(t) = self.tries.iter_mut().find(|t| t.span_id == span) {
            if t.end.is_none() {
                t.end = Some(SystemTime::now());
                t.status = status.or(t.status);
                t.failure = failure;
            }
        }
    }

    /// Ends the try started last (the one in flight in pingora's proxy loop), if any.
    pub fn end_current(&mut self, status: Option<u16>, failure: Option<&'static str>) {
        if let Some(span) = self.current() {
            self.end_try(span, status, failure);
        }
    }

    /// Sets the status a try's pod answered, while the try goes on (its body streams).
    pub fn answered(&mut self, span: SpanId, status: u16) {
        if let Some(t) = self.tries.iter_mut().find(|t| t.span_id == span) {
            t.status = Some(status);
        }
    }

    /// Records a function invocation starting now; returns its span id.
    pub fn start_faas<R: Rng>(&mut self, function: &str, reason: &'static str, rng: &mut R) -> SpanId {
        let span_id = rng.random::<u64>().max(1);
        self.faas = Some(FaasSpan {
            span_id,
            function: function.to_string(),
            reason,
            start: SystemTime::now(),
            end: None,
            status: None,
            error: None,
        });
        span_id
    }

    /// Ends the function invocation: its status, or how it failed.
    pub fn end_faas(&mut self, status: Option<u16>, error: Option<&'static str>) {
        if let Some(f) = self.faas.as_mut() {
            f.end = Some(SystemTime::now());
            f.status = status;
            f.error = error;
        }
    }

    /// The `traceparent` a try's (or a function call's) request carries: the callee continues
    /// from `span`. Built without a `String`: every request a traced proxy forwards has one.
    pub fn traceparent_value(&self, span: SpanId) -> Option<http::HeaderValue> {
        http::HeaderValue::from_bytes(&tracecontext::traceparent_bytes(self.trace_id, span, self.sampled)).ok()
    }

    /// Sets the `traceparent` of try `span` on its request and drops a client's `b3`, which
    /// would name another parent; under `HeaderName` constants (forwarded requests keep no
    /// header case, so the names go into the map as they are: pingora patches 2 and 6).
    pub fn propagate(&self, span: SpanId, upstream: &mut pingora::http::RequestHeader) -> pingora::Result<()> {
        if let Some(v) = self.traceparent_value(span) {
            upstream.insert_header(&TRACEPARENT, v)?;
        }
        upstream.remove_header(&B3);
        Ok(())
    }
}

/// A failure cause's name on a span.
pub fn cause_name(cause: RetryOn) -> &'static str {
    match cause {
        RetryOn::ConnectFailure => "connect_failure",
        RetryOn::Reset => "reset",
        RetryOn::Timeout => "timeout",
        RetryOn::Status5xx => "5xx",
        RetryOn::Overloaded => "overloaded",
    }
}

/// Whether a finished request's trace is exported: sampled from the start, or an error
/// (a 5xx, no answer, or a failed try) or a slow request that `spec` always keeps.
pub fn keep(spec: &TracingSpec, trace: &RequestTrace, status: u16, failed: bool, elapsed: Duration) -> bool {
    spec.keeps(trace.sampled, failed || status >= 500 || status == 0, elapsed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn spec(ratio: f64) -> TracingSpec {
        TracingSpec {
            otlp_endpoint: "http://127.0.0.1:4318".into(),
            sample_ratio: ratio,
            keep_errors: true,
            keep_slow: Some(Duration::from_millis(250)),
            service_name: "t".into(),
            resource: vec![],
        }
    }

    #[test]
    fn a_callers_context_is_joined_and_its_flag_followed() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let t = begin(&h, &spec(0.0), &mut rng);
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent, Some(0x00f067aa0ba902b7));
        assert!(t.sampled, "the caller sampled it: ratio 0 does not matter");
        let mut b3 = HeaderMap::new();
        b3.insert(B3, "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0".parse().unwrap());
        let t = begin(&b3, &spec(1.0), &mut rng);
        assert_eq!((t.trace_id, t.sampled), (0x64fe8b2a57d3eff7, false));
        let fresh = begin(&HeaderMap::new(), &spec(1.0), &mut rng);
        assert!(fresh.parent.is_none() && fresh.sampled);
    }

    #[test]
    fn the_ratio_samples_new_traces_and_errors_and_slow_ones_are_kept_anyway() {
        let mut rng = SmallRng::seed_from_u64(7);
        let s = spec(0.01);
        let sampled = (0..10_000)
            .filter(|_| begin(&HeaderMap::new(), &s, &mut rng).sampled)
            .count();
        assert!((50..=150).contains(&sampled), "{sampled} of 10000 at 1%");
        let mut t = begin(&HeaderMap::new(), &spec(0.0), &mut rng);
        assert!(!keep(&s, &t, 200, false, Duration::from_millis(5)));
        assert!(keep(&s, &t, 502, false, Duration::from_millis(5)));
        assert!(keep(&s, &t, 200, true, Duration::from_millis(5)), "a failed try kept");
        assert!(keep(&s, &t, 200, false, Duration::from_millis(300)));
        t.sampled = true;
        assert!(keep(&s, &t, 200, false, Duration::ZERO));
        let off = TracingSpec {
            keep_errors: false,
            keep_slow: None,
            ..spec(0.0)
        };
        t.sampled = false;
        assert!(!keep(&off, &t, 503, true, Duration::from_secs(9)));
    }

    #[test]
    fn tries_are_numbered_and_end_once() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut t = begin(&HeaderMap::new(), &spec(1.0), &mut rng);
        let pod = "127.0.0.1:9".parse().unwrap();
        let a = t.start_try(pod, TryKind::First, None, &mut rng);
        t.end_try(a, Some(503), Some("5xx"));
        t.end_try(a, None, Some("other"));
        let b = t.start_try(pod, TryKind::Retry, None, &mut rng);
        assert_eq!(t.tries[1].after, Some("5xx"));
        assert_eq!(t.current(), Some(b));
        assert_eq!(t.tries[0].failure, Some("5xx"));
        assert_eq!(t.tries[1].attempt, 2);
        let tp = t.traceparent_value(b).unwrap();
        let p = tracecontext::parse_traceparent(tp.as_bytes()).unwrap();
        assert_eq!((p.trace_id, p.span_id), (t.trace_id, b));
    }
}
