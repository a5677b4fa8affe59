//! `read_header` on files written by hand and by dicom-object.

#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

mod common;

use common::{EXPLICIT_LE, element, part10_file};
use ward_dicom::{HeaderError, PrescanLimits, prescan_part10_file, read_header};

fn dataset(charset: &[u8], patient_name: &[u8], study_uid: &[u8]) -> Vec<u8> {
    [
        element((0x0008, 0x0005), b"CS", charset),
        element((0x0008, 0x0016), b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
        element((0x0008, 0x0018), b"UI", b"1.2.3.4.5.6.7\0"),
        element((0x0008, 0x0020), b"DA", b"20240102"),
        element((0x0008, 0x0050), b"SH", b""),
        element((0x0008, 0x0060), b"CS", b"CT"),
        element((0x0010, 0x0010), b"PN", patient_name),
        element((0x0010, 0x0020), b"LO", b" ID-1 "),
        element((0x0020, 0x000D), b"UI", study_uid),
        element((0x0020, 0x000E), b"UI", b"1.2.3.4.5.6.8\0"),
        element((0x0020, 0x0013), b"IS", b"7 "),
        element((0x0028, 0x0010), b"US", &512u16.to_le_bytes()),
        element((0x0028, 0x0011), b"US", &256u16.to_le_bytes()),
        element((0x7FE0, 0x0010), b"OW", &[0; 8]),
    ]
    .concat()
}

fn read(
    charset: &[u8],
    patient_name: &[u8],
    study_uid: &[u8],
) -> Result<ward_types::InstanceAttributes, HeaderError> {
    let dir = tempfile::tempdir().unwrap();
    let path = part10_file(
        &dir,
        "x.dcm",
        EXPLICIT_LE,
        &dataset(charset, patient_name, study_uid),
    );
    prescan_part10_file(&path, &PrescanLimits::default()).unwrap();
    read_header(&path)
}

#[test]
fn latin1_names_are_decoded() {
    // "Müller^Renée" in ISO 8859-1.
    let name = b"M\xfcller^Ren\xe9e";
    let attrs = read(b"ISO_IR 100", name, b"1.2.3.4.5.6.9\0").unwrap();
    assert_eq!(attrs.patient_name.as_deref(), Some("Müller^Renée"));
    assert_eq!(attrs.specific_character_set.as_deref(), Some("ISO_IR 100"));
    assert_eq!(attrs.patient_id.as_deref(), Some("ID-1"));
    assert_eq!(attrs.modality.as_deref(), Some("CT"));
    assert_eq!(attrs.study_date.as_deref(), Some("20240102"));
    assert_eq!(attrs.accession_number, None, "empty is None");
    assert_eq!(attrs.study_description, None, "absent is None");
    assert_eq!(attrs.instance_number.as_deref(), Some("7"));
    assert_eq!(attrs.rows, Some(512));
    assert_eq!(attrs.columns, Some(256));
    assert_eq!(attrs.study_instance_uid.unwrap().as_str(), "1.2.3.4.5.6.9");
    assert_eq!(attrs.series_instance_uid.unwrap().as_str(), "1.2.3.4.5.6.8");
    assert_eq!(attrs.sop_instance_uid.unwrap().as_str(), "1.2.3.4.5.6.7");
    assert_eq!(
        attrs.sop_class_uid.unwrap().as_str(),
        "1.2.840.10008.5.1.4.1.1.2"
    );
}

#[test]
fn utf8_names_are_decoded() {
    let name = "Wang^XiaoDong=王^小東".as_bytes();
    assert_eq!(name.len() % 2, 0);
    let attrs = read(b"ISO_IR 192", name, b"1.2.3.4.5.6.9\0").unwrap();
    assert_eq!(attrs.patient_name.as_deref(), Some("Wang^XiaoDong=王^小東"));
}

#[test]
fn an_invalid_study_uid_is_an_error() {
    let err = read(b"ISO_IR 100", b"Doe^John", b"1.2/../3").unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::InvalidUid {
                attribute: "StudyInstanceUID",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_not_dicom_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, [0u8; 200]).unwrap();
    assert!(matches!(read_header(&path), Err(HeaderError::Read(_))));
}

#[test]
fn attributes_sent_as_un_are_decoded() {
    let data = [
        element((0x0008, 0x0005), b"CS", b"ISO_IR 100"),
        element((0x0010, 0x0010), b"UN", b"M\xfcller^Ren\xe9e"),
        element((0x0020, 0x000D), b"UN", b"1.2.3.4.5.6.9\0"),
        element((0x0028, 0x0010), b"UN", &512u16.to_le_bytes()),
        element((0x0028, 0x0011), b"UN", b""),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = part10_file(&dir, "un.dcm", EXPLICIT_LE, &data);
    prescan_part10_file(&path, &PrescanLimits::default()).unwrap();
    let attrs = read_header(&path).unwrap();
    assert_eq!(attrs.patient_name.as_deref(), Some("Müller^Renée"));
    assert_eq!(attrs.study_instance_uid.unwrap().as_str(), "1.2.3.4.5.6.9");
    assert_eq!(attrs.rows, Some(512));
    assert_eq!(attrs.columns, None);
}

/// An item of defined length holding `elements`.
fn item(elements: &[Vec<u8>]) -> Vec<u8> {
    let body = elements.concat();
    let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn the_header_copy_is_utf8_capped_and_stops_before_pixel_data() {
    use dicom_dictionary_std::tags;
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    use dicom_object::InMemDicomObject;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    use ward_dicom::{HEADER_COPY_MAX_LEN, prescan_dataset, read_header_with_copy};

    let big_text = vec![b'x'; 30_000];
    let data = [
        element((0x0008, 0x0000), b"UL", &100u32.to_le_bytes()),
        element((0x0008, 0x0005), b"CS", b"ISO_IR 100"),
        element((0x0008, 0x0016), b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
        element((0x0008, 0x0018), b"UI", b"1.2.3.4.5.6.7\0"),
        element(
            (0x0008, 0x1032),
            b"SQ",
            &item(&[element((0x0008, 0x0100), b"SH", b"ABC ")]),
        ),
        element((0x0009, 0x0010), b"LO", b"WARD"),
        element((0x0009, 0x1001), b"OB", &[7; 2000]),
        element((0x0010, 0x0010), b"PN", b"M\xfcller^Ren\xe9e"),
        element((0x0013, 0x0010), b"LO", b"WARD"),
        element(
            (0x0013, 0x1001),
            b"SQ",
            &item(&[
                element((0x0013, 0x1002), b"UT", &big_text),
                element((0x0013, 0x1003), b"UT", &big_text),
                element((0x0013, 0x1004), b"UT", &big_text),
            ]),
        ),
        element((0x0020, 0x000D), b"UI", b"1.2.3.4.5.6.9\0"),
        element((0x0020, 0x000E), b"UI", b"1.2.3.4.5.6.8\0"),
        element((0x7FE0, 0x0010), b"OW", &[0; 8]),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = part10_file(&dir, "copy.dcm", EXPLICIT_LE, &data);
    prescan_part10_file(&path, &PrescanLimits::default()).unwrap();
    let (attrs, copy) = read_header_with_copy(&path).unwrap();
    assert_eq!(attrs, read_header(&path).unwrap());
    assert!(copy.len() <= HEADER_COPY_MAX_LEN);

    // The copy is itself a data set the pre-scan accepts.
    let summary = prescan_dataset(
        copy.as_slice(),
        copy.len() as u64,
        EXPLICIT_LE,
        &PrescanLimits::default(),
    )
    .unwrap();
    assert!(!summary.has_pixel_data);
    assert!(
        copy.windows(2).any(|w| w == "ü".as_bytes()),
        "text is re-encoded as UTF-8"
    );

    let ts = TransferSyntaxRegistry.get(EXPLICIT_LE).unwrap();
    let obj = InMemDicomObject::read_dataset_with_ts(copy.as_slice(), ts).unwrap();
    let text = |tag| obj.get(tag).unwrap().to_str().unwrap().trim().to_owned();
    assert_eq!(text(tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(text(tags::PATIENT_NAME), "Müller^Renée");
    assert_eq!(text(tags::STUDY_INSTANCE_UID), "1.2.3.4.5.6.9");
    let items = obj
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
        "ABC"
    );
    assert!(obj.get(dicom_core::Tag(0x0009, 0x0010)).is_some());
    for dropped in [
        dicom_core::Tag(0x0008, 0x0000),
        dicom_core::Tag(0x0009, 0x1001),
        dicom_core::Tag(0x0013, 0x1001),
        tags::PIXEL_DATA,
    ] {
        assert!(obj.get(dropped).is_none(), "{dropped}");
    }
}
