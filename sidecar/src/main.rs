//! `arena-sidecar`: run, check a config, replay captured requests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arena's mesh sidecar: load reports, concurrency limits and stuck-request capture for the app
/// beside it.
#[derive(Debug, Parser)]
#[command(name = "arena-sidecar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve with a configuration file.
    Run {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem (exit 1 on errors).
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Send the captured requests of DIR again, oldest first.
    Replay {
        dir: PathBuf,
        /// Where to send them, e.g. http://127.0.0.1:8080 (a local build of the app).
        #[arg(long, value_name = "URL")]
        to: String,
        /// Only the capture of this request id.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        #[arg(long, value_name = "DUR", default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Send the captured Host header instead of the target's.
        #[arg(long)]
        keep_host: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match arena_sidecar::config::load_file(&config) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for d in &errors.0 {
                    eprintln!("{d}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Replay {
            dir,
            to,
            id,
            timeout,
            keep_host,
        } => {
            let opts = arena_sidecar::replay::Options {
                dir,
                to,
                id,
                timeout,
                keep_host,
            };
            ExitCode::from(arena_sidecar::replay::run(&opts, &mut std::io::stdout()))
        }
        Command::Run { config } => run(config),
    }
}

fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,pingora=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let loaded = match arena_sidecar::config::load_file(&path) {
        Ok(l) => l,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let inbound = &loaded.config.inbound;
    tracing::info!(listen = %inbound.listen, app = %inbound.app, admin = %loaded.config.admin.address, "arena-sidecar starting");
    match arena_sidecar::server::build(loaded.config, Some(path)) {
        Ok(built) => arena_sidecar::server::serve(built),
        Err(e) => {
            eprintln!("arena-sidecar: {e}");
            ExitCode::from(2)
        }
    }
}
