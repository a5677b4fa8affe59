//! Ward's private certificate authority: the CA made at `ward init`, the server certificate, the
//! client certificates issued to modalities, and what Ward reads back out of a peer's
//! certificate. Pure functions over PEM text; the caller stores the results (owner-only).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use ward_types::AeTitle;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid host name {0:?}")]
    HostName(String),
    #[error("malformed certificate: {0}")]
    Certificate(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    // The private key never reaches a log through a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

const CA_YEARS: i32 = 10;
const LEAF_YEARS: i32 = 2;

fn validity(params: &mut CertificateParams, years: i32) {
    let now = time_now();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * i64::from(years));
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A new ECDSA P-256 certificate authority for this installation.
pub fn generate_ca(installation: &str) -> Result<Credentials, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Ward");
    dn.push(DnType::CommonName, format!("Ward CA {installation}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_YEARS);
    let cert = params.self_signed(&key)?;
    Ok(Credentials {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer(ca: &Credentials) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&ca.key_pem)?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, key)?)
}

/// The server certificate for Ward's TLS listeners, valid for `host_names` (DNS names or IP
/// addresses).
pub fn issue_server_cert(ca: &Credentials, host_names: &[String]) -> Result<Credentials, PkiError> {
    let sans = host_names
        .iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) if is_dns_name(h) => h
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| PkiError::HostName(h.clone())),
            Err(_) => Err(PkiError::HostName(h.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = host_names.first().map(String::as_str).unwrap_or("ward");
    leaf(ca, first, sans, ExtendedKeyUsagePurpose::ServerAuth)
}

/// Letters, digits and hyphens in dot-separated labels of 1–63 characters (RFC 1123).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A client certificate for a modality: the AE title is its common name, which is how Ward
/// binds the certificate to the AE (PS3.15 B.1 leaves the binding to the implementation).
pub fn issue_client_cert(ca: &Credentials, ae: &AeTitle) -> Result<Credentials, PkiError> {
    leaf(
        ca,
        ae.as_str(),
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

fn leaf(
    ca: &Credentials,
    common_name: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<Credentials, PkiError> {
    let issuer = issuer(ca)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Ward");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_YEARS);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Credentials {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// SHA-256 of a certificate's DER encoding: how a pinned certificate is recognised.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The DER of the first certificate in a PEM text.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::Certificate("no certificate in PEM".into()))?
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::Certificate(e.to_string()))
}

/// The common name of a certificate's subject, if it has exactly one.
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut names = cert.subject().iter_common_name();
    let first = names.next()?.as_str().ok()?.to_owned();
    names.next().is_none().then_some(first)
}

/// A short description of a certificate's subject, for the audit trail.
pub fn subject(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.subject().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_carry_the_ae_title() {
        let ca = generate_ca("test").unwrap();
        let ae = AeTitle::parse("CT_ROOM1").unwrap();
        let client = issue_client_cert(&ca, &ae).unwrap();
        let der = first_cert_der(&client.cert_pem).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("CT_ROOM1"));
        assert_ne!(
            fingerprint(&der),
            fingerprint(&first_cert_der(&ca.cert_pem).unwrap())
        );
        assert!(format!("{client:?}").contains("redacted"));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn server_certificates_name_hosts_and_addresses() {
        let ca = generate_ca("test").unwrap();
        let server = issue_server_cert(&ca, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let der = first_cert_der(&server.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 2);
        assert!(issue_server_cert(&ca, &["bad name!".into()]).is_err());
    }
}
