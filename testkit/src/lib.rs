//! Arena's kit for starting real processes on loopback: free ports, a process guard that kills
//! its whole process group (and keeps the log when a test fails), bounded readiness waits,
//! scratch dirs, a blocking HTTP call, a DNS probe, and launchers for the workspace's binaries,
//! dnsmasq and the FaaS runtimes.
//!
//! The integration tests use it, and so does the load tester's fleet runner (product code):
//! nothing here panics, every failure is an `Err(String)` that says what did not happen.

pub mod arena;
pub mod dns;
pub mod dnsmasq;
pub mod faas;
pub mod http;
pub mod ports;
pub mod process;
pub mod redis;
pub mod scratch;
pub mod wait;

pub use arena::{bin, repo_root};
pub use dnsmasq::{Dnsmasq, Srv};
pub use faas::{HttpFunction, LambdaEmulator};
pub use ports::{free_addr, free_port};
pub use process::Process;
pub use scratch::Scratch;
