//! Shared per-pod state: identity, live fault knobs and counters.
//!
//! Everything on the request path is an atomic load or a refcount bump, so
//! the pod stays cheap under benchmark load.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{watch, Mutex, Notify};

use super::config::PodConfig;
use super::data;

/// Sentinel stored in `report_utilization` meaning "measure, don't force".
/// It is a NaN bit pattern, so it never collides with a valid fraction.
const NO_FORCED_UTILIZATION: u64 = u64::MAX;

/// Fault knobs that `POST /_pod/config` can change while serving.
pub(crate) struct Knobs {
    latency_us: AtomicU64,
    jitter_us: AtomicU64,
    /// `f64` bits.
    error_rate: AtomicU64,
    stuck: AtomicBool,
    /// `f64` bits or [`NO_FORCED_UTILIZATION`].
    report_utilization: AtomicU64,
    /// Wakes requests parked by `stuck` when it is cleared (or on shutdown).
    unstuck: Notify,
}

/// A consistent-enough copy of the knobs (each field is read atomically).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KnobSettings {
    pub latency: Duration,
    pub jitter: Duration,
    pub error_rate: f64,
    pub stuck: bool,
    pub report_utilization: Option<f64>,
}

impl Knobs {
    fn new(s: KnobSettings) -> Self {
        let knobs = Self {
            latency_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            error_rate: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
            report_utilization: AtomicU64::new(NO_FORCED_UTILIZATION),
            unstuck: Notify::new(),
        };
        knobs.apply(s);
        knobs
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    pub fn jitter(&self) -> Duration {
        Duration::from_micros(self.jitter_us.load(Ordering::Relaxed))
    }

    pub fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate.load(Ordering::Relaxed))
    }

    pub fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Acquire)
    }

    pub fn report_utilization(&self) -> Option<f64> {
        match self.report_utilization.load(Ordering::Relaxed) {
            NO_FORCED_UTILIZATION => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    pub fn snapshot(&self) -> KnobSettings {
        KnobSettings {
            latency: self.latency(),
            jitter: self.jitter(),
            error_rate: self.error_rate(),
            stuck: self.is_stuck(),
            report_utilization: self.report_utilization(),
        }
    }

    /// Stores all knobs; releases parked requests if `stuck` was cleared.
    pub fn apply(&self, s: KnobSettings) {
        self.latency_us.store(duration_us(s.latency), Ordering::Relaxed);
        self.jitter_us.store(duration_us(s.jitter), Ordering::Relaxed);
        self.error_rate.store(s.error_rate.to_bits(), Ordering::Relaxed);
        self.report_utilization.store(
            s.report_utilization.map_or(NO_FORCED_UTILIZATION, f64::to_bits),
            Ordering::Relaxed,
        );
        self.stuck.store(s.stuck, Ordering::Release);
        if !s.stuck {
            self.unstuck.notify_waiters();
        }
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Monotonic counters exposed by `GET /_pod/stats`.
#[derive(Default)]
pub(crate) struct Counters {
    /// API requests received (control-plane `/_pod/*` excluded).
    pub requests: AtomicU64,
    /// API requests currently being handled, parked ones included.
    pub in_flight: AtomicU64,
    /// Responses replaced by an injected `--fail-status` error.
    pub errors_injected: AtomicU64,
    /// API responses handed to the connection (drives `--crash-after`).
    pub served: AtomicU64,
}

/// Decrements `in_flight` on drop, so cancelled requests (client gave up)
/// are accounted for too.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    /// Registers one more in-flight request until the guard is dropped.
    pub fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Identity and precomputed response pieces of the pod.
pub(crate) struct Identity {
    pub name: String,
    pub version: String,
    /// `"pod":"<name>","version":"<label>"` with JSON escaping applied,
    /// spliced into every JSON body.
    pub json_fields: String,
    pub x_pod: HeaderValue,
    pub x_pod_version: HeaderValue,
}

impl Identity {
    pub(crate) fn new(name: String, version: String) -> io::Result<Self> {
        let header = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} {v:?} is not a valid HTTP header value"),
                )
            })
        };
        let x_pod = header(&name, "pod name")?;
        let x_pod_version = header(&version, "version label")?;
        let json_fields = format!(r#""pod":{},"version":{}"#, json_string(&name)?, json_string(&version)?);
        Ok(Self {
            name,
            version,
            json_fields,
            x_pod,
            x_pod_version,
        })
    }

    /// `{<fields>,"pod":..,"version":..}` — `fields` must be JSON members
    /// without braces (may be empty).
    pub fn object(&self, fields: &str) -> String {
        let mut out = String::with_capacity(fields.len() + self.json_fields.len() + 3);
        out.push('{');
        if !fields.is_empty() {
            out.push_str(fields);
            out.push(',');
        }
        out.push_str(&self.json_fields);
        out.push('}');
        out
    }
}

/// Bodies that never change for the life of the pod.
pub(crate) struct StaticBodies {
    pub matches: Bytes,
    pub healthz: Bytes,
    pub not_found: Bytes,
    pub method_not_allowed: Bytes,
    pub bad_id: Bytes,
    pub injected_error: Bytes,
}

/// Everything a request handler needs, shared behind one `Arc`.
pub(crate) struct PodState {
    pub id: Identity,
    pub knobs: Knobs,
    pub counters: Counters,
    pub bodies: StaticBodies,
    pub fail_status: http::StatusCode,
    /// Injected errors are shed answers (see `--shed`).
    pub shed: bool,
    pub load_report: bool,
    pub capacity: u32,
    pub crash_after: Option<u64>,
    /// Set once `--crash-after` is reached; later API requests are dropped.
    pub crashed: AtomicBool,
    /// Serializes `POST /_pod/config` read-modify-write cycles.
    pub config_lock: Mutex<()>,
    /// Flipped to `true` to stop accepting and drain connections.
    pub shutdown: watch::Sender<bool>,
}

impl PodState {
    /// Validates `config` and precomputes the static responses.
    pub fn new(config: &PodConfig, name: String) -> io::Result<Self> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let fail_status = http::StatusCode::from_u16(config.fail_status)
            .map_err(|e| invalid(format!("--fail-status {}: {e}", config.fail_status)))?;
        super::config::check_fraction(config.error_rate).map_err(invalid)?;
        if let Some(u) = config.report_utilization {
            super::config::check_fraction(u).map_err(invalid)?;
        }
        if config.capacity == 0 {
            return Err(invalid("--capacity must be at least 1".to_owned()));
        }

        let id = Identity::new(name, config.pod_version.clone())?;
        let bodies = StaticBodies {
            matches: Bytes::from(data::matches_body(&id)?),
            healthz: Bytes::from(id.object(r#""status":"ok""#)),
            not_found: Bytes::from(id.object(r#""error":"not found","status":404"#)),
            method_not_allowed: Bytes::from(id.object(r#""error":"method not allowed","status":405"#)),
            bad_id: Bytes::from(id.object(r#""error":"invalid id","status":400"#)),
            injected_error: Bytes::from(id.object(&format!(
                r#""error":"injected failure","status":{}"#,
                fail_status.as_u16()
            ))),
        };
        let knobs = Knobs::new(KnobSettings {
            latency: config.latency,
            jitter: config.jitter,
            error_rate: config.error_rate,
            stuck: config.stuck,
            report_utilization: config.report_utilization,
        });
        Ok(Self {
            id,
            knobs,
            counters: Counters::default(),
            bodies,
            fail_status: if config.shed {
                http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                fail_status
            },
            shed: config.shed,
            load_report: config.load_report,
            capacity: config.capacity,
            crash_after: config.crash_after,
            crashed: AtomicBool::new(false),
            config_lock: Mutex::new(()),
            shutdown: watch::Sender::new(false),
        })
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Parks while the pod is stuck. Returns `false` if the pod began shutting
    /// down instead, in which case the request must not be answered.
    pub async fn park_while_stuck(&self) -> bool {
        loop {
            let notified = self.knobs.unstuck.notified();
            tokio::pin!(notified);
            // Register before re-checking so a concurrent change is not missed.
            notified.as_mut().enable();
            if self.is_shutting_down() {
                return false;
            }
            if !self.knobs.is_stuck() {
                return true;
            }
            notified.await;
        }
    }

    /// Starts the drain; also releases stuck requests so they can bail out.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.knobs.unstuck.notify_waiters();
    }
}

/// JSON-encodes a string (quotes included).
pub(crate) fn json_string(s: &str) -> io::Result<String> {
    serde_json::to_string(s).map_err(io::Error::other)
}
