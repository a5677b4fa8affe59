//! Findings and the report: the stable finding catalogue, the JSON document and the readable
//! text, and the exit status they imply.

use std::fmt::Write as _;

use serde::Serialize;

/// How bad a finding is. Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Every finding `ward audit` can report. The ids are stable: scripts and
/// `docs/audit-findings.md` rely on them, so an id is never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    ScanFailed,
    DimsePlaintext,
    TlsInfo,
    TlsNoTls13,
    TlsLegacyVersion,
    TlsBrokenSuite,
    TlsNoForwardSecrecy,
    TlsNonAeadSuite,
    TlsCertDates,
    TlsCertNameMismatch,
    TlsCertUntrusted,
    TlsCertSelfSigned,
    TlsNoClientCert,
    TlsClientCertRequired,
    DicomFingerprint,
    DicomClosed,
    DicomNoService,
    DicomAnyCalledAe,
    DicomDefaultCalledAe,
    DicomAnyCallingAe,
    DicomGuessableCallingAe,
    DicomRejectOracle,
    DicomBackoff,
    DicomIdentityUsernameOnly,
    DicomIdentityPasscodeIgnored,
    DicomEchoOpen,
    DicomFindOpen,
    DicomFindExposesData,
    DicomGetOpen,
    DicomGetRetrievesData,
    DicomMoveOpen,
    DicomStoreOpen,
    DicomStoreAccepted,
    DicomStoreOverwrite,
    WebPlainHttp,
    WebFingerprint,
    WebAuthRequired,
    WebQidoOpen,
    WebPatientDataExposed,
    WebOrthancRestOpen,
    WebDefaultCredentials,
    WebCorsAnyOrigin,
    WebWadoUriOpen,
    WebWadoUriRetrievesData,
    WebStowAccepted,
    WebStowPreambleKept,
}

impl Check {
    /// Every check, in catalogue order.
    pub const ALL: [Check; 46] = [
        Check::ScanFailed,
        Check::DimsePlaintext,
        Check::TlsInfo,
        Check::TlsNoTls13,
        Check::TlsLegacyVersion,
        Check::TlsBrokenSuite,
        Check::TlsNoForwardSecrecy,
        Check::TlsNonAeadSuite,
        Check::TlsCertDates,
        Check::TlsCertNameMismatch,
        Check::TlsCertUntrusted,
        Check::TlsCertSelfSigned,
        Check::TlsNoClientCert,
        Check::TlsClientCertRequired,
        Check::DicomFingerprint,
        Check::DicomClosed,
        Check::DicomNoService,
        Check::DicomAnyCalledAe,
        Check::DicomDefaultCalledAe,
        Check::DicomAnyCallingAe,
        Check::DicomGuessableCallingAe,
        Check::DicomRejectOracle,
        Check::DicomBackoff,
        Check::DicomIdentityUsernameOnly,
        Check::DicomIdentityPasscodeIgnored,
        Check::DicomEchoOpen,
        Check::DicomFindOpen,
        Check::DicomFindExposesData,
        Check::DicomGetOpen,
        Check::DicomGetRetrievesData,
        Check::DicomMoveOpen,
        Check::DicomStoreOpen,
        Check::DicomStoreAccepted,
        Check::DicomStoreOverwrite,
        Check::WebPlainHttp,
        Check::WebFingerprint,
        Check::WebAuthRequired,
        Check::WebQidoOpen,
        Check::WebPatientDataExposed,
        Check::WebOrthancRestOpen,
        Check::WebDefaultCredentials,
        Check::WebCorsAnyOrigin,
        Check::WebWadoUriOpen,
        Check::WebWadoUriRetrievesData,
        Check::WebStowAccepted,
        Check::WebStowPreambleKept,
    ];

    /// The stable id, and the severity this check always carries.
    pub fn id(self) -> &'static str {
        self.meta().0
    }

    pub fn severity(self) -> Severity {
        self.meta().1
    }

    fn meta(self) -> (&'static str, Severity) {
        use Severity::*;
        match self {
            Check::ScanFailed => ("scan-failed", Info),
            Check::DimsePlaintext => ("dimse-plaintext", Low),
            Check::TlsInfo => ("tls-info", Info),
            Check::TlsNoTls13 => ("tls-no-tls13", Low),
            Check::TlsLegacyVersion => ("tls-legacy-version", High),
            Check::TlsBrokenSuite => ("tls-broken-suite", High),
            Check::TlsNoForwardSecrecy => ("tls-no-forward-secrecy", Medium),
            Check::TlsNonAeadSuite => ("tls-non-aead-suite", Medium),
            Check::TlsCertDates => ("tls-cert-dates", High),
            Check::TlsCertNameMismatch => ("tls-cert-name-mismatch", Medium),
            Check::TlsCertUntrusted => ("tls-cert-untrusted", Medium),
            Check::TlsCertSelfSigned => ("tls-cert-self-signed", Low),
            Check::TlsNoClientCert => ("tls-no-client-cert", Medium),
            Check::TlsClientCertRequired => ("tls-client-cert-required", Info),
            Check::DicomFingerprint => ("dicom-fingerprint", Info),
            Check::DicomClosed => ("dicom-closed", Info),
            Check::DicomNoService => ("dicom-no-service", Info),
            Check::DicomAnyCalledAe => ("dicom-any-called-ae", Low),
            Check::DicomDefaultCalledAe => ("dicom-default-called-ae", Low),
            Check::DicomAnyCallingAe => ("dicom-any-calling-ae", Medium),
            Check::DicomGuessableCallingAe => ("dicom-guessable-calling-ae", Medium),
            Check::DicomRejectOracle => ("dicom-reject-oracle", Low),
            Check::DicomBackoff => ("dicom-backoff", Info),
            Check::DicomIdentityUsernameOnly => ("dicom-identity-username-only", High),
            Check::DicomIdentityPasscodeIgnored => ("dicom-identity-passcode-ignored", Critical),
            Check::DicomEchoOpen => ("dicom-echo-open", Low),
            Check::DicomFindOpen => ("dicom-find-open", Medium),
            Check::DicomFindExposesData => ("dicom-find-exposes-data", Critical),
            Check::DicomGetOpen => ("dicom-get-open", High),
            Check::DicomGetRetrievesData => ("dicom-get-retrieves-data", Critical),
            Check::DicomMoveOpen => ("dicom-move-open", Medium),
            Check::DicomStoreOpen => ("dicom-store-open", Medium),
            Check::DicomStoreAccepted => ("dicom-store-accepted", High),
            Check::DicomStoreOverwrite => ("dicom-store-overwrite", High),
            Check::WebPlainHttp => ("web-plain-http", Medium),
            Check::WebFingerprint => ("web-fingerprint", Info),
            Check::WebAuthRequired => ("web-auth-required", Info),
            Check::WebQidoOpen => ("web-qido-open", High),
            Check::WebPatientDataExposed => ("web-patient-data-exposed", Critical),
            Check::WebOrthancRestOpen => ("web-orthanc-rest-open", High),
            Check::WebDefaultCredentials => ("web-default-credentials", Critical),
            Check::WebCorsAnyOrigin => ("web-cors-any-origin", Medium),
            Check::WebWadoUriOpen => ("web-wado-uri-open", High),
            Check::WebWadoUriRetrievesData => ("web-wado-uri-retrieves-data", Critical),
            Check::WebStowAccepted => ("web-stow-accepted", Critical),
            Check::WebStowPreambleKept => ("web-stow-preamble-kept", High),
        }
    }

    /// A finding of this check with its evidence; title and remediation come from the catalogue.
    pub fn found(self, evidence: impl Into<String>) -> Finding {
        let (title, remediation) = self.text();
        Finding {
            id: self.id(),
            severity: self.severity(),
            title,
            evidence: evidence.into(),
            remediation,
        }
    }

    fn text(self) -> (&'static str, &'static str) {
        match self {
            Check::ScanFailed => (
                "The scan could not be carried out",
                "Check the target address and that the service is running; nothing was assessed.",
            ),
            Check::DimsePlaintext => (
                "DIMSE is offered without TLS",
                "Offer DICOM over TLS (PS3.15 BCP 195 profile) and keep plain DIMSE to legacy \
                 modalities on an isolated network segment.",
            ),
            Check::TlsInfo => (
                "TLS parameters",
                "None: informational (handshakes completed, and how the server answered offers \
                 of TLS 1.0, TLS 1.1 and weak TLS 1.2 suites).",
            ),
            Check::TlsNoTls13 => (
                "TLS 1.3 is not accepted",
                "Enable TLS 1.3 alongside TLS 1.2 (BCP 195 / RFC 9325).",
            ),
            Check::TlsLegacyVersion => (
                "TLS 1.0 or TLS 1.1 is accepted",
                "Accept TLS 1.2 and 1.3 only (PS3.15 non-downgrading BCP 195 profile; RFC 8996, \
                 RFC 9325 §3.1.1); in DCMTK use --profile-bcp195-nd, in OpenSSL MinProtocol = \
                 TLSv1.2.",
            ),
            Check::TlsBrokenSuite => (
                "A cipher suite BCP 195 forbids is accepted",
                "Remove NULL, export, RC4, DES, 3DES and anonymous suites from the server's \
                 configuration (RFC 9325 §4.1: MUST NOT be negotiated).",
            ),
            Check::TlsNoForwardSecrecy => (
                "TLS 1.2 with RSA key transport (no forward secrecy) is accepted",
                "Offer only ECDHE or DHE suites (RFC 9325 §4.1, §4.2), so that a stolen server \
                 key does not decrypt recorded traffic.",
            ),
            Check::TlsNonAeadSuite => (
                "TLS 1.2 with a non-AEAD (CBC) suite is accepted",
                "Offer only the AEAD suites RFC 9325 §4.2 recommends (AES-GCM, ChaCha20-Poly1305 \
                 with ECDHE or DHE); CBC suites have a history of padding-oracle attacks.",
            ),
            Check::TlsCertDates => (
                "The server certificate is expired or not yet valid",
                "Renew the server certificate and monitor its expiry.",
            ),
            Check::TlsCertNameMismatch => (
                "The server certificate does not name the host scanned",
                "Issue the certificate for the names and addresses clients use (subjectAltName).",
            ),
            Check::TlsCertUntrusted => (
                "The server certificate does not verify against the given CA",
                "Install a certificate issued by the CA your clients trust, with its chain.",
            ),
            Check::TlsCertSelfSigned => (
                "The server certificate is self-signed",
                "Use a certificate issued by a CA the clients pin or trust, so that they can \
                 authenticate the server without trusting on first use.",
            ),
            Check::TlsNoClientCert => (
                "DICOM over TLS accepts peers without a client certificate",
                "Require client certificates (PS3.15 B.1/B.9 authenticate both nodes) and bind \
                 them to AE titles.",
            ),
            Check::TlsClientCertRequired => (
                "A client certificate is required",
                "None: peers must authenticate with a certificate before any DICOM exchange.",
            ),
            Check::DicomFingerprint => (
                "The server identifies its implementation",
                "None needed; know that implementation class UID and version name map to known \
                 vulnerabilities, so keep the software patched.",
            ),
            Check::DicomClosed => (
                "No association with any service was accepted",
                "None: unknown peers got nothing.",
            ),
            Check::DicomNoService => (
                "Associations are accepted but every service is refused",
                "None needed for data; rejecting the association itself gives away less.",
            ),
            Check::DicomAnyCalledAe => (
                "Any called AE title is accepted",
                "Accept only the server's own AE title as the called title.",
            ),
            Check::DicomDefaultCalledAe => (
                "The server's AE title is a well-known default",
                "Rename the AE title to something site-specific; do not rely on it as a secret.",
            ),
            Check::DicomAnyCallingAe => (
                "Services are offered to any calling AE title",
                "Admit only registered peers (calling AE title bound to address and, better, a \
                 client certificate).",
            ),
            Check::DicomGuessableCallingAe => (
                "A well-known or listed calling AE title alone admits a peer",
                "An AE title is no credential: bind peers to client certificates or at least to \
                 their network addresses.",
            ),
            Check::DicomRejectOracle => (
                "Association rejections tell which AE title was wrong",
                "Reject every refused association the same way (permanent, no reason given).",
            ),
            Check::DicomBackoff => (
                "The server stopped answering after repeated failed associations",
                "None: this throttles guessing.",
            ),
            Check::DicomIdentityUsernameOnly => (
                "User identity with a username alone is accepted where none is refused",
                "Require a username with a verified passcode, or certificates.",
            ),
            Check::DicomIdentityPasscodeIgnored => (
                "A wrong passcode is accepted",
                "Verify user identity passcodes; fix or replace the implementation.",
            ),
            Check::DicomEchoOpen => (
                "C-ECHO is answered for unknown peers",
                "Answer verification only for registered peers.",
            ),
            Check::DicomFindOpen => (
                "C-FIND from unknown peers is answered (no matches now)",
                "Restrict query/retrieve to registered, authenticated peers.",
            ),
            Check::DicomFindExposesData => (
                "A wildcard C-FIND from an unknown peer returns patient data",
                "Stop the exposure now: restrict query/retrieve to registered, authenticated \
                 peers and review access logs for past queries.",
            ),
            Check::DicomGetOpen => (
                "C-GET is served to unknown peers",
                "C-GET needs no inbound port: serve it only to authenticated peers.",
            ),
            Check::DicomGetRetrievesData => (
                "Images are retrievable by an unknown peer",
                "Stop the exposure now: serve C-GET and C-MOVE only to registered, authenticated \
                 peers and review access logs for past retrievals.",
            ),
            Check::DicomMoveOpen => (
                "C-MOVE to an unknown destination is not refused",
                "Serve C-MOVE only to registered peers and move only to registered destinations \
                 (refuse others with A801H).",
            ),
            Check::DicomStoreOpen => (
                "Storage is negotiable by unknown peers",
                "Accept storage only from registered modalities.",
            ),
            Check::DicomStoreAccepted => (
                "A synthetic object from an unknown peer was stored",
                "Accept storage only from registered modalities; delete the probe object (its \
                 patient is WARD^AUDIT^PROBE).",
            ),
            Check::DicomStoreOverwrite => (
                "A different object under an existing SOP Instance UID was acknowledged",
                "Refuse a different object under an existing SOP Instance UID (status 0111H).",
            ),
            Check::WebPlainHttp => (
                "The web endpoint answers over plain HTTP",
                "Serve HTTPS only (TLS 1.2+), or bind plain HTTP to loopback behind a proxy.",
            ),
            Check::WebFingerprint => (
                "The web server identifies its product",
                "None needed; keep the software patched.",
            ),
            Check::WebAuthRequired => ("The web endpoints probed require authentication", "None."),
            Check::WebQidoOpen => (
                "QIDO-RS answers without authentication",
                "Require authentication on every DICOMweb endpoint.",
            ),
            Check::WebPatientDataExposed => (
                "Patient data is returned without authentication",
                "Stop the exposure now: require authentication on every web endpoint and \
                 review access logs.",
            ),
            Check::WebOrthancRestOpen => (
                "Orthanc's REST API answers without authentication",
                "Set AuthenticationEnabled with strong RegisteredUsers; keep RemoteAccessAllowed \
                 off unless behind an authenticating proxy.",
            ),
            Check::WebDefaultCredentials => (
                "Default credentials are accepted",
                "Change or remove the default account now.",
            ),
            Check::WebCorsAnyOrigin => (
                "CORS reflects any origin",
                "Allow only the origins of your own viewers.",
            ),
            Check::WebWadoUriOpen => (
                "WADO-URI answers without authentication",
                "Require authentication on WADO-URI as on every DICOMweb endpoint, or turn it \
                 off: anyone holding an object's UIDs (from a link, a report, a log) gets it.",
            ),
            Check::WebWadoUriRetrievesData => (
                "WADO-URI returns DICOM objects without authentication",
                "Stop the exposure now: require authentication on WADO-URI and review access \
                 logs for past retrievals.",
            ),
            Check::WebStowAccepted => (
                "STOW-RS stores objects sent without authentication",
                "Require authentication on STOW-RS. ward audit cannot delete what it stored: \
                 delete the probe object (patient WARD^AUDIT^PROBE) yourself.",
            ),
            Check::WebStowPreambleKept => (
                "Stored objects are served back with the sender's preamble",
                "Replace the 128-byte preamble of received objects with zeros (PS3.10 7.1 lets \
                 the receiver do so), so that no stored file is also an executable \
                 (CVE-2019-11687); delete the probe object (patient WARD^AUDIT^PROBE) yourself.",
            ),
        }
    }
}

/// One finding, as it appears in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub evidence: String,
    pub remediation: &'static str,
}

/// The findings for one target, most severe first.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub findings: Vec<Finding>,
    /// The scan of this target failed (also present as a `scan-failed` finding).
    #[serde(skip)]
    pub failed: bool,
}

impl TargetReport {
    pub fn new(target: String, mut findings: Vec<Finding>) -> TargetReport {
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
        TargetReport {
            target,
            findings,
            failed: false,
        }
    }

    pub fn failed(target: String, error: &str) -> TargetReport {
        TargetReport {
            target,
            findings: vec![Check::ScanFailed.found(error)],
            failed: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// 2 when a scan failed, 1 when anything of medium severity or above was found, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.targets.iter().any(|t| t.failed) {
            2
        } else if self
            .targets
            .iter()
            .flat_map(|t| &t.findings)
            .any(|f| f.severity >= Severity::Medium)
        {
            1
        } else {
            0
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{\"targets\":[]}"))
    }

    /// The readable report: per target, findings by severity with evidence and remediation.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for target in &self.targets {
            let _ = writeln!(out, "{}", target.target);
            if target.findings.is_empty() {
                let _ = writeln!(out, "  no findings");
            }
            for f in &target.findings {
                let _ = writeln!(
                    out,
                    "  [{}] {} ({})",
                    f.severity.as_str().to_uppercase(),
                    f.title,
                    f.id
                );
                let _ = writeln!(out, "      evidence: {}", f.evidence);
                let _ = writeln!(out, "      fix:      {}", f.remediation);
            }
            let _ = writeln!(out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_documented() {
        let mut ids: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Check::ALL.len());
        let doc =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit-findings.md");
        let doc = std::fs::read_to_string(doc).unwrap();
        for id in ids {
            assert!(
                doc.contains(&format!("`{id}`")),
                "{id} is not in docs/audit-findings.md"
            );
        }
    }

    #[test]
    fn exit_codes() {
        let info = TargetReport::new("a".into(), vec![Check::DicomClosed.found("x")]);
        let medium = TargetReport::new("b".into(), vec![Check::DicomFindOpen.found("x")]);
        let failed = TargetReport::failed("c".into(), "refused");
        let report = |targets: Vec<TargetReport>| Report { targets }.exit_code();
        assert_eq!(report(vec![info.clone()]), 0);
        assert_eq!(report(vec![info.clone(), medium.clone()]), 1);
        assert_eq!(report(vec![medium, failed]), 2);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let report = Report {
            targets: vec![TargetReport::new(
                "dicom://127.0.0.1:104".into(),
                vec![Check::DicomEchoOpen.found("status 0000H")],
            )],
        };
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let finding = &value["targets"][0]["findings"][0];
        assert_eq!(value["targets"][0]["target"], "dicom://127.0.0.1:104");
        assert_eq!(finding["id"], "dicom-echo-open");
        assert_eq!(finding["severity"], "low");
        let keys: Vec<&String> = finding.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["evidence", "id", "remediation", "severity", "title"]
                .iter()
                .collect::<Vec<_>>()
        );
    }
}
