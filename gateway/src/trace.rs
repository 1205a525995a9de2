//! The trace exporter, off the request path: requests hand finished traces ([`Finished`]) to a
//! bounded channel; one thread turns them into OpenTelemetry spans (a server span per request,
//! a client span per try) and exports them in batches with the OTLP/HTTP protobuf exporter of
//! `opentelemetry-otlp`. A full channel or a failed export drops spans and counts them
//! (`arena_trace_spans_dropped_total`); it never slows a request.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;

use crate::config::TracingSpec;
use crate::proxy::trace::{RequestTrace, TryKind};

/// Traces waiting for the exporter; beyond this they are dropped.
const QUEUE: usize = 4096;
/// Spans per export call.
const BATCH: usize = 512;
/// The longest a span waits for its batch.
const FLUSH: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A finished request, as its trace is exported.
pub struct Finished {
    pub trace: RequestTrace,
    pub end: SystemTime,
    pub method: String,
    /// The path without the query (queries may carry personal data).
    pub path: String,
    pub status: u16,
    pub route: Option<String>,
    pub release: Option<(String, &'static str)>,
    pub served_by: Option<String>,
    pub error: Option<&'static str>,
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    pub rate_limited: bool,
}

/// The request side of the exporter.
pub struct Tracer {
    tx: SyncSender<Finished>,
    dropped: IntCounter,
}

impl Tracer {
    /// Starts the exporter thread for `spec`, counting exported and dropped spans.
    pub fn start(spec: &TracingSpec, exported: IntCounter, dropped: IntCounter) -> std::io::Result<Tracer> {
        let (tx, rx) = sync_channel(QUEUE);
        let spec = spec.clone();
        // The exporter's HTTP client needs a process-wide rustls provider (pingora's, ring);
        // installed here so it never depends on which starts first.
        pingora::tls::install_default_crypto_provider();
        let thread_dropped = dropped.clone();
        std::thread::Builder::new()
            .name("arena-traces".into())
            .spawn(move || run(&spec, &rx, &exported, &thread_dropped))?;
        Ok(Tracer { tx, dropped })
    }

    /// Hands a kept trace to the exporter; never waits.
    pub fn submit(&self, f: Finished) {
        let spans = 1 + f.trace.tries.len() as u64 + u64::from(f.trace.faas.is_some());
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(f) {
            self.dropped.inc_by(spans);
        }
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

fn run(spec: &TracingSpec, rx: &Receiver<Finished>, exported: &IntCounter, dropped: &IntCounter) {
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
            for f in rx {
                dropped.inc_by(1 + f.trace.tries.len() as u64);
            }
            return;
        }
    };
    exporter.set_resource(&resource(spec));
    let scope = InstrumentationScope::builder("arena-gateway")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut oldest = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        let wait = FLUSH.saturating_sub(oldest.elapsed());
        let closed = match rx.recv_timeout(if batch.is_empty() { FLUSH } else { wait }) {
            Ok(f) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                spans(&f, &scope, &mut batch);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if !batch.is_empty() && (batch.len() >= BATCH || oldest.elapsed() >= FLUSH || closed) {
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
        if closed {
            return;
        }
    }
}

fn context(trace_id: u128, span_id: u64, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        flags,
        false,
        TraceState::default(),
    )
}

/// The parts of a span that differ between the server, try and function spans.
struct Part {
    span_id: u64,
    parent: Option<u64>,
    remote_parent: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    /// How it failed, when it did (the span's error status).
    failure: Option<&'static str>,
}

fn span(trace_id: u128, p: Part, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: context(trace_id, p.span_id, true),
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

/// The spans of one finished request: the server span, then one client span per try.
fn spans(f: &Finished, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
    let t = &f.trace;
    if let Some(fs) = &t.faas {
        let mut attrs = vec![
            KeyValue::new("faas.invoked_name", fs.function.clone()),
            KeyValue::new("arena.faas.reason", fs.reason),
        ];
        if let Some(s) = fs.status {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        if let Some(why) = fs.error {
            attrs.push(KeyValue::new("error.type", why));
        }
        let part = Part {
            span_id: fs.span_id,
            parent: Some(t.span_id),
            remote_parent: false,
            kind: SpanKind::Client,
            name: Cow::Borrowed("faas"),
            start: fs.start,
            end: fs.end.unwrap_or(f.end),
            attributes: attrs,
            failure: fs.error,
        };
        out.push(span(t.trace_id, part, scope));
    }
    let mut attrs = vec![
        KeyValue::new("http.request.method", f.method.clone()),
        KeyValue::new("url.path", f.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(f.status)),
        KeyValue::new("arena.request_id", f.request_id.clone()),
        KeyValue::new("arena.tries", t.tries.len() as i64),
    ];
    if let Some(route) = &f.route {
        attrs.push(KeyValue::new("http.route", route.clone()));
    }
    if let Some((release, version)) = &f.release {
        attrs.push(KeyValue::new("arena.release", release.clone()));
        attrs.push(KeyValue::new("arena.release.version", *version));
    }
    if let Some(function) = &f.served_by {
        attrs.push(KeyValue::new("arena.faas.function", function.clone()));
    }
    if let Some(ip) = f.client_ip {
        attrs.push(KeyValue::new("client.address", ip.to_string()));
    }
    if f.rate_limited {
        attrs.push(KeyValue::new("arena.rate_limited", true));
    }
    if let Some(code) = f.error {
        attrs.push(KeyValue::new("error.type", code));
    }
    let failed = f.status >= 500 || f.status == 0 || f.error.is_some();
    let part = Part {
        span_id: t.span_id,
        parent: t.parent,
        remote_parent: t.parent.is_some(),
        kind: SpanKind::Server,
        name: Cow::Owned(match &f.route {
            Some(r) => format!("{} {r}", f.method),
            None => f.method.clone(),
        }),
        start: t.start,
        end: f.end,
        attributes: attrs,
        failure: failed.then(|| f.error.unwrap_or("server error")),
    };
    out.push(span(t.trace_id, part, scope));
    for tr in &t.tries {
        let mut attrs = vec![
            KeyValue::new("server.address", tr.pod.ip().to_string()),
            KeyValue::new("server.port", i64::from(tr.pod.port())),
            KeyValue::new("arena.attempt", i64::from(tr.attempt)),
        ];
        match tr.kind {
            TryKind::First => {}
            TryKind::Retry => {
                attrs.push(KeyValue::new("arena.retry", true));
                if let Some(after) = tr.after {
                    attrs.push(KeyValue::new("arena.retry.after", after));
                }
            }
            TryKind::Hedge => attrs.push(KeyValue::new("arena.hedge", true)),
        }
        if let Some(v) = tr.version {
            attrs.push(KeyValue::new("arena.release.version", v.as_str()));
        }
        if let Some(s) = tr.status {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        if let Some(why) = tr.failure {
            attrs.push(KeyValue::new("error.type", why));
        }
        let part = Part {
            span_id: tr.span_id,
            parent: Some(t.span_id),
            remote_parent: false,
            kind: SpanKind::Client,
            name: Cow::Borrowed("try"),
            start: tr.start,
            end: tr.end.unwrap_or(f.end),
            attributes: attrs,
            failure: tr.failure,
        };
        out.push(span(t.trace_id, part, scope));
    }
}
