//! The object `--intrusive` writes: a tiny Secondary Capture image of a patient who does not
//! exist, with fresh UIDs, labelled so that an administrator can find and delete it.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ward_dimse::negotiation::EXPLICIT_VR_LE;
use ward_types::Uid;

pub(crate) const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub(crate) const PATIENT_NAME: &str = "WARD^AUDIT^PROBE";

/// One probe object's identity; `variant` changes its pixels, not its UIDs.
pub(crate) struct ProbeObject {
    pub(crate) sop_instance: String,
    pub(crate) study: String,
    pub(crate) series: String,
}

impl ProbeObject {
    pub(crate) fn new() -> ProbeObject {
        ProbeObject {
            sop_instance: ward_dicom::generate_uid().to_string(),
            study: ward_dicom::generate_uid().to_string(),
            series: ward_dicom::generate_uid().to_string(),
        }
    }

    /// The data set in explicit VR little endian, as a C-STORE carries it.
    pub(crate) fn dataset(&self, variant: u8) -> Result<Vec<u8>, String> {
        let mut obj = InMemDicomObject::new_empty();
        for (tag, vr, value) in [
            (tags::SOP_CLASS_UID, VR::UI, SECONDARY_CAPTURE),
            (tags::SOP_INSTANCE_UID, VR::UI, self.sop_instance.as_str()),
            (tags::STUDY_INSTANCE_UID, VR::UI, self.study.as_str()),
            (tags::SERIES_INSTANCE_UID, VR::UI, self.series.as_str()),
            (tags::PATIENT_NAME, VR::PN, PATIENT_NAME),
            (tags::PATIENT_ID, VR::LO, "WARD-AUDIT-PROBE"),
            (
                tags::STUDY_DESCRIPTION,
                VR::LO,
                "ward audit write probe, safe to delete",
            ),
            (tags::MODALITY, VR::CS, "OT"),
            (tags::CONVERSION_TYPE, VR::CS, "WSD"),
            (tags::STUDY_ID, VR::SH, "1"),
            (tags::SERIES_NUMBER, VR::IS, "1"),
            (tags::INSTANCE_NUMBER, VR::IS, "1"),
            (tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        ] {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        }
        for (tag, value) in [
            (tags::SAMPLES_PER_PIXEL, 1u16),
            (tags::ROWS, 8),
            (tags::COLUMNS, 8),
            (tags::BITS_ALLOCATED, 8),
            (tags::BITS_STORED, 8),
            (tags::HIGH_BIT, 7),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
        }
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![variant; 64]),
        ));
        let ts = TransferSyntaxRegistry
            .get(EXPLICIT_VR_LE)
            .ok_or("explicit VR little endian is not registered")?;
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, ts)
            .map_err(|e| format!("cannot encode the probe object: {e}"))?;
        Ok(out)
    }

    /// The object as a Part 10 file whose preamble starts with `MZ`, as a DOS or Windows
    /// executable's header does: a server that keeps preambles serves such a file back as a
    /// DICOM/executable polyglot (CVE-2019-11687). The preamble travels only in Part 10 files,
    /// as STOW-RS sends them; C-STORE carries the data set alone.
    pub(crate) fn part10_mz(&self) -> Result<Vec<u8>, String> {
        let uid = |s: &str| Uid::parse(s).map_err(|e| format!("{s}: {e}"));
        let mut out = Vec::new();
        ward_dicom::write_part10_header(
            &mut out,
            &uid(SECONDARY_CAPTURE)?,
            &uid(&self.sop_instance)?,
            &uid(EXPLICIT_VR_LE)?,
        )
        .map_err(|e| format!("cannot write the Part 10 header: {e}"))?;
        out[..2].copy_from_slice(b"MZ");
        out.extend(self.dataset(0)?);
        Ok(out)
    }
}
