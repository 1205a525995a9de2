//! Stuck-request capture: a request cut at `request_timeout` is written — method, path,
//! headers (secrets redacted), the first `max_body_bytes` of its body, its request id and time
//! — into a bounded ring of JSON files, so the case can be replayed against a local build
//! (`arena-sidecar replay`). A writer thread behind a bounded channel does the file work; when
//! it falls behind, captures are dropped and counted, never queued without bound.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use pingora::http::RequestHeader;
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};

use crate::config::CaptureSpec;

/// Captures waiting for the writer; beyond this they are dropped.
const CHANNEL: usize = 64;
pub const FORMAT_VERSION: u32 = 1;
pub const REDACTED: &str = "<redacted>";

/// The first bytes of a request body, kept as it streams to the app (`Bytes` slices: no copy).
#[derive(Debug, Default)]
pub struct BodyTap {
    chunks: Vec<Bytes>,
    kept: usize,
    seen: u64,
    limit: usize,
}

impl BodyTap {
    pub fn new(limit: usize) -> Self {
        BodyTap {
            limit,
            ..Self::default()
        }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        self.seen += chunk.len() as u64;
        let room = self.limit - self.kept;
        if room > 0 && !chunk.is_empty() {
            let take = room.min(chunk.len());
            self.chunks.push(chunk.slice(..take));
            self.kept += take;
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.kept);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

/// A header value: text when it is UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Text(String),
    Binary { b64: String },
}

impl Value {
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Value::Text(t) => Some(t.as_bytes().to_vec()),
            Value::Binary { b64 } => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
        }
    }
}

/// One capture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub id: String,
    pub time_ms: u64,
    pub reason: String,
    pub elapsed_ms: u64,
    pub timeout_ms: u64,
    pub app: String,
    pub client: Option<String>,
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, Value)>,
    pub body_b64: String,
    pub body_bytes_seen: u64,
    pub body_truncated: bool,
}

/// What the proxy knows of the cut request.
pub struct Cut<'a> {
    pub id: &'a str,
    pub head: &'a RequestHeader,
    pub body: Option<&'a BodyTap>,
    pub elapsed_ms: u64,
    pub timeout_ms: u64,
    pub app: String,
    pub client: Option<String>,
}

impl Record {
    pub fn of(cut: &Cut<'_>, redact: &[String], now_ms: u64) -> Record {
        let headers = cut
            .head
            .headers
            .iter()
            .map(|(name, value)| {
                let name = name.as_str().to_string();
                let value = if redact.contains(&name) {
                    Value::Text(REDACTED.into())
                } else {
                    match value.to_str() {
                        Ok(t) => Value::Text(t.to_string()),
                        Err(_) => Value::Binary {
                            b64: base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
                        },
                    }
                };
                (name, value)
            })
            .collect();
        let body = cut.body.map(BodyTap::body).unwrap_or_default();
        let seen = cut.body.map_or(0, |b| b.seen);
        Record {
            v: FORMAT_VERSION,
            id: cut.id.to_string(),
            time_ms: now_ms,
            reason: "timeout".into(),
            elapsed_ms: cut.elapsed_ms,
            timeout_ms: cut.timeout_ms,
            app: cut.app.clone(),
            client: cut.client.clone(),
            method: cut.head.method.as_str().to_string(),
            path: cut
                .head
                .uri
                .path_and_query()
                .map_or_else(|| cut.head.uri.to_string(), |p| p.as_str().to_string()),
            version: format!("{:?}", cut.head.version),
            headers,
            body_truncated: seen > body.len() as u64,
            body_bytes_seen: seen,
            body_b64: base64::engine::general_purpose::STANDARD.encode(&body),
        }
    }

    pub fn body(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(&self.body_b64).ok()
    }
}

/// The file name of a record: time first, so names sort oldest first.
pub fn file_name(r: &Record) -> String {
    let id: String =
        r.id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
    format!("{:013}-{}.json", r.time_ms, if id.is_empty() { "request" } else { &id })
}

/// The capture writer.
pub struct Captures {
    tx: SyncSender<(Arc<CaptureSpec>, Record)>,
    results: IntCounterVec,
}

impl Captures {
    /// Starts the writer thread; `results` counts `written`, `dropped`, `failed`.
    pub fn start(results: IntCounterVec) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<(Arc<CaptureSpec>, Record)>(CHANNEL);
        let counted = results.clone();
        std::thread::Builder::new().name("arena-capture".into()).spawn(move || {
            for (spec, record) in rx {
                match write(&spec, &record) {
                    Ok(path) => {
                        tracing::warn!(request_id = %record.id, file = %path.display(), "request cut at the timeout; captured");
                        counted.with_label_values(&["written"]).inc();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, dir = %spec.dir.display(), "cannot write a capture");
                        counted.with_label_values(&["failed"]).inc();
                    }
                }
            }
        })?;
        Ok(Captures { tx, results })
    }

    pub fn submit(&self, spec: Arc<CaptureSpec>, record: Record) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send((spec, record)) {
            self.results.with_label_values(&["dropped"]).inc();
        }
    }
}

/// Writes one record (temp file, then rename: a reader never sees half a file) and trims the
/// ring to `max_files`.
pub fn write(spec: &CaptureSpec, record: &Record) -> std::io::Result<PathBuf> {
    fs::create_dir_all(&spec.dir)?;
    let mut name = file_name(record);
    let mut n = 1;
    while spec.dir.join(&name).exists() {
        name = format!("{}-{n}.json", file_name(record).trim_end_matches(".json"));
        n += 1;
    }
    let path = spec.dir.join(&name);
    let tmp = spec.dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, record)?;
        f.write_all(b"\n")?;
        f.sync_data()?;
    }
    fs::rename(&tmp, &path)?;
    trim(&spec.dir, spec.max_files as usize)?;
    Ok(path)
}

/// The capture files of `dir`, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn trim(dir: &Path, max: usize) -> std::io::Result<()> {
    let files = list(dir)?;
    if files.len() > max {
        for old in &files[..files.len() - max] {
            fs::remove_file(old)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn head() -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/v1/matches/42?live=1", None).unwrap();
        h.insert_header("authorization", "Bearer s3cret").unwrap();
        h.insert_header("x-request-id", "abc-1").unwrap();
        h.insert_header("x-bin", http::HeaderValue::from_bytes(&[0xff, 0x41]).unwrap())
            .unwrap();
        h
    }

    #[test]
    fn a_record_keeps_the_head_and_the_body_prefix_and_redacts_secrets() {
        let mut tap = BodyTap::new(5);
        tap.push(&Bytes::from_static(b"abc"));
        tap.push(&Bytes::from_static(b"defgh"));
        let h = head();
        let cut = Cut {
            id: "abc-1",
            head: &h,
            body: Some(&tap),
            elapsed_ms: 300,
            timeout_ms: 300,
            app: "127.0.0.1:8080".into(),
            client: Some("10.0.0.1".into()),
        };
        let r = Record::of(&cut, &["authorization".to_string()], 1_700_000_000_000);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/matches/42?live=1");
        assert_eq!(r.body().unwrap(), b"abcde");
        assert_eq!(r.body_bytes_seen, 8);
        assert!(r.body_truncated);
        let auth = r.headers.iter().find(|(n, _)| n == "authorization").unwrap();
        assert_eq!(auth.1, Value::Text(REDACTED.into()));
        let bin = r.headers.iter().find(|(n, _)| n == "x-bin").unwrap();
        assert_eq!(bin.1.bytes().unwrap(), vec![0xff, 0x41]);
        assert_eq!(file_name(&r), "1700000000000-abc-1.json");
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("s3cret"));
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    }

    #[test]
    fn the_ring_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let spec = CaptureSpec {
            dir: dir.path().join("captures"),
            max_files: 2,
            max_body_bytes: 16,
            redact: vec![],
        };
        let h = head();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let cut = Cut {
                id,
                head: &h,
                body: None,
                elapsed_ms: 1,
                timeout_ms: 1,
                app: "app".into(),
                client: None,
            };
            write(&spec, &Record::of(&cut, &[], 1000 + i as u64)).unwrap();
        }
        let names: Vec<String> = list(&spec.dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0000000001001-b.json", "0000000001002-c.json"]);
    }
}
