//! Transfer syntaxes and SOP classes: which ones Ward reads and stores, and how a data set in a
//! given transfer syntax is laid out on the wire.

use dicom_encoding::{Codec, Endianness, TransferSyntax, TransferSyntaxIndex};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::prescan::PrescanError;
use crate::storage_sop_classes::STORAGE_SOP_CLASSES;

/// A `'static` handle, so that registry entries outlive the lookup.
static REGISTRY: TransferSyntaxRegistry = TransferSyntaxRegistry;

const IMPLICIT_VR_LITTLE_ENDIAN: &str = dicom_dictionary_std::uids::IMPLICIT_VR_LITTLE_ENDIAN;

/// How element headers are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    ExplicitLittle,
    ExplicitBig,
    ImplicitLittle,
}

/// The byte layout of a data set in one transfer syntax.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) encoding: Encoding,
    /// The whole data set is a raw deflate stream.
    pub(crate) deflated: bool,
}

impl Layout {
    pub(crate) fn of(ts_uid: &str) -> Result<Layout, PrescanError> {
        let ts = readable(ts_uid).map_err(|known| {
            let uid = ts_uid.to_owned();
            if known {
                PrescanError::UnsupportedTransferSyntax(uid)
            } else {
                PrescanError::UnknownTransferSyntax(uid)
            }
        })?;
        // dicom-encoding does not expose whether a transfer syntax uses explicit VR; implicit VR
        // little endian is the only implicit one in the registry.
        let encoding = if ts.uid() == IMPLICIT_VR_LITTLE_ENDIAN {
            Encoding::ImplicitLittle
        } else if ts.endianness() == Endianness::Big {
            Encoding::ExplicitBig
        } else {
            Encoding::ExplicitLittle
        };
        // With the "deflate" feature, a data set adapter is always the raw deflate one.
        let deflated = matches!(ts.codec(), Codec::Dataset(Some(_)));
        Ok(Layout { encoding, deflated })
    }
}

/// The registry's entry for `uid` if Ward can read data sets in it; otherwise whether the
/// registry knows the UID at all.
fn readable(uid: &str) -> Result<&'static TransferSyntax, bool> {
    match REGISTRY.get(uid.trim_end_matches(['\0', ' '])) {
        Some(ts) if ts.can_decode_dataset() => Ok(ts),
        Some(_) => Err(true),
        None => Err(false),
    }
}

/// Whether Ward can read a data set in this transfer syntax: dicom-rs knows it and can decode
/// its data set. Encapsulated pixel data need no codec, since Ward stores objects as received
/// and only reads the header.
pub fn is_readable_transfer_syntax(uid: &str) -> bool {
    readable(uid).is_ok()
}

/// Every readable transfer syntax UID.
pub fn readable_transfer_syntaxes() -> impl Iterator<Item = &'static str> {
    REGISTRY
        .iter()
        .filter(|ts| ts.can_decode_dataset())
        .map(|ts| ts.uid())
}

/// Whether `uid` is a storage SOP class of the standard (see [`storage_sop_classes`]).
pub fn is_storage_sop_class(uid: &str) -> bool {
    STORAGE_SOP_CLASSES.binary_search(&uid).is_ok()
}

/// Every storage SOP class UID of the standard dictionary: the classes of the Storage Service
/// Class (retired ones included) and of Non-Patient Object Storage, without Storage Commitment
/// and without Media Storage Directory Storage (DICOMDIR).
pub fn storage_sop_classes() -> impl Iterator<Item = &'static str> {
    STORAGE_SOP_CLASSES.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::dictionary::UidDictionary;
    use dicom_dictionary_std::StandardSopClassDictionary;

    #[test]
    fn storage_classes_are_sorted_unique_and_named_storage() {
        assert!(STORAGE_SOP_CLASSES.windows(2).all(|w| w[0] < w[1]));
        for uid in storage_sop_classes() {
            let entry = StandardSopClassDictionary
                .by_uid(uid)
                .unwrap_or_else(|| panic!("{uid} is not in the dictionary"));
            assert!(entry.name.contains("Storage"), "{}", entry.name);
            assert!(!entry.name.starts_with("Storage Commitment"));
        }
        assert_eq!(STORAGE_SOP_CLASSES.len(), 214);
    }

    #[test]
    fn storage_class_membership() {
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2")); // CT Image Storage
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.4")); // MR Image Storage
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.88.11")); // Basic Text SR
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.5")); // NM (retired)
        assert!(!is_storage_sop_class("1.2.840.10008.1.1")); // Verification
        assert!(!is_storage_sop_class("1.2.840.10008.1.20.1")); // Storage Commitment Push
        assert!(!is_storage_sop_class("1.2.840.10008.1.3.10")); // DICOMDIR
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.2.2.1")); // Study Root FIND
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2\0"));
        assert!(!is_storage_sop_class(""));
    }

    #[test]
    fn transfer_syntaxes() {
        for uid in [
            "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.1",
            "1.2.840.10008.1.2.1.99",
            "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.5",
        ] {
            assert!(is_readable_transfer_syntax(uid), "{uid}");
            assert!(readable_transfer_syntaxes().any(|u| u == uid), "{uid}");
        }
        assert!(!is_readable_transfer_syntax("1.2.3.4"));
        assert!(!is_readable_transfer_syntax(""));

        let layout = |uid| Layout::of(uid).unwrap();
        assert_eq!(
            layout("1.2.840.10008.1.2").encoding,
            Encoding::ImplicitLittle
        );
        assert_eq!(
            layout("1.2.840.10008.1.2.2").encoding,
            Encoding::ExplicitBig
        );
        let deflated = layout("1.2.840.10008.1.2.1.99");
        assert!(deflated.deflated);
        assert_eq!(deflated.encoding, Encoding::ExplicitLittle);
        let jpeg = layout("1.2.840.10008.1.2.4.50");
        assert!(!jpeg.deflated);
        assert_eq!(jpeg.encoding, Encoding::ExplicitLittle);
        assert!(matches!(
            Layout::of("1.2.3.4"),
            Err(PrescanError::UnknownTransferSyntax(_))
        ));
    }
}
