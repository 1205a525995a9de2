//! Arena gateway: a pingora ingress that routes esports API traffic straight to pods,
//! picking each pod by live load.
//!
//! The request path is [`proxy`], one module per stage: admit → split → try (retry, hedge) →
//! fall back (FaaS) → respond. What requests read is the [`state`] snapshot (routes of
//! [`route`], clusters and the balancing engine of `arena_core`, functions of [`faas`]),
//! built from [`config`]; [`server`] wires the listeners, [`admin`] and [`control`] run beside
//! the traffic, [`metrics`] holds the counters; [`upgrade`] hands the listening sockets to a
//! new binary without dropping a connection, and [`systemd`] tells systemd which process serves.

pub mod admin;
pub mod canary;
pub mod config;
pub mod control;
pub mod faas;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod rollout;
pub mod route;
pub mod server;
pub mod state;
pub mod systemd;
pub mod table;
pub mod telemetry;
pub mod trace;
pub mod upgrade;

#[cfg(test)]
mod props;
