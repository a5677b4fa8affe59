//! The table-driven matching suite (one row per rule of PS3.4 C.2.2.2, `ward_query::conformance`)
//! played through C-FIND over a real association: the network path must give exactly the
//! matches the query engine's own tests expect; QIDO-RS runs the same table on the same server,
//! and the two must agree on every row.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ward_dimse::{ClientAssociation, ClientOptions, Proposal};
use ward_query::QueryModel;
use ward_query::conformance::{cases, corpus};
use ward_test_support::{WardServer, data_dir_with_peers};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

fn options(aet: &str) -> ClientOptions {
    ClientOptions {
        calling_ae: aet.into(),
        called_ae: "WARD".into(),
        max_pdu: 64 * 1024,
        timeout: Duration::from_secs(30),
    }
}

fn find_class(model: QueryModel) -> &'static str {
    match model {
        QueryModel::PatientRoot => "1.2.840.10008.5.1.4.1.2.1.1",
        QueryModel::StudyRoot => "1.2.840.10008.5.1.4.1.2.2.1",
    }
}

#[test]
fn every_matching_rule_through_c_find() {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(
        bin,
        &[
            ("LOADER", "127.0.0.1", "store"),
            ("QR", "127.0.0.1", "find"),
        ],
    );
    let server = WardServer::start(bin, &dir.path().join("data"));
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let instances = corpus();
        let proposals: Vec<Proposal> = instances
            .iter()
            .map(|i| Proposal {
                abstract_syntax: i.sop_class_uid.to_owned(),
                transfer_syntaxes: vec![EXPLICIT_VR_LE.to_owned()],
                scp_role: false,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut assoc = ClientAssociation::connect(&addr, options("LOADER"), &proposals)
            .await
            .unwrap();
        for i in &instances {
            let bytes = i.dataset_bytes(EXPLICIT_VR_LE);
            let (status, comment) = assoc
                .store_stream(
                    i.sop_class_uid,
                    i.sop_instance_uid,
                    EXPLICIT_VR_LE,
                    &bytes[..],
                    bytes.len() as u64,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 0, "{}: {comment:?}", i.sop_instance_uid);
        }
        assoc.release().await.unwrap();

        let query_contexts: Vec<Proposal> = [QueryModel::PatientRoot, QueryModel::StudyRoot]
            .into_iter()
            .map(|m| Proposal {
                abstract_syntax: find_class(m).to_owned(),
                transfer_syntaxes: vec![EXPLICIT_VR_LE.to_owned()],
                scp_role: false,
            })
            .collect();
        let mut assoc = ClientAssociation::connect(&addr, options("QR"), &query_contexts)
            .await
            .unwrap();
        let mut failures = Vec::new();
        let mut refused = 0;
        let mut c_find_answers = std::collections::BTreeMap::new();
        let all = cases();
        assert!(all.len() >= 30, "the table has {} rows", all.len());
        for case in &all {
            let mut found = BTreeSet::new();
            let unique = case.level.unique_key();
            let (status, comment) = assoc
                .find(find_class(case.model), &case.identifier(), |m| {
                    if let Ok(el) = m.element(unique) {
                        found.insert(
                            el.to_str()
                                .unwrap()
                                .trim_end_matches('\0')
                                .trim()
                                .to_owned(),
                        );
                    }
                })
                .await
                .unwrap();
            // Rows that ask for every patient or study are what the anti-enumeration policy
            // refuses to anyone but an administrator, and a DIMSE peer is not one.
            let query = ward_query::parse_identifier(
                &case.encode(EXPLICIT_VR_LE),
                EXPLICIT_VR_LE,
                case.model,
            )
            .unwrap();
            if ward_query::is_enumeration(&query) {
                if status != 0x0124 || !found.is_empty() {
                    failures.push(format!(
                        "{}: enumeration not refused ({status:#06x})",
                        case.name
                    ));
                }
                refused += 1;
                continue;
            }
            let expected: BTreeSet<String> =
                case.expected.iter().map(|s| (*s).to_owned()).collect();
            c_find_answers.insert(case.name, found.clone());
            if status != 0 || found != expected {
                failures.push(format!(
                    "{}: status {status:#06x} {comment:?}, got {found:?}, expected {expected:?}",
                    case.name
                ));
            }
        }
        assoc.release().await.unwrap();
        failures.extend(qido_disagreements(&server, &all, &c_find_answers));
        assert!(
            failures.is_empty(),
            "{} rows disagree:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(
            refused >= 1 && refused < all.len() / 4,
            "{refused} rows refused as enumeration"
        );
    });
}

/// Plays every row of the table that QIDO-RS can express (all but PATIENT level, which QIDO
/// does not have) as a query string, as a clinician, and returns the rows where QIDO's matches
/// differ from C-FIND's (`c_find`: the matches per row C-FIND returned; a row missing there was
/// refused as an enumeration, which QIDO must refuse too).
fn qido_disagreements(
    server: &WardServer,
    all: &[ward_query::conformance::Case],
    c_find: &std::collections::BTreeMap<&str, BTreeSet<String>>,
) -> Vec<String> {
    use ward_query::Level;
    use ward_query::conformance::CaseKey;

    let token = server.token("qido-reader", "clinician");
    let web = server.web();
    let tag = |t: dicom_core::Tag| format!("{:04X}{:04X}", t.group(), t.element());
    let encode = |v: &str| -> String {
        v.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~*?".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in all.iter().filter(|c| c.level != Level::Patient) {
        let unique = case.level.unique_key();
        let mut params = vec![format!("includefield={}", tag(unique))];
        for key in &case.keys {
            match key {
                CaseKey::Value(t, _, "") => params.push(format!("includefield={}", tag(*t))),
                CaseKey::Value(t, _, v) => params.push(format!("{}={}", tag(*t), encode(v))),
                CaseKey::Item(seq, items) => {
                    for (t, _, v) in items {
                        if !v.is_empty() {
                            params.push(format!("{}.{}={}", tag(*seq), tag(*t), encode(v)));
                        }
                    }
                }
            }
        }
        let route = match case.level {
            Level::Study | Level::Patient => "studies",
            Level::Series => "series",
            Level::Image => "instances",
        };
        let path = format!("/dicom-web/{route}?{}", params.join("&"));
        let response = web.get(&path, &token, "application/dicom+json");
        let Some(expected) = c_find.get(case.name) else {
            if response.status != 403 {
                failures.push(format!(
                    "{} (QIDO): enumeration answered {}",
                    case.name, response.status
                ));
            }
            continue;
        };
        if response.status != 200 {
            failures.push(format!(
                "{} (QIDO): status {} {}",
                case.name,
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
            continue;
        }
        let found: BTreeSet<String> = response
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m[tag(unique)]["Value"][0].as_str().map(str::to_owned))
            .collect();
        compared += 1;
        if &found != expected {
            failures.push(format!(
                "{} (QIDO): got {found:?}, C-FIND gave {expected:?}",
                case.name
            ));
        }
    }
    assert!(compared >= 20, "only {compared} rows compared through QIDO");
    failures
}
