//! Writing Ward's Part 10 header and checking the meta information of files Ward is handed.

#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

mod common;

use common::{CT_IMAGE_STORAGE, EXPLICIT_LE, element, uid};
use ward_dicom::{
    Part10Error, PrescanError, PrescanLimits, prescan_part10_file, read_part10_info,
    read_part10_info_from, write_part10_header,
};

fn header(ts: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let len = write_part10_header(
        &mut out,
        &uid(CT_IMAGE_STORAGE),
        &uid("1.2.3.4.5.6.7"),
        &uid(ts),
    )
    .unwrap();
    assert_eq!(len, out.len() as u64);
    out
}

fn info(bytes: &[u8]) -> Result<ward_dicom::Part10Info, Part10Error> {
    read_part10_info_from(bytes, bytes.len() as u64)
}

/// A file from a preamble, "DICM", a group length and meta elements written by hand.
fn file(
    preamble: &[u8; 128],
    group_len: Option<u32>,
    elements: &[Vec<u8>],
    dataset: &[u8],
) -> Vec<u8> {
    let group: Vec<u8> = elements.concat();
    let len = group_len.unwrap_or(group.len() as u32);
    [
        &preamble[..],
        b"DICM",
        &element((0x0002, 0x0000), b"UL", &len.to_le_bytes()),
        &group,
        dataset,
    ]
    .concat()
}

fn meta_elements(ts: &[u8]) -> Vec<Vec<u8>> {
    vec![
        element((0x0002, 0x0001), b"OB", &[0, 1]),
        element((0x0002, 0x0002), b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
        element((0x0002, 0x0003), b"UI", b"1.2.3.4\0"),
        element((0x0002, 0x0010), b"UI", ts),
    ]
}

const DATASET: &[u8] = &[0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'C', b'T'];

#[test]
fn written_headers_are_deterministic_and_read_back() {
    let bytes = header(EXPLICIT_LE);
    assert_eq!(bytes, header(EXPLICIT_LE));
    assert!(bytes[..128].iter().all(|&b| b == 0));
    assert_eq!(&bytes[128..132], b"DICM");
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap());
    assert_eq!(u64::from(group_len) + 144, bytes.len() as u64);

    let with_data = [bytes.clone(), DATASET.to_vec()].concat();
    let info = info(&with_data).unwrap();
    assert_eq!(info.sop_class_uid.as_str(), CT_IMAGE_STORAGE);
    assert_eq!(info.sop_instance_uid.as_str(), "1.2.3.4.5.6.7");
    assert_eq!(info.transfer_syntax.as_str(), EXPLICIT_LE);
    assert_eq!(info.dataset_offset, bytes.len() as u64);
    assert_eq!(info.file_len, with_data.len() as u64);

    // The reader is left exactly at the data set.
    let mut reader = &with_data[..];
    read_part10_info_from(&mut reader, with_data.len() as u64).unwrap();
    assert_eq!(reader, DATASET);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.dcm");
    std::fs::write(&path, &with_data).unwrap();
    assert_eq!(
        read_part10_info(&path).unwrap().dataset_offset,
        bytes.len() as u64
    );
}

#[test]
fn hand_written_meta_groups_are_checked() {
    let ok = file(
        &[0; 128],
        None,
        &meta_elements(b"1.2.840.10008.1.2.1\0"),
        DATASET,
    );
    assert_eq!(info(&ok).unwrap().transfer_syntax.as_str(), EXPLICIT_LE);

    // An executable preamble is ignored, not refused.
    let mut pe = [0u8; 128];
    pe[..2].copy_from_slice(b"MZ");
    let polyglot = file(&pe, None, &meta_elements(b"1.2.840.10008.1.2.1\0"), DATASET);
    assert!(info(&polyglot).is_ok());

    let mut not_dicom = ok.clone();
    not_dicom[128..132].copy_from_slice(b"DICN");
    assert!(matches!(info(&not_dicom), Err(Part10Error::NotDicom)));
    assert!(matches!(info(&ok[..140]), Err(Part10Error::TooShort)));
    // Starting at "DICM" without a preamble is refused.
    assert!(info(&ok[128..]).is_err());

    let no_group_length = [
        &[0u8; 128][..],
        b"DICM",
        &meta_elements(b"1.2.840.10008.1.2.1\0").concat(),
        DATASET,
    ]
    .concat();
    assert!(matches!(
        info(&no_group_length),
        Err(Part10Error::MissingGroupLength)
    ));

    let huge = file(
        &[0; 128],
        Some(1 << 20),
        &meta_elements(b"1.2.840.10008.1.2.1\0"),
        &vec![0; 1 << 20],
    );
    assert!(matches!(info(&huge), Err(Part10Error::MetaTooLarge { .. })));
    let past_end = file(
        &[0; 128],
        Some(60_000),
        &meta_elements(b"1.2.840.10008.1.2.1\0"),
        DATASET,
    );
    assert!(matches!(
        info(&past_end),
        Err(Part10Error::Truncated { .. })
    ));

    // Group length one element short: a group 0002 element is left in front of the data set.
    let mut elements = meta_elements(b"1.2.840.10008.1.2.1\0");
    elements.push(element((0x0002, 0x0012), b"UI", b"1.2.3.4.5\0"));
    let short = (elements.concat().len() - elements[4].len()) as u32;
    let short = file(&[0; 128], Some(short), &elements, DATASET);
    assert!(
        info(&short).is_ok(),
        "only the pre-scan can see past the group"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.dcm");
    std::fs::write(&path, &short).unwrap();
    let err = prescan_part10_file(&path, &PrescanLimits::default()).unwrap_err();
    assert!(
        matches!(err, PrescanError::UnexpectedTag { offset: 0, .. }),
        "{err:?}"
    );
    // Group length reaching into the data set.
    let long = (elements.concat().len() + DATASET.len()) as u32;
    let long = file(&[0; 128], Some(long), &elements, DATASET);
    assert!(matches!(info(&long), Err(Part10Error::GroupLengthMismatch)));
    // Group length ending inside an element.
    let inside = elements.concat().len() as u32 - 3;
    let inside = file(&[0; 128], Some(inside), &elements, DATASET);
    assert!(matches!(
        info(&inside),
        Err(Part10Error::GroupLengthMismatch)
    ));

    let mut no_ts = meta_elements(b"");
    no_ts.pop();
    let no_ts = file(&[0; 128], None, &no_ts, DATASET);
    assert!(matches!(
        info(&no_ts),
        Err(Part10Error::Missing {
            attribute: "TransferSyntaxUID"
        })
    ));
    let bad_uid = file(&[0; 128], None, &meta_elements(b"1.2/../3"), DATASET);
    assert!(matches!(
        info(&bad_uid),
        Err(Part10Error::InvalidUid {
            attribute: "TransferSyntaxUID",
            ..
        })
    ));
    let mut repeated = meta_elements(b"1.2.840.10008.1.2.1\0");
    repeated.push(element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2\0"));
    let repeated = file(&[0; 128], None, &repeated, DATASET);
    assert!(matches!(
        info(&repeated),
        Err(Part10Error::Malformed { .. })
    ));
    let mut bad_vr = meta_elements(b"1.2.840.10008.1.2.1\0");
    bad_vr[1][4..6].copy_from_slice(b"ZZ");
    let bad_vr = file(&[0; 128], None, &bad_vr, DATASET);
    assert!(matches!(info(&bad_vr), Err(Part10Error::Malformed { .. })));
}
