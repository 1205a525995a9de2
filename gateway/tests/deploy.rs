//! The shipped deploy files hold together: the Kubernetes manifests pass the API schemas
//! strictly, the ConfigMap's gateway config validates and serves through a real DNS SRV answer
//! with the sample pods' own arguments, the systemd unit verifies, and the container build
//! matches the pinned toolchain and the binaries that exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arena_testkit::free_addr;
use saphyr::{LoadableYamlNode, Yaml};
use support::dnsmasq::Dnsmasq;
use support::http::{client, get};
use support::procs::{bin, Proc, TempDir};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a multi-document YAML file.
fn docs(rel: &str) -> Vec<Yaml<'static>> {
    Yaml::load_from_str(Box::leak(read(rel).into_boxed_str())).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn str_at<'a>(y: &'a Yaml<'_>, path: &[&str]) -> &'a str {
    let mut node = y;
    for key in path {
        node = &node[*key];
    }
    node.as_str().unwrap_or_else(|| panic!("no string at {path:?}"))
}

/// The document of `kind` named `name` in `rel`.
fn find(rel: &str, kind: &str, name: &str) -> Yaml<'static> {
    docs(rel)
        .into_iter()
        .find(|d| str_at(d, &["kind"]) == kind && str_at(d, &["metadata", "name"]) == name)
        .unwrap_or_else(|| panic!("{rel}: no {kind} {name}"))
}

/// The first container's `args` of a Deployment.
fn container_args(deployment: &Yaml<'_>) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

const MANIFESTS: [&str; 4] = [
    "deploy/kubernetes/namespace.yaml",
    "deploy/kubernetes/sample-pods.yaml",
    "deploy/kubernetes/gateway.yaml",
    "deploy/kubernetes/prescale.yaml",
];

#[test]
fn kubernetes_manifests_pass_the_api_schemas_strictly() {
    let validator = root().join("target/tools/venv/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} missing: run deploy/local/tools-setup.sh",
        validator.display()
    );
    let out = Command::new(&validator)
        .arg("--strict")
        .args(MANIFESTS.iter().map(|m| root().join(m)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // 1 + 4 + 8 + 5 resources, each reported as passed.
    assert_eq!(text.matches(" passed for resource ").count(), 18, "{text}");

    // The kustomization lists exactly these files.
    let kustomization = &docs("deploy/kubernetes/kustomization.yaml")[0];
    let listed: Vec<&str> = kustomization["resources"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let want: Vec<&str> = MANIFESTS.iter().map(|m| m.rsplit('/').next().unwrap()).collect();
    assert_eq!(listed, want);
}

/// The pre-scaling pair moves only the gateway HPA's floor: up to a floor within the HPA's
/// range before the match, back to the HPA's own `minReplicas` after, with the rights to patch
/// that HPA and nothing else.
#[test]
fn prescaling_moves_only_the_gateway_hpas_floor() {
    let hpa = find(
        "deploy/kubernetes/gateway.yaml",
        "HorizontalPodAutoscaler",
        "arena-gateway",
    );
    let (min, max) = (
        hpa["spec"]["minReplicas"].as_integer().unwrap(),
        hpa["spec"]["maxReplicas"].as_integer().unwrap(),
    );
    let floor = |job: &str| {
        let cron = find("deploy/kubernetes/prescale.yaml", "CronJob", job);
        let c = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        let env = |name: &str| {
            c["env"]
                .as_vec()
                .unwrap()
                .iter()
                .find(|e| str_at(e, &["name"]) == name)
                .map(|e| str_at(e, &["value"]).to_string())
                .unwrap()
        };
        assert_eq!(env("HPA"), "arena-gateway", "{job} patches another HPA");
        let args: Vec<&str> = c["args"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[..3], ["patch", "hpa/$(HPA)", "--type=merge"], "{job}");
        assert!(args[4].contains("\"minReplicas\":$(MIN_REPLICAS)"), "{job}: {args:?}");
        assert!(!str_at(&cron, &["spec", "schedule"]).is_empty());
        env("MIN_REPLICAS").parse::<i64>().unwrap()
    };
    let up = floor("arena-prescale-up-saturday-final");
    let down = floor("arena-prescale-down-saturday-final");
    assert!(up > min && up <= max, "raised floor {up} outside {min}..={max}");
    assert_eq!(down, min, "the floor must come back to the HPA's own minReplicas");
    let role = find("deploy/kubernetes/prescale.yaml", "Role", "arena-prescaler");
    let rule = &role["rules"][0];
    assert_eq!(str_at(&rule["resourceNames"][0], &[]), "arena-gateway");
    let verbs: Vec<&str> = rule["verbs"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(verbs, ["get", "patch"]);
    assert_eq!(role["rules"].as_vec().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_config_serves_the_headless_service_pods() {
    let namespace = str_at(&docs("deploy/kubernetes/kustomization.yaml")[0], &["namespace"]).to_string();
    let config = find("deploy/kubernetes/gateway.yaml", "ConfigMap", "arena-gateway-config");
    let text = str_at(&config, &["data", "gateway.yaml"]).to_string();

    // The SRV name the gateway asks for is the one Kubernetes publishes for the headless
    // Service's named port: _<port>._tcp.<service>.<namespace>.svc.cluster.local.
    let service = find("deploy/kubernetes/sample-pods.yaml", "Service", "match-api");
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"), "must be headless");
    let port = &service["spec"]["ports"][0];
    let srv = format!(
        "_{}._tcp.{}.{namespace}.svc.cluster.local",
        str_at(port, &["name"]),
        str_at(&service, &["metadata", "name"])
    );
    assert!(
        text.contains(&format!("name: {srv}\n")),
        "gateway config does not ask for {srv}"
    );

    // mTLS material as the README makes it, laid out as the two Secrets' keys.
    let dir = TempDir::new("deploy");
    let pki = dir.0.join("pki");
    let certs = support::procs::sidecar_certs;
    let p = pki.display().to_string();
    certs(&["init", "--dir", &p]);
    certs(&[
        "issue",
        "--dir",
        &p,
        "--name",
        "match-api",
        "--spiffe-id",
        "spiffe://arena/ns/esports/sa/match-api",
    ]);
    certs(&[
        "issue",
        "--dir",
        &p,
        "--name",
        "arena-gateway",
        "--spiffe-id",
        "spiffe://arena/ns/esports/sa/arena-gateway",
    ]);
    let secret = |name: &str, workload: &str| {
        let d = dir.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(pki.join("ca.pem"), d.join("ca.pem")).unwrap();
        std::fs::copy(pki.join(format!("{workload}.pem")), d.join("tls.pem")).unwrap();
        std::fs::copy(pki.join(format!("{workload}-key.pem")), d.join("tls-key.pem")).unwrap();
        d.display().to_string()
    };
    let (pod_mtls, gateway_mtls) = (secret("mtls-pod", "match-api"), secret("mtls-gateway", "arena-gateway"));

    // Two pods, each app run with the Deployment's own arguments (its loopback port moved to a
    // free one) behind a sidecar run with the shipped sidecar config (bind addresses, the app's
    // address and the Secret's mount point changed).
    let deployment_pods = find("deploy/kubernetes/sample-pods.yaml", "Deployment", "match-api");
    let pod_spec = &deployment_pods["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["shareProcessNamespace"].as_bool(),
        Some(true),
        "the sidecar reads the app's /proc"
    );
    let sidecar = &pod_spec["initContainers"][0];
    assert_eq!(str_at(sidecar, &["restartPolicy"]), "Always", "a native sidecar");
    let pod_args = container_args(&deployment_pods);
    let listen_at = pod_args.iter().position(|a| a == "--listen").unwrap() + 1;
    assert_eq!(
        pod_args[listen_at], "127.0.0.1:8080",
        "the app listens on loopback only"
    );
    assert!(
        !pod_args.iter().any(|a| a == "--load-report"),
        "the sidecar reports load"
    );
    let sidecar_text = str_at(
        &find(
            "deploy/kubernetes/sample-pods.yaml",
            "ConfigMap",
            "arena-sidecar-config",
        ),
        &["data", "sidecar.yaml"],
    )
    .to_string();
    let pod_port = port["port"].as_integer().unwrap() as u16;
    assert!(
        sidecar_text.contains(&format!("listen: 0.0.0.0:{pod_port}")),
        "{sidecar_text}"
    );
    let mut pods = Vec::new();
    for ip in ["127.0.0.161", "127.0.0.162"] {
        let mut args = pod_args.clone();
        args[listen_at] = "127.0.0.1:0".into();
        let mut cmd = Command::new(bin("arena-pod"));
        cmd.args(&args);
        let (app, line) = Proc::spawn_until("arena-pod", cmd, "listening on", Duration::from_secs(10));
        let app_addr: std::net::SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
        let (listen, sidecar_admin) = (free_addr(ip).unwrap(), free_addr("127.0.0.1").unwrap());
        let local = sidecar_text
            .replace(&format!("listen: 0.0.0.0:{pod_port}"), &format!("listen: {listen}"))
            .replace("app: 127.0.0.1:8080", &format!("app: {app_addr}"))
            .replace("address: 0.0.0.0:15021", &format!("address: {sidecar_admin}"))
            .replace("/etc/arena/mtls", &pod_mtls)
            .replace(
                "/var/lib/arena/captures",
                &dir.0.join(format!("captures-{ip}")).display().to_string(),
            );
        let file = dir.0.join(format!("sidecar-{ip}.yaml"));
        std::fs::write(&file, &local).unwrap();
        let mut args: Vec<String> = sidecar["args"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(args, ["run", "-c", "/etc/arena/sidecar.yaml"]);
        args[2] = file.display().to_string();
        let mut cmd = Command::new(bin("arena-sidecar"));
        cmd.args(&args)
            .env("ARENA_APP_CPU_LIMIT", "1000")
            .env("RUST_LOG", "warn");
        let sc = Proc::spawn("arena-sidecar", cmd);
        pods.push((app, sc, listen, sidecar_admin));
    }
    let dns = Dnsmasq::start(
        &[],
        &[
            (srv.as_str(), "pod-1.match-api.local", pods[0].2.port(), "127.0.0.161"),
            (srv.as_str(), "pod-2.match-api.local", pods[1].2.port(), "127.0.0.162"),
        ],
    );

    // The shipped config, with only the bind addresses and the DNS server changed.
    let (addr, admin) = (free_addr("127.0.0.1").unwrap(), free_addr("127.0.0.1").unwrap());
    let local = text
        .replace("address: 0.0.0.0:8080", &format!("address: {addr}"))
        .replace("address: 0.0.0.0:9901", &format!("address: {admin}"))
        .replace(
            &format!("name: {srv}\n"),
            &format!("name: {srv}\n      resolver: \"{}\"\n", dns.addr()),
        )
        .replace("/etc/arena/mtls", &gateway_mtls);
    assert_ne!(local, text);
    let file = dir.0.join("gateway.yaml");
    std::fs::write(&file, &local).unwrap();

    // The admin token comes from the Secret, which the pod cannot start without, through the
    // variable the config names; reads need it (the admin port is beyond loopback there).
    let deployment = find("deploy/kubernetes/gateway.yaml", "Deployment", "arena-gateway");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let token_env = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token_env: "))
        .expect("the ConfigMap's config names admin.token_env")
        .trim();
    assert!(text.contains("read_token: required"), "{text}");
    let env = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| str_at(e, &["name"]) == token_env)
        .unwrap_or_else(|| panic!("the Deployment does not set {token_env}"));
    let secret = &env["valueFrom"]["secretKeyRef"];
    assert_eq!(str_at(secret, &["name"]), "arena-admin-token");
    assert_eq!(str_at(secret, &["key"]), "token");
    let optional = secret
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("optional"))
        .and_then(|(_, v)| v.as_bool());
    assert_ne!(optional, Some(true), "the token Secret must be required");
    let token = "deploy-test-token";
    let check = Command::new(bin("arena-gateway"))
        .args(["check", "-c"])
        .arg(&file)
        .env(token_env, token)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // Without the token it is refused at load, not left with reads nobody can make.
    let no_token = Command::new(bin("arena-gateway"))
        .args(["check", "-c"])
        .arg(&file)
        .env_remove(token_env)
        .output()
        .unwrap();
    assert!(!no_token.status.success());

    // Started with the Deployment's own arguments (config path moved to the temp file).
    let mut args = container_args(&deployment);
    assert_eq!(args, ["run", "-c", "/etc/arena/gateway.yaml"]);
    args[2] = file.display().to_string();
    let mut cmd = Command::new(bin("arena-gateway"));
    cmd.args(&args).env("RUST_LOG", "warn").env(token_env, token);
    let _gw = Proc::spawn("arena-gateway", cmd);
    support::procs::wait_listening(admin, Duration::from_secs(15));
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    // The probes' paths answer without a token; readiness comes once DNS has given pods.
    let c = client();
    let probes = container;
    assert_eq!(
        get(&c, admin, str_at(probes, &["livenessProbe", "httpGet", "path"]), &[])
            .await
            .status,
        200
    );
    let ready = str_at(probes, &["readinessProbe", "httpGet", "path"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&c, admin, ready, &[]).await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The app container's probes ask its sidecar: ready once the app answers, live.
    let app = &pod_spec["containers"][0];
    for (_, _, _, sidecar_admin) in &pods {
        for probe in ["readinessProbe", "livenessProbe"] {
            let path = str_at(app, &[probe, "httpGet", "path"]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while get(&c, *sidecar_admin, path, &[]).await.status != 200 {
                assert!(tokio::time::Instant::now() < deadline, "{probe} {path} never 200");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Traffic reaches both pods through their sidecars, over mTLS, with their load reports
    // read by the gateway (never passed on).
    let mut served = std::collections::HashSet::new();
    for _ in 0..40 {
        let r = get(&c, addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("endpoint-load-metrics").is_none());
        served.insert(r.header("x-pod").unwrap().to_string());
    }
    assert_eq!(served.len(), 2, "{served:?}");
    // Prometheus' scrape works with the token and only with it.
    assert_eq!(get(&c, admin, "/metrics", &[]).await.status, 401);
    let scrape = get(
        &c,
        admin,
        str_at(
            &deployment,
            &["spec", "template", "metadata", "annotations", "prometheus.io/path"],
        ),
        &auth,
    )
    .await;
    assert_eq!(scrape.status, 200);
    assert!(scrape.text().contains("arena_requests_total"), "{}", scrape.text());
    // Both pods were discovered through SRV, with the ports their records carry.
    assert_eq!(get(&c, admin, "/clusters", &[]).await.status, 401);
    let clusters = get(&c, admin, "/clusters", &auth).await.json();
    let mut found: Vec<String> = clusters["clusters"][0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(found, [pods[0].2.to_string(), pods[1].2.to_string()], "{clusters}");
}

#[test]
fn systemd_unit_verifies_and_is_locked_down() {
    let unit = read("deploy/systemd/arena-gateway.service");
    let dir = TempDir::new("systemd");
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let path = dir.0.join("arena-gateway.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/arena-gateway",
            &bin("arena-gateway").display().to_string(),
        ),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze missing: run deploy/local/tools-setup.sh");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    // verify exits 0 on unknown keys but says so: any message is a defect.
    assert!(verify.status.success() && stderr.trim().is_empty(), "{stderr}");
    let security = Command::new("systemd-analyze")
        // The threshold is on systemd's internal 0-100 scale: 30 = the "3.0" it prints.
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "exposure above 3.0:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );
    // It runs the binary's real subcommands on a real config.
    for sub in [
        "check -c /etc/arena/gateway.yaml",
        "run -c /etc/arena/gateway.yaml",
        "upgrade -c /etc/arena/gateway.yaml --pid $MAINPID",
    ] {
        assert!(unit.contains(&format!("/usr/local/bin/arena-gateway {sub}")), "{sub}");
    }
}

#[test]
fn container_build_matches_the_toolchain_and_binaries() {
    let dockerfile = read("deploy/container/Dockerfile");
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        dockerfile.contains(&format!("FROM rust:{channel}-")),
        "the build image must use the pinned toolchain {channel}"
    );
    for name in ["arena-gateway", "arena-sidecar", "arena-pod"] {
        assert!(dockerfile.contains(&format!("--bin {name}")), "{name} not built");
        assert!(bin(name).exists(), "{name} is not a binary of this workspace");
    }
    // The manifests run this image.
    for rel in ["deploy/kubernetes/gateway.yaml", "deploy/kubernetes/sample-pods.yaml"] {
        for d in docs(rel).iter().filter(|d| str_at(d, &["kind"]) == "Deployment") {
            let container = &d["spec"]["template"]["spec"]["containers"][0];
            assert!(str_at(container, &["image"]).starts_with("arena:"), "{rel}");
        }
    }
}
