//! Client spans of the sent requests (scenario `tracing:`): each request carries a fresh W3C
//! `traceparent` (the load tester is where its trace starts, so the gateway, the sidecar and
//! the app continue it), and when it settles, a client span goes to the OTLP exporter thread
//! shared with the gateway ([`arena_core::otlp`]). New traces are recorded at
//! `sample_ratio`; errors and slow answers are kept whatever the ratio — the gateway keeps the
//! same ones, so a failed request's trace has both sides.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arena_core::config::TracingSpec;
use arena_core::otlp::{span, InstrumentationScope, KeyValue, Part, SpanData, SpanKind, Spans, Tracer};
use arena_core::tracecontext::{self, SpanId, TraceId};
use http::HeaderName;
use prometheus::IntCounter;
use rand::Rng;
use serde::Serialize;

use crate::scenario::BaseUrl;

/// The header every request carries.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// How long the end of a run waits for the last spans to be exported.
pub const FLUSH_WAIT: Duration = Duration::from_secs(6);

/// The run's tracing: the spec, the exporter, what every span of the run shares.
pub(crate) struct Tracing {
    spec: TracingSpec,
    tracer: Tracer<ClientSpan>,
    run: Arc<RunLabels>,
    exported: IntCounter,
    dropped: IntCounter,
}

/// What every span of a run names: the scenario, the target, the request names.
struct RunLabels {
    scenario: String,
    host: String,
    port: u16,
    names: Vec<String>,
}

/// One request's trace, from just before it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientTrace {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// Recorded from the start (the flag sent on).
    pub sampled: bool,
    pub start: SystemTime,
}

/// How a traced request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer; `error`: it counts as an error under the scenario's `errors:` rule.
    Status { code: u16, error: bool },
    /// The connection failed or the answer was unreadable.
    Transport,
    /// No answer within `http.timeout`.
    Timeout,
}

/// Spans exported and dropped in a run (shown in the report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TraceCounts {
    pub exported: u64,
    pub dropped: u64,
}

impl Tracing {
    /// Starts the exporter thread for a run of `scenario` against `target`.
    pub fn start(spec: &TracingSpec, scenario: &str, target: &BaseUrl, names: &[String]) -> std::io::Result<Tracing> {
        let counter = |name: &str| IntCounter::new(name, name).map_err(std::io::Error::other);
        let (exported, dropped) = (counter("spans_exported")?, counter("spans_dropped")?);
        let tracer = Tracer::start(spec, "arena-loadtest", exported.clone(), dropped.clone())?;
        Ok(Tracing {
            spec: spec.clone(),
            tracer,
            run: Arc::new(RunLabels {
                scenario: scenario.to_string(),
                host: target.host.clone(),
                port: target.port,
                names: names.to_vec(),
            }),
            exported,
            dropped,
        })
    }

    /// Starts the trace of a request about to be sent (ids from the lane's own generator).
    pub fn begin(&self, rng: &mut impl Rng) -> ClientTrace {
        ClientTrace {
            trace_id: rng.random::<u128>().max(1),
            span_id: rng.random::<u64>().max(1),
            sampled: rng.random::<f64>() < self.spec.sample_ratio,
            start: SystemTime::now(),
        }
    }

    /// The `traceparent` value the request carries.
    pub fn traceparent(t: &ClientTrace) -> String {
        tracecontext::traceparent(t.trace_id, t.span_id, t.sampled)
    }

    /// Ends request `t` of mix entry `entry`, answered now; `queued`: how long it waited
    /// behind its intended send time. Exported when sampled, failed or slow.
    pub fn finish(&self, t: ClientTrace, entry: usize, outcome: Outcome, queued: Duration) {
        let end = SystemTime::now();
        let failed = match outcome {
            Outcome::Status { code, error } => error || code >= 500,
            Outcome::Transport | Outcome::Timeout => true,
        };
        let took = end.duration_since(t.start).unwrap_or_default();
        if self.spec.keeps(t.sampled, failed, took) {
            self.tracer.submit(ClientSpan {
                trace: t,
                end,
                entry,
                outcome,
                failed,
                queued,
                run: Arc::clone(&self.run),
            });
        }
    }

    /// Exports what is queued (the end of a run) and returns the run's counts.
    pub fn flush(&self) -> TraceCounts {
        self.tracer.flush(FLUSH_WAIT);
        TraceCounts {
            exported: self.exported.get(),
            dropped: self.dropped.get(),
        }
    }
}

/// A settled request's span, turned into OTLP on the exporter thread.
pub(crate) struct ClientSpan {
    trace: ClientTrace,
    end: SystemTime,
    entry: usize,
    outcome: Outcome,
    failed: bool,
    queued: Duration,
    run: Arc<RunLabels>,
}

impl Spans for ClientSpan {
    fn count(&self) -> u64 {
        1
    }

    fn spans(&self, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
        let name = self
            .run
            .names
            .get(self.entry)
            .cloned()
            .unwrap_or_else(|| "request".into());
        let mut attributes = vec![
            KeyValue::new("arena.loadtest.scenario", self.run.scenario.clone()),
            KeyValue::new("arena.loadtest.request", name.clone()),
            KeyValue::new("server.address", self.run.host.clone()),
            KeyValue::new("server.port", i64::from(self.run.port)),
            KeyValue::new(
                "arena.loadtest.queued_us",
                i64::try_from(self.queued.as_micros()).unwrap_or(i64::MAX),
            ),
        ];
        let failure = match self.outcome {
            Outcome::Status { code, .. } => {
                attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
                self.failed.then_some("status")
            }
            Outcome::Transport => Some("transport"),
            Outcome::Timeout => Some("timeout"),
        };
        if let Some(why) = failure {
            attributes.push(KeyValue::new("error.type", why));
        }
        let part = Part {
            span_id: self.trace.span_id,
            parent: None,
            remote_parent: false,
            kind: SpanKind::Client,
            name: Cow::Owned(name),
            start: self.trace.start,
            end: self.end,
            attributes,
            failure,
        };
        out.push(span(self.trace.trace_id, part, scope));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    fn labels() -> Arc<RunLabels> {
        Arc::new(RunLabels {
            scenario: "s".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            names: vec!["GET /a".into()],
        })
    }

    #[test]
    fn a_request_span_is_a_root_client_span_with_its_outcome() {
        let mut rng = SmallRng::seed_from_u64(5);
        let t = ClientTrace {
            trace_id: rng.random::<u128>().max(1),
            span_id: 7,
            sampled: true,
            start: SystemTime::now(),
        };
        let scope = InstrumentationScope::builder("t").build();
        let mut out = Vec::new();
        for (outcome, failed, why) in [
            (
                Outcome::Status {
                    code: 200,
                    error: false,
                },
                false,
                None,
            ),
            (Outcome::Status { code: 503, error: true }, true, Some("status")),
            (Outcome::Timeout, true, Some("timeout")),
        ] {
            let s = ClientSpan {
                trace: t,
                end: SystemTime::now(),
                entry: 0,
                outcome,
                failed,
                queued: Duration::from_micros(30),
                run: labels(),
            };
            out.clear();
            s.spans(&scope, &mut out);
            let span = &out[0];
            assert_eq!(span.span_kind, SpanKind::Client);
            assert_eq!(span.name, "GET /a");
            assert_eq!(u64::from_be_bytes(span.span_context.span_id().to_bytes()), 7);
            assert_eq!(span.parent_span_id.to_bytes(), [0; 8], "a root span");
            let err = span.attributes.iter().find(|k| k.key.as_str() == "error.type");
            assert_eq!(err.map(|k| k.value.to_string()), why.map(String::from));
        }
        let tp = Tracing::traceparent(&t);
        let back = tracecontext::parse_traceparent(tp.as_bytes()).unwrap();
        assert_eq!((back.trace_id, back.span_id, back.sampled), (t.trace_id, 7, true));
    }
}
