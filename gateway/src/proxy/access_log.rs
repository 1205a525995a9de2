//! Access log: one JSON line per request worth keeping — every 5xx and unanswered request,
//! every slow one, a sample of the rest. Lines go through a bounded queue to a dedicated writer
//! thread, so a slow disk or a full pipe never stalls the proxy; when the writer falls behind,
//! lines are dropped and counted (`arena_access_log_dropped_total`), never waited for.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;
use serde::Serialize;

use crate::config::{AccessLogSpec, LogOutput};

/// Lines queued for the writer at most; beyond this they are dropped.
const QUEUE: usize = 16 * 1024;

/// The process's access-log writer.
pub struct AccessLog {
    tx: SyncSender<String>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Opens `output` and starts the writer thread.
    pub fn start(output: &LogOutput, dropped: IntCounter) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match output {
            LogOutput::Stdout => Box::new(io::stdout()),
            LogOutput::Stderr => Box::new(io::stderr()),
            LogOutput::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("arena-access-log".into())
            .spawn(move || write_lines(rx, sink))?;
        Ok(AccessLog { tx, dropped })
    }

    /// Queues one line; drops it (and counts) if the writer is behind.
    pub fn write(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.inc();
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs dry (lines appear promptly at
/// low rates, in large writes at high ones).
fn write_lines(rx: Receiver<String>, sink: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, sink);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        while let Ok(line) = rx.try_recv() {
            ok &= writeln!(out, "{line}").is_ok();
        }
        if !(ok && out.flush().is_ok()) {
            tracing::warn!("access log write failed; lines lost");
        }
    }
}

/// Whether a finished request gets a line. `status` 0 = no answer was written; `draw` is a
/// uniform sample in [0, 1) for the sampled share.
pub fn wanted(spec: &AccessLogSpec, status: u16, elapsed: Duration, draw: impl FnOnce() -> f64) -> bool {
    (spec.errors && (status == 0 || status >= 500))
        || spec.slow.is_some_and(|slow| elapsed >= slow)
        || (spec.sample > 0.0 && draw() < spec.sample)
}

/// One access-log line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub request_id: &'a str,
    pub client_ip: Option<IpAddr>,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// 0 when no answer was written (client gone).
    pub status: u16,
    pub duration_ms: f64,
    pub route: Option<&'a str>,
    pub cluster: Option<&'a str>,
    /// The pod tried last, or `faas=NAME` when a function answered.
    pub backend: Option<String>,
    pub attempts: u32,
    /// The gateway's error code when it answered with an error.
    pub error: Option<&'static str>,
}

impl Line<'_> {
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// `faas=NAME` when a function answered, else the pod tried last.
    pub fn backend(function: Option<&str>, pod: Option<SocketAddr>) -> Option<String> {
        match function {
            Some(f) => Some(format!("faas={f}")),
            None => pod.map(|p| p.to_string()),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
