//! Where an object waits for its checks: in memory while it is small and a slot is free, in a
//! spool file otherwise. Either way the stored object is the same, and nothing is left behind.

#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use ward_index::{Index, SqliteIndex};
use ward_ingest::{Ingest, IngestError, IngestLimits, StoreRequest, Stored};
use ward_test_support::dicom::{EXPLICIT_VR_LE, Synthetic};
use ward_types::Uid;

struct Setup {
    dir: tempfile::TempDir,
    ingest: Arc<Ingest>,
    index: Arc<SqliteIndex>,
}

impl Setup {
    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }
}

async fn setup(limits: IngestLimits) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keyring = ward_store::Keyring::generate().unwrap();
    let store =
        ward_store::LocalBlobStore::open(&dir.path().join("store"), Arc::new(keyring)).unwrap();
    let index = Arc::new(
        SqliteIndex::open(&dir.path().join("index.sqlite"), true)
            .await
            .unwrap(),
    );
    let audit_dir = dir.path().join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let key = ward_audit::generate_signing_key().unwrap();
    let audit = ward_audit::AuditLog::open(&audit_dir, &key).await.unwrap();
    std::fs::create_dir(dir.path().join("spool")).unwrap();
    let ingest = Arc::new(Ingest::new(
        Arc::new(store),
        index.clone(),
        audit,
        dir.path().join("spool"),
        limits,
    ));
    Setup { dir, ingest, index }
}

fn request(object: &Synthetic) -> StoreRequest {
    StoreRequest {
        sop_class: Uid::parse(&object.sop_class).unwrap(),
        sop_instance: Uid::parse(&object.sop_instance).unwrap(),
        transfer_syntax: Uid::parse(EXPLICIT_VR_LE).unwrap(),
        source_ae: Some("TEST".into()),
        actor: ward_audit::Actor::default(),
        expected_study: None,
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Sends `object` in 16 KiB pieces, as DCMTK's PDVs arrive; returns the writer, not committed.
async fn send(setup: &Setup, object: &Synthetic) -> ward_ingest::SpoolWriter {
    let mut writer = setup.ingest.begin(request(object)).await.unwrap();
    for piece in object.dataset_bytes(EXPLICIT_VR_LE).chunks(16 * 1024) {
        writer.write(piece).await.unwrap();
    }
    writer
}

/// The data set as stored, read back through the blob store.
async fn stored_dataset(setup: &Setup, object: &Synthetic) -> Vec<u8> {
    let row = setup
        .index
        .instance(&Uid::parse(&object.sop_instance).unwrap())
        .await
        .unwrap()
        .expect("indexed");
    let (mut reader, len) = setup.ingest.open_dataset(&row).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    assert_eq!(out.len() as u64, len);
    // The same data set as pieces handed over without a copy.
    let (pieces, pieces_len) = setup.ingest.open_dataset_pieces(&row).await.unwrap();
    let pieces: Vec<_> = pieces.map(Result::unwrap).collect().await;
    assert_eq!(pieces_len, len);
    assert_eq!(pieces.concat(), out);
    out
}

fn image(side: u16) -> Synthetic {
    Synthetic {
        rows: side,
        columns: side,
        ..Synthetic::ct()
    }
}

#[tokio::test]
async fn small_objects_never_touch_the_spool_folder() {
    let setup = setup(IngestLimits::default()).await;
    let object = image(256); // 128 KiB of pixels
    let writer = send(&setup, &object).await;
    assert_eq!(files_in(&setup.spool()), 0, "kept in memory");
    assert!(matches!(writer.commit().await, Ok(Stored::New { .. })));
    assert_eq!(
        stored_dataset(&setup, &object).await,
        object.dataset_bytes(EXPLICIT_VR_LE)
    );
    assert_eq!(files_in(&setup.spool()), 0);
}

#[tokio::test]
async fn a_large_object_moves_to_a_spool_file_and_is_stored_the_same() {
    let setup = setup(IngestLimits::default()).await;
    let object = image(1200); // 2.9 MB of pixels: past the memory spool's 2 MiB
    let writer = send(&setup, &object).await;
    assert_eq!(files_in(&setup.spool()), 1, "spilled to a file");
    assert!(matches!(writer.commit().await, Ok(Stored::New { .. })));
    assert_eq!(
        stored_dataset(&setup, &object).await,
        object.dataset_bytes(EXPLICIT_VR_LE)
    );
    assert_eq!(files_in(&setup.spool()), 0, "the spool file is removed");
}

#[tokio::test]
async fn past_the_memory_slots_objects_go_to_files() {
    let setup = setup(IngestLimits::default()).await;
    let objects: Vec<Synthetic> = (0..20).map(|_| image(64)).collect();
    let mut writers = Vec::new();
    for object in &objects {
        writers.push(send(&setup, object).await);
    }
    // Sixteen slots in memory; the other four wait in files.
    assert_eq!(files_in(&setup.spool()), 4);
    for writer in writers {
        assert!(matches!(writer.commit().await, Ok(Stored::New { .. })));
    }
    for object in &objects {
        assert_eq!(
            stored_dataset(&setup, object).await,
            object.dataset_bytes(EXPLICIT_VR_LE)
        );
    }
    assert_eq!(files_in(&setup.spool()), 0);
    // The slots came back: the next object is in memory again.
    let _writer = send(&setup, &image(64)).await;
    assert_eq!(files_in(&setup.spool()), 0);
}

#[tokio::test]
async fn abandoned_and_refused_objects_leave_nothing() {
    let limits = IngestLimits {
        max_object_bytes: 3 << 20,
        ..IngestLimits::default()
    };
    let setup = setup(limits).await;
    // Abandoned mid-transfer, in memory and in a file.
    drop(send(&setup, &image(64)).await);
    let mut big = setup.ingest.begin(request(&image(1200))).await.unwrap();
    big.write(&vec![0u8; 2_200_000]).await.unwrap();
    assert_eq!(files_in(&setup.spool()), 1);
    drop(big);
    // Over the size cap.
    let mut over = setup.ingest.begin(request(&image(64))).await.unwrap();
    over.write(&vec![0u8; 3 << 20]).await.unwrap();
    assert!(matches!(
        over.write(&[0u8; 1]).await,
        Err(IngestError::TooLarge { .. })
    ));
    drop(over);
    // Malformed: not a data set at all.
    let mut junk = setup.ingest.begin(request(&image(64))).await.unwrap();
    junk.write(&[0xff; 1000]).await.unwrap();
    assert!(junk.commit().await.is_err());

    assert_eq!(files_in(&setup.spool()), 0);
    assert_eq!(files_in(&setup.dir.path().join("store").join("tmp")), 0);
}
