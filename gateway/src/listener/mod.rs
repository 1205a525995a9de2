//! The listener stage: every client connection, before any request — the connection caps
//! ([`caps`]: in all and per client, refused at once beyond them), the TLS handshake within
//! `tls_handshake_timeout` (done here rather than in pingora's listener, whose handshake timeout
//! is a fixed 60 s), and the connection guard ([`guard`]: whole-head deadline, idle keep-alive
//! deadline, head size while it is read). Then the connection is pingora's proxy's.
//!
//! The limits are read from the configuration at each accept, so a reload changes them for new
//! connections; HTTP/2 settings and the per-connection request cap are fixed at start.

pub mod caps;
pub mod guard;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{Stream, ALPN, IO};
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::ShutdownWatch;
use prometheus::IntCounterVec;

use crate::config::ClientLimits;
use crate::state::Gateway;
use caps::Caps;
use guard::ClientStream;

/// Where the listener stage reads the client limits at each accept (so a reload changes
/// them for new connections): the connection limits and the largest request head.
pub trait ClientLimitsSource: Send + Sync + 'static {
    fn client_limits(&self) -> (ClientLimits, usize);
}

impl ClientLimitsSource for Gateway {
    fn client_limits(&self) -> (ClientLimits, usize) {
        let snap = self.snapshot();
        let server = &snap.config.server;
        (server.client, server.max_request_header_bytes)
    }
}

/// The listener stage's counters: refusals by reason, closes by reason.
#[derive(Clone)]
pub struct EdgeCounters {
    pub refused: IntCounterVec,
    pub closed: IntCounterVec,
}

/// A TLS listener: connections accepted on `address` are handshaked with `acceptor`.
pub struct TlsListener {
    pub address: SocketAddr,
    pub acceptor: Acceptor,
}

/// The client-facing application: accepts, limits and hands connections to the proxy `P`
/// (the gateway's, or a sidecar's inbound proxy), reading its limits from `S`.
pub struct Edge<P: ProxyHttp, S> {
    proxy: Arc<HttpProxy<P>>,
    source: Arc<S>,
    tls: Vec<TlsListener>,
    caps: Arc<Caps>,
    counters: EdgeCounters,
}

impl<P: ProxyHttp, S: ClientLimitsSource> Edge<P, S> {
    pub fn new(
        proxy: Arc<HttpProxy<P>>,
        source: Arc<S>,
        tls: Vec<TlsListener>,
        caps: Arc<Caps>,
        counters: EdgeCounters,
    ) -> Self {
        Edge {
            proxy,
            source,
            tls,
            caps,
            counters,
        }
    }

    /// The TLS acceptor of the listener a connection arrived on, if it is a TLS listener.
    fn acceptor(&self, local: Option<SocketAddr>) -> Option<&Acceptor> {
        let local = local?;
        self.tls
            .iter()
            .find(|l| {
                l.address.port() == local.port() && (l.address.ip().is_unspecified() || l.address.ip() == local.ip())
            })
            .map(|l| &l.acceptor)
    }

    /// Handshakes `stream` when it came in on a TLS listener; `None` when that fails or overruns.
    async fn handshake(
        &self,
        stream: Stream,
        local: Option<SocketAddr>,
        timeout: std::time::Duration,
    ) -> Option<Stream> {
        let Some(acceptor) = self.acceptor(local) else {
            return Some(stream);
        };
        let io: Box<dyn IO> = stream;
        let tcp = io.into_any().downcast::<TcpStream>().ok()?;
        // Pinned here, not moved into `timeout`: on a timeout the counter moves before the socket
        // closes (dropped at the end of this function), so whoever sees the close sees the count.
        let handshake = acceptor.tls_handshake(*tcp);
        tokio::pin!(handshake);
        match tokio::time::timeout(timeout, &mut handshake).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "client TLS handshake failed");
                self.counters.refused.with_label_values(&["tls_error"]).inc();
                None
            }
            Err(_) => {
                self.counters
                    .refused
                    .with_label_values(&["tls_handshake_timeout"])
                    .inc();
                None
            }
        }
    }
}

fn addresses(stream: &Stream) -> (Option<IpAddr>, Option<SocketAddr>) {
    let digest = stream.get_socket_digest();
    let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| a.and_then(|a| a.as_inet()).copied();
    let peer = digest.as_ref().and_then(|d| inet(d.peer_addr())).map(|a| a.ip());
    let local = digest.as_ref().and_then(|d| inet(d.local_addr()));
    (peer, local)
}

#[async_trait]
impl<P, S> ServerApp for Edge<P, S>
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
    S: ClientLimitsSource,
{
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let (limits, max_head) = self.source.client_limits();
        let (peer, local) = addresses(&stream);
        let permit = match self
            .caps
            .admit(peer, limits.max_connections, limits.max_connections_per_ip)
        {
            Ok(p) => p,
            Err(why) => {
                // Refused at once: closing costs less than anything the connection could ask.
                self.counters.refused.with_label_values(&[why.as_str()]).inc();
                return None;
            }
        };
        let stream = self.handshake(stream, local, limits.tls_handshake_timeout).await?;
        let http1 = stream.selected_alpn_proto() != Some(ALPN::H2);
        let closed = self.counters.closed.clone();
        let guarded: Stream = Box::new(ClientStream::new(stream, limits, max_head, permit, http1, closed));
        <HttpProxy<P> as ServerApp>::process_new(&self.proxy, guarded, shutdown).await
    }

    async fn cleanup(&self) {
        <HttpProxy<P> as ServerApp>::cleanup(&self.proxy).await
    }
}
