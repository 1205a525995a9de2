//! A guard for one child process: it leads its own process group (so whatever it forks, e.g.
//! gunicorn workers, dies with it), writes stdout and stderr to a log file in its own scratch
//! dir, and is killed (the whole group) and reaped on drop. Dropped while the thread panics (a
//! failing test), it keeps the log and prints its path and last lines to stderr.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::scratch::Scratch;
use crate::wait;

/// Lines of the log quoted in failure messages and on a failing test's drop.
const TAIL_LINES: usize = 30;

/// A running child process; see the module docs.
pub struct Process {
    child: Child,
    pid: Pid,
    /// `Some` once the child has been reaped.
    status: Option<ExitStatus>,
    /// The group got its SIGKILL: not again, its id may be reused once it is empty.
    group_killed: bool,
    name: String,
    log: PathBuf,
    /// Stdout lines, until [`Process::spawn_until_line`] has seen its marker.
    lines: Option<Receiver<String>>,
    /// Last field: dropped after `Drop::drop` has killed the child and quoted the log.
    scratch: Scratch,
}

/// Parses `HUP`, `SIGHUP`, `hup`... into a signal.
pub fn signal_by_name(name: &str) -> Result<Signal, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| format!("unknown signal `{name}`"))
}

/// Copies the child's stdout into the log line by line, forwarding each line while anyone
/// listens; keeps draining after that so the child never blocks on a full pipe.
fn tee(out: ChildStdout, mut log: File, tx: Option<Sender<String>>) {
    let mut tx = tx;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
        if tx.as_ref().is_some_and(|t| t.send(line).is_err()) {
            tx = None;
        }
    }
}

impl Process {
    /// Spawns `cmd` (its stdin, stdout, stderr and process group are set here).
    pub fn spawn(name: &str, cmd: Command) -> Result<Process, String> {
        Self::spawn_inner(name, cmd, false)
    }

    /// Spawns `cmd` and waits up to `timeout` for a stdout line containing `marker` (arena-pod
    /// prints `listening on ADDR`); returns the process and that line.
    pub fn spawn_until_line(
        name: &str,
        cmd: Command,
        marker: &str,
        timeout: Duration,
    ) -> Result<(Process, String), String> {
        let mut proc = Self::spawn_inner(name, cmd, true)?;
        let line = proc.wait_line(marker, timeout)?;
        Ok((proc, line))
    }

    fn spawn_inner(name: &str, mut cmd: Command, forward_lines: bool) -> Result<Process, String> {
        let tag: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        let scratch = Scratch::new(&tag)?;
        let log = scratch.file(&format!("{tag}.log"));
        // Append mode: the tee thread and the child's stderr write to the same file.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("log of {name}: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", cmd.get_program().to_string_lossy()))?;
        let stdout = child.stdout.take();
        // Never 0 or negative: killpg(0) would signal the caller's own group.
        let pid = match i32::try_from(child.id()) {
            Ok(pid) if pid > 0 => Pid::from_raw(pid),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name}: unusable pid {}", child.id()));
            }
        };
        let mut proc = Process {
            pid,
            child,
            status: None,
            group_killed: false,
            name: name.to_string(),
            log,
            lines: None,
            scratch,
        };
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            let tx = forward_lines.then_some(tx);
            std::thread::Builder::new()
                .name(format!("log-{tag}"))
                .spawn(move || tee(stdout, out, tx))
                .map_err(|e| format!("log thread of {name}: {e}"))?;
        }
        if forward_lines {
            proc.lines = Some(rx);
        }
        Ok(proc)
    }

    /// Waits up to `timeout` for a stdout line containing `marker` (only for processes from
    /// [`Process::spawn_until_line`]); lines after it are no longer forwarded.
    fn wait_line(&mut self, marker: &str, timeout: Duration) -> Result<String, String> {
        let Some(rx) = self.lines.take() else {
            return Err(format!("{}: stdout lines are not watched", self.name));
        };
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(marker) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("did not print `{marker}` within {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Stdout closed: the child is exiting; give it a moment to be reaped.
                    let _ = wait::until("", Duration::from_secs(1), || !self.running());
                    return Err(self.failure(&format!("closed its output before printing `{marker}`")));
                }
            }
        }
    }

    /// An error message: `name what (exit status); its log's last lines`.
    pub fn failure(&mut self, what: &str) -> String {
        let status = match self.try_status() {
            Some(s) => format!("exited: {s}"),
            None => "still running".to_string(),
        };
        format!(
            "{} {what} ({status}); last lines of {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(TAIL_LINES)
        )
    }

    /// Polls `ready` (every 50 ms) for up to `timeout`; fails early, quoting the log, when the
    /// process exits. Returns how long it took.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if ready() {
                return Ok(start.elapsed());
            }
            if !self.running() {
                return Err(self.failure(&format!("exited before {what}")));
            }
            if start.elapsed() >= timeout {
                return Err(self.failure(&format!("not ready ({what}) within {timeout:?}")));
            }
            std::thread::sleep(wait::POLL);
        }
    }

    /// Waits until a TCP connect to `addr` succeeds.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
        self.wait_until(&format!("listening on {addr}"), timeout, || wait::is_listening(addr))
    }

    /// Waits until `GET http://addr{path}` answers 200.
    pub fn wait_http_ok(&mut self, addr: SocketAddr, path: &str, timeout: Duration) -> Result<Duration, String> {
        self.wait_until(&format!("GET http://{addr}{path} answered 200"), timeout, || {
            wait::is_http_ok(addr, path)
        })
    }

    /// Waits until a DNS server on `addr` answers a query (any answer, even NXDOMAIN).
    pub fn wait_dns(&mut self, addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
        self.wait_until(&format!("DNS answers on {addr}"), timeout, || {
            crate::dns::answers(addr, wait::PROBE_TIMEOUT)
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process group's id: the child leads it.
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The scratch dir holding the log; callers may put the process's files there too.
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The last `n` lines of what the process printed.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The exit status once the child (the group's leader) has exited; reaps it.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The child has not exited.
    pub fn running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// The child has exited.
    pub fn exited(&mut self) -> bool {
        !self.running()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`, `STOP`...) to the child.
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let sig = signal_by_name(name)?;
        if self.status.is_some() {
            return Err(format!("cannot signal {} ({name}): it has exited", self.name));
        }
        kill(self.pid, sig).map_err(|e| format!("cannot signal {} ({name}): {e}", self.name))
    }

    /// Sends a signal by name to the child's whole process group.
    pub fn signal_group(&self, name: &str) -> Result<(), String> {
        let sig = signal_by_name(name)?;
        if self.group_killed {
            return Err(format!(
                "cannot signal the group of {} ({name}): it was killed",
                self.name
            ));
        }
        killpg(self.pid, sig).map_err(|e| format!("cannot signal the group of {} ({name}): {e}", self.name))
    }

    /// SIGTERM to the group, up to `grace` for the child to exit, then SIGKILL to the group.
    pub fn stop(&mut self, grace: Duration) {
        if self.running() {
            let _ = killpg(self.pid, Signal::SIGTERM);
            let _ = wait::until("", grace, || !self.running());
        }
        self.kill();
    }

    /// SIGKILL to the whole group, then reaps the child.
    pub fn kill(&mut self) {
        // The group may outlive its leader (forked workers): signal it even after the leader
        // exited. ESRCH once all members are gone is fine.
        if !self.group_killed {
            let _ = killpg(self.pid, Signal::SIGKILL);
            self.group_killed = true;
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "arena-testkit: {} (pid {}) log kept at {}; last lines:\n{}\n--- end of {} log",
                self.name,
                self.child.id(),
                self.log.display(),
                self.log_tail(TAIL_LINES),
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_whole_group_dies_on_drop() {
        // The shell forks a sleeping grandchild that would survive a kill of the shell alone.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 600 & echo child $!; wait"]);
        let (proc, line) = Process::spawn_until_line("group", cmd, "child", Duration::from_secs(10)).unwrap();
        let grandchild = Pid::from_raw(line.trim_start_matches("child ").trim().parse().unwrap());
        let log = proc.log_path().to_path_buf();
        drop(proc);
        // killpg delivered SIGKILL to the grandchild; whoever reaps orphans may be slow (or a
        // container's init may never do it): a zombie counts as dead.
        let dead = || match std::fs::read_to_string(format!("/proc/{grandchild}/stat")) {
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        };
        wait::until("the grandchild to die", Duration::from_secs(10), dead).unwrap();
        assert!(!log.exists(), "log of a passing test is removed");
    }

    #[test]
    fn a_failing_test_keeps_the_log() {
        let log = std::thread::spawn(|| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "echo evidence; exec sleep 600"]);
            let (proc, _) = Process::spawn_until_line("evidence", cmd, "evidence", Duration::from_secs(10)).unwrap();
            let log = proc.log_path().to_path_buf();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _proc = proc;
                panic!("a failing test");
            }));
            assert!(r.is_err());
            log
        })
        .join()
        .unwrap();
        assert!(std::fs::read_to_string(&log).unwrap().contains("evidence"));
        std::fs::remove_dir_all(log.parent().unwrap()).unwrap();
    }

    #[test]
    fn output_goes_to_the_log_and_failures_quote_it() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
        let mut proc = Process::spawn("fails", cmd).unwrap();
        let err = proc.wait_until("never", Duration::from_secs(10), || false).unwrap_err();
        assert!(err.contains("exited before never"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        wait::until("both lines logged", Duration::from_secs(10), || {
            let tail = proc.log_tail(10);
            tail.contains("to-stdout") && tail.contains("to-stderr")
        })
        .unwrap();
    }

    #[test]
    fn a_missing_marker_is_a_clear_error() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo something else"]);
        let err = Process::spawn_until_line("quiet", cmd, "listening on", Duration::from_secs(10))
            .err()
            .unwrap();
        assert!(err.contains("before printing `listening on`"), "{err}");
        assert!(err.contains("something else"), "{err}");
    }

    #[test]
    fn signals_by_name() {
        assert_eq!(signal_by_name("HUP").unwrap(), Signal::SIGHUP);
        assert_eq!(signal_by_name("SIGTERM").unwrap(), Signal::SIGTERM);
        assert!(signal_by_name("NOPE").is_err());
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let mut proc = Process::spawn("sleeper", cmd).unwrap();
        proc.signal("TERM").unwrap();
        wait::until("sleep to exit on TERM", Duration::from_secs(10), || proc.exited()).unwrap();
        assert!(proc.signal("HUP").is_err(), "an exited process cannot be signalled");
    }
}
