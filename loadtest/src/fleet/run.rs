//! Starting and breaking a local fleet: sample pods, the gateway, FaaS functions and a DNS
//! server as real processes on loopback, all stopped when the fleet is dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::spec::{Action, FleetSpec, PodSpec};

/// Token the fleet's gateway accepts for admin calls.
const TOKEN: &str = "arena-fleet";
const READY: Duration = Duration::from_secs(30);

/// A child process killed (whole process group) when dropped.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command) -> Result<Proc, String> {
        // Own process group: functions-framework forks workers that must die with it.
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    fn signal(&self, sig: &str) -> Result<(), String> {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(())
            .ok_or_else(|| format!("cannot signal {} ({sig})", self.name))
    }

    fn kill(&mut self) {
        let _ = self.signal("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Pod {
    spec: PodSpec,
    addr: SocketAddr,
    proc: Option<Proc>,
}

struct Function {
    name: String,
    addr: SocketAddr,
    proc: Option<Proc>,
}

struct Dns {
    addr: SocketAddr,
    hosts: PathBuf,
    conf: PathBuf,
    /// `None` while stopped by a fault.
    proc: Option<Proc>,
}

struct Gateway {
    addr: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    header: String,
    proc: Proc,
}

/// A running fleet.
pub struct Fleet {
    dir: PathBuf,
    /// Port shared by pods without their own (what a DNS record's port must be).
    pod_port: u16,
    pods: Vec<Pod>,
    functions: Vec<Function>,
    dns: Option<Dns>,
    gateway: Option<Gateway>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Gateway first, so it does not log a storm of failures for pods going away.
        self.gateway = None;
        self.pods.clear();
        self.functions.clear();
        self.dns = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Directory of this program, where the sibling binaries (`arena-pod`, `arena-gateway`) are.
fn bin_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate myself: {e}"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

fn bin(name: &str) -> Result<PathBuf, String> {
    let path = bin_dir()?.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release --workspace --bins`",
            path.display()
        ))
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port free on every one of `ips`, for processes the fleet starts. Chosen below the kernel's
/// ephemeral range, where a port-0 bind would land and where the load's own outgoing
/// connections could take it before the child binds it; never the same port twice.
fn free_port(ips: &[Ipv4Addr]) -> Result<u16, String> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let ips = if ips.is_empty() {
        &[Ipv4Addr::LOCALHOST][..]
    } else {
        ips
    };
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..500 {
        let port = if low > 11_000 {
            10_000 + rand::random::<u16>() % (low - 10_000)
        } else {
            let l = TcpListener::bind((ips[0], 0)).map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        // UDP too: the fleet's DNS server takes its port for both.
        let free =
            |ip: &Ipv4Addr| TcpListener::bind((*ip, port)).is_ok() && std::net::UdpSocket::bind((*ip, port)).is_ok();
        if !given.contains(&port) && ips.iter().all(free) {
            given.push(port);
            return Ok(port);
        }
    }
    Err("no port free on every pod address".into())
}

fn free_addr() -> Result<SocketAddr, String> {
    Ok(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        free_port(&[Ipv4Addr::LOCALHOST])?,
    )))
}

/// Minimal blocking HTTP/1.1 call (`Connection: close`) for control actions.
pub fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{auth}connection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer from {addr}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY;
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what} not ready after {READY:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A DNS query for `arena.` (any answer, even NXDOMAIN, proves the server is up).
fn dns_answers(addr: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let query = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'a', b'r', b'e', b'n', b'a', 0, 0, 1, 0, 1,
    ];
    let mut buf = [0u8; 512];
    sock.send_to(&query, addr).is_ok() && sock.recv_from(&mut buf).is_ok()
}

impl Fleet {
    /// Starts every member and waits until each one answers.
    pub fn start(spec: &FleetSpec) -> Result<Fleet, String> {
        let dir = std::env::temp_dir().join(format!("arena-fleet-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let mut fleet = Fleet {
            dir,
            pod_port: 0,
            pods: Vec::new(),
            functions: Vec::new(),
            dns: None,
            gateway: None,
        };
        let ips: Vec<Ipv4Addr> = spec.pods.iter().filter(|p| p.port.is_none()).map(|p| p.ip).collect();
        let shared_port = if ips.is_empty() { 0 } else { free_port(&ips)? };
        fleet.pod_port = shared_port;
        for p in &spec.pods {
            let addr = SocketAddr::from((p.ip, p.port.unwrap_or(shared_port)));
            let mut pod = Pod {
                spec: p.clone(),
                addr,
                proc: None,
            };
            pod.proc = Some(start_pod(&pod)?);
            fleet.pods.push(pod);
        }
        for name in &spec.faas {
            let addr = free_addr()?;
            let proc = start_function(name, addr, &fleet.dir)?;
            fleet.functions.push(Function {
                name: name.clone(),
                addr,
                proc: Some(proc),
            });
        }
        if let Some(records) = &spec.dns {
            fleet.dns = Some(fleet.start_dns(records)?);
        }
        if let Some(body) = &spec.gateway {
            fleet.gateway = Some(fleet.start_gateway(body)?);
        }
        Ok(fleet)
    }

    /// Base URL of the load's target: the gateway, else the first pod.
    pub fn target(&self) -> Option<String> {
        match (&self.gateway, self.pods.first()) {
            (Some(g), _) => Some(format!("http://{}", g.addr)),
            (None, Some(p)) => Some(format!("http://{}", p.addr)),
            _ => None,
        }
    }

    /// Admin address of the fleet's gateway.
    pub fn admin(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|g| g.admin)
    }

    fn resolve(&self, target: &str) -> Option<Ipv4Addr> {
        self.pods
            .iter()
            .find(|p| p.spec.name == target)
            .map(|p| p.spec.ip)
            .or_else(|| target.parse().ok())
    }

    fn hosts_file(&self, records: &BTreeMap<String, Vec<String>>) -> String {
        let mut out = String::new();
        for (name, targets) in records {
            for ip in targets.iter().filter_map(|t| self.resolve(t)) {
                out.push_str(&format!("{ip} {name}\n"));
            }
        }
        out
    }

    fn start_dns(&self, records: &BTreeMap<String, Vec<String>>) -> Result<Dns, String> {
        let dnsmasq = dnsmasq_bin()?;
        let hosts = self.dir.join("hosts");
        std::fs::write(&hosts, self.hosts_file(records)).map_err(|e| e.to_string())?;
        let port = free_port(&[Ipv4Addr::LOCALHOST])?;
        let conf = self.dir.join("dnsmasq.conf");
        let user = if std::env::var("USER").as_deref() == Ok("root") || Path::new("/root").exists() {
            "user=root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "no-resolv\nno-hosts\nlocal=/#/\naddn-hosts={}\nlisten-address=127.0.0.1\nport={port}\nbind-interfaces\nlocal-ttl=1\npid-file=\n{user}",
                hosts.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let proc = spawn_dnsmasq(&dnsmasq, &conf, addr)?;
        Ok(Dns {
            addr,
            hosts,
            conf,
            proc: Some(proc),
        })
    }

    fn expand(&self, body: &str) -> String {
        let mut text = body.to_string();
        for p in &self.pods {
            text = text.replace(&format!("${{pod:{}}}", p.spec.name), &p.addr.to_string());
        }
        for f in &self.functions {
            text = text.replace(&format!("${{faas:{}}}", f.name), &format!("http://{}", f.addr));
        }
        if let Some(d) = &self.dns {
            text = text.replace("${dns}", &d.addr.to_string());
        }
        text.replace("${pod-port}", &self.pod_port.to_string())
    }

    fn start_gateway(&self, body: &str) -> Result<Gateway, String> {
        self.start_gateway_on(body, free_addr()?, free_addr()?)
    }

    fn start_gateway_on(&self, body: &str, addr: SocketAddr, admin: SocketAddr) -> Result<Gateway, String> {
        let header = format!(
            "listeners:\n  - name: public\n    address: {addr}\nadmin:\n  address: {admin}\n  token_env: ARENA_FLEET_TOKEN\ndebug_headers: true\n"
        );
        let config = self.dir.join("gateway.yaml");
        std::fs::write(&config, format!("{header}{}", self.expand(body))).map_err(|e| e.to_string())?;
        let exe = bin("arena-gateway")?;
        let check = Command::new(&exe)
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .map_err(|e| e.to_string())?;
        if !check.status.success() {
            return Err(format!(
                "fleet gateway config invalid:\n{}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        let log = std::fs::File::create(self.dir.join("gateway.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.args(["run", "-c"])
            .arg(&config)
            .env("ARENA_FLEET_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        let proc = Proc::spawn("arena-gateway", cmd)?;
        wait_until("arena-gateway", || {
            http_call(admin, "GET", "/readyz", "", None).is_ok_and(|(s, _)| s == 200)
        })?;
        Ok(Gateway {
            addr,
            admin,
            config,
            header,
            proc,
        })
    }

    /// Carries out one fault action.
    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::SetPod { pod, knobs } => {
                let addr = self.pod(pod)?.addr;
                let (status, body) = http_call(addr, "POST", "/_pod/config", &knobs.to_string(), None)?;
                (status == 200)
                    .then_some(())
                    .ok_or(format!("pod refused knobs: {status} {body}"))
            }
            Action::Crash { pod } => {
                let p = self.pod_mut(pod)?;
                p.proc = None;
                Ok(())
            }
            Action::Restart { pod } => {
                let p = self.pod_mut(pod)?;
                p.proc = None;
                let proc = start_pod(p)?;
                self.pod_mut(pod)?.proc = Some(proc);
                Ok(())
            }
            Action::Dns { records } => {
                let text = self.hosts_file(records);
                let dns = self.dns.as_ref().ok_or("no DNS server in the fleet")?;
                std::fs::write(&dns.hosts, text).map_err(|e| e.to_string())?;
                // Stopped: the new records are served when it starts again.
                dns.proc.as_ref().map_or(Ok(()), |p| p.signal("HUP"))
            }
            Action::StopDns => {
                self.dns.as_mut().ok_or("no DNS server in the fleet")?.proc = None;
                Ok(())
            }
            Action::StartDns => {
                let dns = self.dns.as_mut().ok_or("no DNS server in the fleet")?;
                dns.proc = None;
                dns.proc = Some(spawn_dnsmasq(&dnsmasq_bin()?, &dns.conf, dns.addr)?);
                Ok(())
            }
            Action::Admin { method, path } => {
                let g = self.gateway.as_ref().ok_or("no gateway in the fleet")?;
                let (status, body) = http_call(g.admin, method, path, "", Some(TOKEN))?;
                (status < 400)
                    .then_some(())
                    .ok_or(format!("admin answered {status}: {body}"))
            }
            Action::Reload => self
                .gateway
                .as_ref()
                .ok_or("no gateway in the fleet")?
                .proc
                .signal("HUP"),
            Action::Config { config } => {
                let text = self.expand(config);
                let g = self.gateway.as_ref().ok_or("no gateway in the fleet")?;
                let tmp = g.config.with_extension("next");
                std::fs::write(&tmp, format!("{}{text}", g.header)).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &g.config).map_err(|e| e.to_string())?;
                g.proc.signal("HUP")
            }
            Action::RestartGateway => {
                let g = self.gateway.take().ok_or("no gateway in the fleet")?;
                let (addr, admin) = (g.addr, g.admin);
                let text = std::fs::read_to_string(&g.config).map_err(|e| e.to_string())?;
                let body = text.strip_prefix(g.header.as_str()).unwrap_or(&text).to_string();
                // SIGINT is pingora's fast shutdown; wait until the port is free, then start again.
                let _ = g.proc.signal("INT");
                drop(g);
                let deadline = Instant::now() + READY;
                while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.gateway = Some(self.start_gateway_on(&body, addr, admin)?);
                Ok(())
            }
            Action::StopFaas { name } => {
                self.function_mut(name)?.proc = None;
                Ok(())
            }
            Action::StartFaas { name } => {
                let dir = self.dir.clone();
                let f = self.function_mut(name)?;
                f.proc = None;
                f.proc = Some(start_function(&f.name, f.addr, &dir)?);
                Ok(())
            }
        }
    }

    fn pod(&self, name: &str) -> Result<&Pod, String> {
        self.pods
            .iter()
            .find(|p| p.spec.name == name)
            .ok_or_else(|| format!("no pod `{name}`"))
    }

    fn pod_mut(&mut self, name: &str) -> Result<&mut Pod, String> {
        self.pods
            .iter_mut()
            .find(|p| p.spec.name == name)
            .ok_or_else(|| format!("no pod `{name}`"))
    }

    fn function_mut(&mut self, name: &str) -> Result<&mut Function, String> {
        self.functions
            .iter_mut()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("no function `{name}`"))
    }
}

fn dnsmasq_bin() -> Result<PathBuf, String> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "dnsmasq is missing: apt-get install dnsmasq-base".into())
}

/// Runs dnsmasq in the foreground with `conf` and waits until it answers on `addr`. A restart
/// right after a stop may find the port still held for a moment: dnsmasq then exits at once
/// and is started again.
fn spawn_dnsmasq(exe: &Path, conf: &Path, addr: SocketAddr) -> Result<Proc, String> {
    let deadline = Instant::now() + READY;
    loop {
        let mut cmd = Command::new(exe);
        cmd.arg("-k")
            .arg("-C")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("dnsmasq", cmd)?;
        while proc.child.try_wait().ok().flatten().is_none() {
            if dns_answers(addr) {
                return Ok(proc);
            }
            if Instant::now() > deadline {
                return Err(format!("dnsmasq not answering on {addr} after {READY:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if Instant::now() > deadline {
            return Err(format!("dnsmasq keeps exiting (is {addr} taken?)"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_pod(pod: &Pod) -> Result<Proc, String> {
    let mut cmd = Command::new(bin("arena-pod")?);
    cmd.arg("--listen")
        .arg(pod.addr.to_string())
        .arg("--name")
        .arg(&pod.spec.name)
        .args(&pod.spec.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(&pod.spec.name, cmd)?;
    let out = proc.child.stdout.take().ok_or("pod stdout unavailable")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep draining so the pod never blocks on a full pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(READY) {
        Ok(line) if line.contains("listening on") => Ok(proc),
        Ok(line) => Err(format!("pod {} said `{line}`", pod.spec.name)),
        Err(_) => Err(format!("pod {} did not start (is {} free?)", pod.spec.name, pod.addr)),
    }
}

fn start_function(name: &str, addr: SocketAddr, dir: &Path) -> Result<Proc, String> {
    let root = repo_root();
    let ff = root.join("target/faas/venv/bin/functions-framework");
    if !ff.exists() {
        return Err(format!("{} is missing: run deploy/local/faas-setup.sh", ff.display()));
    }
    let log = std::fs::File::create(dir.join(format!("faas-{name}.log"))).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(ff);
    cmd.arg("--target=handler")
        .arg("--source")
        .arg(root.join("loadtest/faas/http/main.py"))
        .args(["--host", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .stdout(Stdio::null())
        .stderr(log);
    let proc = Proc::spawn(name, cmd)?;
    wait_until(&format!("function {name}"), || {
        http_call(addr, "GET", "/_fn/healthz", "", None).is_ok_and(|(s, _)| s == 200)
    })?;
    Ok(proc)
}
