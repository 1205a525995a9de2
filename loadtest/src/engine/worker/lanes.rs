//! The lanes of a worker: one task per HTTP/1.1 connection or per HTTP/2 stream slot, each
//! taking jobs, sending them and settling the answers; plus the shared HTTP/2 connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use tokio::sync::Notify;
use tokio::time::sleep_until;

use super::{Sent, State};
use crate::engine::client::{self, Answer, Failure};
use crate::engine::h1::RawConn;
use crate::engine::mix::{self, Body};
use crate::engine::trace::{Tracing, TRACEPARENT};
use crate::scenario::Mode;

/// Longest pause between failed attempts of a closed-loop lane.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Closed loop: pause after consecutive failures so a dead target is not hammered in a spin.
async fn backoff(st: &State, failures: u32) {
    if st.shared.mode == Mode::Closed && failures > 0 {
        let pause = Duration::from_millis(1u64 << failures.min(7)).min(MAX_BACKOFF);
        tokio::time::sleep(pause).await;
    }
}

pub(super) async fn h1_lane(st: Rc<State>, lane: u64) {
    let sh = st.shared.clone();
    let mut rng = st.rng(lane);
    let mut ids = State::trace_rng();
    let mut scratch = String::with_capacity(256);
    let mut wire = Vec::with_capacity(1024);
    // Connect ahead of the start so handshakes do not land in the first measurements.
    let mut conn = RawConn::connect(sh.addr, sh.http.connect_timeout).await.ok();
    sleep_until(st.spec.start.into()).await;
    let mut failures = 0u32;
    while let Some(intended) = st.next_job().await {
        if st.abandon_if_late(intended) {
            continue;
        }
        let encoded = match sh.mix.encode_h1(&mut rng, &mut scratch, &mut wire) {
            Ok(x) => x,
            Err(e) => {
                st.settle(intended, usize::MAX, None, Ok(Err(Failure::Http(e.0))));
                continue;
            }
        };
        let trace = sh.tracing.as_ref().map(|t| t.begin(&mut ids));
        if let Some(t) = &trace {
            mix::insert_h1_header(&mut wire, TRACEPARENT.as_str(), &Tracing::traceparent(t));
        }
        let deadline = st.deadline();
        let mut keep_alive = true;
        // When the request left: a user's answers are ordered by it, not by their arrival.
        let mut sent_at = Instant::now();
        let attempt = async {
            // A keep-alive connection the server closed while idle: reconnect, nothing was sent.
            if conn.as_mut().is_some_and(|c| !c.is_reusable()) {
                conn = None;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(RawConn::connect(sh.addr, sh.http.connect_timeout).await?),
            };
            st.rec.borrow_mut().sent();
            sent_at = Instant::now();
            let r = c.exchange(&wire, encoded.head).await?;
            keep_alive = r.keep_alive;
            Ok(Answer {
                status: r.status,
                bytes: r.bytes,
                debug: r.debug,
            })
        };
        let result = tokio::time::timeout_at(deadline.into(), attempt).await.map_err(|_| ());
        let sent = Sent {
            at: sent_at,
            user: encoded.user,
            trace,
        };
        if st.settle(intended, encoded.entry, Some(sent), result) {
            failures = 0;
            if !keep_alive {
                conn = None;
            }
        } else {
            conn = None;
            failures += 1;
            backoff(&st, failures).await;
        }
    }
}

/// One shared HTTP/2 connection, (re)established by whichever lane needs it first.
#[derive(Default)]
pub(super) struct H2Slot {
    sender: RefCell<Option<http2::SendRequest<Body>>>,
    connecting: Cell<bool>,
    ready: Notify,
}

impl H2Slot {
    async fn get(&self, st: &State) -> Result<http2::SendRequest<Body>, Failure> {
        loop {
            if let Some(s) = self.sender.borrow().as_ref() {
                if !s.is_closed() {
                    return Ok(s.clone());
                }
            }
            if self.connecting.get() {
                self.ready.notified().await;
                continue;
            }
            self.connecting.set(true);
            let r = client::connect_h2(st.shared.addr, st.shared.http.connect_timeout).await;
            self.connecting.set(false);
            self.ready.notify_waiters();
            match r {
                Ok(s) => {
                    *self.sender.borrow_mut() = Some(s.clone());
                    return Ok(s);
                }
                Err(e) => {
                    *self.sender.borrow_mut() = None;
                    return Err(e);
                }
            }
        }
    }
}

pub(super) async fn h2_lane(st: Rc<State>, slot: Rc<H2Slot>, lane: u64) {
    let sh = st.shared.clone();
    let mut rng = st.rng(lane);
    let mut ids = State::trace_rng();
    let mut scratch = String::with_capacity(256);
    let mut sender = slot.get(&st).await.ok();
    sleep_until(st.spec.start.into()).await;
    let mut failures = 0u32;
    while let Some(intended) = st.next_job().await {
        if st.abandon_if_late(intended) {
            continue;
        }
        let (entry, mut req, user) = match sh.mix.build(&mut rng, &mut scratch) {
            Ok(x) => x,
            Err(e) => {
                st.settle(intended, usize::MAX, None, Ok(Err(Failure::Http(e.0))));
                continue;
            }
        };
        let trace = sh.tracing.as_ref().map(|t| t.begin(&mut ids));
        if let Some(value) = trace.and_then(|t| http::HeaderValue::try_from(Tracing::traceparent(&t)).ok()) {
            req.headers_mut().insert(TRACEPARENT, value);
        }
        let deadline = st.deadline();
        let mut sent_at = Instant::now();
        let attempt = async {
            let s = match sender.as_mut() {
                Some(s) if !s.is_closed() => s,
                _ => sender.insert(slot.get(&st).await?),
            };
            st.rec.borrow_mut().sent();
            sent_at = Instant::now();
            client::exchange_h2(s, req).await
        };
        // On timeout the request future is dropped, which resets only its stream.
        let result = tokio::time::timeout_at(deadline.into(), attempt).await.map_err(|_| ());
        let sent = Sent {
            at: sent_at,
            user,
            trace,
        };
        if st.settle(intended, entry, Some(sent), result) {
            failures = 0;
        } else {
            failures += 1;
            if sender.as_ref().is_some_and(|s| s.is_closed()) {
                sender = None;
            }
            backoff(&st, failures).await;
        }
    }
}
