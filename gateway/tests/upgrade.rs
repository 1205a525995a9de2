//! Zero-downtime binary upgrades with real processes on loopback: ~1000 rps open loop (the
//! load tester's engine, whose HTTP/1.1 client never retries) through three upgrades with a
//! config reload between them loses no request and refuses no connection on any listener;
//! requests in flight on the old process get their answer; each old process writes out its
//! access log and exits. A failed upgrade — bad config, no such process, nobody to take the
//! sockets, nobody to hand them over, an unusable socket path — leaves the old one serving.
//! The systemd unit's `ExecReload` performs an upgrade (a TLS listener moving too) and the new
//! process becomes the main one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arena_loadtest::engine::{self, Plan, PlanOptions};
use arena_loadtest::scenario::{self, NoExtensions};
use arena_testkit::{arena, free_addr, wait, Process};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::gateway::Pod;
use support::procs::{bin, TempDir};

/// The old process's grace period: longer than the slow pod takes after pingora's 5 s of
/// accepting beside the new one, so its request is answered during the drain.
const GRACE: &str = "8s";
/// What the slow pod takes to answer.
const SLOW: &str = "9s";
/// Bound for anything to happen (an old process to exit, a reload to show).
const BOUND: Duration = Duration::from_secs(60);

/// A gateway's ports, files and pods.
struct Site {
    public: SocketAddr,
    second: SocketAddr,
    admin: SocketAddr,
    sock: PathBuf,
    log: PathBuf,
    config: PathBuf,
    fast: Vec<String>,
    slow: String,
    dir: TempDir,
}

impl Site {
    fn new(tag: &str, fast: &[&Pod], slow: &Pod) -> Site {
        let dir = TempDir::new(tag);
        Site {
            public: free_addr("127.0.0.1").unwrap(),
            second: free_addr("127.0.0.1").unwrap(),
            admin: free_addr("127.0.0.1").unwrap(),
            sock: dir.0.join("upgrade.sock"),
            log: dir.0.join("access.log"),
            config: dir.0.join("gateway.yaml"),
            fast: fast.iter().map(|p| p.addr.to_string()).collect(),
            slow: slow.addr.to_string(),
            dir,
        }
    }

    /// Config generation `g`: the `matches` route is named `matches-g{g}` (visible in
    /// `x-arena-route`), so traffic shows which configuration served it.
    fn text(&self, g: u32, sock: &Path) -> String {
        let fast = self
            .fast
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let lb = ["p2c_ewma", "least_inflight", "round_robin"][g as usize % 3];
        format!(
            "listeners:\n  - {{ name: public, address: {} }}\n  - {{ name: second, address: {} }}\n\
             admin: {{ address: {}, token_env: ARENA_TEST_ADMIN_TOKEN }}\ndebug_headers: true\n\
             server:\n  threads: 2\n  grace_period: {GRACE}\n  graceful_shutdown_timeout: 2s\n  watch_debounce: 0s\n  upgrade_sock: {}\n\
             access_log: {{ output: {}, sample: 100% }}\n\
             clusters:\n  - {{ name: fast, endpoints: [{fast}], lb: {lb} }}\n  - {{ name: slow, endpoints: [\"{}\"] }}\n\
             routes:\n  - {{ name: slow, match: {{ path_prefix: /v1/players }}, cluster: slow, timeout: 30s }}\n\
             \x20 - {{ name: matches-g{g}, match: {{ path_prefix: /v1/matches }}, cluster: fast, timeout: 5s }}\n",
            self.public,
            self.second,
            self.admin,
            sock.display(),
            self.log.display(),
            self.slow
        )
    }

    /// Writes generation `g` (atomically, as a deploy tool would).
    fn write(&self, g: u32) {
        self.write_to(&self.config, &self.text(g, &self.sock));
    }

    fn write_to(&self, path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

const ENV: [(&str, &str); 2] = [("ARENA_TEST_ADMIN_TOKEN", "t"), ("RUST_LOG", "info")];

/// One gateway process: started by the test (its child), or by `arena-gateway upgrade` (then
/// an orphan, killed with the upgrade command's process group at the end).
enum Gen {
    Child(Process),
    Orphan { pid: u32, _upgrader: Process },
}

impl Gen {
    fn pid(&self) -> u32 {
        match self {
            Gen::Child(p) => p.pid(),
            Gen::Orphan { pid, .. } => *pid,
        }
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// The process has exited; `Some(success)` when the test is its parent and saw the status.
    fn exited(&mut self) -> Option<Option<bool>> {
        match self {
            Gen::Child(p) => p.try_status().map(|s| Some(s.success())),
            Gen::Orphan { pid, .. } => gone(*pid).then_some(None),
        }
    }

    fn wait_exit(&mut self, what: &str) -> Option<bool> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(start.elapsed() < BOUND, "{what} (pid {}) did not exit", self.pid());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// No such process, or a zombie nobody reaps yet (an orphan's reaper may be slow).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// The one command: `arena-gateway upgrade -c CONFIG --pid OLD`; returns the new generation.
fn upgrade_with_command(site: &Site, old: &Gen) -> Gen {
    let mut cmd = Command::new(bin("arena-gateway"));
    cmd.args(["upgrade", "-c"])
        .arg(&site.config)
        .args(["--pid", &old.pid().to_string()])
        .envs(ENV);
    let (upgrader, line) = Process::spawn_until_line("upgrade", cmd, "upgraded:", BOUND).unwrap();
    let pid = line
        .split("-> ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no new pid in `{line}`"));
    Gen::Orphan {
        pid,
        _upgrader: upgrader,
    }
}

/// By hand: start `run --upgrade`, wait until it waits on the socket, SIGQUIT the old one,
/// wait until the new one holds the sockets.
fn upgrade_by_hand(site: &Site, old: &Gen) -> Gen {
    let mut next = arena::start_gateway_upgrade(&site.config, &ENV).unwrap();
    next.wait_until("waiting on the upgrade socket", BOUND, || {
        wait::is_unix_listening(&site.sock)
    })
    .unwrap();
    old.signal(Signal::SIGQUIT);
    next.wait_until("holding the listening sockets", BOUND, || {
        !wait::is_unix_listening(&site.sock)
    })
    .unwrap();
    Gen::Child(next)
}

/// A fresh-connection HTTP/1.1 GET (`connection: close`): status and headers. The error keeps
/// its kind, so a refused connection is told apart from anything else.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: arena.test\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in `{text}`")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// Outcomes of the probes, by kind.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, what: &str, r: std::io::Result<(u16, Vec<(String, String)>)>) {
        match r {
            Ok((200, _)) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.samples.lock().unwrap().push(format!("{what}: {r:?}"));
    }

    fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Fresh connections, one after the other, to the second proxy listener and the admin
/// listener until `stop`: every one must be accepted and answered.
fn probe(site: &Site, stop: Arc<AtomicBool>, proxied: Arc<Tally>, admin: Arc<Tally>) -> std::thread::JoinHandle<()> {
    let (second, admin_addr) = (site.second, site.admin);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            proxied.count("second listener", get(second, "/v1/matches/probe/live"));
            admin.count("admin listener", get(admin_addr, "/healthz"));
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Waits until the slow pod has a request in flight at the gateway (only one process accepts
/// at that point, so it is the one about to be upgraded).
fn wait_slow_in_flight(site: &Site, n: u64) {
    wait::until("the slow request in flight", BOUND, || {
        let Ok(r) = arena_testkit::http::call(site.admin, "GET", "/clusters", &[], b"") else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] == "slow")
            .any(|c| c["pods"][0]["in_flight"].as_u64().unwrap_or(0) >= n)
    })
    .unwrap();
}

#[test]
fn three_upgrades_under_load_lose_no_request_and_refuse_no_connection() {
    let fast1 = Pod::start("127.0.0.171", &["--latency", "1ms"]);
    let fast2 = Pod::start("127.0.0.172", &["--latency", "1ms"]);
    let slow = Pod::start("127.0.0.173", &["--latency", SLOW]);
    let site = Site::new("upgrade-load", &[&fast1, &fast2], &slow);
    site.write(1);
    let mut first = arena::start_gateway(&site.config, &ENV).unwrap();
    for a in [site.public, site.second, site.admin] {
        first.wait_listening(a, BOUND).unwrap();
    }
    let mut gens = vec![Gen::Child(first)];

    let s = scenario::load(
        "name: upgrades\nmode: open\nhttp: { connections: 32, timeout: 5s }\n\
         stages: [{ duration: 34s, rate: 1000 }]\n\
         requests: [{ path: \"/v1/matches/{m}/live\" }]\nvars: { m: { pick: [a, b, c] } }\n",
        "upgrades.yaml",
        &NoExtensions,
    )
    .unwrap();
    let opts = PlanOptions {
        target: Some(format!("http://{}", site.public)),
        threads: Some(1),
        ..PlanOptions::default()
    };
    let plan = Plan::new(&s, &opts).unwrap();
    let start = Instant::now();
    let load = std::thread::spawn(move || engine::run_blocking(plan, &mut ()).unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let (proxied, admin) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let prober = probe(&site, Arc::clone(&stop), Arc::clone(&proxied), Arc::clone(&admin));
    // Proxied requests sent beside the engine's, for the access log's count.
    let extra = Arc::new(AtomicU64::new(0));
    let mut slow_calls = Vec::new();
    let at =
        |secs: u64| std::thread::sleep((start + Duration::from_secs(secs)).saturating_duration_since(Instant::now()));

    // A request in flight on the old process before each upgrade; the last upgrade also
    // brings a new config, the way a deploy does.
    let mut upgrade = |gens: &mut Vec<Gen>, n: usize| {
        let public = site.public;
        slow_calls.push(std::thread::spawn(move || get(public, "/v1/players/p1/stats")));
        wait_slow_in_flight(&site, 1);
        let old = gens.last().unwrap();
        let next = if n == 2 {
            upgrade_by_hand(&site, old)
        } else {
            upgrade_with_command(&site, old)
        };
        gens.push(next);
    };
    let reload_to = |gens: &Vec<Gen>, g: u32| {
        site.write(g);
        gens.last().unwrap().signal(Signal::SIGHUP);
        // Until the new route name answers (the old process may still take some connections).
        let want = format!("matches-g{g}");
        wait::until(&format!("{want} to serve"), BOUND, || {
            extra.fetch_add(1, Ordering::Relaxed);
            get(site.second, "/v1/matches/reload/live")
                .is_ok_and(|(_, h)| h.iter().any(|(k, v)| k == "x-arena-route" && *v == want))
        })
        .unwrap();
    };

    at(2);
    upgrade(&mut gens, 1);
    at(8);
    reload_to(&gens, 2);
    at(12);
    upgrade(&mut gens, 2);
    at(18);
    reload_to(&gens, 3);
    at(21);
    site.write(4);
    at(22);
    upgrade(&mut gens, 3);

    let r = load.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    for (i, call) in slow_calls.into_iter().enumerate() {
        let answer = call.join().unwrap();
        assert!(
            matches!(answer, Ok((200, _))),
            "request in flight on the old process during upgrade {}: {answer:?}",
            i + 1
        );
    }

    // Each old process drains and exits by itself; the ones this test started exit 0.
    for (i, g) in gens[..3].iter_mut().enumerate() {
        let status = g.wait_exit(&format!("generation {i}"));
        assert_ne!(status, Some(false), "generation {i} exited with a failure");
    }

    let (p_ok, p_refused, p_failed) = proxied.get();
    let (a_ok, a_refused, a_failed) = admin.get();
    println!(
        "{} requests at {:.0} rps through 3 upgrades and 2 reloads: {} errors ({} transport, {} timeouts), \
         statuses {:?}, routes {:?}; fresh connections: second listener {p_ok} ok / {p_refused} refused / \
         {p_failed} failed, admin {a_ok} ok / {a_refused} refused / {a_failed} failed",
        r.totals.requests,
        r.rps(),
        r.totals.errors,
        r.totals.transport_errors,
        r.totals.timeouts,
        r.statuses,
        r.routes
    );
    let samples = [
        proxied.samples.lock().unwrap().clone(),
        admin.samples.lock().unwrap().clone(),
    ]
    .concat();
    assert_eq!(
        (p_refused, p_failed, a_refused, a_failed),
        (0, 0, 0, 0),
        "probes failed: {samples:?}"
    );
    assert!(p_ok > 100 && a_ok > 100, "too few probes: {p_ok} / {a_ok}");
    assert_eq!(r.totals.errors, 0, "errors: {:?}", r.error_samples);
    assert_eq!(r.totals.transport_errors + r.totals.timeouts + r.totals.dropped, 0);
    assert_eq!(r.totals.requests, r.intended_total, "every scheduled request completed");
    assert!(r.totals.requests >= 30_000, "{}", r.totals.requests);
    assert_eq!(r.statuses.keys().collect::<Vec<_>>(), [&200]);
    for g in 1..=4 {
        let route = format!("matches-g{g}");
        assert!(
            r.routes.get(&route).is_some_and(|n| *n > 0),
            "{route} served nothing: {:?}",
            r.routes
        );
    }

    // The last generation stops (SIGINT writes out its log too); then every request has its
    // line: the old processes wrote theirs before they exited.
    gens[3].signal(Signal::SIGINT);
    gens[3].wait_exit("the last generation");
    let text = std::fs::read_to_string(&site.log).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected = r.totals.requests + p_ok + extra.load(Ordering::Relaxed) + 3;
    assert_eq!(lines.len() as u64, expected, "access log lines vs proxied requests");
    assert!(lines.iter().all(|l| l["status"] == 200), "a logged request failed");
}

#[test]
fn a_failed_upgrade_leaves_the_old_gateway_serving() {
    let fast = Pod::start("127.0.0.174", &["--latency", "1ms"]);
    let slow = Pod::start("127.0.0.175", &[]);
    let site = Site::new("upgrade-fail", &[&fast], &slow);
    site.write(1);
    let mut first = arena::start_gateway(&site.config, &ENV).unwrap();
    first.wait_http_ok(site.admin, "/readyz", BOUND).unwrap();
    let old = Gen::Child(first);
    let old_pid = old.pid().to_string();

    // Requests keep going through every attempt.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(Tally::default());
    let client = {
        let (stop, traffic, public) = (Arc::clone(&stop), Arc::clone(&traffic), site.public);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                traffic.count("public", get(public, "/v1/matches/m/live"));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let upgrade = |config: &Path, pid: &str| {
        Command::new(bin("arena-gateway"))
            .args(["upgrade", "-c"])
            .arg(config)
            .args(["--pid", pid])
            .envs(ENV)
            .output()
            .unwrap()
    };
    let serving = |old: &mut Gen, what: &str| {
        assert!(old.exited().is_none(), "the old gateway exited after {what}");
        let before = traffic.get().0;
        wait::until(&format!("requests served after {what}"), BOUND, || {
            traffic.get().0 > before + 5
        })
        .unwrap();
        assert!(
            !wait::is_unix_listening(&site.sock),
            "a process still waits after {what}"
        );
    };
    let mut old = old;

    // An invalid config: rejected with its positions before anything starts.
    let bad = site.dir.0.join("bad.yaml");
    site.write_to(&bad, &format!("{}bogus: 1\n", site.text(1, &site.sock)));
    let out = upgrade(&bad, &old_pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown top-level key `bogus`") && err.contains("bad.yaml:"),
        "{err}"
    );
    let run = Command::new(bin("arena-gateway"))
        .args(["run", "--upgrade", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    serving(&mut old, "an invalid config");

    // No process with that pid.
    let mut gone_child = Command::new("true").spawn().unwrap();
    let dead = gone_child.id().to_string();
    gone_child.wait().unwrap();
    let out = upgrade(&site.config, &dead);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no gateway runs with pid {dead}")));

    // SIGQUIT with nobody waiting for the sockets: logged and ignored.
    old.signal(Signal::SIGQUIT);
    if let Gen::Child(p) = &old {
        let log = p.log_path().to_path_buf();
        wait::until("SIGQUIT to be refused", BOUND, || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SIGQUIT ignored"))
        })
        .unwrap();
    }
    serving(&mut old, "a SIGQUIT nobody waited for");

    // A new process nobody hands the sockets to gives up; the socket is left free.
    let mut lonely = arena::start_gateway_upgrade(&site.config, &ENV).unwrap();
    wait::unix_listening(&site.sock, BOUND).unwrap();
    wait::until("the lonely process to give up", BOUND, || lonely.exited()).unwrap();
    assert!(!lonely.try_status().unwrap().success());
    serving(&mut old, "a new process that got no sockets");

    // A socket path the new process cannot make: it says why and exits.
    let elsewhere = site.dir.0.join("elsewhere.yaml");
    site.write_to(&elsewhere, &site.text(1, &site.dir.0.join("missing-dir/upgrade.sock")));
    let out = upgrade(&elsewhere, &old_pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("directory must exist") && err.contains("keeps serving"),
        "{err}"
    );
    serving(&mut old, "an unusable socket path");

    // After all that, a real upgrade still works and the old process leaves cleanly.
    let mut next = upgrade_with_command(&site, &old);
    assert_eq!(old.wait_exit("the upgraded gateway"), Some(true));
    let before = traffic.get().0;
    wait::until("requests served by the new gateway", BOUND, || {
        traffic.get().0 > before + 5
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let (ok, refused, failed) = traffic.get();
    println!("failed-upgrade attempts: {ok} requests ok, {refused} refused, {failed} failed");
    assert_eq!((refused, failed), (0, 0), "{:?}", traffic.samples.lock().unwrap());
    next.signal(Signal::SIGINT);
    next.wait_exit("the new gateway");
}

#[test]
fn the_systemd_reload_upgrades_and_the_new_process_becomes_main() {
    let unit =
        std::fs::read_to_string(arena_testkit::repo_root().join("deploy/systemd/arena-gateway.service")).unwrap();
    for key in ["Type=notify", "NotifyAccess=exec", "RuntimeDirectory=arena-gateway"] {
        assert!(unit.lines().any(|l| l == key), "the unit lacks {key}");
    }
    let fast = Pod::start("127.0.0.176", &[]);
    let slow = Pod::start("127.0.0.177", &[]);
    let site = Site::new("upgrade-systemd", &[&fast], &slow);
    // No upgrade_sock: the default in $RUNTIME_DIRECTORY, which RuntimeDirectory= sets. A TLS
    // listener too: it must move like the others.
    let (cert, key) = self_signed(&site.dir.0);
    let tls = free_addr("127.0.0.1").unwrap();
    let text = site
        .text(1, &site.sock)
        .replace(&format!("  upgrade_sock: {}\n", site.sock.display()), "")
        .replace(
            "admin:",
            &format!(
                "  - {{ name: tls, address: {tls}, tls: {{ cert_file: \"{}\", key_file: \"{}\" }} }}\nadmin:",
                cert.display(),
                key.display()
            ),
        );
    site.write_to(&site.config, &text);
    let runtime = site.dir.0.to_string_lossy().into_owned();
    let notify_path = site.dir.0.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(BOUND)).unwrap();
    let notify_env = notify_path.to_string_lossy().into_owned();
    let env = [
        ENV[0],
        ENV[1],
        ("RUNTIME_DIRECTORY", runtime.as_str()),
        ("NOTIFY_SOCKET", notify_env.as_str()),
    ];
    let recv = || {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let first = arena::start_gateway(&site.config, &env).unwrap();
    let mut old = Gen::Child(first);
    assert_eq!(recv(), format!("READY=1\nMAINPID={}\n", old.pid()));
    assert_eq!(https_status(tls, &cert), "200");

    // `systemctl reload` runs ExecReload with $MAINPID.
    let reload = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecReload="))
        .expect("the unit has an ExecReload")
        .replace("/usr/local/bin/arena-gateway", &bin("arena-gateway").to_string_lossy())
        .replace("/etc/arena/gateway.yaml", &site.config.to_string_lossy())
        .replace("$MAINPID", &old.pid().to_string());
    let words: Vec<&str> = reload.split_whitespace().collect();
    let mut cmd = Command::new(words[0]);
    cmd.args(&words[1..]).envs(env);
    let (upgrader, line) = Process::spawn_until_line("exec-reload", cmd, "upgraded:", BOUND).unwrap();
    let new: u32 = line
        .split("-> ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // ExecReload, the control process, names the new main process (only it and the main
    // process may speak under NotifyAccess=exec).
    assert_eq!(
        recv(),
        format!("MAINPID={new}\nREADY=1\n"),
        "the new process is named main"
    );
    assert!(!wait::is_unix_listening(&site.dir.0.join("upgrade.sock")));
    assert_eq!(old.wait_exit("the old main process"), Some(true));
    // With the old process gone, the new one answers on every listener it was handed.
    assert_eq!(get(site.public, "/v1/matches").unwrap().0, 200);
    assert_eq!(get(site.second, "/v1/matches").unwrap().0, 200);
    assert_eq!(get(site.admin, "/healthz").unwrap().0, 200);
    assert_eq!(https_status(tls, &cert), "200");
    let mut next = Gen::Orphan {
        pid: new,
        _upgrader: upgrader,
    };
    next.signal(Signal::SIGINT);
    next.wait_exit("the new main process");
}

/// A self-signed certificate for `api.arena.test` (the `openssl` program).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=api.arena.test",
            "-addext",
            "subjectAltName=DNS:api.arena.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (deploy/local/prereqs.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// The status of `GET https://api.arena.test:PORT/v1/matches` on `addr` (the `curl` program).
fn https_status(addr: SocketAddr, cert: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(cert)
        .args(["--resolve", &format!("api.arena.test:{}:127.0.0.1", addr.port())])
        .arg(format!("https://api.arena.test:{}/v1/matches", addr.port()))
        .output()
        .expect("curl (deploy/local/prereqs.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
