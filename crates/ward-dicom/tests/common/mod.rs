//! Helpers shared by the integration tests: hand-built explicit VR little endian elements and
//! Part 10 files.

#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

use std::io::Write;
use std::path::PathBuf;

use ward_types::Uid;

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

pub fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

/// An explicit VR little endian element.
pub fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
    } else {
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// Writes Ward's Part 10 header and `dataset` to a new file in `dir`.
pub fn part10_file(dir: &tempfile::TempDir, name: &str, ts: &str, dataset: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    ward_dicom::write_part10_header(
        &mut file,
        &uid(CT_IMAGE_STORAGE),
        &uid("1.2.3.4.5.6.7"),
        &uid(ts),
    )
    .unwrap();
    file.write_all(dataset).unwrap();
    path
}
