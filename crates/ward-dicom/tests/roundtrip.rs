//! Data sets written by dicom-object in every transfer syntax Ward reads pass the pre-scan, and
//! Ward's Part 10 header round-trips through dicom-object.

#![allow(clippy::unwrap_used)] // a test fails by panicking, helpers included

mod common;

use common::{CT_IMAGE_STORAGE, uid};
use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ward_dicom::{
    PrescanLimits, prescan_dataset, prescan_part10_file, read_header, read_part10_info,
    write_part10_header,
};

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const SOP_INSTANCE: &str = "2.25.1234567890";

fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A CT-like object with two levels of nested sequences.
fn sample(pixel_data: DataElement<InMemDicomObject>) -> InMemDicomObject {
    let referenced_image = InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.4.100"),
    ]);
    let code = InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, "T-D1100"),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "SRT"),
        DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![referenced_image.clone(), referenced_image]),
        ),
    ]);
    InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        text(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, SOP_INSTANCE),
        text(tags::STUDY_DATE, VR::DA, "20240102"),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::PATIENT_NAME, VR::PN, "Gómez^José"),
        text(tags::PATIENT_ID, VR::LO, "ID-42"),
        DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![code]),
        ),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(2u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(2u16)),
        pixel_data,
    ])
}

fn native_pixels() -> DataElement<InMemDicomObject> {
    DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16([1u16, 2, 3, 4].as_slice().into()),
    )
}

fn encapsulated_pixels() -> DataElement<InMemDicomObject> {
    let fragments = vec![vec![0xFF, 0xD8, 0xFF, 0xE0], vec![0x00, 0x10, 0xFF, 0xD9]];
    DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(vec![0u32], fragments),
    )
}

fn encode(obj: &InMemDicomObject, ts_uid: &str) -> Vec<u8> {
    let ts = TransferSyntaxRegistry.get(ts_uid).unwrap();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts).unwrap();
    out
}

#[test]
fn data_sets_in_every_transfer_syntax_pass() {
    let cases = [
        (IMPLICIT_LE, native_pixels()),
        (EXPLICIT_LE, native_pixels()),
        (EXPLICIT_BE, native_pixels()),
        (DEFLATED, native_pixels()),
        (JPEG_BASELINE, encapsulated_pixels()),
    ];
    for (ts, pixels) in cases {
        let encapsulated = ts == JPEG_BASELINE;
        let bytes = encode(&sample(pixels), ts);
        let summary = prescan_dataset(
            &bytes[..],
            bytes.len() as u64,
            ts,
            &PrescanLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{ts}: {e:?}"));
        assert!(summary.has_pixel_data, "{ts}");
        // Anatomic Region > Referenced Image, plus the fragment sequence when encapsulated.
        assert_eq!(summary.max_depth_seen, 2, "{ts}");
        assert_eq!(summary.elements, 13 + 3 + 2 * 2, "{ts}");
        if !encapsulated {
            // Cutting the data set anywhere inside the last element must be caught.
            let cut = &bytes[..bytes.len() - 3];
            assert!(
                prescan_dataset(cut, cut.len() as u64, ts, &PrescanLimits::default()).is_err(),
                "{ts}"
            );
        }
    }
}

#[test]
fn part10_files_round_trip_through_dicom_object() {
    let dir = tempfile::tempdir().unwrap();
    for (ts, pixels) in [
        (IMPLICIT_LE, native_pixels()),
        (EXPLICIT_LE, native_pixels()),
        (EXPLICIT_BE, native_pixels()),
        (DEFLATED, native_pixels()),
        (JPEG_BASELINE, encapsulated_pixels()),
    ] {
        let original = sample(pixels);
        let path = dir.path().join(format!("{ts}.dcm"));
        let mut file = std::fs::File::create(&path).unwrap();
        let offset = write_part10_header(
            &mut file,
            &uid(CT_IMAGE_STORAGE),
            &uid(SOP_INSTANCE),
            &uid(ts),
        )
        .unwrap();
        std::io::Write::write_all(&mut file, &encode(&original, ts)).unwrap();
        drop(file);

        let info = read_part10_info(&path).unwrap();
        assert_eq!(info.dataset_offset, offset);
        assert_eq!(info.transfer_syntax.as_str(), ts);
        assert_eq!(info.file_len, std::fs::metadata(&path).unwrap().len());
        let (_, summary) = prescan_part10_file(&path, &PrescanLimits::default()).unwrap();
        assert!(summary.has_pixel_data);

        let opened = dicom_object::open_file(&path).unwrap_or_else(|e| panic!("{ts}: {e}"));
        let meta = opened.meta();
        assert_eq!(meta.transfer_syntax(), ts);
        assert_eq!(meta.media_storage_sop_class_uid(), CT_IMAGE_STORAGE);
        assert_eq!(meta.media_storage_sop_instance_uid(), SOP_INSTANCE);
        assert_eq!(
            meta.implementation_class_uid(),
            ward_types::IMPLEMENTATION_CLASS_UID
        );
        assert_eq!(
            meta.implementation_version_name(),
            Some(ward_types::IMPLEMENTATION_VERSION_NAME)
        );
        assert_eq!(meta.information_version, [0, 1]);
        let read_back: Vec<_> = opened.iter().map(|e| e.header().tag).collect();
        let written: Vec<_> = original.iter().map(|e| e.header().tag).collect();
        assert_eq!(read_back, written, "{ts}");
        for tag in [tags::PATIENT_NAME, tags::SOP_INSTANCE_UID, tags::ROWS] {
            assert_eq!(
                opened.element(tag).unwrap().to_str().unwrap(),
                original.element(tag).unwrap().to_str().unwrap(),
                "{ts} {tag}"
            );
        }
        let region = opened.element(tags::ANATOMIC_REGION_SEQUENCE).unwrap();
        let items = region.items().unwrap();
        assert_eq!(items.len(), 1);
        let images = items[0].element(tags::REFERENCED_IMAGE_SEQUENCE).unwrap();
        assert_eq!(images.items().unwrap().len(), 2);
        let pixels = opened.element(tags::PIXEL_DATA).unwrap();
        match ts {
            JPEG_BASELINE => assert_eq!(pixels.fragments().unwrap().len(), 2),
            _ => assert_eq!(pixels.to_multi_int::<u16>().unwrap(), vec![1, 2, 3, 4]),
        }

        let attrs = read_header(&path).unwrap();
        assert_eq!(attrs.patient_name.as_deref(), Some("Gómez^José"), "{ts}");
        assert_eq!(attrs.sop_instance_uid.unwrap().as_str(), SOP_INSTANCE);
        assert_eq!(attrs.rows, Some(2));
    }
}
