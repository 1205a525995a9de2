//! mTLS on the pod port with real processes and certificates made by `arena-sidecar certs`:
//! the right client certificate gets through, none / another CA's / a disallowed identity is
//! refused in the handshake, and rotated certificates are served without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::support::gateway::Pod;
use common::support::procs::sidecar_certs as certs;
use common::Sidecar;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const POD_ID: &str = "spiffe://arena/ns/demo/sa/pod";
const GATEWAY_ID: &str = "spiffe://arena/ns/edge/sa/gateway";

fn pems(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut std::fs::read(path).unwrap().as_slice())
        .map(Result::unwrap)
        .collect()
}

/// A dev CA in `dir/pki` with the pod's and the gateway's certificates (`pod`, `gateway`).
fn pod_and_gateway_pki(dir: &Path) -> std::path::PathBuf {
    let pki = dir.join("pki");
    let p = pki.display().to_string();
    certs(&["init", "--dir", &p]);
    certs(&["issue", "--dir", &p, "--name", "pod", "--spiffe-id", POD_ID]);
    certs(&["issue", "--dir", &p, "--name", "gateway", "--spiffe-id", GATEWAY_ID]);
    pki
}

/// A client trusting `ca`, presenting `name`'s certificate from `dir` when given.
fn client(ca: &Path, identity: Option<(&Path, &str)>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pems(ca) {
        roots.add(c).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((dir, name)) => {
            let chain = pems(&dir.join(format!("{name}.pem")));
            let key = std::fs::read(dir.join(format!("{name}-key.pem"))).unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_slice()).unwrap().unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// One HTTPS GET: the status and the serial of the server certificate, or why it failed.
async fn get(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(u16, String), String> {
    let run = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        // The pod's certificate carries its SPIFFE ID's DNS form as a DNS SAN.
        let name = ServerName::try_from("pod.demo.sa.identity.arena").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .unwrap();
        let serial = x509_parser::parse_x509_certificate(&leaf)
            .unwrap()
            .1
            .raw_serial_as_string();
        tls.write_all(b"GET /v1/matches HTTP/1.1\r\nhost: pod\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
        let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {:?}", String::from_utf8_lossy(&answer)))?;
        Ok((status, serial))
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_the_right_identity_and_rotates_without_restart() {
    let scratch = tempfile::tempdir().unwrap();
    let pki = pod_and_gateway_pki(scratch.path());
    let other = scratch.path().join("other-ca");
    let d = |p: &Path| p.display().to_string();
    certs(&[
        "issue",
        "--dir",
        &d(&pki),
        "--name",
        "intruder",
        "--spiffe-id",
        "spiffe://arena/ns/edge/sa/scraper",
    ]);
    certs(&["init", "--dir", &d(&other)]);
    certs(&[
        "issue",
        "--dir",
        &d(&other),
        "--name",
        "gateway",
        "--spiffe-id",
        GATEWAY_ID,
    ]);

    let pod = Pod::start("127.0.0.1", &[]);
    let tls = format!(
        "  tls:\n    ca_file: {p}/ca.pem\n    cert_file: {p}/pod.pem\n    key_file: {p}/pod-key.pem\n    allow: [\"{GATEWAY_ID}\"]\n    reload_interval: 200ms\n",
        p = d(&pki)
    );
    let sc = Sidecar::start("127.0.0.1", pod.addr, &tls, "");
    sc.wait_ready(200);
    let ca = pki.join("ca.pem");

    let (status, first_serial) = get(sc.addr, client(&ca, Some((&pki, "gateway")))).await.unwrap();
    assert_eq!(status, 200);
    for (what, config) in [
        ("no certificate", client(&ca, None)),
        ("another CA's certificate", client(&ca, Some((&other, "gateway")))),
        ("a disallowed identity", client(&ca, Some((&pki, "intruder")))),
    ] {
        let r = get(sc.addr, config).await;
        assert!(r.is_err(), "{what} got through: {r:?}");
    }
    assert!(sc.metric("arena_sidecar_tls_handshakes_total{result=\"identity_refused\"}") >= 1.0);
    assert!(sc.metric("arena_sidecar_tls_handshakes_total{result=\"ok\"}") >= 1.0);

    // Rotation: the pod's certificate is reissued in place; new handshakes get it, same process.
    let pid = sc.proc.0.pid();
    certs(&["issue", "--dir", &d(&pki), "--name", "pod", "--spiffe-id", POD_ID]);
    let mut rotated = None;
    arena_testkit::wait::until("the new certificate served", Duration::from_secs(10), || {
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(get(sc.addr, client(&ca, Some((&pki, "gateway")))))
            })
            .join()
            .unwrap()
        });
        match r {
            Ok((200, serial)) if serial != first_serial => {
                rotated = Some(serial);
                true
            }
            _ => false,
        }
    })
    .unwrap();
    assert!(rotated.is_some());
    assert_eq!(sc.proc.0.pid(), pid);
    assert!(sc.metric("arena_sidecar_cert_reloads_total{result=\"ok\"}") >= 1.0);
}

/// The gateway side: a cluster with `tls` dials the sidecars with its client certificate and
/// checks theirs for the pods' SPIFFE identity; without the certificate, or expecting another
/// identity, nothing gets through; a rotated client certificate is picked up without restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_dials_sidecars_over_mtls() {
    use common::support::gateway::Gateway;
    use common::support::http::{client as http_client, get as http_get};

    let scratch = tempfile::tempdir().unwrap();
    let pki = pod_and_gateway_pki(scratch.path());
    let d = |p: &Path| p.display().to_string();
    let pod = Pod::start("127.0.0.1", &["--name", "secure"]);
    let tls = format!(
        "  tls:\n    ca_file: {p}/ca.pem\n    cert_file: {p}/pod.pem\n    key_file: {p}/pod-key.pem\n    allow: [\"{GATEWAY_ID}\"]\n",
        p = d(&pki)
    );
    let sc = Sidecar::start("127.0.0.1", pod.addr, &tls, "");
    sc.wait_ready(200);
    let cluster = |tls: &str| {
        format!(
            "clusters:\n  - name: c\n    endpoints: [\"{}\"]\n    tls: {{ {tls} }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
            sc.addr
        )
    };
    let p = d(&pki);
    let c = http_client();

    let gw = Gateway::start(&cluster(&format!(
        "ca_file: {p}/ca.pem, cert_file: {p}/gateway.pem, key_file: {p}/gateway-key.pem, spiffe_id: \"{POD_ID}\""
    )));
    for _ in 0..5 {
        let r = http_get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!((r.status, r.header("x-pod")), (200, Some("secure")), "{}", r.text());
    }
    // Rotation: a new client certificate in the same files is used without a restart.
    let pid = gw.proc.0.pid();
    certs(&["issue", "--dir", &p, "--name", "gateway", "--spiffe-id", GATEWAY_ID]);
    arena_testkit::wait::until(
        "the gateway reloads its rotated certificate",
        Duration::from_secs(20),
        || {
            arena_testkit::http::call(gw.admin, "GET", "/metrics", &[], b"").is_ok_and(|r| {
                r.text()
                    .contains("arena_config_reloads_total{result=\"ok\",trigger=\"cert_rotation\"} 1")
            })
        },
    )
    .unwrap();
    assert_eq!(http_get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
    assert_eq!(gw.proc.0.pid(), pid);

    // No client certificate: the sidecar refuses the handshake.
    let no_cert = Gateway::start(&cluster(&format!("ca_file: {p}/ca.pem, spiffe_id: \"{POD_ID}\"")));
    let r = http_get(&c, no_cert.addr, "/v1/matches", &[]).await;
    assert!(
        r.status >= 500 && r.header("x-pod").is_none(),
        "{} {}",
        r.status,
        r.text()
    );
    // Expecting another workload: the pod's certificate does not prove it.
    let wrong = Gateway::start(&cluster(&format!(
        "ca_file: {p}/ca.pem, cert_file: {p}/gateway.pem, key_file: {p}/gateway-key.pem, spiffe_id: \"spiffe://arena/ns/demo/sa/billing\""
    )));
    let r = http_get(&c, wrong.addr, "/v1/matches", &[]).await;
    assert!(
        r.status >= 500 && r.header("x-pod").is_none(),
        "{} {}",
        r.status,
        r.text()
    );
    assert!(
        !r.text().contains(&sc.addr.to_string()),
        "no pod address in errors: {}",
        r.text()
    );
}
