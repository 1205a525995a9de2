//! The control thread (its own small runtime, off the request path): the app check that
//! moves the app between starting and ready, the CPU sampler, and reload triggers (SIGHUP,
//! the debounced file watch).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::state::Sidecar;

/// Starts the control thread; SIGHUP is handled before this returns.
pub fn start(sc: Arc<Sidecar>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hangups = {
        let _enter = rt.enter();
        signal(SignalKind::hangup())?
    };
    std::thread::Builder::new()
        .name("arena-sidecar-control".into())
        .spawn(move || rt.block_on(run(sc, hangups)))?;
    Ok(())
}

async fn run(sc: Arc<Sidecar>, mut hangups: tokio::signal::unix::Signal) {
    tokio::spawn(check_app(Arc::clone(&sc)));
    tokio::spawn(crate::cpu_task::run(Arc::clone(&sc)));
    if sc.tls.is_some() {
        tokio::spawn(rotate_certificates(Arc::clone(&sc)));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let debounce = sc.config().server.watch_debounce;
    let _watcher = match (&sc.config_path, debounce.is_zero()) {
        (Some(path), false) => arena_gateway::control::watch(path, debounce, tx),
        _ => None,
    };
    let mut last_text = sc.config_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    loop {
        tokio::select! {
            Some(()) = hangups.recv() => {
                let _ = sc.reload("sighup");
            }
            Some(()) = rx.recv() => {
                let text = sc.config_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
                if text.is_some() && text != last_text {
                    last_text = text;
                    let _ = sc.reload("watch");
                }
            }
            else => break,
        }
    }
}

/// Re-reads the pod port's certificates every `inbound.tls.reload_interval`:
/// a good new set is used for new handshakes, a bad one is reported once and the old set stays.
async fn rotate_certificates(sc: Arc<Sidecar>) {
    let Some(tls) = sc.tls.clone() else { return };
    let mut last_error = None;
    loop {
        let poll = sc
            .config()
            .inbound
            .tls
            .as_ref()
            .map_or(crate::config::defaults::TLS_RELOAD_INTERVAL, |t| t.reload_interval);
        tokio::time::sleep(poll).await;
        match tls.reload() {
            Ok(true) => {
                let (serial, not_after) = tls.serials();
                tracing::info!(serial, not_after, "pod port certificates rotated");
                sc.metrics.cert_reloads.with_label_values(&["ok"]).inc();
                last_error = None;
            }
            Ok(false) => last_error = None,
            Err(e) => {
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "new certificate files rejected; the running ones stay");
                    sc.metrics.cert_reloads.with_label_values(&["rejected"]).inc();
                    last_error = Some(text);
                }
            }
        }
    }
}

/// Checks the app every `app_check.interval`.
async fn check_app(sc: Arc<Sidecar>) {
    loop {
        let config = sc.config();
        let inbound = &config.inbound;
        let ok = probe(inbound.app, inbound.app_check.path.as_deref(), inbound.connect_timeout).await;
        sc.health.on_check(ok, Instant::now());
        tokio::time::sleep(inbound.app_check.interval).await;
    }
}

/// Whether the app answers: its port accepts, and with a check path, `GET path` answers below
/// 500 within the connect timeout plus a second.
pub async fn probe(app: SocketAddr, path: Option<&str>, connect_timeout: Duration) -> bool {
    let Ok(Ok(mut stream)) = tokio::time::timeout(connect_timeout, TcpStream::connect(app)).await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {app}\r\nUser-Agent: arena-sidecar\r\nConnection: close\r\n\r\n");
    let answer = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let read = stream.read(&mut buf[n..]).await?;
            if read == 0 {
                break;
            }
            n += read;
        }
        Ok::<_, io::Error>(status_of(&buf[..n]))
    };
    match tokio::time::timeout(connect_timeout + Duration::from_secs(1), answer).await {
        Ok(Ok(Some(status))) => status < 500,
        _ => false,
    }
}

/// The status of an HTTP/1.x status line's start.
fn status_of(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::status_of;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(status_of(b"HTTP/2 200"), None);
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
        assert_eq!(status_of(b""), None);
    }
}
