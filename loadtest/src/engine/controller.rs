//! The run controller: starts the worker threads (and the abuse thread), feeds the
//! [`Observer`] ticks and complete windows while they run, and hands everything to the merger
//! at the end.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::abuse::{self, AbuseJob, AbuseResult};
use super::merge::{intended_in, MergeInput, Merger};
use super::plan::RunInfo;
use super::stats::{self, WindowAcc, WorkerMsg};
use super::{worker, EngineError, Observer, Plan, RunContext, RunResult, Shared, Window, LEAD, TICK};

/// Runs the plan to completion (or until stopped), calling `observer` along the way.
///
/// Needs a tokio runtime for the controller (any flavour); the load itself runs on
/// `plan.threads` dedicated threads, each with its own current-thread runtime.
pub async fn run(plan: Plan, observer: &mut dyn Observer) -> Result<RunResult, EngineError> {
    let blank = stats::histogram().map_err(|e| EngineError::Start(format!("histogram: {e}")))?;
    let duration = plan.load_duration();
    let intended_total = plan.intended_total();
    let (shared, info) = plan.split(blank.clone());
    let started_at = SystemTime::now();
    let start = Instant::now() + LEAD;
    info.markers.set_start(start);
    let ctx = RunContext {
        start,
        duration,
        target: info.target.clone(),
        markers: info.markers.clone(),
        stop: shared.stop.clone(),
    };
    let spans = info
        .abuse
        .iter()
        .map(|a| a.span(duration))
        .map(|(from, to)| (from.as_secs_f64(), to.as_secs_f64()))
        .collect();
    let abuse = start_abuse(&shared, &info, start, duration)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handles = spawn_workers(&shared, start, duration, tx)?;
    observer.on_start(&ctx);

    let mut control = Controller {
        merger: Merger::new(shared.threads, blank, spans),
        shared,
        ctx,
    };
    control.collect(rx, observer).await;
    let elapsed = start.elapsed();
    for h in handles {
        // Workers have sent `Done`; joining only reaps the threads.
        let _ = h.join();
    }
    // The attacks end by the end of the load: this waits at most for their last connections.
    let abuse = abuse.map(|h| {
        h.join().unwrap_or_else(|_| AbuseResult {
            notes: vec!["the abuse thread panicked: its counts are lost".into()],
            ..AbuseResult::default()
        })
    });
    let rest = control.merger.drain();
    control.publish(rest, observer);
    observer.on_finish(&control.ctx);
    let Controller { merger, shared, ctx } = control;
    let mut result = merger.finish(MergeInput {
        name: info.name,
        mode: shared.mode,
        target: info.target.to_string(),
        http: shared.http.clone(),
        stages: info.stages,
        threads: shared.threads,
        seed: shared.seed,
        started_at,
        duration,
        elapsed,
        intended_total,
        names: shared.mix.names().to_vec(),
        markers: info.markers.snapshot(),
        interrupted: ctx.stop.is_stopped(),
        schedule: &shared.schedule,
    });
    result.abuse = abuse;
    result.users = shared.users.as_ref().map(|t| t.summary());
    // Every request has settled: what is still queued for the collector goes out now.
    result.traces = shared.tracing.as_ref().map(|t| t.flush());
    Ok(result)
}

/// Starts the abuse thread when the plan has attacks.
fn start_abuse(
    shared: &Shared,
    info: &RunInfo,
    start: Instant,
    duration: Duration,
) -> Result<Option<JoinHandle<AbuseResult>>, EngineError> {
    abuse::spawn(AbuseJob {
        attacks: info.abuse.clone(),
        addr: shared.addr,
        target: info.target.clone(),
        start,
        duration,
        stop: shared.stop.clone(),
        markers: info.markers.clone(),
        generator_connections: shared.http.connections,
    })
}

/// Runs on a fresh current-thread runtime (for callers without one).
pub fn run_blocking(plan: Plan, observer: &mut dyn Observer) -> Result<RunResult, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::Start(format!("runtime: {e}")))?;
    rt.block_on(run(plan, observer))
}

/// Starts one generator thread per `shared.threads`, connections and in-flight budget split
/// evenly; on failure the ones already started are stopped.
fn spawn_workers(
    shared: &Arc<Shared>,
    start: Instant,
    duration: Duration,
    tx: UnboundedSender<WorkerMsg>,
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let (threads, http) = (shared.threads, &shared.http);
    let end = start + duration;
    let max_outstanding = http.max_in_flight.div_ceil(threads).max(1);
    let mut handles = Vec::with_capacity(threads);
    for id in 0..threads {
        let spec = worker::WorkerSpec {
            id,
            connections: http.connections / threads + usize::from(id < http.connections % threads),
            start,
            end,
            drain_deadline: end + http.timeout,
            max_outstanding,
        };
        let for_worker = Arc::clone(shared);
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{id}"))
            .spawn(move || worker::run(for_worker, spec, tx))
            .map_err(|e| {
                shared.stop.stop();
                EngineError::Start(format!("worker thread: {e}"))
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// The controller's side of a running plan: what the observer sees, and the merger.
struct Controller {
    merger: Merger,
    shared: Arc<Shared>,
    ctx: RunContext,
}

impl Controller {
    /// Merges worker messages and ticks the observer until every worker is done.
    async fn collect(&mut self, mut rx: UnboundedReceiver<WorkerMsg>, observer: &mut dyn Observer) {
        let mut ticker = tokio::time::interval_at(self.ctx.start.into(), TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut done = 0;
        while done < self.shared.threads {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(WorkerMsg::Window(w, acc)) => {
                        let ready = self.merger.window(w, *acc);
                        self.publish(ready, observer);
                    }
                    Some(WorkerMsg::Done(_, totals)) => {
                        self.merger.totals(*totals);
                        done += 1;
                    }
                    None => break,
                },
                _ = ticker.tick() => observer.on_tick(self.ctx.start.elapsed(), &self.ctx),
            }
        }
    }

    /// Completes merged seconds into windows: kept for the result, shown to the observer.
    fn publish(&mut self, ready: Vec<WindowAcc>, observer: &mut dyn Observer) {
        let (schedule, mode) = (&self.shared.schedule, self.shared.mode);
        for acc in ready {
            let window = Window::from_acc(&acc, intended_in(schedule, mode, acc.idx));
            self.merger.keep(acc, &window);
            observer.on_window(&window, &self.ctx);
        }
    }
}
