//! `bare-pingora`: a minimal pingora 0.9.1 round-robin reverse proxy, the baseline that
//! `loadtest/bench/proxy-cost.sh` measures `arena-gateway`'s per-request CPU cost against.
//!
//! No health checks, no per-request logging, no header rewriting: a static
//! `LoadBalancer<RoundRobin>` over the `--upstream` list, plain HTTP/1.1 to the pods, the
//! upstream keep-alive pool raised to 4096 and mimalloc as the allocator.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bare pingora round-robin reverse proxy (benchmark baseline).
#[derive(Debug, Parser)]
#[command(name = "bare-pingora")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6188")]
    listen: SocketAddr,
    /// Upstream `ip:port`; repeat for several pods, picked in round robin.
    #[arg(long = "upstream", required = true)]
    upstreams: Vec<SocketAddr>,
    /// Worker threads of the proxy service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Current-thread runtimes instead of tokio's work-stealing scheduler (pingora's
    /// `work_stealing: false`), to compare with arena's `server.work_stealing`.
    #[arg(long)]
    no_work_stealing: bool,
    /// Idle upstream connections kept in total.
    #[arg(long, default_value_t = 4096)]
    keepalive_pool: usize,
}

/// The proxy: every request goes to the next upstream in round-robin order.
struct Bare {
    upstreams: Arc<LoadBalancer<RoundRobin>>,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> pingora::Result<Box<HttpPeer>> {
        // The key is ignored by round robin; static backends start healthy.
        let backend = self
            .upstreams
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream available"))?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.threads == 0 {
        eprintln!("bare-pingora: --threads must be at least 1");
        return ExitCode::from(2);
    }
    let upstreams = match LoadBalancer::<RoundRobin>::try_from_iter(cli.upstreams.iter().copied()) {
        Ok(lb) => Arc::new(lb),
        Err(e) => {
            eprintln!("bare-pingora: bad upstream list: {e}");
            return ExitCode::from(2);
        }
    };

    let conf = ServerConf {
        threads: cli.threads,
        work_stealing: !cli.no_work_stealing,
        upstream_keepalive_pool_size: cli.keepalive_pool,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstreams });
    proxy.add_tcp(&cli.listen.to_string());
    server.add_service(proxy);

    println!(
        "bare-pingora listening on {} ({} upstream(s), {} thread(s))",
        cli.listen,
        cli.upstreams.len(),
        cli.threads
    );
    server.run_forever()
}
