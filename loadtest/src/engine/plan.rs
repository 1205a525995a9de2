//! Turning a scenario into a ready-to-run [`Plan`]: target resolved, stages scaled, request mix
//! compiled, thread count and seed fixed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::observe::{MarkerSink, StopHandle};
use super::trace::Tracing;
use super::{EngineError, RequestMix, Schedule};
use crate::release::UserTracker;
use crate::scenario::{AbuseSpec, BaseUrl, ErrorRule, HttpSettings, Mode, Scenario, Stage};

/// Overrides applied when turning a scenario into a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Base URL; wins over the scenario's `target:` (a fleet or `--target` sets it).
    pub target: Option<String>,
    /// Generator threads (default: CPU count, at most one per connection).
    pub threads: Option<usize>,
    /// Multiplies every stage duration (e.g. 0.1 for a quick rehearsal).
    pub duration_scale: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            target: None,
            threads: None,
            duration_scale: 1.0,
        }
    }
}

/// Read-only plan data shared by the worker threads.
pub(crate) struct Shared {
    pub mode: Mode,
    pub addr: SocketAddr,
    pub http: HttpSettings,
    pub mix: RequestMix,
    pub schedule: Schedule,
    pub errors: ErrorRule,
    pub threads: usize,
    pub seed: u64,
    pub stop: StopHandle,
    pub blank: Histogram<u64>,
    /// Per-user versions of the followed release (with `release.users`).
    pub users: Option<Arc<UserTracker>>,
    /// Client spans (with `tracing:`).
    pub tracing: Option<Tracing>,
}

/// A ready-to-run load plan.
pub struct Plan {
    pub name: String,
    pub mode: Mode,
    pub target: BaseUrl,
    pub addr: SocketAddr,
    pub http: HttpSettings,
    /// Stages with `duration_scale` applied.
    pub stages: Vec<Stage>,
    pub duration_scale: f64,
    pub threads: usize,
    pub seed: u64,
    pub errors: ErrorRule,
    /// The scenario's attacks, offsets scaled like the stages.
    pub abuse: Vec<AbuseSpec>,
    mix: RequestMix,
    schedule: Schedule,
    stop: StopHandle,
    markers: MarkerSink,
    users: Option<Arc<UserTracker>>,
    tracing: Option<Tracing>,
}

/// The part of a plan only the controller keeps: labels of the result, and the marker sink.
pub(super) struct RunInfo {
    pub name: String,
    pub target: BaseUrl,
    pub stages: Vec<Stage>,
    pub markers: MarkerSink,
    pub abuse: Vec<AbuseSpec>,
}

impl Plan {
    /// Builds a plan; the target comes from `opts.target`, else from the scenario.
    pub fn new<F, T>(s: &Scenario<F, T>, opts: &PlanOptions) -> Result<Plan, EngineError> {
        let (target, addr) = resolve_target(opts.target.clone().or_else(|| s.target.clone()))?;
        let scale = opts.duration_scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(EngineError::Plan(format!(
                "duration scale must be above 0, got {scale}"
            )));
        }
        let stages: Vec<Stage> = s
            .stages
            .iter()
            .map(|st| Stage {
                duration: st.duration.mul_f64(scale),
                ..*st
            })
            .collect();
        let user_ids = s
            .release
            .as_ref()
            .and_then(|r| Some((r.name.as_str(), r.users.as_ref()?)));
        let mix = RequestMix::new(
            &s.requests,
            &s.vars,
            &target,
            s.http.version,
            user_ids.map(|(_, u)| &u.header),
        )
        .map_err(|e| EngineError::Plan(e.0))?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = opts.threads.unwrap_or(cpus).clamp(1, s.http.connections.max(1));
        let seed = s.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let tracing = s
            .tracing
            .as_ref()
            .map(|spec| Tracing::start(spec, &s.name, &target, mix.names()))
            .transpose()
            .map_err(|e| EngineError::Start(format!("trace exporter: {e}")))?;
        Ok(Plan {
            name: s.name.clone(),
            mode: s.mode,
            target,
            addr,
            http: s.http.clone(),
            schedule: Schedule::new(&stages, 1.0),
            stages,
            duration_scale: scale,
            threads,
            seed,
            errors: s.errors,
            abuse: scaled_abuse(&s.abuse, scale)?,
            mix,
            stop: StopHandle::default(),
            markers: MarkerSink::default(),
            users: user_ids.map(|(release, u)| Arc::new(UserTracker::new(release, u.ids))),
            tracing,
        })
    }

    /// Scheduled load duration (after scaling).
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Requests the open-loop schedule will send (0 in closed loop).
    pub fn intended_total(&self) -> u64 {
        match self.mode {
            Mode::Open => self.schedule.total(),
            Mode::Closed => 0,
        }
    }

    /// Stops the run early when triggered (e.g. from a Ctrl-C handler).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Where fault markers go; usable before and during the run.
    pub fn markers(&self) -> MarkerSink {
        self.markers.clone()
    }

    /// Request names of the mix, in scenario order.
    pub fn request_names(&self) -> &[String] {
        self.mix.names()
    }

    /// Load duration as scheduled: the stages, or the open-loop schedule if it runs longer.
    pub(super) fn load_duration(&self) -> Duration {
        self.schedule.duration().max(self.duration())
    }

    /// Splits the plan into what the worker threads share and what the controller keeps;
    /// `blank` is the empty histogram the workers clone.
    pub(super) fn split(self, blank: Histogram<u64>) -> (Arc<Shared>, RunInfo) {
        let shared = Shared {
            mode: self.mode,
            addr: self.addr,
            http: self.http,
            mix: self.mix,
            schedule: self.schedule,
            errors: self.errors,
            threads: self.threads,
            seed: self.seed,
            stop: self.stop,
            blank,
            users: self.users,
            tracing: self.tracing,
        };
        let info = RunInfo {
            name: self.name,
            target: self.target,
            stages: self.stages,
            markers: self.markers,
            abuse: self.abuse,
        };
        (Arc::new(shared), info)
    }
}

/// The attacks with offsets scaled; each source address must be one this machine can bind.
fn scaled_abuse(abuse: &[AbuseSpec], scale: f64) -> Result<Vec<AbuseSpec>, EngineError> {
    let mut checked: Vec<std::net::IpAddr> = Vec::new();
    for a in abuse {
        for ip in &a.sources {
            if checked.contains(ip) {
                continue;
            }
            std::net::TcpListener::bind(SocketAddr::new(*ip, 0)).map_err(|e| {
                EngineError::Plan(format!(
                    "abuse source address {ip} cannot be bound here ({e}); use addresses of this machine, e.g. 127.0.0.x"
                ))
            })?;
            checked.push(*ip);
        }
    }
    Ok(abuse
        .iter()
        .map(|a| AbuseSpec {
            start: a.start.mul_f64(scale),
            stop: a.stop.map(|d| d.mul_f64(scale)),
            ..a.clone()
        })
        .collect())
}

/// Parses the target URL and resolves its host to the address the workers connect to.
fn resolve_target(text: Option<String>) -> Result<(BaseUrl, SocketAddr), EngineError> {
    let text = text
        .ok_or_else(|| EngineError::Target("the scenario has no `target` and none was given (--target URL)".into()))?;
    let target = BaseUrl::parse(&text).map_err(|(m, h)| EngineError::Target(format!("{m} ({h})")))?;
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| EngineError::Target(format!("cannot resolve `{}`: {e}", target.host)))?
        .next()
        .ok_or_else(|| EngineError::Target(format!("`{}` resolves to no address", target.host)))?;
    Ok((target, addr))
}
