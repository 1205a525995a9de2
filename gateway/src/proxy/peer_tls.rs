//! TLS to a cluster's pods (the try stage's connection): the CA their certificates must chain
//! to, the client certificate the gateway presents (mTLS to `arena-sidecar` pod ports), and the
//! name checked — a DNS SAN, or a SPIFFE ID through its DNS form, since pingora's rustls client
//! verifies DNS names only. Read from files when the configuration loads (and again when the
//! files change: see [`PeerTls::changed`]), checked so pingora's connector, which panics on a
//! certificate or key it cannot parse, is only ever handed ones that parse.

use std::path::Path;
use std::sync::Arc;

use arena_core::config::ClusterTlsSpec;
use pingora::utils::tls::{CertKey, WrappedX509};
use rustls::pki_types::PrivateKeyDer;

/// A cluster's loaded TLS material.
pub struct PeerTls {
    pub server_name: String,
    ca: Arc<[WrappedX509]>,
    client: Option<Arc<CertKey>>,
    /// Hash of the files' bytes: a change means rotation.
    files_hash: u64,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The certificates of a PEM file, each checked to parse as X.509.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in rustls_pemfile::certs(&mut &pem[..]) {
        let der = item.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("{}: a certificate does not parse: {e}", path.display()))?;
        out.push(der.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(out)
}

fn files_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// The bytes of every file of `spec`, in a fixed order.
fn contents(spec: &ClusterTlsSpec) -> Result<Vec<Vec<u8>>, String> {
    let mut out = vec![read(&spec.ca_file)?];
    if let Some((cert, key)) = &spec.client {
        out.push(read(cert)?);
        out.push(read(key)?);
    }
    Ok(out)
}

impl PeerTls {
    /// Reads and checks the files of `spec`.
    pub fn load(spec: &ClusterTlsSpec) -> Result<PeerTls, String> {
        let files = contents(spec)?;
        let ca = certificates(&spec.ca_file, &files[0])?;
        let ca: Arc<[WrappedX509]> = ca
            .into_iter()
            .map(|der| WrappedX509::new(der, pingora::utils::tls::parse_x509))
            .collect::<Vec<_>>()
            .into();
        let client = match (&spec.client, files.get(1), files.get(2)) {
            (Some((cert_path, key_path)), Some(cert_pem), Some(key_pem)) => {
                let chain = certificates(cert_path, cert_pem)?;
                let key = rustls_pemfile::private_key(&mut &key_pem[..])
                    .map_err(|e| format!("{}: bad PEM: {e}", key_path.display()))?
                    .ok_or_else(|| format!("{}: no PEM private key found", key_path.display()))?;
                let der = key.secret_der().to_vec();
                // pingora converts the key back from these bytes when it connects.
                PrivateKeyDer::try_from(der.clone())
                    .map_err(|e| format!("{}: unusable private key: {e}", key_path.display()))?;
                let provider = rustls::crypto::ring::default_provider();
                let signing = provider
                    .key_provider
                    .load_private_key(key)
                    .map_err(|e| format!("{}: unusable private key: {e}", key_path.display()))?;
                let leaf = rustls::pki_types::CertificateDer::from(chain[0].clone());
                let certified = rustls::sign::CertifiedKey::new(vec![leaf], signing);
                certified.keys_match().map_err(|e| {
                    format!(
                        "the key in {} does not match the certificate in {}: {e}",
                        key_path.display(),
                        cert_path.display()
                    )
                })?;
                Some(Arc::new(CertKey::new(chain, der)))
            }
            _ => None,
        };
        let parts: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        Ok(PeerTls {
            server_name: spec.server_name.clone(),
            ca,
            client,
            files_hash: files_hash(&parts),
        })
    }

    /// Whether the files of `spec` now hold something else than what was loaded (a rotated
    /// certificate); unreadable files count as unchanged (the loaded ones stay in use).
    pub fn changed(&self, spec: &ClusterTlsSpec) -> bool {
        contents(spec).is_ok_and(|files| {
            let parts: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            files_hash(&parts) != self.files_hash
        })
    }

    /// Makes `peer` a TLS peer of this cluster.
    pub fn apply(&self, peer: &mut pingora::upstreams::peer::HttpPeer) {
        peer.options.ca = Some(Arc::clone(&self.ca));
        peer.client_cert_key = self.client.clone();
    }
}
