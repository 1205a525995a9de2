//! `arena-pod`: a small, fast HTTP/1.1 server playing one Kubernetes pod of an
//! esports data API, with fault knobs (latency, errors, stuck, crash) and ORCA
//! load reports for the gateway's demo, integration tests and benchmarks.
//!
//! API: `GET /v1/matches`, `GET /v1/matches/{id}/live`,
//! `GET /v1/players/{id}/stats`, `GET /v1/matches/{id}/replay` (8 MiB binary),
//! `POST /v1/verify`. Control plane (never
//! subject to fault knobs): `GET /_pod/healthz`, `GET /_pod/stats`,
//! `GET|POST /_pod/config`.
//!
//! Run one in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use arena_pod::{bind, PodConfig};
//! let pod = bind(PodConfig::new("127.0.0.1:0".parse().map_err(std::io::Error::other)?)).await?;
//! let addr = pod.local_addr();
//! let task = tokio::spawn(pod.run());
//! # let _ = (addr, task);
//! # Ok(())
//! # }
//! ```

mod config;
mod control;
mod data;
mod orca;
mod server;
mod state;

pub use config::PodConfig;
pub use orca::LOAD_METRICS_HEADER;
pub use server::{bind, serve, BoundPod, PodExit};
