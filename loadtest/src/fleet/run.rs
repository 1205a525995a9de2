//! Starting and breaking a local fleet: sample pods, the gateway, FaaS functions and a DNS
//! server as real processes on loopback (through `arena_testkit`), all stopped when the fleet
//! is dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use arena_testkit::{arena, free_addr, free_port, wait, Dnsmasq, HttpFunction, Process, Scratch};

use super::spec::{Action, FleetSpec, PodSpec};

/// Token the fleet's gateway accepts for admin calls.
const TOKEN: &str = "arena-fleet";
const READY: Duration = Duration::from_secs(30);

struct Pod {
    spec: PodSpec,
    addr: SocketAddr,
    /// `None` while crashed by a fault.
    proc: Option<Process>,
}

struct Function {
    name: String,
    addr: SocketAddr,
    /// `None` while stopped by a fault.
    runtime: Option<HttpFunction>,
}

struct Gateway {
    addr: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    header: String,
    proc: Process,
    /// Processes an upgrade took the listeners from: they drain and exit on their own.
    retired: Vec<Process>,
}

/// A running fleet.
pub struct Fleet {
    /// Port shared by pods without their own (what a DNS record's port must be).
    pod_port: u16,
    pods: Vec<Pod>,
    functions: Vec<Function>,
    dns: Option<Dnsmasq>,
    gateway: Option<Gateway>,
    /// The gateway's config; last, so it outlives every member.
    dir: Scratch,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Gateway first, so it does not log a storm of failures for pods going away.
        self.gateway = None;
        self.pods.clear();
        self.functions.clear();
        self.dns = None;
    }
}

/// Minimal blocking HTTP/1.1 call for control actions: JSON `body`, bearer `token` if any.
pub fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    let reply = arena_testkit::http::call(addr, method, path, &headers, body.as_bytes())?;
    Ok((reply.status, reply.text()))
}

impl Fleet {
    /// Starts every member and waits until each one answers.
    pub fn start(spec: &FleetSpec) -> Result<Fleet, String> {
        let mut fleet = Fleet {
            pod_port: 0,
            pods: Vec::new(),
            functions: Vec::new(),
            dns: None,
            gateway: None,
            dir: Scratch::new("fleet")?,
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
            let addr = free_addr("127.0.0.1")?;
            let runtime = HttpFunction::start_at(name, addr)?;
            fleet.functions.push(Function {
                name: name.clone(),
                addr,
                runtime: Some(runtime),
            });
        }
        if let Some(records) = &spec.dns {
            let hosts = fleet.hosts(records);
            fleet.dns = Some(Dnsmasq::start(&borrowed(&hosts), &[])?);
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

    /// The bearer token the fleet's gateway accepts on its admin API.
    pub fn admin_token(&self) -> &'static str {
        TOKEN
    }

    fn resolve(&self, target: &str) -> Option<Ipv4Addr> {
        self.pods
            .iter()
            .find(|p| p.spec.name == target)
            .map(|p| p.spec.ip)
            .or_else(|| target.parse().ok())
    }

    /// The DNS records as `(name, ip)` host entries, pods named by their address.
    fn hosts(&self, records: &BTreeMap<String, Vec<String>>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, targets) in records {
            for ip in targets.iter().filter_map(|t| self.resolve(t)) {
                out.push((name.clone(), ip.to_string()));
            }
        }
        out
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
            text = text.replace("${dns}", &d.addr().to_string());
        }
        text.replace("${pod-port}", &self.pod_port.to_string())
    }

    fn start_gateway(&self, body: &str) -> Result<Gateway, String> {
        self.start_gateway_on(body, free_addr("127.0.0.1")?, free_addr("127.0.0.1")?)
    }

    fn start_gateway_on(&self, body: &str, addr: SocketAddr, admin: SocketAddr) -> Result<Gateway, String> {
        let header = format!(
            "listeners:\n  - name: public\n    address: {addr}\nadmin:\n  address: {admin}\n  token_env: ARENA_FLEET_TOKEN\ndebug_headers: true\n"
        );
        let config = self.dir.file("gateway.yaml");
        std::fs::write(&config, format!("{header}{}", self.expand(body))).map_err(|e| e.to_string())?;
        let env = self.gateway_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut proc = arena::start_gateway(&config, &env)?;
        proc.wait_http_ok(admin, "/readyz", READY)?;
        Ok(Gateway {
            addr,
            admin,
            config,
            header,
            proc,
            retired: Vec::new(),
        })
    }

    /// Environment of the gateway's processes: the fleet's dir is their runtime directory, so
    /// the default `server.upgrade_sock` is a socket of this fleet's own.
    fn gateway_env(&self) -> [(&'static str, String); 3] {
        [
            ("ARENA_FLEET_TOKEN", TOKEN.to_string()),
            ("RUST_LOG", "warn".to_string()),
            ("RUNTIME_DIRECTORY", self.dir.path().to_string_lossy().into_owned()),
        ]
    }

    /// Carries out one fault action.
    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::SetPod { pod, knobs } => arena::set_pod(self.pod(pod)?.addr, &knobs.to_string()),
            Action::Crash { pod } => {
                self.pod_mut(pod)?.proc = None;
                Ok(())
            }
            Action::Restart { pod } => self.restart_pod(pod),
            Action::Dns { records } => {
                let hosts = self.hosts(records);
                // Stopped: the new records are served when it starts again.
                self.dns()?.set_records(&borrowed(&hosts), &[])
            }
            Action::StopDns => {
                self.dns()?.stop();
                Ok(())
            }
            Action::StartDns => self.dns()?.start_again(),
            Action::Admin { method, path } => self.admin_call(method, path),
            Action::Reload => self.gateway()?.proc.signal("HUP"),
            Action::Config { config } => self.rewrite_config(config),
            Action::RestartGateway => self.restart_gateway(),
            Action::UpgradeGateway => self.upgrade_gateway(),
            Action::StopFaas { name } => {
                self.function_mut(name)?.runtime = None;
                Ok(())
            }
            Action::StartFaas { name } => {
                let f = self.function_mut(name)?;
                f.runtime = None;
                f.runtime = Some(HttpFunction::start_at(&f.name, f.addr)?);
                Ok(())
            }
        }
    }

    /// Kills the pod if it still runs and starts it again with its original flags.
    fn restart_pod(&mut self, name: &str) -> Result<(), String> {
        let p = self.pod_mut(name)?;
        p.proc = None;
        p.proc = Some(start_pod(p)?);
        Ok(())
    }

    /// Calls the gateway admin API; an answer of 400 or above is a failure.
    fn admin_call(&self, method: &str, path: &str) -> Result<(), String> {
        let (status, body) = http_call(self.gateway()?.admin, method, path, "", Some(TOKEN))?;
        (status < 400)
            .then_some(())
            .ok_or(format!("admin answered {status}: {body}"))
    }

    /// Replaces the gateway's config body (atomically, by rename) and SIGHUPs it.
    fn rewrite_config(&self, config: &str) -> Result<(), String> {
        let text = self.expand(config);
        let g = self.gateway()?;
        let tmp = g.config.with_extension("next");
        std::fs::write(&tmp, format!("{}{text}", g.header)).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &g.config).map_err(|e| e.to_string())?;
        g.proc.signal("HUP")
    }

    /// Stops the gateway and starts it again on the same ports with its current config body.
    fn restart_gateway(&mut self) -> Result<(), String> {
        let g = self.gateway.take().ok_or("no gateway in the fleet")?;
        let (addr, admin) = (g.addr, g.admin);
        let text = std::fs::read_to_string(&g.config).map_err(|e| e.to_string())?;
        let body = text.strip_prefix(g.header.as_str()).unwrap_or(&text).to_string();
        // SIGINT is pingora's fast shutdown; wait until the port is free, then start again.
        let _ = g.proc.signal("INT");
        drop(g);
        wait::not_listening(addr, READY)?;
        self.gateway = Some(self.start_gateway_on(&body, addr, admin)?);
        Ok(())
    }

    /// Upgrades the gateway the documented way: a new process (`run --upgrade`, same config)
    /// waits on the upgrade socket, the running one gets SIGQUIT and hands over its listening
    /// sockets; the new one serves from the same ports, the old one drains on its own.
    fn upgrade_gateway(&mut self) -> Result<(), String> {
        let env = self.gateway_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let g = self.gateway.as_mut().ok_or("no gateway in the fleet")?;
        g.retired.retain_mut(Process::running);
        // The socket the running process hands over on (the config may name its own).
        let (status, body) = http_call(g.admin, "GET", "/config", "", None)?;
        let running: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let sock = match running["config"]["server"]["upgrade_sock"].as_str() {
            Some(s) if status == 200 => PathBuf::from(s),
            _ => return Err(format!("no server.upgrade_sock in the gateway's /config ({status})")),
        };
        let mut next = arena::start_gateway_upgrade(&g.config, &env)?;
        next.wait_until("waiting for the listening sockets", READY, || {
            wait::is_unix_listening(&sock)
        })?;
        g.proc.signal("QUIT")?;
        next.wait_until("holding the listening sockets", READY, || {
            !wait::is_unix_listening(&sock)
        })?;
        g.retired.push(std::mem::replace(&mut g.proc, next));
        Ok(())
    }

    fn gateway(&self) -> Result<&Gateway, String> {
        self.gateway
            .as_ref()
            .ok_or_else(|| "no gateway in the fleet".to_string())
    }

    fn dns(&self) -> Result<&Dnsmasq, String> {
        self.dns
            .as_ref()
            .ok_or_else(|| "no DNS server in the fleet".to_string())
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

/// `(name, ip)` pairs as the `&str` pairs the DNS server takes.
fn borrowed(hosts: &[(String, String)]) -> Vec<(&str, &str)> {
    hosts.iter().map(|(n, ip)| (n.as_str(), ip.as_str())).collect()
}

/// Starts `arena-pod` on the pod's address, named after it.
fn start_pod(pod: &Pod) -> Result<Process, String> {
    let mut args = vec!["--name", pod.spec.name.as_str()];
    args.extend(pod.spec.args.iter().map(String::as_str));
    let (proc, _) = arena::start_pod(&pod.spec.name, &pod.addr.to_string(), &args)?;
    Ok(proc)
}
