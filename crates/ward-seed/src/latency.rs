//! C-FIND latency against any SCP holding the corpus: study-level queries of one kind on one
//! association, each timed from the request to its final response, every answer's match count
//! checked against what the corpus says it must be. A target is an SCP (C-FIND) or a
//! DICOMweb server (QIDO-RS `GET /studies?...`, the same key and return keys).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde_json::{Value, json};
use ward_dimse::{ClientAssociation, ClientOptions, Proposal};

use crate::corpus::{self, Corpus, Date, STUDIES_PER_PATIENT};
use crate::web;

/// Study Root Query/Retrieve Information Model – FIND.
const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// PatientID, exact: the patient's studies.
    PatientId,
    /// AccessionNumber, exact: one study.
    Accession,
    /// StudyDate, a range of one calendar month.
    DateMonth,
    /// PatientName, `SURNAME^G*`: a surname and a given name's first letter.
    NamePrefix,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PatientId => "patient-id",
            Kind::Accession => "accession",
            Kind::DateMonth => "date-month",
            Kind::NamePrefix => "name-prefix",
        }
    }

    /// The QIDO-RS query parameter.
    fn keyword(self) -> &'static str {
        match self {
            Kind::PatientId => "PatientID",
            Kind::Accession => "AccessionNumber",
            Kind::DateMonth => "StudyDate",
            Kind::NamePrefix => "PatientName",
        }
    }

    fn tag(self) -> Tag {
        match self {
            Kind::PatientId => tags::PATIENT_ID,
            Kind::Accession => tags::ACCESSION_NUMBER,
            Kind::DateMonth => tags::STUDY_DATE,
            Kind::NamePrefix => tags::PATIENT_NAME,
        }
    }
}

/// The keys a study browser asks for, besides the matching key.
const RETURN_KEYS: &[(Tag, VR)] = &[
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::ACCESSION_NUMBER, VR::SH),
    (tags::MODALITIES_IN_STUDY, VR::CS),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_DESCRIPTION, VR::LO),
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_INSTANCE_UID, VR::UI),
    (tags::STUDY_ID, VR::SH),
    (tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS),
    (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS),
];

/// One query: the matching key's value and how many studies must match.
pub struct Request {
    pub value: String,
    pub expected: u64,
}

/// Draws queries of one kind from the corpus. Stream `stream` of the draws gives a different
/// sequence (warm-up queries use another stream than the timed ones).
pub struct Requests<'a> {
    corpus: &'a Corpus,
    kind: Kind,
    stream: u64,
    by_month: HashMap<(i64, u32), u64>,
    by_name_prefix: HashMap<String, u64>,
}

impl<'a> Requests<'a> {
    pub fn new(corpus: &'a Corpus, kind: Kind, stream: u64) -> Requests<'a> {
        let mut by_month = HashMap::new();
        let mut by_name_prefix = HashMap::new();
        match kind {
            Kind::DateMonth => {
                for study in corpus.all_studies() {
                    *by_month
                        .entry((study.date.year, study.date.month))
                        .or_default() += 1;
                }
            }
            Kind::NamePrefix => by_name_prefix = corpus.studies_by_name_prefix(),
            Kind::PatientId | Kind::Accession => {}
        }
        Requests {
            corpus,
            kind,
            stream: stream * 8 + kind as u64,
            by_month,
            by_name_prefix,
        }
    }

    pub fn nth(&self, n: u64) -> Request {
        let c = self.corpus;
        match self.kind {
            Kind::PatientId => Request {
                value: c.patient(c.pick(self.stream, n, c.patients())).id,
                expected: STUDIES_PER_PATIENT,
            },
            Kind::Accession => Request {
                value: c.study(c.pick(self.stream, n, c.studies())).accession,
                expected: 1,
            },
            Kind::DateMonth => {
                let m = c.pick(self.stream, n, (corpus::YEARS * 12) as u64) as i64;
                let (year, month) = (corpus::FIRST_YEAR + m / 12, (m % 12) as u32 + 1);
                let first = Date {
                    year,
                    month,
                    day: 1,
                };
                let last = Date {
                    day: corpus::days_in_month(year, month),
                    ..first
                };
                Request {
                    value: format!("{}-{}", first.dicom(), last.dicom()),
                    expected: self.by_month.get(&(year, month)).copied().unwrap_or(0),
                }
            }
            Kind::NamePrefix => {
                let prefix =
                    corpus::name_prefix(&c.patient(c.pick(self.stream, n, c.patients())).name);
                Request {
                    expected: self.by_name_prefix.get(&prefix).copied().unwrap_or(0),
                    value: prefix + "*",
                }
            }
        }
    }
}

fn identifier(kind: Kind, value: &str) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from("STUDY"),
    ));
    for &(tag, vr) in RETURN_KEYS {
        let value = if tag == kind.tag() {
            PrimitiveValue::from(value)
        } else {
            PrimitiveValue::Empty
        };
        obj.put(DataElement::new(tag, vr, value));
    }
    obj
}

/// How a target is reached.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// C-FIND on an association with this SCP.
    Dimse {
        /// HOST:PORT.
        address: String,
        called_ae: String,
    },
    /// QIDO-RS under this DICOMweb root.
    Web(web::BaseUrl),
}

/// A server to time, and the corpus it holds.
#[derive(Debug, Clone)]
pub struct Target {
    /// A label for the report.
    pub name: String,
    pub endpoint: Endpoint,
    /// The size of the corpus it holds.
    pub instances: u64,
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;

    /// `NAME=HOST:PORT/AE_TITLE/INSTANCES`, or `NAME=http[s]://HOST:PORT/ROOT/INSTANCES` for
    /// a DICOMweb root (e.g. `https://127.0.0.1:8443/dicom-web/1000000`).
    fn from_str(spec: &str) -> Result<Target> {
        let Some((name, rest)) = spec.split_once('=') else {
            bail!("{spec:?}: expected NAME=HOST:PORT/AE_TITLE/INSTANCES or NAME=URL/INSTANCES");
        };
        if rest.starts_with("http://") || rest.starts_with("https://") {
            let Some((url, instances)) = rest.rsplit_once('/') else {
                bail!("{spec:?}: expected NAME=URL/INSTANCES");
            };
            return Ok(Target {
                name: name.to_owned(),
                endpoint: Endpoint::Web(url.parse()?),
                instances: instances
                    .parse()
                    .with_context(|| format!("{spec:?}: instance count"))?,
            });
        }
        let parsed = {
            let mut parts = rest.split('/');
            let fields = (parts.next(), parts.next(), parts.next());
            match fields {
                (Some(a), Some(b), Some(c)) if parts.next().is_none() => Some((a, b, c)),
                _ => None,
            }
        };
        let Some((address, called_ae, instances)) = parsed else {
            bail!("{spec:?}: expected NAME=HOST:PORT/AE_TITLE/INSTANCES");
        };
        Ok(Target {
            name: name.to_owned(),
            endpoint: Endpoint::Dimse {
                address: address.to_owned(),
                called_ae: called_ae.to_owned(),
            },
            instances: instances
                .parse()
                .with_context(|| format!("{spec:?}: instance count"))?,
        })
    }
}

/// How every target is reached and which corpus seed they hold.
pub struct Options {
    pub calling_ae: String,
    pub timeout: Duration,
    pub seed: u64,
    pub requests: u64,
    pub warmup: u64,
    /// PEM certificates trusted for HTTPS targets.
    pub ca: Option<std::path::PathBuf>,
    /// Bearer token for DICOMweb targets.
    pub token: Option<String>,
}

/// An open association or HTTP connection to one target.
enum Session {
    Dimse(ClientAssociation),
    Web(web::Connection),
}

impl Session {
    async fn open(target: &Target, options: &Options) -> Result<Session> {
        match &target.endpoint {
            Endpoint::Dimse { address, called_ae } => {
                let client = ClientOptions {
                    calling_ae: options.calling_ae.clone(),
                    called_ae: called_ae.clone(),
                    max_pdu: 256 * 1024,
                    timeout: options.timeout,
                };
                let proposal = Proposal {
                    abstract_syntax: STUDY_ROOT_FIND.to_owned(),
                    transfer_syntaxes: vec![
                        corpus::TRANSFER_SYNTAX.to_owned(),
                        "1.2.840.10008.1.2".to_owned(),
                    ],
                    scp_role: false,
                };
                let assoc = ClientAssociation::connect(address, client, &[proposal])
                    .await
                    .with_context(|| format!("association with {} ({address})", target.name))?;
                Ok(Session::Dimse(assoc))
            }
            Endpoint::Web(base) => {
                let client = web::Client::new(
                    base.clone(),
                    options.ca.as_deref(),
                    options.token.as_deref(),
                )?;
                let conn = client
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {}", target.name))?;
                Ok(Session::Web(conn))
            }
        }
    }

    /// Asks one query; the matches found, and what went wrong if the server refused it.
    async fn query(&mut self, kind: Kind, value: &str) -> Result<(u64, Option<Value>)> {
        match self {
            Session::Dimse(assoc) => {
                // Matches are counted as they arrive, not decoded: the time measured is the
                // server's and the network's, as for QIDO-RS, whose JSON is only checked and
                // counted.
                let mut found = 0u64;
                let (status, comment) = assoc
                    .find_encoded(STUDY_ROOT_FIND, &identifier(kind, value), |_, _| found += 1)
                    .await?;
                let failure = (status != 0).then(|| {
                    json!({ "value": value, "status": format!("{status:04X}"), "comment": comment })
                });
                Ok((found, failure))
            }
            Session::Web(conn) => {
                let answer = conn
                    .call(
                        hyper::Method::GET,
                        &qido_path(kind, value),
                        &[(hyper::header::ACCEPT, "application/dicom+json")],
                        bytes::Bytes::new(),
                    )
                    .await?;
                if !answer.status.is_success() {
                    let body = String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(500)
                        .collect::<String>();
                    let failure = json!({ "value": value, "status": answer.status.as_u16(), "comment": body });
                    return Ok((0, Some(failure)));
                }
                Ok((web::json_array_len(&answer.body)?, None))
            }
        }
    }

    async fn close(self) -> Result<()> {
        match self {
            Session::Dimse(assoc) => Ok(assoc.release().await?),
            Session::Web(_) => Ok(()),
        }
    }
}

/// The QIDO-RS equivalent of `identifier`: the matching key, and the return keys Ward's
/// study-level defaults lack.
fn qido_path(kind: Kind, value: &str) -> String {
    format!(
        "/studies?{}={}&includefield=StudyDescription",
        kind.keyword(),
        web::encode_query_value(value)
    )
}

/// What one target answered to the timed queries.
#[derive(Default)]
struct Record {
    latencies_ms: Vec<f64>,
    matches: Vec<u64>,
    expected: Vec<u64>,
    values: Vec<String>,
    failures: Vec<Value>,
}

/// Times `options.requests` queries of `kind` against every target, each on its own
/// association after `options.warmup` untimed ones. The targets take turns, one query each, so
/// that whatever else the machine is doing weighs on all of them alike. Returns one JSON report
/// per target with every latency, match count and failure.
pub async fn run(targets: &[Target], kind: Kind, options: &Options) -> Result<Vec<Value>> {
    let corpora = targets
        .iter()
        .map(|t| Corpus::new(t.instances, options.seed))
        .collect::<Result<Vec<_>>>()?;
    let mut sessions = Vec::new();
    for target in targets {
        sessions.push(Session::open(target, options).await?);
    }

    for (session, corpus) in sessions.iter_mut().zip(&corpora) {
        let warm = Requests::new(corpus, kind, 1);
        for n in 0..options.warmup {
            session.query(kind, &warm.nth(n).value).await?;
        }
    }

    let timed: Vec<Requests> = corpora
        .iter()
        .map(|corpus| Requests::new(corpus, kind, 0))
        .collect();
    let mut records: Vec<Record> = targets.iter().map(|_| Record::default()).collect();
    for n in 0..options.requests {
        for ((session, requests), record) in sessions.iter_mut().zip(&timed).zip(&mut records) {
            let request = requests.nth(n);
            let start = Instant::now();
            let (found, failure) = session.query(kind, &request.value).await?;
            record
                .latencies_ms
                .push(start.elapsed().as_secs_f64() * 1000.0);
            record.failures.extend(failure);
            record.matches.push(found);
            record.expected.push(request.expected);
            record.values.push(request.value);
        }
    }
    for session in sessions {
        session.close().await?;
    }

    Ok(targets
        .iter()
        .zip(records)
        .map(|(target, r)| {
            let wrong = r
                .matches
                .iter()
                .zip(&r.expected)
                .filter(|(got, want)| got != want)
                .count();
            json!({
                "target": target.name,
                "kind": kind.name(),
                "instances": target.instances,
                "requests": options.requests,
                "warmup": options.warmup,
                "latencies_ms": r.latencies_ms,
                "matches": r.matches,
                "expected": r.expected,
                "values": r.values,
                "wrong_match_counts": wrong,
                "failures": r.failures,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_expect_what_the_corpus_holds() {
        let corpus = Corpus::new(20_000, 1).unwrap();
        let months = Requests::new(&corpus, Kind::DateMonth, 0);
        let total: u64 = months.by_month.values().sum();
        assert_eq!(total, corpus.studies());
        for n in 0..50 {
            let r = months.nth(n);
            let (from, to) = r.value.split_once('-').unwrap();
            let inside = corpus
                .all_studies()
                .filter(|s| (from..=to).contains(&s.date.dicom().as_str()))
                .count() as u64;
            assert_eq!(r.expected, inside, "{}", r.value);
        }
        let names = Requests::new(&corpus, Kind::NamePrefix, 0);
        for n in 0..50 {
            let r = names.nth(n);
            let prefix = r.value.strip_suffix('*').unwrap();
            let inside = corpus
                .all_studies()
                .filter(|s| corpus.patient(s.patient).name.starts_with(prefix))
                .count() as u64;
            assert_eq!(r.expected, inside, "{}", r.value);
            assert!(inside >= STUDIES_PER_PATIENT);
        }
        let ids = Requests::new(&corpus, Kind::PatientId, 0);
        assert_eq!(ids.nth(3).expected, STUDIES_PER_PATIENT);
        // Warm-up queries draw other values than the timed ones.
        let warm = Requests::new(&corpus, Kind::Accession, 1);
        let timed = Requests::new(&corpus, Kind::Accession, 0);
        assert_ne!(
            (0..5).map(|n| warm.nth(n).value).collect::<Vec<_>>(),
            (0..5).map(|n| timed.nth(n).value).collect::<Vec<_>>()
        );
    }

    #[test]
    fn target_specs() {
        let t: Target = "ward-1m=127.0.0.1:4242/WARD/1000000".parse().unwrap();
        let Endpoint::Dimse { address, called_ae } = &t.endpoint else {
            panic!("not DIMSE: {t:?}");
        };
        assert_eq!(
            (t.name.as_str(), address.as_str(), called_ae.as_str()),
            ("ward-1m", "127.0.0.1:4242", "WARD")
        );
        assert_eq!(t.instances, 1_000_000);
        let t: Target = "qido=https://127.0.0.1:8443/dicom-web/100".parse().unwrap();
        let Endpoint::Web(base) = &t.endpoint else {
            panic!("not web: {t:?}");
        };
        assert_eq!((base.prefix.as_str(), t.instances), ("/dicom-web", 100));
        assert_eq!(
            qido_path(Kind::NamePrefix, "SMITH^J*"),
            "/studies?PatientName=SMITH%5EJ%2A&includefield=StudyDescription"
        );
        for bad in [
            "127.0.0.1:4242/WARD/100",
            "w=127.0.0.1:4242/WARD",
            "w=127.0.0.1:4242/WARD/100/x",
            "w=127.0.0.1:4242/WARD/many",
            "w=https://127.0.0.1:8443/dicom-web",
            "w=http://127.0.0.1/dicom-web/100",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_carry_the_key_and_the_return_keys() {
        let id = identifier(Kind::NamePrefix, "SMITH^J*");
        assert_eq!(
            id.element(tags::PATIENT_NAME).unwrap().to_str().unwrap(),
            "SMITH^J*"
        );
        assert_eq!(
            id.element(tags::QUERY_RETRIEVE_LEVEL)
                .unwrap()
                .to_str()
                .unwrap(),
            "STUDY"
        );
        assert_eq!(
            id.element(tags::MODALITIES_IN_STUDY)
                .unwrap()
                .to_str()
                .unwrap(),
            ""
        );
        assert_eq!(id.iter().count(), RETURN_KEYS.len() + 1);
    }
}
