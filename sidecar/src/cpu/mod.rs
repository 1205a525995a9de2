//! CPU use of the app container beside the sidecar, as a share of the app's CPU allowance (ORCA `cpu_utilization`).
//!
//! Sources, first that works: the app's cgroup v2 `cpu.stat`, else the summed `/proc/<pid>/stat` ticks of the
//! processes holding the app's listening socket (or matching a configured `comm`), else nothing: the sampler
//! reports `None` rather than guess.

mod cgroup;
mod discover;
mod procfs;

pub use cgroup::{parse_cgroup_path, parse_cpu_max, parse_cpu_stat};
pub use discover::listening_inodes;
pub use procfs::parse_proc_stat_ticks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{CgroupChoice, CpuSpec};
use procfs::PidTicks;

/// Sources are looked for again this often, so a restarted or re-forked app is followed.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// Upper bound on one interval's utilisation: anything above is a counter glitch, not load.
const MAX_UTIL: f64 = 64.0;

/// Where the numbers come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The app's cgroup v2 directory.
    Cgroup(PathBuf),
    /// Per-process ticks of this many app pids.
    Procfs { pids: usize },
    /// Nothing measurable.
    None,
}

impl Source {
    pub fn label(&self) -> &'static str {
        match self {
            Source::Cgroup(_) => "cgroup",
            Source::Procfs { .. } => "procfs",
            Source::None => "none",
        }
    }
}

/// One set of cumulative counters.
#[derive(Debug)]
enum Reading {
    Cgroup {
        usage_usec: u64,
        throttled_usec: Option<u64>,
    },
    Procfs(HashMap<u32, PidTicks>),
}

/// Samples the app's CPU use; call [`CpuSampler::sample`] once per interval.
#[derive(Debug)]
pub struct CpuSampler {
    spec: CpuSpec,
    app_port: u16,
    proc_root: PathBuf,
    cgroup_root: PathBuf,
    own_pid: u32,
    clk_tck: f64,
    /// Tests pin the pid set instead of discovering it.
    fixed_pids: Option<Vec<u32>>,
    source: Source,
    pids: Vec<u32>,
    cores: f64,
    resolved_at: Option<Instant>,
    prev: Option<(Instant, Reading)>,
    smoothed: Option<f64>,
    throttled: Option<f64>,
}

impl CpuSampler {
    /// `app_port`: the TCP port the app listens on (its listening socket identifies its processes).
    pub fn new(spec: &CpuSpec, app_port: u16) -> Self {
        Self::with_roots(spec, app_port, PathBuf::from("/proc"), PathBuf::from("/sys/fs/cgroup"))
    }

    /// Same, reading a different procfs/sysfs root (tests): `proc_root` replaces "/proc", `cgroup_root` replaces
    /// "/sys/fs/cgroup".
    pub fn with_roots(spec: &CpuSpec, app_port: u16, proc_root: PathBuf, cgroup_root: PathBuf) -> Self {
        let mut s = CpuSampler {
            spec: spec.clone(),
            app_port,
            proc_root,
            cgroup_root,
            own_pid: std::process::id(),
            clk_tck: procfs::clk_tck(),
            fixed_pids: None,
            source: Source::None,
            pids: Vec::new(),
            cores: 1.0,
            resolved_at: None,
            prev: None,
            smoothed: None,
            throttled: None,
        };
        s.cores = s.fallback_cores();
        s
    }

    /// Test-only: measure exactly these pids through procfs (no discovery).
    #[cfg(test)]
    pub(crate) fn for_pids(spec: &CpuSpec, pids: Vec<u32>) -> Self {
        let mut s = Self::new(spec, 0);
        s.fixed_pids = Some(pids);
        s
    }

    /// Takes one sample at `now`; returns the smoothed utilisation (1.0 = the whole allowance busy; may exceed 1
    /// briefly; never NaN/negative) or None when no source works yet or only one sample exists.
    pub fn sample(&mut self, now: Instant) -> Option<f64> {
        let due = self.source == Source::None
            || self
                .resolved_at
                .is_none_or(|t| now.saturating_duration_since(t) >= RESOLVE_EVERY);
        if due {
            self.resolve(now);
        }
        let (mut reading, mut complete) = self.read();
        if !complete && !due {
            // a pid vanished or a file stopped reading: look again now rather than in up to 10 s
            self.resolve(now);
            (reading, complete) = self.read();
        }
        if !complete {
            tracing::debug!(source = ?self.source, "cpu: partial or failed read");
        }
        let Some(reading) = reading else {
            self.throttled = None;
            return None;
        };
        let Some((prev_at, prev)) = self.prev.take() else {
            self.prev = Some((now, reading));
            return None;
        };
        let dt = now.checked_duration_since(prev_at).unwrap_or_default();
        if dt.is_zero() {
            // no time passed (or a clock going backwards): keep the older baseline, nothing new to say
            self.prev = Some((prev_at, prev));
            return self.smoothed;
        }
        let dt_us = dt.as_secs_f64() * 1e6;
        let busy_us = self.busy_usec(&prev, &reading);
        self.throttled = match (&prev, &reading) {
            (
                Reading::Cgroup {
                    throttled_usec: Some(a),
                    ..
                },
                Reading::Cgroup {
                    throttled_usec: Some(b),
                    ..
                },
            ) => b
                .checked_sub(*a)
                .map(|d| d as f64 / dt_us)
                .filter(|t| t.is_finite())
                .map(|t| t.clamp(0.0, MAX_UTIL)),
            _ => None,
        };
        self.prev = Some((now, reading));
        let u = busy_us.map(|b| b / (dt_us * self.cores)).filter(|u| u.is_finite());
        if let Some(u) = u {
            let u = u.clamp(0.0, MAX_UTIL);
            let alpha = 1.0 - (-dt.as_secs_f64()).exp();
            self.smoothed = Some(self.smoothed.map_or(u, |s| s + alpha * (u - s)));
        }
        self.smoothed
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Last throttled share (cgroup `throttled_usec` delta / wall delta) when the cgroup source has it.
    pub fn throttled(&self) -> Option<f64> {
        self.throttled
    }

    /// The number of cores the allowance is (for /load display).
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Configured limit, else the host's online CPUs.
    fn fallback_cores(&self) -> f64 {
        match self.spec.limit_millicores {
            Some(m) if m > 0 => f64::from(m) / 1000.0,
            _ => procfs::online_cpus(),
        }
    }

    fn resolve(&mut self, now: Instant) {
        self.resolved_at = Some(now);
        // An explicit dir needs no pid, so skip the /proc scan for it.
        let explicit = match &self.spec.cgroup {
            CgroupChoice::Dir(d) if cgroup::usable(d) => Some(d.clone()),
            _ => None,
        };
        let pids = match (&explicit, &self.fixed_pids) {
            (Some(_), _) => Vec::new(),
            (None, Some(p)) => p.clone(),
            (None, None) => discover::app_pids(
                &self.proc_root,
                self.app_port,
                self.spec.process.as_deref(),
                self.own_pid,
            ),
        };
        let dir = match &self.spec.cgroup {
            CgroupChoice::Auto => pids
                .iter()
                .find_map(|&p| cgroup::app_dir(&self.proc_root, &self.cgroup_root, p, self.own_pid)),
            _ => explicit,
        };
        let source = match &dir {
            Some(d) => Source::Cgroup(d.clone()),
            None if !pids.is_empty() => Source::Procfs { pids: pids.len() },
            None => Source::None,
        };
        self.cores = dir
            .as_deref()
            .and_then(cgroup::read_max_cores)
            .unwrap_or_else(|| self.fallback_cores());
        let same = match (&self.source, &source) {
            (Source::Procfs { .. }, Source::Procfs { .. }) => true,
            (a, b) => a == b,
        };
        if !same {
            // counters of different sources don't subtract, and the old average measured something else
            tracing::info!(from = ?self.source, to = ?source, cores = self.cores, "cpu: measurement source changed");
            self.prev = None;
            self.smoothed = None;
            self.throttled = None;
        }
        self.pids = if dir.is_none() { pids } else { Vec::new() };
        self.source = source;
    }

    /// Current counters and whether every part of the source read.
    fn read(&self) -> (Option<Reading>, bool) {
        match &self.source {
            Source::Cgroup(dir) => match cgroup::read_stat(dir) {
                Some((usage_usec, throttled_usec)) => (
                    Some(Reading::Cgroup {
                        usage_usec,
                        throttled_usec,
                    }),
                    true,
                ),
                None => (None, false),
            },
            Source::Procfs { .. } => {
                let ticks: HashMap<u32, PidTicks> = self
                    .pids
                    .iter()
                    .filter_map(|&p| Some((p, procfs::read_pid(&self.proc_root, p)?)))
                    .collect();
                let complete = ticks.len() == self.pids.len();
                ((!ticks.is_empty()).then_some(Reading::Procfs(ticks)), complete)
            }
            Source::None => (None, false),
        }
    }

    /// CPU µs spent between two readings; None when they don't compare (other source, counter reset, or no pid
    /// seen in both).
    fn busy_usec(&self, prev: &Reading, cur: &Reading) -> Option<f64> {
        match (prev, cur) {
            (Reading::Cgroup { usage_usec: a, .. }, Reading::Cgroup { usage_usec: b, .. }) => {
                b.checked_sub(*a).map(|d| d as f64)
            }
            (Reading::Procfs(a), Reading::Procfs(b)) => {
                // A pid counts from its second sample; a reused pid (other starttime) is a new process.
                let deltas: Vec<u64> = b
                    .iter()
                    .filter_map(|(pid, now)| {
                        let before = a.get(pid).filter(|p| p.start == now.start)?;
                        Some(now.ticks.saturating_sub(before.ticks))
                    })
                    .collect();
                if deltas.is_empty() {
                    return None;
                }
                let ticks: f64 = deltas.iter().map(|&d| d as f64).sum();
                Some(ticks * 1e6 / self.clk_tck)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    const MS100: Duration = Duration::from_millis(100);

    fn spec(cgroup: CgroupChoice, limit: Option<u32>) -> CpuSpec {
        CpuSpec {
            cgroup,
            process: None,
            limit_millicores: limit,
            interval: Duration::from_secs(1),
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    fn write_stat(proc_root: &Path, pid: u32, ticks: u64, start: u64) {
        let line = format!(
            "{pid} (app (x) y) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 1 1 18446744073709551615 0 0"
        );
        fs::write(proc_root.join(format!("{pid}/stat")), line).unwrap();
    }

    /// A fake /proc with a listener on 8080 (inode 4242) held by `pids`.
    fn fake_proc(root: &Path, pids: &[u32]) {
        fs::create_dir_all(root.join("net")).unwrap();
        let tcp =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 \
                   100 0 0 10 0\n";
        fs::write(root.join("net/tcp"), tcp).unwrap();
        for &pid in pids {
            add_holder(root, pid);
        }
    }

    fn add_holder(root: &Path, pid: u32) {
        let fd = root.join(format!("{pid}/fd"));
        fs::create_dir_all(&fd).unwrap();
        symlink("socket:[4242]", fd.join("3")).unwrap();
        write_stat(root, pid, 0, 1);
    }

    #[test]
    fn cgroup_dir_formula_and_throttling() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cpu.max"), "50000 100000\n").unwrap();
        let stat = |usage: u64, thr: u64| {
            let text = format!("usage_usec {usage}\nuser_usec 1\nsystem_usec 1\nthrottled_usec {thr}\n");
            fs::write(dir.join("cpu.stat"), text).unwrap();
        };
        stat(1_000_000, 500);
        let mut s = CpuSampler::with_roots(
            &spec(CgroupChoice::Dir(dir.clone()), Some(4000)),
            1,
            "/nope".into(),
            "/nope".into(),
        );
        let t0 = Instant::now();
        assert_eq!(s.sample(t0), None, "one sample is no rate");
        assert_eq!(s.source(), &Source::Cgroup(dir.clone()));
        assert_eq!(s.source().label(), "cgroup");
        assert_eq!(s.cores(), 0.5, "cpu.max wins over limit_millicores");
        stat(1_090_000, 30_500);
        assert!(close(s.sample(t0 + MS100), 1.8));
        assert!(close(s.throttled(), 0.3));
        stat(1_135_000, 30_500);
        let alpha = 1.0 - (-0.1f64).exp();
        assert!(close(s.sample(t0 + 2 * MS100), 1.8 + alpha * (0.9 - 1.8)));
        assert!(close(s.throttled(), 0.0));
        // unlimited: configured millicores are the allowance (picked up at the next resolution)
        fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 2000000\n").unwrap();
        let t1 = t0 + Duration::from_secs(11);
        s.sample(t1);
        assert_eq!(s.cores(), 4.0);
        assert_eq!(s.throttled(), None, "throttled_usec absent");
        // counter went backwards (cgroup recreated): no new rate, the old average stays, the baseline moves
        fs::write(dir.join("cpu.stat"), "usage_usec 10\n").unwrap();
        let before = s.sample(t1 + MS100);
        assert!(before.is_some_and(|v| v.is_finite() && v >= 0.0));
        fs::write(dir.join("cpu.stat"), "usage_usec 400010\n").unwrap();
        let got = s.sample(t1 + 2 * MS100).unwrap();
        let want = before.unwrap() + alpha * (1.0 - before.unwrap());
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // cgroup vanishes: re-resolved at once, nothing else measurable -> None
        fs::remove_file(dir.join("cpu.stat")).unwrap();
        assert_eq!(s.sample(t1 + 3 * MS100), None);
        assert_eq!(s.source(), &Source::None);
    }

    #[test]
    fn auto_cgroup_via_listener_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let (proc_root, cg_root) = (tmp.path().join("proc"), tmp.path().join("cg"));
        fake_proc(&proc_root, &[100]);
        fs::write(proc_root.join("100/cgroup"), "0::/kubepods/pod1/app\n").unwrap();
        let dir = cg_root.join("kubepods/pod1/app");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 0\n").unwrap();
        fs::write(dir.join("cpu.max"), "200000 100000\n").unwrap();
        let mut s = CpuSampler::with_roots(
            &spec(CgroupChoice::Auto, None),
            8080,
            proc_root.clone(),
            cg_root.clone(),
        );
        let t0 = Instant::now();
        assert_eq!(s.sample(t0), None);
        assert_eq!(s.source(), &Source::Cgroup(dir.clone()));
        assert_eq!(s.cores(), 2.0);
        fs::write(dir.join("cpu.stat"), "usage_usec 100000\n").unwrap();
        assert!(close(s.sample(t0 + MS100), 0.5));
        assert_eq!(s.throttled(), None);

        // a `..` path (app outside our cgroup namespace) is refused: procfs instead
        fs::write(proc_root.join("100/cgroup"), "0::/../app\n").unwrap();
        let mut s = CpuSampler::with_roots(&spec(CgroupChoice::Auto, Some(1000)), 8080, proc_root.clone(), cg_root);
        s.sample(t0);
        assert_eq!(s.source(), &Source::Procfs { pids: 1 });
        assert_eq!(s.cores(), 1.0);
        // Off skips the cgroup even when it would work
        fs::write(proc_root.join("100/cgroup"), "0::/kubepods/pod1/app\n").unwrap();
        let mut s = CpuSampler::with_roots(&spec(CgroupChoice::Off, None), 8080, proc_root, tmp.path().join("cg"));
        s.sample(t0);
        assert_eq!(s.source().label(), "procfs");
    }

    #[test]
    fn procfs_formula_discovery_and_pid_churn() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let me = std::process::id();
        fake_proc(root, &[100, 101, me]);
        // a broken Dir falls through to procfs
        let mut s = CpuSampler::with_roots(
            &spec(CgroupChoice::Dir(root.join("nope")), Some(500)),
            8080,
            root.into(),
            root.into(),
        );
        s.clk_tck = 100.0;
        let t0 = Instant::now();
        assert_eq!(s.sample(t0), None);
        assert_eq!(s.source(), &Source::Procfs { pids: 2 }, "own pid excluded");
        assert_eq!(s.pids, vec![100, 101]);
        assert_eq!(s.cores(), 0.5);
        // 10 + 5 ticks = 150 ms of CPU in 100 ms on a 0.5-core allowance
        write_stat(root, 100, 10, 1);
        write_stat(root, 101, 5, 1);
        assert!(close(s.sample(t0 + MS100), 3.0));
        // a new holder before the 10 s re-resolution is not seen yet
        add_holder(root, 102);
        write_stat(root, 100, 15, 1);
        let alpha = 1.0 - (-0.1f64).exp();
        let v = 3.0 + alpha * (1.0 - 3.0);
        assert!(close(s.sample(t0 + 2 * MS100), v));
        assert_eq!(s.source(), &Source::Procfs { pids: 2 });
        // after 10 s it is; it contributes nothing on its first sample
        let t1 = t0 + 2 * MS100 + RESOLVE_EVERY;
        write_stat(root, 102, 1000, 1);
        s.sample(t1);
        assert_eq!(s.source(), &Source::Procfs { pids: 3 });
        write_stat(root, 102, 1001, 1);
        let got = s.sample(t1 + MS100).unwrap();
        // the 10 s gap: pids 100/101 idle, so u = 0 over it; then pid 102 adds 1 tick
        let after_gap = v + (1.0 - (-(RESOLVE_EVERY.as_secs_f64())).exp()) * (0.0 - v);
        let want = after_gap + alpha * (0.2 - after_gap);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // pid 101 exits: re-resolved at once, the others still count
        fs::remove_dir_all(root.join("101")).unwrap();
        write_stat(root, 100, 20, 1);
        let before = got;
        let got = s.sample(t1 + 2 * MS100).unwrap();
        assert_eq!(s.source(), &Source::Procfs { pids: 2 });
        let want = before + alpha * (1.0 - before);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // pid reuse (new starttime) is a new process: no pid in both samples -> no new rate
        fs::remove_dir_all(root.join("102")).unwrap();
        write_stat(root, 100, 999, 2);
        assert!(close(s.sample(t1 + 3 * MS100), got));
        // every holder gone -> None, and the average is dropped
        fs::remove_dir_all(root.join("100")).unwrap();
        assert_eq!(s.sample(t1 + 4 * MS100), None);
        assert_eq!(s.source(), &Source::None);
        assert_eq!(s.sample(t1 + 5 * MS100), None);
    }

    #[test]
    fn process_name_selects_pids() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (pid, comm) in [(7, "worker\n"), (8, "worker\n"), (9, "shell\n")] {
            fs::create_dir_all(root.join(pid.to_string())).unwrap();
            fs::write(root.join(format!("{pid}/comm")), comm).unwrap();
            write_stat(root, pid, 0, 1);
        }
        let mut sp = spec(CgroupChoice::Auto, None);
        sp.process = Some("worker".into());
        let mut s = CpuSampler::with_roots(&sp, 1, root.into(), root.join("cg"));
        s.sample(Instant::now());
        assert_eq!(s.source(), &Source::Procfs { pids: 2 });
    }

    #[test]
    fn nothing_measurable_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = CpuSampler::with_roots(
            &spec(CgroupChoice::Auto, None),
            8080,
            tmp.path().into(),
            tmp.path().into(),
        );
        let t0 = Instant::now();
        assert_eq!(s.sample(t0), None);
        assert_eq!(s.sample(t0 + MS100), None);
        assert_eq!(s.source(), &Source::None);
        assert_eq!(s.source().label(), "none");
        assert_eq!(s.throttled(), None);
        assert!(s.cores() >= 1.0);
        // zero millicores is no limit, never a zero allowance
        let s = CpuSampler::with_roots(
            &spec(CgroupChoice::Off, Some(0)),
            1,
            tmp.path().into(),
            tmp.path().into(),
        );
        assert!(s.cores() > 0.0);
    }

    /// Kills the child even when the test panics.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn busy_child() -> Reap {
        Reap(
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap(),
        )
    }

    fn assert_one_core_busy(s: &mut CpuSampler) {
        let t0 = Instant::now();
        assert_eq!(s.sample(t0), None);
        std::thread::sleep(Duration::from_millis(500));
        let u = s.sample(Instant::now()).expect("second sample gives a rate");
        let n = procfs::online_cpus();
        assert_eq!(s.cores(), n);
        assert!(u > 0.3 / n && u < 1.2, "u = {u} with {n} cores");
    }

    /// Live /proc: a child spinning one core reads as about one core's share of the host.
    #[test]
    fn live_busy_child_for_pids() {
        let child = busy_child();
        let mut s = CpuSampler::for_pids(&spec(CgroupChoice::Off, None), vec![child.0.id()]);
        assert_one_core_busy(&mut s);
        assert_eq!(s.source(), &Source::Procfs { pids: 1 });
    }

    /// Live /proc end to end: the spinning child holds a listener (inherited fd), we hold it too but are excluded.
    #[test]
    #[allow(unsafe_code)] // test only: the child must inherit the listener.
    fn live_busy_listener_holder_is_discovered() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fd = listener.as_raw_fd();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "while :; do :; done"]);
        // SAFETY: fcntl is async-signal-safe; clearing CLOEXEC in the forked child only lets it keep the listener.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = Reap(cmd.spawn().unwrap());
        // Auto: the child shares our cgroup (or the host has no usable v2 one), so procfs must be chosen
        let mut s = CpuSampler::new(&spec(CgroupChoice::Auto, None), port);
        assert_one_core_busy(&mut s);
        assert_eq!(s.source(), &Source::Procfs { pids: 1 });
        assert_eq!(s.pids, vec![child.0.id()]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// Whatever the files say, sampling never panics and never yields NaN or a negative value.
        #[test]
        fn garbage_files_never_break_sampling(stats in proptest::collection::vec("\\PC{0,80}", 3), max in "\\PC{0,20}",
                                              pstat in "\\PC{0,120}", cg in "\\PC{0,40}", tcp in "\\PC{0,200}") {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path();
            fake_proc(root, &[100]);
            fs::write(root.join("net/tcp6"), &tcp).unwrap();
            fs::write(root.join("100/cgroup"), &cg).unwrap();
            fs::create_dir_all(root.join("cg")).unwrap();
            fs::write(root.join("cg/cpu.max"), &max).unwrap();
            let t0 = Instant::now();
            for choice in [CgroupChoice::Dir(root.join("cg")), CgroupChoice::Auto] {
                let mut s = CpuSampler::with_roots(&spec(choice, None), 8080, root.into(), root.into());
                for (i, st) in stats.iter().enumerate() {
                    fs::write(root.join("cg/cpu.stat"), st).unwrap();
                    fs::write(root.join("100/stat"), if i == 1 { pstat.as_str() } else { st.as_str() }).unwrap();
                    let v = s.sample(t0 + MS100 * i as u32);
                    prop_assert!(v.is_none_or(|v| v.is_finite() && (0.0..=MAX_UTIL).contains(&v)));
                    prop_assert!(s.throttled().is_none_or(|t| t.is_finite() && t >= 0.0));
                    prop_assert!(s.cores() > 0.0 && s.cores().is_finite());
                }
            }
        }
    }
}
