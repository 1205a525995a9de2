//! The gateway's racer: real tries on the route's pods, each started with the try engine
//! (`attempt`), failed ones classified (`classify`) and retried by `retry`'s decision, as in
//! pingora's proxy loop; only the connection is driven here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::{Error, ErrorType};
use tokio::time::Instant;

use super::race::{Racer, Reply, TryFuture};
use super::Hedger;
use crate::config::RetryOn;
use crate::proxy::attempt;
use crate::proxy::classify::{classify, Fault};
use crate::proxy::ctx::{Routed, Try};
use crate::proxy::error::GatewayError;
use crate::proxy::random;
use crate::proxy::retry::{self, TryState, Verdict};
use crate::proxy::trace::{self, RequestTrace, TryKind};
use arena_core::tracecontext::SpanId;

/// A try the race launched: its pod, its peer (to pool the connection) and the try until it ends.
pub struct Launched {
    pub pod: SocketAddr,
    pub peer: HttpPeer,
    pub open: Option<Try>,
    /// Its span, when the request is traced.
    pub span: Option<SpanId>,
}

/// The gateway's racer: real tries on the route's pods.
pub struct PodRace<'a> {
    pub routed: &'a mut Routed,
    pub hedger: &'a Hedger,
    /// The request every try sends.
    pub request: RequestHeader,
    /// Each launched try, by index.
    pub tries: Vec<Launched>,
    /// How the last failed try failed.
    pub last_cause: Option<RetryOn>,
    /// The request's trace, when traced: each try gets its span and its `traceparent`.
    pub trace: Option<&'a mut RequestTrace>,
}

impl<'a> PodRace<'a> {
    pub fn new(
        routed: &'a mut Routed,
        hedger: &'a Hedger,
        request: RequestHeader,
        trace: Option<&'a mut RequestTrace>,
    ) -> Self {
        PodRace {
            routed,
            hedger,
            request,
            tries: Vec::new(),
            last_cause: None,
            trace,
        }
    }

    /// Ends try `idx`'s span (when traced).
    fn end_span(&mut self, idx: usize, status: Option<u16>, failure: &'static str) {
        if let (Some(tr), Some(span)) = (self.trace.as_deref_mut(), self.tries.get(idx).and_then(|l| l.span)) {
            tr.end_try(span, status, Some(failure));
        }
    }

    /// Notes the status of the answer the race chose.
    pub fn note_answer(&mut self, idx: usize, status: u16) {
        if let (Some(tr), Some(span)) = (self.trace.as_deref_mut(), self.tries.get(idx).and_then(|l| l.span)) {
            tr.answered(span, status);
        }
    }
}

impl Racer for PodRace<'_> {
    type Session = HttpSession;

    fn launch(&mut self) -> Result<(usize, TryFuture<HttpSession>), GatewayError> {
        let (t, per_try) = random::with_rng(|rng| attempt::start(self.routed, false, Instant::now(), rng))?;
        let peer = attempt::peer(
            &self.routed.cluster().spec,
            t.pod(),
            per_try,
            true,
            self.routed.peer_tls(),
        );
        let idx = self.tries.len();
        let (connector, mut req, p) = (Arc::clone(&self.hedger.connector), self.request.clone(), peer.clone());
        let pod = t.pod();
        let span = match self.trace.as_deref_mut() {
            Some(tr) => {
                // Another try still out means this one races it; none out, it follows a failure.
                let kind = match (idx, self.tries.iter().any(|l| l.open.is_some())) {
                    (0, _) => TryKind::First,
                    (_, true) => TryKind::Hedge,
                    (_, false) => TryKind::Retry,
                };
                let span = random::with_rng(|rng| tr.start_try(pod, kind, t.version, rng));
                tr.propagate(span, &mut req)
                    .map_err(|e| GatewayError::Internal(format!("traceparent: {e}")))?;
                Some(span)
            }
            None => None,
        };
        self.tries.push(Launched {
            pod,
            peer,
            open: Some(t),
            span,
        });
        Ok((idx, Box::pin(one_try(connector, p, req, per_try, pod))))
    }

    fn hedge_allowed(&mut self) -> bool {
        self.routed.route.budget.as_ref().is_none_or(|b| b.try_retry())
    }

    fn failed(&mut self, idx: usize, fault: &Fault) {
        if fault.retry_on.is_some() {
            self.last_cause = fault.retry_on;
        }
        self.end_span(idx, None, fault.retry_on.map_or("error", trace::cause_name));
        if let Some(t) = self.tries.get_mut(idx).and_then(|l| l.open.take()) {
            attempt::failed(self.routed, t, fault);
        }
    }

    fn pod(&self, idx: usize) -> Option<SocketAddr> {
        self.tries.get(idx).map(|l| l.pod)
    }

    fn may_retry(&mut self, cause: RetryOn) -> bool {
        let state = TryState {
            attempts: self.routed.tries.count,
            // Only idempotent, bodyless requests are hedged.
            idempotent: true,
            replayable: true,
            response_started: false,
            remaining: self.routed.remaining(Instant::now()),
        };
        retry::decide(self.routed, cause, &state) == Verdict::Retry
    }

    fn bad_answer(&mut self, idx: usize, s: &HttpSession, status: u16) -> RetryOn {
        use arena_core::balance::report;
        let Some(h) = s
            .response_header()
            .filter(|h| status == 503 && h.headers.contains_key(&report::OVERLOADED_NAME))
        else {
            self.end_span(idx, Some(status), "5xx");
            return RetryOn::Status5xx;
        };
        self.end_span(idx, Some(status), "overloaded");
        // Ended now as busy, so settling the losers cannot count it as a failure.
        if let Some(t) = self.tries.get_mut(idx).and_then(|l| l.open.take()) {
            let load = h
                .headers
                .get(&report::HEADER_NAME)
                .and_then(|v| report::parse(v.as_bytes()));
            attempt::shed_try(self.routed, t, load);
        }
        self.last_cause = Some(RetryOn::Overloaded);
        RetryOn::Overloaded
    }
}

impl PodRace<'_> {
    /// Ends the tries that lost: one that started before the winner (or when nothing won) and
    /// still had not answered is counted against its pod; later ones only release their slot.
    pub fn settle_losers(&mut self, winner: Option<usize>) {
        let winner_started = winner
            .and_then(|w| self.tries.get(w))
            .and_then(|l| l.open.as_ref())
            .map(Try::started);
        for (i, l) in self.tries.iter_mut().enumerate() {
            if Some(i) == winner {
                continue;
            }
            if let (Some(tr), Some(span)) = (self.trace.as_deref_mut(), l.span) {
                tr.end_try(span, None, Some("lost_race"));
            }
            if let Some(t) = l.open.take() {
                if winner_started.is_none_or(|ws| t.started() <= ws) {
                    attempt::lost_to_a_faster_pod(self.routed, t);
                }
            }
        }
    }

    /// The chosen try's answer header (load report stripped), recorded as its answer; the try
    /// itself comes back while its body is relayed (`None`: a 5xx, already ended).
    pub fn take_answer(&mut self, idx: usize, s: &HttpSession) -> Option<(ResponseHeader, HttpPeer, Option<Try>)> {
        let l = self.tries.get_mut(idx)?;
        let t = l.open.take()?;
        let mut header = s.response_header()?.clone();
        if let Some(i) = self.routed.tries.tried.iter().position(|p| *p == t.pod()) {
            self.routed.tries.last = i as u32;
        }
        let (_, _, open) = attempt::answered(self.routed, Some(t), &mut header);
        Some((header, l.peer.clone(), open))
    }
}

/// One hedged try: connect (or reuse), send the head, read the answer's head, within `per_try`.
async fn one_try(
    connector: Arc<Connector>,
    peer: HttpPeer,
    req: RequestHeader,
    per_try: Duration,
    pod: SocketAddr,
) -> Reply<HttpSession> {
    let work = async {
        let (mut s, _reused) = connector.get_http_session(&peer).await?;
        s.set_read_timeout(Some(per_try));
        s.set_write_timeout(Some(per_try));
        s.write_request_header(Box::new(req)).await?;
        s.finish_request_body().await?;
        s.read_response_header().await?;
        Ok::<_, Box<Error>>(s)
    };
    let result = match tokio::time::timeout(per_try, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::explain(ErrorType::ReadTimedout, "try exceeded per_try_timeout")),
    };
    match result {
        Ok(s) => match s.response_header().map(|h| h.status.as_u16()) {
            Some(status) => Reply::Answer(s, status),
            None => Reply::Failed(classify(&Error::new(ErrorType::InvalidHTTPHeader).into_up(), Some(pod))),
        },
        Err(e) => Reply::Failed(classify(&e.into_up(), Some(pod))),
    }
}
