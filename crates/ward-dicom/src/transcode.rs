//! Conversion between the native (uncompressed) transfer syntaxes, for sending an object to a
//! peer that did not accept the syntax it is stored in. Compressed objects are decoded to
//! native form by [`crate::decode_to_native`].

use dicom_core::VR;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header as _;
use dicom_core::value::Value;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_dictionary_std::tags::PIXEL_DATA;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

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
    if to == IMPLICIT_VR_LITTLE_ENDIAN {
        check_implicit_vr(&obj)?;
    }
    let mut out = Vec::with_capacity(dataset.len());
    obj.write_dataset_with_ts(&mut out, to_ts)
        .map_err(|e| TranscodeError::Write(e.to_string()))?;
    Ok(out)
}

/// Refuses a data set that would read back differently once written in implicit VR, where a
/// reader takes each VR from the dictionary. An element of a tag the dictionary makes a sequence
/// but that the sender encoded (in explicit VR) as a non-empty value of another VR would be
/// parsed as sequence items by every implicit VR reader, Ward's pre-scan and dicom-parser
/// included: the object sent would be garbage to the peer, so the conversion fails instead.
/// Found by the `dataset` fuzz target. The dictionary test is the pre-scan's, so that what this
/// lets through the pre-scan reads the same way.
pub(crate) fn check_implicit_vr(obj: &InMemDicomObject) -> Result<(), TranscodeError> {
    for element in obj.iter() {
        match element.value() {
            Value::Sequence(seq) => {
                for item in seq.items() {
                    check_implicit_vr(item)?;
                }
            }
            Value::Primitive(value)
                if value.calculate_byte_len() > 0
                    && element.tag() != PIXEL_DATA
                    && StandardDataDictionary
                        .by_tag(element.tag())
                        .is_some_and(|entry| entry.vr().relaxed() == VR::SQ) =>
            {
                return Err(TranscodeError::Write(format!(
                    "{} holds a value of VR {}, but implicit VR readers take it for a sequence",
                    element.tag(),
                    element.vr()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

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
        let mut obj = sample();
        obj.put(DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::LO,
            PrimitiveValue::from("CT CHEST"),
        ));
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, TransferSyntaxRegistry.get(NATIVE[1]).unwrap())
            .unwrap();
        let err = transcode_native(&bytes, NATIVE[1], IMPLICIT_VR_LITTLE_ENDIAN).unwrap_err();
        assert!(matches!(err, TranscodeError::Write(_)), "{err:?}");
        // Explicit VR keeps the sender's VR, so the other targets still convert it.
        for to in &NATIVE[1..] {
            transcode_native(&bytes, NATIVE[1], to).unwrap();
        }

        // Nested in an item, too; an empty value reads back as an empty sequence and passes.
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::LO,
            PrimitiveValue::from("CT CHEST"),
        ));
        let mut nested = sample();
        nested.put(DataElement::new(
            tags::REFERENCED_STUDY_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
        assert!(check_implicit_vr(&nested).is_err());
        let mut empty = sample();
        empty.put(DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::LO,
            PrimitiveValue::Empty,
        ));
        assert!(check_implicit_vr(&empty).is_ok());
    }

    #[test]
    fn encapsulated_syntaxes_are_refused() {
        assert!(matches!(
            transcode_native(&[], "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"),
            Err(TranscodeError::NotNative(_))
        ));
    }
}
