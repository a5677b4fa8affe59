//! From observations to findings: pure functions, no I/O. The probes in `dimse`, `tls` and
//! `web` fill in the observation types below; the verdicts are made here only.
//!
//! The point where other scanners go wrong is kept explicit: an association that was accepted
//! with every presentation context rejected gives a peer nothing, and is reported as such
//! (`dicom-no-service`), never as "any AE title accepted".

use std::collections::BTreeSet;
use std::fmt;

use crate::report::{Check, Finding};

/// Where an AE title the scanner tried came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleKind {
    /// Made up for this scan: nobody configured it.
    Random,
    /// A product or tool default (`ORTHANC`, `STORESCP`, …).
    WellKnown,
    /// From `--ae-list`.
    Listed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title {
    pub text: String,
    pub kind: TitleKind,
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TitleKind::Random => "random",
            TitleKind::WellKnown => "well-known",
            TitleKind::Listed => "from --ae-list",
        };
        write!(f, "{} ({kind})", self.text)
    }
}

/// The DICOM services the scanner proposes, one or more presentation contexts each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Verification,
    FindPatient,
    FindStudy,
    GetPatient,
    GetStudy,
    MovePatient,
    MoveStudy,
    Storage,
}

impl Service {
    fn is_get(self) -> bool {
        matches!(self, Service::GetPatient | Service::GetStudy)
    }

    fn is_move(self) -> bool {
        matches!(self, Service::MovePatient | Service::MoveStudy)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Verification => "Verification",
            Service::FindPatient => "Patient Root C-FIND",
            Service::FindStudy => "Study Root C-FIND",
            Service::GetPatient => "Patient Root C-GET",
            Service::GetStudy => "Study Root C-GET",
            Service::MovePatient => "Patient Root C-MOVE",
            Service::MoveStudy => "Study Root C-MOVE",
            Service::Storage => "Storage",
        })
    }
}

fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An A-ASSOCIATE-RJ as numbers (PS3.8 9.3.4): result, source, reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rejection {
    pub result: u8,
    pub source: u8,
    pub reason: u8,
}

impl Rejection {
    /// Whether the reason says the calling title was wrong, which tells that the called one
    /// passed. ("Called AE title not recognized" alone tells nothing: some servers give it
    /// for every refusal.)
    fn blames_calling_title(self) -> bool {
        self.source == 1 && self.reason == 3
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let result = match self.result {
            1 => "permanent",
            2 => "transient",
            _ => "unknown result",
        };
        let (source, reason) = match (self.source, self.reason) {
            (1, 1) => ("service user", "no reason given"),
            (1, 2) => ("service user", "application context name not supported"),
            (1, 3) => ("service user", "calling AE title not recognized"),
            (1, 7) => ("service user", "called AE title not recognized"),
            (1, _) => ("service user", "reserved reason"),
            (2, 1) => ("service provider (ACSE)", "no reason given"),
            (2, 2) => ("service provider (ACSE)", "protocol version not supported"),
            (3, 1) => ("service provider (presentation)", "temporary congestion"),
            (3, 2) => ("service provider (presentation)", "local limit exceeded"),
            _ => ("other source", "other reason"),
        };
        write!(f, "{result}, {source}: {reason}")
    }
}

/// The acceptor's self-description from its A-ASSOCIATE-AC.
pub use ward_dimse::PeerImplementation as Implementation;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A-ASSOCIATE-AC; `services` are those with at least one accepted context (possibly none).
    Accepted {
        services: BTreeSet<Service>,
        /// How many contexts were proposed and how many rejected, for the evidence.
        rejected_contexts: usize,
        implementation: Implementation,
    },
    Rejected(Rejection),
    /// A-ABORT in answer to the request.
    Aborted,
    /// The connection closed or timed out without an answer (or was refused after earlier
    /// answers: a back-off).
    NoAnswer,
}

impl Outcome {
    pub(crate) fn has_services(&self) -> bool {
        matches!(self, Outcome::Accepted { services, .. } if !services.is_empty())
    }

    fn is_answer(&self) -> bool {
        !matches!(self, Outcome::NoAnswer)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Accepted {
                services,
                rejected_contexts,
                ..
            } if services.is_empty() => write!(
                f,
                "A-ASSOCIATE-AC with every context rejected ({rejected_contexts})"
            ),
            Outcome::Accepted { services, .. } => {
                write!(f, "A-ASSOCIATE-AC accepting {}", list(services))
            }
            Outcome::Rejected(rj) => write!(f, "A-ASSOCIATE-RJ ({rj})"),
            Outcome::Aborted => f.write_str("A-ABORT"),
            Outcome::NoAnswer => f.write_str("no answer"),
        }
    }
}

/// The user identity sub-item sent with a request (PS3.7 D.3.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    None,
    /// Type 1: a made-up username, no passcode.
    UsernameOnly,
    /// Type 2: a made-up username with a made-up passcode.
    WrongPasscode,
}

/// One association attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub called: Title,
    pub calling: Title,
    pub identity: Identity,
    pub outcome: Outcome,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "called {} / calling {}: {}",
            self.called, self.calling, self.outcome
        )
    }
}

/// Counts from one C-FIND: never the matches themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCounts {
    pub status: u16,
    pub matches: u64,
    pub related_instances: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindResult {
    /// What was asked, e.g. "STUDY level, universal".
    pub query: String,
    pub outcome: Result<FindCounts, String>,
}

/// What a C-GET of one instance brought: counted as it arrived, then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieval {
    /// The final status.
    pub status: u16,
    /// Data sets received in full.
    pub instances: u64,
    pub bytes: u64,
}

/// What the services of an association with services did for the scanner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceResults {
    pub called: String,
    pub calling: String,
    pub services: BTreeSet<Service>,
    /// C-ECHO status, or why there was none.
    pub echo: Option<Result<u16, String>>,
    pub finds: Vec<FindResult>,
    /// Status of a C-GET of a made-up study.
    pub get_nothing: Option<Result<u16, String>>,
    /// Status of a C-MOVE of a made-up study to a made-up destination.
    pub move_unknown_destination: Option<Result<u16, String>>,
    /// `--intrusive` only, after a C-FIND returned matches: a C-GET of one instance it found.
    pub retrieval: Option<Result<Retrieval, String>>,
    /// `--intrusive` only: C-STORE of a synthetic object, then of a different object with the
    /// same SOP Instance UID.
    pub store: Option<Result<u16, String>>,
    pub overwrite: Option<Result<u16, String>>,
}

/// Everything seen on a DICOM target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DimseObservations {
    /// The association was negotiated over plain TCP.
    pub plaintext: bool,
    pub probes: Vec<Probe>,
    pub services: Option<ServiceResults>,
}

fn status(s: &Result<u16, String>) -> String {
    match s {
        Ok(code) => format!("status {code:04X}H"),
        Err(e) => e.clone(),
    }
}

/// A retrieval answered with success or warning: the request was served, not refused.
fn served(s: &Result<u16, String>) -> bool {
    matches!(s, Ok(code) if *code == 0 || *code == 0xB000)
}

/// C-STORE success or warning (PS3.4 B.2.3): the object was taken.
fn stored(s: &Option<Result<u16, String>>) -> bool {
    matches!(s, Some(Ok(code)) if *code == 0 || (0xB000..=0xBFFF).contains(code) || *code == 0x0107 || *code == 0x0116)
}

pub fn classify_dimse(obs: &DimseObservations) -> Vec<Finding> {
    let mut out = Vec::new();
    let plain: Vec<&Probe> = obs
        .probes
        .iter()
        .filter(|p| p.identity == Identity::None)
        .collect();
    if obs.plaintext {
        if let Some(first) = obs.probes.iter().find(|p| p.outcome.is_answer()) {
            out.push(Check::DimsePlaintext.found(format!(
                "an A-ASSOCIATE-RQ over plain TCP was answered ({})",
                first.outcome
            )));
        }
    }
    if let Some(Outcome::Accepted { implementation, .. }) = obs
        .probes
        .iter()
        .map(|p| &p.outcome)
        .find(|o| matches!(o, Outcome::Accepted { .. }))
    {
        out.push(Check::DicomFingerprint.found(format!(
            "implementation class UID {}, version name {}, max PDU {}",
            implementation.class_uid.as_deref().unwrap_or("(none)"),
            implementation.version_name.as_deref().unwrap_or("(none)"),
            implementation.max_pdu
        )));
    }

    let with_services = |p: &&&Probe| p.outcome.has_services();
    let first_where = |pred: &dyn Fn(&Probe) -> bool| {
        plain
            .iter()
            .filter(with_services)
            .find(|p| pred(p))
            .copied()
    };
    let any_called = first_where(&|p| p.called.kind == TitleKind::Random);
    if let Some(p) = any_called {
        out.push(Check::DicomAnyCalledAe.found(p.to_string()));
    } else if let Some(p) = first_where(&|p| p.called.kind == TitleKind::WellKnown) {
        out.push(Check::DicomDefaultCalledAe.found(p.to_string()));
    }
    let any_calling = first_where(&|p| p.calling.kind == TitleKind::Random);
    if let Some(p) = any_calling {
        out.push(Check::DicomAnyCallingAe.found(p.to_string()));
    } else if let Some(p) = first_where(&|p| p.calling.kind != TitleKind::Random) {
        out.push(Check::DicomGuessableCallingAe.found(p.to_string()));
    }
    if !plain.is_empty() && !plain.iter().any(|p| p.outcome.has_services()) {
        let empty = plain
            .iter()
            .find(|p| matches!(p.outcome, Outcome::Accepted { .. }));
        match empty {
            Some(p) => out.push(Check::DicomNoService.found(p.to_string())),
            None => {
                let answered: BTreeSet<String> = plain
                    .iter()
                    .filter(|p| p.outcome.is_answer())
                    .map(|p| p.outcome.to_string())
                    .collect();
                out.push(Check::DicomClosed.found(format!(
                    "{} association attempts; answers: {}",
                    obs.probes.len(),
                    if answered.is_empty() {
                        String::from("none")
                    } else {
                        list(answered)
                    }
                )));
            }
        }
    }

    let rejections: BTreeSet<Rejection> = plain
        .iter()
        .filter_map(|p| match p.outcome {
            Outcome::Rejected(rj) => Some(rj),
            _ => None,
        })
        .collect();
    if rejections.len() > 1 || rejections.iter().any(|rj| rj.blames_calling_title()) {
        let examples: Vec<String> = rejections
            .iter()
            .filter_map(|rj| {
                plain
                    .iter()
                    .find(|p| p.outcome == Outcome::Rejected(*rj))
                    .map(|p| p.to_string())
            })
            .collect();
        out.push(Check::DicomRejectOracle.found(examples.join("; ")));
    }
    if let Some(answered) = obs.probes.iter().position(|p| p.outcome.is_answer()) {
        let silent = obs.probes[answered..]
            .iter()
            .filter(|p| p.outcome == Outcome::NoAnswer)
            .count();
        if silent > 0 {
            out.push(Check::DicomBackoff.found(format!(
                "{silent} of {} association attempts went unanswered after the server had answered",
                obs.probes.len()
            )));
        }
    }

    for p in obs.probes.iter().filter(|p| p.outcome.has_services()) {
        let check = match p.identity {
            Identity::None => continue,
            Identity::UsernameOnly => Check::DicomIdentityUsernameOnly,
            Identity::WrongPasscode => Check::DicomIdentityPasscodeIgnored,
        };
        let without = plain
            .iter()
            .find(|q| q.called == p.called && q.calling == p.calling);
        if let Some(without) = without.filter(|q| !q.outcome.has_services()) {
            out.push(check.found(format!(
                "without user identity: {}; with {:?}: {}",
                without.outcome, p.identity, p.outcome
            )));
        }
    }

    if let Some(s) = &obs.services {
        classify_services(s, &mut out);
    }
    out
}

fn classify_services(s: &ServiceResults, out: &mut Vec<Finding>) {
    let pair = format!("as calling {} to called {}", s.calling, s.called);
    if let Some(Ok(0)) = s.echo {
        out.push(Check::DicomEchoOpen.found(format!("C-ECHO {pair}: status 0000H")));
    }
    if s.finds
        .iter()
        .any(|f| f.outcome.as_ref().is_ok_and(|c| c.status == 0))
    {
        let summary = list(s.finds.iter().map(|f| match &f.outcome {
            Ok(c) => format!(
                "{}: {} matches, {} related instances, final status {:04X}H",
                f.query, c.matches, c.related_instances, c.status
            ),
            Err(e) => format!("{}: {e}", f.query),
        }));
        let exposed = s
            .finds
            .iter()
            .any(|f| matches!(&f.outcome, Ok(c) if c.matches > 0));
        let check = if exposed {
            Check::DicomFindExposesData
        } else {
            Check::DicomFindOpen
        };
        out.push(check.found(format!("C-FIND {pair}: {summary}")));
    }
    // Negotiating a retrieval context proves little: many servers refuse the command itself.
    // What counts is whether a request for a study that does not exist was served (success,
    // zero sub-operations) rather than refused.
    let get: Vec<&Service> = s.services.iter().filter(|x| x.is_get()).collect();
    if let Some(answer) = s.get_nothing.as_ref().filter(|r| served(r)) {
        out.push(Check::DicomGetOpen.found(format!(
            "{} negotiated {pair}; a C-GET of a made-up study got {} (nothing retrieved)",
            list(get),
            status(answer)
        )));
    }
    if let Some(Ok(r)) = &s.retrieval {
        if r.instances > 0 {
            out.push(Check::DicomGetRetrievesData.found(format!(
                "a C-GET {pair} of one instance the C-FIND had listed brought {} data set(s), \
                 {} bytes, received and discarded (final status {:04X}H)",
                r.instances, r.bytes, r.status
            )));
        }
    }
    let moves: Vec<&Service> = s.services.iter().filter(|x| x.is_move()).collect();
    if let Some(answer) = s.move_unknown_destination.as_ref().filter(|r| served(r)) {
        out.push(Check::DicomMoveOpen.found(format!(
            "{} negotiated {pair}; a C-MOVE of a made-up study to a made-up AE title got {} \
             instead of A801H (move destination unknown)",
            list(moves),
            status(answer)
        )));
    }
    if s.services.contains(&Service::Storage) {
        if stored(&s.store) {
            out.push(Check::DicomStoreAccepted.found(format!(
                "C-STORE of a synthetic object {pair}: {}",
                s.store.as_ref().map(status).unwrap_or_default()
            )));
        } else {
            let tried = s
                .store
                .as_ref()
                .map(|r| format!("; the C-STORE of a synthetic object got {}", status(r)))
                .unwrap_or_else(|| String::from(" (not written to: no --intrusive)"));
            out.push(
                Check::DicomStoreOpen.found(format!("storage contexts accepted {pair}{tried}")),
            );
        }
        if stored(&s.overwrite) {
            out.push(Check::DicomStoreOverwrite.found(format!(
                "a different object under the same SOP Instance UID got {}",
                s.overwrite.as_ref().map(status).unwrap_or_default()
            )));
        }
    }
}

/// Whether the server asked for, and insisted on, a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertPolicy {
    /// No CertificateRequest in the handshake.
    NotRequested,
    /// Requested, but the server answered without one.
    Optional,
    /// Requested, and the connection failed without one.
    Required,
}

/// The server certificate as seen during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    /// Inside its validity period now.
    pub dates_valid: bool,
    pub self_signed: bool,
    /// Its subjectAltName covers the host scanned.
    pub name_matches: bool,
    /// Verification against `--ca`: `None` when no CA was given.
    pub trust: Option<Result<(), String>>,
}

/// Everything seen of a TLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsObservations {
    /// Protocol versions the server completed a handshake with, e.g. "TLSv1_3".
    pub versions: Vec<(String, String)>,
    pub tls13: bool,
    pub cert: Option<CertSummary>,
    /// For DICOM: whether a client certificate is needed (`None` for HTTPS, where it is not
    /// expected).
    pub client_cert: Option<ClientCertPolicy>,
    /// The offers of what BCP 195 forbids or discourages, one connection each.
    pub legacy: Vec<LegacyProbe>,
}

/// One ClientHello offering what rustls cannot: an old version, or TLS 1.2 with one group of
/// suites outside RFC 9325's recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyOffer {
    /// TLS 1.0 with every suite below.
    Tls10,
    /// TLS 1.1 with every suite below.
    Tls11,
    /// TLS 1.2 with NULL, export, RC4, DES, 3DES and anonymous suites.
    Tls12Broken,
    /// TLS 1.2 with RSA key transport suites (no forward secrecy), CBC and GCM.
    Tls12StaticRsa,
    /// TLS 1.2 with ECDHE and DHE suites in CBC mode (forward secret, not AEAD).
    Tls12Cbc,
}

impl LegacyOffer {
    fn label(self) -> &'static str {
        match self {
            LegacyOffer::Tls10 => "TLS 1.0",
            LegacyOffer::Tls11 => "TLS 1.1",
            LegacyOffer::Tls12Broken => "TLS 1.2 with NULL/export/RC4/DES/3DES/anonymous suites",
            LegacyOffer::Tls12StaticRsa => "TLS 1.2 with RSA key transport suites",
            LegacyOffer::Tls12Cbc => "TLS 1.2 with ECDHE/DHE CBC suites",
        }
    }
}

/// What is wrong with a suite a server chose, in RFC 9325's terms (§4.1, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteKind {
    /// Must not be negotiated at all: no encryption, under 128 bits, RC4, or no server
    /// authentication. The reason, e.g. "RC4".
    Broken(&'static str),
    /// RSA key transport: whoever gets the server's key later reads recorded traffic.
    StaticRsa { aead: bool },
    /// Forward secret, but MAC-then-encrypt CBC rather than AEAD.
    CbcForwardSecret,
}

/// How the server answered one legacy offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyOutcome {
    /// A ServerHello for the version offered, choosing this suite among those offered.
    Accepted {
        suite: &'static str,
        kind: SuiteKind,
    },
    /// An alert, a closed connection, or a ServerHello that does not take the offer.
    Refused(String),
    /// No answer in time, no connection, or an answer that is no TLS: nothing is known.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProbe {
    pub offer: LegacyOffer,
    pub outcome: LegacyOutcome,
}

/// Findings from the legacy offers, and the line they add to `tls-info`. TLS 1.0/1.1 are
/// judged on the version alone (RFC 8996, RFC 9325 §3.1.1), plus the suite if it is broken;
/// the TLS 1.2 offers on the suite chosen.
fn classify_legacy(probes: &[LegacyProbe], out: &mut Vec<Finding>) -> String {
    let mut evidence: Vec<(Check, String)> = Vec::new();
    let mut info = Vec::new();
    for probe in probes {
        let label = probe.offer.label();
        let (suite, kind) = match &probe.outcome {
            LegacyOutcome::Accepted { suite, kind } => (*suite, *kind),
            LegacyOutcome::Refused(why) => {
                info.push(format!("{label} refused ({why})"));
                continue;
            }
            LegacyOutcome::Unknown(why) => {
                info.push(format!("{label} not determined ({why})"));
                continue;
            }
        };
        info.push(format!("{label} accepted ({suite})"));
        let legacy_version = matches!(probe.offer, LegacyOffer::Tls10 | LegacyOffer::Tls11);
        if legacy_version {
            evidence.push((
                Check::TlsLegacyVersion,
                format!("{label} accepted, server chose {suite}"),
            ));
        }
        match kind {
            SuiteKind::Broken(why) => evidence.push((
                Check::TlsBrokenSuite,
                format!("{label}: server chose {suite} ({why})"),
            )),
            _ if legacy_version => {}
            SuiteKind::StaticRsa { aead } => {
                evidence.push((
                    Check::TlsNoForwardSecrecy,
                    format!("TLS 1.2: server chose {suite}"),
                ));
                if !aead {
                    evidence.push((
                        Check::TlsNonAeadSuite,
                        format!("TLS 1.2: server chose {suite}"),
                    ));
                }
            }
            SuiteKind::CbcForwardSecret => evidence.push((
                Check::TlsNonAeadSuite,
                format!("TLS 1.2: server chose {suite}"),
            )),
        }
    }
    for check in [
        Check::TlsLegacyVersion,
        Check::TlsBrokenSuite,
        Check::TlsNoForwardSecrecy,
        Check::TlsNonAeadSuite,
    ] {
        let lines: Vec<&str> = evidence
            .iter()
            .filter(|(c, _)| *c == check)
            .map(|(_, e)| e.as_str())
            .collect();
        if !lines.is_empty() {
            out.push(check.found(lines.join("; ")));
        }
    }
    if info.is_empty() {
        String::new()
    } else {
        format!("; {}", info.join(", "))
    }
}

pub fn classify_tls(obs: &TlsObservations) -> Vec<Finding> {
    let mut out = Vec::new();
    let versions = list(obs.versions.iter().map(|(v, s)| format!("{v} with {s}")));
    let cert = obs
        .cert
        .as_ref()
        .map(|c| {
            format!(
                "; certificate subject {}, issuer {}, valid until {}",
                c.subject, c.issuer, c.not_after
            )
        })
        .unwrap_or_default();
    let legacy = classify_legacy(&obs.legacy, &mut out);
    if obs.versions.is_empty() {
        out.push(Check::TlsInfo.found(format!(
            "no TLS 1.2 or 1.3 handshake with an AEAD suite and forward secrecy completed{legacy}"
        )));
        out.push(
            Check::TlsNoTls13.found(
                "neither TLS 1.3 nor TLS 1.2 with an AEAD suite and forward secrecy completed",
            ),
        );
    } else {
        out.push(Check::TlsInfo.found(format!("handshakes completed: {versions}{cert}{legacy}")));
        if !obs.tls13 {
            out.push(Check::TlsNoTls13.found(format!("only {versions}")));
        }
    }
    if let Some(c) = &obs.cert {
        if !c.dates_valid {
            out.push(Check::TlsCertDates.found(format!("valid until {}", c.not_after)));
        }
        if !c.name_matches {
            out.push(Check::TlsCertNameMismatch.found(format!("subject {}", c.subject)));
        }
        if let Some(Err(e)) = &c.trust {
            out.push(Check::TlsCertUntrusted.found(e.clone()));
        }
        if c.self_signed && c.trust.is_none() {
            out.push(Check::TlsCertSelfSigned.found(format!("subject and issuer {}", c.subject)));
        }
    }
    match obs.client_cert {
        Some(ClientCertPolicy::NotRequested) => out.push(
            Check::TlsNoClientCert
                .found("the handshake sent no CertificateRequest; the association was answered"),
        ),
        Some(ClientCertPolicy::Optional) => out
            .push(Check::TlsNoClientCert.found(
                "a certificate was requested, but the association was answered without one",
            )),
        Some(ClientCertPolicy::Required) => out
            .push(Check::TlsClientCertRequired.found(
                "without a client certificate the connection ended before any DICOM answer",
            )),
        None => {}
    }
    out
}

/// What a web probe was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebProbe {
    /// `/` — confirms HTTP and reads the Server header.
    Root,
    /// QIDO-RS `/studies?limit=1` under a root.
    Qido(String),
    /// Orthanc's `/system`.
    OrthancSystem,
    /// Orthanc's `/patients`.
    OrthancPatients,
    /// Orthanc's `/system` with `orthanc:orthanc`.
    DefaultCredentials,
    /// Orthanc's `/patients` with `orthanc:orthanc`.
    DefaultCredentialsPatients,
    /// A path nobody serves, with WADO-URI's query: how the server answers anything unknown.
    UnknownPath,
    /// WADO-URI at a path, for made-up UIDs.
    WadoUri(String),
    /// `--intrusive`: STOW-RS of the probe object (its study UID given) under a root.
    Stow { root: String, study: String },
    /// `--intrusive`: WADO-RS of the stored probe object under a root.
    WadoRsProbe(String),
    /// `--intrusive`: WADO-URI of the stored probe object at a path.
    WadoUriProbe(String),
}

/// A DICOM Part 10 object found in a body: the body's size and how the preamble starts, nothing
/// else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part10 {
    pub body_bytes: usize,
    pub mz_preamble: bool,
}

/// How a response answered an `Origin` the scanner made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    None,
    Reflected,
    Wildcard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAnswer {
    pub probe: WebProbe,
    pub status: u16,
    /// For a JSON array answer, its length (the elements are dropped unread).
    pub results: Option<usize>,
    pub cors: Cors,
    pub server: Option<String>,
    /// Orthanc's version from `/system`.
    pub version: Option<String>,
    /// For the probes that retrieve objects, the Part 10 object in the body.
    pub part10: Option<Part10>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebObservations {
    pub plain_http: bool,
    pub answers: Vec<WebAnswer>,
}

pub(crate) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

pub fn classify_web(obs: &WebObservations) -> Vec<Finding> {
    let mut out = Vec::new();
    if obs.plain_http {
        out.push(Check::WebPlainHttp.found("the server answered HTTP without TLS"));
    }
    let products: BTreeSet<String> = obs
        .answers
        .iter()
        .flat_map(|a| {
            [
                a.server.clone(),
                a.version.as_ref().map(|v| format!("Orthanc {v}")),
            ]
        })
        .flatten()
        .collect();
    if !products.is_empty() {
        out.push(Check::WebFingerprint.found(list(products)));
    }
    let mut exposed = Vec::new();
    let mut qido_open = Vec::new();
    let mut rest_open = Vec::new();
    let mut defaults = Vec::new();
    let mut cors = Vec::new();
    let mut wado_open = Vec::new();
    let mut wado_data = Vec::new();
    let mut stow = Vec::new();
    let mut preamble_kept = Vec::new();
    let mut refused = 0;
    // Many servers answer every unknown path alike (404, or a page): a WADO-URI answer means
    // something only where it differs from that.
    let unknown_path = obs
        .answers
        .iter()
        .find(|a| a.probe == WebProbe::UnknownPath)
        .map(|a| a.status);
    for a in &obs.answers {
        let refusal = matches!(a.status, 401 | 403);
        if refusal {
            refused += 1;
        }
        if a.cors == Cors::Reflected || (a.cors == Cors::Wildcard && is_success(a.status)) {
            cors.push(format!("{} ({:?})", describe(&a.probe), a.cors));
        }
        if let WebProbe::WadoUri(_) = a.probe {
            match a.part10.filter(|_| is_success(a.status)) {
                Some(p) => wado_data.push(retrieved(a, p)),
                None if !refusal && unknown_path != Some(a.status) => {
                    wado_open.push(format!(
                        "{}: status {} where an unknown path got {}",
                        describe(&a.probe),
                        a.status,
                        unknown_path.map_or_else(|| String::from("no answer"), |s| s.to_string())
                    ));
                }
                None => {}
            }
            continue;
        }
        if !is_success(a.status) {
            continue;
        }
        let count = a.results.unwrap_or(0);
        match &a.probe {
            WebProbe::Root => {}
            WebProbe::Qido(_) => {
                if count > 0 {
                    exposed.push(format!("{}: {count} result(s)", describe(&a.probe)));
                } else if a.results.is_some() || a.status == 204 {
                    qido_open.push(format!(
                        "{}: status {}, no results",
                        describe(&a.probe),
                        a.status
                    ));
                }
            }
            // Only an answer that parsed as Orthanc's counts: many servers answer 200 to anything.
            WebProbe::OrthancSystem => {
                if let Some(v) = &a.version {
                    rest_open.push(format!("GET /system: status {}, Orthanc {v}", a.status));
                }
            }
            WebProbe::OrthancPatients | WebProbe::DefaultCredentialsPatients
                if a.results.is_some() =>
            {
                if count > 0 {
                    exposed.push(format!("{}: {count} patient(s)", describe(&a.probe)));
                } else if a.probe == WebProbe::OrthancPatients {
                    rest_open.push(format!("GET /patients: status {}, empty", a.status));
                }
            }
            WebProbe::DefaultCredentials if a.version.is_some() => {
                defaults.push(format!(
                    "orthanc:orthanc accepted on /system (status {})",
                    a.status
                ));
            }
            WebProbe::WadoUriProbe(_) => {
                if let Some(p) = a.part10 {
                    wado_data.push(retrieved(a, p));
                }
            }
            WebProbe::Stow { study, .. } => stow.push(format!(
                "{}: status {} for a synthetic object (patient WARD^AUDIT^PROBE, study {study}, \
                 its 128-byte preamble starting with MZ); ward audit cannot delete it",
                describe(&a.probe),
                a.status
            )),
            WebProbe::WadoRsProbe(_) => {
                if let Some(p) = a.part10.filter(|p| p.mz_preamble) {
                    preamble_kept.push(format!(
                        "{}: the probe object came back with the MZ preamble it was sent with \
                         ({} bytes)",
                        describe(&a.probe),
                        p.body_bytes
                    ));
                }
            }
            WebProbe::OrthancPatients
            | WebProbe::DefaultCredentialsPatients
            | WebProbe::DefaultCredentials
            | WebProbe::UnknownPath
            | WebProbe::WadoUri(_) => {}
        }
    }
    for (check, items) in [
        (Check::WebPatientDataExposed, &exposed),
        (Check::WebQidoOpen, &qido_open),
        (Check::WebOrthancRestOpen, &rest_open),
        (Check::WebDefaultCredentials, &defaults),
        (Check::WebCorsAnyOrigin, &cors),
        (Check::WebWadoUriRetrievesData, &wado_data),
        (Check::WebWadoUriOpen, &wado_open),
        (Check::WebStowAccepted, &stow),
        (Check::WebStowPreambleKept, &preamble_kept),
    ] {
        if !items.is_empty() {
            out.push(check.found(items.join("; ")));
        }
    }
    let open = [
        &exposed, &qido_open, &rest_open, &defaults, &wado_open, &wado_data, &stow,
    ];
    if open.iter().all(|items| items.is_empty()) && refused > 0 {
        out.push(Check::WebAuthRequired.found(format!(
            "{refused} request(s) answered 401/403 without credentials"
        )));
    }
    out
}

fn retrieved(a: &WebAnswer, p: Part10) -> String {
    format!(
        "{}: status {}, a DICOM object in {} bytes",
        describe(&a.probe),
        a.status,
        p.body_bytes
    )
}

fn describe(probe: &WebProbe) -> String {
    match probe {
        WebProbe::Root => String::from("GET /"),
        WebProbe::Qido(root) => format!("GET {root}/studies?limit=1"),
        WebProbe::OrthancSystem => String::from("GET /system"),
        WebProbe::OrthancPatients => String::from("GET /patients"),
        WebProbe::DefaultCredentials => String::from("GET /system as orthanc:orthanc"),
        WebProbe::DefaultCredentialsPatients => String::from("GET /patients as orthanc:orthanc"),
        WebProbe::UnknownPath => String::from("GET of a made-up path"),
        WebProbe::WadoUri(path) => format!("GET {path}?requestType=WADO (made-up UIDs)"),
        WebProbe::Stow { root, .. } => format!("POST {root}/studies"),
        WebProbe::WadoRsProbe(root) => format!("GET {root}/studies/…/instances/… (the probe)"),
        WebProbe::WadoUriProbe(path) => format!("GET {path}?requestType=WADO (the probe)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Severity;

    fn ids(findings: &[Finding]) -> BTreeSet<&'static str> {
        findings.iter().map(|f| f.id).collect()
    }

    fn title(text: &str, kind: TitleKind) -> Title {
        Title {
            text: text.to_owned(),
            kind,
        }
    }

    fn random(text: &str) -> Title {
        title(text, TitleKind::Random)
    }

    fn known(text: &str) -> Title {
        title(text, TitleKind::WellKnown)
    }

    fn accepted(services: &[Service]) -> Outcome {
        Outcome::Accepted {
            services: services.iter().copied().collect(),
            rejected_contexts: 10 - services.len(),
            implementation: Implementation {
                class_uid: Some("1.2.3".into()),
                version_name: Some("TEST_1".into()),
                max_pdu: 16384,
            },
        }
    }

    fn rejected(source: u8, reason: u8) -> Outcome {
        Outcome::Rejected(Rejection {
            result: 1,
            source,
            reason,
        })
    }

    fn probe(called: Title, calling: Title, outcome: Outcome) -> Probe {
        Probe {
            called,
            calling,
            identity: Identity::None,
            outcome,
        }
    }

    fn dimse(probes: Vec<Probe>, services: Option<ServiceResults>) -> BTreeSet<&'static str> {
        ids(&classify_dimse(&DimseObservations {
            plaintext: true,
            probes,
            services,
        }))
    }

    #[test]
    fn accept_any_storage_server() {
        let open = [Service::Verification, Service::Storage];
        let services = ServiceResults {
            services: open.iter().copied().collect(),
            echo: Some(Ok(0)),
            ..ServiceResults::default()
        };
        assert_eq!(
            dimse(
                vec![probe(random("ZA"), random("ZB"), accepted(&open))],
                Some(services)
            ),
            BTreeSet::from([
                "dimse-plaintext",
                "dicom-fingerprint",
                "dicom-any-called-ae",
                "dicom-any-calling-ae",
                "dicom-echo-open",
                "dicom-store-open",
            ])
        );
    }

    #[test]
    fn an_association_without_services_is_not_any_ae_accepted() {
        let probes = vec![
            probe(random("ZA"), random("ZB"), accepted(&[])),
            probe(known("ORTHANC"), random("ZB"), accepted(&[])),
            probe(random("ZA"), known("STORESCU"), accepted(&[])),
        ];
        let found = dimse(probes, None);
        assert_eq!(
            found,
            BTreeSet::from(["dimse-plaintext", "dicom-fingerprint", "dicom-no-service"])
        );
    }

    #[test]
    fn uniform_rejections_then_silence_is_closed_with_backoff() {
        let probes = vec![
            probe(random("ZA"), random("ZB"), rejected(1, 1)),
            probe(known("ORTHANC"), random("ZB"), rejected(1, 1)),
            probe(known("PACS"), random("ZB"), Outcome::NoAnswer),
        ];
        assert_eq!(
            dimse(probes, None),
            BTreeSet::from(["dimse-plaintext", "dicom-closed", "dicom-backoff"])
        );
    }

    #[test]
    fn differing_or_naming_rejections_are_an_oracle() {
        let probes = vec![
            probe(random("ZA"), random("ZB"), rejected(1, 7)),
            probe(known("DCMQRSCP"), random("ZB"), rejected(1, 3)),
        ];
        assert!(dimse(probes, None).contains("dicom-reject-oracle"));
        let naming = vec![probe(random("ZA"), random("ZB"), rejected(1, 3))];
        assert!(dimse(naming, None).contains("dicom-reject-oracle"));
        let uniform_called = vec![
            probe(random("ZA"), random("ZB"), rejected(1, 7)),
            probe(known("DCMQRSCP"), random("ZB"), rejected(1, 7)),
        ];
        assert!(!dimse(uniform_called, None).contains("dicom-reject-oracle"));
        let uniform = vec![
            probe(random("ZA"), random("ZB"), rejected(1, 1)),
            probe(known("PACS"), random("ZB"), rejected(1, 1)),
        ];
        assert!(!dimse(uniform, None).contains("dicom-reject-oracle"));
    }

    #[test]
    fn a_checked_called_title_and_a_guessed_calling_title() {
        let find = [Service::FindStudy];
        let probes = vec![
            probe(random("ZA"), random("ZB"), rejected(1, 7)),
            probe(known("QRSCP"), random("ZB"), rejected(1, 3)),
            probe(known("QRSCP"), known("FINDSCU"), accepted(&find)),
        ];
        let services = ServiceResults {
            services: find.iter().copied().collect(),
            finds: vec![FindResult {
                query: "Study Root STUDY level, universal keys".into(),
                outcome: Ok(FindCounts {
                    status: 0,
                    matches: 0,
                    related_instances: 0,
                }),
            }],
            ..ServiceResults::default()
        };
        assert_eq!(
            dimse(probes, Some(services)),
            BTreeSet::from([
                "dimse-plaintext",
                "dicom-fingerprint",
                "dicom-default-called-ae",
                "dicom-guessable-calling-ae",
                "dicom-reject-oracle",
                "dicom-find-open",
            ])
        );
    }

    #[test]
    fn matches_are_critical_and_only_counted() {
        let services = ServiceResults {
            services: BTreeSet::from([Service::FindPatient, Service::GetStudy, Service::MoveStudy]),
            finds: vec![FindResult {
                query: "Patient Root PATIENT level, PatientName=*".into(),
                outcome: Ok(FindCounts {
                    status: 0,
                    matches: 2,
                    related_instances: 5,
                }),
            }],
            get_nothing: Some(Ok(0)),
            move_unknown_destination: Some(Ok(0)),
            ..ServiceResults::default()
        };
        let findings = classify_dimse(&DimseObservations {
            plaintext: false,
            probes: Vec::new(),
            services: Some(services),
        });
        assert_eq!(
            ids(&findings),
            BTreeSet::from([
                "dicom-find-exposes-data",
                "dicom-get-open",
                "dicom-move-open"
            ])
        );
        let find = findings
            .iter()
            .find(|f| f.id == "dicom-find-exposes-data")
            .unwrap();
        assert_eq!(find.severity, crate::Severity::Critical);
        assert!(find.evidence.contains("2 matches, 5 related instances"));
        // Refused retrievals are not exposures, whatever was negotiated.
        let refused = ServiceResults {
            services: BTreeSet::from([Service::FindStudy, Service::GetStudy, Service::MoveStudy]),
            finds: vec![FindResult {
                query: "Study Root STUDY level, universal keys".into(),
                outcome: Ok(FindCounts {
                    status: 0xC000,
                    matches: 0,
                    related_instances: 0,
                }),
            }],
            get_nothing: Some(Ok(0xA702)),
            move_unknown_destination: Some(Ok(0xA801)),
            ..ServiceResults::default()
        };
        let findings = classify_dimse(&DimseObservations {
            plaintext: false,
            probes: Vec::new(),
            services: Some(refused),
        });
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn an_instance_retrieved_is_critical_and_only_counted() {
        let with_retrieval = |retrieval| ServiceResults {
            services: BTreeSet::from([Service::FindStudy, Service::GetStudy]),
            get_nothing: Some(Ok(0xA702)),
            retrieval,
            ..ServiceResults::default()
        };
        let findings = classify_dimse(&DimseObservations {
            plaintext: false,
            probes: Vec::new(),
            services: Some(with_retrieval(Some(Ok(Retrieval {
                status: 0,
                instances: 1,
                bytes: 4242,
            })))),
        });
        assert_eq!(ids(&findings), BTreeSet::from(["dicom-get-retrieves-data"]));
        assert_eq!(findings[0].severity, crate::Severity::Critical);
        assert!(findings[0].evidence.contains("1 data set(s), 4242 bytes"));
        // A retrieval that brought nothing, or failed, proves nothing.
        for retrieval in [
            Some(Ok(Retrieval {
                status: 0xA702,
                instances: 0,
                bytes: 0,
            })),
            Some(Err("timed out".into())),
            None,
        ] {
            let findings = classify_dimse(&DimseObservations {
                plaintext: false,
                probes: Vec::new(),
                services: Some(with_retrieval(retrieval)),
            });
            assert!(findings.is_empty(), "{findings:?}");
        }
    }

    #[test]
    fn identity_accepted_where_none_was_refused() {
        let find = [Service::FindStudy];
        let mut username = probe(random("ZA"), random("ZB"), accepted(&find));
        username.identity = Identity::UsernameOnly;
        let mut passcode = probe(random("ZA"), random("ZB"), rejected(1, 1));
        passcode.identity = Identity::WrongPasscode;
        let found = dimse(
            vec![
                probe(random("ZA"), random("ZB"), rejected(1, 1)),
                username,
                passcode,
            ],
            None,
        );
        assert!(found.contains("dicom-identity-username-only"), "{found:?}");
        assert!(!found.contains("dicom-identity-passcode-ignored"));
        // Identity probes are not association policy: nothing is "any AE".
        assert!(!found.contains("dicom-any-calling-ae"));
    }

    #[test]
    fn intrusive_writes() {
        let services = ServiceResults {
            services: BTreeSet::from([Service::Storage]),
            store: Some(Ok(0)),
            overwrite: Some(Ok(0)),
            ..ServiceResults::default()
        };
        let findings = classify_dimse(&DimseObservations {
            plaintext: false,
            probes: Vec::new(),
            services: Some(services),
        });
        assert_eq!(
            ids(&findings),
            BTreeSet::from(["dicom-store-accepted", "dicom-store-overwrite"])
        );
        let refused = ServiceResults {
            services: BTreeSet::from([Service::Storage]),
            store: Some(Ok(0xA700)),
            ..ServiceResults::default()
        };
        let findings = classify_dimse(&DimseObservations {
            plaintext: false,
            probes: Vec::new(),
            services: Some(refused),
        });
        assert_eq!(ids(&findings), BTreeSet::from(["dicom-store-open"]));
    }

    fn cert() -> CertSummary {
        CertSummary {
            subject: "CN=pacs".into(),
            issuer: "CN=site CA".into(),
            not_after: "2030".into(),
            dates_valid: true,
            self_signed: false,
            name_matches: true,
            trust: None,
        }
    }

    #[test]
    fn tls_verdicts() {
        let good = TlsObservations {
            versions: vec![("TLS 1.3".into(), "TLS13_AES_256_GCM_SHA384".into())],
            tls13: true,
            cert: Some(cert()),
            client_cert: Some(ClientCertPolicy::Required),
            legacy: Vec::new(),
        };
        assert_eq!(
            ids(&classify_tls(&good)),
            BTreeSet::from(["tls-info", "tls-client-cert-required"])
        );
        let bad = TlsObservations {
            versions: vec![(
                "TLS 1.2".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            )],
            tls13: false,
            cert: Some(CertSummary {
                dates_valid: false,
                name_matches: false,
                self_signed: true,
                ..cert()
            }),
            client_cert: Some(ClientCertPolicy::Optional),
            legacy: Vec::new(),
        };
        assert_eq!(
            ids(&classify_tls(&bad)),
            BTreeSet::from([
                "tls-info",
                "tls-no-tls13",
                "tls-cert-dates",
                "tls-cert-name-mismatch",
                "tls-cert-self-signed",
                "tls-no-client-cert",
            ])
        );
        let untrusted = TlsObservations {
            cert: Some(CertSummary {
                trust: Some(Err("invalid peer certificate: UnknownIssuer".into())),
                self_signed: true,
                ..cert()
            }),
            client_cert: None,
            ..good
        };
        assert_eq!(
            ids(&classify_tls(&untrusted)),
            BTreeSet::from(["tls-info", "tls-cert-untrusted"])
        );
    }

    fn legacy(offer: LegacyOffer, outcome: LegacyOutcome) -> LegacyProbe {
        LegacyProbe { offer, outcome }
    }

    fn took(suite: &'static str, kind: SuiteKind) -> LegacyOutcome {
        LegacyOutcome::Accepted { suite, kind }
    }

    #[test]
    fn legacy_tls_verdicts() {
        let refused = |why: &str| LegacyOutcome::Refused(why.into());
        let base = TlsObservations {
            versions: vec![("TLS 1.3".into(), "TLS13_AES_256_GCM_SHA384".into())],
            tls13: true,
            cert: Some(cert()),
            client_cert: None,
            legacy: vec![
                legacy(LegacyOffer::Tls10, refused("alert protocol_version")),
                legacy(LegacyOffer::Tls11, refused("connection closed")),
                legacy(LegacyOffer::Tls12Broken, refused("alert handshake_failure")),
                legacy(
                    LegacyOffer::Tls12StaticRsa,
                    LegacyOutcome::Unknown("no answer within 5s".into()),
                ),
                legacy(LegacyOffer::Tls12Cbc, refused("alert handshake_failure")),
            ],
        };
        // Everything refused: only the information line says so.
        let findings = classify_tls(&base);
        assert_eq!(ids(&findings), BTreeSet::from(["tls-info"]));
        let info = &findings[0].evidence;
        assert!(
            info.contains("TLS 1.0 refused (alert protocol_version), TLS 1.1 refused"),
            "{info}"
        );
        assert!(info.contains("not determined (no answer"), "{info}");

        // DCMTK's --profile-bcp195 with an RSA key: TLS 1.0/1.1 with RSA key transport.
        let old = TlsObservations {
            legacy: vec![
                legacy(
                    LegacyOffer::Tls10,
                    took(
                        "TLS_RSA_WITH_AES_128_CBC_SHA",
                        SuiteKind::StaticRsa { aead: false },
                    ),
                ),
                legacy(
                    LegacyOffer::Tls11,
                    took("TLS_RSA_WITH_RC4_128_SHA", SuiteKind::Broken("RC4")),
                ),
                legacy(
                    LegacyOffer::Tls12StaticRsa,
                    took(
                        "TLS_RSA_WITH_AES_128_GCM_SHA256",
                        SuiteKind::StaticRsa { aead: true },
                    ),
                ),
            ],
            ..base.clone()
        };
        let findings = classify_tls(&old);
        assert_eq!(
            ids(&findings),
            BTreeSet::from([
                "tls-info",
                "tls-legacy-version",
                "tls-broken-suite",
                "tls-no-forward-secrecy",
            ])
        );
        let version = findings
            .iter()
            .find(|f| f.id == "tls-legacy-version")
            .unwrap();
        assert_eq!(version.severity, Severity::High);
        assert_eq!(
            version.evidence,
            "TLS 1.0 accepted, server chose TLS_RSA_WITH_AES_128_CBC_SHA; TLS 1.1 accepted, \
             server chose TLS_RSA_WITH_RC4_128_SHA"
        );

        // TLS 1.2 only, but with a CBC suite, and RSA key transport in CBC mode.
        let cbc = TlsObservations {
            legacy: vec![
                legacy(
                    LegacyOffer::Tls12Cbc,
                    took(
                        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
                        SuiteKind::CbcForwardSecret,
                    ),
                ),
                legacy(
                    LegacyOffer::Tls12StaticRsa,
                    took(
                        "TLS_RSA_WITH_AES_128_CBC_SHA",
                        SuiteKind::StaticRsa { aead: false },
                    ),
                ),
            ],
            ..base.clone()
        };
        let findings = classify_tls(&cbc);
        assert_eq!(
            ids(&findings),
            BTreeSet::from(["tls-info", "tls-non-aead-suite", "tls-no-forward-secrecy"])
        );
        assert!(findings.iter().all(|f| f.severity <= Severity::Medium));

        // Nothing but legacy TLS: no handshake of rustls completed, no certificate seen.
        let only_legacy = TlsObservations {
            versions: Vec::new(),
            tls13: false,
            cert: None,
            legacy: vec![legacy(
                LegacyOffer::Tls10,
                took(
                    "TLS_RSA_WITH_AES_128_CBC_SHA",
                    SuiteKind::StaticRsa { aead: false },
                ),
            )],
            ..base.clone()
        };
        let findings = classify_tls(&only_legacy);
        assert_eq!(
            ids(&findings),
            BTreeSet::from(["tls-info", "tls-no-tls13", "tls-legacy-version"])
        );
        assert!(
            findings
                .iter()
                .any(|f| f.evidence.starts_with("no TLS 1.2 or 1.3 handshake")),
            "{findings:?}"
        );

        let null = TlsObservations {
            legacy: vec![legacy(
                LegacyOffer::Tls12Broken,
                took(
                    "TLS_RSA_WITH_NULL_SHA",
                    SuiteKind::Broken("NULL encryption"),
                ),
            )],
            ..base
        };
        assert_eq!(
            ids(&classify_tls(&null)),
            BTreeSet::from(["tls-info", "tls-broken-suite"])
        );
    }

    fn web(probe: WebProbe, status: u16, results: Option<usize>) -> WebAnswer {
        WebAnswer {
            probe,
            status,
            results,
            cors: Cors::None,
            server: None,
            version: None,
            part10: None,
        }
    }

    #[test]
    fn orthanc_defaults_over_http() {
        let mut system = web(WebProbe::OrthancSystem, 200, None);
        system.version = Some("1.10.1".into());
        let obs = WebObservations {
            plain_http: true,
            answers: vec![
                web(WebProbe::Root, 200, None),
                web(WebProbe::Qido("/dicom-web".into()), 404, None),
                system,
                web(WebProbe::OrthancPatients, 200, Some(3)),
            ],
        };
        let findings = classify_web(&obs);
        assert_eq!(
            ids(&findings),
            BTreeSet::from([
                "web-plain-http",
                "web-fingerprint",
                "web-orthanc-rest-open",
                "web-patient-data-exposed",
            ])
        );
    }

    #[test]
    fn web_authentication_default_credentials_and_cors() {
        let mut reflected = web(WebProbe::Qido("/dicom-web".into()), 401, None);
        reflected.cors = Cors::Reflected;
        let closed = WebObservations {
            plain_http: false,
            answers: vec![
                web(WebProbe::Root, 401, None),
                reflected,
                web(WebProbe::OrthancSystem, 401, None),
            ],
        };
        assert_eq!(
            ids(&classify_web(&closed)),
            BTreeSet::from(["web-auth-required", "web-cors-any-origin"])
        );
        let mut defaults = web(WebProbe::DefaultCredentials, 200, None);
        defaults.version = Some("1.10.1".into());
        let weak = WebObservations {
            plain_http: false,
            answers: vec![
                web(WebProbe::OrthancSystem, 401, None),
                defaults,
                web(WebProbe::DefaultCredentialsPatients, 200, Some(0)),
                // An HTML page for every path is no QIDO answer.
                web(WebProbe::Qido("/rs".into()), 200, None),
            ],
        };
        assert_eq!(
            ids(&classify_web(&weak)),
            BTreeSet::from(["web-fingerprint", "web-default-credentials"])
        );
        let empty_qido = WebObservations {
            plain_http: false,
            answers: vec![web(WebProbe::Qido("/dicom-web".into()), 200, Some(0))],
        };
        assert_eq!(
            ids(&classify_web(&empty_qido)),
            BTreeSet::from(["web-qido-open"])
        );
    }

    fn wado_uri(status: u16) -> WebAnswer {
        web(WebProbe::WadoUri("/wado".into()), status, None)
    }

    #[test]
    fn wado_uri_is_judged_against_an_unknown_path() {
        let web_ids = |answers| {
            ids(&classify_web(&WebObservations {
                plain_http: false,
                answers,
            }))
        };
        // 404 for the object and for any path: nothing told apart, nothing reported.
        let unknown = || web(WebProbe::UnknownPath, 404, None);
        assert!(web_ids(vec![unknown(), wado_uri(404)]).is_empty());
        // An answer of its own (here: no such object) without credentials.
        assert_eq!(
            web_ids(vec![unknown(), wado_uri(400)]),
            BTreeSet::from(["web-wado-uri-open"])
        );
        // Refused where unknown paths are not: authentication is required.
        assert_eq!(
            web_ids(vec![unknown(), wado_uri(401)]),
            BTreeSet::from(["web-auth-required"])
        );
        // A page served for every path is no WADO-URI.
        assert!(web_ids(vec![web(WebProbe::UnknownPath, 200, None), wado_uri(200)]).is_empty());
        // DICOM in the answer: data is given away.
        let mut object = wado_uri(200);
        object.part10 = Some(Part10 {
            body_bytes: 600,
            mz_preamble: false,
        });
        assert_eq!(
            web_ids(vec![web(WebProbe::UnknownPath, 200, None), object]),
            BTreeSet::from(["web-wado-uri-retrieves-data"])
        );
    }

    #[test]
    fn stow_accepted_and_the_preamble_served_back() {
        let stow = |status| {
            web(
                WebProbe::Stow {
                    root: "/dicom-web".into(),
                    study: "2.25.1".into(),
                },
                status,
                None,
            )
        };
        let retrieved = |probe, mz_preamble| WebAnswer {
            part10: Some(Part10 {
                body_bytes: 700,
                mz_preamble,
            }),
            ..web(probe, 200, None)
        };
        let findings = classify_web(&WebObservations {
            plain_http: false,
            answers: vec![
                stow(200),
                retrieved(WebProbe::WadoRsProbe("/dicom-web".into()), true),
                retrieved(WebProbe::WadoUriProbe("/wado".into()), true),
            ],
        });
        assert_eq!(
            ids(&findings),
            BTreeSet::from([
                "web-stow-accepted",
                "web-stow-preamble-kept",
                "web-wado-uri-retrieves-data",
            ])
        );
        let stored = findings
            .iter()
            .find(|f| f.id == "web-stow-accepted")
            .unwrap();
        assert_eq!(stored.severity, crate::Severity::Critical);
        assert!(stored.evidence.contains("cannot delete it"));
        assert!(stored.evidence.contains("2.25.1"));
        // Preamble replaced: stored, but no polyglot comes back.
        let zeroed = classify_web(&WebObservations {
            plain_http: false,
            answers: vec![
                stow(200),
                retrieved(WebProbe::WadoRsProbe("/dicom-web".into()), false),
            ],
        });
        assert_eq!(ids(&zeroed), BTreeSet::from(["web-stow-accepted"]));
        // Refused without a token: authentication is required.
        let refused = classify_web(&WebObservations {
            plain_http: false,
            answers: vec![stow(401)],
        });
        assert_eq!(ids(&refused), BTreeSet::from(["web-auth-required"]));
    }
}
