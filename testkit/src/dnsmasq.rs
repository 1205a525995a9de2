//! A real dnsmasq on loopback, for DNS discovery tests and fleets.
//!
//! Every name is served from local data only (`local=/#/`), so unknown names get NXDOMAIN
//! and known names queried for another type get an empty NOERROR answer, like a cluster
//! DNS would. A/AAAA data lives in an `addn-hosts` file, which dnsmasq re-reads on SIGHUP;
//! SRV data (`srv-host`/`host-record`) lives in the main config, which it does not re-read,
//! so SRV changes restart dnsmasq on the same port.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::Process;
use crate::scratch::Scratch;

const CANDIDATES: [&str; 2] = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"];
/// How long dnsmasq gets to start answering before a start attempt counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts (a fresh port each time on first start, the same port on a restart).
const START_ATTEMPTS: usize = 10;
/// Pause before another start on the same port: the old socket may linger for a moment.
const RESTART_PAUSE: Duration = Duration::from_millis(100);

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

/// The dnsmasq binary (Debian's `dnsmasq-base`).
pub fn dnsmasq_bin() -> Result<PathBuf, String> {
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "dnsmasq not found: install it with `apt-get install -y dnsmasq-base`".to_string())
}

/// A running dnsmasq serving the given records on `127.0.0.1:<port>` (UDP and TCP); it may be
/// stopped and started again on the same port. Killed and its files removed on drop.
pub struct Dnsmasq {
    exe: PathBuf,
    port: u16,
    extra: Vec<String>,
    state: Mutex<State>,
    /// Last field: the config and hosts file outlive the process.
    dir: Scratch,
}

struct State {
    /// `None` while stopped.
    proc: Option<Process>,
    srv: Vec<SrvOwned>,
}

impl Dnsmasq {
    /// Starts dnsmasq with A/AAAA `hosts` as `(name, ip)` and SRV records.
    pub fn start(hosts: &[(&str, &str)], srv: &[Srv<'_>]) -> Result<Dnsmasq, String> {
        Self::start_with_extra(hosts, srv, &[])
    }

    /// Like [`Dnsmasq::start`], plus raw dnsmasq config lines (e.g. `cname=...`).
    pub fn start_with_extra(hosts: &[(&str, &str)], srv: &[Srv<'_>], extra: &[&str]) -> Result<Dnsmasq, String> {
        let exe = dnsmasq_bin()?;
        let dir = Scratch::new("dnsmasq")?;
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let srv = own(srv);
        write_hosts(&dir, hosts)?;

        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port(&[Ipv4Addr::LOCALHOST])?;
            write_config(&dir, port, &srv, &extra)?;
            match spawn_ready(&exe, &dir, port) {
                Ok(proc) => {
                    return Ok(Dnsmasq {
                        exe,
                        port,
                        extra,
                        state: Mutex::new(State { proc: Some(proc), srv }),
                        dir,
                    })
                }
                Err(StartError::Retry(log)) => last = log,
                Err(StartError::Fatal(log)) => return Err(format!("dnsmasq failed to start: {log}")),
            }
        }
        Err(format!(
            "dnsmasq did not start after {START_ATTEMPTS} attempts; last: {last}"
        ))
    }

    /// The server address to point a resolver at.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces all records. Host changes are picked up via SIGHUP; SRV changes restart
    /// dnsmasq on the same port. Returns once the signal is sent / the restarted server
    /// answers; callers poll until the new data shows up. While stopped, the new records are
    /// what [`Dnsmasq::start_again`] serves.
    pub fn set_records(&self, hosts: &[(&str, &str)], srv: &[Srv<'_>]) -> Result<(), String> {
        let mut state = self.state();
        write_hosts(&self.dir, hosts)?;
        let srv = own(srv);
        if srv == state.srv {
            return match &state.proc {
                Some(proc) => proc.signal("HUP"),
                None => Ok(()),
            };
        }
        write_config(&self.dir, self.port, &srv, &self.extra)?;
        state.srv = srv;
        if state.proc.take().is_some() {
            state.proc = Some(self.respawn()?);
        }
        Ok(())
    }

    /// Stops the server (a DNS outage); its port stays reserved for [`Dnsmasq::start_again`].
    pub fn stop(&self) {
        self.state().proc = None;
    }

    /// Starts a stopped server again on the same port (restarts a running one).
    pub fn start_again(&self) -> Result<(), String> {
        let mut state = self.state();
        state.proc = None;
        state.proc = Some(self.respawn()?);
        Ok(())
    }

    /// The server runs (not stopped, not exited).
    pub fn running(&self) -> bool {
        self.state().proc.as_mut().is_some_and(Process::running)
    }

    /// Starts dnsmasq on `self.port` again, retrying while the old socket lingers.
    fn respawn(&self) -> Result<Process, String> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match spawn_ready(&self.exe, &self.dir, self.port) {
                Ok(proc) => return Ok(proc),
                Err(StartError::Retry(log)) => {
                    last = log;
                    std::thread::sleep(RESTART_PAUSE);
                }
                Err(StartError::Fatal(log)) => return Err(format!("dnsmasq failed to restart: {log}")),
            }
        }
        Err(format!("dnsmasq did not restart on port {}; last: {last}", self.port))
    }
}

/// Writes atomically so a SIGHUP never sees a half-written file.
fn write_atomic(path: &Path, contents: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))
}

fn write_hosts(dir: &Path, hosts: &[(&str, &str)]) -> Result<(), String> {
    let body: String = hosts.iter().map(|(name, ip)| format!("{ip} {name}\n")).collect();
    write_atomic(&dir.join("hosts"), &body)
}

fn write_config(dir: &Path, port: u16, srv: &[SrvOwned], extra: &[String]) -> Result<(), String> {
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
    write_atomic(&dir.join("dnsmasq.conf"), &conf)
}

/// Why a start attempt failed; both carry what dnsmasq said.
enum StartError {
    /// Port taken or server slow to come up: worth another attempt.
    Retry(String),
    /// E.g. a bad config line: retrying cannot help.
    Fatal(String),
}

/// Spawns dnsmasq in the foreground on `dir`'s config and waits until it answers a query.
fn spawn_ready(exe: &Path, dir: &Path, port: u16) -> Result<Process, StartError> {
    let mut cmd = Command::new(exe);
    cmd.arg("-k").arg("-C").arg(dir.join("dnsmasq.conf"));
    let mut proc = Process::spawn("dnsmasq", cmd).map_err(StartError::Fatal)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if proc.exited() {
            let msg = proc.failure("exited at start");
            return Err(if msg.contains("in use") {
                StartError::Retry(msg)
            } else {
                StartError::Fatal(msg)
            });
        }
        if crate::dns::answers(addr, crate::wait::PROBE_TIMEOUT) {
            return Ok(proc);
        }
        // An ICMP refusal comes back at once: do not spin.
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(StartError::Retry(
        proc.failure(&format!("not answering within {READY_TIMEOUT:?}")),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn serves_stops_and_starts_again_on_the_same_port() {
        let dns = Dnsmasq::start(&[("a.test", "127.0.0.9")], &[]).unwrap();
        let addr = dns.addr();
        assert!(crate::dns::answers(addr, Duration::from_secs(2)));
        dns.stop();
        assert!(!dns.running());
        dns.set_records(&[("b.test", "127.0.0.10")], &[]).unwrap();
        dns.start_again().unwrap();
        assert!(dns.running());
        assert_eq!(dns.addr(), addr);
        assert!(crate::dns::answers(addr, Duration::from_secs(2)));
        let err = Dnsmasq::start_with_extra(&[], &[], &["no-such-option"]).err().unwrap();
        assert!(err.contains("failed to start"), "{err}");
    }
}
