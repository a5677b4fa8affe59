//! The table-driven matching suite (one row per rule of PS3.4 C.2.2.2, `ward_query::conformance`)
//! played through C-FIND over a real association: the network path must give exactly the
//! matches the query engine's own tests expect. QIDO-RS will run the same table.

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
            if status != 0 || found != expected {
                failures.push(format!(
                    "{}: status {status:#06x} {comment:?}, got {found:?}, expected {expected:?}",
                    case.name
                ));
            }
        }
        assoc.release().await.unwrap();
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
