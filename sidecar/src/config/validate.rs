//! The sidecar document → validated [`Config`]: `inbound` checked here, `admin` and `server`
//! by the gateway's validators (same keys, same rules), every problem at its position.

use std::path::PathBuf;
use std::time::Duration;

use arena_core::config::fields::{expand_env, parse_addr};
use arena_core::config::{dur_or, Dur};
use arena_core::diag::{parse_document, yaml, ConfigErrors, Diagnostic, Diagnostics, Env, Seg};
use arena_gateway::config::file::{AdminFile, ServerFile};
use arena_gateway::config::{listeners, server};

use super::defaults as def;
use super::file::{CaptureFile, ConcurrencyFile, CpuFile, InboundFile, InboundTlsFile, LimitFile, TOP_LEVEL_KEYS};
use super::{
    AimdSpec, AppCheck, CaptureSpec, CgroupChoice, Config, CpuSpec, GradientSpec, Inbound, InboundTlsSpec, LimitSpec,
    Loaded, QueueSpec,
};

/// Gateway `server:` keys that mean nothing beside a pod.
const NOT_SIDECAR_SERVER_KEYS: &[(&str, &str)] = &[
    (
        "h2c",
        "the app side speaks HTTP/1.1 and the gateway dials HTTP/1.1 or TLS",
    ),
    (
        "upgrade_sock",
        "a sidecar restarts with its pod; there is no socket hand-over",
    ),
    ("state_file", "release states live in the gateway"),
];

/// Parses, decodes and validates configuration text against the process environment.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    load_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// Like [`load_str`], with environment variables from `env`.
pub fn load_with_env(text: &str, origin: &str, env: Env<'_>) -> Result<Loaded, ConfigErrors> {
    let root = parse_document(text, origin)?;
    let mut c = Diagnostics::with_env(&root, origin, text, env);
    let mut config = build(&mut c);
    let mut diags = c.into_list();
    let outbound_node = yaml::entries(&root)
        .and_then(|e| e.into_iter().find(|(k, _, _)| k == "outbound"))
        .map(|(_, _, v)| v);
    if let Some(node) = outbound_node {
        // Its own collector rooted at the section: the shared validators' paths start at
        // `clusters`, `routes`..., and every position is still the file's.
        let mut o = Diagnostics::with_env(node, origin, text, env);
        let outbound = super::outbound::validate(&mut o, config.as_ref());
        diags.extend(o.into_list());
        if let Some(cfg) = config.as_mut() {
            cfg.outbound = outbound;
        }
    }
    match config {
        Some(config) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded {
            config,
            warnings: diags,
            text_hash: arena_gateway::config::text_hash(text),
        }),
        _ => Err(ConfigErrors(diags)),
    }
}

fn build(c: &mut Diagnostics<'_>) -> Option<Config> {
    let root = c.root();
    let Some(entries) = yaml::entries(root) else {
        c.error_at(
            &[],
            "the configuration must be a mapping of sections",
            Some(format!("top-level keys: {}", TOP_LEVEL_KEYS.join(", "))),
        );
        return None;
    };
    let mut inbound: Option<InboundFile> = None;
    let mut admin: Option<AdminFile> = None;
    let mut server_file = ServerFile::default();
    let mut saw_inbound = false;
    let mut tracing_file: Option<arena_core::config::TracingFile> = None;
    for (key, key_node, value) in entries {
        match key.as_str() {
            "inbound" => {
                saw_inbound = true;
                inbound = c.decode(value);
            }
            "admin" => admin = c.decode(value),
            "tracing" => tracing_file = c.decode(value),
            "server" => {
                for (k, k_node, _) in yaml::entries(value).unwrap_or_default() {
                    if let Some((_, why)) = NOT_SIDECAR_SERVER_KEYS.iter().find(|(n, _)| *n == k) {
                        c.error(
                            yaml::pos(k_node),
                            format!("`server.{k}` is a gateway key, not a sidecar one"),
                            Some(format!("remove it: {why}")),
                        );
                    }
                }
                if !yaml::is_null(value) {
                    server_file = c.decode(value).unwrap_or_default();
                }
            }
            // Validated on its own (see `load_with_env`).
            "outbound" => {}
            other => c.unknown_key(key_node, other, "top-level key", TOP_LEVEL_KEYS),
        }
    }
    if !saw_inbound {
        c.error_at(
            &[],
            "missing section `inbound`",
            Some("a sidecar needs at least `inbound: { listen: 0.0.0.0:9100, app: 127.0.0.1:8080 }`".into()),
        );
    }
    // A sidecar shares the pod's CPU with the app: one thread unless told otherwise.
    server_file.threads.get_or_insert(def::THREADS);
    server_file
        .upstream_keepalive_pool_size
        .get_or_insert(def::UPSTREAM_KEEPALIVE_POOL_SIZE);
    let server = server::server(c, &server_file);
    let admin_file = admin.unwrap_or(AdminFile {
        address: def::ADMIN_ADDRESS.into(),
        token_env: None,
        read_token: None,
    });
    let admin = listeners::admin(c, Some(admin_file), &[]);
    let inbound = inbound.and_then(|f| validate_inbound(c, &f, server.max_request_body_bytes));
    let tracing = tracing_file
        .as_ref()
        .and_then(|t| arena_core::config::tracing::tracing(c, t, "arena-sidecar"));
    let (inbound, admin) = (inbound?, admin?);
    for (addr, what) in [(inbound.app, "inbound.app"), (admin.address, "admin.address")] {
        if addr == inbound.listen {
            c.error_at(
                &[Seg::Key("inbound"), Seg::Key("listen")],
                format!("inbound.listen {addr} is also {what}"),
                Some("the pod port the gateway dials, the app's port and the admin port must differ".into()),
            );
        }
    }
    if admin.address == inbound.app {
        c.error_at(
            &[Seg::Key("admin"), Seg::Key("address")],
            format!("admin.address {} is the app's address", admin.address),
            Some("give the admin API its own port".into()),
        );
    }
    Some(Config {
        inbound,
        admin,
        server,
        outbound: None,
        tracing,
    })
}

fn at(keys: &[&'static str]) -> Vec<Seg> {
    std::iter::once(Seg::Key("inbound"))
        .chain(keys.iter().map(|k| Seg::Key(k)))
        .collect()
}

fn validate_inbound(c: &mut Diagnostics<'_>, f: &InboundFile, max_body: usize) -> Option<Inbound> {
    let listen = parse_addr(c, &at(&["listen"]), &f.listen, "inbound.listen");
    let app = parse_addr(c, &at(&["app"]), &f.app, "inbound.app");
    if let Some(a) = app {
        if !a.ip().is_loopback() {
            c.warn_at(
                &at(&["app"]),
                format!("the app address {a} is not loopback"),
                Some("bind the app to 127.0.0.1 so nothing reaches it around the sidecar's limits".into()),
            );
        }
    }
    let request_timeout = dur_or(f.request_timeout, def::REQUEST_TIMEOUT);
    if !(def::MIN_REQUEST_TIMEOUT..=def::MAX_REQUEST_TIMEOUT).contains(&request_timeout) {
        c.error_at(
            &at(&["request_timeout"]),
            "request_timeout must be between 1ms and 1h",
            Some("the longest an app may take to answer before the request is cut and captured".into()),
        );
    }
    let connect_timeout = dur_or(f.connect_timeout, def::CONNECT_TIMEOUT);
    if connect_timeout.is_zero() || connect_timeout > request_timeout {
        c.error_at(
            &at(&["connect_timeout"]),
            "connect_timeout must be above 0 and at most request_timeout",
            Some("a loopback connect takes microseconds; 250ms is plenty".into()),
        );
    }
    let stuck_after = f.stuck_after.unwrap_or(def::STUCK_AFTER);
    if !(1..=def::MAX_STUCK_AFTER).contains(&stuck_after) {
        c.error_at(
            &at(&["stuck_after"]),
            format!("stuck_after must be between 1 and {}", def::MAX_STUCK_AFTER),
            Some("consecutive timeouts after which the app counts as stuck".into()),
        );
    }
    let app_check = f.app_check.clone().unwrap_or_default();
    let check_interval = dur_or(app_check.interval, def::APP_CHECK_INTERVAL);
    if check_interval < Duration::from_millis(10) {
        c.error_at(
            &at(&["app_check", "interval"]),
            "app_check.interval must be at least 10ms",
            None,
        );
    }
    if let Some(p) = &app_check.path {
        if !p.starts_with('/') || p.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.error_at(
                &at(&["app_check", "path"]),
                format!("app_check.path `{p}` is not a request path"),
                Some("write an absolute path such as /healthz".into()),
            );
        }
    }
    let queue_file = f.queue.clone().unwrap_or_default();
    let queue = QueueSpec {
        max: queue_file.max.unwrap_or(def::QUEUE_MAX),
        timeout: dur_or(queue_file.timeout, def::QUEUE_TIMEOUT),
    };
    if queue.max > def::MAX_QUEUE {
        c.error_at(
            &at(&["queue", "max"]),
            format!("queue.max must be at most {}", def::MAX_QUEUE),
            None,
        );
    }
    if queue.timeout >= request_timeout {
        c.error_at(
            &at(&["queue", "timeout"]),
            "queue.timeout must be shorter than request_timeout",
            Some("a request should wait for a slot far less than the app may take to answer it".into()),
        );
    }
    let limit = limit(c, f.max_concurrency.as_ref());
    let capture = f.capture.as_ref().and_then(|cf| capture(c, cf, max_body));
    let cpu = cpu(c, f.cpu.as_ref());
    let tls = f.tls.as_ref().and_then(|t| tls(c, t));
    Some(Inbound {
        listen: listen?,
        app: app?,
        app_check: AppCheck {
            interval: check_interval,
            path: app_check.path,
        },
        limit: limit?,
        queue,
        request_timeout,
        connect_timeout,
        stuck_after,
        liveness_grace: dur_or(f.liveness_grace, def::LIVENESS_GRACE),
        capture,
        cpu: cpu?,
        tls,
    })
}

/// `inbound.tls`: each allow entry parses, and the files load as the listener will load them
/// (so `check` accepts only what starts).
fn tls(c: &mut Diagnostics<'_>, f: &InboundTlsFile) -> Option<InboundTlsSpec> {
    let mut ok = true;
    for (i, entry) in f.allow.iter().enumerate() {
        if let Err(why) = crate::identity::Allow::parse(entry) {
            ok = false;
            c.error_at(
                &[Seg::Key("inbound"), Seg::Key("tls"), Seg::Key("allow"), Seg::Index(i)],
                format!("`{entry}` is not a SPIFFE ID or prefix: {why}"),
                Some(
                    "write e.g. spiffe://arena/ns/edge/sa/gateway, or spiffe://arena/ns/edge/* for a whole namespace"
                        .into(),
                ),
            );
        }
    }
    let spec = InboundTlsSpec {
        ca_file: PathBuf::from(&f.ca_file),
        cert_file: PathBuf::from(&f.cert_file),
        key_file: PathBuf::from(&f.key_file),
        allow: f.allow.clone(),
        reload_interval: dur_or(f.reload_interval, def::TLS_RELOAD_INTERVAL),
    };
    if spec.reload_interval < Duration::from_millis(100) {
        ok = false;
        c.error_at(
            &at(&["tls", "reload_interval"]),
            "reload_interval must be at least 100ms",
            None,
        );
    }
    if let Err(e) = crate::tls::InboundTls::load(spec.files()) {
        ok = false;
        c.error_at(
            &at(&["tls"]),
            format!("inbound.tls: {e}"),
            Some("`arena-sidecar certs init` and `certs issue` make a dev CA and workload certificates".into()),
        );
    }
    ok.then_some(spec)
}

fn limit(c: &mut Diagnostics<'_>, f: Option<&ConcurrencyFile>) -> Option<LimitSpec> {
    let path = at(&["max_concurrency"]);
    match f {
        None => Some(gradient(c, &LimitFile::default())),
        Some(ConcurrencyFile::Fixed(n)) => match u32::try_from(*n) {
            Ok(n) if (1..=def::MAX_LIMIT).contains(&n) => Some(LimitSpec::Fixed { limit: n }),
            _ => {
                c.error_at(
                    &path,
                    format!("max_concurrency must be between 1 and {}", def::MAX_LIMIT),
                    Some("or `adaptive`, which finds the limit from the app's latency".into()),
                );
                None
            }
        },
        Some(ConcurrencyFile::Word(w)) if w == "adaptive" => Some(gradient(c, &LimitFile::default())),
        Some(ConcurrencyFile::Word(w)) => {
            c.error_at(
                &path,
                format!("max_concurrency `{w}` is neither a number nor `adaptive`"),
                Some("write e.g. `64`, `adaptive`, or `{ algorithm: aimd, initial: 16 }`".into()),
            );
            None
        }
        Some(ConcurrencyFile::Algorithm(a)) => match a.algorithm.as_str() {
            "gradient" => {
                if a.latency_threshold.is_some() {
                    other_algorithm_key(c, "latency_threshold", "aimd", "gradient");
                }
                Some(gradient(c, a))
            }
            "aimd" => {
                for (key, set) in [
                    ("interval", a.interval.is_some()),
                    ("min_samples", a.min_samples.is_some()),
                    ("percentile", a.percentile.is_some()),
                    ("buffer", a.buffer.is_some()),
                    ("smoothing", a.smoothing.is_some()),
                    ("baseline_window", a.baseline_window.is_some()),
                ] {
                    if set {
                        other_algorithm_key(c, key, "gradient", "aimd");
                    }
                }
                Some(aimd(c, a))
            }
            other => {
                c.error_at(
                    &at(&["max_concurrency", "algorithm"]),
                    format!("unknown algorithm `{other}`"),
                    Some("`gradient` (latency gradient, the default of `adaptive`) or `aimd`".into()),
                );
                None
            }
        },
    }
}

fn other_algorithm_key(c: &mut Diagnostics<'_>, key: &str, owner: &str, chosen: &str) {
    c.error_at(
        &at(&["max_concurrency", "algorithm"]),
        format!("`{key}` is an {owner} key; algorithm is {chosen}"),
        Some(format!("remove `{key}` or set `algorithm: {owner}`")),
    );
}

/// `min ≤ initial ≤ max`, all within range; returns them.
fn bounds(c: &mut Diagnostics<'_>, f: &LimitFile, (initial, min, max): (u32, u32, u32)) -> (u32, u32, u32) {
    let initial = f.initial.unwrap_or(initial);
    let min = f.min.unwrap_or(min);
    let max = f.max.unwrap_or(max);
    if min == 0 || max > def::MAX_LIMIT || !(min <= initial && initial <= max) {
        c.error_at(
            &at(&["max_concurrency"]),
            format!(
                "the limit bounds need 1 ≤ min ≤ initial ≤ max ≤ {} (min {min}, initial {initial}, max {max})",
                def::MAX_LIMIT
            ),
            None,
        );
    }
    (initial, min, max)
}

fn backoff(c: &mut Diagnostics<'_>, f: &LimitFile, default: f64) -> f64 {
    let b = f.backoff.unwrap_or(default);
    if !(0.5..1.0).contains(&b) {
        c.error_at(
            &at(&["max_concurrency", "backoff"]),
            format!("backoff must be in [0.5, 1), not {b}"),
            Some("the factor the limit is multiplied by on a timeout; 0.9 is usual".into()),
        );
    }
    b
}

fn gradient(c: &mut Diagnostics<'_>, f: &LimitFile) -> LimitSpec {
    use def::gradient as g;
    let (initial, min, max) = bounds(c, f, (g::INITIAL, g::MIN, g::MAX));
    let spec = GradientSpec {
        initial,
        min,
        max,
        interval: dur_or(f.interval, g::INTERVAL),
        min_samples: f.min_samples.unwrap_or(g::MIN_SAMPLES),
        percentile: f.percentile.unwrap_or(g::PERCENTILE),
        buffer: f.buffer.unwrap_or(g::BUFFER),
        smoothing: f.smoothing.unwrap_or(g::SMOOTHING),
        baseline_window: dur_or(f.baseline_window, g::BASELINE_WINDOW),
        backoff: backoff(c, f, g::BACKOFF),
    };
    let mut bad = |key: &'static str, message: String| c.error_at(&at(&["max_concurrency", key]), message, None);
    if spec.interval < Duration::from_millis(10) {
        bad("interval", "interval must be at least 10ms".into());
    }
    if !(1..=99).contains(&spec.percentile) {
        bad(
            "percentile",
            format!("percentile must be 1..99, not {}", spec.percentile),
        );
    }
    if !(0.0..=1.0).contains(&spec.buffer) {
        bad("buffer", format!("buffer must be in [0, 1], not {}", spec.buffer));
    }
    if !(spec.smoothing > 0.0 && spec.smoothing <= 1.0) {
        bad(
            "smoothing",
            format!("smoothing must be in (0, 1], not {}", spec.smoothing),
        );
    }
    if spec.baseline_window < spec.interval {
        bad(
            "baseline_window",
            "baseline_window must be at least one interval".into(),
        );
    }
    LimitSpec::Gradient(spec)
}

fn aimd(c: &mut Diagnostics<'_>, f: &LimitFile) -> LimitSpec {
    use def::aimd as a;
    let (initial, min, max) = bounds(c, f, (a::INITIAL, a::MIN, a::MAX));
    let latency_threshold = dur_or(f.latency_threshold, a::LATENCY_THRESHOLD);
    if latency_threshold.is_zero() {
        c.error_at(
            &at(&["max_concurrency", "latency_threshold"]),
            "latency_threshold must be above 0",
            None,
        );
    }
    LimitSpec::Aimd(AimdSpec {
        initial,
        min,
        max,
        latency_threshold,
        backoff: backoff(c, f, a::BACKOFF),
    })
}

fn capture(c: &mut Diagnostics<'_>, f: &CaptureFile, max_body: usize) -> Option<CaptureSpec> {
    let dir = PathBuf::from(&f.dir);
    if !dir.is_absolute() {
        c.error_at(
            &at(&["capture", "dir"]),
            format!("capture.dir `{}` is not an absolute path", f.dir),
            Some("write e.g. /var/lib/arena/captures (an emptyDir volume in Kubernetes)".into()),
        );
    }
    let max_files = f.max_files.unwrap_or(def::CAPTURE_MAX_FILES);
    if !(1..=def::MAX_CAPTURE_FILES).contains(&max_files) {
        c.error_at(
            &at(&["capture", "max_files"]),
            format!("max_files must be between 1 and {}", def::MAX_CAPTURE_FILES),
            None,
        );
    }
    let max_body_bytes = f.max_body_bytes.unwrap_or(def::CAPTURE_MAX_BODY_BYTES);
    if max_body_bytes > def::MAX_CAPTURE_BODY_BYTES {
        c.error_at(
            &at(&["capture", "max_body_bytes"]),
            "max_body_bytes must be at most 16 MiB",
            Some("the first bytes of a body are what a replay needs; each request in flight holds them".into()),
        );
    }
    let max_body_bytes = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    if max_body_bytes > max_body {
        c.warn_at(
            &at(&["capture", "max_body_bytes"]),
            format!(
                "max_body_bytes is above server.max_request_body_bytes ({max_body}): bodies are refused before that"
            ),
            None,
        );
    }
    let redact = match &f.redact {
        Some(list) => list.iter().map(|h| h.to_ascii_lowercase()).collect(),
        None => def::REDACT.iter().map(|h| (*h).to_string()).collect(),
    };
    Some(CaptureSpec {
        dir,
        max_files,
        max_body_bytes,
        redact,
    })
}

fn cpu(c: &mut Diagnostics<'_>, f: Option<&CpuFile>) -> Option<CpuSpec> {
    let f = f.cloned().unwrap_or_default();
    let cgroup = match f.cgroup.as_deref() {
        None | Some("auto") => CgroupChoice::Auto,
        Some("off") => CgroupChoice::Off,
        Some(p) if p.starts_with('/') => CgroupChoice::Dir(PathBuf::from(p)),
        Some(other) => {
            c.error_at(
                &at(&["cpu", "cgroup"]),
                format!("cpu.cgroup `{other}` is not `auto`, `off` or an absolute directory"),
                None,
            );
            CgroupChoice::Off
        }
    };
    let limit_millicores = match f.limit_millicores.as_deref() {
        None => None,
        Some(text) => match expand_env(text, |n| c.env(n)).map_err(|e| e.to_string()).and_then(|t| {
            let t = t.trim();
            t.parse::<u32>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or(format!("`{t}` is not a positive whole number"))
        }) {
            Ok(v) => Some(v),
            Err(why) => {
                c.error_at(
                    &at(&["cpu", "limit_millicores"]),
                    format!("cpu.limit_millicores: {why}"),
                    Some("millicores of the app container's limit, e.g. `${env:ARENA_APP_CPU_LIMIT}` from the Downward API (resource limits.cpu, divisor 1m)".into()),
                );
                None
            }
        },
    };
    let interval = dur_or(f.interval.map(|d: Dur| d), def::CPU_INTERVAL);
    if interval < Duration::from_millis(50) {
        c.error_at(&at(&["cpu", "interval"]), "cpu.interval must be at least 50ms", None);
    }
    Some(CpuSpec {
        cgroup,
        process: f.process,
        limit_millicores,
        interval,
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
