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
/// Longest `path` / `host` kept in a line (bounds the queue's memory: a client controls them).
pub const MAX_FIELD: usize = 2048;

/// `text` cut to at most [`MAX_FIELD`] bytes on a character boundary.
pub fn clip(text: &str) -> &str {
    if text.len() <= MAX_FIELD {
        return text;
    }
    let mut end = MAX_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The process's access-log writer.
pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: IntCounter,
    /// Where lines go (fixed for the life of the process).
    pub output: LogOutput,
}

enum Msg {
    Line(String),
    /// Write out everything queued so far, then acknowledge.
    Flush(SyncSender<()>),
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
        Ok(AccessLog {
            tx,
            dropped,
            output: output.clone(),
        })
    }

    /// Queues one line; drops it (and counts) if the writer is behind.
    pub fn write(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Line(line)) {
            self.dropped.inc();
        }
    }

    /// Waits (up to `timeout`) until every line queued so far is written: before the process
    /// exits, so the requests of the last moments are not lost.
    pub fn flush(&self, timeout: Duration) {
        let (ack, done) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs dry (lines appear promptly at
/// low rates, in large writes at high ones).
fn write_lines(rx: Receiver<Msg>, sink: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, sink);
    while let Ok(first) = rx.recv() {
        let mut ok = true;
        let mut acks = Vec::new();
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Line(mut line) => {
                    // One piece with its newline: the buffer then only ever writes whole lines,
                    // so two processes appending to one file (an upgrade's handover) never
                    // interleave inside a line.
                    line.push('\n');
                    ok &= out.write_all(line.as_bytes()).is_ok();
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        if !(ok && out.flush().is_ok()) {
            tracing::warn!("access log write failed; lines lost");
        }
        for ack in acks {
            let _ = ack.send(());
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
    /// The release splitting the route, and the version that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    /// The pod tried last, or `faas=NAME` when a function answered.
    pub backend: Option<String>,
    pub attempts: u32,
    /// The gateway's error code when it answered with an error.
    pub error: Option<&'static str>,
    /// What went wrong, in full (pods, functions, causes): the operator's view of what the
    /// client was told only by `error` and a public message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
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
