//! Encoding the response identifier of one match.

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
use ward_dicom::TextElement;

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
    let Some(values) = response_values(query, row) else {
        let obj = response_dataset(query, row)?;
        obj.write_dataset_with_ts(&mut out, ts)
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
        return Ok(out);
    };
    // Written straight from the text; what that declines (a binary VR, text in another
    // character set) goes to the data set writer element by element, as writing the object
    // would hand them over, without building the object and copying each value into its tokens.
    let explicit = ts_uid == EXPLICIT_VR_LITTLE_ENDIAN;
    if ward_dicom::write_text_elements_le(&mut out, &values, explicit) {
        return Ok(out);
    }
    let mut writer = DataSetWriter::with_ts_cs(&mut out, ts, SpecificCharacterSet::default())
        .map_err(|e| QueryError::Malformed(e.to_string()))?;
    for element in values.iter().map(|&value| value_element(value)) {
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
/// common case, `None` otherwise. They are text borrowed from the query and the row, which
/// front doors write straight into bytes (`ward_dicom::write_text_elements_le`,
/// `write_text_elements_json`) and make into elements ([`value_element`]) only for what those
/// decline: building the data set, or even each element, was most of the cost of a match.
pub fn response_values<'a>(query: &'a Query, row: &'a MatchRow) -> Option<Vec<TextElement<'a>>> {
    if row.header.is_some() || query.keys.iter().any(|key| key.vr == VR::SQ) {
        return None;
    }
    let mut values = Vec::with_capacity(query.keys.len() + 2);
    values.push((
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        Some(RESPONSE_CHARACTER_SET),
    ));
    values.push((
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        Some(query.level.as_str()),
    ));
    values.extend(query.keys.iter().map(|key| {
        let value = row.values.get(&key.tag).map(String::as_str);
        (key.tag, key.vr, value)
    }));
    // The object's order (by tag, stable) and its rule for a repeated tag: the last one put.
    values.sort_by_key(|&(tag, _, _)| tag);
    let mut unique: Vec<TextElement<'a>> = Vec::with_capacity(values.len());
    for value in values {
        if unique.last().is_some_and(|last| last.0 == value.0) {
            unique.pop();
        }
        unique.push(value);
    }
    Some(unique)
}

/// The element [`answer`] makes of a value from the row, without a header copy.
pub fn value_element((tag, vr, value): TextElement<'_>) -> InMemElement {
    value
        .and_then(|v| ward_dicom::text_element(tag, vr, v))
        .unwrap_or_else(|| empty_element(tag, vr))
}

/// Responses are UTF-8.
const RESPONSE_CHARACTER_SET: &str = "ISO_IR 192";

fn specific_character_set() -> InMemElement {
    DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from(RESPONSE_CHARACTER_SET),
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
    if let Some(element) = value.and_then(|v| ward_dicom::text_element(key.tag, key.vr, v)) {
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
    empty_element(key.tag, key.vr)
}

fn empty_element(tag: Tag, vr: VR) -> InMemElement {
    if vr == VR::SQ {
        DataElement::new(
            tag,
            VR::SQ,
            DataSetSequence::from(Vec::<InMemDicomObject>::new()),
        )
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}
