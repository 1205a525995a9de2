//! Child processes and ports for integration tests: free loopback ports, binaries of the
//! workspace, and a guard that always kills what a test started.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free TCP port on `ip` for a process the test starts (checked by binding, then released).
///
/// Chosen below the kernel's ephemeral range: a port 0 bind would come from that range, where
/// any outgoing connection of a parallel test may take it before the child binds it. Ports
/// are never handed out twice by one test process.
pub fn free_addr(ip: &str) -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if low > 11_000 {
        for _ in 0..500 {
            let port = 10_000 + (rand::random::<u16>() % (low - 10_000));
            if given.contains(&port) {
                continue;
            }
            if let Ok(l) = TcpListener::bind((ip, port)) {
                given.push(port);
                return l.local_addr().unwrap();
            }
        }
    }
    let l = TcpListener::bind((ip, 0)).expect("bind port 0");
    l.local_addr().unwrap()
}

/// Path of a workspace binary in the same target profile directory as this test.
pub fn bin(name: &str) -> PathBuf {
    if name == "arena-gateway" {
        return PathBuf::from(env!("CARGO_BIN_EXE_arena-gateway"));
    }
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (the README test command does)",
        path.display()
    );
    path
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    /// Lines the child printed on stdout after the ready line.
    pub stdout: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Spawns `cmd` and waits up to `timeout` for a stdout line containing `ready`; returns the
    /// process and that line.
    pub fn spawn_until(name: &str, mut cmd: Command, ready: &str, timeout: Duration) -> (Proc, String) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let mut proc = Proc {
            child,
            name: name.to_string(),
            stdout: None,
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => {
                    proc.stdout = Some(rx);
                    return (proc, line);
                }
                Ok(_) => continue,
                Err(_) => {
                    let status = proc.child.try_wait().ok().flatten();
                    panic!("{name} did not print `{ready}` within {timeout:?} (exit: {status:?})");
                }
            }
        }
    }

    /// Spawns `cmd` without waiting for output.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            stdout: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `STOP`, ...).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.name);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until a TCP connect to `addr` succeeds.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("arena-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
