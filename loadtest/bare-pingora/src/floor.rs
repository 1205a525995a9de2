//! `floor-tokio`: the cheapest HTTP/1.1 keep-alive reverse proxy this benchmark rig can build on
//! the gateway's own stack (tokio, httparse, mimalloc) — the floor that bounds what any proxy on
//! that stack, pingora included, can cost per request here.
//!
//! One thread (a current-thread runtime), one task per client connection, round robin over the
//! `--upstream` list, an idle-connection stack per upstream, buffers reused for the life of a
//! client connection. The request head and body are forwarded byte for byte (no header
//! rewriting, no logging, no metrics, no timeouts): it proves a bound, it is not a gateway.
//! Bodies must be framed by `Content-Length` (or absent); anything else gets a 502 and the
//! connection is closed; answers without a body by status or method (HEAD, 1xx, 204, 304) are not
//! special-cased, so only GET-style traffic fits. A reused upstream connection that fails before
//! answering is retried once on a new one, as pingora does.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Floor reverse proxy for the benchmarks (not a gateway).
#[derive(Debug, Parser)]
#[command(name = "floor-tokio")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6189")]
    listen: SocketAddr,
    /// Upstream `ip:port`; repeat for several pods, picked in round robin.
    #[arg(long = "upstream", required = true)]
    upstreams: Vec<SocketAddr>,
}

const MAX_HEADERS: usize = 64;
const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// The upstreams and their idle connections (one thread: no locks).
struct Upstreams {
    addrs: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<TcpStream>>>,
    next: Cell<usize>,
}

/// What a parsed message head says about the connection and the body after it.
struct Head {
    len: usize,
    body: usize,
    close: bool,
}

/// Parses a request (`request == true`) or response head at the start of `buf`; `Ok(None)` until
/// it is complete, `Err` for a malformed head or framing this proxy does not support.
fn parse_head(buf: &[u8], request: bool) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (status, version, headers) = if request {
        let mut req = httparse::Request::new(&mut headers);
        let status = req.parse(buf).map_err(drop)?;
        (status, req.version, req.headers)
    } else {
        let mut resp = httparse::Response::new(&mut headers);
        let status = resp.parse(buf).map_err(drop)?;
        (status, resp.version, resp.headers)
    };
    let httparse::Status::Complete(len) = status else {
        return Ok(None);
    };
    let mut head = Head {
        len,
        body: 0,
        close: version != Some(1),
    };
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let digits = std::str::from_utf8(h.value).map_err(drop)?;
            head.body = digits.trim().parse().map_err(drop)?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(());
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(head))
}

/// Reads into `buf` until it holds a complete head and its body; `Ok(None)` on a clean EOF
/// before any byte of a new message.
async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>, request: bool) -> io::Result<Option<Head>> {
    loop {
        if !buf.is_empty() {
            match parse_head(buf, request) {
                Ok(Some(head)) if buf.len() >= head.len + head.body => return Ok(Some(head)),
                Ok(_) => {}
                Err(()) => return Err(io::ErrorKind::InvalidData.into()),
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        if s.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

/// A new upstream connection, Nagle off as for the client side.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

impl Upstreams {
    /// Sends `request` to the next upstream and reads its answer into `resp`; a reused
    /// connection that fails before answering is retried once on a fresh one.
    async fn exchange(&self, request: &[u8], resp: &mut Vec<u8>) -> io::Result<()> {
        let i = self.next.get();
        self.next.set((i + 1) % self.addrs.len());
        let reused = self.idle[i].borrow_mut().pop();
        let (mut conn, mut fresh) = match reused {
            Some(c) => (c, false),
            None => (connect(self.addrs[i]).await?, true),
        };
        loop {
            resp.clear();
            let answer = match conn.write_all(request).await {
                Ok(()) => read_message(&mut conn, resp, false).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Some(head)) => {
                    if !head.close && resp.len() == head.len + head.body {
                        self.idle[i].borrow_mut().push(conn);
                    }
                    return Ok(());
                }
                Ok(None) | Err(_) if !fresh && resp.is_empty() => {
                    conn = connect(self.addrs[i]).await?;
                    fresh = true;
                }
                Ok(None) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Serves one client connection until it closes, asks to close, or sends what is not supported.
async fn serve(mut client: TcpStream, ups: Rc<Upstreams>) -> io::Result<()> {
    let mut req = Vec::with_capacity(16 * 1024);
    let mut resp = Vec::with_capacity(16 * 1024);
    loop {
        let Some(head) = read_message(&mut client, &mut req, true).await? else {
            return Ok(());
        };
        let end = head.len + head.body;
        match ups.exchange(&req[..end], &mut resp).await {
            Ok(()) => client.write_all(&resp).await?,
            Err(_) => {
                client.write_all(BAD_GATEWAY).await?;
                return Ok(());
            }
        }
        req.drain(..end);
        if head.close {
            return Ok(());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("floor-tokio: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let result: io::Result<()> = local.block_on(&rt, async move {
        let listener = TcpListener::bind(cli.listen).await?;
        let ups = Rc::new(Upstreams {
            idle: cli.upstreams.iter().map(|_| RefCell::new(Vec::new())).collect(),
            addrs: cli.upstreams,
            next: Cell::new(0),
        });
        loop {
            let (client, _) = listener.accept().await?;
            client.set_nodelay(true)?;
            tokio::task::spawn_local(serve(client, ups.clone()));
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor-tokio: {e}");
            ExitCode::FAILURE
        }
    }
}
