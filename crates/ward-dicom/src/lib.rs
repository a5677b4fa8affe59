//! Ward's adapter over dicom-rs: the length-checked pre-scan every received data set passes
//! before dicom-object may parse it, Part 10 meta information writing and checked reading,
//! extraction of the attributes the index keeps, the catalogue of storage SOP classes and
//! readable transfer syntaxes, DICOM JSON encoding (PS3.18 F.2) with a caller-chosen bulk data
//! policy, and conversion of stored objects to the uncompressed transfer syntaxes (re-encoding
//! native data sets, decoding RLE and JPEG pixel data), and the pixel work of WADO-RS (frames,
//! rendering to PNG and JPEG).
//!
//! Nothing here touches the network or a database, and nothing panics on bytes from a peer or
//! from disk.

mod decode;
mod header;
mod json;
mod native;
mod part10;
mod prescan;
mod render;
mod storage_sop_classes;
mod transcode;
mod ts;

pub use decode::{decode_to_native, is_decodable_transfer_syntax};
pub use header::{
    HEADER_COPY_MAX_LEN, HEADER_COPY_MAX_VALUE, HeaderError, read_header, read_header_with_copy,
    read_header_with_copy_from, read_metadata,
};
pub use json::{
    BulkPolicy, BulkRef, DEFAULT_INLINE_LIMIT, PathStep, bulk_value, to_dicom_json,
    wado_bulk_policy, write_elements_json, write_text_elements_json,
};
pub use native::{TextElement, text_element, write_text_elements_le};
pub use part10::{
    MAX_META_GROUP_LEN, Part10Error, Part10Info, read_part10_info, read_part10_info_from,
    write_part10_header,
};
pub use prescan::{
    MAX_IDENTIFIER_INFLATED, PrescanError, PrescanLimits, PrescanSummary, prescan_dataset,
    prescan_part10_file,
};
pub use render::{
    ImageInfo, MAX_VIEWPORT, RenderError, Rendered, VoiFunction, Window, encapsulated_frames,
    encode_jpeg, encode_png, fit, read_image, render_frame, resize, split_frames,
};
pub use transcode::{
    MAX_IN_MEMORY_LEN, TranscodeError, is_native_transfer_syntax, transcode_native,
};
pub use ts::{
    is_readable_transfer_syntax, is_storage_sop_class, readable_transfer_syntaxes,
    storage_sop_classes,
};

use ward_types::Uid;

/// A new UID under 2.25 (ISO/IEC 9834-8): a random version 4 UUID written as one decimal
/// integer, for generated objects and tests.
pub fn generate_uid() -> Uid {
    let random: u128 = rand::random();
    // The version and variant bits make the number a well-formed UUID, as the 2.25 arc requires.
    let uuid = (random & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    Uid::parse(&format!("2.25.{uuid}")).expect("a 2.25 UID from a non-zero integer is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uids_are_valid_distinct_uuid_uids() {
        let a = generate_uid();
        let b = generate_uid();
        assert_ne!(a, b);
        for uid in [a, b] {
            let digits = uid.as_str().strip_prefix("2.25.").unwrap();
            let n: u128 = digits.parse().unwrap();
            assert_eq!((n >> 76) & 0xF, 4, "version 4");
            assert_eq!((n >> 62) & 0x3, 2, "RFC 4122 variant");
            assert!(uid.as_str().len() <= 64);
        }
    }
}
