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
    /// Make a dev CA and workload certificates for mTLS between the gateway and sidecars.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
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

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// A new CA in DIR: ca.pem and ca-key.pem (never overwrites a CA key).
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value = "arena")]
        trust_domain: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// A workload certificate signed by DIR's CA: NAME.pem (chain) and NAME-key.pem.
    Issue {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// The workload's identity, e.g. spiffe://arena/ns/edge/sa/gateway.
        #[arg(long, value_name = "ID")]
        spiffe_id: String,
        /// Extra DNS names (the SPIFFE ID's DNS form is always added).
        #[arg(long, value_name = "HOST")]
        dns: Vec<String>,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

fn certs(command: CertsCommand) -> ExitCode {
    let result = match command {
        CertsCommand::Init {
            dir,
            trust_domain,
            days,
        } => arena_sidecar::certs::init(&dir, &trust_domain, days)
            .map(|()| format!("CA written to {}/ca.pem (key ca-key.pem, mode 0600)", dir.display())),
        CertsCommand::Issue {
            dir,
            name,
            spiffe_id,
            dns,
            days,
        } => arena_sidecar::certs::issue(&dir, &name, &spiffe_id, &dns, days).map(|c| {
            format!(
                "{} and {} (serial {}, SANs {})",
                c.cert_path.display(),
                c.key_path.display(),
                c.serial_hex,
                c.sans.join(", ")
            )
        }),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("arena-sidecar certs: {e}");
            ExitCode::FAILURE
        }
    }
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
        Command::Certs { command } => certs(command),
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
    let outbound = loaded
        .config
        .outbound
        .as_ref()
        .and_then(|o| o.listeners.first())
        .map(|l| l.address);
    tracing::info!(listen = %inbound.listen, app = %inbound.app, outbound = ?outbound, admin = %loaded.config.admin.address, "arena-sidecar starting");
    match arena_sidecar::server::build(loaded, Some(path)) {
        Ok(built) => arena_sidecar::server::serve(built),
        Err(e) => {
            eprintln!("arena-sidecar: {e}");
            ExitCode::from(2)
        }
    }
}
