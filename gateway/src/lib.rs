//! Arena gateway: a pingora ingress that routes esports API traffic straight to pods,
//! picking each pod by live load.
//!
//! The request path is [`proxy`], one module per stage: admit → split → try (retry, hedge) →
//! fall back (FaaS) → respond. What requests read is the [`state`] snapshot (routes of
//! [`route`], clusters and the balancing engine of `arena_core`, functions of [`faas`]),
//! built from [`config`]; [`server`] wires the listeners, [`admin`] and [`control`] run beside
//! the traffic, [`metrics`] holds the counters.

pub mod admin;
pub mod config;
pub mod control;
pub mod faas;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod server;
pub mod state;
pub mod table;
pub mod telemetry;

#[cfg(test)]
mod props;
