//! Writing text elements straight into little endian bytes.
//!
//! A C-FIND answer is hundreds of small identifiers of a dozen text elements each, which the
//! index hands over as text. Building dicom-rs elements from that text (a string per value of
//! each element) and running them through its data set writer (a token, a text codec and an
//! allocation per value) was most of the cost of a match; this writes the same bytes directly,
//! and declines (leaving the output as it was) anything it would not write exactly as that
//! writer would, so that the caller can fall back to it.

use dicom_core::value::{C, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::mem::InMemElement;

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);

/// One element for [`write_text_elements_le`]: its tag, its VR and its value as DICOM text
/// (values separated by backslashes), `None` for an empty value.
pub type TextElement<'a> = (Tag, VR, Option<&'a str>);

/// The element `text` stands for, as the writers below read it: a VR of several values holds
/// the text split at backslashes (a number VR, each value parsed), LT, ST, UT and UR the whole
/// text as their single value. `None` when the VR cannot hold text or a number does not parse.
pub fn text_element(tag: Tag, vr: VR, text: &str) -> Option<InMemElement> {
    fn numbers<T: std::str::FromStr>(text: &str) -> Option<C<T>> {
        text.split('\\').map(|v| v.trim().parse().ok()).collect()
    }
    let value = match vr {
        VR::US => PrimitiveValue::U16(numbers(text)?),
        VR::SS => PrimitiveValue::I16(numbers(text)?),
        VR::UL => PrimitiveValue::U32(numbers(text)?),
        VR::SL => PrimitiveValue::I32(numbers(text)?),
        VR::UV => PrimitiveValue::U64(numbers(text)?),
        VR::SV => PrimitiveValue::I64(numbers(text)?),
        VR::FL => PrimitiveValue::F32(numbers(text)?),
        VR::FD => PrimitiveValue::F64(numbers(text)?),
        // Text VRs whose value may itself contain a backslash.
        VR::LT | VR::ST | VR::UT | VR::UR => PrimitiveValue::from(text.to_owned()),
        VR::AE
        | VR::AS
        | VR::CS
        | VR::DA
        | VR::DS
        | VR::DT
        | VR::IS
        | VR::LO
        | VR::PN
        | VR::SH
        | VR::TM
        | VR::UC
        | VR::UI => PrimitiveValue::Strs(text.split('\\').map(str::to_owned).collect()),
        _ => return None,
    };
    Some(DataElement::new(tag, vr, value))
}

/// Appends `elements`, in the order given, to `out` as a data set in explicit (`explicit`) or
/// implicit VR little endian. The bytes are those dicom-rs's `DataSetWriter` writes, when it
/// starts from the default character repertoire, for the same elements with string values (the
/// text split at backslashes, except in LT, ST, UT and UR, whose single value may hold one) or
/// empty ones.
///
/// Text of the VRs restricted to the default repertoire (AE, AS, CS, DA, DS, DT, IS, TM, UI)
/// must be ASCII; other text must be ASCII unless an earlier element declared Specific
/// Character Set `ISO_IR 192`, after which it is written as UTF-8. Returns `false`, with `out`
/// as it was, when an element is anything else (a VR that does not hold text, a value too long
/// for its length field, text outside what it may hold): the caller then writes the data set
/// the general way.
pub fn write_text_elements_le(
    out: &mut Vec<u8>,
    elements: &[TextElement<'_>],
    explicit: bool,
) -> bool {
    let start = out.len();
    let mut utf8 = false;
    for &(tag, vr, text) in elements {
        if !write_element(out, tag, vr, text.unwrap_or_default(), explicit, utf8) {
            out.truncate(start);
            return false;
        }
        if tag == SPECIFIC_CHARACTER_SET {
            // dicom-rs switches codec on the first value; only UTF-8 is written here.
            utf8 = text.and_then(|t| t.split('\\').next()).map(str::trim_end) == Some("ISO_IR 192");
        }
    }
    true
}

fn write_element(
    out: &mut Vec<u8>,
    tag: Tag,
    vr: VR,
    text: &str,
    explicit: bool,
    utf8: bool,
) -> bool {
    let default_repertoire = match vr {
        VR::AE | VR::AS | VR::CS | VR::DA | VR::DS | VR::DT | VR::IS | VR::TM | VR::UI => true,
        VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UR | VR::UT => false,
        _ => return false,
    };
    if !text.is_ascii() && (default_repertoire || !utf8) {
        return false;
    }
    let padded = text.len() + text.len() % 2;
    let short = explicit && short_length(vr);
    if (short && padded > usize::from(u16::MAX)) || u32::try_from(padded).is_err() {
        return false;
    }
    out.extend_from_slice(&tag.group().to_le_bytes());
    out.extend_from_slice(&tag.element().to_le_bytes());
    if explicit {
        out.extend_from_slice(&vr.to_bytes());
        if short {
            out.extend_from_slice(&(padded as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[0; 2]);
            out.extend_from_slice(&(padded as u32).to_le_bytes());
        }
    } else {
        out.extend_from_slice(&(padded as u32).to_le_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    if padded > text.len() {
        out.push(if vr == VR::UI { 0 } else { b' ' });
    }
    true
}

/// The VRs whose explicit VR length field is 16 bits (PS3.5 7.1.2).
fn short_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// Text elements of every kind the writers take, in tag order, for their tests: multiple and
/// empty values, padding, escapes, UTF-8 names with component groups, numbers as text.
#[cfg(test)]
pub(crate) fn sample_text_elements(charset: &str) -> Vec<TextElement<'_>> {
    use dicom_dictionary_std::tags;
    vec![
        (tags::SPECIFIC_CHARACTER_SET, VR::CS, Some(charset)),
        (tags::STUDY_DATE, VR::DA, Some("20240131")),
        (tags::STUDY_TIME, VR::TM, Some("101")),
        (tags::ACCESSION_NUMBER, VR::SH, None),
        (tags::QUERY_RETRIEVE_LEVEL, VR::CS, Some("STUDY")),
        (tags::MODALITIES_IN_STUDY, VR::CS, Some("CT\\MR\\PT\\")),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, Some("")),
        (tags::STUDY_DESCRIPTION, VR::LO, Some("say \"hi\"\t\u{e9} ")),
        (
            tags::PATIENT_NAME,
            VR::PN,
            Some("Yamada^Tarou=山田^太郎=やまだ^たろう\\=^\\Müller^Zoë"),
        ),
        (tags::PATIENT_ID, VR::LO, Some("ID-7 ")),
        (tags::PATIENT_WEIGHT, VR::DS, Some(" 72.50\\1e400\\")),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            Some("1.2.840.10008.5.1.4.1.1.2"),
        ),
        (tags::SERIES_INSTANCE_UID, VR::UI, Some("1.2.3\0")),
        (
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
            VR::IS,
            Some("20\\-3\\99999999999999999999"),
        ),
        (Tag(0x0029, 0x1010), VR::LT, Some("a \\ in text ")),
        (Tag(0x0029, 0x1012), VR::UT, Some("long text")),
    ]
}

/// The elements [`sample_text_elements`] stand for, empty where there is no text.
#[cfg(test)]
pub(crate) fn sample_elements(elements: &[TextElement<'_>]) -> Vec<InMemElement> {
    elements
        .iter()
        .map(|&(tag, vr, text)| match text {
            None => DataElement::new(tag, vr, PrimitiveValue::Empty),
            Some(t) => text_element(tag, vr, t).expect("a text VR"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dicom_dictionary_std::tags;
    use dicom_dictionary_std::uids::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_object::InMemDicomObject;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    use super::{TextElement, VR, sample_elements, sample_text_elements, write_text_elements_le};

    /// What dicom-rs writes for the elements the text stands for, put into an object.
    fn written_by_dicom_rs(elements: &[TextElement<'_>], ts: &str) -> Vec<u8> {
        let ts = TransferSyntaxRegistry.get(ts).unwrap();
        let obj = InMemDicomObject::from_element_iter(sample_elements(elements));
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, ts).unwrap();
        out
    }

    #[test]
    fn writes_what_the_data_set_writer_writes() {
        for ts in [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] {
            let elements = sample_text_elements("ISO_IR 192");
            let mut out = b"prefix".to_vec();
            assert!(write_text_elements_le(
                &mut out,
                &elements,
                ts == EXPLICIT_VR_LITTLE_ENDIAN
            ));
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(out[6..], written_by_dicom_rs(&elements, ts), "{ts}");
        }
    }

    #[test]
    fn declines_what_it_would_not_write_the_same() {
        let long = "x".repeat(70_000);
        let cases: Vec<Vec<TextElement<'_>>> = vec![
            // Non-ASCII text without UTF-8 declared.
            sample_text_elements("ISO_IR 100"),
            // Non-ASCII text in a VR of the default repertoire.
            vec![(tags::MODALITY, VR::CS, Some("É"))],
            // A value too long for a 16-bit length.
            vec![(tags::PATIENT_ID, VR::LO, Some(&long))],
            // VRs that do not hold text.
            vec![(tags::ROWS, VR::US, Some("512"))],
            vec![(tags::PIXEL_DATA, VR::OB, None)],
        ];
        for case in cases {
            let mut out = b"kept".to_vec();
            assert!(!write_text_elements_le(&mut out, &case, true), "{case:?}");
            assert_eq!(out, b"kept");
        }
    }
}
