//! procfs side: per-process CPU ticks from `/proc/<pid>/stat`, and the host constants the formulas need.

use std::fs;
use std::path::Path;

/// One process's counters: `start` (starttime, field 22) tells a reused pid from the process we saw before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PidTicks {
    pub ticks: u64,
    pub start: u64,
}

/// Fields after the comm's closing `)`: token 0 is proc(5) field 3 (state), so field N is token N − 3.
fn parse_stat_tail(tail: &str) -> Option<PidTicks> {
    let mut it = tail.split_whitespace();
    let utime: u64 = it.nth(11)?.parse().ok()?; // field 14
    let stime: u64 = it.next()?.parse().ok()?; // field 15
    let start: u64 = it.nth(6)?.parse().ok()?; // field 22
    Some(PidTicks {
        ticks: utime.checked_add(stime)?,
        start,
    })
}

/// utime + stime (proc(5) fields 14 and 15, in clock ticks) from a `/proc/<pid>/stat` line. The split is on
/// the LAST `)` because the comm field may itself hold spaces and parentheses.
pub fn parse_proc_stat_ticks(text: &str) -> Option<u64> {
    let (_, tail) = text.rsplit_once(')')?;
    parse_stat_tail(tail).map(|t| t.ticks)
}

/// Reads `<proc_root>/<pid>/stat`. Works on bytes first: comm may be any bytes, not UTF-8.
pub(super) fn read_pid(proc_root: &Path, pid: u32) -> Option<PidTicks> {
    let bytes = fs::read(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let tail = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    parse_stat_tail(tail)
}

/// Clock ticks per second for the stat counters.
pub(super) fn clk_tck() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as f64,
        _ => 100.0,
    }
}

/// Online CPUs of the host: the allowance when neither a cgroup limit nor a configured one is known.
pub(super) fn online_cpus() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(v)) if v > 0 => v as f64,
        _ => 1.0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stat_line(pid: u32, comm: &str, utime: u64, stime: u64, start: u64) -> String {
        format!(
            "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 1234 0 0 0 {utime} {stime} 0 0 20 0 4 0 {start} \
             123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
        )
    }

    #[test]
    fn proc_stat_examples() {
        assert_eq!(parse_proc_stat_ticks(&stat_line(42, "nginx", 150, 50, 9)), Some(200));
        // comm with spaces and parentheses: only the last ')' ends it
        assert_eq!(
            parse_proc_stat_ticks(&stat_line(7, "a) b (c) 1 2 3", 10, 5, 1)),
            Some(15)
        );
        assert_eq!(parse_proc_stat_ticks("42 (x) S 1 2 3"), None);
        assert_eq!(parse_proc_stat_ticks("no paren 1 2 3 4 5 6 7 8 9 10 11 12 13 14"), None);
        assert_eq!(parse_proc_stat_ticks(""), None);
    }

    #[test]
    fn live_self_stat_parses() {
        let pid = std::process::id();
        let t = read_pid(Path::new("/proc"), pid).expect("own stat");
        let again = read_pid(Path::new("/proc"), pid).expect("own stat");
        assert_eq!(t.start, again.start);
        assert!(again.ticks >= t.ticks);
        assert!(clk_tck() > 0.0 && online_cpus() >= 1.0);
    }

    #[test]
    fn non_utf8_comm_reads() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("5")).unwrap();
        let mut bytes = b"5 (\xff\xfe)) S".to_vec();
        bytes.extend_from_slice(stat_line(5, "x", 3, 4, 77).split_once(") S").unwrap().1.as_bytes());
        fs::write(tmp.path().join("5/stat"), bytes).unwrap();
        assert_eq!(read_pid(tmp.path(), 5), Some(PidTicks { ticks: 7, start: 77 }));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_proc_stat_ticks(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "([0-9]{1,21}|[ ()a-z-]){0,60}") {
            let _ = parse_proc_stat_ticks(&s);
        }

        #[test]
        fn well_formed_rows(pid: u32, comm in "[ -~]{0,15}", utime in 0u64..u64::MAX / 2, stime in 0u64..u64::MAX / 2,
                            start: u64) {
            prop_assert_eq!(parse_proc_stat_ticks(&stat_line(pid, &comm, utime, stime, start)), Some(utime + stime));
        }
    }
}
