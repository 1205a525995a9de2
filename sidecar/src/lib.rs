//! Arena's mesh sidecar: beside each pod it gives every app — unmodified — a load report the
//! gateway balances on, a concurrency limit with a bounded queue that sheds with an answer the
//! gateway retries elsewhere, and a cut-and-capture of requests the app cannot finish.
//!
//! The request path is [`inbound`] (admit → forward → answer → end); [`health`] is the app's
//! state machine, [`state`] what requests share, [`control`] the off-path thread (app check,
//! CPU sampling, reload), [`admin`] the probes and views, [`server`] the wiring and drain,
//! [`replay`] the tool that sends captures again.

pub mod admin;
pub mod certs;
pub mod config;
pub mod control;
pub mod cpu;
mod cpu_task;
pub mod health;
pub use arena_core::identity;
pub mod inbound;
pub mod metrics;
pub mod replay;
pub mod server;
pub mod state;
pub mod tls;
