//! `arena-gateway`: command line front of the Arena gateway library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use arena_gateway::{config, server, table, upgrade};
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "arena-gateway",
    version,
    about = "Load-aware edge gateway for esports data APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the given configuration.
    Run {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// Take over the listening sockets of the gateway running now: wait on
        /// `server.upgrade_sock` until it is sent SIGQUIT (it then hands them over and drains).
        #[arg(long)]
        upgrade: bool,
    },
    /// Zero-downtime upgrade to this binary (and this configuration): starts `run --upgrade`,
    /// then has the gateway running as PID hand over its sockets and drain. If the new process
    /// fails first, the running one is left serving; non-zero exit.
    Upgrade {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// The running gateway (systemd: `$MAINPID`).
        #[arg(long)]
        pid: u32,
        /// Longest wait for each step: the new process getting ready, then the handover.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Validate a configuration and report every problem; non-zero exit on error.
    Check {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
    /// Watch and steer releases through the admin API (`/releases`).
    Canary {
        #[command(subcommand)]
        action: CanaryCmd,
        /// The admin API of a running gateway.
        #[arg(long, global = true, default_value = "http://127.0.0.1:9901")]
        admin: String,
        /// Environment variable holding the admin token.
        #[arg(long, global = true, default_value = "ARENA_ADMIN_TOKEN")]
        token_env: String,
        /// Print the admin API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print the effective route table.
    Routes {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CanaryCmd {
    /// Every release (or one): state, weight, step, both versions' live windows, last verdict.
    Status { name: Option<String> },
    /// Hold the canary at this weight (e.g. `25%`); the release is paused there.
    Set { name: String, weight: String },
    /// Stop stepping (the weight stays; analysis goes on).
    Pause { name: String },
    /// Step on from the current weight.
    Resume { name: String },
    /// 100 % canary; then make the canary the stable cluster in the config.
    Promote { name: String },
    /// 0 % canary now.
    Rollback {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

fn load(path: &std::path::Path) -> Result<config::Loaded, ExitCode> {
    config::load_file(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                let c = &loaded.config;
                println!(
                    "{}: ok ({} listener(s), {} cluster(s), {} route(s), {} warning(s))",
                    config.display(),
                    c.listeners.len(),
                    c.clusters.len(),
                    c.routes.len(),
                    loaded.warnings.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Canary {
            action,
            admin,
            token_env,
            json,
        } => {
            use arena_gateway::canary::{self, Action};
            let action = match action {
                CanaryCmd::Status { name } => Action::Status(name),
                CanaryCmd::Set { name, weight } => Action::Set { name, weight },
                CanaryCmd::Pause { name } => Action::Pause(name),
                CanaryCmd::Resume { name } => Action::Resume(name),
                CanaryCmd::Promote { name } => Action::Promote(name),
                CanaryCmd::Rollback { name, reason } => Action::Rollback { name, reason },
            };
            let token = std::env::var(&token_env).ok().filter(|t| !t.is_empty());
            match canary::run(&admin, token, &action, json) {
                Ok(out) => {
                    print!("{out}");
                    if !out.ends_with('\n') {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err((message, code)) => {
                    eprintln!("arena-gateway canary: {message}");
                    ExitCode::from(code)
                }
            }
        }
        Command::Routes { config } => match load(&config) {
            Ok(loaded) => {
                print!("{}", table::render(&loaded.config));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Upgrade { config, pid, timeout } => {
            let loaded = match load(&config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let sock = &loaded.config.server.upgrade_sock;
            match upgrade::upgrade(&config, sock, pid, timeout) {
                Ok(new) => {
                    println!("arena-gateway: upgraded: pid {pid} -> {new} (pid {pid} drains and exits)");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("arena-gateway: upgrade failed: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config, upgrade } => {
            arena_gateway::telemetry::init_logging();
            let loaded = match load(&config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            match server::build(loaded.config, Some(config), Some(loaded.text_hash), upgrade) {
                Ok(built) => server::serve(built),
                Err(e) => {
                    eprintln!("arena-gateway: cannot start: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
