//! `arena-pod`: one simulated esports API pod (see the `arena_pod` library).

use std::io::Write as _;
use std::process::ExitCode;

use arena_pod::{PodConfig, PodExit};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sample esports pod for Arena demos, tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "arena-pod")]
struct Cli {
    #[command(flatten)]
    pod: PodConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.pod) {
        Ok(PodExit::Shutdown) => ExitCode::SUCCESS,
        // A crash must look like one to supervisors and tests.
        Ok(PodExit::Crashed { .. }) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("arena-pod: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: PodConfig) -> std::io::Result<PodExit> {
    let runtime = if config.threads <= 1 {
        // One thread needs no work-stealing machinery.
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(config.threads))
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let pod = arena_pod::bind(config).await?;
        // Exactly one line: launchers and tests wait for it.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "arena-pod listening on {}", pod.local_addr())?;
        stdout.flush()?;
        drop(stdout);
        pod.run_until(shutdown_signal()).await
    })
}

/// Completes on Ctrl-C or SIGTERM so normal stops exit 0.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
