//! The tester's own abusive connections (`abuse:`): one thread of their own, apart from the
//! generator threads, holds every attack's connections from its `start` to its `stop`,
//! re-opening those the target closes and counting how each one ended.
//!
//! Nothing here touches the measured traffic: separate thread, runtime and sockets. Whether
//! the machine still kept up with the schedule is what the generator's lag flag already says.

mod conn;
mod fd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

pub use fd::{raise_fd_limit, FdLimit};

use super::{EngineError, MarkerSink, StopHandle};
use crate::scenario::{AbuseSpec, BaseUrl};

/// Descriptors kept free for the generator, the fleet's control calls and the reports.
const FD_MARGIN: u64 = 256;
/// How often the sampler reads how many connections are open (for the peak).
pub const PEAK_EVERY: Duration = Duration::from_millis(100);
/// Distinct connect/IO error messages kept per attack.
const MAX_SAMPLES: usize = 5;

/// How the connections of one attack ended, and what they were answered.
///
/// Every opened connection ends exactly once: `opened == refused + closed + stopped + errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AbuseCounts {
    /// Connections established (each re-open counts again).
    pub opened: u64,
    /// Connect attempts that failed or timed out (refused before the connection existed).
    pub connect_failed: u64,
    /// Closed by the target unanswered right after the connect (within [`REFUSED_WITHIN`]).
    pub refused: u64,
    /// Closed by the target later: after a 408/431, or quietly once idle.
    pub closed: u64,
    /// Still open when the attack stopped; closed by the tester.
    pub stopped: u64,
    /// Ended by another error on the tester's side.
    pub errors: u64,
    /// Most connections of this attack held at once, i.e. answered or open for
    /// [`REFUSED_WITHIN`] (sampled every [`PEAK_EVERY`]).
    pub peak_held: u64,
    /// First answer on a connection, by status (408 header timeout, 431 head too large, the
    /// one request of an idle keep-alive connection...).
    pub answered: BTreeMap<u16, u64>,
    /// A few distinct connect or IO errors.
    pub samples: Vec<String>,
}

impl AbuseCounts {
    /// Refused at connect or right after it.
    pub fn refused_all(&self) -> u64 {
        self.refused + self.connect_failed
    }

    /// Every opened connection ended one way.
    pub fn consistent(&self) -> bool {
        self.opened == self.refused + self.closed + self.stopped + self.errors
    }
}

/// A connection closed unanswered sooner than this after its connect was refused, not cut.
pub const REFUSED_WITHIN: Duration = Duration::from_millis(500);

/// One attack of the run.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    #[serde(flatten)]
    pub spec: AbuseSpec,
    /// Connections actually attempted: fewer than `connections` when the fd limit is too low.
    pub held_target: usize,
    /// When it ran, from the start of the load (scaled like the stages).
    pub start_s: f64,
    pub stop_s: f64,
    pub counts: AbuseCounts,
}

/// One second of every attack together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AbuseWindow {
    pub t: u64,
    /// Abusive connections held (not being refused) at the end of the second.
    pub held: u64,
    pub opened: u64,
    pub closed: u64,
    pub refused: u64,
}

/// Everything the abusive connections did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseResult {
    pub attacks: Vec<AttackResult>,
    pub windows: Vec<AbuseWindow>,
    pub fd_limit: Option<FdLimit>,
    /// Why fewer connections were held than asked, and the like.
    pub notes: Vec<String>,
}

/// Live counters of one attack, shared by its connection tasks and the sampler.
#[derive(Default)]
struct Live {
    opened: AtomicU64,
    connect_failed: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    stopped: AtomicU64,
    errors: AtomicU64,
    held: AtomicU64,
    peak_held: AtomicU64,
    answered: Mutex<BTreeMap<u16, u64>>,
    samples: Mutex<Vec<String>>,
}

impl Live {
    fn answered(&self, status: u16) {
        *self
            .answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_insert(0) += 1;
    }

    fn sample(&self, msg: String) {
        let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if s.len() < MAX_SAMPLES && !s.contains(&msg) {
            s.push(msg);
        }
    }

    fn counts(&self) -> AbuseCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AbuseCounts {
            opened: get(&self.opened),
            connect_failed: get(&self.connect_failed),
            refused: get(&self.refused),
            closed: get(&self.closed),
            stopped: get(&self.stopped),
            errors: get(&self.errors),
            peak_held: get(&self.peak_held),
            answered: self.answered.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            samples: self.samples.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

/// What the abuse thread needs from the plan and the run.
pub(crate) struct AbuseJob {
    pub attacks: Vec<AbuseSpec>,
    pub addr: SocketAddr,
    pub target: BaseUrl,
    /// Start of the load; attack offsets count from here.
    pub start: Instant,
    pub duration: Duration,
    pub stop: StopHandle,
    pub markers: MarkerSink,
    /// Connections the generator itself opens (kept clear of the fd budget).
    pub generator_connections: usize,
}

/// Starts the abuse thread (none without attacks); it ends by the end of the load.
pub(crate) fn spawn(job: AbuseJob) -> Result<Option<JoinHandle<AbuseResult>>, EngineError> {
    if job.attacks.is_empty() {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("abuse".into())
        .spawn(move || run(job))
        .map(Some)
        .map_err(|e| EngineError::Start(format!("abuse thread: {e}")))
}

fn run(job: AbuseJob) -> AbuseResult {
    let mut result = AbuseResult::default();
    let targets = budget(&job, &mut result);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            result.notes.push(format!("abuse runtime: {e}"));
            return result;
        }
    };
    let (attacks, windows) = rt.block_on(attack_all(&job, &targets));
    result.attacks = attacks;
    result.windows = windows;
    result
}

/// Connections per attack within the fd limit (raised to the hard limit if need be); a note
/// says so when the attacks had to be scaled down.
fn budget(job: &AbuseJob, result: &mut AbuseResult) -> Vec<usize> {
    let asked: u64 = job.attacks.iter().map(|a| a.connections as u64).sum();
    let others = fd::open_now() + job.generator_connections as u64 + FD_MARGIN;
    let limit = raise_fd_limit(asked + others);
    let room = limit.map_or(asked, |l| l.soft.saturating_sub(others));
    result.fd_limit = limit;
    if room >= asked {
        return job.attacks.iter().map(|a| a.connections).collect();
    }
    let (soft, hard) = limit.map_or((0, 0), |l| (l.soft, l.hard));
    result.notes.push(format!(
        "open-file limit {soft} (hard {hard}) leaves room for {room} of the {asked} abusive connections: \
         each attack is scaled down (raise the hard limit, e.g. `ulimit -Hn`, to hold them all)"
    ));
    job.attacks
        .iter()
        .map(|a| ((a.connections as u64 * room) / asked.max(1)) as usize)
        .collect()
}

/// Runs every attack and the per-second sampler to the end; the results in scenario order.
async fn attack_all(job: &AbuseJob, targets: &[usize]) -> (Vec<AttackResult>, Vec<AbuseWindow>) {
    let start = tokio::time::Instant::from_std(job.start);
    let mut lives = Vec::new();
    let mut tasks = Vec::new();
    for (spec, &n) in job.attacks.iter().zip(targets) {
        let (from, to) = spec.span(job.duration);
        let ctx = Arc::new(conn::AttackCtx::new(spec, &job.target, job.addr, start + from));
        lives.push(Arc::clone(&ctx));
        let (stop, markers) = (job.stop.clone(), job.markers.clone());
        let label = spec.label.clone();
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = watch::channel(false);
            if from < to && n > 0 {
                markers.push_at(from, label.clone());
                conn::open_all(&ctx, n, rx, &tx, &stop, start + to).await;
                markers.push_at(to, format!("{label} ends"));
            }
        }));
    }
    let last = job
        .attacks
        .iter()
        .map(|a| a.span(job.duration).1)
        .max()
        .unwrap_or_default();
    let sampler = tokio::spawn(sample(lives.clone(), start, last, job.stop.clone()));
    for t in tasks {
        let _ = t.await;
    }
    let windows = sampler.await.unwrap_or_default();
    let attacks = job
        .attacks
        .iter()
        .zip(targets)
        .zip(&lives)
        .map(|((spec, &n), ctx)| {
            let (from, to) = spec.span(job.duration);
            AttackResult {
                spec: spec.clone(),
                held_target: n,
                start_s: from.as_secs_f64(),
                stop_s: to.as_secs_f64(),
                counts: ctx.live.counts(),
            }
        })
        .collect();
    (attacks, windows)
}

/// Counts of every attack once a second (and the peak of open connections every
/// [`PEAK_EVERY`]) until the last one stops (`last`) or the run does.
async fn sample(
    lives: Vec<Arc<conn::AttackCtx>>,
    start: tokio::time::Instant,
    last: Duration,
    stop: StopHandle,
) -> Vec<AbuseWindow> {
    let per_second = (Duration::from_secs(1).as_nanos() / PEAK_EVERY.as_nanos()) as u32;
    let mut windows = Vec::new();
    let mut prev = AbuseWindow::default();
    for tick in 1u32.. {
        let at = (PEAK_EVERY * tick).min(last);
        tokio::time::sleep_until(start + at).await;
        for ctx in &lives {
            let l = &ctx.live;
            l.peak_held.fetch_max(l.held.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let done = at >= last || stop.is_stopped();
        if tick % per_second == 0 || done {
            let now = totals(&lives, u64::from((tick - 1) / per_second));
            windows.push(AbuseWindow {
                opened: now.opened - prev.opened,
                closed: now.closed - prev.closed,
                refused: now.refused - prev.refused,
                ..now
            });
            prev = now;
        }
        if done {
            break;
        }
    }
    windows
}

/// Every attack's counts so far, as the window of second `t` (held: open now).
fn totals(lives: &[Arc<conn::AttackCtx>], t: u64) -> AbuseWindow {
    let mut w = AbuseWindow {
        t,
        ..AbuseWindow::default()
    };
    for ctx in lives {
        let l = &ctx.live;
        w.held += l.held.load(Ordering::Relaxed);
        w.opened += l.opened.load(Ordering::Relaxed);
        w.closed += l.closed.load(Ordering::Relaxed);
        w.refused += l.refused.load(Ordering::Relaxed) + l.connect_failed.load(Ordering::Relaxed);
    }
    w
}
