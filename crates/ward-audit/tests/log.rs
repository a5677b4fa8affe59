//! The audit log through its public API, on real files: round trips, group commit, crash
//! recovery, and verification against each kind of tampering.

#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use ward_audit::{
    Action, Actor, AuditError, AuditEvent, AuditLog, AuditOptions, OpenWarning, Outcome,
    ProblemKind, VerifyReport, generate_signing_key, public_key_from_pkcs8, read, verify,
};

struct Keys {
    private: Vec<u8>,
    public: Vec<u8>,
}

fn keys() -> Keys {
    let private = generate_signing_key().unwrap();
    let public = public_key_from_pkcs8(&private).unwrap();
    Keys { private, public }
}

fn store(i: u64) -> AuditEvent {
    AuditEvent::new(
        Action::Store,
        Actor {
            ae_title: Some("CT1".into()),
            address: Some("127.0.0.1:40000".into()),
            ..Actor::default()
        },
    )
    .with_detail(json!({"sop_instance_uid": format!("1.2.826.0.1.{i}"), "patient_id": "PID-7"}))
}

/// Checkpoints every 10 records and never on a timer, so tests know where they are.
fn every_ten() -> AuditOptions {
    AuditOptions {
        checkpoint_every_records: 10,
        checkpoint_interval: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

/// A closed log of `n` store records, appended one at a time.
async fn write_log(dir: &Path, keys: &Keys, n: u64, options: AuditOptions) {
    let log = AuditLog::open_with(dir, &keys.private, options)
        .await
        .unwrap();
    for i in 1..=n {
        assert_eq!(log.append(store(i)).await.unwrap(), i);
    }
    log.close().await.unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit-")
        })
        .collect();
    paths.sort();
    paths
}

fn only_segment(dir: &Path) -> PathBuf {
    let all = segments(dir);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// A fresh log directory. A subdirectory, because the temporary directory itself may be
/// readable by others, which open() would fix and record.
fn log_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    (tmp, dir)
}

fn checkpoints(dir: &Path) -> PathBuf {
    dir.join("checkpoints.jsonl")
}

fn kinds(report: &VerifyReport) -> Vec<(ProblemKind, Option<u64>)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind.clone(), p.seq))
        .collect()
}

fn read_all(dir: &Path, since: Option<i64>) -> Vec<ward_audit::AuditRecord> {
    read(dir, since)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test]
async fn append_then_read_round_trips() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let events = [
        AuditEvent::new(
            Action::AssociationStart,
            Actor {
                ae_title: Some("CT1".into()),
                user: Some("jane".into()),
                address: Some("10.0.0.5:4100".into()),
                certificate: Some("CN=ct1,O=Hospital".into()),
            },
        ),
        AuditEvent::new(Action::Query, Actor::default())
            .with_detail(json!({"keys": {"PatientID": "P\"1\n"}, "matches": 3}))
            .with_outcome(Outcome::Failure {
                status: Some(0xA700),
                reason: "too many matches".into(),
            }),
        store(3),
    ];

    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    assert!(log.warnings().is_empty());
    for (i, event) in events.iter().enumerate() {
        assert_eq!(log.append(event.clone()).await.unwrap(), i as u64 + 1);
    }
    log.close().await.unwrap();

    let records = read_all(&dir, None);
    assert_eq!(records.len(), 3);
    let stored = lines(&only_segment(&dir));
    let mut prev = [0; 32];
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1);
        assert_eq!(record.event, events[i]);
        assert_eq!(record.prev_hash, prev);
        assert_eq!(record.to_json_line().unwrap(), stored[i]);
        assert!(record.time_rfc3339().ends_with('Z'));
        prev = record.hash;
    }
    assert!(verify(&dir, &keys.public).unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_group_committed_into_one_chain() {
    const TASKS: u64 = 64;
    const EACH: u64 = 10;
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open_with(&dir, &keys.private, every_ten())
        .await
        .unwrap();

    let mut handles = Vec::new();
    for task in 0..TASKS {
        let log = Arc::clone(&log);
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..EACH {
                let event = store(task * 1000 + i).with_detail(json!({"task": task, "i": i}));
                let seq = log.append(event).await.unwrap();
                // Durability: the answer comes after the batch's fdatasync, which is what
                // moves durable_seq.
                assert!(log.stats().durable_seq >= seq);
                mine.push((seq, task, i));
            }
            mine
        }));
    }
    let mut sent = HashMap::new();
    for handle in handles {
        let mine = handle.await.unwrap();
        // One task's appends are sequential, so they take increasing places in the chain.
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        for (seq, task, i) in mine {
            assert!(
                sent.insert(seq, (task, i)).is_none(),
                "seq {seq} given twice"
            );
        }
    }

    let stats = log.stats();
    let total = TASKS * EACH;
    assert_eq!(stats.records, total);
    assert_eq!(stats.durable_seq, total);
    assert!(
        stats.syncs < total,
        "{} syncs for {total} records: no batching",
        stats.syncs
    );
    log.close().await.unwrap();

    // The chain holds every record once, in the order of the sequence numbers handed out.
    let records = read_all(&dir, None);
    assert_eq!(records.len() as u64, total);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.seq, index as u64 + 1);
        let (task, i) = sent[&record.seq];
        assert_eq!(record.event.detail, json!({"task": task, "i": i}));
    }
    let report = verify(&dir, &keys.public).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.last_checkpoint_seq, total);
}

#[tokio::test]
async fn append_answers_only_after_its_batch_is_synced() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    for i in 1..=5 {
        let seq = log.append(store(i)).await.unwrap();
        let stats = log.stats();
        assert_eq!(stats.durable_seq, seq);
        assert_eq!(stats.syncs, i, "one fdatasync per sequential append");
        // Another reader sees the record as soon as append returned.
        assert_eq!(read_all(&dir, None).last().unwrap().seq, seq);
    }
    log.close().await.unwrap();
}

#[tokio::test]
async fn segments_rotate_and_the_chain_continues_across_reopen() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let options = AuditOptions {
        segment_max_bytes: 2048,
        ..every_ten()
    };
    write_log(&dir, &keys, 30, options.clone()).await;
    let before = segments(&dir).len();
    assert!(before > 3, "{before} segments");

    let log = AuditLog::open_with(&dir, &keys.private, options)
        .await
        .unwrap();
    assert!(log.warnings().is_empty());
    for i in 31..=45 {
        assert_eq!(log.append(store(i)).await.unwrap(), i);
    }
    log.close().await.unwrap();
    assert!(segments(&dir).len() > before);

    let report = verify(&dir, &keys.public).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.records, 45);
    assert_eq!(report.last_seq, 45);
    // At 10, 20, 30, 40, and 45 on the last close (the first close found 30 signed already).
    assert_eq!(report.checkpoints, 5);
    assert_eq!(report.last_checkpoint_seq, 45);
    let seqs: Vec<u64> = read_all(&dir, None).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=45).collect::<Vec<_>>());
}

#[tokio::test]
async fn verify_detects_a_flipped_byte() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 20, every_ten()).await;
    let segment = only_segment(&dir);
    let mut all = lines(&segment);
    all[4] = all[4].replace("1.2.826.0.1.5", "1.2.826.0.1.6");
    write_lines(&segment, &all);

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(kinds(&report), [(ProblemKind::ModifiedRecord, Some(5))]);
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.line, 5);
    assert!(problem.to_string().contains("record 5"), "{problem}");
    // read() refuses to hand the modified record out as valid.
    let results: Vec<_> = read(&dir, None).unwrap().collect();
    assert!(matches!(
        results[4],
        Err(AuditError::ModifiedRecord { seq: 5, .. })
    ));
}

#[tokio::test]
async fn verify_detects_a_deleted_record() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 20, every_ten()).await;
    let segment = only_segment(&dir);
    let mut all = lines(&segment);
    all.remove(4);
    write_lines(&segment, &all);

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::MissingRecords { count: 1 }, Some(5))]
    );
}

#[tokio::test]
async fn verify_detects_swapped_records() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 20, every_ten()).await;
    let segment = only_segment(&dir);
    let mut all = lines(&segment);
    all.swap(4, 5);
    write_lines(&segment, &all);

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(kinds(&report), [(ProblemKind::Reordered, Some(5))]);
}

#[tokio::test]
async fn verify_detects_a_truncated_tail() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    // Checkpoints at 10, 20 and (close) 25.
    write_log(&dir, &keys, 25, every_ten()).await;
    let segment = only_segment(&dir);
    let all = lines(&segment);
    write_lines(&segment, &all[..17]);

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::TruncatedTail { last_seq: 17 }, Some(25))]
    );

    // The writer refuses to continue such a log rather than reuse sequence numbers that a
    // signed checkpoint already covers.
    let reopened = AuditLog::open_with(&dir, &keys.private, every_ten()).await;
    assert!(matches!(reopened, Err(AuditError::Corrupt { .. })));
}

#[tokio::test]
async fn verify_detects_forged_checkpoints() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 20, every_ten()).await;
    let path = checkpoints(&dir);
    let original = lines(&path);
    assert_eq!(original.len(), 2);

    // Moving a checkpoint to another record breaks its signature.
    let mut moved = original.clone();
    moved[1] = moved[1].replace(r#""seq":20"#, r#""seq":19"#);
    write_lines(&path, &moved);
    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::BadCheckpointSignature, Some(19))]
    );

    // A checkpoint signed by another key is no checkpoint: signing a shortened log with it
    // does not hide the truncation either.
    let other = keys_signing(&keys, &dir).await;
    let mut forged = original.clone();
    forged.push(other);
    write_lines(&path, &forged);
    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::BadCheckpointSignature, Some(20))]
    );
}

/// A checkpoint over the same log's last record, signed with a key that is not `keys`.
async fn keys_signing(keys: &Keys, dir: &Path) -> String {
    let (_copy_tmp, copy) = log_dir();
    fs::DirBuilder::new().mode(0o700).create(&copy).unwrap();
    for segment in segments(dir) {
        fs::copy(&segment, copy.join(segment.file_name().unwrap())).unwrap();
    }
    let forger = self::keys();
    assert_ne!(forger.public, keys.public);
    let log = AuditLog::open(&copy, &forger.private).await.unwrap();
    log.checkpoint().await.unwrap();
    log.close().await.unwrap();
    lines(&checkpoints(&copy)).pop().unwrap()
}

#[tokio::test]
async fn verify_detects_a_rewritten_chain_through_its_checkpoints() {
    // An attacker without the key rebuilds the whole chain with record 5 changed: every hash
    // and link is consistent, but the signed checkpoints no longer match.
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 20, every_ten()).await;

    let (_forged_tmp, forged) = log_dir();
    let forger = self::keys();
    let log = AuditLog::open_with(&forged, &forger.private, every_ten())
        .await
        .unwrap();
    for i in 1..=20 {
        let event = if i == 5 { store(555) } else { store(i) };
        log.append(event).await.unwrap();
    }
    log.close().await.unwrap();
    let segment = only_segment(&dir);
    fs::copy(only_segment(&forged), &segment).unwrap();

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(
        kinds(&report),
        [
            (ProblemKind::CheckpointMismatch, Some(10)),
            (ProblemKind::CheckpointMismatch, Some(20)),
        ]
    );
}

#[tokio::test]
async fn every_single_byte_change_is_detected() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    log.append(store(1)).await.unwrap();
    log.append(
        AuditEvent::new(Action::Query, Actor::default())
            .with_detail(json!({"keys": {"PatientName": "D\u{f6}e*"}, "matches": 1.5})),
    )
    .await
    .unwrap();
    log.append(store(3)).await.unwrap();
    log.close().await.unwrap();
    assert!(verify(&dir, &keys.public).unwrap().is_ok());

    for path in [only_segment(&dir), checkpoints(&dir)] {
        let original = fs::read(&path).unwrap();
        for position in 0..original.len() {
            for change in [original[position] ^ 0x01, b' ', b'0'] {
                if change == original[position] {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[position] = change;
                fs::write(&path, &bytes).unwrap();
                let report = verify(&dir, &keys.public).unwrap();
                assert!(
                    !report.is_ok(),
                    "{} byte {position} set to {change:?} went unnoticed",
                    path.display()
                );
            }
        }
        fs::write(&path, &original).unwrap();
    }
}

#[tokio::test]
async fn reopen_after_a_torn_write_cuts_it_and_continues_the_chain() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 5, every_ten()).await;
    let segment = only_segment(&dir);
    let intact = fs::read(&segment).unwrap();
    // A crash mid-write: half of a record, no newline.
    let last = lines(&segment).pop().unwrap();
    let torn = &last.as_bytes()[..40];
    let mut bytes = intact.clone();
    bytes.extend_from_slice(torn);
    fs::write(&segment, &bytes).unwrap();

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(kinds(&report), [(ProblemKind::TornWrite, None)]);
    // A reader takes the partial line for a write in progress and stops before it.
    assert_eq!(read_all(&dir, None).len(), 5);

    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    let [
        OpenWarning::TornTail {
            bytes: cut,
            saved_as,
            ..
        },
    ] = log.warnings()
    else {
        panic!("{:?}", log.warnings());
    };
    assert_eq!(*cut, torn.len() as u64);
    assert_eq!(fs::read(saved_as).unwrap(), torn);
    // Seq 6 records the repair itself.
    assert_eq!(log.append(store(7)).await.unwrap(), 7);
    log.close().await.unwrap();

    let report = verify(&dir, &keys.public).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let records = read_all(&dir, None);
    assert_eq!(records.len(), 7);
    assert_eq!(records[5].event.action, Action::SecurityAlert);
    assert_eq!(records[5].event.detail["audit_log"], "torn_tail_truncated");
    assert_eq!(records[5].prev_hash, records[4].hash);
}

#[tokio::test]
async fn reopen_cuts_zero_filled_blocks_a_crash_can_leave() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 3, every_ten()).await;
    let segment = only_segment(&dir);
    let mut bytes = fs::read(&segment).unwrap();
    // The file grew but the first block of the new data never reached the disk.
    bytes.extend_from_slice(&[0; 100]);
    bytes.extend_from_slice(b"\"seq\":5}\n");
    fs::write(&segment, &bytes).unwrap();

    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    assert!(matches!(
        log.warnings(),
        [OpenWarning::TornTail { bytes: 109, .. }]
    ));
    assert_eq!(log.append(store(5)).await.unwrap(), 5);
    log.close().await.unwrap();
    assert!(verify(&dir, &keys.public).unwrap().is_ok());
}

#[tokio::test]
async fn reopen_refuses_a_damaged_last_record() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 3, every_ten()).await;
    let segment = only_segment(&dir);
    let mut all = lines(&segment);
    all[2] = all[2].replace("PID-7", "PID-8");
    write_lines(&segment, &all);
    let reopened = AuditLog::open(&dir, &keys.private).await;
    assert!(matches!(reopened, Err(AuditError::Corrupt { .. })));
}

#[tokio::test]
async fn since_filters_by_time_across_segments() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    // Every batch starts a new segment, so `since` can skip whole files.
    let options = AuditOptions {
        segment_max_bytes: 1,
        ..every_ten()
    };
    let log = AuditLog::open_with(&dir, &keys.private, options)
        .await
        .unwrap();
    for i in 1..=6 {
        log.append(store(i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    log.close().await.unwrap();
    assert_eq!(segments(&dir).len(), 6);

    let all = read_all(&dir, None);
    let since = all[3].time_unix_ms;
    assert!(since > all[2].time_unix_ms);
    let recent: Vec<u64> = read_all(&dir, Some(since)).iter().map(|r| r.seq).collect();
    assert_eq!(recent, [4, 5, 6]);
    assert!(read_all(&dir, Some(all[5].time_unix_ms + 1)).is_empty());
    assert_eq!(read_all(&dir, Some(0)).len(), 6);
}

#[tokio::test]
async fn a_second_writer_is_locked_out() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    assert!(matches!(
        AuditLog::open(&dir, &keys.private).await,
        Err(AuditError::Locked { .. })
    ));
    log.close().await.unwrap();
    let again = AuditLog::open(&dir, &keys.private).await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn closed_log_refuses_appends() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    log.append(store(1)).await.unwrap();
    log.close().await.unwrap();
    log.close().await.unwrap();
    assert!(matches!(
        log.append(store(2)).await,
        Err(AuditError::Closed)
    ));
    assert!(matches!(log.checkpoint().await, Err(AuditError::Closed)));
}

#[tokio::test]
async fn files_are_private_and_loosened_ones_are_fixed_and_recorded() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 1, every_ten()).await;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&only_segment(&dir)), 0o600);
    assert_eq!(mode(&checkpoints(&dir)), 0o600);

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    assert_eq!(
        log.warnings(),
        [OpenWarning::PermissionsTightened { path: dir.clone() }]
    );
    log.close().await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    let last = read_all(&dir, None).pop().unwrap();
    assert_eq!(last.event.action, Action::SecurityAlert);
}

#[tokio::test]
async fn oversized_events_are_refused() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open(&dir, &keys.private).await.unwrap();
    let huge = store(1).with_detail(json!({"x": "a".repeat(ward_audit::MAX_EVENT_BYTES)}));
    assert!(matches!(
        log.append(huge).await,
        Err(AuditError::EventTooLarge { .. })
    ));
    assert_eq!(log.append(store(1)).await.unwrap(), 1);
    log.close().await.unwrap();
}

#[tokio::test]
async fn checkpoints_follow_the_timer_when_records_arrive() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let options = AuditOptions {
        checkpoint_every_records: 1000,
        checkpoint_interval: Duration::from_millis(50),
        ..AuditOptions::default()
    };
    let log = AuditLog::open_with(&dir, &keys.private, options)
        .await
        .unwrap();
    log.append(store(1)).await.unwrap();
    for _ in 0..100 {
        if log.stats().checkpoints == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log.stats().checkpoints, 1);
    // Nothing new: the timer signs nothing more.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(log.stats().checkpoints, 1);
    assert_eq!(lines(&checkpoints(&dir)).len(), 1);
    log.close().await.unwrap();
    assert_eq!(lines(&checkpoints(&dir)).len(), 1);
}

#[tokio::test]
async fn verify_needs_the_right_key() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 3, every_ten()).await;
    let other = self::keys();
    let report = verify(&dir, &other.public).unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::BadCheckpointSignature, Some(3))]
    );
    assert!(matches!(
        verify(&dir, &[0; 5]),
        Err(AuditError::InvalidPublicKey)
    ));
    assert!(matches!(
        AuditLog::open(&dir, b"not a key").await,
        Err(AuditError::InvalidSigningKey)
    ));
}

#[tokio::test]
async fn garbage_is_reported_never_trusted() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    write_log(&dir, &keys, 3, every_ten()).await;
    let segment = only_segment(&dir);
    let mut bytes = fs::read(&segment).unwrap();
    // A line far over the cap, binary junk, and many short bad lines.
    bytes.extend(std::iter::repeat_n(
        b'{',
        ward_audit::MAX_EVENT_BYTES + 4096,
    ));
    bytes.push(b'\n');
    bytes.extend((0..=255u8).cycle().take(70_000).filter(|&b| b != b'\n'));
    bytes.push(b'\n');
    for i in 0..2000 {
        bytes.extend(format!("{{\"seq\":{i}}}\n").as_bytes());
    }
    fs::write(&segment, &bytes).unwrap();

    let report = verify(&dir, &keys.public).unwrap();
    assert_eq!(report.problems.len(), 1000);
    assert!(report.problems_omitted > 0);
    assert!(matches!(
        report.problems[0].kind,
        ProblemKind::Unparseable { .. }
    ));
    assert_eq!(report.problems[0].line, 4);

    let results: Vec<_> = read(&dir, None).unwrap().collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(matches!(
        results[3],
        Err(AuditError::Unparseable { line: 4, .. })
    ));

    // The writer will not continue a chain it cannot find the end of.
    assert!(matches!(
        AuditLog::open(&dir, &keys.private).await,
        Err(AuditError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn dropping_the_last_handle_checkpoints_and_releases_the_log() {
    let (_tmp, dir) = log_dir();
    let keys = keys();
    let log = AuditLog::open_with(&dir, &keys.private, every_ten())
        .await
        .unwrap();
    for i in 1..=3 {
        log.append(store(i)).await.unwrap();
    }
    drop(log);
    // The writer finishes on its own thread; the lock goes when it is done.
    let mut reopened = None;
    for _ in 0..250 {
        match AuditLog::open_with(&dir, &keys.private, every_ten()).await {
            Ok(log) => {
                reopened = Some(log);
                break;
            }
            Err(AuditError::Locked { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let log = reopened.expect("the writer released the log");
    assert!(
        lines(&checkpoints(&dir))
            .last()
            .unwrap()
            .contains(r#""seq":3,"#)
    );
    log.close().await.unwrap();
    assert!(verify(&dir, &keys.public).unwrap().is_ok());
}
