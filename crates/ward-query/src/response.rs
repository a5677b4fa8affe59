//! Encoding the response identifier of one match.

use dicom_core::header::Header as _;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_encoding::text::SpecificCharacterSet;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use dicom_parser::dataset::DataToken;
use dicom_parser::dataset::write::DataSetWriter;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::{Header, Key, MatchRow, Matcher, Query, QueryError, attribute_level};

/// Encodes the response identifier for one match: every key of the query (in tag order), with
/// the value from `row.values`, else from `row.header`, else empty; Query/Retrieve Level set;
/// Specific Character Set "ISO_IR 192" (responses are UTF-8); in transfer syntax `ts_uid`
/// (implicit or explicit VR little endian).
///
/// A sequence key with item keys is answered with the header's items reduced to those keys. The
/// header is not consulted for attributes of levels below the query level: the representative
/// instance's value would be one arbitrary descendant's, not the entity's.
pub fn response_identifier(
    query: &Query,
    row: &MatchRow,
    ts_uid: &str,
) -> Result<Vec<u8>, QueryError> {
    let ts_uid = ts_uid.trim_end_matches(['\0', ' ']);
    if ts_uid != IMPLICIT_VR_LITTLE_ENDIAN && ts_uid != EXPLICIT_VR_LITTLE_ENDIAN {
        return Err(QueryError::Malformed(
            "responses are encoded in implicit or explicit VR little endian only".into(),
        ));
    }
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| QueryError::Malformed("unknown transfer syntax".into()))?;
    let mut out = Vec::new();
    let Some(elements) = response_elements(query, row) else {
        let obj = response_dataset(query, row)?;
        obj.write_dataset_with_ts(&mut out, ts)
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
        return Ok(out);
    };
    // The elements go to the data set writer one by one, as writing the object would hand them
    // over, without building the object and copying each value into its tokens.
    let mut writer = DataSetWriter::with_ts_cs(&mut out, ts, SpecificCharacterSet::default())
        .map_err(|e| QueryError::Malformed(e.to_string()))?;
    for element in elements {
        let header = *element.header();
        let Value::Primitive(value) = element.into_value() else {
            return Err(QueryError::Malformed(
                "unexpected sequence in a response".into(),
            ));
        };
        writer
            .write(DataToken::ElementHeader(header))
            .and_then(|()| writer.write(DataToken::PrimitiveValue(value)))
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
    }
    drop(writer);
    Ok(out)
}

/// The elements of [`response_dataset`]'s answer in its order (by tag, each tag once), when
/// every one is primitive and comes from `row.values` (no header copy, no sequence key): the
/// common case, which front doors encode element by element without building the data set,
/// as that was most of the cost of a match. `None` otherwise.
pub fn response_elements(query: &Query, row: &MatchRow) -> Option<Vec<InMemElement>> {
    if row.header.is_some() || query.keys.iter().any(|key| key.vr == VR::SQ) {
        return None;
    }
    let mut elements = Vec::with_capacity(query.keys.len() + 2);
    elements.push(specific_character_set());
    elements.push(query_retrieve_level(query));
    elements.extend(
        query
            .keys
            .iter()
            .map(|key| answer(key, row.values.get(&key.tag), None)),
    );
    // The object's order (by tag, stable) and its rule for a repeated tag: the last one put.
    elements.sort_by_key(|element| element.tag());
    let mut unique: Vec<InMemElement> = Vec::with_capacity(elements.len());
    for element in elements {
        if unique
            .last()
            .is_some_and(|last| last.tag() == element.tag())
        {
            unique.pop();
        }
        unique.push(element);
    }
    Some(unique)
}

fn specific_character_set() -> InMemElement {
    DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    )
}

fn query_retrieve_level(query: &Query) -> InMemElement {
    DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(query.level.as_str()),
    )
}

/// The response of [`response_identifier`] as a data set, for front doors that encode it
/// otherwise (QIDO-RS answers in DICOM JSON).
pub fn response_dataset(query: &Query, row: &MatchRow) -> Result<InMemDicomObject, QueryError> {
    let header = row.header.as_deref().map(Header::parse).transpose()?;

    let mut obj = InMemDicomObject::new_empty();
    obj.put(specific_character_set());
    obj.put(query_retrieve_level(query));
    for key in &query.keys {
        let header = header
            .as_ref()
            .filter(|_| attribute_level(key.tag).is_none_or(|level| level <= query.level))
            .map(|h| &h.obj);
        obj.put(answer(key, row.values.get(&key.tag), header));
    }
    Ok(obj)
}

fn answer(key: &Key, value: Option<&String>, header: Option<&InMemDicomObject>) -> InMemElement {
    if let Some(element) = value.and_then(|v| from_text(key.tag, key.vr, v)) {
        return element;
    }
    let Some(found) = header.and_then(|h| h.get(key.tag)) else {
        return empty(key);
    };
    match (&key.matcher, found.items()) {
        (Matcher::Sequence(item_keys), Some(items)) if !item_keys.is_empty() => {
            let items: Vec<InMemDicomObject> = items
                .iter()
                .map(|item| {
                    let mut reduced = InMemDicomObject::new_empty();
                    for k in item_keys {
                        reduced.put(answer(k, None, Some(item)));
                    }
                    reduced
                })
                .collect();
            DataElement::new(key.tag, VR::SQ, DataSetSequence::from(items))
        }
        _ => found.clone(),
    }
}

fn empty(key: &Key) -> InMemElement {
    if key.vr == VR::SQ {
        DataElement::new(
            key.tag,
            VR::SQ,
            DataSetSequence::from(Vec::<InMemDicomObject>::new()),
        )
    } else {
        DataElement::new(key.tag, key.vr, PrimitiveValue::Empty)
    }
}

/// An element of VR `vr` holding `text` (backslash-separated values), or `None` when the VR
/// cannot hold text or a number does not parse.
fn from_text(tag: Tag, vr: VR, text: &str) -> Option<InMemElement> {
    fn numbers<T: std::str::FromStr>(text: &str) -> Option<dicom_core::value::C<T>> {
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
