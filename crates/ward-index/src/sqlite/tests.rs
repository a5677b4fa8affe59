use std::sync::Arc;

use ward_types::{InstanceAttributes, Operation};

use super::*;

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn instance(study: &str, series: &str, sop: &str, blob_key: String) -> NewInstance {
    NewInstance {
        attrs: InstanceAttributes {
            patient_id: Some("PID-1".into()),
            patient_name: Some("Doe^Jané".into()),
            patient_sex: Some("O".into()),
            study_instance_uid: Some(uid(study)),
            study_date: Some("20240102".into()),
            accession_number: Some("ACC1".into()),
            series_instance_uid: Some(uid(series)),
            modality: Some("CT".into()),
            sop_class_uid: Some(uid("1.2.840.10008.5.1.4.1.1.2")),
            sop_instance_uid: Some(uid(sop)),
            instance_number: Some("1".into()),
            rows: Some(512),
            columns: Some(256),
            ..InstanceAttributes::default()
        },
        header: Vec::new(),
        transfer_syntax: uid("1.2.840.10008.1.2.1"),
        size: 1234,
        blob_key,
        source_ae: Some("MODALITY".into()),
        received_at_unix_ms: 1_700_000_000_000,
    }
}

async fn open_temp() -> (tempfile::TempDir, PathBuf, SqliteIndex) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteIndex::open(&path, true).await.unwrap();
    (dir, path, index)
}

fn counts(patients: u64, studies: u64, series: u64, instances: u64) -> Counts {
    Counts {
        patients,
        studies,
        series,
        instances,
    }
}

/// Recounts the tables the slow way, to check the maintained counters.
async fn recount(index: &SqliteIndex) -> Counts {
    let mut c = Counts::default();
    for (table, slot) in [
        ("patient", &mut c.patients),
        ("study", &mut c.studies),
        ("series", &mut c.series),
        ("instance", &mut c.instances),
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&index.readers)
            .await
            .unwrap();
        *slot = u64::try_from(n).unwrap();
    }
    c
}

/// Checks every study's summary columns against their definition, computed the slow way.
async fn check_study_summaries(index: &SqliteIndex) {
    let rows = sqlx::query(
        "SELECT st.study_instance_uid, st.series_count, st.instance_count, st.modalities, \
         (SELECT COUNT(*) FROM series s WHERE s.study_fk = st.id), \
         (SELECT COUNT(*) FROM series s JOIN instance i ON i.series_fk = s.id \
          WHERE s.study_fk = st.id), \
         (SELECT group_concat(DISTINCT s.modality) FROM series s WHERE s.study_fk = st.id) \
         FROM study st",
    )
    .fetch_all(&index.readers)
    .await
    .unwrap();
    let sorted = |joined: Option<String>| {
        joined.map(|j| {
            let mut values: Vec<String> = j.split(',').map(str::to_owned).collect();
            values.sort();
            values
        })
    };
    for row in rows {
        let study: String = row.get(0);
        assert_eq!(
            row.get::<i64, _>(1),
            row.get::<i64, _>(4),
            "series of {study}"
        );
        assert_eq!(
            row.get::<i64, _>(2),
            row.get::<i64, _>(5),
            "instances of {study}"
        );
        assert_eq!(
            sorted(row.get(3)),
            sorted(row.get(6)),
            "modalities of {study}"
        );
    }
}

#[tokio::test]
async fn insert_then_read_back() {
    let (_dir, _path, index) = open_temp().await;
    let new = instance("1.2.3", "1.2.3.4", "1.2.3.4.5", key(1));
    assert_eq!(
        index.insert_instance(&new).await.unwrap(),
        InsertOutcome::Inserted
    );

    let row = index.instance(&uid("1.2.3.4.5")).await.unwrap().unwrap();
    assert_eq!(
        row,
        InstanceRow {
            sop_instance_uid: uid("1.2.3.4.5"),
            sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.2"),
            study_instance_uid: uid("1.2.3"),
            series_instance_uid: uid("1.2.3.4"),
            transfer_syntax: uid("1.2.840.10008.1.2.1"),
            size: 1234,
            blob_key: key(1),
        }
    );
    assert!(index.instance(&uid("9.9")).await.unwrap().is_none());
    assert!(index.has_blob(&key(1)).await.unwrap());
    assert!(!index.has_blob(&key(2)).await.unwrap());
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));

    let (name, upper, pid, issuer): (String, String, String, String) = sqlx::query_as(
        "SELECT patient_name, patient_name_upper, patient_id, issuer_of_patient_id FROM patient",
    )
    .fetch_one(&index.readers)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), upper.as_str(), pid.as_str()),
        ("Doe^Jané", "DOE^JANÉ", "PID-1")
    );
    assert_eq!(issuer, "", "an absent issuer is stored as the empty string");
    let (rows, cols, ae): (i64, i64, String) =
        sqlx::query_as("SELECT pixel_rows, pixel_columns, source_ae FROM instance")
            .fetch_one(&index.readers)
            .await
            .unwrap();
    assert_eq!((rows, cols, ae.as_str()), (512, 256, "MODALITY"));
}

#[tokio::test]
async fn same_uid_same_key_is_already_stored() {
    let (_dir, _path, index) = open_temp().await;
    let new = instance("1.2.3", "1.2.3.4", "1.2.3.4.5", key(1));
    index.insert_instance(&new).await.unwrap();
    assert_eq!(
        index.insert_instance(&new).await.unwrap(),
        InsertOutcome::AlreadyStored
    );
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));
}

#[tokio::test]
async fn same_uid_other_key_is_a_conflict_and_changes_nothing() {
    let (_dir, _path, index) = open_temp().await;
    let original = instance("1.2.3", "1.2.3.4", "1.2.3.4.5", key(1));
    index.insert_instance(&original).await.unwrap();
    let before = index.instance(&uid("1.2.3.4.5")).await.unwrap();

    // Different content, and even a different study: still nothing may be written.
    let mut other = instance("7.7", "7.7.7", "1.2.3.4.5", key(2));
    other.size = 99;
    assert_eq!(
        index.insert_instance(&other).await.unwrap(),
        InsertOutcome::Conflict {
            existing_blob_key: key(1)
        }
    );
    assert_eq!(index.instance(&uid("1.2.3.4.5")).await.unwrap(), before);
    assert!(!index.has_blob(&key(2)).await.unwrap());
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));
    assert_eq!(recount(&index).await, counts(1, 1, 1, 1));
    check_study_summaries(&index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_uid_insert_once() {
    let (_dir, _path, index) = open_temp().await;
    let index: Arc<dyn Index> = Arc::new(index);
    let task = |n: u8| {
        let index = Arc::clone(&index);
        // Half the racers carry other content, so both losing outcomes occur.
        let new = instance("1.2.3", "1.2.3.4", "1.2.3.4.5", key(n % 2));
        tokio::spawn(async move { (n % 2, index.insert_instance(&new).await.unwrap()) })
    };
    let results = tokio::join!(
        task(0),
        task(1),
        task(2),
        task(3),
        task(4),
        task(5),
        task(6),
        task(7)
    );
    let results = [
        results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
    ]
    .map(Result::unwrap);

    let winners: Vec<u8> = results
        .iter()
        .filter(|(_, outcome)| *outcome == InsertOutcome::Inserted)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0];
    for (k, outcome) in &results {
        let expected = if *k == winner {
            InsertOutcome::AlreadyStored
        } else {
            InsertOutcome::Conflict {
                existing_blob_key: key(winner),
            }
        };
        assert!(*outcome == InsertOutcome::Inserted || *outcome == expected);
    }
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));
}

#[tokio::test]
async fn study_and_series_rows_are_shared() {
    let (_dir, _path, index) = open_temp().await;
    let first = instance("1.2.3", "1.2.3.1", "1.2.3.1.1", key(1));
    index.insert_instance(&first).await.unwrap();

    // Same study, new series; its study attributes differ but the first instance's win.
    let mut second = instance("1.2.3", "1.2.3.2", "1.2.3.2.1", key(2));
    second.attrs.accession_number = Some("OTHER".into());
    index.insert_instance(&second).await.unwrap();
    index
        .insert_instance(&instance("1.2.3", "1.2.3.2", "1.2.3.2.2", key(3)))
        .await
        .unwrap();
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 2, 3));

    let accession: String = sqlx::query_scalar("SELECT accession_number FROM study")
        .fetch_one(&index.readers)
        .await
        .unwrap();
    assert_eq!(accession, "ACC1");

    // Same patient ID from another issuer is another patient; so is a missing patient ID.
    let mut other_issuer = instance("4.5", "4.5.1", "4.5.1.1", key(4));
    other_issuer.attrs.issuer_of_patient_id = Some("HOSPITAL-B".into());
    index.insert_instance(&other_issuer).await.unwrap();
    let mut anonymous = instance("6.7", "6.7.1", "6.7.1.1", key(5));
    anonymous.attrs.patient_id = None;
    index.insert_instance(&anonymous).await.unwrap();
    let mut anonymous_too = instance("6.8", "6.8.1", "6.8.1.1", key(6));
    anonymous_too.attrs.patient_id = None;
    index.insert_instance(&anonymous_too).await.unwrap();
    assert_eq!(index.counts().await.unwrap(), counts(3, 4, 5, 6));
    assert_eq!(recount(&index).await, counts(3, 4, 5, 6));
    check_study_summaries(&index).await;
}

#[tokio::test]
async fn study_summaries_follow_inserts() {
    let (_dir, _path, index) = open_temp().await;
    let with_modality = |series: &str, sop: &str, n: u8, modality: Option<&str>| {
        let mut new = instance("1.2.3", series, sop, key(n));
        new.attrs.modality = modality.map(str::to_owned);
        new
    };
    for new in [
        with_modality("1.2.3.1", "1.2.3.1.1", 1, Some("MR")),
        with_modality("1.2.3.1", "1.2.3.1.2", 2, Some("MR")),
        with_modality("1.2.3.2", "1.2.3.2.1", 3, None),
        with_modality("1.2.3.3", "1.2.3.3.1", 4, Some("CT")),
        with_modality("1.2.3.4", "1.2.3.4.1", 5, Some("MR")),
        with_modality("1.2.3.5", "1.2.3.5.1", 6, Some("CT")),
    ] {
        index.insert_instance(&new).await.unwrap();
    }
    // Neither a repeat nor a conflict nor a refused instance counts.
    index
        .insert_instance(&with_modality("1.2.3.1", "1.2.3.1.1", 1, Some("MR")))
        .await
        .unwrap();
    index
        .insert_instance(&with_modality("1.2.3.6", "1.2.3.1.1", 9, Some("PT")))
        .await
        .unwrap();
    assert!(
        index
            .insert_instance(&instance("4.5", "1.2.3.3", "1.2.3.3.2", key(11)))
            .await
            .is_err()
    );
    let (series, instances, modalities): (i64, i64, String) = sqlx::query_as(
        "SELECT series_count, instance_count, modalities FROM study \
         WHERE study_instance_uid = '1.2.3'",
    )
    .fetch_one(&index.readers)
    .await
    .unwrap();
    assert_eq!((series, instances), (5, 6));
    let mut modalities: Vec<&str> = modalities.split(',').collect();
    modalities.sort_unstable();
    assert_eq!(modalities, ["CT", "MR"]);
    check_study_summaries(&index).await;
}

#[tokio::test]
async fn required_attributes_and_hierarchy_are_checked() {
    let (_dir, _path, index) = open_temp().await;
    let mut missing = instance("1.2", "1.2.3", "1.2.3.4", key(1));
    missing.attrs.series_instance_uid = None;
    assert!(matches!(
        index.insert_instance(&missing).await,
        Err(IndexError::MissingAttribute("SeriesInstanceUID"))
    ));

    index
        .insert_instance(&instance("1.2", "1.2.3", "1.2.3.4", key(1)))
        .await
        .unwrap();
    // Series 1.2.3 belongs to study 1.2; an instance claiming it under study 5.6 is refused
    // and the study it would have created is rolled back.
    assert!(matches!(
        index
            .insert_instance(&instance("5.6", "1.2.3", "1.2.3.5", key(2)))
            .await,
        Err(IndexError::SeriesInOtherStudy)
    ));
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));
    assert_eq!(recount(&index).await, counts(1, 1, 1, 1));
}

#[tokio::test]
async fn instances_page_walks_everything_in_order() {
    let (_dir, _path, index) = open_temp().await;
    let mut expected = Vec::new();
    for n in 1..=25u8 {
        let sop = format!("1.2.3.4.{n}");
        index
            .insert_instance(&instance("1.2.3", "1.2.3.4", &sop, key(n)))
            .await
            .unwrap();
        expected.push(sop);
    }
    expected.sort();

    let mut seen = Vec::new();
    let mut after: Option<Uid> = None;
    loop {
        let page = index.instances_page(after.as_ref(), 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.sop_instance_uid.clone());
        seen.extend(page.into_iter().map(|r| r.sop_instance_uid.to_string()));
    }
    assert_eq!(seen, expected);
    assert!(index.instances_page(None, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn ae_registry() {
    let (_dir, _path, index) = open_temp().await;
    let peer = |aet: &str, host: &str, port: Option<u16>, allow: &str| AePeer {
        aet: AeTitle::parse(aet).unwrap(),
        host: host.parse().unwrap(),
        port,
        allow: allow.parse().unwrap(),
        cert_sha256: None,
        legacy_plain: false,
        identity: Default::default(),
    };
    let ct = AePeer {
        cert_sha256: Some([7u8; 32]),
        legacy_plain: true,
        ..peer("CT1", "10.0.0.7", Some(104), "echo,store")
    };
    let viewer = peer("VIEWER", "10.1.0.0/16", None, "echo,find,get,move");
    let nothing = peer("LOCKED", "::1", Some(0), "");

    let aet = |s: &str| AeTitle::parse(s).unwrap();
    assert!(index.ae_get(&aet("CT1")).await.unwrap().is_none());
    index.ae_add(&viewer).await.unwrap();
    index.ae_add(&ct).await.unwrap();
    index.ae_add(&nothing).await.unwrap();
    assert!(matches!(
        index.ae_add(&peer("CT1", "10.9.9.9", None, "find")).await,
        Err(IndexError::AlreadyExists)
    ));

    let got = index.ae_get(&aet("CT1")).await.unwrap().unwrap();
    assert_eq!(got, ct);
    assert!(got.allow.contains(Operation::Store) && !got.allow.contains(Operation::Find));
    assert!(
        index.ae_get(&aet("ct1")).await.unwrap().is_none(),
        "titles are case-sensitive"
    );
    assert_eq!(
        index.ae_list().await.unwrap(),
        vec![ct.clone(), nothing.clone(), viewer.clone()]
    );

    assert!(index.ae_remove(&aet("CT1")).await.unwrap());
    assert!(!index.ae_remove(&aet("CT1")).await.unwrap());
    assert!(index.ae_get(&aet("CT1")).await.unwrap().is_none());
    assert_eq!(index.ae_list().await.unwrap(), vec![nothing, viewer]);
}

#[tokio::test]
async fn damaged_rows_are_errors_not_panics() {
    let (_dir, _path, index) = open_temp().await;
    sqlx::query("INSERT INTO ae_peer (aet, host, port, allow) VALUES ('X', 'not-an-ip', 1, '')")
        .execute(&index.writer)
        .await
        .unwrap();
    assert!(matches!(
        index.ae_get(&AeTitle::parse("X").unwrap()).await,
        Err(IndexError::Corrupt("ae_peer.host"))
    ));
    index
        .insert_instance(&instance("1.2", "1.2.3", "1.2.3.4", key(1)))
        .await
        .unwrap();
    sqlx::query("UPDATE instance SET sop_class_uid = '../../etc'")
        .execute(&index.writer)
        .await
        .unwrap();
    assert!(matches!(
        index.instance(&uid("1.2.3.4")).await,
        Err(IndexError::Corrupt("instance.sop_class_uid"))
    ));
}

#[tokio::test]
async fn reopening_keeps_data_and_the_file_is_private() {
    let (dir, path, index) = open_temp().await;
    index
        .insert_instance(&instance("1.2", "1.2.3", "1.2.3.4", key(1)))
        .await
        .unwrap();
    let peer = AePeer {
        aet: AeTitle::parse("CT1").unwrap(),
        host: "127.0.0.1".parse().unwrap(),
        port: None,
        allow: "echo".parse().unwrap(),
        cert_sha256: None,
        legacy_plain: false,
        identity: Default::default(),
    };
    index.ae_add(&peer).await.unwrap();
    index.close().await;

    let index = SqliteIndex::open(&path, false).await.unwrap();
    assert_eq!(
        index
            .instance(&uid("1.2.3.4"))
            .await
            .unwrap()
            .unwrap()
            .blob_key,
        key(1)
    );
    assert_eq!(index.counts().await.unwrap(), counts(1, 1, 1, 1));
    assert_eq!(index.ae_list().await.unwrap(), vec![peer]);

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&index.readers)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    // Readers keep their larger page cache (the writer keeps SQLite's default).
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&index.readers)
        .await
        .unwrap();
    assert_eq!(cache.to_string(), READER_CACHE);
    // Readers cannot write, whatever a future caller tries.
    assert!(
        sqlx::query("DELETE FROM ae_peer")
            .execute(&index.readers)
            .await
            .is_err()
    );
    index.close().await;

    let missing = dir.path().join("absent.db");
    assert!(matches!(
        SqliteIndex::open(&missing, false).await,
        Err(IndexError::NotFound(_))
    ));
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_loose_file_mode_is_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let index = SqliteIndex::open(&path, false).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    index.close().await;
}

/// The lookups must be index searches: their cost may not grow with the number of rows.
#[tokio::test]
async fn read_queries_use_indexes() {
    let (_dir, _path, index) = open_temp().await;
    for (sql, params) in [
        (INSTANCE_BY_UID, 1),
        (INSTANCES_PAGE, 2),
        (HAS_BLOB, 1),
        (AE_GET, 1),
    ] {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for _ in 0..params {
            query = query.bind("1");
        }
        // Columns: id, parent, notused, detail.
        let plan: Vec<String> = query
            .fetch_all(&index.readers)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(3))
            .collect();
        assert!(!plan.is_empty(), "{sql}");
        for step in &plan {
            assert!(
                !step.starts_with("SCAN") && !step.contains("TEMP B-TREE"),
                "{sql}\n{plan:?}"
            );
        }
    }
}

#[tokio::test]
async fn bulk_insert_is_insert_instance_with_one_commit() {
    let (_dir, _path, index) = open_temp().await;
    index
        .insert_instance(&instance("1.2", "1.2.1", "1.2.1.1", key(1)))
        .await
        .unwrap();
    let mut other_patient = instance("3.4", "3.4.1", "3.4.1.1", key(4));
    other_patient.attrs.patient_id = Some("PID-2".into());
    let batch = [
        instance("1.2", "1.2.1", "1.2.1.1", key(1)),
        instance("1.2", "1.2.1", "1.2.1.1", key(9)),
        instance("1.2", "1.2.2", "1.2.2.1", key(2)),
        instance("1.2", "1.2.2", "1.2.2.2", key(3)),
        other_patient,
        // A repeat within the batch sees the rows written earlier in it.
        instance("1.2", "1.2.2", "1.2.2.2", key(3)),
    ];
    let outcomes = index.bulk_insert(&batch).await.unwrap();
    assert_eq!(
        outcomes,
        [
            InsertOutcome::AlreadyStored,
            InsertOutcome::Conflict {
                existing_blob_key: key(1)
            },
            InsertOutcome::Inserted,
            InsertOutcome::Inserted,
            InsertOutcome::Inserted,
            InsertOutcome::AlreadyStored,
        ]
    );
    assert_eq!(index.counts().await.unwrap(), counts(2, 2, 3, 4));
    assert_eq!(recount(&index).await, counts(2, 2, 3, 4));
    let row = index.instance(&uid("3.4.1.1")).await.unwrap().unwrap();
    assert_eq!(row.blob_key, key(4));

    // One refused instance rolls back the whole batch, rows and counts.
    let refused = [
        instance("5.6", "5.6.1", "5.6.1.1", key(5)),
        instance("7.8", "1.2.1", "1.2.1.9", key(6)),
    ];
    assert!(matches!(
        index.bulk_insert(&refused).await,
        Err(IndexError::SeriesInOtherStudy)
    ));
    assert!(index.instance(&uid("5.6.1.1")).await.unwrap().is_none());
    assert_eq!(index.counts().await.unwrap(), counts(2, 2, 3, 4));
    assert_eq!(recount(&index).await, counts(2, 2, 3, 4));
    check_study_summaries(&index).await;
}

#[tokio::test]
async fn api_tokens_are_found_by_hash_listed_and_revoked() {
    let (_dir, _path, index) = open_temp().await;
    let name = ward_types::UserName::parse("pipeline").unwrap();
    let token = crate::ApiTokenRecord {
        name: name.clone(),
        role: ward_types::Role::Modality,
        token_hash: key(7),
        created_at_unix_ms: 1,
        expires_at_unix_ms: Some(2),
        revoked_at_unix_ms: None,
    };
    index.token_add(&token).await.unwrap();
    assert!(matches!(
        index.token_add(&token).await,
        Err(IndexError::AlreadyExists)
    ));
    assert_eq!(
        index.token_by_hash(&key(7)).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(index.token_by_hash(&key(8)).await.unwrap(), None);
    assert!(index.token_revoke(&name, 5).await.unwrap());
    assert!(!index.token_revoke(&name, 6).await.unwrap(), "revoked once");
    let listed = index.token_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at_unix_ms, Some(5));
}
