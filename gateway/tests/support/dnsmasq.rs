//! A real dnsmasq on loopback for DNS discovery integration tests.
//!
//! Every name is served from local data only (`local=/#/`), so unknown names get NXDOMAIN
//! and known names queried for another type get an empty NOERROR answer, like a cluster
//! DNS would. A/AAAA data lives in an `addn-hosts` file, which dnsmasq re-reads on SIGHUP;
//! SRV data (`srv-host`/`host-record`) lives in the main config, which it does not re-read,
//! so SRV changes restart dnsmasq on the same port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// How long dnsmasq gets to start answering before a start attempt counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts (a fresh port each time on first start, same port on restart).
const START_ATTEMPTS: usize = 10;

/// One SRV record as `(srv name, target, port, target ip)`.
pub type Srv<'a> = (&'a str, &'a str, u16, &'a str);

#[derive(Clone, PartialEq, Eq)]
struct SrvOwned {
    name: String,
    target: String,
    port: u16,
    ip: String,
}

fn own(srv: &[Srv<'_>]) -> Vec<SrvOwned> {
    srv.iter()
        .map(|&(name, target, port, ip)| SrvOwned {
            name: name.into(),
            target: target.into(),
            port,
            ip: ip.into(),
        })
        .collect()
}

/// A running dnsmasq serving the given records on `127.0.0.1:<port>` (UDP and TCP).
/// Killed and its temp dir removed on drop.
pub struct Dnsmasq {
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
    state: Mutex<State>,
}

struct State {
    child: Child,
    srv: Vec<SrvOwned>,
}

impl Dnsmasq {
    /// Starts dnsmasq with A/AAAA `hosts` as `(name, ip)` and SRV records.
    pub fn start(hosts: &[(&str, &str)], srv: &[Srv<'_>]) -> Dnsmasq {
        Self::start_with_extra(hosts, srv, &[])
    }

    /// Like [`Dnsmasq::start`], plus raw dnsmasq config lines (e.g. `cname=...`).
    pub fn start_with_extra(hosts: &[(&str, &str)], srv: &[Srv<'_>], extra: &[&str]) -> Dnsmasq {
        assert!(
            Path::new(DNSMASQ).exists(),
            "{DNSMASQ} not found: install it with `apt-get install -y dnsmasq-base`"
        );
        let dir = unique_dir();
        fs::create_dir_all(&dir).expect("create dnsmasq temp dir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let srv = own(srv);
        write_hosts(&dir, hosts);

        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            write_config(&dir, port, &srv, &extra);
            match spawn_ready(&dir, port) {
                Ok(child) => {
                    return Dnsmasq {
                        dir,
                        port,
                        extra,
                        state: Mutex::new(State { child, srv }),
                    }
                }
                Err(StartError::Retry(log)) => last_log = log,
                Err(StartError::Fatal(log)) => {
                    let _ = fs::remove_dir_all(&dir);
                    panic!("dnsmasq failed to start:\n{log}");
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("dnsmasq did not start after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// The server address to point a resolver at.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Replaces all records. Host changes are picked up via SIGHUP; SRV changes restart
    /// dnsmasq on the same port. Returns once the signal is sent / the restarted server
    /// answers; callers poll until the new data shows up.
    pub fn set_records(&self, hosts: &[(&str, &str)], srv: &[Srv<'_>]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        write_hosts(&self.dir, hosts);
        let srv = own(srv);
        if srv == state.srv {
            let status = Command::new("kill")
                .arg("-HUP")
                .arg(state.child.id().to_string())
                .status()
                .expect("run kill -HUP");
            assert!(status.success(), "kill -HUP dnsmasq failed: {status}");
            return;
        }

        stop(&mut state.child);
        write_config(&self.dir, self.port, &srv, &self.extra);
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match spawn_ready(&self.dir, self.port) {
                Ok(child) => {
                    state.child = child;
                    state.srv = srv;
                    return;
                }
                // The old socket may linger for a moment; retry on the same port.
                Err(StartError::Retry(log)) => {
                    last_log = log;
                    sleep(Duration::from_millis(100));
                }
                // Drop still removes the temp dir.
                Err(StartError::Fatal(log)) => panic!("dnsmasq failed to restart:\n{log}"),
            }
        }
        panic!("dnsmasq did not restart on port {}; last log:\n{last_log}", self.port);
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        stop(&mut state.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn unique_dir() -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "arena-dnsmasq-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (racy by nature; callers retry).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// Writes atomically so a SIGHUP never sees a half-written file.
fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).expect("write dnsmasq file");
    fs::rename(&tmp, path).expect("rename dnsmasq file");
}

fn write_hosts(dir: &Path, hosts: &[(&str, &str)]) {
    let body: String = hosts.iter().map(|(name, ip)| format!("{ip} {name}\n")).collect();
    write_atomic(&dir.join("hosts"), &body);
}

fn write_config(dir: &Path, port: u16, srv: &[SrvOwned], extra: &[String]) {
    let mut conf = format!(
        "no-resolv\n\
         no-hosts\n\
         addn-hosts={hosts}\n\
         listen-address=127.0.0.1\n\
         port={port}\n\
         bind-interfaces\n\
         local=/#/\n\
         pid-file=\n\
         log-facility=-\n",
        hosts = dir.join("hosts").display()
    );
    // dnsmasq rejects repeated keywords, so `extra` may override the 1s TTL.
    if !extra.iter().any(|l| l.starts_with("local-ttl=")) {
        conf.push_str("local-ttl=1\n");
    }
    // As root dnsmasq would switch to `nobody` (and a group that may not exist); stay root.
    if fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
        conf.push_str("user=root\n");
    }
    let mut targets = Vec::new();
    for s in srv {
        conf.push_str(&format!("srv-host={},{},{}\n", s.name, s.target, s.port));
        if !targets.contains(&(&s.target, &s.ip)) {
            targets.push((&s.target, &s.ip));
        }
    }
    for (target, ip) in targets {
        conf.push_str(&format!("host-record={target},{ip}\n"));
    }
    for line in extra {
        conf.push_str(line);
        conf.push('\n');
    }
    write_atomic(&dir.join("dnsmasq.conf"), &conf);
}

/// Why a start attempt failed; both carry dnsmasq's log.
enum StartError {
    /// Port taken or server slow to come up: worth another attempt.
    Retry(String),
    /// E.g. a bad config line: retrying cannot help.
    Fatal(String),
}

/// Spawns dnsmasq and waits until it answers a query.
fn spawn_ready(dir: &Path, port: u16) -> Result<Child, StartError> {
    let log_path = dir.join("dnsmasq.log");
    let log = fs::File::create(&log_path).expect("create dnsmasq log");
    let log_err = log.try_clone().expect("clone log handle");
    let mut child = Command::new(DNSMASQ)
        .arg("-k")
        .arg("-C")
        .arg(dir.join("dnsmasq.conf"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .expect("spawn dnsmasq");

    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let log = format!("exited with {status}\n{}", read_log(&log_path));
            return Err(if log.contains("in use") {
                StartError::Retry(log)
            } else {
                StartError::Fatal(log)
            });
        }
        if answers(port) {
            return Ok(child);
        }
    }
    stop(&mut child);
    Err(StartError::Retry(format!(
        "not answering after {READY_TIMEOUT:?}\n{}",
        read_log(&log_path)
    )))
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Sends a minimal A query for `ready.invalid.`; any reply with our id means it is serving.
fn answers(port: u16) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let id: u16 = 0x5eed;
    let mut query = Vec::with_capacity(32);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
    for label in ["ready", "invalid"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    if sock.send_to(&query, ("127.0.0.1", port)).is_err() {
        // ICMP refusal from an earlier probe can surface here; just try again later.
        sleep(Duration::from_millis(20));
        return false;
    }
    let mut buf = [0u8; 512];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => n >= 2 && buf[..2] == id.to_be_bytes(),
        Err(e) => {
            if e.kind() == ErrorKind::ConnectionRefused {
                sleep(Duration::from_millis(20));
            }
            false
        }
    }
}
