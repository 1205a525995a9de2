//! Process wiring: the inbound service behind the gateway's listener stage (connection caps,
//! head deadlines, idle keep-alive), the admin service, the control thread, and shutdown.
//!
//! SIGTERM: `/readyz` turns 503 and every answer closes its connection, for
//! `server.drain_delay`; then new requests are shed `draining` (the gateway retries them on
//! another pod) until the requests at the app have finished and none has come for a moment (at
//! most `server.grace_period`), and the process exits. No request that reached the app is cut,
//! and no connection is reset under a request it carried. (A native sidecar gets SIGTERM after the app containers have stopped; an app that
//! stopped first makes requests shed `app_unavailable`, which the gateway sends elsewhere.)
//! SIGINT stops at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arena_gateway::listener::caps::Caps;
use arena_gateway::listener::{Edge, EdgeCounters, TlsListener};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::Acceptor;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;

use crate::admin::AdminApi;
use crate::config::Config;
use crate::inbound::InboundProxy;
use crate::metrics::Metrics;
use crate::state::Sidecar;
use crate::tls::InboundTls;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("inbound.tls: {0}")]
    Tls(String),
    #[error("outbound: {0}")]
    Outbound(String),
}

struct DrainThenStop {
    sc: Arc<Sidecar>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for DrainThenStop {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot watch shutdown signals; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = term.recv() => {}
        }
        let server = self.sc.config().server.clone();
        tracing::info!(delay = ?server.drain_delay, "SIGTERM: draining (readyz 503, connections close after their answer)");
        self.sc.start_draining();
        let drained = async {
            tokio::time::sleep(server.drain_delay).await;
            // Closing the listener now would reset connections the gateway has just opened,
            // their requests unread. Instead new requests are shed `draining` — they never ran,
            // so the gateway sends them elsewhere and reads this pod as full — until nothing
            // is at the app and no request has come for a while; only then does the process
            // leave (and the listener with it).
            self.sc.start_refusing();
            tracing::info!("drain: new requests go to other pods; waiting for the app's last ones");
            let until = tokio::time::Instant::now() + server.grace_period;
            while tokio::time::Instant::now() < until {
                let idle = self.sc.limiter.in_flight() == 0 && self.sc.limiter.queued() == 0;
                if idle && self.sc.quiet_for() >= QUIET {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        };
        let clean = tokio::select! {
            clean = drained => clean,
            _ = int.recv() => false,
        };
        if clean {
            tracing::info!("no request left at the app; stopping");
        } else {
            tracing::warn!(
                left = self.sc.limiter.in_flight(),
                "stopping with requests still at the app (grace period over, or SIGINT)"
            );
        }
        ShutdownSignal::FastShutdown
    }
}

/// How long without a new request before a draining sidecar leaves.
const QUIET: Duration = Duration::from_millis(250);

pub struct Built {
    server: Server,
    pub sc: Arc<Sidecar>,
}

/// The outbound side's reload: the whole sidecar document is validated, its `outbound:` is
/// the gateway config (taking `outbound` away needs a restart, like adding it).
fn outbound_loader() -> arena_gateway::state::Loader {
    Arc::new(|text: &str, origin: &str| {
        let loaded = crate::config::load_str(text, origin)?;
        match loaded.config.outbound {
            Some(engine) => Ok(arena_gateway::config::Loaded {
                config: *engine,
                warnings: loaded.warnings,
                text_hash: loaded.text_hash,
            }),
            None => Err(arena_core::diag::ConfigErrors(vec![arena_core::diag::Diagnostic::new(
                arena_core::diag::Severity::Error,
                origin,
                None,
                "`outbound` was removed: the running outbound side stays until a restart".into(),
                Some("restart the sidecar to run without an outbound side".into()),
            )])),
        }
    })
}

/// The outbound side: the gateway's engine behind the same listener stage, on its own
/// control thread (DNS, reload, releases).
fn outbound_service(
    server: &Server,
    engine: arena_gateway::config::Config,
    config_path: Option<PathBuf>,
    text_hash: u64,
) -> Result<
    (
        Arc<arena_gateway::state::Gateway>,
        impl pingora::services::Service + 'static,
    ),
    StartError,
> {
    let listeners = engine.listeners.clone();
    let client = (engine.server.client, engine.server.max_request_header_bytes);
    let metrics = arena_gateway::metrics::Metrics::new()?;
    let gw =
        arena_gateway::state::Gateway::with_loader(engine, config_path, Some(text_hash), metrics, outbound_loader())
            .map_err(StartError::Outbound)?;
    let service = arena_gateway::server::client_service(server, &gw, None, &listeners, false, client)
        .map_err(|e| StartError::Outbound(e.to_string()))?;
    arena_gateway::control::start(Arc::clone(&gw))?;
    Ok((gw, service))
}

/// Builds the sidecar from a loaded configuration.
pub fn build(loaded: crate::config::Loaded, config_path: Option<PathBuf>) -> Result<Built, StartError> {
    let text_hash = loaded.text_hash;
    let mut config: Config = loaded.config;
    let engine = config.outbound.take();
    let conf = ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs().max(1)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let listen = config.inbound.listen;
    let admin_addr = config.admin.address;
    let client = config.server.client;
    let metrics = Metrics::new()?;
    let tls = match &config.inbound.tls {
        Some(spec) => Some(InboundTls::load(spec.files()).map_err(|e| StartError::Tls(e.to_string()))?),
        None => None,
    };
    let listeners = match &tls {
        Some(t) => vec![TlsListener {
            address: listen,
            acceptor: Acceptor::from_server_config(t.server_config()),
        }],
        None => Vec::new(),
    };
    let sc = Sidecar::new(config, config_path, metrics, tls)?;

    let mut options = HttpServerOptions::default();
    options.normalize_header_case = true;
    options.keepalive_request_limit = Some(client.max_requests_per_connection.saturating_sub(1));
    let mut proxy = HttpProxy::new(InboundProxy::new(Arc::clone(&sc)), Arc::clone(&server.configuration));
    proxy.server_options = Some(options);
    proxy.handle_init_modules();
    let caps = Caps::exported(sc.metrics.client_connections.clone());
    let counters = EdgeCounters {
        refused: sc.metrics.connections_refused.clone(),
        closed: sc.metrics.client_closed.clone(),
    };
    let edge = Edge::new(Arc::new(proxy), Arc::clone(&sc), listeners, caps, counters);
    let mut inbound = Service::new("arena-sidecar inbound".to_string(), edge);
    inbound.add_tcp(&listen.to_string());

    let mut admin = Service::new("arena-sidecar admin".to_string(), AdminApi::new(Arc::clone(&sc)));
    admin.add_tcp(&admin_addr.to_string());
    admin.threads = Some(1);

    server.add_service(inbound);
    server.add_service(admin);
    if let Some(engine) = engine {
        let (gw, service) = outbound_service(&server, *engine, sc.config_path.clone(), text_hash)?;
        sc.set_outbound(gw);
        server.add_service(service);
    }
    crate::control::start(Arc::clone(&sc))?;
    server.bootstrap();
    Ok(Built { server, sc })
}

/// Serves until shutdown, then exits the process.
pub fn serve(built: Built) -> ! {
    let Built { server, sc } = built;
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainThenStop { sc }),
    });
    std::process::exit(0)
}
