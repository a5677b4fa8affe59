//! Connections to a target, plain or TLS, and the inspection of a TLS endpoint.
//!
//! An auditor must see a bad certificate rather than fail on it, so the TLS client here uses
//! [`DangerousRecordingVerifier`]: it records the server's certificate and what a real
//! verification would have said, and lets the handshake go on. Handshake signatures are still
//! checked, so the server did prove possession of the certificate's key. Nothing sent over
//! these connections is confidential: they carry probes only.
//!
//! What is measured: which of TLS 1.2 and 1.3 complete a handshake, the suite negotiated, the
//! certificate, and whether a client certificate is requested and required. rustls speaks
//! neither TLS 1.0/1.1 nor non-AEAD suites; whether a server still accepts those is asked by
//! `tls_legacy`, which offers them in a ClientHello of its own and reads only the answer.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::classify::{CertSummary, LegacyOutcome, TlsObservations};
use crate::pace::Pacer;
use crate::tls_legacy;
use crate::{ScanError, ScanOptions, Target};

/// A connection to a target, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type BoxIo = Box<dyn Io>;

/// Opens connections to one target, each after waiting for its slot.
pub(crate) struct Connector {
    addr: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn plain(target: &Target, timeout: Duration) -> Connector {
        Connector {
            addr: target.socket_addr(),
            tls: None,
            timeout,
        }
    }

    /// Connects, handshaking TLS when the target uses it; errors are the connection's.
    pub(crate) async fn open(&self, pacer: &Pacer) -> io::Result<BoxIo> {
        pacer.wait().await;
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "timed out");
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| timed_out())??;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| timed_out())??;
                Ok(Box::new(tls))
            }
        }
    }
}

/// The client side of TLS for one target: the certificate verifier that records, and the
/// client certificate if one was given.
pub(crate) struct TlsClient {
    provider: Arc<CryptoProvider>,
    name: ServerName<'static>,
    trust: Option<Arc<WebPkiServerVerifier>>,
    identity: Option<Arc<CertifiedKey>>,
    addr: String,
    timeout: Duration,
}

impl TlsClient {
    pub(crate) fn new(target: &Target, options: &ScanOptions) -> Result<TlsClient, ScanError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| ScanError::Setup(format!("{}: {e}", target.host)))?;
        let setup = |what: &Path, e: &dyn std::fmt::Display| {
            ScanError::Setup(format!("{}: {e}", what.display()))
        };
        let trust = match &options.ca {
            None => None,
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| setup(path, &e))? {
                    roots
                        .add(cert.map_err(|e| setup(path, &e))?)
                        .map_err(|e| setup(path, &e))?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| setup(path, &e))?;
                Some(verifier)
            }
        };
        let identity = match &options.client_cert {
            None => None,
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| setup(cert, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| setup(cert, &e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| setup(key, &e))?;
                let certified = CertifiedKey::from_der(chain, key, &provider)
                    .map_err(|e| ScanError::Setup(format!("client certificate: {e}")))?;
                Some(Arc::new(certified))
            }
        };
        Ok(TlsClient {
            provider,
            name,
            trust,
            identity,
            addr: target.socket_addr(),
            timeout: options.timeout,
        })
    }

    fn config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        with_identity: bool,
    ) -> Result<
        (
            ClientConfig,
            Arc<DangerousRecordingVerifier>,
            Arc<RecordingResolver>,
        ),
        ScanError,
    > {
        let verifier = Arc::new(DangerousRecordingVerifier {
            provider: self.provider.clone(),
            trust: self.trust.clone(),
            seen: Mutex::new(None),
        });
        let resolver = Arc::new(RecordingResolver {
            identity: self.identity.clone().filter(|_| with_identity),
            requested: AtomicBool::new(false),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| ScanError::Setup(format!("TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(resolver.clone());
        Ok((config, verifier, resolver))
    }

    /// A connector for the scan proper: both versions, the client certificate when
    /// `with_identity` and one was given.
    pub(crate) fn connector(&self, with_identity: bool) -> Result<Connector, ScanError> {
        let (config, _, _) = self.config(rustls::ALL_VERSIONS, with_identity)?;
        Ok(Connector {
            addr: self.addr.clone(),
            tls: Some((
                tokio_rustls::TlsConnector::from(Arc::new(config)),
                self.name.clone(),
            )),
            timeout: self.timeout,
        })
    }

    /// Handshakes with TLS 1.3 only and TLS 1.2 only, without a client certificate, recording
    /// what each completed and the certificate, then makes the legacy offers. Fails when
    /// neither version completes and no legacy offer is accepted: then this is no TLS
    /// endpoint, or nothing listens. An empty `versions` in the answer means that the server
    /// speaks only what BCP 195 forbids or discourages.
    pub(crate) async fn inspect(&self, pacer: &Pacer) -> Result<Inspection, ScanError> {
        let mut versions = Vec::new();
        let mut tls13 = false;
        let mut cert = None;
        let mut requested = false;
        let mut last_error = None;
        let mut alerted = false;
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (config, verifier, resolver) = self.config(&[version], false)?;
            pacer.wait().await;
            let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| {
                    ScanError::Connect(
                        self.addr.clone(),
                        io::Error::new(io::ErrorKind::TimedOut, "timed out"),
                    )
                })?
                .map_err(|e| ScanError::Connect(self.addr.clone(), e))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let outcome =
                tokio::time::timeout(self.timeout, connector.connect(self.name.clone(), tcp)).await;
            let asked = resolver.requested.load(Ordering::Relaxed);
            requested |= asked;
            let seen = verifier.take();
            let label = version_label(version.version);
            match outcome {
                Ok(Ok(stream)) => {
                    let suite = stream
                        .get_ref()
                        .1
                        .negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default();
                    tls13 |= version.version == rustls::ProtocolVersion::TLSv1_3;
                    versions.push((label, suite));
                }
                // A TLS 1.2 server that wants a client certificate fails the handshake once it
                // sees none; having asked for one, it had chosen the version.
                Ok(Err(_)) if asked => {
                    tls13 |= version.version == rustls::ProtocolVersion::TLSv1_3;
                    versions.push((
                        label,
                        String::from("(suite unknown: ended at client authentication)"),
                    ));
                }
                Ok(Err(e)) => {
                    alerted |= e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .is_some_and(|e| matches!(e, rustls::Error::AlertReceived(_)));
                    last_error = Some(e.to_string());
                }
                Err(_) => last_error = Some(String::from("handshake timed out")),
            }
            if cert.is_none() {
                cert = seen.map(|s| s.summary(&self.name));
            }
        }
        let not_confirmed = |last_error: Option<String>| {
            ScanError::NotConfirmed(format!(
                "no TLS 1.2 or 1.3 handshake completed: {}",
                last_error.unwrap_or_default()
            ))
        };
        // A server that alerted speaks TLS, only not what rustls offers: the legacy offers
        // tell whether it speaks only what BCP 195 forbids. Anything else (silence, no TLS at
        // all) is not worth five more connections.
        if versions.is_empty() && !alerted {
            return Err(not_confirmed(last_error));
        }
        let sni = match &self.name {
            ServerName::DnsName(name) => Some(name.as_ref()),
            _ => None,
        };
        let legacy = tls_legacy::probe_all(&self.addr, sni, self.timeout, pacer).await;
        let legacy_accepted = legacy
            .iter()
            .any(|p| matches!(p.outcome, LegacyOutcome::Accepted { .. }));
        if versions.is_empty() && !legacy_accepted {
            return Err(not_confirmed(last_error));
        }
        Ok(Inspection {
            observations: TlsObservations {
                versions,
                tls13,
                cert,
                client_cert: None,
                legacy,
            },
            client_cert_requested: requested,
        })
    }
}

fn version_label(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => String::from("TLS 1.3"),
        rustls::ProtocolVersion::TLSv1_2 => String::from("TLS 1.2"),
        other => format!("{other:?}"),
    }
}

pub(crate) struct Inspection {
    pub(crate) observations: TlsObservations,
    pub(crate) client_cert_requested: bool,
}

/// Records whether the server asked for a client certificate, and presents one if configured.
#[derive(Debug)]
struct RecordingResolver {
    identity: Option<Arc<CertifiedKey>>,
    requested: AtomicBool,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        self.identity.is_some()
    }
}

#[derive(Debug)]
struct Seen {
    end_entity: CertificateDer<'static>,
    trust: Option<Result<(), String>>,
}

impl Seen {
    fn summary(&self, name: &ServerName<'_>) -> CertSummary {
        let name_matches = webpki::EndEntityCert::try_from(&self.end_entity)
            .map(|ee| ee.verify_is_valid_for_subject_name(name).is_ok())
            .unwrap_or(false);
        match x509_parser::parse_x509_certificate(&self.end_entity) {
            Ok((_, cert)) => CertSummary {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_after: cert.validity().not_after.to_string(),
                dates_valid: cert.validity().is_valid(),
                self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
                name_matches,
                trust: self.trust.clone(),
            },
            Err(e) => CertSummary {
                subject: format!("(unparseable certificate: {e})"),
                issuer: String::new(),
                not_after: String::new(),
                dates_valid: false,
                self_signed: false,
                name_matches,
                trust: self.trust.clone(),
            },
        }
    }
}

/// A certificate verifier that accepts any server certificate after recording it and what
/// the `--ca` verification (if any) said about it. Only for inspecting a server under audit:
/// nothing confidential is sent over connections it approves.
#[derive(Debug)]
pub(crate) struct DangerousRecordingVerifier {
    provider: Arc<CryptoProvider>,
    trust: Option<Arc<WebPkiServerVerifier>>,
    seen: Mutex<Option<Seen>>,
}

impl DangerousRecordingVerifier {
    fn take(&self) -> Option<Seen> {
        self.seen.lock().ok()?.take()
    }
}

impl ServerCertVerifier for DangerousRecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trust = self.trust.as_ref().map(|v| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(Seen {
                end_entity: end_entity.clone().into_owned(),
                trust,
            });
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
