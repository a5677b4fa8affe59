//! pydicom's bundled test files as storage objects, for the tests that store all of them
//! (`corpus.rs`, `roundtrip.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ward_test_support::{WardServer, pydicom_test_files, ward};

/// A storage object of the corpus and what its meta group says.
pub type CorpusFile = (PathBuf, ward_dicom::Part10Info);

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

/// The corpus files whose meta group names a storage SOP class and a transfer syntax Ward
/// reads, sorted by path, and the number of other files.
pub fn storage_files() -> (Vec<CorpusFile>, usize) {
    let corpus = pydicom_test_files();
    let mut files = Vec::new();
    let mut others = 0;
    for entry in std::fs::read_dir(&corpus).unwrap().flatten() {
        let path = entry.path();
        match ward_dicom::read_part10_info(&path) {
            Ok(info)
                if ward_dicom::is_storage_sop_class(info.sop_class_uid.as_str())
                    && ward_dicom::is_readable_transfer_syntax(info.transfer_syntax.as_str()) =>
            {
                files.push((path, info));
            }
            _ => others += 1,
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        files.len() >= 40,
        "only {} storage files in {}",
        files.len(),
        corpus.display()
    );
    (files, others)
}

/// Several corpus files are the same SOP instance in other encodings (MR_small.dcm in big
/// endian, RLE, JPEG…): different content under one SOP Instance UID, which Ward rightly refuses
/// as a duplicate. The files are therefore split into passes, each holding at most one file per
/// UID, for a fresh archive each.
pub fn passes(files: &[CorpusFile]) -> Vec<Vec<&CorpusFile>> {
    let mut remaining: Vec<&CorpusFile> = files.iter().collect();
    let mut passes = Vec::new();
    while !remaining.is_empty() {
        let mut seen = BTreeSet::new();
        let (this_pass, later): (Vec<_>, Vec<_>) = remaining
            .into_iter()
            .partition(|(_, info)| seen.insert(info.sop_instance_uid.clone()));
        passes.push(this_pass);
        remaining = later;
    }
    passes
}

/// Stores each file with its own `ward store` run as `aet` (so one refusal cannot hide the files
/// after it). Returns the files stored and the refusals, by file name, with the reason Ward gave.
pub fn store_each<'a>(
    bin: &Path,
    server: &WardServer,
    aet: &str,
    files: &[&'a CorpusFile],
) -> (Vec<&'a CorpusFile>, BTreeMap<String, String>) {
    let mut stored = Vec::new();
    let mut refused = BTreeMap::new();
    for item in files {
        let path = item.0.to_str().unwrap();
        let out = ward(bin, &["store", &server.addr(), path, "--aet", aet]);
        if out.status.success() {
            stored.push(*item);
        } else {
            let name = item.0.file_name().unwrap().to_string_lossy().into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.split(": ").skip(1).collect::<Vec<_>>().join(": ");
            refused.insert(name, why.trim().to_owned());
        }
    }
    (stored, refused)
}

/// Fails unless the refused files are exactly [`EXPECTED_REFUSALS`].
pub fn assert_expected_refusals(refused: &BTreeMap<String, String>) {
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
