//! Shared helpers for integration tests: real processes on loopback, always cleaned up.
#![allow(dead_code)]

pub mod dnsmasq;
pub mod faas;
pub mod gateway;
pub mod http;
pub mod otlp;
pub mod procs;
pub mod redis;
