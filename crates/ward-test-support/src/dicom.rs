//! Synthetic DICOM objects for tests, built with dicom-object.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// A small synthetic image with fresh UIDs.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub sop_class: String,
    pub sop_instance: String,
    pub study: String,
    pub series: String,
    pub patient_name: String,
    pub patient_id: String,
    pub rows: u16,
    pub columns: u16,
    /// Varies the pixel bytes, so two objects can share UIDs but not content.
    pub pixel_seed: u8,
}

impl Synthetic {
    pub fn ct() -> Synthetic {
        Synthetic {
            sop_class: CT_IMAGE_STORAGE.into(),
            sop_instance: ward_dicom::generate_uid().to_string(),
            study: ward_dicom::generate_uid().to_string(),
            series: ward_dicom::generate_uid().to_string(),
            patient_name: "Doe^Jane".into(),
            patient_id: "TEST-0001".into(),
            rows: 64,
            columns: 64,
            pixel_seed: 1,
        }
    }

    /// Another image of the same series.
    pub fn next_in_series(&self) -> Synthetic {
        Synthetic {
            sop_instance: ward_dicom::generate_uid().to_string(),
            ..self.clone()
        }
    }

    pub fn object(&self) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let s = |obj: &mut InMemDicomObject, tag, vr, v: &str| {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        };
        s(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        s(&mut obj, tags::SOP_CLASS_UID, VR::UI, &self.sop_class);
        s(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &self.sop_instance);
        s(&mut obj, tags::STUDY_DATE, VR::DA, "20261129");
        s(&mut obj, tags::STUDY_TIME, VR::TM, "101500");
        s(&mut obj, tags::ACCESSION_NUMBER, VR::SH, "ACC-1");
        s(&mut obj, tags::MODALITY, VR::CS, "CT");
        s(&mut obj, tags::PATIENT_NAME, VR::PN, &self.patient_name);
        s(&mut obj, tags::PATIENT_ID, VR::LO, &self.patient_id);
        s(&mut obj, tags::PATIENT_BIRTH_DATE, VR::DA, "19700101");
        s(&mut obj, tags::PATIENT_SEX, VR::CS, "F");
        s(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &self.study);
        s(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &self.series);
        s(&mut obj, tags::STUDY_ID, VR::SH, "1");
        s(&mut obj, tags::SERIES_NUMBER, VR::IS, "1");
        s(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
        s(
            &mut obj,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        );
        for (tag, v) in [
            (tags::SAMPLES_PER_PIXEL, 1u16),
            (tags::ROWS, self.rows),
            (tags::COLUMNS, self.columns),
            (tags::BITS_ALLOCATED, 16),
            (tags::BITS_STORED, 12),
            (tags::HIGH_BIT, 11),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        let n = usize::from(self.rows) * usize::from(self.columns) * 2;
        let pixels: Vec<u8> = (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(self.pixel_seed))
            .collect();
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(pixels),
        ));
        obj
    }

    /// The data set alone, as a C-STORE sends it.
    pub fn dataset_bytes(&self, ts_uid: &str) -> Vec<u8> {
        use dicom_encoding::TransferSyntaxIndex;
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(ts_uid)
            .expect("known transfer syntax");
        let mut out = Vec::new();
        self.object()
            .write_dataset_with_ts(&mut out, ts)
            .expect("synthetic object encodes");
        out
    }

    /// A Part 10 file in explicit VR little endian; `preamble` replaces the 128 zero bytes
    /// (to plant an executable header, as a polyglot file would).
    pub fn write_part10(&self, path: &Path, preamble: Option<&[u8; 128]>) {
        let mut bytes = Vec::new();
        ward_dicom::write_part10_header(
            &mut bytes,
            &self.sop_class.parse().expect("uid"),
            &self.sop_instance.parse().expect("uid"),
            &EXPLICIT_VR_LE.parse().expect("uid"),
        )
        .expect("header writes");
        if let Some(p) = preamble {
            bytes[..128].copy_from_slice(p);
        }
        bytes.extend_from_slice(&self.dataset_bytes(EXPLICIT_VR_LE));
        std::fs::write(path, bytes).expect("file writes");
    }
}

/// A 128-byte preamble starting like a Windows executable (`MZ`).
pub fn executable_preamble() -> [u8; 128] {
    let mut p = [0u8; 128];
    p[0] = b'M';
    p[1] = b'Z';
    p[2..10].copy_from_slice(b"\x90\x00\x03\x00\x00\x00\x04\x00");
    p
}
