//! TLS for Ward's listeners: rustls with the aws-lc-rs provider, TLS 1.3 preferred and TLS 1.2
//! allowed with AEAD suites only (rustls offers no others), client certificates required.
//!
//! A client certificate is accepted at the TLS layer when Ward's CA issued it or when it is
//! pinned in the registry; which AE it may speak for is decided afterwards, by [`crate::admit`],
//! once the A-ASSOCIATE-RQ names the calling AE title.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::pki::{self, Credentials, PkiError};

/// The set of pinned certificate fingerprints, shared with the verifier and refreshed from the
/// registry before each handshake (registry changes need no restart).
pub type PinnedCertificates = Arc<RwLock<HashSet<[u8; 32]>>>;

/// What Ward knows about a TLS peer's certificate once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    pub fingerprint: [u8; 32],
    /// Whether the certificate chains to Ward's own CA (and is valid now).
    pub issued_by_ward: bool,
    /// The subject's single common name, if it has one.
    pub common_name: Option<String>,
    /// The subject, for the audit trail.
    pub subject: Option<String>,
}

/// Checks client certificates: Ward's CA, or pinned.
#[derive(Debug)]
pub struct ClientCertPolicy {
    ward_ca: Arc<dyn ClientCertVerifier>,
    pinned: PinnedCertificates,
}

impl ClientCertPolicy {
    pub fn new(ca_cert_pem: &str, pinned: PinnedCertificates) -> Result<Arc<Self>, PkiError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki::first_cert_der(ca_cert_pem)?))
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        let ward_ca = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(Arc::new(ClientCertPolicy { ward_ca, pinned }))
    }

    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        let fingerprint = pki::fingerprint(end_entity);
        let pinned = self
            .pinned
            .read()
            .map(|set| set.contains(&fingerprint))
            .unwrap_or(false);
        pinned && currently_valid(end_entity)
    }

    fn chains_to_ward(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> bool {
        self.ward_ca
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }

    /// Describes the certificate chain a client presented (already accepted by the handshake).
    pub fn describe(&self, chain: &[CertificateDer<'_>]) -> Option<PeerCertificate> {
        let (end_entity, intermediates) = chain.split_first()?;
        Some(PeerCertificate {
            fingerprint: pki::fingerprint(end_entity),
            issued_by_ward: self.chains_to_ward(end_entity, intermediates),
            common_name: pki::common_name(end_entity),
            subject: pki::subject(end_entity),
        })
    }
}

fn currently_valid(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.validity().is_valid())
        .unwrap_or(false)
}

impl ClientCertVerifier for ClientCertPolicy {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ward_ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.is_pinned(end_entity) {
            return Ok(ClientCertVerified::assertion());
        }
        self.ward_ca
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ward_ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ward_ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ward_ca.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// The rustls configuration of a listener that requires client certificates.
pub fn server_config(
    server: &Credentials,
    policy: Arc<ClientCertPolicy>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let (chain, key) = server_chain_and_key(server)?;
    let config = server_builder()?
        .with_client_cert_verifier(policy)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The rustls configuration of the HTTPS listener: the same protocol versions and suites as
/// DIMSE over TLS, but no client certificate, since every request carries a bearer token.
/// HTTP/1.1 only (ALPN), which every DICOMweb client speaks.
pub fn https_server_config(server: &Credentials) -> Result<Arc<ServerConfig>, PkiError> {
    let (chain, key) = server_chain_and_key(server)?;
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS 1.3 and 1.2 with the aws-lc-rs provider, whose TLS 1.2 suites are all ECDHE with AEAD
/// ciphers: the PS3.15 BCP 195 non-downgrading profile.
fn server_builder() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, PkiError>
{
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| PkiError::Certificate(e.to_string()))
}

fn server_chain_and_key(
    server: &Credentials,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConnection, NamedGroup, ProtocolVersion, RootCertStore, ServerConnection};

    /// Moves TLS records between two in-memory ends until both have finished the handshake.
    fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) {
        for _ in 0..10 {
            let mut records = Vec::new();
            client.write_tls(&mut records).unwrap();
            server.read_tls(&mut records.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            records.clear();
            server.write_tls(&mut records).unwrap();
            client.read_tls(&mut records.as_slice()).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                return;
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn a_client_that_offers_the_post_quantum_hybrid_gets_it() {
        let ca = pki::generate_ca("test").unwrap();
        let server = pki::issue_server_cert(&ca, &["localhost".to_owned()]).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                pki::first_cert_der(&ca.cert_pem).unwrap(),
            ))
            .unwrap();
        // A rustls client built as Ward's own clients are: it sends a hybrid key share first.
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut client =
            ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
                .unwrap();
        let mut server = ServerConnection::new(https_server_config(&server).unwrap()).unwrap();
        handshake(&mut client, &mut server);
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(
            server.negotiated_key_exchange_group().map(|g| g.name()),
            Some(NamedGroup::X25519MLKEM768)
        );
    }
}
