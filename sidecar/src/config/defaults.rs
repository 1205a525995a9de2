//! Every default of the sidecar's own keys, and the ranges they are checked against.

use std::time::Duration;

pub const ADMIN_ADDRESS: &str = "127.0.0.1:15000";
/// One proxy thread: a sidecar shares the pod's CPU with the app.
pub const THREADS: usize = 1;
pub const UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 256;

pub const APP_CHECK_INTERVAL: Duration = Duration::from_secs(1);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
pub const STUCK_AFTER: u32 = 3;
pub const LIVENESS_GRACE: Duration = Duration::from_secs(10);
pub const MAX_STUCK_AFTER: u32 = 1000;
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(1);
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

pub const QUEUE_MAX: u32 = 128;
pub const QUEUE_TIMEOUT: Duration = Duration::from_millis(50);
pub const MAX_QUEUE: u32 = 100_000;
pub const MAX_LIMIT: u32 = 100_000;

/// Gradient controller (Envoy's defaults where it has them).
pub mod gradient {
    use std::time::Duration;
    pub const INITIAL: u32 = 16;
    pub const MIN: u32 = 2;
    pub const MAX: u32 = 1000;
    pub const INTERVAL: Duration = Duration::from_millis(100);
    pub const MIN_SAMPLES: u32 = 10;
    pub const PERCENTILE: u32 = 50;
    pub const BUFFER: f64 = 0.25;
    pub const SMOOTHING: f64 = 0.2;
    pub const BASELINE_WINDOW: Duration = Duration::from_secs(30);
    pub const BACKOFF: f64 = 0.9;
}

/// AIMD.
pub mod aimd {
    use std::time::Duration;
    pub const INITIAL: u32 = 16;
    pub const MIN: u32 = 2;
    pub const MAX: u32 = 1000;
    pub const LATENCY_THRESHOLD: Duration = Duration::from_millis(500);
    pub const BACKOFF: f64 = 0.9;
}

pub const CAPTURE_MAX_FILES: u32 = 100;
pub const CAPTURE_MAX_BODY_BYTES: u64 = 64 * 1024;
pub const MAX_CAPTURE_FILES: u32 = 100_000;
pub const MAX_CAPTURE_BODY_BYTES: u64 = 16 * 1024 * 1024;
pub const REDACT: &[&str] = &["authorization", "cookie", "proxy-authorization", "x-api-key"];

pub const CPU_INTERVAL: Duration = Duration::from_millis(500);

/// How often the pod port's certificate files are re-read (Secret volumes update in place).
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
