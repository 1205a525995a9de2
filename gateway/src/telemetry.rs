//! Logging set-up: tracing with `RUST_LOG` filtering (default `info`) on stderr — stdout is
//! the access log's default — and pingora's `log` records are forwarded into the same output.

use std::io::IsTerminal;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
