//! Conversion between the native (uncompressed) transfer syntaxes, for sending an object to a
//! peer that did not accept the syntax it is stored in. Compressed objects are decoded to
//! native form by [`crate::decode_to_native`].

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::PrescanLimits;

/// Native transfer syntaxes: the data set is plain elements, with no encapsulated pixel data.
const NATIVE: &[&str] = &[
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
    "1.2.840.10008.1.2.2",    // explicit VR big endian (retired)
];

/// The largest object Ward converts in memory, and the largest native pixel data it decodes.
pub const MAX_IN_MEMORY_LEN: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("transfer syntax {0} is not a native syntax Ward converts")]
    NotNative(String),
    #[error("Ward does not decode pixel data from or to transfer syntax {0}")]
    NotDecodable(String),
    #[error("decoded pixel data would exceed {MAX_IN_MEMORY_LEN} bytes")]
    TooLarge,
    #[error("cannot decode the pixel data: {0}")]
    Pixels(String),
    #[error("cannot read the data set: {0}")]
    Read(String),
    #[error("cannot write the data set: {0}")]
    Write(String),
}

/// Whether `ts_uid` is a native transfer syntax.
pub fn is_native_transfer_syntax(ts_uid: &str) -> bool {
    NATIVE.contains(&ts_uid)
}

/// Re-encodes a data set from one native transfer syntax to another, in memory (callers bound
/// the size). The bytes must already have passed [`crate::prescan_dataset`]: dicom-object
/// trusts declared lengths.
pub fn transcode_native(dataset: &[u8], from: &str, to: &str) -> Result<Vec<u8>, TranscodeError> {
    let lookup = |uid: &str| {
        is_native_transfer_syntax(uid)
            .then(|| TransferSyntaxRegistry.get(uid))
            .flatten()
            .ok_or_else(|| TranscodeError::NotNative(uid.to_owned()))
    };
    let (from_ts, to_ts) = (lookup(from)?, lookup(to)?);
    let obj = InMemDicomObject::read_dataset_with_ts(dataset, from_ts)
        .map_err(|e| TranscodeError::Read(e.to_string()))?;
    let mut out = Vec::with_capacity(dataset.len());
    obj.write_dataset_with_ts(&mut out, to_ts)
        .map_err(|e| TranscodeError::Write(e.to_string()))?;
    check_output(&out, to)?;
    Ok(out)
}

/// Pre-scans a conversion's output in its target syntax, so that Ward never sends what it would
/// itself refuse. The writer keeps each element's VR, but an implicit VR reader takes the
/// dictionary's, and a sender's explicit VR may disagree with it (both found by the `dataset`
/// fuzz target): text under a tag the dictionary makes a sequence would be parsed as items, a
/// US value under a UL tag read as half a value, after which the reader has lost its place. UN
/// under a sequence tag passes when its content is the implicit VR items PS3.5 §6.2.2 says it
/// is. The input's nesting was already held to the caller's limit, so depth is not limited
/// again here.
pub(crate) fn check_output(out: &[u8], to_ts: &str) -> Result<(), TranscodeError> {
    let limits = PrescanLimits {
        max_depth: u32::MAX,
        ..PrescanLimits::default()
    };
    crate::prescan_dataset(out, out.len() as u64, to_ts, &limits)
        .map(drop)
        .map_err(|e| TranscodeError::Write(format!("the result would not read back: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    const IMPLICIT_VR_LITTLE_ENDIAN: &str = NATIVE[0];

    fn explicit(obj: &InMemDicomObject) -> Vec<u8> {
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, TransferSyntaxRegistry.get(NATIVE[1]).unwrap())
            .unwrap();
        bytes
    }

    fn sample() -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("Doe^Jane"),
        ));
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(2u16),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![1u16, 2, 3, 0xABCD].into()),
        ));
        obj
    }

    #[test]
    fn round_trips_between_native_syntaxes() {
        let obj = sample();
        for from in NATIVE {
            let mut bytes = Vec::new();
            obj.write_dataset_with_ts(&mut bytes, TransferSyntaxRegistry.get(from).unwrap())
                .unwrap();
            for to in NATIVE {
                let out = transcode_native(&bytes, from, to).unwrap();
                let back = InMemDicomObject::read_dataset_with_ts(
                    &out[..],
                    TransferSyntaxRegistry.get(to).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    back.element(tags::PATIENT_NAME).unwrap().to_str().unwrap(),
                    "Doe^Jane"
                );
                assert_eq!(
                    back.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(),
                    2
                );
                assert_eq!(
                    back.element(tags::PIXEL_DATA)
                        .unwrap()
                        .uint16_slice()
                        .unwrap(),
                    &[1, 2, 3, 0xABCD],
                    "{from} -> {to}"
                );
            }
        }
    }

    /// Regression (fuzzing, `dataset` target): (0008,1032) Procedure Code Sequence holding text,
    /// as a sender's explicit VR may say, used to be written in implicit VR as it was, which
    /// every reader then parses as sequence items.
    #[test]
    fn implicit_output_refuses_values_the_dictionary_makes_sequences() {
        let with = |value: InMemDicomObject| {
            let mut obj = sample();
            obj.put(DataElement::new(
                tags::REFERENCED_STUDY_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![value]),
            ));
            explicit(&obj)
        };
        let code = |vr: VR, value: PrimitiveValue| {
            let mut item = InMemDicomObject::new_empty();
            item.put(DataElement::new(tags::PROCEDURE_CODE_SEQUENCE, vr, value));
            item
        };
        let to_implicit = |bytes: &[u8]| transcode_native(bytes, NATIVE[1], NATIVE[0]);

        // At the top level and nested in an item.
        let top = explicit(&code(VR::LO, PrimitiveValue::from("CT CHEST")));
        let nested = with(code(VR::LO, PrimitiveValue::from("CT CHEST")));
        for bytes in [&top, &nested] {
            let err = to_implicit(bytes).unwrap_err();
            assert!(matches!(err, TranscodeError::Write(_)), "{err:?}");
            // Explicit VR keeps the sender's VR, so the other targets still convert it.
            for to in &NATIVE[1..] {
                transcode_native(bytes, NATIVE[1], to).unwrap();
            }
        }
        // An empty value reads back as an empty sequence; UN holding implicit VR items, as
        // PS3.5 6.2.2 encodes an unknown sequence (pydicom's rtdose_rle.dcm has one), reads
        // back as the sequence it is.
        to_implicit(&with(code(VR::LO, PrimitiveValue::Empty))).unwrap();
        let value = b"CTCH";
        let element = [&[0x08, 0x00, 0x00, 0x01, 4, 0, 0, 0][..], value].concat();
        let items = [
            &[0xFE, 0xFF, 0x00, 0xE0][..],
            &(element.len() as u32).to_le_bytes(),
            &element,
        ]
        .concat();
        to_implicit(&with(code(VR::UN, PrimitiveValue::from(items)))).unwrap();
    }

    /// Regression (fuzzing, `dataset` target): a sender's explicit VR US under a tag the
    /// dictionary makes UL used to be written in implicit VR as two bytes, which a reader takes
    /// for half a UL followed by the next element's first bytes.
    #[test]
    fn implicit_output_that_would_not_read_back_is_refused() {
        let mut obj = sample();
        obj.put(DataElement::new(
            tags::REGION_FLAGS,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, TransferSyntaxRegistry.get(NATIVE[1]).unwrap())
            .unwrap();
        let err = transcode_native(&bytes, NATIVE[1], IMPLICIT_VR_LITTLE_ENDIAN).unwrap_err();
        assert!(matches!(err, TranscodeError::Write(_)), "{err:?}");
        for to in &NATIVE[1..] {
            transcode_native(&bytes, NATIVE[1], to).unwrap();
        }
    }

    #[test]
    fn encapsulated_syntaxes_are_refused() {
        assert!(matches!(
            transcode_native(&[], "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"),
            Err(TranscodeError::NotNative(_))
        ));
    }
}
