//! A development CA and workload certificates for `arena-sidecar certs init|issue`.
//!
//! `init` makes a self-signed CA (`ca.pem`, `ca-key.pem`) in a directory; `issue` signs a
//! workload leaf with it (`<name>.pem` = leaf then CA, `<name>-key.pem`). A leaf carries its
//! SPIFFE ID as its one URI SAN, the DNS names asked for, and the ID's DNS form when it has one,
//! so both an identity-checking peer and a DNS-only verifier (pingora's upstream) accept it.
//! Keys are ECDSA P-256 and are written mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;

use crate::identity::{self, SpiffeId};

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CA_COMMON_NAME: &str = "Arena dev CA";

/// Backdating of `notBefore`, so a peer whose clock is a little behind accepts a fresh cert.
const BACKDATE: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} already exists; refusing to overwrite the CA key (remove it to start a new CA)", .0.display())]
    CaKeyExists(PathBuf),
    #[error("invalid trust domain {0:?}: {1}")]
    TrustDomain(String, String),
    #[error("invalid certificate name {0:?}: only letters, digits, '.', '_' and '-' are allowed")]
    Name(String),
    #[error("invalid SPIFFE ID: {0}")]
    SpiffeId(String),
    #[error("invalid DNS name {0:?}")]
    DnsName(String),
    #[error("days must be at least 1")]
    Days,
    #[error("SPIFFE ID {id} is not in the CA's trust domain {ca_trust_domain:?}")]
    TrustDomainMismatch { id: String, ca_trust_domain: String },
    #[error("CA certificate: {0}")]
    CaCert(String),
    #[error("CA key: {0}")]
    CaKey(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A CA or leaf in PEM, as written to (or read from) its files.
#[derive(Debug, Clone)]
pub struct Pems {
    /// For a leaf: the leaf, then the CA.
    pub cert_pem: String,
    pub key_pem: String,
    /// Lowercase hex of the serial number, no separators.
    pub serial_hex: String,
    /// `notAfter`, unix seconds.
    pub not_after: i64,
}

/// What `issue` wrote.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub serial_hex: String,
    pub not_after: i64,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Every SAN in the leaf, URI first (for the CLI to print).
    pub sans: Vec<String>,
}

/// Writes a new CA into `dir` (created if missing); never replaces an existing `ca-key.pem`.
pub fn init(dir: &Path, trust_domain: &str, days: u32) -> Result<(), CertError> {
    let ca = generate_ca(trust_domain, days)?;
    fs::create_dir_all(dir).map_err(|source| io_err(dir, source))?;
    let key_path = dir.join(CA_KEY_FILE);
    // create_new makes the refusal race-free: two concurrent inits cannot both write a key.
    let mut f = open_private(&key_path, true).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CertError::CaKeyExists(key_path.clone()),
        _ => io_err(&key_path, source),
    })?;
    f.write_all(ca.key_pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| io_err(&key_path, source))?;
    write_atomic(&dir.join(CA_CERT_FILE), ca.cert_pem.as_bytes(), false)
}

/// Generates a CA: `CN=Arena dev CA, O=<trust_domain>`, unconstrained, keyCertSign + cRLSign.
pub fn generate_ca(trust_domain: &str, days: u32) -> Result<Pems, CertError> {
    let td_id = SpiffeId::parse(&format!("spiffe://{trust_domain}"))
        .map_err(|e| CertError::TrustDomain(trust_domain.to_string(), e))?;
    if !td_id.path().is_empty() {
        return Err(CertError::TrustDomain(
            trust_domain.to_string(),
            "a trust domain has no path".to_string(),
        ));
    }
    let (not_before, not_after) = validity(days)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, trust_domain);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Pems {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial_hex: hex(&serial),
        not_after: not_after.unix_timestamp(),
    })
}

/// Issues `<name>.pem` / `<name>-key.pem` in `dir`, signed by the CA there. Existing files of
/// that name are replaced (each atomically), which is how a workload cert is rotated.
pub fn issue(dir: &Path, name: &str, spiffe_id: &str, dns: &[String], days: u32) -> Result<IssuedCert, CertError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(CertError::Name(name.to_string()));
    }
    // "." and ".." pass the character check but are not file names we want to write to; "ca"
    // and "ca-key" would write over the CA's own files.
    if name.bytes().all(|b| b == b'.') || name == "ca" || name == "ca-key" {
        return Err(CertError::Name(name.to_string()));
    }
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_cert_pem = fs::read_to_string(&ca_cert_path).map_err(|source| io_err(&ca_cert_path, source))?;
    let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(|source| io_err(&ca_key_path, source))?;
    let leaf = issue_with_ca(&ca_cert_pem, &ca_key_pem, spiffe_id, dns, days)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    // Key first: a watcher that sees the new cert with the old key refuses the pair and keeps
    // serving the old one until both are in place.
    write_atomic(&key_path, leaf.key_pem.as_bytes(), true)?;
    write_atomic(&cert_path, leaf.cert_pem.as_bytes(), false)?;
    Ok(IssuedCert {
        serial_hex: leaf.serial_hex,
        not_after: leaf.not_after,
        cert_path,
        key_path,
        sans: sans_of(spiffe_id, dns),
    })
}

/// Issues a leaf signed by the CA given in PEM; `cert_pem` is the chain (leaf, then CA).
pub fn issue_with_ca(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    spiffe_id: &str,
    dns: &[String],
    days: u32,
) -> Result<Pems, CertError> {
    let (not_before, not_after) = validity(days)?;
    issue_with_validity(ca_cert_pem, ca_key_pem, spiffe_id, dns, not_before, not_after)
}

/// `issue_with_ca` with an explicit validity (tests use it for expired certificates).
pub fn issue_with_validity(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    spiffe_id: &str,
    dns: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Pems, CertError> {
    let id = SpiffeId::parse(spiffe_id).map_err(CertError::SpiffeId)?;
    let ca_der = first_pem_cert(ca_cert_pem)?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| CertError::CaCert(format!("not a parsable X.509 certificate: {e}")))?;
    if !ca.is_ca() {
        return Err(CertError::CaCert(
            "not a CA certificate (basicConstraints CA:FALSE)".to_string(),
        ));
    }
    // The CA's O is the trust domain it was made for; a leaf outside it is a mistake.
    if let Some(ca_td) = ca.subject().iter_organization().next().and_then(|a| a.as_str().ok()) {
        if ca_td != id.trust_domain() {
            return Err(CertError::TrustDomainMismatch {
                id: id.to_string(),
                ca_trust_domain: ca_td.to_string(),
            });
        }
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| CertError::CaKey(e.to_string()))?;
    if ca_key.public_key_raw() != ca.public_key().subject_public_key.data.as_ref() {
        return Err(CertError::CaKey("does not match the CA certificate".to_string()));
    }
    let issuer = issuer_from(&ca, ca_key)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, id.to_string());
    params.distinguished_name = dn;
    params.subject_alt_names = san_types(&id, dns)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    // A leaf outliving its CA would only fail later, at the CA's expiry; end it with the CA.
    let ca_not_after = OffsetDateTime::from_unix_timestamp(ca.validity().not_after.timestamp())
        .map_err(|e| CertError::CaCert(format!("notAfter out of range: {e}")))?;
    let not_after = not_after.min(ca_not_after);
    params.not_after = not_after;
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));

    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    // Chain building compares the leaf's issuer with the CA's subject byte for byte; the DN
    // was re-encoded from the parsed CA, so make sure it came out identical.
    let (_, leaf) = x509_parser::parse_x509_certificate(cert.der())
        .map_err(|e| CertError::CaCert(format!("issued certificate does not parse: {e}")))?;
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CertError::CaCert(
            "its subject uses string types this tool cannot reproduce".to_string(),
        ));
    }
    Ok(Pems {
        cert_pem: format!("{}{}", cert.pem(), first_pem_block(ca_cert_pem)?),
        key_pem: key.serialize_pem(),
        serial_hex: hex(&serial),
        not_after: not_after.unix_timestamp(),
    })
}

/// The SANs a leaf for `id` gets: the URI, the DNS names (IP literals become IP SANs), then the
/// ID's DNS form if it has one and it is not already listed.
fn san_types(id: &SpiffeId, dns: &[String]) -> Result<Vec<SanType>, CertError> {
    let ia5 = |s: &str| s.to_string().try_into().map_err(|_| CertError::DnsName(s.to_string()));
    let mut sans = vec![SanType::URI(ia5(&id.to_string())?)];
    let mut names: Vec<String> = Vec::new();
    for d in dns {
        if let Ok(ip) = d.parse::<IpAddr>() {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        let d = d.to_ascii_lowercase();
        if !identity::is_dns_name(&d) {
            return Err(CertError::DnsName(d));
        }
        if !names.contains(&d) {
            names.push(d);
        }
    }
    if let Some(form) = identity::dns_form(id) {
        if !names.contains(&form) {
            names.push(form);
        }
    }
    for n in names {
        sans.push(SanType::DnsName(ia5(&n)?));
    }
    Ok(sans)
}

fn sans_of(spiffe_id: &str, dns: &[String]) -> Vec<String> {
    let mut out = vec![format!("URI:{spiffe_id}")];
    if let Ok(id) = SpiffeId::parse(spiffe_id) {
        if let Ok(sans) = san_types(&id, dns) {
            out = sans
                .iter()
                .map(|s| match s {
                    SanType::URI(u) => format!("URI:{}", u.as_str()),
                    SanType::DnsName(d) => format!("DNS:{}", d.as_str()),
                    SanType::IpAddress(ip) => format!("IP:{ip}"),
                    other => format!("{other:?}"),
                })
                .collect();
        }
    }
    out
}

/// An rcgen issuer for a parsed CA: its subject re-encoded attribute by attribute, and its
/// subject key identifier, so the leaf's AKI matches it even for a CA rcgen did not make.
fn issuer_from(ca: &X509Certificate<'_>, key: KeyPair) -> Result<Issuer<'static, KeyPair>, CertError> {
    let mut dn = DistinguishedName::new();
    for rdn in ca.subject().iter() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .ok_or_else(|| CertError::CaCert("subject attribute OID too large".to_string()))?
                .collect();
            let s = attr
                .as_str()
                .map_err(|e| CertError::CaCert(format!("unsupported subject attribute: {e}")))?
                .to_string();
            let value = match attr.attr_value().tag() {
                Tag::PrintableString => DnValue::PrintableString(
                    s.try_into()
                        .map_err(|e| CertError::CaCert(format!("bad PrintableString in subject: {e}")))?,
                ),
                Tag::Ia5String => DnValue::Ia5String(
                    s.try_into()
                        .map_err(|e| CertError::CaCert(format!("bad IA5String in subject: {e}")))?,
                ),
                Tag::Utf8String => DnValue::Utf8String(s),
                t => return Err(CertError::CaCert(format!("unsupported subject string type {t}"))),
            };
            dn.push(DnType::from_oid(&oid), value);
        }
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(ski) = ca.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    }) {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    }
    Ok(Issuer::new(params, key))
}

fn first_pem_cert(pem: &str) -> Result<Vec<u8>, CertError> {
    let mut reader = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(CertError::CaCert(format!("bad PEM: {e}"))),
        None => Err(CertError::CaCert("no PEM certificate found".to_string())),
    }
}

/// The first certificate block of `pem`, verbatim (the one `first_pem_cert` decoded).
fn first_pem_block(pem: &str) -> Result<String, CertError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN);
    let end = start.and_then(|s| pem[s..].find(END).map(|e| s + e + END.len()));
    match (start, end) {
        (Some(s), Some(e)) => Ok(format!("{}\n", &pem[s..e])),
        _ => Err(CertError::CaCert("no PEM certificate found".to_string())),
    }
}

fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    if days == 0 {
        return Err(CertError::Days);
    }
    let now = OffsetDateTime::now_utc();
    Ok((now - BACKDATE, now + Duration::days(i64::from(days))))
}

/// 16 random bytes, positive and of fixed length: top bit clear (no sign byte) and first byte
/// non-zero (no leading zero stripped by DER), so the hex printed is the hex in the cert.
fn random_serial() -> [u8; 16] {
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f).max(1);
    serial
}

/// Lowercase hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path, source: std::io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_private(path: &Path, create_new: bool) -> std::io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes through a temporary file in the same directory and renames it over `path`, so a
/// reader (the sidecar's file watcher) never sees a half-written file.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut f = if private {
            open_private(&tmp, false)?
        } else {
            fs::File::create(&tmp)?
        };
        // A leftover temp file from a crash may have other permissions; mode only applies on
        // creation, so set it explicitly.
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        io_err(path, source)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse_leaf(pem: &str) -> (Vec<u8>, usize) {
        let mut r = pem.as_bytes();
        let certs: Vec<_> = rustls_pemfile::certs(&mut r).collect::<Result<_, _>>().unwrap();
        (certs[0].to_vec(), certs.len())
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_ca_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "arena", 30).unwrap();
        let pem = fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        let (der, n) = parse_leaf(&pem);
        assert_eq!(n, 1);
        let (_, ca) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(ca.is_ca());
        assert_eq!(ca.subject().to_string(), "CN=Arena dev CA, O=arena");
        assert_eq!(ca.subject(), ca.issuer());
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        let bc = ca.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca && bc.path_len_constraint.is_none());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let v = ca.validity();
        assert!(v.not_before.timestamp() <= now - 3500 && v.not_before.timestamp() >= now - 3700);
        assert!((v.not_after.timestamp() - (now + 30 * 86400)).abs() < 100);
        #[cfg(unix)]
        assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);

        let key_before = fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        let err = init(dir.path(), "arena", 30).unwrap_err();
        assert!(matches!(err, CertError::CaKeyExists(_)));
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), key_before);
    }

    #[test]
    fn init_validates_arguments() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(init(dir.path(), "Arena", 30), Err(CertError::TrustDomain(..))));
        assert!(matches!(
            init(dir.path(), "arena/x", 30),
            Err(CertError::TrustDomain(..))
        ));
        assert!(matches!(init(dir.path(), "", 30), Err(CertError::TrustDomain(..))));
        assert!(matches!(init(dir.path(), "arena", 0), Err(CertError::Days)));
        assert!(!dir.path().join(CA_KEY_FILE).exists());
    }

    #[test]
    fn issue_writes_a_chain_with_the_right_extensions() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "arena", 30).unwrap();
        let dns = vec![
            "web.local".to_string(),
            "WEB.local".to_string(),
            "127.0.0.1".to_string(),
        ];
        let issued = issue(dir.path(), "web", "spiffe://arena/ns/default/sa/web", &dns, 7).unwrap();
        assert_eq!(issued.cert_path, dir.path().join("web.pem"));
        assert_eq!(issued.key_path, dir.path().join("web-key.pem"));
        #[cfg(unix)]
        assert_eq!(mode(&issued.key_path), 0o600);
        assert_eq!(
            issued.sans,
            vec![
                "URI:spiffe://arena/ns/default/sa/web",
                "IP:127.0.0.1",
                "DNS:web.local",
                "DNS:web.default.sa.identity.arena"
            ]
        );

        let pem = fs::read_to_string(&issued.cert_path).unwrap();
        let mut r = pem.as_bytes();
        let chain: Vec<_> = rustls_pemfile::certs(&mut r).collect::<Result<_, _>>().unwrap();
        assert_eq!(chain.len(), 2);
        let ca_pem = fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        assert_eq!(chain[1].to_vec(), parse_leaf(&ca_pem).0);

        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
        assert!(!leaf.is_ca());
        assert_eq!(hex(leaf.raw_serial()), issued.serial_hex);
        assert_eq!(leaf.raw_serial().len(), 16);
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(
            sans,
            vec![
                "URI(spiffe://arena/ns/default/sa/web)",
                "IPAddress(7f:00:00:01)",
                "DNSName(web.local)",
                "DNSName(web.default.sa.identity.arena)"
            ]
        );
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let ku = leaf.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert_eq!(leaf.validity().not_after.timestamp(), issued.not_after);

        // Reissuing replaces both files with a new key and serial.
        let key_before = fs::read(&issued.key_path).unwrap();
        let again = issue(dir.path(), "web", "spiffe://arena/ns/default/sa/web", &[], 7).unwrap();
        assert_ne!(again.serial_hex, issued.serial_hex);
        assert_ne!(fs::read(&again.key_path).unwrap(), key_before);
    }

    #[test]
    fn issue_validates_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let id = "spiffe://arena/x";
        assert!(matches!(issue(dir.path(), "w", id, &[], 1), Err(CertError::Io { .. })));
        init(dir.path(), "arena", 30).unwrap();
        for bad in ["", "a/b", "..", ".", "a b", "ca", "ca-key"] {
            assert!(
                matches!(issue(dir.path(), bad, id, &[], 1), Err(CertError::Name(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            issue(dir.path(), "w", "spiffe://arena/", &[], 1),
            Err(CertError::SpiffeId(_))
        ));
        assert!(matches!(
            issue(dir.path(), "w", "spiffe://other/x", &[], 1),
            Err(CertError::TrustDomainMismatch { .. })
        ));
        assert!(matches!(
            issue(dir.path(), "w", id, &["bad_name".to_string()], 1),
            Err(CertError::DnsName(_))
        ));
        assert!(matches!(issue(dir.path(), "w", id, &[], 0), Err(CertError::Days)));

        let other = generate_ca("arena", 1).unwrap();
        let ca_pem = fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        let err = issue_with_ca(&ca_pem, &other.key_pem, id, &[], 1).unwrap_err();
        assert!(matches!(err, CertError::CaKey(_)), "{err}");
        let err = issue_with_ca("nonsense", &other.key_pem, id, &[], 1).unwrap_err();
        assert!(matches!(err, CertError::CaCert(_)), "{err}");
        // A leaf is not a CA.
        let leaf = issue_with_ca(&other.cert_pem, &other.key_pem, id, &[], 1).unwrap();
        let err = issue_with_ca(&leaf.cert_pem, &leaf.key_pem, id, &[], 1).unwrap_err();
        assert!(matches!(err, CertError::CaCert(_)), "{err}");
    }

    #[test]
    fn leaf_never_outlives_its_ca() {
        let ca = generate_ca("arena", 2).unwrap();
        let leaf = issue_with_ca(&ca.cert_pem, &ca.key_pem, "spiffe://arena/x", &[], 365).unwrap();
        assert_eq!(leaf.not_after, ca.not_after);
    }
}
