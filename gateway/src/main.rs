//! `arena-gateway`: command line front of the Arena gateway library.

use std::path::PathBuf;
use std::process::ExitCode;

use arena_gateway::{config, server, table};
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
    },
    /// Validate a configuration and report every problem; non-zero exit on error.
    Check {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
    /// Print the effective route table.
    Routes {
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
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
        Command::Routes { config } => match load(&config) {
            Ok(loaded) => {
                print!("{}", table::render(&loaded.config));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            arena_gateway::telemetry::init_logging();
            let loaded = match load(&config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            match server::build(loaded.config, Some(config), Some(loaded.text_hash)) {
                Ok(built) => server::serve(built),
                Err(e) => {
                    eprintln!("arena-gateway: cannot start: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
