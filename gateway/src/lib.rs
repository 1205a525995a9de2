//! Arena gateway: a pingora ingress that routes esports API traffic straight to pods,
//! picking each pod by live load.

pub mod config;
