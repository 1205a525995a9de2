//! The trace exporter, off the request path, shared by the gateway, the sidecar and the load
//! tester: callers hand finished records ([`Spans`]) to a bounded channel; one thread turns
//! them into OpenTelemetry spans and exports them in batches with the OTLP/HTTP protobuf
//! exporter of `opentelemetry-otlp`. A full channel or a failed export drops spans and counts
//! them; it never makes a caller wait. [`Tracer::flush`] exports what is queued (at exit).

use std::borrow::Cow;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;

use crate::config::TracingSpec;

pub use opentelemetry::trace::SpanKind;
pub use opentelemetry::{InstrumentationScope, KeyValue};
pub use opentelemetry_sdk::trace::SpanData;

/// Records waiting for the exporter; beyond this they are dropped.
pub const QUEUE: usize = 4096;
/// Spans per export call.
pub const BATCH: usize = 512;
/// The longest a span waits for its batch.
pub const FLUSH: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A finished record that becomes one or more spans on the exporter thread.
pub trait Spans: Send + 'static {
    /// How many spans it makes (counted as dropped when it cannot be queued).
    fn count(&self) -> u64;
    /// Appends its spans to `out`.
    fn spans(&self, scope: &InstrumentationScope, out: &mut Vec<SpanData>);
}

enum Msg<T> {
    Record(T),
    /// Export the batch now and say so.
    Flush(SyncSender<()>),
}

/// The callers' side of the exporter.
pub struct Tracer<T> {
    tx: SyncSender<Msg<T>>,
    dropped: IntCounter,
}

impl<T: Spans> Tracer<T> {
    /// Starts the exporter thread for `spec`; `scope` names the instrumenting component
    /// (`arena-gateway`...). Exported and dropped spans are counted in the two counters.
    pub fn start(
        spec: &TracingSpec,
        scope: &'static str,
        exported: IntCounter,
        dropped: IntCounter,
    ) -> std::io::Result<Tracer<T>> {
        let (tx, rx) = sync_channel(QUEUE);
        let spec = spec.clone();
        // The exporter's HTTP client needs a process-wide rustls provider; ring, as pingora
        // installs it (the first install wins, the others are no-ops).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let thread_dropped = dropped.clone();
        std::thread::Builder::new()
            .name("arena-traces".into())
            .spawn(move || run(&spec, scope, &rx, &exported, &thread_dropped))?;
        Ok(Tracer { tx, dropped })
    }

    /// Hands a finished record to the exporter; never waits.
    pub fn submit(&self, record: T) {
        let n = record.count();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Record(record)) {
            self.dropped.inc_by(n);
        }
    }

    /// Exports what is queued now; waits for it at most `wait` (false when that ran out, or
    /// the queue was full). For the end of a run or a drain, never the request path.
    pub fn flush(&self, wait: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        self.tx.try_send(Msg::Flush(ack)).is_ok() && done.recv_timeout(wait).is_ok()
    }
}

fn resource(spec: &TracingSpec) -> Resource {
    Resource::builder_empty()
        .with_service_name(spec.service_name.clone())
        .with_attributes(
            spec.resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .chain([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))]),
        )
        .build()
}

fn run<T: Spans>(
    spec: &TracingSpec,
    scope: &'static str,
    rx: &Receiver<Msg<T>>,
    exported: &IntCounter,
    dropped: &IntCounter,
) {
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", spec.otlp_endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build();
    let mut exporter = match built {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the OTLP exporter: traces are dropped");
            for m in rx {
                match m {
                    Msg::Record(r) => dropped.inc_by(r.count()),
                    Msg::Flush(ack) => drop(ack.try_send(())),
                }
            }
            return;
        }
    };
    exporter.set_resource(&resource(spec));
    let scope = InstrumentationScope::builder(scope)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut oldest = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        let wait = if batch.is_empty() {
            FLUSH
        } else {
            FLUSH.saturating_sub(oldest.elapsed())
        };
        let (closed, ack) = match rx.recv_timeout(wait) {
            Ok(Msg::Record(r)) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                r.spans(&scope, &mut batch);
                (false, None)
            }
            Ok(Msg::Flush(ack)) => (false, Some(ack)),
            Err(RecvTimeoutError::Timeout) => (false, None),
            Err(RecvTimeoutError::Disconnected) => (true, None),
        };
        let due = batch.len() >= BATCH || oldest.elapsed() >= FLUSH || closed || ack.is_some();
        if !batch.is_empty() && due {
            let n = batch.len() as u64;
            match futures_executor::block_on(exporter.export(std::mem::take(&mut batch))) {
                Ok(()) => {
                    exported.inc_by(n);
                    last_error = None;
                }
                Err(e) => {
                    dropped.inc_by(n);
                    let text = e.to_string();
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, spans = n, "trace export failed; spans dropped");
                        last_error = Some(text);
                    }
                }
            }
        }
        if let Some(ack) = ack {
            let _ = ack.try_send(());
        }
        if closed {
            return;
        }
    }
}

/// One span as the records describe it (the trace id is the record's).
pub struct Part {
    pub span_id: u64,
    pub parent: Option<u64>,
    /// The parent is in another process (the caller's context).
    pub remote_parent: bool,
    pub kind: SpanKind,
    pub name: Cow<'static, str>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// How it failed, when it did (the span's error status).
    pub failure: Option<&'static str>,
}

/// The exported span of `p` in trace `trace_id` (only kept traces are exported: sampled).
pub fn span(trace_id: u128, p: Part, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(p.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: p.parent.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: p.remote_parent,
        span_kind: p.kind,
        name: p.name,
        start_time: p.start,
        end_time: p.end,
        attributes: p.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: p.failure.map_or(Status::Unset, Status::error),
        instrumentation_scope: scope.clone(),
    }
}
