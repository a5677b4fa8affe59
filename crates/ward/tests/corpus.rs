//! pydicom's bundled test files as an ingest corpus: every valid storage object is stored, and
//! what Ward keeps parses (with pydicom, not with our own code) to the data set that was sent.

#![allow(clippy::unwrap_used)]

mod pydicom_corpus;

use std::collections::BTreeMap;
use std::path::Path;

use pydicom_corpus::CorpusFile;
use ward_index::Index;
use ward_test_support::{WardServer, data_dir_with_peers, python_script, stored_plaintext};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

#[test]
fn pydicom_corpus_is_stored_faithfully() {
    let bin = Path::new(WARD);
    let (candidates, not_storage) = pydicom_corpus::storage_files();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    let mut stored = 0;
    let passes = pydicom_corpus::passes(&candidates);
    for pass in &passes {
        let (ok, no) = store_pass(bin, pass);
        stored += ok;
        refused.extend(no);
    }
    println!(
        "corpus: {} candidates, {stored} stored in {} passes, {} refused, {not_storage} other files",
        candidates.len(),
        passes.len(),
        refused.len(),
    );
    for (name, why) in &refused {
        println!("refused {name}: {why}");
    }
    pydicom_corpus::assert_expected_refusals(&refused);
}

/// Stores the files into a fresh archive, then checks every stored blob's plaintext against its
/// source with pydicom. Returns the number stored and the refusals with the reason Ward gave.
fn store_pass(bin: &Path, files: &[&CorpusFile]) -> (usize, BTreeMap<String, String>) {
    let dir = data_dir_with_peers(bin, &[("CORPUS", "127.0.0.1", "store")]);
    let server = WardServer::start(bin, &dir.path().join("data"));
    let (stored, refused) = pydicom_corpus::store_each(bin, &server, "CORPUS", files);
    // Every stored file's blob parses to the same data set. Blobs are sealed on disk: pydicom
    // gets their plaintext, as Ward reads it.
    let plain = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pairs: Vec<String> = rt.block_on(async {
        let index = ward_index::SqliteIndex::open(&server.data.join("index.sqlite"), false)
            .await
            .unwrap();
        let mut pairs = Vec::new();
        for (path, info) in stored.iter().copied() {
            let row = index
                .instance(&info.sop_instance_uid)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{} acknowledged but not indexed", path.display()));
            let blob = plain.path().join(&row.blob_key);
            std::fs::write(&blob, stored_plaintext(&server.data, &row.blob_key)).unwrap();
            pairs.push(path.to_string_lossy().into_owned());
            pairs.push(blob.to_string_lossy().into_owned());
        }
        index.close().await;
        pairs
    });
    let cmp = python_script("compare.py").args(&pairs).output().unwrap();
    assert!(
        cmp.status.success(),
        "stored data sets differ from what was sent:\n{}{}",
        String::from_utf8_lossy(&cmp.stdout),
        String::from_utf8_lossy(&cmp.stderr)
    );
    let count = stored.len();
    drop(server);
    (count, refused)
}
