//! The query engine against SQLite: the shared conformance table, computed attributes, return
//! keys from header copies, limits, query plans and the migration's backfill.

use std::collections::BTreeSet;
use std::io::Write;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ward_query::conformance::{Case, CaseKey, CorpusInstance, cases, corpus};
use ward_query::{Level, QueryError, QueryModel, parse_identifier};

use super::*;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

/// What ingest would hand the index for `instance`: its Part 10 file written, pre-scanned and
/// read back with a header copy, exactly as on the real path.
fn new_instance(dir: &tempfile::TempDir, instance: &CorpusInstance) -> NewInstance {
    let path = dir
        .path()
        .join(format!("{}.dcm", instance.sop_instance_uid));
    let mut file = std::fs::File::create(&path).unwrap();
    ward_dicom::write_part10_header(
        &mut file,
        &uid(instance.sop_class_uid),
        &uid(instance.sop_instance_uid),
        &uid(EXPLICIT_LE),
    )
    .unwrap();
    file.write_all(&instance.dataset_bytes(EXPLICIT_LE))
        .unwrap();
    drop(file);
    let size = std::fs::metadata(&path).unwrap().len();
    ward_dicom::prescan_part10_file(&path, &ward_dicom::PrescanLimits::default()).unwrap();
    let (attrs, header) = ward_dicom::read_header_with_copy(&path).unwrap();
    NewInstance {
        attrs,
        header,
        transfer_syntax: uid(EXPLICIT_LE),
        size,
        blob_key: format!("{:0>64}", instance.sop_instance_uid.replace('.', "")),
        source_ae: None,
        received_at_unix_ms: 0,
    }
}

async fn corpus_index() -> (tempfile::TempDir, SqliteIndex) {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteIndex::open(&dir.path().join("index.db"), true)
        .await
        .unwrap();
    for instance in corpus() {
        let new = new_instance(&dir, &instance);
        assert_eq!(
            index.insert_instance(&new).await.unwrap(),
            InsertOutcome::Inserted
        );
    }
    (dir, index)
}

fn parse(case: &Case, ts: &str) -> Query {
    parse_identifier(&case.encode(ts), ts, case.model)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

fn ids(level: Level, rows: &[MatchRow]) -> BTreeSet<String> {
    rows.iter()
        .map(|row| {
            row.values
                .get(&level.unique_key())
                .cloned()
                .expect("the unique key is answered")
        })
        .collect()
}

/// The corpus instances under the entities `case` expects.
fn instances_under(case: &Case) -> BTreeSet<String> {
    corpus()
        .into_iter()
        .filter(|i| {
            let id = match case.level {
                Level::Patient => i.patient_id,
                Level::Study => i.study_instance_uid,
                Level::Series => i.series_instance_uid,
                Level::Image => i.sop_instance_uid,
            };
            case.expected.contains(&id)
        })
        .map(|i| i.sop_instance_uid.to_owned())
        .collect()
}

#[tokio::test]
async fn conformance_table() {
    let (_dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    let mut failures = Vec::new();
    let mut retrieves = 0;
    for case in cases() {
        let expected: BTreeSet<String> = case.expected.iter().map(|s| s.to_string()).collect();
        for ts in [EXPLICIT_LE, IMPLICIT_LE] {
            let query = parse(&case, ts);
            let rows = index.find(&query, &options, 1000).await.unwrap();
            let got = ids(case.level, &rows);
            if got != expected || rows.len() != expected.len() {
                failures.push(format!("{} ({ts}): got {got:?}", case.name));
            }
        }

        // The same identifier as a C-GET/C-MOVE: every instance under the matches.
        let query = parse(&case, EXPLICIT_LE);
        match ward_query::check_retrieve(&query) {
            Ok(()) => {
                retrieves += 1;
                let got: BTreeSet<String> = index
                    .retrieve_instances(&query, 1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|row| row.sop_instance_uid.to_string())
                    .collect();
                if got != instances_under(&case) {
                    failures.push(format!("{} (retrieve): got {got:?}", case.name));
                }
            }
            Err(e) => assert!(matches!(
                index.retrieve_instances(&query, 1000).await,
                Err(IndexError::Query(err)) if err == e
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(retrieves >= 4, "the table exercises retrieval too");
}

fn study_query(keys: &[(Tag, VR, &'static str)]) -> Query {
    query_at(QueryModel::StudyRoot, Level::Study, keys)
}

fn query_at(model: QueryModel, level: Level, keys: &[(Tag, VR, &'static str)]) -> Query {
    let case = Case {
        name: "ad hoc",
        model,
        level,
        keys: keys
            .iter()
            .map(|&(tag, vr, value)| CaseKey::Value(tag, vr, value))
            .collect(),
        expected: Vec::new(),
    };
    parse(&case, EXPLICIT_LE)
}

#[tokio::test]
async fn computed_attributes() {
    let (_dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    let query = study_query(&[
        (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
        (tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, ""),
        (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        (tags::MODALITIES_IN_STUDY, VR::CS, ""),
        (tags::SOP_CLASSES_IN_STUDY, VR::UI, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, ""),
        // Below the study level: not computed, answered empty.
        (tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, ""),
    ]);
    let rows = index.find(&query, &options, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let v = |tag| rows[0].values.get(&tag).map(String::as_str);
    assert_eq!(v(tags::NUMBER_OF_STUDY_RELATED_SERIES), Some("2"));
    assert_eq!(v(tags::NUMBER_OF_STUDY_RELATED_INSTANCES), Some("4"));
    assert_eq!(v(tags::MODALITIES_IN_STUDY), Some("CT\\SR"));
    assert_eq!(
        v(tags::SOP_CLASSES_IN_STUDY),
        Some("1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.88.11")
    );
    assert_eq!(v(tags::NUMBER_OF_PATIENT_RELATED_STUDIES), Some("2"));
    assert_eq!(v(tags::NUMBER_OF_PATIENT_RELATED_SERIES), Some("3"));
    assert_eq!(v(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES), Some("8"));
    assert_eq!(v(tags::NUMBER_OF_SERIES_RELATED_INSTANCES), None);
    assert_eq!(rows[0].header, None, "every requested key had a column");

    let patients = query_at(
        QueryModel::PatientRoot,
        Level::Patient,
        &[
            (tags::PATIENT_ID, VR::LO, "PAT-003"),
            (tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, ""),
            (tags::NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, ""),
            (tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, ""),
        ],
    );
    let rows = index.find(&patients, &options, 10).await.unwrap();
    let v = |tag| rows[0].values.get(&tag).map(String::as_str);
    assert_eq!(
        (
            v(tags::NUMBER_OF_PATIENT_RELATED_STUDIES),
            v(tags::NUMBER_OF_PATIENT_RELATED_SERIES),
            v(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES)
        ),
        (Some("2"), Some("2"), Some("5"))
    );

    let series = query_at(
        QueryModel::StudyRoot,
        Level::Series,
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
            (tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, ""),
            (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        ],
    );
    let rows = index.find(&series, &options, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]
            .values
            .get(&tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
        Some(&"4".to_owned())
    );
    assert_eq!(
        rows[0].values.get(&tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
        Some(&"4".to_owned())
    );
}

#[tokio::test]
async fn return_keys_come_from_columns_and_header_copies() {
    let (_dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    let mut case = cases()
        .into_iter()
        .find(|c| c.name == "sequence item, single value")
        .unwrap();
    case.keys.extend([
        CaseKey::Value(tags::PATIENT_NAME, VR::PN, ""),
        CaseKey::Value(tags::STUDY_DATE, VR::DA, ""),
        CaseKey::Value(tags::STUDY_ID, VR::SH, ""),
    ]);
    let query = parse(&case, EXPLICIT_LE);
    let rows = index.find(&query, &options, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].values.get(&tags::PATIENT_NAME).map(String::as_str),
        Some("Doe^Jane")
    );
    assert!(rows[0].header.is_some(), "the sequence key has no column");

    let bytes = ward_query::response_identifier(&query, &rows[0], IMPLICIT_LE).unwrap();
    let answer = dicom_object::InMemDicomObject::read_dataset_with_ts(
        bytes.as_slice(),
        TransferSyntaxRegistry.get(IMPLICIT_LE).unwrap(),
    )
    .unwrap();
    let text = |tag| answer.get(tag).unwrap().to_str().unwrap().trim().to_owned();
    assert_eq!(text(tags::STUDY_INSTANCE_UID), "1.2.3.2");
    assert_eq!(text(tags::STUDY_DATE), "20240220");
    assert_eq!(text(tags::STUDY_ID), "MRBR");
    let items = answer
        .get(tags::PROCEDURE_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(
        items[0]
            .get(tags::CODE_VALUE)
            .unwrap()
            .to_str()
            .unwrap()
            .trim(),
        "MRBR"
    );
}

#[tokio::test]
async fn limits_are_respected() {
    let (_dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    let all = study_query(&[(tags::STUDY_DATE, VR::DA, "")]);
    assert_eq!(index.find(&all, &options, 6).await.unwrap().len(), 6);
    assert_eq!(index.find(&all, &options, 7).await.unwrap().len(), 6);
    assert_eq!(index.find(&all, &options, 3).await.unwrap().len(), 3);
    assert!(index.find(&all, &options, 0).await.unwrap().is_empty());

    // With a key checked on header copies, the limit counts matches, not candidates.
    let case = cases()
        .into_iter()
        .find(|c| c.name == "sequence item, wildcard and a second key")
        .unwrap();
    let filtered = parse(&case, EXPLICIT_LE);
    assert_eq!(index.find(&filtered, &options, 100).await.unwrap().len(), 3);
    assert_eq!(index.find(&filtered, &options, 2).await.unwrap().len(), 2);

    let study = study_query(&[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2\\1.2.3.5")]);
    assert_eq!(
        index.retrieve_instances(&study, 100).await.unwrap().len(),
        7
    );
    assert_eq!(index.retrieve_instances(&study, 5).await.unwrap().len(), 5);
}

#[tokio::test]
async fn pn_case_sensitivity_is_an_option() {
    let (_dir, index) = corpus_index().await;
    let sensitive = QueryOptions {
        pn_case_insensitive: false,
    };
    let by_name = |name: &'static str| {
        query_at(
            QueryModel::PatientRoot,
            Level::Patient,
            &[(tags::PATIENT_NAME, VR::PN, name)],
        )
    };
    for (name, expected) in [("doe*", 0), ("Doe*", 2), ("DOE^JANE", 0), ("Doe^Jane", 1)] {
        assert_eq!(
            index
                .find(&by_name(name), &sensitive, 10)
                .await
                .unwrap()
                .len(),
            expected,
            "{name}"
        );
    }
    let referring = study_query(&[(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "house*")]);
    assert_eq!(
        index.find(&referring, &sensitive, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn instances_without_or_with_damaged_header_copies() {
    let (dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    // An instance indexed before header copies existed: keys without a column never match it.
    let mut bare = new_instance(&dir, &corpus()[0]);
    bare.attrs.sop_instance_uid = Some(uid("1.2.3.1.1.99"));
    bare.blob_key = "ab".repeat(32);
    bare.header = Vec::new();
    index.insert_instance(&bare).await.unwrap();
    let dt = query_at(
        QueryModel::StudyRoot,
        Level::Image,
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.1.1"),
            (tags::ACQUISITION_DATE_TIME, VR::DT, "2024-"),
        ],
    );
    assert_eq!(index.find(&dt, &options, 10).await.unwrap().len(), 3);

    // A damaged copy is an error, not a panic or an allocation from a bogus length.
    let mut bogus = vec![0x10, 0x00, 0x10, 0x00, b'P', b'N'];
    bogus.extend_from_slice(&0xFFFEu16.to_le_bytes());
    sqlx::query("UPDATE instance SET header = $1 WHERE sop_instance_uid = '1.2.3.1.1.2'")
        .bind(bogus)
        .execute(&index.writer)
        .await
        .unwrap();
    assert!(matches!(
        index.find(&dt, &options, 10).await,
        Err(IndexError::Corrupt("instance.header"))
    ));
}

/// The common queries must be index searches: their cost may not grow with the archive.
#[tokio::test]
async fn common_queries_use_indexes() {
    let (_dir, index) = corpus_index().await;
    let options = QueryOptions::default();
    let pid = (tags::PATIENT_ID, VR::LO, "PAT-001");
    let study = (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1");
    let series = (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.1.1");
    let queries = [
        query_at(QueryModel::PatientRoot, Level::Patient, &[pid]),
        query_at(
            QueryModel::PatientRoot,
            Level::Study,
            &[pid, (tags::STUDY_DESCRIPTION, VR::LO, "")],
        ),
        study_query(&[(tags::ACCESSION_NUMBER, VR::SH, "ACC-1001")]),
        study_query(&[(tags::STUDY_DATE, VR::DA, "20240101-20240131")]),
        study_query(&[(tags::PATIENT_NAME, VR::PN, "doe*")]),
        query_at(
            QueryModel::PatientRoot,
            Level::Patient,
            &[(tags::PATIENT_NAME, VR::PN, "Mü?ler*")],
        ),
        study_query(&[
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1\\1.2.3.2"),
            (tags::MODALITIES_IN_STUDY, VR::CS, ""),
            (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        ]),
        query_at(QueryModel::StudyRoot, Level::Series, &[study]),
        query_at(QueryModel::StudyRoot, Level::Image, &[study, series]),
    ];
    for query in &queries {
        let plan = plan::plan(query, &options);
        let mut find_qb = sqlx::QueryBuilder::new("EXPLAIN QUERY PLAN ");
        find::push_find(&mut find_qb, &plan, Some(10));
        let mut retrieve_qb = sqlx::QueryBuilder::new("EXPLAIN QUERY PLAN ");
        find::push_retrieve(&mut retrieve_qb, &plan, Some(10));
        for mut qb in [find_qb, retrieve_qb] {
            let sql = qb.sql().to_owned();
            // Columns: id, parent, notused, detail.
            let steps: Vec<String> = qb
                .build()
                .fetch_all(&index.readers)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(3))
                .collect();
            for step in &steps {
                // group_concat(DISTINCT …) sorts one study's modalities: bounded by the study.
                let bounded_distinct = step.contains("DISTINCT");
                // An answer gathered into one JSON document reads its own matches once, at
                // most the limit of them.
                let own_answer = step == "SCAN answer";
                assert!(
                    (!step.starts_with("SCAN") || own_answer)
                        && (!step.contains("TEMP B-TREE") || bounded_distinct),
                    "{sql}\n{steps:#?}"
                );
            }
        }
    }
}

/// The migration computes the sortable forms of rows indexed before it exactly as Rust does
/// on insert.
#[tokio::test]
async fn migration_backfill_agrees_with_rust() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(include_str!("../../migrations/sqlite/0001_initial.sql"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let times = [
        "10",
        "1015",
        "101530",
        "101530.5",
        "101530.123456",
        "10:15:30",
        "10:15",
        "1015.5",
        "101",
        "101530.",
        ".5",
        "101530.1234567",
        "1O15",
        "",
        "101530.1.2",
        "2400",
    ];
    let dates = [
        "20240102",
        "2024.01.02",
        "2024-01-02",
        "2024010",
        "202401021",
        "2O240102",
        "",
        "2024.1.02",
    ];
    sqlx::query(
        "INSERT INTO patient (id, patient_id, issuer_of_patient_id, patient_name) \
         VALUES (1, 'P', '', 'Müller^Jürgen')",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for n in 0..times.len().max(dates.len()) {
        sqlx::query(
            "INSERT INTO study (id, patient_fk, study_instance_uid, study_date, study_time, \
             referring_physician_name) VALUES ($1, 1, $2, $3, $4, 'house^gregory')",
        )
        .bind(n as i64)
        .bind(format!("1.{n}"))
        .bind(dates.get(n).copied())
        .bind(times.get(n).copied())
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    sqlx::raw_sql(include_str!("../../migrations/sqlite/0002_query.sql"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT study_date, study_date_key, study_time, study_time_key, \
         referring_physician_name_upper FROM study ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), times.len().max(dates.len()));
    for row in rows {
        let text = |i| row.get::<Option<String>, _>(i);
        assert_eq!(
            text(1),
            sortable(VR::DA, text(0).as_deref()),
            "{:?}",
            text(0)
        );
        assert_eq!(
            text(3),
            sortable(VR::TM, text(2).as_deref()),
            "{:?}",
            text(2)
        );
        assert_eq!(text(4).as_deref(), Some("HOUSE^GREGORY"));
    }
}

/// The migration that adds the study summaries fills them for rows indexed before it as the
/// insert path keeps them.
#[tokio::test]
async fn study_summary_backfill() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for migration in [
        include_str!("../../migrations/sqlite/0001_initial.sql"),
        include_str!("../../migrations/sqlite/0002_query.sql"),
        include_str!("../../migrations/sqlite/0003_peer_transport.sql"),
        include_str!("../../migrations/sqlite/0004_users.sql"),
        include_str!("../../migrations/sqlite/0005_api_tokens.sql"),
    ] {
        sqlx::raw_sql(migration).execute(&mut *conn).await.unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO patient (id, patient_id, issuer_of_patient_id) VALUES (1, 'P', ''); \
         INSERT INTO study (id, patient_fk, study_instance_uid) \
             VALUES (1, 1, '1.1'), (2, 1, '1.2'), (3, 1, '1.3'); \
         INSERT INTO series (id, study_fk, series_instance_uid, modality) \
             VALUES (1, 1, '1.1.1', 'MR'), (2, 1, '1.1.2', NULL), (3, 1, '1.1.3', 'CT'), \
                    (4, 1, '1.1.4', 'MR'), (5, 2, '1.2.1', NULL);",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for (n, series) in [1, 1, 2, 3, 4, 5, 5, 5].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO instance (series_fk, sop_instance_uid, sop_class_uid, \
             transfer_syntax_uid, size, blob_key, received_at) \
             VALUES ($1, $2, '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', 1, 'k', 0)",
        )
        .bind(series)
        .bind(format!("9.{n}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    sqlx::raw_sql(include_str!(
        "../../migrations/sqlite/0006_study_summary.sql"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let rows: Vec<(i64, i64, Option<String>)> =
        sqlx::query_as("SELECT series_count, instance_count, modalities FROM study ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let sorted = |joined: &Option<String>| {
        joined.as_ref().map(|j| {
            let mut values: Vec<&str> = j.split(',').collect();
            values.sort_unstable();
            values.join("\\")
        })
    };
    let rows: Vec<_> = rows
        .iter()
        .map(|(series, instances, modalities)| (*series, *instances, sorted(modalities)))
        .collect();
    assert_eq!(
        rows,
        [
            (4, 5, Some("CT\\MR".to_owned())),
            (1, 3, None),
            (0, 0, None),
        ]
    );
}

#[test]
fn candidate_budget() {
    let mut budget = find::Budget::default();
    for _ in 0..find::MAX_HEADER_CANDIDATES {
        budget.spend().unwrap();
    }
    assert!(matches!(
        budget.spend(),
        Err(IndexError::TooBroad { max_candidates }) if max_candidates == find::MAX_HEADER_CANDIDATES
    ));
}

#[test]
fn query_errors_convert() {
    let err: IndexError = QueryError::TooManyKeys.into();
    assert!(err.to_string().contains("256"));
}
