//! Listeners and process wiring: turns a validated config into a running pingora server with
//! the proxy service, the admin service and the control plane.

use std::path::PathBuf;
use std::sync::Arc;

use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::http::v2::server::default_h2_options;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;

use crate::admin::AdminApi;
use crate::config::{ClientLimits, Config, Listener, Tls};
use crate::listener::caps::Caps;
use crate::listener::{Edge, EdgeCounters, TlsListener};
use crate::metrics::Metrics;
use crate::proxy::access_log::AccessLog;
use crate::proxy::ArenaProxy;
use crate::state::Gateway;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listener `{listener}`: {reason}")]
    Tls { listener: String, reason: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("control plane: {0}")]
    Control(#[from] std::io::Error),
    #[error("{0}")]
    Runtime(String),
    #[error("upgrade: {0}")]
    Upgrade(String),
}

/// Checks that a listener's certificate and key load and match, so a bad file is a clean
/// start-up error instead of a panic inside pingora.
pub fn check_tls(listener: &str, tls: &Tls) -> Result<(), StartError> {
    let fail = |reason: String| StartError::Tls {
        listener: listener.to_string(),
        reason,
    };
    pingora::tls::install_default_crypto_provider();
    let cert = tls.cert_file.to_string_lossy().to_string();
    let key = tls.key_file.to_string_lossy().to_string();
    let (certs, key) = match pingora::tls::load_certs_and_key_files(&cert, &key) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(fail(format!(
                "no certificate or private key found in `{cert}` / `{key}` (PEM expected)"
            )))
        }
        Err(e) => return Err(fail(format!("cannot load `{cert}` / `{key}`: {e}"))),
    };
    pingora::tls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map(|_| ())
        .map_err(|e| fail(format!("certificate and key do not form a usable pair: {e}")))
}

/// SIGTERM: drain for `server.drain_delay` (still accepting, `/readyz` 503, HTTP/1 answers
/// close their connections; HTTP/2 clients get their GOAWAY at the shutdown), then hand pingora
/// its graceful shutdown: listeners close, in-flight requests get `grace_period`. SIGINT: stop
/// at once, at any point (during the grace period too). SIGQUIT: pingora's graceful upgrade
/// when a new process waits on `server.upgrade_sock` (answers close their connections from
/// then on), else logged and ignored; ignored once draining has begun.
struct DrainThenStop {
    gw: Arc<Gateway>,
    access_log: Option<Arc<AccessLog>>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for DrainThenStop {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot watch shutdown signals; stopping");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = quit.recv() => {
                    if crate::upgrade::successor_waiting(&self.gw.snapshot().config.server.upgrade_sock) {
                        tracing::info!("SIGQUIT: handing the listening sockets to the new process, then draining");
                        self.gw.start_handover();
                        stop_on_sigint(int, self.access_log.clone());
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    // pingora would stop this process even when nobody takes its sockets.
                    tracing::error!(
                        "SIGQUIT ignored, still serving: no new process waits on server.upgrade_sock \
                         (start `arena-gateway run --upgrade` first, or use `arena-gateway upgrade`)"
                    );
                }
                _ = int.recv() => return ShutdownSignal::FastShutdown,
                _ = term.recv() => break,
            }
        }
        let delay = self.gw.snapshot().config.server.drain_delay;
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "SIGTERM: draining (readyz 503, connections close after their answer)"
            );
            self.gw.start_draining();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = int.recv() => return ShutdownSignal::FastShutdown,
            }
        }
        stop_on_sigint(int, self.access_log.clone());
        ShutdownSignal::GracefulTerminate
    }
}

/// pingora now sleeps through the grace period; our handler still owns SIGINT, so keep
/// honouring it: write out the access log and leave.
fn stop_on_sigint(mut int: tokio::signal::unix::Signal, log: Option<Arc<AccessLog>>) {
    tokio::spawn(async move {
        if int.recv().await.is_some() {
            tracing::info!("SIGINT during the grace period: stopping now");
            flush_access_log(log.as_deref());
            std::process::exit(130);
        }
    });
}

/// A built gateway, ready to [`serve`].
pub struct Built {
    pub server: Server,
    pub gw: Arc<Gateway>,
    access_log: Option<Arc<AccessLog>>,
}

/// Serves until a shutdown signal has run its course, then exits the process.
pub fn serve(built: Built) -> ! {
    let Built { server, gw, access_log } = built;
    crate::upgrade::follow_phases(server.watch_execution_phase());
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainThenStop {
            gw,
            access_log: access_log.clone(),
        }),
    });
    flush_access_log(access_log.as_deref());
    std::process::exit(0)
}

/// Exit skips destructors: write out the access log's last lines first.
fn flush_access_log(log: Option<&AccessLog>) {
    if let Some(log) = log {
        log.flush(std::time::Duration::from_secs(2));
    }
}

/// Builds the server from a loaded configuration (`text_hash`: of the file text it came from);
/// [`serve`] runs it. With `upgrade`, it then waits for the running gateway's listening sockets.
pub fn build(
    config: Config,
    config_path: Option<PathBuf>,
    text_hash: Option<u64>,
    upgrade: bool,
) -> Result<Built, StartError> {
    for l in &config.listeners {
        if let Some(tls) = &l.tls {
            check_tls(&l.name, tls)?;
        }
    }
    let conf = ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs().max(1)),
        upgrade_sock: config.server.upgrade_sock.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let upgrade_sock = config.server.upgrade_sock.clone();
    let opt = upgrade.then(|| Opt {
        upgrade: true,
        ..Opt::default()
    });
    let mut server = Server::new_with_opt_and_conf(opt, conf);

    let listeners = config.listeners.clone();
    let admin_addr = config.admin.address;
    let h2c = config.server.h2c;
    let client = (config.server.client, config.server.max_request_header_bytes);
    let metrics = Metrics::new()?;
    let access_log = match &config.access_log {
        Some(spec) => Some(Arc::new(
            AccessLog::start(&spec.output, metrics.access_log_dropped.clone())
                .map_err(|e| StartError::Runtime(format!("cannot open the access log {:?}: {e}", spec.output)))?,
        )),
        None => None,
    };
    let gw = Gateway::new(config, config_path, text_hash, metrics).map_err(StartError::Runtime)?;

    let proxy = client_service(&server, &gw, access_log.clone(), &listeners, h2c, client)?;
    let mut admin = Service::new("arena admin".to_string(), AdminApi::new(Arc::clone(&gw)));
    admin.add_tcp(&admin_addr.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    crate::control::start(Arc::clone(&gw))?;
    // Last: once the new process holds the sockets the old one stops accepting, so everything
    // that can fail must have been built before.
    if upgrade {
        crate::upgrade::prepare(&upgrade_sock).map_err(StartError::Upgrade)?;
        tracing::info!(
            sock = %upgrade_sock.display(),
            "waiting for the running gateway's listening sockets (it hands them over on SIGQUIT)"
        );
    }
    server.bootstrap();
    Ok(Built { server, gw, access_log })
}

/// The client-facing service: pingora's proxy behind the listener stage (connection caps,
/// TLS handshake with its timeout, the connection guard). TLS listeners are bound as plain TCP
/// and handshaked by the listener stage. (A sidecar's outbound side is one too.)
pub fn client_service(
    server: &Server,
    gw: &Arc<Gateway>,
    access_log: Option<Arc<AccessLog>>,
    listeners: &[Listener],
    h2c: bool,
    (client, max_head): (ClientLimits, usize),
) -> Result<Service<Edge<ArenaProxy, Gateway>>, StartError> {
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    // Request header names in their canonical case: one header map per request instead of
    // two (vendor/README.md, patch 2).
    options.normalize_header_case = true;
    // pingora counts reuses after the first request: N requests are N − 1 reuses.
    options.keepalive_request_limit = Some(client.max_requests_per_connection.saturating_sub(1));
    options.h2_idle_timeout = Some(client.h2_idle_timeout);
    let mut h2 = default_h2_options();
    h2.max_concurrent_streams(client.h2_max_concurrent_streams);
    h2.max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX));
    let mut proxy = HttpProxy::new(
        ArenaProxy::new(Arc::clone(gw), access_log),
        Arc::clone(&server.configuration),
    );
    proxy.server_options = Some(options);
    proxy.h2_options = Some(h2);
    proxy.handle_init_modules();
    let mut tls = Vec::new();
    for l in listeners {
        if let Some(t) = &l.tls {
            let mut settings = TlsSettings::intermediate(&t.cert_file.to_string_lossy(), &t.key_file.to_string_lossy())
                .map_err(|e| StartError::Tls {
                    listener: l.name.clone(),
                    reason: e.to_string(),
                })?;
            if t.http2 {
                settings.enable_h2();
            }
            tls.push(TlsListener {
                address: l.address,
                acceptor: settings.build(),
            });
        }
    }
    let caps = Caps::exported(gw.metrics.client_connections.clone());
    let counters = EdgeCounters {
        refused: gw.metrics.connections_refused.clone(),
        closed: gw.metrics.client_closed.clone(),
    };
    let edge = Edge::new(Arc::new(proxy), Arc::clone(gw), tls, caps, counters);
    let mut service = Service::new("arena proxy".to_string(), edge);
    for l in listeners {
        service.add_tcp(&l.address.to_string());
    }
    Ok(service)
}
