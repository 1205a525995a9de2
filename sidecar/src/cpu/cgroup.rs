//! cgroup v2 side: finding the app's cgroup directory and reading `cpu.stat` / `cpu.max` there.

use std::fs;
use std::path::{Path, PathBuf};

/// `usage_usec` and, when the kernel reports it, `throttled_usec` from a `cpu.stat` file.
pub fn parse_cpu_stat(text: &str) -> Option<(u64, Option<u64>)> {
    let mut usage = None;
    let mut throttled = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(value), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        match key {
            "usage_usec" => usage = value.parse().ok(),
            "throttled_usec" => throttled = value.parse().ok(),
            _ => {}
        }
    }
    Some((usage?, throttled))
}

/// Cores granted by a `cpu.max` file (`$MAX $PERIOD`); `None` when unlimited (`max`) or malformed.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let max: u64 = it.next()?.parse().ok()?;
    let period: u64 = it.next()?.parse().ok()?;
    if max == 0 || period == 0 {
        return None;
    }
    let cores = max as f64 / period as f64;
    (cores.is_finite() && cores > 0.0).then_some(cores)
}

/// The v2 path (`0::PATH` line) from a `/proc/<pid>/cgroup` file. Paths with `..` are refused: they point
/// outside our cgroup namespace, so joining them under our mount would name some other cgroup.
pub fn parse_cgroup_path(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim_end();
    (path.starts_with('/') && !path.contains("..")).then(|| path.to_string())
}

/// Reads `cpu.stat` in `dir`.
pub(super) fn read_stat(dir: &Path) -> Option<(u64, Option<u64>)> {
    parse_cpu_stat(&fs::read_to_string(dir.join("cpu.stat")).ok()?)
}

/// Cores from `cpu.max` in `dir`, when limited.
pub(super) fn read_max_cores(dir: &Path) -> Option<f64> {
    parse_cpu_max(&fs::read_to_string(dir.join("cpu.max")).ok()?)
}

/// A cgroup dir is usable when its `cpu.stat` reads and parses (the cpu controller is enabled there).
pub(super) fn usable(dir: &Path) -> bool {
    read_stat(dir).is_some()
}

fn cgroup_path_of(proc_root: &Path, pid: u32) -> Option<String> {
    // Lossy: cgroup names may be any bytes; a mangled name simply won't exist and falls through.
    let bytes = fs::read(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    parse_cgroup_path(&String::from_utf8_lossy(&bytes))
}

/// The usable cgroup dir of `pid`, unless it is the sidecar's own cgroup (then it would count the sidecar too,
/// and in a shared-namespace setup the "root" path `/` is just our own cgroup, not the app's).
pub(super) fn app_dir(proc_root: &Path, cgroup_root: &Path, pid: u32, own_pid: u32) -> Option<PathBuf> {
    let path = cgroup_path_of(proc_root, pid)?;
    if cgroup_path_of(proc_root, own_pid).as_deref() == Some(path.as_str()) {
        return None;
    }
    let dir = cgroup_root.join(path.trim_start_matches('/'));
    usable(&dir).then_some(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_stat_examples() {
        let full = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 10\nnr_throttled 2\n\
                    throttled_usec 7890\nnr_bursts 0\nburst_usec 0\n";
        assert_eq!(parse_cpu_stat(full), Some((123456, Some(7890))));
        assert_eq!(
            parse_cpu_stat("usage_usec 5\nuser_usec 3\nsystem_usec 2\n"),
            Some((5, None))
        );
        assert_eq!(parse_cpu_stat("user_usec 3\n"), None);
        assert_eq!(parse_cpu_stat("usage_usec -1\n"), None);
        assert_eq!(parse_cpu_stat("usage_usec 1 2\n"), None);
        assert_eq!(parse_cpu_stat(""), None);
    }

    #[test]
    fn cpu_max_examples() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2.0));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("0 100000"), None);
        assert_eq!(parse_cpu_max("100000 0"), None);
        assert_eq!(parse_cpu_max("100000"), None);
        assert_eq!(parse_cpu_max("150000 100000 extra"), Some(1.5));
    }

    #[test]
    fn cgroup_path_examples() {
        let hybrid = "12:cpu,cpuacct:/kubepods/x\n1:name=systemd:/a\n0::/kubepods.slice/pod1/cri-abc.scope\n";
        assert_eq!(
            parse_cgroup_path(hybrid).as_deref(),
            Some("/kubepods.slice/pod1/cri-abc.scope")
        );
        assert_eq!(parse_cgroup_path("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_cgroup_path("0::/../other-container\n"), None);
        assert_eq!(parse_cgroup_path("1:cpu:/x\n"), None);
        assert_eq!(parse_cgroup_path("0::relative\n"), None);
    }

    #[test]
    fn own_cgroup_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (proc_root, cg_root) = (tmp.path().join("proc"), tmp.path().join("cg"));
        for pid in ["10", "11"] {
            fs::create_dir_all(proc_root.join(pid)).unwrap();
        }
        fs::write(proc_root.join("10/cgroup"), "0::/pod/app\n").unwrap();
        fs::write(proc_root.join("11/cgroup"), "0::/pod/app\n").unwrap();
        fs::create_dir_all(cg_root.join("pod/app")).unwrap();
        fs::write(cg_root.join("pod/app/cpu.stat"), "usage_usec 1\n").unwrap();
        assert_eq!(app_dir(&proc_root, &cg_root, 10, 99), Some(cg_root.join("pod/app")));
        assert_eq!(app_dir(&proc_root, &cg_root, 10, 11), None);
        fs::write(proc_root.join("11/cgroup"), "0::/pod/sidecar\n").unwrap();
        assert_eq!(app_dir(&proc_root, &cg_root, 10, 11), Some(cg_root.join("pod/app")));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_cpu_stat(&s);
            let _ = parse_cpu_max(&s);
            let _ = parse_cgroup_path(&s);
        }

        #[test]
        fn parsers_never_panic_on_near_misses(s in "(usage_usec|throttled_usec|max|0::|[0-9]{1,22}|[ \n:/.]){0,20}") {
            let _ = parse_cpu_stat(&s);
            if let Some(c) = parse_cpu_max(&s) {
                prop_assert!(c.is_finite() && c > 0.0);
            }
            if let Some(p) = parse_cgroup_path(&s) {
                prop_assert!(p.starts_with('/') && !p.contains(".."));
            }
        }

        #[test]
        fn well_formed_cpu_stat(usage: u64, throttled in proptest::option::of(any::<u64>()), user: u64) {
            let mut text = format!("usage_usec {usage}\nuser_usec {user}\nsystem_usec 0\nnr_periods 3\n");
            if let Some(t) = throttled {
                text.push_str(&format!("nr_throttled 1\nthrottled_usec {t}\n"));
            }
            prop_assert_eq!(parse_cpu_stat(&text), Some((usage, throttled)));
        }

        #[test]
        fn well_formed_cpu_max(max in 1u64..10_000_000, period in 1u64..1_000_000) {
            let got = parse_cpu_max(&format!("{max} {period}\n"));
            prop_assert_eq!(got, Some(max as f64 / period as f64));
        }

        #[test]
        fn well_formed_cgroup_path(path in "(/[a-z0-9_-]{1,12}){1,5}") {
            let text = format!("9:memory:/x\n0::{path}\n");
            prop_assert_eq!(parse_cgroup_path(&text), Some(path));
        }
    }
}
