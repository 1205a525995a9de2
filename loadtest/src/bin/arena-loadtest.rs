//! `arena-loadtest`: runs a scenario file against a target and reports (see `arena_loadtest`).
//!
//! Exit codes: 0 all thresholds passed, 1 a threshold failed, 2 invalid run or bad input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use arena_loadtest::engine::Observer;
use arena_loadtest::engine::{self, progress::Progress, EngineError, Fanout, Plan, PlanOptions, RunResult, StopHandle};
use arena_loadtest::fleet::{Fault, Fleet, FleetHooks, FleetSpec, Timeline};
use arena_loadtest::release::{PollTarget, ReleasePoller};
use arena_loadtest::report::{Report, EXIT_INVALID, EXIT_PASS};
use arena_loadtest::scenario::{self, Scenario};
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arena load tester: open/closed-loop HTTP load from scenario files.
#[derive(Debug, Parser)]
#[command(name = "arena-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario and write JSON + HTML reports.
    Run {
        /// Scenario file (YAML).
        scenario: PathBuf,
        /// Directory for the reports.
        #[arg(long, value_name = "DIR", default_value = "loadtest/results")]
        out: PathBuf,
        /// Generator threads (default: number of CPUs).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
        /// Base URL, overriding the scenario's `target`.
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Multiply every stage duration (e.g. 0.1 for a quick rehearsal).
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        duration_scale: f64,
    },
    /// Validate a scenario file and print every problem.
    Check {
        /// Scenario file (YAML).
        scenario: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { scenario } => check(scenario),
        Command::Run {
            scenario,
            out,
            threads,
            quiet,
            target,
            duration_scale,
        } => {
            let opts = PlanOptions {
                target,
                threads: threads.map(usize::from),
                duration_scale,
            };
            ExitCode::from(run(scenario, out, opts, quiet).unwrap_or_else(|code| code))
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    match scenario::load_file(&path, &FleetHooks) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: scenario `{}` is valid ({} stage(s), {} request kind(s), {} attack(s), {} threshold(s), {:?} of load)",
                path.display(),
                s.name,
                s.stages.len(),
                s.requests.len(),
                s.abuse.len(),
                s.thresholds.len(),
                s.duration()
            );
            ExitCode::from(EXIT_PASS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// `run`: every step either moves on or has reported why the run is invalid (`Err(code)`).
fn run(path: PathBuf, out: PathBuf, mut opts: PlanOptions, quiet: bool) -> Result<u8, u8> {
    let scenario = scenario::load_file(&path, &FleetHooks).map_err(|errors| {
        eprintln!("{errors}");
        EXIT_INVALID
    })?;
    for w in &scenario.warnings {
        eprintln!("{w}");
    }
    // Room for the abusive connections, raised before the fleet starts so that its gateway
    // (which inherits the limit) can hold them too; the engine reports any shortfall.
    let abusive: u64 = scenario.abuse.iter().map(|a| a.connections as u64).sum();
    if abusive > 0 {
        let _ = engine::abuse::raise_fd_limit(2 * abusive + scenario.http.connections as u64 + 1024);
    }
    let fleet = start_fleet(&scenario)?;
    if opts.target.is_none() {
        opts.target = fleet.as_ref().and_then(|f| f.lock().ok()?.target());
    }
    let plan = Plan::new(&scenario, &opts).map_err(invalid)?;
    let mut poller = release_poller(&scenario, fleet.as_ref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| invalid(format!("runtime: {e}")))?;
    let faults = scenario.faults.clone().unwrap_or_default();
    let mut result = rt
        .block_on(drive(plan, fleet.as_ref(), faults, quiet, poller.as_mut()))
        .map_err(invalid)?;
    result.release = poller.map(ReleasePoller::into_timeline);
    let report = Report::new(&scenario, &result);
    print!("{}", report.summary());
    match report.write(&out) {
        Ok((json, html)) => println!("  reports    {}\n             {}", html.display(), json.display()),
        Err(e) => return Err(invalid(format!("cannot write reports to {}: {e}", out.display()))),
    }
    Ok(report.exit_code())
}

/// Reports why the run cannot go on; its exit code.
fn invalid(why: impl std::fmt::Display) -> u8 {
    eprintln!("arena-loadtest: {why}");
    EXIT_INVALID
}

type SharedFleet = Arc<Mutex<Fleet>>;

/// A scenario with a fleet brings up its own gateway, pods, functions and DNS first.
fn start_fleet(scenario: &Scenario<FleetSpec, Vec<Fault>>) -> Result<Option<SharedFleet>, u8> {
    let Some(spec) = &scenario.fleet else { return Ok(None) };
    eprintln!("arena-loadtest: starting the fleet…");
    match Fleet::start(spec) {
        Ok(f) => Ok(Some(Arc::new(Mutex::new(f)))),
        Err(e) => Err(invalid(format!("fleet: {e}"))),
    }
}

/// The poller of the scenario's `release:`: on its `admin:` address, else on the fleet's
/// gateway with the fleet's token.
fn release_poller(
    scenario: &Scenario<FleetSpec, Vec<Fault>>,
    fleet: Option<&SharedFleet>,
) -> Result<Option<ReleasePoller>, u8> {
    let Some(watch) = &scenario.release else {
        return Ok(None);
    };
    let from_fleet = fleet.and_then(|f| {
        let f = f.lock().ok()?;
        Some((f.admin()?, f.admin_token()))
    });
    let (admin, fleet_token) = match (watch.admin, from_fleet) {
        (Some(addr), _) => (addr, None),
        (None, Some((addr, token))) => (addr, Some(token.to_string())),
        (None, None) => return Err(invalid("release: no admin address to poll (set `release.admin`)")),
    };
    let token = match &watch.token_env {
        Some(var) => Some(std::env::var(var).map_err(|_| invalid(format!("release.token_env: `{var}` is not set")))?),
        None => fleet_token,
    };
    Ok(Some(ReleasePoller::new(PollTarget {
        admin,
        token,
        name: watch.name.clone(),
        every: watch.poll,
    })))
}

/// Runs the plan with the progress line and, with a fleet, the fault timeline; with a
/// `release:`, its poller.
async fn drive(
    plan: Plan,
    fleet: Option<&SharedFleet>,
    faults: Vec<Fault>,
    quiet: bool,
    poller: Option<&mut ReleasePoller>,
) -> Result<RunResult, EngineError> {
    stop_on_ctrl_c(plan.stop_handle());
    let mut progress = Progress::new(!quiet);
    let mut timeline = match fleet {
        Some(fleet) if !faults.is_empty() => {
            // Fault offsets scale with the stages.
            let faults = faults
                .into_iter()
                .map(|mut f| {
                    f.at = f.at.mul_f64(plan.duration_scale);
                    f
                })
                .collect();
            Some(Timeline::new(Arc::clone(fleet), faults))
        }
        _ => None,
    };
    let mut observers: Vec<&mut dyn Observer> = vec![&mut progress];
    if let Some(t) = timeline.as_mut() {
        observers.push(t);
    }
    if let Some(p) = poller {
        observers.push(p);
    }
    engine::run(plan, &mut Fanout(observers)).await
}

/// First Ctrl-C: stop and still report; second: leave at once.
fn stop_on_ctrl_c(stop: StopHandle) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\narena-loadtest: stopping (Ctrl-C again to abort)");
            stop.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}
