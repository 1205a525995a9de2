//! A finished request's trace as the exporter takes it ([`Finished`]): a server span per
//! request, a client span per try and per function invocation. The exporter thread itself
//! (bounded queue, batches, drops counted in `arena_trace_spans_dropped_total`) is
//! [`arena_core::otlp`], shared with the sidecar and the load tester.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::SystemTime;

use arena_core::otlp::{span, InstrumentationScope, KeyValue, Part, SpanData, SpanKind, Spans};

use crate::proxy::trace::{RequestTrace, TryKind};

/// The exporter of the gateway's (and the sidecar's) request traces.
pub type Tracer = arena_core::otlp::Tracer<Finished>;

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

impl Spans for Finished {
    fn count(&self) -> u64 {
        1 + self.trace.tries.len() as u64 + u64::from(self.trace.faas.is_some())
    }

    fn spans(&self, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
        spans(self, scope, out);
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
