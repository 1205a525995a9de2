//! TLS termination with rustls: HTTPS and HTTP/2 via ALPN on a listener, and a clean start-up
//! error (not a panic) for an unusable certificate. Uses the `openssl` and `curl` programs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use arena_testkit::free_addr;
use support::gateway::Pod;
use support::procs::{bin, wait_listening, Proc, TempDir};

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
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
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    (cert, key)
}

fn config(
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
    pod: &Pod,
) -> String {
    format!(
        "listeners:\n  - name: tls\n    address: {addr}\n    tls: {{ cert_file: \"{}\", key_file: \"{}\" }}\nadmin: {{ address: {admin} }}\ndebug_headers: true\nclusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: all, match: {{}}, cluster: c }}\n",
        cert.display(),
        key.display(),
        pod.addr
    )
}

#[test]
fn https_and_http2_are_terminated() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed(&dir.0);
    let pod = Pod::start("127.0.0.58", &["--name", "tls-pod"]);
    let (addr, admin) = (free_addr("127.0.0.1").unwrap(), free_addr("127.0.0.1").unwrap());
    let file = dir.0.join("gw.yaml");
    std::fs::write(&file, config(addr, admin, &cert, &key, &pod)).unwrap();
    let mut cmd = Command::new(bin("arena-gateway"));
    cmd.args(["run", "-c"]).arg(&file).env("RUST_LOG", "warn");
    let _gw = Proc::spawn("arena-gateway", cmd);
    wait_listening(addr, Duration::from_secs(15));
    for version in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&cert)
            .args([
                version,
                "-D",
                "-",
                "--resolve",
                &format!("api.arena.test:{}:127.0.0.1", addr.port()),
            ])
            .arg(format!("https://api.arena.test:{}/v1/matches", addr.port()))
            .output()
            .expect("curl (deploy/local/prereqs.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let expect = if version == "--http2" {
            "http/2 200"
        } else {
            "http/1.1 200"
        };
        assert!(
            text.starts_with(expect),
            "{version}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("x-pod: tls-pod"), "{text}");
    }
}

#[test]
fn unusable_certificate_is_a_clean_start_error() {
    let dir = TempDir::new("tls-bad");
    let (cert, _key) = self_signed(&dir.0);
    let bogus = dir.0.join("bogus.pem");
    std::fs::write(
        &bogus,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let pod = Pod::start("127.0.0.59", &[]);
    let file = dir.0.join("gw.yaml");
    std::fs::write(
        &file,
        config(
            free_addr("127.0.0.1").unwrap(),
            free_addr("127.0.0.1").unwrap(),
            &cert,
            &bogus,
            &pod,
        ),
    )
    .unwrap();
    let out = Command::new(bin("arena-gateway"))
        .args(["run", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start") && err.contains("listener `tls`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_client_that_never_handshakes_is_closed_at_tls_handshake_timeout() {
    use std::io::Read;
    let dir = TempDir::new("tls-slow");
    let (cert, key) = self_signed(&dir.0);
    let pod = Pod::start("127.0.0.59", &[]);
    let (addr, admin) = (free_addr("127.0.0.1").unwrap(), free_addr("127.0.0.1").unwrap());
    let file = dir.0.join("gw.yaml");
    let text = config(addr, admin, &cert, &key, &pod)
        + "server:\n  client: { tls_handshake_timeout: 1s, header_timeout: 60s }\n";
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(bin("arena-gateway"));
    cmd.args(["run", "-c"]).arg(&file).env("RUST_LOG", "warn");
    let _gw = Proc::spawn("arena-gateway", cmd);
    wait_listening(addr, Duration::from_secs(15));
    // Connects and says nothing: no ClientHello ever comes.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf);
    assert!(
        matches!(n, Ok(0))
            || n.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed by the gateway, not by the read timeout: {n:?}"
    );
    // Counted (the readiness probe's connection is the one `tls_error`).
    let mut metrics = String::new();
    let counted = arena_testkit::wait::until("the timeout counted", Duration::from_secs(5), || {
        metrics = arena_testkit::http::call(admin, "GET", "/metrics", &[], b"")
            .map(|r| r.text())
            .unwrap_or_default();
        metrics.contains("arena_client_connections_refused_total{reason=\"tls_handshake_timeout\"} 1")
    });
    assert!(counted.is_ok(), "{metrics}");
}
