//! Conversion between the native (uncompressed) transfer syntaxes, for sending an object to a
//! peer that did not accept the syntax it is stored in. Compressed objects are decoded to
//! native form by [`crate::decode_to_native`].

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

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
    Ok(out)
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

    #[test]
    fn encapsulated_syntaxes_are_refused() {
        assert!(matches!(
            transcode_native(&[], "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"),
            Err(TranscodeError::NotNative(_))
        ));
    }
}
