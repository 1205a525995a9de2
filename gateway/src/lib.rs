//! Arena gateway: a pingora ingress that routes esports API traffic straight to pods,
//! picking each pod by live load.
//!
//! Request path, module by module: listener ([`server`]) → route match ([`route`]) →
//! cluster ([`cluster`]) → pick a pod ([`balance`]) → attempt ([`proxy`]) → response
//! ([`error`] for failures). Pods come from [`discovery`]; [`config`] and [`state`] hold
//! what requests read; [`admin`] and [`control`] run beside the traffic.

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
