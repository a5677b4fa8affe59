//! pydicom's bundled test files as an ingest corpus: every valid storage object is stored, and
//! what Ward keeps parses (with pydicom, not with our own code) to the data set that was sent.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ward_index::Index;
use ward_test_support::{WardServer, data_dir_with_peers, pydicom_test_files, python_script, ward};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// Files of the corpus that Ward refuses, each for a reason that makes the file invalid as a
/// storage object. Anything refused that is not listed here fails the test, and so does a
/// listed file that Ward accepts (the list must stay true).
const EXPECTED_REFUSALS: &[(&str, &str)] = &[
    // Study Instance UID is Type 1 in every image IOD; these four files lack it.
    ("JPEGLSNearLossless_08.dcm", "no Study Instance UID"),
    ("JPEGLSNearLossless_16.dcm", "no Study Instance UID"),
    ("SC_rgb_jls_lossy_line.dcm", "no Study Instance UID"),
    ("SC_rgb_jls_lossy_sample.dcm", "no Study Instance UID"),
    // Cut short on purpose by pydicom's authors.
    ("MR_truncated.dcm", "truncated"),
    ("rtplan_truncated.dcm", "truncated"),
    // The meta group declares JPEG Baseline (explicit VR) but the data set is implicit VR.
    (
        "SC_rgb_jpeg.dcm",
        "data set encoded in another transfer syntax than declared",
    ),
    // Undefined-length UN holding implicit VR content: dicom-rs 0.10 reads such content in the
    // file's own transfer syntax and can be made to allocate gigabytes, so the pre-scan
    // refuses what dicom-object would misread (see ward-dicom's prescan documentation).
    ("UN_sequence.dcm", "undefined-length UN"),
    // PS3.10 §7.1: the meta group's Media Storage SOP Instance UID must equal the data set's
    // SOP Instance UID. In these files they differ, or the data set has none.
    ("badVR.dcm", "meta and data set SOP Instance UIDs differ"),
    ("priv_SQ.dcm", "data set has no SOP Instance UID"),
    ("rtdose.dcm", "meta and data set SOP Instance UIDs differ"),
    (
        "rtdose_1frame.dcm",
        "meta and data set SOP Instance UIDs differ",
    ),
    (
        "rtdose_expb.dcm",
        "meta and data set SOP Instance UIDs differ",
    ),
    (
        "rtdose_expb_1frame.dcm",
        "meta and data set SOP Instance UIDs differ",
    ),
    ("rtplan.dcm", "meta and data set SOP Instance UIDs differ"),
];

/// Several corpus files are the same SOP instance in other encodings (MR_small.dcm in big
/// endian, RLE, JPEG…): different content under one SOP Instance UID, which Ward rightly refuses
/// as a duplicate. Each pass therefore stores at most one file per UID into a fresh archive.
#[test]
fn pydicom_corpus_is_stored_faithfully() {
    let bin = Path::new(WARD);
    let corpus = pydicom_test_files();
    let mut candidates: Vec<(PathBuf, ward_dicom::Part10Info)> = Vec::new();
    let mut not_storage = 0;
    for entry in std::fs::read_dir(&corpus).unwrap().flatten() {
        let path = entry.path();
        match ward_dicom::read_part10_info(&path) {
            Ok(info)
                if ward_dicom::is_storage_sop_class(info.sop_class_uid.as_str())
                    && ward_dicom::is_readable_transfer_syntax(info.transfer_syntax.as_str()) =>
            {
                candidates.push((path, info));
            }
            _ => not_storage += 1,
        }
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        candidates.len() >= 40,
        "only {} candidates in {}",
        candidates.len(),
        corpus.display()
    );

    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    let mut stored = 0;
    let mut remaining: Vec<&(PathBuf, ward_dicom::Part10Info)> = candidates.iter().collect();
    let mut passes = 0;
    while !remaining.is_empty() {
        passes += 1;
        let mut seen = BTreeSet::new();
        let (this_pass, later): (Vec<_>, Vec<_>) = remaining
            .into_iter()
            .partition(|(_, info)| seen.insert(info.sop_instance_uid.clone()));
        remaining = later;
        let (ok, no) = store_pass(bin, &this_pass);
        stored += ok;
        refused.extend(no);
    }
    println!(
        "corpus: {} candidates, {stored} stored in {passes} passes, {} refused, {not_storage} other files",
        candidates.len(),
        refused.len(),
    );
    for (name, why) in &refused {
        println!("refused {name}: {why}");
    }
    let expected: BTreeMap<&str, &str> = EXPECTED_REFUSALS.iter().copied().collect();
    let unexpected: Vec<&String> = refused
        .keys()
        .filter(|k| !expected.contains_key(k.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "unexpected refusals: {unexpected:?}");
    let accepted_anyway: Vec<&&str> = expected
        .keys()
        .filter(|k| !refused.contains_key(**k))
        .collect();
    assert!(
        accepted_anyway.is_empty(),
        "listed as refused but stored: {accepted_anyway:?}"
    );
}

/// Stores each file with its own `ward store` run (so one refusal cannot hide the files after
/// it) into a fresh archive, then checks every stored blob against its source with pydicom.
/// Returns the number stored and the refusals with the reason Ward gave.
fn store_pass(
    bin: &Path,
    files: &[&(PathBuf, ward_dicom::Part10Info)],
) -> (usize, BTreeMap<String, String>) {
    let dir = data_dir_with_peers(bin, &[("CORPUS", "127.0.0.1", "store")]);
    let server = WardServer::start(bin, &dir.path().join("data"));
    let mut refused = BTreeMap::new();
    let mut stored = Vec::new();
    for item in files {
        let out = ward(
            bin,
            &[
                "store",
                &server.addr(),
                item.0.to_str().unwrap(),
                "--aet",
                "CORPUS",
            ],
        );
        let name = item.0.file_name().unwrap().to_string_lossy().into_owned();
        if out.status.success() {
            stored.push(*item);
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.split(": ").skip(1).collect::<Vec<_>>().join(": ");
            refused.insert(name, why.trim().to_owned());
        }
    }
    // Every stored file's blob parses to the same data set.
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
            let key = &row.blob_key;
            let blob = server
                .data
                .join("blobs")
                .join(&key[0..2])
                .join(&key[2..4])
                .join(key);
            assert!(blob.is_file(), "{} has no blob", path.display());
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
