//! The DICOM side of a scan: protocol confirmation, transport, association policy, user
//! identity, then what the services give an unknown peer. This module only observes; the
//! verdicts are made in `classify`.

use std::collections::BTreeSet;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJServiceProviderASCEReason,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason,
    AssociationRJSource, PresentationContextResultReason, UserIdentity, UserIdentityType,
};
use ward_dimse::negotiation::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, VERIFICATION};
use ward_dimse::{ClientAssociation, ClientError, ClientOptions, Proposal};

use crate::classify::{
    ClientCertPolicy, DimseObservations, FindCounts, FindResult, Identity, Outcome, Probe,
    Rejection, Retrieval, Service, ServiceResults, Title, TitleKind, classify_dimse, classify_tls,
};
use crate::pace::Pacer;
use crate::report::Finding;
use crate::synthetic::{ProbeObject, SECONDARY_CAPTURE};
use crate::tls::{BoxIo, Connector, TlsClient};
use crate::{ScanError, ScanOptions, Scheme, Target};

/// AE titles products and tools ship with, tried as called and as calling titles.
pub(crate) const WELL_KNOWN_TITLES: &[&str] = &[
    "ANY-SCP",
    "ORTHANC",
    "DCM4CHEE",
    "STORESCP",
    "QRSCP",
    "CONQUESTSRV1",
    "PACS",
    "DCMQRSCP",
    "OSIRIX",
    "HOROS",
    "ECHOSCU",
    "FINDSCU",
    "STORESCU",
    "GETSCU",
    "MOVESCU",
    "ANY",
    "DICOM",
    "SERVER",
    "WARD",
];

/// The contexts every probe proposes: one association tells which services are really given.
const CONTEXTS: &[(Service, &str)] = &[
    (Service::Verification, VERIFICATION),
    (Service::FindPatient, "1.2.840.10008.5.1.4.1.2.1.1"),
    (Service::FindStudy, "1.2.840.10008.5.1.4.1.2.2.1"),
    (Service::MovePatient, "1.2.840.10008.5.1.4.1.2.1.2"),
    (Service::MoveStudy, "1.2.840.10008.5.1.4.1.2.2.2"),
    (Service::GetPatient, "1.2.840.10008.5.1.4.1.2.1.3"),
    (Service::GetStudy, "1.2.840.10008.5.1.4.1.2.2.3"),
    (Service::Storage, "1.2.840.10008.5.1.4.1.1.2"),
    (Service::Storage, "1.2.840.10008.5.1.4.1.1.4"),
    (Service::Storage, SECONDARY_CAPTURE),
];

/// Maximum PDU the scanner announces.
const MAX_PDU: u32 = 64 * 1024;

fn proposal(abstract_syntax: &str, scp_role: bool) -> Proposal {
    Proposal {
        abstract_syntax: abstract_syntax.to_owned(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.to_owned(), IMPLICIT_VR_LE.to_owned()],
        scp_role,
    }
}

fn proposals() -> Vec<Proposal> {
    CONTEXTS
        .iter()
        .map(|(_, abstract_syntax)| proposal(abstract_syntax, false))
        .collect()
}

fn abstract_syntax(service: Service) -> Option<&'static str> {
    CONTEXTS
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, uid)| *uid)
}

/// A title nobody configured: 13 characters from a 48-bit random number.
fn random_title() -> Title {
    Title {
        text: format!("Z{:012X}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF),
        kind: TitleKind::Random,
    }
}

fn rejection(rj: &AssociationRJ) -> Rejection {
    use AssociationRJServiceProviderASCEReason as Asce;
    use AssociationRJServiceProviderPresentationReason as Presentation;
    use AssociationRJServiceUserReason as User;
    let (source, reason) = match &rj.source {
        AssociationRJSource::ServiceUser(r) => (
            1,
            match r {
                User::NoReasonGiven => 1,
                User::ApplicationContextNameNotSupported => 2,
                User::CallingAETitleNotRecognized => 3,
                User::CalledAETitleNotRecognized => 7,
                User::Reserved(n) => *n,
            },
        ),
        AssociationRJSource::ServiceProviderASCE(r) => (
            2,
            match r {
                Asce::NoReasonGiven => 1,
                Asce::ProtocolVersionNotSupported => 2,
            },
        ),
        AssociationRJSource::ServiceProviderPresentation(r) => (
            3,
            match r {
                Presentation::TemporaryCongestion => 1,
                Presentation::LocalLimitExceeded => 2,
                Presentation::Reserved(n) => *n,
            },
        ),
    };
    Rejection {
        result: rj.result.clone() as u8,
        source,
        reason,
    }
}

fn user_identity(identity: Identity) -> Option<UserIdentity> {
    let user = format!("ward-audit-{:08x}", rand::random::<u32>()).into_bytes();
    match identity {
        Identity::None => None,
        Identity::UsernameOnly => Some(UserIdentity::new(
            true,
            UserIdentityType::Username,
            user,
            Vec::new(),
        )),
        Identity::WrongPasscode => Some(UserIdentity::new(
            true,
            UserIdentityType::UsernamePassword,
            user,
            format!("{:032x}", rand::random::<u128>()).into_bytes(),
        )),
    }
}

/// Why an association attempt got no DICOM answer.
enum Failure {
    Connect(std::io::Error),
    NoAnswer(String),
}

struct Scanner<'a> {
    connector: Connector,
    pacer: &'a Pacer,
    options: &'a ScanOptions,
}

impl Scanner<'_> {
    fn client_options(&self, called: &Title, calling: &Title) -> ClientOptions {
        ClientOptions {
            calling_ae: calling.text.clone(),
            called_ae: called.text.clone(),
            max_pdu: MAX_PDU,
            timeout: self.options.timeout,
        }
    }

    async fn associate(
        &self,
        called: &Title,
        calling: &Title,
        identity: Identity,
        proposals: &[Proposal],
    ) -> Result<ClientAssociation<BoxIo>, Result<Outcome, Failure>> {
        let stream = self
            .connector
            .open(self.pacer)
            .await
            .map_err(|e| Err(Failure::Connect(e)))?;
        ClientAssociation::negotiate(
            stream,
            self.client_options(called, calling),
            proposals,
            user_identity(identity),
        )
        .await
        .map_err(|e| match e {
            ClientError::Rejected(rj) => Ok(Outcome::Rejected(rejection(&rj))),
            ClientError::Aborted => Ok(Outcome::Aborted),
            other => Err(Failure::NoAnswer(other.to_string())),
        })
    }

    /// One association attempt; accepted associations are released at once.
    async fn attempt(
        &self,
        called: &Title,
        calling: &Title,
        identity: Identity,
    ) -> Result<Outcome, Failure> {
        let assoc = match self
            .associate(called, calling, identity, &proposals())
            .await
        {
            Ok(assoc) => assoc,
            Err(answer) => return answer,
        };
        let services = services_of(&assoc);
        let rejected_contexts = assoc
            .context_results()
            .iter()
            .filter(|r| r.result != PresentationContextResultReason::Acceptance)
            .count();
        let implementation = assoc.peer().clone();
        let _ = assoc.release().await;
        Ok(Outcome::Accepted {
            services,
            rejected_contexts,
            implementation,
        })
    }

    async fn probe(&self, called: &Title, calling: &Title, identity: Identity) -> Probe {
        Probe {
            called: called.clone(),
            calling: calling.clone(),
            identity,
            outcome: self
                .attempt(called, calling, identity)
                .await
                .unwrap_or(Outcome::NoAnswer),
        }
    }

    /// Steps 3 and 4: association policy with called and calling titles varied separately,
    /// then user identity. Each loop stops at the first title that gets services: one is
    /// enough to show the exposure, and fewer attempts disturb the server less.
    async fn policy(&self, first: Probe, titles: &[Title]) -> Vec<Probe> {
        let random_calling = first.calling.clone();
        let mut probes = vec![first];
        let open = |probes: &[Probe]| probes.iter().any(|p| p.outcome.has_services());
        // Titles the administrator listed are tried first as calling titles against every
        // called title: a server that rejects uniformly (and backs off) gives no hint which
        // half of a pair was wrong, so single-title variation alone would never find them.
        let listed: Vec<&Title> = titles
            .iter()
            .filter(|t| t.kind == TitleKind::Listed)
            .collect();
        'pairs: for called in titles.iter().filter(|_| !listed.is_empty()) {
            for calling in &listed {
                probes.push(self.probe(called, calling, Identity::None).await);
                if open(&probes) {
                    break 'pairs;
                }
            }
        }
        if !open(&probes) {
            for title in titles {
                let p = self.probe(title, &random_calling, Identity::None).await;
                probes.push(p);
                if open(&probes) {
                    break;
                }
            }
        }
        let called = best_called(&probes);
        if !probes.iter().any(|p| {
            p.called == called && p.calling.kind == TitleKind::Random && p.outcome.has_services()
        }) {
            if called.kind != TitleKind::Random {
                probes.push(self.probe(&called, &random_calling, Identity::None).await);
            }
            if !open(&probes) {
                for title in titles {
                    let p = self.probe(&called, title, Identity::None).await;
                    probes.push(p);
                    if open(&probes) {
                        break;
                    }
                }
            }
        }
        if !open(&probes) {
            for identity in [Identity::UsernameOnly, Identity::WrongPasscode] {
                probes.push(self.probe(&called, &random_calling, identity).await);
            }
        }
        probes
    }

    /// Steps 5 to 8 on an association that got services.
    async fn services(&self, probe: &Probe) -> ServiceResults {
        let mut results = ServiceResults {
            called: probe.called.text.clone(),
            calling: probe.calling.text.clone(),
            ..ServiceResults::default()
        };
        let mut assoc = match self
            .associate(&probe.called, &probe.calling, probe.identity, &proposals())
            .await
        {
            Ok(assoc) => assoc,
            Err(_) => {
                if let Outcome::Accepted { services, .. } = &probe.outcome {
                    results.services = services.clone();
                }
                results.echo = Some(Err(String::from("the association failed on a second try")));
                return results;
            }
        };
        results.services = services_of(&assoc);
        // Some servers (Orthanc) answer a refused command by dropping the association without
        // a word: after the first failure, nothing more is sent on it, so that one silent
        // refusal costs one timeout rather than one per remaining check.
        let alive = std::cell::Cell::new(true);
        let check = |r: Result<u16, String>| {
            if r.is_err() {
                alive.set(false);
            }
            r
        };
        if results.services.contains(&Service::Verification) {
            results.echo = Some(check(assoc.echo().await.map_err(|e| e.to_string())));
        }
        for (service, level, wildcard) in [
            (Service::FindPatient, "PATIENT", false),
            (Service::FindPatient, "PATIENT", true),
            (Service::FindStudy, "STUDY", false),
            (Service::FindStudy, "STUDY", true),
        ] {
            let class = abstract_syntax(service).filter(|_| results.services.contains(&service));
            if let (true, Some(class)) = (alive.get(), class) {
                let found = count_matches(&mut assoc, class, level, wildcard).await;
                check(
                    found
                        .outcome
                        .as_ref()
                        .map(|c| c.status)
                        .map_err(Clone::clone),
                )
                .ok();
                results.finds.push(found);
            }
        }
        let first_of = |choices: [Service; 2]| {
            choices
                .into_iter()
                .find(|s| results.services.contains(s))
                .and_then(abstract_syntax)
        };
        let get_class = first_of([Service::GetStudy, Service::GetPatient]);
        let move_class = first_of([Service::MoveStudy, Service::MovePatient]);
        if let (true, Some(class)) = (alive.get(), get_class) {
            results.get_nothing = Some(check(get_nothing(&mut assoc, class).await));
        }
        if let (true, Some(class)) = (alive.get(), move_class) {
            results.move_unknown_destination = Some(check(move_nowhere(&mut assoc, class).await));
        }
        // Step 7 with --intrusive: proof that images, not only their descriptions, are given
        // away, by one instance that the C-FIND already showed to exist.
        let exposed = results
            .finds
            .iter()
            .any(|f| matches!(&f.outcome, Ok(c) if c.matches > 0));
        let model = [
            (Service::FindStudy, Service::GetStudy),
            (Service::FindPatient, Service::GetPatient),
        ]
        .into_iter()
        .find(|(find, get)| results.services.contains(find) && results.services.contains(get));
        let instance = match (self.options.intrusive && exposed && alive.get(), model) {
            (true, Some((find, get))) => Some((get, find_one_instance(&mut assoc, find).await)),
            _ => None,
        };
        if alive.get() {
            let _ = assoc.release().await;
        } else {
            assoc.abort().await;
        }
        if let Some((get, keys)) = instance {
            results.retrieval = Some(match keys {
                Ok(keys) => self.retrieve_one(probe, get, &keys).await,
                Err(e) => Err(e),
            });
        }
        if self.options.intrusive && results.services.contains(&Service::Storage) {
            let (store, overwrite) = self.write(probe).await;
            results.store = Some(store);
            results.overwrite = overwrite;
        }
        results
    }

    /// Step 7 (`--intrusive`): a C-GET of the one instance `keys` names, on an association that
    /// offers to take it (the SCP role for its storage class), counting what arrives and keeping
    /// none of it.
    async fn retrieve_one(
        &self,
        probe: &Probe,
        get: Service,
        keys: &InstanceKeys,
    ) -> Result<Retrieval, String> {
        let get_class = abstract_syntax(get).ok_or("no C-GET class")?;
        let storage: Vec<&str> = match &keys.sop_class {
            Some(class) => vec![class.as_str()],
            None => CONTEXTS
                .iter()
                .filter(|(s, _)| *s == Service::Storage)
                .map(|(_, uid)| *uid)
                .collect(),
        };
        let proposals: Vec<Proposal> = std::iter::once(proposal(get_class, false))
            .chain(storage.into_iter().map(|class| proposal(class, true)))
            .collect();
        let mut assoc = self
            .associate(&probe.called, &probe.calling, probe.identity, &proposals)
            .await
            .map_err(|_| String::from("the retrieval association failed"))?;
        let mut identifier = InMemDicomObject::new_empty();
        put(&mut identifier, tags::QUERY_RETRIEVE_LEVEL, VR::CS, "IMAGE");
        for (tag, vr, value) in &keys.keys {
            put(&mut identifier, *tag, *vr, value);
        }
        let (mut instances, mut bytes) = (0u64, 0u64);
        let outcome = assoc
            .get_streaming(
                get_class,
                &identifier,
                |data, last| {
                    bytes += data.len() as u64;
                    instances += u64::from(last);
                },
                |_| {},
            )
            .await;
        match outcome {
            Ok(progress) => {
                let _ = assoc.release().await;
                Ok(Retrieval {
                    status: progress.status,
                    instances,
                    bytes,
                })
            }
            Err(e) => {
                assoc.abort().await;
                Err(e.to_string())
            }
        }
    }

    /// Step 8 (`--intrusive`): C-STORE of a synthetic object, then of a different object under
    /// the same SOP Instance UID.
    async fn write(&self, probe: &Probe) -> (Result<u16, String>, Option<Result<u16, String>>) {
        let object = ProbeObject::new();
        let mut assoc = match self
            .associate(&probe.called, &probe.calling, probe.identity, &proposals())
            .await
        {
            Ok(assoc) => assoc,
            Err(_) => return (Err(String::from("association failed")), None),
        };
        let first = store(&mut assoc, &object, 0).await;
        let overwrite = if first.is_ok() {
            Some(store(&mut assoc, &object, 0xFF).await)
        } else {
            None
        };
        let _ = assoc.release().await;
        (first, overwrite)
    }
}

async fn store(
    assoc: &mut ClientAssociation<BoxIo>,
    object: &ProbeObject,
    variant: u8,
) -> Result<u16, String> {
    let bytes = object.dataset(variant)?;
    let len = bytes.len() as u64;
    assoc
        .store_stream(
            SECONDARY_CAPTURE,
            &object.sop_instance,
            EXPLICIT_VR_LE,
            std::io::Cursor::new(bytes),
            len,
            None,
        )
        .await
        .map(|(status, _)| status)
        .map_err(|e| e.to_string())
}

fn services_of(assoc: &ClientAssociation<BoxIo>) -> BTreeSet<Service> {
    assoc
        .context_results()
        .iter()
        .filter(|r| r.result == PresentationContextResultReason::Acceptance)
        .filter_map(|r| {
            CONTEXTS
                .iter()
                .find(|(_, uid)| *uid == r.abstract_syntax)
                .map(|(s, _)| *s)
        })
        .collect()
}

/// The called title to keep while varying the calling one: one that got an association, else
/// one whose rejection differed from a random title's (the server recognised it), else random.
fn best_called(probes: &[Probe]) -> Title {
    if let Some(p) = probes
        .iter()
        .find(|p| p.outcome.has_services())
        .or_else(|| {
            probes
                .iter()
                .find(|p| matches!(p.outcome, Outcome::Accepted { .. }))
        })
    {
        return p.called.clone();
    }
    let baseline = &probes[0];
    probes
        .iter()
        .skip(1)
        .find(|p| matches!(p.outcome, Outcome::Rejected(_)) && p.outcome != baseline.outcome)
        .unwrap_or(baseline)
        .called
        .clone()
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    let value = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value)
    };
    obj.put(DataElement::new(tag, vr, value));
}

/// An element's value as text without padding, if it has one.
fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_owned())
        .filter(|s| !s.is_empty())
}

/// A C-FIND at `level` with universal (empty) keys or a `*` patient name; counts the matches
/// and their related instances and drops every identifier unread beyond that count.
async fn count_matches(
    assoc: &mut ClientAssociation<BoxIo>,
    class: &str,
    level: &str,
    wildcard: bool,
) -> FindResult {
    let mut identifier = InMemDicomObject::new_empty();
    put(&mut identifier, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
    put(
        &mut identifier,
        tags::PATIENT_NAME,
        VR::PN,
        if wildcard { "*" } else { "" },
    );
    put(&mut identifier, tags::PATIENT_ID, VR::LO, "");
    let related = if level == "PATIENT" {
        tags::NUMBER_OF_PATIENT_RELATED_INSTANCES
    } else {
        put(&mut identifier, tags::STUDY_INSTANCE_UID, VR::UI, "");
        tags::NUMBER_OF_STUDY_RELATED_INSTANCES
    };
    put(&mut identifier, related, VR::IS, "");
    let (mut matches, mut instances) = (0u64, 0u64);
    let outcome = assoc
        .find(class, &identifier, |found| {
            matches += 1;
            instances += text(&found, related)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        })
        .await;
    let root = if class == abstract_syntax(Service::FindPatient).unwrap_or_default() {
        "Patient Root"
    } else {
        "Study Root"
    };
    FindResult {
        query: format!(
            "{root} {level} level, {}",
            if wildcard {
                "PatientName=*"
            } else {
                "universal keys"
            }
        ),
        outcome: outcome
            .map(|(status, _)| FindCounts {
                status,
                matches,
                related_instances: instances,
            })
            .map_err(|e| e.to_string()),
    }
}

/// The levels of a query/retrieve model, top down, with each one's unique key.
const LEVELS: [(&str, Tag, VR); 4] = [
    ("PATIENT", tags::PATIENT_ID, VR::LO),
    ("STUDY", tags::STUDY_INSTANCE_UID, VR::UI),
    ("SERIES", tags::SERIES_INSTANCE_UID, VR::UI),
    ("IMAGE", tags::SOP_INSTANCE_UID, VR::UI),
];

/// One instance's unique keys, top down, and its SOP class when the server named it. They live
/// only as long as the retrieval and are never reported.
struct InstanceKeys {
    keys: Vec<(Tag, VR, String)>,
    sop_class: Option<String>,
}

/// Finds one instance level by level with C-FIND (`find` is Patient or Study Root), keeping
/// the first match's unique key at each level; the other matches are dropped unlooked at.
async fn find_one_instance(
    assoc: &mut ClientAssociation<BoxIo>,
    find: Service,
) -> Result<InstanceKeys, String> {
    let class = abstract_syntax(find).ok_or("no C-FIND class")?;
    let levels = if find == Service::FindPatient {
        &LEVELS[..]
    } else {
        &LEVELS[1..]
    };
    let mut found = InstanceKeys {
        keys: Vec::new(),
        sop_class: None,
    };
    for &(level, key, vr) in levels {
        let image = level == "IMAGE";
        let mut identifier = InMemDicomObject::new_empty();
        put(&mut identifier, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
        for (tag, vr, value) in &found.keys {
            put(&mut identifier, *tag, *vr, value);
        }
        put(&mut identifier, key, vr, "");
        if image {
            put(&mut identifier, tags::SOP_CLASS_UID, VR::UI, "");
        }
        let mut first = None;
        assoc
            .find(class, &identifier, |m| {
                if first.is_none() {
                    first = text(&m, key).map(|value| (value, text(&m, tags::SOP_CLASS_UID)));
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        let (value, sop_class) = first.ok_or_else(|| format!("no match at {level} level"))?;
        found.keys.push((key, vr, value));
        if image {
            found.sop_class = sop_class;
        }
    }
    Ok(found)
}

/// A retrieval identifier naming a study that does not exist, so nothing can match.
fn made_up_study() -> InMemDicomObject {
    let mut identifier = InMemDicomObject::new_empty();
    put(&mut identifier, tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY");
    put(&mut identifier, tags::PATIENT_ID, VR::LO, "WARD-AUDIT-NONE");
    put(
        &mut identifier,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        ward_dicom::generate_uid().as_str(),
    );
    identifier
}

/// A C-GET of a study that does not exist: a server that refuses retrieval to unknown peers
/// says so; one that serves them answers success with no sub-operations. No storage context
/// was proposed with the SCP role, so no object can arrive; one that did would be dropped.
async fn get_nothing(assoc: &mut ClientAssociation<BoxIo>, class: &str) -> Result<u16, String> {
    assoc
        .get_streaming(class, &made_up_study(), |_, _| {}, |_| {})
        .await
        .map(|p| p.status)
        .map_err(|e| e.to_string())
}

/// A C-MOVE of a study that does not exist to an AE title nobody registered: a server that
/// checks its destinations refuses with A801H before looking for the study.
async fn move_nowhere(assoc: &mut ClientAssociation<BoxIo>, class: &str) -> Result<u16, String> {
    assoc
        .move_to(class, &made_up_study(), &random_title().text, |_| {})
        .await
        .map(|p| p.status)
        .map_err(|e| e.to_string())
}

/// Scans a `dicom://` or `dicom+tls://` target.
pub(crate) async fn scan(
    target: &Target,
    options: &ScanOptions,
    pacer: &Pacer,
) -> Result<Vec<Finding>, ScanError> {
    let mut findings = Vec::new();
    let called = random_title();
    let calling = random_title();
    let connector = if target.scheme == Scheme::DicomTls {
        let client = TlsClient::new(target, options)?;
        let inspection = client.inspect(pacer).await?;
        if inspection.observations.versions.is_empty() {
            // Only legacy TLS is spoken: no client that keeps to BCP 195 gets an association,
            // and this scanner does not either.
            findings.extend(classify_tls(&inspection.observations));
            return Ok(findings);
        }
        // Step 2: does the server answer an association from a peer without a certificate?
        let bare = Scanner {
            connector: client.connector(false)?,
            pacer,
            options,
        };
        let answered = bare
            .attempt(&called, &calling, Identity::None)
            .await
            .is_ok();
        let policy = match (answered, inspection.client_cert_requested) {
            (true, false) => ClientCertPolicy::NotRequested,
            (true, true) => ClientCertPolicy::Optional,
            (false, true) => ClientCertPolicy::Required,
            (false, false) => {
                return Err(ScanError::NotConfirmed(String::from(
                    "TLS works but no DICOM association was answered over it",
                )));
            }
        };
        let mut tls = inspection.observations;
        tls.client_cert = Some(policy);
        findings.extend(classify_tls(&tls));
        if policy == ClientCertPolicy::Required && options.client_cert.is_none() {
            // Nothing beyond the handshake is reachable without a certificate: the rest of
            // the scan needs one (--cert, --key).
            return Ok(findings);
        }
        client.connector(true)?
    } else {
        Connector::plain(target, options.timeout)
    };
    let scanner = Scanner {
        connector,
        pacer,
        options,
    };
    // Step 1: a real A-ASSOCIATE answer, not just an open port.
    let first = match scanner.attempt(&called, &calling, Identity::None).await {
        Ok(outcome) => Probe {
            called,
            calling,
            identity: Identity::None,
            outcome,
        },
        Err(Failure::Connect(e)) => return Err(ScanError::Connect(target.socket_addr(), e)),
        Err(Failure::NoAnswer(why)) => {
            return Err(ScanError::NotConfirmed(format!(
                "no DICOM answer to an A-ASSOCIATE-RQ ({why})"
            )));
        }
    };
    let titles: Vec<Title> = options
        .extra_titles
        .iter()
        .map(|t| Title {
            text: t.clone(),
            kind: TitleKind::Listed,
        })
        .chain(
            WELL_KNOWN_TITLES
                .iter()
                .filter(|t| !options.extra_titles.iter().any(|x| x == *t))
                .map(|t| Title {
                    text: (*t).to_owned(),
                    kind: TitleKind::WellKnown,
                }),
        )
        .collect();
    let probes = scanner.policy(first, &titles).await;
    let services = match probes.iter().find(|p| p.outcome.has_services()) {
        Some(p) => Some(scanner.services(p).await),
        None => None,
    };
    findings.extend(classify_dimse(&DimseObservations {
        plaintext: target.scheme == Scheme::Dicom,
        probes,
        services,
    }));
    Ok(findings)
}
