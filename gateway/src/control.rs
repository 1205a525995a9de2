//! The control plane: one dedicated thread with its own small runtime that runs DNS
//! refreshers, reload triggers (SIGHUP, debounced file watch), drained-pod sweeps and the
//! admin UI's per-second samples, so none of that work competes with the proxy's request
//! threads.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::state::Gateway;

/// Starts the control plane thread. The SIGHUP handler is installed before this returns, so a
/// reload signal sent right after start-up cannot kill the process.
pub fn start(gw: Arc<Gateway>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hangups = {
        let _enter = rt.enter();
        signal(SignalKind::hangup())?
    };
    std::thread::Builder::new()
        .name("arena-control".into())
        .spawn(move || {
            rt.block_on(run(gw, hangups));
        })?;
    Ok(())
}

async fn run(gw: Arc<Gateway>, mut hangups: tokio::signal::unix::Signal) {
    gw.set_control_runtime(tokio::runtime::Handle::current());
    gw.start_discovery(gw.current_dns_clusters());

    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let debounce = gw.snapshot().config.server.watch_debounce;
    // Keep the watcher alive for the life of the thread.
    let _watcher = match (&gw.config_path, debounce.is_zero()) {
        (Some(path), false) => watch(path, debounce, tx.clone()),
        _ => None,
    };

    let sweeper = {
        let gw = Arc::clone(&gw);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                let snap = gw.snapshot();
                arena_core::discovery::sweep(&snap.clusters);
                n += 1;
                if n.is_multiple_of(5) && snap.tls_files_changed() {
                    // A rotated pod CA or client certificate (a Secret volume updates in place):
                    // reload, which reads and checks the new files before they replace the old.
                    tracing::info!("cluster TLS files changed: reloading");
                    let _ = gw.reload("cert_rotation");
                }
                if n.is_multiple_of(10) {
                    // Rate-limit keys whose bucket is full again carry no state: forget them,
                    // so a flood of one-off client IPs cannot grow memory without bound.
                    for route in snap.routes.iter() {
                        if let Some(limit) = &route.limit {
                            limit.sweep();
                        }
                    }
                }
            }
        }
    };
    tokio::spawn(sweeper);
    tokio::spawn(crate::rollout::run(Arc::clone(&gw)));
    tokio::spawn(crate::admin::live::run(Arc::clone(&gw)));

    loop {
        tokio::select! {
            Some(()) = hangups.recv() => {
                let _ = gw.reload("sighup");
            }
            Some(()) = rx.recv() => {
                let _ = gw.reload_if_changed("watch");
            }
            else => break,
        }
    }
}

/// Watches the directory holding the config file and signals after `debounce` of quiet.
///
/// The directory as the operator named it is always watched: editors replace the file by
/// rename, and a Kubernetes ConfigMap volume swaps a `..data` symlink to a new timestamped
/// directory and deletes the old one. When the file is a symlink into another directory (a
/// deploy tool's checkout), that directory is watched too, since edits there make no event
/// beside the link. Any event (or watch error) signals; the reload compares the file's text
/// and ignores unrelated changes.
pub fn watch(
    path: &Path,
    debounce: Duration,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>> {
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut dirs = vec![parent(&file)];
    if let Ok(target) = file.canonicalize() {
        let target_dir = parent(&target);
        // A ConfigMap's own `..2026_...` directory is replaced on every update: not worth it.
        let transient = target_dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".."));
        if !transient && dirs[0].canonicalize().ok().as_ref() != Some(&target_dir) {
            dirs.push(target_dir);
        }
    }
    let handler = move |res: notify_debouncer_mini::DebounceEventResult| {
        if res.map_or(true, |events| !events.is_empty()) {
            let _ = tx.send(());
        }
    };
    let mut debouncer = match notify_debouncer_mini::new_debouncer(debounce, handler) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "config file watch unavailable; use SIGHUP or POST /reload");
            return None;
        }
    };
    let mut watching = 0;
    for dir in &dirs {
        match debouncer.watcher().watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => watching += 1,
            Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory"),
        }
    }
    if watching == 0 {
        tracing::warn!("config file watch unavailable; use SIGHUP or POST /reload");
        return None;
    }
    Some(debouncer)
}
