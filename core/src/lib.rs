//! Arena's engine, shared by the gateway, the sidecar and the load tester: what a proxy needs
//! to know about pods and how to spread requests over them, with no proxy in it.
//!
//! - [`diag`]: the YAML configuration language — positions, diagnostics with fix hints, the
//!   collector that reports every problem of a document at once.
//! - [`config`]: typed, validated specs of the sections every Arena proxy shares (clusters,
//!   rate limits, Redis) and the named defaults of all configuration keys.
//! - [`cluster`]: a cluster's live pod set and picking one pod; [`balance`]: the load signal
//!   per pod and the pickers; [`discovery`]: DNS discovery with last-good on failure;
//!   [`resilience`]: outlier ejection, retry budget, latency window, rate limits; [`route`]:
//!   matching a request against a route; [`release`]: grey releases (canary cohorts, the
//!   analysis of both versions, the rollout state machine); [`identity`]: SPIFFE workload
//!   identities (the mTLS allow-lists and the DNS form a TLS client checks); [`tracecontext`]:
//!   W3C / B3 trace context on the wire; [`otlp`]: the span exporter thread (bounded queue,
//!   batches, drops counted).
//!
//! Pure and deterministic under test: the clock is tokio's (pausable) and randomness is passed in.

pub mod balance;
pub mod cluster;
pub mod config;
pub mod diag;
pub mod discovery;
pub mod identity;
pub mod otlp;
pub mod release;
pub mod resilience;
pub mod route;
pub mod tracecontext;

#[cfg(test)]
mod props;
