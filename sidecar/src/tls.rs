//! Inbound mTLS for the sidecar: a rustls server config whose certificate and client CA can be
//! rotated without a restart, and whose client check also requires an allowed SPIFFE identity.
//!
//! [`InboundTls`] holds the current server key and client verifier in one [`ArcSwap`], so a
//! handshake sees either the old pair or the new one, never a mix. [`InboundTls::reload`]
//! re-reads the files and swaps only when the new set is complete and consistent (key matches
//! cert, cert chains to the CA); otherwise the old set keeps serving. Configs built by
//! [`InboundTls::server_config`] read the current state at each handshake, so they never need
//! rebuilding.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ConfigBuilder, DigitallySignedStruct, DistinguishedName, Error, InconsistentKeys, RootCertStore,
    ServerConfig, SignatureScheme, WantsVerifier,
};
use x509_parser::extensions::GeneralName;

use crate::identity::{self, Allow, SpiffeId};

/// The files and allow list of the inbound listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// CA bundle (PEM) that client certificates must chain to; the server cert must too.
    pub ca_file: PathBuf,
    /// Server certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Client SPIFFE IDs admitted; empty admits any identity the CA vouches for.
    pub allow: Vec<Allow>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: bad PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no PEM certificate found", path.display())]
    NoCert { path: PathBuf },
    #[error("{}: no PEM private key found", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{}: CA unparsable or unusable: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("{}: unusable certificate: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("the certificate in {} is not valid under the CA in {}: {reason}", cert.display(), ca.display())]
    Chain { cert: PathBuf, ca: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The file contents a state was built from, to tell a real change from a poll.
#[derive(PartialEq, Eq)]
struct FileBytes {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// One consistent generation of the TLS material.
struct State {
    key: Arc<CertifiedKey>,
    verifier: Arc<dyn ClientCertVerifier>,
    bytes: FileBytes,
    serial_hex: String,
    not_after: Option<i64>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    unknown_ca: AtomicU64,
    expired: AtomicU64,
    identity_refused: AtomicU64,
    other: AtomicU64,
}

/// The inbound listener's TLS material, reloadable in place.
pub struct InboundTls {
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    allow: ArcSwap<Vec<Allow>>,
    state: ArcSwap<State>,
    provider: Arc<CryptoProvider>,
    /// Versions already checked against the provider at load, so `server_config` cannot fail.
    builder: ConfigBuilder<ServerConfig, WantsVerifier>,
    counters: Counters,
    /// Serialises reloads (watcher and poll may race); handshakes never take it.
    reload_lock: Mutex<()>,
}

impl fmt::Debug for InboundTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load();
        f.debug_struct("InboundTls")
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("serial", &state.serial_hex)
            .field("not_after", &state.not_after)
            .finish_non_exhaustive()
    }
}

impl InboundTls {
    /// Reads and checks the three files; the error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<InboundTls>, TlsError> {
        // The ring provider explicitly: no dependence on (or race with) a process default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let bytes = read_files(&files.ca_file, &files.cert_file, &files.key_file)?;
        let state = build_state(&files.ca_file, &files.cert_file, &files.key_file, bytes, &provider)?;
        Ok(Arc::new(InboundTls {
            ca_file: files.ca_file,
            cert_file: files.cert_file,
            key_file: files.key_file,
            allow: ArcSwap::from_pointee(files.allow),
            state: ArcSwap::from_pointee(state),
            provider,
            builder,
            counters: Counters::default(),
            reload_lock: Mutex::new(()),
        }))
    }

    /// A server config on this material: TLS 1.3 and 1.2, client certificate required and
    /// checked by [`IdentityVerifier`], server certificate from [`ReloadingResolver`], ALPN
    /// `http/1.1` only.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = self
            .builder
            .clone()
            .with_client_cert_verifier(self.client_verifier())
            .with_cert_resolver(self.cert_resolver());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// The client verifier alone, for a config built elsewhere (pingora's `TlsSettings`).
    pub fn client_verifier(self: &Arc<Self>) -> Arc<IdentityVerifier> {
        Arc::new(IdentityVerifier { tls: Arc::clone(self) })
    }

    /// The certificate resolver alone, for a config built elsewhere.
    pub fn cert_resolver(self: &Arc<Self>) -> Arc<ReloadingResolver> {
        Arc::new(ReloadingResolver { tls: Arc::clone(self) })
    }

    /// Re-reads the files. `Ok(false)`: unchanged. `Ok(true)`: the new set is in use for new
    /// handshakes. `Err`: the new set is unreadable or inconsistent, and the old one stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let _guard = self.reload_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = read_files(&self.ca_file, &self.cert_file, &self.key_file)?;
        if bytes == self.state.load().bytes {
            return Ok(false);
        }
        let state = build_state(&self.ca_file, &self.cert_file, &self.key_file, bytes, &self.provider)?;
        tracing::info!(
            serial = %state.serial_hex,
            not_after = ?state.not_after,
            "inbound TLS material reloaded"
        );
        self.state.store(Arc::new(state));
        Ok(true)
    }

    /// Replaces the allow list (for a config reload); applies to new handshakes.
    pub fn set_allow(&self, allow: Vec<Allow>) {
        self.allow.store(Arc::new(allow));
    }

    /// The current server certificate's serial (lowercase hex) and `notAfter` (unix seconds).
    pub fn serials(&self) -> (String, Option<i64>) {
        let state = self.state.load();
        (state.serial_hex.clone(), state.not_after)
    }

    /// Client certificates refused, by reason: `unknown_ca`, `expired`, `identity_refused`,
    /// `other`. (A client that sends no certificate is refused by rustls before any verifier
    /// call, so it is not counted here.)
    pub fn refusals(&self) -> [(&'static str, u64); 4] {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("unknown_ca", get(&c.unknown_ca)),
            ("expired", get(&c.expired)),
            ("identity_refused", get(&c.identity_refused)),
            ("other", get(&c.other)),
        ]
    }

    /// Client certificates accepted (chain and identity).
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    fn count_webpki_refusal(&self, e: &Error) {
        let c = &self.counters;
        let counter = match e {
            // BadSignature from chain verification (the handshake signature is checked
            // elsewhere) means a CA with a trusted CA's name but another key signed it: every
            // dev CA is `CN=Arena dev CA, O=<td>`, so a foreign one lands here, not UnknownIssuer.
            Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
                &c.unknown_ca
            }
            Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                &c.expired
            }
            _ => &c.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The client's SPIFFE ID from its leaf certificate (DER), for logging after the handshake;
/// `None` unless it has exactly one valid `spiffe://` URI SAN.
pub fn peer_spiffe_id(leaf_der: &[u8]) -> Option<SpiffeId> {
    cert_identity(leaf_der).ok()
}

/// The SPIFFE ID of a leaf, or why it has none usable. Exactly one `spiffe:` URI SAN (scheme
/// matched case-insensitively so a mis-cased one counts, and then fails to parse) — two would
/// make the identity ambiguous. Other URI SANs are ignored.
fn cert_identity(leaf_der: &[u8]) -> Result<SpiffeId, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf_der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?
        .ok_or_else(|| "no subjectAltName".to_string())?;
    let mut uris = san.value.general_names.iter().filter_map(|g| match g {
        GeneralName::URI(u) if u.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("spiffe:")) => Some(*u),
        _ => None,
    });
    match (uris.next(), uris.next()) {
        (Some(uri), None) => SpiffeId::parse(uri),
        (None, _) => Err("no spiffe:// URI SAN".to_string()),
        (Some(_), Some(_)) => Err("more than one spiffe:// URI SAN".to_string()),
    }
}

/// Client certificate verification: the current CA's WebPKI checks (chain, validity, EKU
/// clientAuth, signatures), then an allowed SPIFFE identity.
pub struct IdentityVerifier {
    tls: Arc<InboundTls>,
}

impl fmt::Debug for IdentityVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityVerifier").finish_non_exhaustive()
    }
}

impl IdentityVerifier {
    pub fn refusals(&self) -> [(&'static str, u64); 4] {
        self.tls.refusals()
    }
}

impl ClientCertVerifier for IdentityVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No CA hints: clients have one workload cert and send it anyway; hints would have to
        // follow CA rotation through a borrowed slice.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Loaded per call, so a rotated CA applies to the next handshake.
        let state = self.tls.state.load();
        if let Err(e) = state.verifier.verify_client_cert(end_entity, intermediates, now) {
            self.tls.count_webpki_refusal(&e);
            tracing::debug!(error = %e, "client certificate refused");
            return Err(e);
        }
        let refused = |why: String| {
            self.tls.counters.identity_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason = %why, "client identity refused");
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        };
        match cert_identity(end_entity) {
            Ok(id) if identity::allowed(&self.tls.allow.load(), &id) => {
                self.tls.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(ClientCertVerified::assertion())
            }
            Ok(id) => refused(format!("{id} is not in the allow list")),
            Err(why) => refused(why),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls
            .state
            .load()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls
            .state
            .load()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.tls.state.load().verifier.supported_verify_schemes()
    }
}

/// Serves the current server certificate (no SNI selection: one workload, one cert).
pub struct ReloadingResolver {
    tls: Arc<InboundTls>,
}

impl fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.tls.state.load().key))
    }
}

fn read_files(ca: &Path, cert: &Path, key: &Path) -> Result<FileBytes, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(FileBytes {
        ca: read(ca)?,
        cert: read(cert)?,
        key: read(key)?,
    })
}

fn pem_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &bytes[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Parses and cross-checks one generation of files; nothing is swapped in unless all is well.
fn build_state(
    ca_path: &Path,
    cert_path: &Path,
    key_path: &Path,
    bytes: FileBytes,
    provider: &Arc<CryptoProvider>,
) -> Result<State, TlsError> {
    let ca_err = |reason: String| TlsError::Ca {
        path: ca_path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for ca in pem_certs(ca_path, &bytes.ca)? {
        roots.add(ca).map_err(|e| ca_err(e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider))
        .build()
        .map_err(|e| ca_err(e.to_string()))?;

    let chain = pem_certs(cert_path, &bytes.cert)?;
    let key_der = rustls_pemfile::private_key(&mut &bytes.key[..])
        .map_err(|e| TlsError::Pem {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: key_path.to_path_buf(),
        })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Key {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        // Unknown: the key type cannot report its public key; the chain check below still runs.
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(TlsError::Cert {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    }

    // The server cert must be one our own peers accept: chained to the CA, in its validity
    // period, EKU serverAuth. Catches a half-finished rotation (new CA, old leaf or vice versa).
    let leaf = &key.cert[0];
    let cert_err = |reason: String| TlsError::Cert {
        path: cert_path.to_path_buf(),
        reason,
    };
    let parsed = ParsedCertificate::try_from(leaf).map_err(|e| cert_err(e.to_string()))?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &key.cert[1..],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| TlsError::Chain {
        cert: cert_path.to_path_buf(),
        ca: ca_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf).map_err(|e| cert_err(e.to_string()))?;
    let serial_hex = serial_hex(x509.raw_serial());
    let not_after = Some(x509.validity().not_after.timestamp());

    Ok(State {
        key: Arc::new(key),
        verifier,
        bytes,
        serial_hex,
        not_after,
    })
}

/// Lowercase hex of a DER serial without the sign-padding zero byte.
pub fn serial_hex(raw: &[u8]) -> String {
    let raw = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::certs::{self, Pems};
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::ServerName;
    use rustls::version::{TLS12, TLS13};
    use rustls::{ClientConfig, SupportedProtocolVersion};
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    const SERVER_ID: &str = "spiffe://arena/ns/default/sa/inbound";
    const SERVER_DNS: &str = "inbound.arena.test";
    const TIMEOUT: Duration = Duration::from_secs(10);

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            certs::init(dir.path(), "arena", 30).unwrap();
            let pki = Pki { dir };
            pki.issue_server();
            pki
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn issue_server(&self) -> certs::IssuedCert {
            certs::issue(self.dir.path(), "server", SERVER_ID, &[SERVER_DNS.to_string()], 30).unwrap()
        }

        fn files(&self, allow: &[&str]) -> TlsFiles {
            TlsFiles {
                ca_file: self.path("ca.pem"),
                cert_file: self.path("server.pem"),
                key_file: self.path("server-key.pem"),
                allow: allow.iter().map(|a| Allow::parse(a).unwrap()).collect(),
            }
        }

        fn ca_pem(&self) -> String {
            fs::read_to_string(self.path("ca.pem")).unwrap()
        }

        fn ca_key_pem(&self) -> String {
            fs::read_to_string(self.path("ca-key.pem")).unwrap()
        }

        fn client(&self, id: &str) -> Pems {
            certs::issue_with_ca(&self.ca_pem(), &self.ca_key_pem(), id, &[], 1).unwrap()
        }
    }

    /// Accepts TLS connections forever; for each handshake that completes, answers "ping" with
    /// "pong" and reports the client's SPIFFE ID.
    async fn serve(config: Arc<ServerConfig>) -> (SocketAddr, mpsc::UnboundedReceiver<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let id = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| peer_spiffe_id(c))
                        .map(|id| id.to_string());
                    let mut buf = [0u8; 4];
                    if tls.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                        let _ = tx.send(id);
                        let _ = tls.write_all(b"pong").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        (addr, rx)
    }

    fn client_config(
        ca_pem: &str,
        client: Option<&Pems>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in pem_certs(Path::new("ca"), ca_pem.as_bytes()).unwrap() {
            roots.add(c).unwrap();
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .unwrap();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_webpki_verifier(verifier);
        let mut config = match client {
            Some(p) => {
                let chain = pem_certs(Path::new("client"), p.cert_pem.as_bytes()).unwrap();
                let key = rustls_pemfile::private_key(&mut p.key_pem.as_bytes()).unwrap().unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Handshakes (a fresh client config each time, so no resumption), sends "ping", expects
    /// "pong"; returns the serial of the server certificate seen.
    async fn exchange(addr: SocketAddr, config: Arc<ClientConfig>, server_name: &str) -> Result<String, String> {
        let run = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
            // With TLS 1.3 the server judges the client's certificate after the client has
            // finished its side, so a refusal shows up here, as an alert.
            tls.write_all(b"ping").await.map_err(|e| format!("write: {e}"))?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if &buf != b"pong" {
                return Err(format!("unexpected reply {buf:?}"));
            }
            let leaf = leaf.ok_or("no server certificate")?;
            let (_, cert) = x509_parser::parse_x509_certificate(&leaf).map_err(|e| e.to_string())?;
            Ok(serial_hex(cert.raw_serial()))
        };
        tokio::time::timeout(TIMEOUT, run)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    fn refusal(tls: &InboundTls, name: &str) -> u64 {
        tls.refusals().iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn total_refusals(tls: &InboundTls) -> u64 {
        tls.refusals().iter().map(|(_, n)| n).sum()
    }

    #[tokio::test]
    async fn allowed_client_is_accepted_on_tls13_and_tls12() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&["spiffe://arena/gateway"])).unwrap();
        let (addr, mut ids) = serve(tls.server_config()).await;
        let client = pki.client("spiffe://arena/gateway");
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let serial = exchange(addr, client_config(&pki.ca_pem(), Some(&client), versions), SERVER_DNS)
                .await
                .unwrap();
            assert_eq!(serial, tls.serials().0);
            assert_eq!(ids.recv().await.unwrap().as_deref(), Some("spiffe://arena/gateway"));
        }
        assert_eq!(tls.accepted(), 2);
        assert_eq!(total_refusals(&tls), 0);

        // The server's DNS-form identity is a usable server name too.
        let dns_form = "inbound.default.sa.identity.arena";
        exchange(addr, client_config(&pki.ca_pem(), Some(&client), &[&TLS13]), dns_form)
            .await
            .unwrap();
        let (serial, not_after) = tls.serials();
        assert_eq!(serial.len(), 32);
        assert!(not_after.unwrap() > UnixTime::now().as_secs() as i64);
    }

    #[tokio::test]
    async fn client_without_certificate_is_refused() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&[])).unwrap();
        let (addr, _ids) = serve(tls.server_config()).await;
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let err = exchange(addr, client_config(&pki.ca_pem(), None, versions), SERVER_DNS)
                .await
                .unwrap_err();
            assert!(
                err.contains("CertificateRequired") || err.contains("HandshakeFailure"),
                "{err}"
            );
        }
        assert_eq!(tls.accepted(), 0);
    }

    #[tokio::test]
    async fn client_from_another_ca_is_refused_as_unknown_ca() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&[])).unwrap();
        let (addr, _ids) = serve(tls.server_config()).await;
        // A CA of another name (UnknownIssuer), and one with the same name as ours but another
        // key (BadSignature): both are an unknown CA.
        for (td, alert) in [("elsewhere", "UnknownCA"), ("arena", "DecryptError")] {
            let other = certs::generate_ca(td, 1).unwrap();
            let id = format!("spiffe://{td}/gateway");
            let client = certs::issue_with_ca(&other.cert_pem, &other.key_pem, &id, &[], 1).unwrap();
            for versions in [&[&TLS13][..], &[&TLS12][..]] {
                let err = exchange(addr, client_config(&pki.ca_pem(), Some(&client), versions), SERVER_DNS)
                    .await
                    .unwrap_err();
                assert!(err.contains(alert), "{td}: {err}");
            }
        }
        assert_eq!(refusal(&tls, "unknown_ca"), 4);
        assert_eq!(total_refusals(&tls), 4);
        assert_eq!(tls.accepted(), 0);
    }

    #[tokio::test]
    async fn expired_client_is_refused_as_expired() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&[])).unwrap();
        let (addr, _ids) = serve(tls.server_config()).await;
        let now = time::OffsetDateTime::now_utc();
        let client = certs::issue_with_validity(
            &pki.ca_pem(),
            &pki.ca_key_pem(),
            "spiffe://arena/gateway",
            &[],
            now - time::Duration::days(2),
            now - time::Duration::days(1),
        )
        .unwrap();
        let err = exchange(addr, client_config(&pki.ca_pem(), Some(&client), &[&TLS13]), SERVER_DNS)
            .await
            .unwrap_err();
        assert!(err.contains("CertificateExpired"), "{err}");
        assert_eq!(refusal(&tls, "expired"), 1);
        assert_eq!(total_refusals(&tls), 1);
    }

    #[tokio::test]
    async fn identity_outside_the_allow_list_is_refused() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&["spiffe://arena/gateway"])).unwrap();
        let (addr, mut ids) = serve(tls.server_config()).await;
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let client = pki.client("spiffe://arena/other");
            let err = exchange(addr, client_config(&pki.ca_pem(), Some(&client), versions), SERVER_DNS)
                .await
                .unwrap_err();
            assert!(err.contains("AccessDenied"), "{err}");
        }
        assert_eq!(refusal(&tls, "identity_refused"), 2);
        assert_eq!(total_refusals(&tls), 2);

        // A new allow list applies to the next handshake.
        tls.set_allow(vec![Allow::parse("spiffe://arena/*").unwrap()]);
        let client = pki.client("spiffe://arena/other");
        exchange(addr, client_config(&pki.ca_pem(), Some(&client), &[&TLS13]), SERVER_DNS)
            .await
            .unwrap();
        assert_eq!(ids.recv().await.unwrap().as_deref(), Some("spiffe://arena/other"));
    }

    #[tokio::test]
    async fn rotation_serves_the_new_cert_and_keeps_the_old_on_bad_files() {
        let pki = Pki::new();
        let tls = InboundTls::load(pki.files(&[])).unwrap();
        let (addr, _ids) = serve(tls.server_config()).await;
        let client = pki.client("spiffe://arena/gateway");
        let connect = |client: Pems, ca: String| async move {
            exchange(addr, client_config(&ca, Some(&client), &[&TLS13]), SERVER_DNS).await
        };

        let first = connect(client.clone(), pki.ca_pem()).await.unwrap();
        assert_eq!(first, tls.serials().0);
        assert!(!tls.reload().unwrap(), "unchanged files");

        let issued = pki.issue_server();
        assert!(tls.reload().unwrap());
        assert!(!tls.reload().unwrap());
        assert_eq!(tls.serials().0, issued.serial_hex);
        assert_eq!(tls.serials().1, Some(issued.not_after));
        let second = connect(client.clone(), pki.ca_pem()).await.unwrap();
        assert_eq!(second, issued.serial_hex);
        assert_ne!(second, first);

        // Broken key file: refused, and the current cert keeps serving.
        let key_path = pki.path("server-key.pem");
        let good_key = fs::read(&key_path).unwrap();
        fs::write(&key_path, b"not a key").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        assert_eq!(connect(client.clone(), pki.ca_pem()).await.unwrap(), second);

        // Another cert's key: mismatch.
        let stray = pki.client("spiffe://arena/stray");
        fs::write(&key_path, stray.key_pem.as_bytes()).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("server-key.pem"), "{err}");
        assert_eq!(connect(client.clone(), pki.ca_pem()).await.unwrap(), second);

        // A missing file.
        fs::remove_file(&key_path).unwrap();
        assert!(matches!(tls.reload().unwrap_err(), TlsError::Read { .. }));
        fs::write(&key_path, &good_key).unwrap();
        assert!(!tls.reload().unwrap(), "back to the files in use");

        // New CA written before the server cert is reissued: the old leaf does not chain to it.
        let old_ca = pki.ca_pem();
        fs::remove_file(pki.path("ca-key.pem")).unwrap();
        certs::init(pki.dir.path(), "arena", 30).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Chain { .. }), "{err}");
        assert_eq!(connect(client.clone(), old_ca.clone()).await.unwrap(), second);

        // Server cert reissued under the new CA: the new CA now judges clients too.
        let third = pki.issue_server();
        assert!(tls.reload().unwrap());
        let err = connect(client.clone(), pki.ca_pem()).await.unwrap_err();
        assert!(
            err.contains("DecryptError"),
            "old-CA client (same CA name, other key): {err}"
        );
        assert_eq!(refusal(&tls, "unknown_ca"), 1);
        let new_client = pki.client("spiffe://arena/gateway");
        assert_eq!(connect(new_client, pki.ca_pem()).await.unwrap(), third.serial_hex);
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let pki = Pki::new();
        let check = |files: TlsFiles, want_path: &str, want: &str| {
            let err = InboundTls::load(files).unwrap_err().to_string();
            assert!(
                err.contains(want_path) && err.contains(want),
                "{err:?} should name {want_path} and {want:?}"
            );
        };

        let mut files = pki.files(&[]);
        files.ca_file = pki.path("missing.pem");
        check(files, "missing.pem", "cannot read");

        fs::write(pki.path("empty.pem"), "").unwrap();
        let mut files = pki.files(&[]);
        files.cert_file = pki.path("empty.pem");
        check(files, "empty.pem", "no PEM certificate");

        let mut files = pki.files(&[]);
        files.key_file = pki.path("server.pem");
        check(files, "server.pem", "no PEM private key");

        let stray = pki.client("spiffe://arena/stray");
        fs::write(pki.path("stray-key.pem"), stray.key_pem).unwrap();
        let mut files = pki.files(&[]);
        files.key_file = pki.path("stray-key.pem");
        check(files, "stray-key.pem", "does not match");

        let body = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        fs::write(pki.path("junk-ca.pem"), body).unwrap();
        let mut files = pki.files(&[]);
        files.ca_file = pki.path("junk-ca.pem");
        check(files, "junk-ca.pem", "CA unparsable");

        let other = certs::generate_ca("arena", 1).unwrap();
        fs::write(pki.path("other-ca.pem"), other.cert_pem).unwrap();
        let mut files = pki.files(&[]);
        files.ca_file = pki.path("other-ca.pem");
        check(files, "other-ca.pem", "not valid under the CA");

        let tls = InboundTls::load(pki.files(&[])).unwrap();
        assert!(format!("{tls:?}").contains("server.pem"));
    }

    #[test]
    fn identity_needs_exactly_one_spiffe_uri() {
        let cert = |sans: Vec<rcgen::SanType>| {
            let mut params = rcgen::CertificateParams::default();
            params.subject_alt_names = sans;
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let uri = |s: &str| rcgen::SanType::URI(s.to_string().try_into().unwrap());
        let dns = |s: &str| rcgen::SanType::DnsName(s.to_string().try_into().unwrap());

        let one = cert(vec![dns("a.test"), uri("https://x.test/"), uri("spiffe://arena/a")]);
        assert_eq!(cert_identity(&one).unwrap().to_string(), "spiffe://arena/a");
        assert!(cert_identity(&cert(vec![dns("a.test")]))
            .unwrap_err()
            .contains("no spiffe"));
        assert!(cert_identity(&cert(vec![])).unwrap_err().contains("no subjectAltName"));
        let two = cert(vec![uri("spiffe://arena/a"), uri("spiffe://arena/b")]);
        assert!(cert_identity(&two).unwrap_err().contains("more than one"));
        let upper = cert(vec![uri("SPIFFE://arena/a")]);
        assert!(cert_identity(&upper).is_err());
        assert!(cert_identity(&cert(vec![uri("spiffe://arena/a/")])).is_err());
        assert!(cert_identity(b"junk").unwrap_err().contains("does not parse"));
        assert_eq!(peer_spiffe_id(&one).unwrap().to_string(), "spiffe://arena/a");
    }

    #[test]
    fn serial_hex_strips_sign_padding_only() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x7f, 0x00]), "7f00");
    }
}
