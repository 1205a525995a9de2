//! Finding the app's processes: holders of its listening socket (via `/proc/net/tcp{,6}` and `fd/` links), or
//! processes whose `comm` matches a configured name.

use std::fs;
use std::path::Path;

/// Inodes of sockets in `LISTEN` state (`st == 0A`) on `port`, from a `/proc/net/tcp` or `tcp6` table.
pub fn listening_inodes(tcp_table: &str, port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for row in tcp_table.lines() {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let (Some(local), Some(st), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
            continue;
        };
        let Some((ip, hex_port)) = local.rsplit_once(':') else {
            continue;
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit()) || !st.eq_ignore_ascii_case("0A") {
            continue;
        }
        if u16::from_str_radix(hex_port, 16).ok() != Some(port) {
            continue;
        }
        match inode.parse::<u64>() {
            // inode 0 names no socket (`socket:[0]` would never be an fd target worth matching)
            Ok(n) if n != 0 && !out.contains(&n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The inode in a `socket:[N]` fd link target.
fn socket_inode(target: &str) -> Option<u64> {
    target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Numeric entries of `proc_root` (process ids), without `exclude` (the sidecar itself).
fn pids(proc_root: &Path, exclude: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| p != exclude)
        .collect();
    pids.sort_unstable();
    pids
}

fn holds_any(proc_root: &Path, pid: u32, inodes: &[u64]) -> bool {
    // Other users' fd dirs are unreadable without ptrace rights: such pids are skipped silently.
    let Ok(fds) = fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|t| socket_inode(t.to_str()?))
            .is_some_and(|n| inodes.contains(&n))
    })
}

/// Pids holding any of `inodes` (several when pre-fork workers share the listener).
pub(super) fn socket_holders(proc_root: &Path, inodes: &[u64], exclude: u32) -> Vec<u32> {
    if inodes.is_empty() {
        return Vec::new();
    }
    pids(proc_root, exclude)
        .into_iter()
        .filter(|&p| holds_any(proc_root, p, inodes))
        .collect()
}

/// Pids whose `comm` equals `name`. The kernel keeps only 15 bytes of comm, so a longer name is compared by
/// its first 15 bytes; comm is compared as bytes as it need not be UTF-8.
pub(super) fn comm_matches(proc_root: &Path, name: &str, exclude: u32) -> Vec<u32> {
    let want = name.as_bytes().get(..15).unwrap_or(name.as_bytes());
    pids(proc_root, exclude)
        .into_iter()
        .filter(|&p| {
            fs::read(proc_root.join(p.to_string()).join("comm")).is_ok_and(|c| c.trim_ascii() == want.trim_ascii())
        })
        .collect()
}

/// The app's pids: by `process` name when configured, else by its listener on `port`.
pub(super) fn app_pids(proc_root: &Path, port: u16, process: Option<&str>, exclude: u32) -> Vec<u32> {
    if let Some(name) = process {
        return comm_matches(proc_root, name, exclude);
    }
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = fs::read(proc_root.join("net").join(table)) {
            inodes.extend(listening_inodes(&String::from_utf8_lossy(&text), port));
        }
    }
    socket_holders(proc_root, &inodes, exclude)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout \
                          inode\n";

    fn row(sl: u32, ip: &str, port: u16, st: &str, inode: u64) -> String {
        format!(
            "  {sl}: {ip}:{port:04X} 00000000:0000 {st} 00000000:00000000 00:00000000 00000000  1000        0 \
             {inode} 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    #[test]
    fn listening_inode_examples() {
        let table = format!(
            "{HEADER}{}{}{}{}",
            row(0, "0100007F", 8080, "0A", 111),
            row(1, "0100007F", 8080, "01", 222), // established connection on the same port
            row(2, "00000000", 9090, "0A", 333),
            row(3, "00000000", 8080, "0A", 0)
        );
        assert_eq!(listening_inodes(&table, 8080), vec![111]);
        assert_eq!(listening_inodes(&table, 9090), vec![333]);
        assert!(listening_inodes(&table, 1).is_empty());
        let v6 = row(0, "00000000000000000000000001000000", 8080, "0A", 444);
        assert_eq!(listening_inodes(&v6, 8080), vec![444]);
        assert!(listening_inodes("garbage\n\n  0: zz:1F90 0 0A a b c d e 5\n", 8080).is_empty());
    }

    #[test]
    fn socket_inode_examples() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[12345"), None);
    }

    /// Fake /proc: pids 100 and 101 (pre-fork) hold inode 5555, 200 holds another socket, 300 has no fd dir.
    #[test]
    fn discovers_listener_holders_and_comm() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("net")).unwrap();
        fs::write(
            root.join("net/tcp"),
            format!("{HEADER}{}", row(0, "00000000", 8080, "0A", 5555)),
        )
        .unwrap();
        fs::write(root.join("net/tcp6"), HEADER).unwrap();
        for (pid, links) in [
            (100, &["socket:[5555]", "/dev/null"][..]),
            (101, &["socket:[5555]"]),
            (200, &["socket:[1]"]),
        ] {
            let fd = root.join(format!("{pid}/fd"));
            fs::create_dir_all(&fd).unwrap();
            for (i, l) in links.iter().enumerate() {
                symlink(l, fd.join(i.to_string())).unwrap();
            }
            fs::write(
                root.join(format!("{pid}/comm")),
                if pid == 200 { "other\n" } else { "server\n" },
            )
            .unwrap();
        }
        fs::create_dir_all(root.join("300")).unwrap();
        fs::create_dir_all(root.join("self")).unwrap();
        assert_eq!(app_pids(root, 8080, None, 0), vec![100, 101]);
        assert_eq!(app_pids(root, 8080, None, 101), vec![100]);
        assert!(app_pids(root, 9090, None, 0).is_empty());
        assert_eq!(app_pids(root, 0, Some("server"), 100), vec![101]);
        assert_eq!(app_pids(root, 0, Some("other"), 0), vec![200]);
        fs::write(root.join("200/comm"), "a-very-long-nam\n").unwrap();
        assert_eq!(app_pids(root, 0, Some("a-very-long-name-indeed"), 0), vec![200]);
        assert!(app_pids(&root.join("missing"), 8080, None, 0).is_empty());
    }

    /// Live kernel: our own listener appears in /proc/net/tcp and our fd table, but we exclude ourselves.
    #[test]
    fn live_listener_is_found_and_self_excluded() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let table = fs::read_to_string("/proc/net/tcp").unwrap();
        let inodes = listening_inodes(&table, port);
        assert_eq!(inodes.len(), 1, "{table}");
        let me = std::process::id();
        assert!(holds_any(Path::new("/proc"), me, &inodes));
        assert!(!app_pids(Path::new("/proc"), port, None, me).contains(&me));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*", port: u16) {
            let _ = listening_inodes(&s, port);
            let _ = socket_inode(&s);
        }

        #[test]
        fn well_formed_rows(rows in proptest::collection::vec((prop_oneof![0u16..4, any::<u16>()], prop_oneof!["0A", "01", "06"], 1u64..u64::MAX,
                            prop_oneof!["0100007F", "00000000000000000000000000000000"]), 0..12), port in 0u16..4) {
            let mut table = HEADER.to_string();
            let mut want = Vec::new();
            for (i, (p, st, inode, ip)) in rows.iter().enumerate() {
                table.push_str(&row(i as u32, ip, *p, st, *inode));
                if *p == port && st == "0A" && !want.contains(inode) {
                    want.push(*inode);
                }
            }
            prop_assert_eq!(listening_inodes(&table, port), want);
        }
    }
}
