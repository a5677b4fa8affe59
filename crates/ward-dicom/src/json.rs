//! The DICOM JSON Model (PS3.18 Annex F.2), encoding only.
//!
//! dicom-json inlines every binary value and cannot emit `BulkDataURI`, which WADO-RS metadata
//! needs for pixel data, so this encoder is Ward's own. Each binary value (OB, OD, OF, OL, OV,
//! OW, UN, and encapsulated pixel data whatever its VR) is handed to a caller's policy as a
//! [`BulkRef`] — where it sits and how long it is — and the policy answers inline (base64),
//! by URI, or not at all.
//!
//! Choices the standard leaves open, or where data sets break its rules:
//!
//! - Text is written as decoded by dicom-rs under the data set's Specific Character Set, with
//!   trailing spaces and NULs removed (NUL is UI's padding and never valid text elsewhere);
//!   leading spaces are kept, as they are significant in LT, ST and UT.
//! - LT, ST, UT and UR hold one value and a backslash in them is text; every other text VR is
//!   split on backslashes. An element whose only value is empty has no `"Value"`; an empty
//!   value among several is `null` (F.2.5).
//! - PN: each value is an object with the non-empty component groups of `Alphabetic`,
//!   `Ideographic` and `Phonetic`; a value with none is `null`.
//! - DS and IS are written as JSON numbers when their text is a finite number (IS as an
//!   integer, or as a float when a sender wrote a decimal point). Text that is not, and binary
//!   floats that are NaN or infinite, are written as JSON strings holding the original text
//!   (`"NaN"`, `"Infinity"`, `"-Infinity"` for binary ones): JSON has no such numbers, and a
//!   string keeps the data visible rather than dropping it or emitting invalid JSON.
//! - SV and UV values whose magnitude exceeds 2^53 are strings (F.2.3.1), because JSON readers
//!   keep numbers as doubles. FL values are written with the shortest decimal form that reads
//!   back as the same 32-bit float.
//! - An empty sequence has no `"Value"`, like any other empty element.
//! - Binary values are little endian, whatever the transfer syntax they were read from; an
//!   encapsulated pixel data value is its item stream (Basic Offset Table item, then one item
//!   per fragment, without the sequence delimiter).

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dicom_core::header::Header;
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use serde_json::{Map, Number, Value as Json};

use crate::TextElement;

/// Binary values up to this many bytes go inline under [`wado_bulk_policy`].
pub const DEFAULT_INLINE_LIMIT: u64 = 1024;

/// The largest integer every JSON reader holds exactly (numbers are doubles in JavaScript).
const MAX_EXACT_JSON_INTEGER: u64 = 1 << 53;

/// Pixel Data, Float Pixel Data and Double Float Pixel Data.
const PIXEL_DATA_TAGS: [Tag; 3] = [
    Tag(0x7FE0, 0x0010),
    Tag(0x7FE0, 0x0008),
    Tag(0x7FE0, 0x0009),
];

/// One step into a sequence: the sequence's tag and the item's index (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathStep {
    pub sequence: Tag,
    pub item: usize,
}

/// A binary value the encoder met, for the caller's [`BulkPolicy`] to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkRef<'a> {
    /// The sequences and items that lead to the element, outermost first; empty at top level.
    pub parents: &'a [PathStep],
    pub tag: Tag,
    /// The element's VR as it will appear in `"vr"`.
    pub vr: VR,
    /// The number of bytes `InlineBinary` would carry (before base64).
    pub length: u64,
    /// The value is encapsulated (compressed) pixel data.
    pub encapsulated: bool,
}

impl BulkRef<'_> {
    /// Pixel Data, Float Pixel Data or Double Float Pixel Data, at any depth.
    pub fn is_pixel_data(&self) -> bool {
        PIXEL_DATA_TAGS.contains(&self.tag)
    }

    /// The element's position as `/`-separated steps: tags as 8 upper-case hex digits and item
    /// indexes (from 0) in decimal, e.g. `7FE00010` or `00880200/0/7FE00010`. It contains
    /// only `[0-9A-F/]`, so it can go into a URI path as is.
    pub fn path(&self) -> String {
        let mut out = String::with_capacity(self.parents.len() * 11 + 8);
        for step in self.parents {
            push_tag(&mut out, step.sequence);
            let _ = write!(out, "/{}/", step.item);
        }
        push_tag(&mut out, self.tag);
        out
    }
}

/// What to do with one binary value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkPolicy {
    /// `"InlineBinary"`: the value in base64.
    InlineBinary,
    /// `"BulkDataURI"`: where the caller serves the value.
    BulkDataUri(String),
    /// Leave the attribute out of the JSON altogether (an attribute without a value would read
    /// as "present but empty", which is not true).
    Omit,
}

/// The policy of WADO-RS metadata: pixel data, and any binary value over
/// [`DEFAULT_INLINE_LIMIT`] bytes, go by URI as `{base_uri}/{path}` (see [`BulkRef::path`]);
/// smaller values go inline. `base_uri` should not end with `/`.
pub fn wado_bulk_policy(base_uri: &str) -> impl Fn(&BulkRef<'_>) -> BulkPolicy + '_ {
    move |bulk| {
        if bulk.is_pixel_data() || bulk.length > DEFAULT_INLINE_LIMIT {
            BulkPolicy::BulkDataUri(format!("{base_uri}/{}", bulk.path()))
        } else {
            BulkPolicy::InlineBinary
        }
    }
}

/// Encodes a data set as a DICOM JSON object: keys are the tags as 8 upper-case hex digits in
/// ascending order, values `{"vr": .., "Value" | "InlineBinary" | "BulkDataURI": ..}`.
/// `bulk` is asked once for each non-empty binary value, in the order they appear.
pub fn to_dicom_json<F>(obj: &InMemDicomObject, mut bulk: F) -> Json
where
    F: FnMut(&BulkRef<'_>) -> BulkPolicy,
{
    let mut parents = Vec::new();
    Json::Object(encode_dataset(obj, &mut parents, &mut bulk))
}

/// Appends a data set given as its elements (ascending tag order, each tag once) to `out` as a
/// DICOM JSON object: the text that serialising [`to_dicom_json`]'s answer for the same data set
/// gives, binary values inline, without building the data set or the JSON tree of the whole.
/// For answers of many small data sets (QIDO-RS matches), where building both per data set
/// cost more than the query that found them.
pub fn write_elements_json(out: &mut Vec<u8>, elements: &[InMemElement]) -> serde_json::Result<()> {
    let mut parents = Vec::new();
    let mut inline = |_: &BulkRef<'_>| BulkPolicy::InlineBinary;
    let mut key = String::with_capacity(8);
    out.push(b'{');
    let mut first = true;
    for elem in elements {
        let Some(attr) = encode_element(elem, &mut parents, &mut inline) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        key.clear();
        push_tag(&mut key, elem.tag());
        serde_json::to_writer(&mut *out, &key)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, &attr)?;
    }
    out.push(b'}');
    Ok(())
}

/// [`write_elements_json`] for elements given as text: what it writes for the same elements
/// with string values (the text split at backslashes, except in LT, ST, UT and UR, whose single
/// value may hold one) or empty ones (`None`), without building them. A C-FIND answer's values
/// come from the index as text; making each an element first was most of the cost of a
/// QIDO-RS match.
///
/// Only text VRs, PN, IS and DS are written this way. Returns `Ok(false)`, with `out` as it
/// was, when an element has another VR: the caller then builds the elements.
pub fn write_text_elements_json(
    out: &mut Vec<u8>,
    elements: &[TextElement<'_>],
) -> serde_json::Result<bool> {
    let start = out.len();
    out.push(b'{');
    for (i, &(tag, vr, text)) in elements.iter().enumerate() {
        let render: fn(&mut Vec<u8>, VR, &str) -> serde_json::Result<()> = match vr {
            VR::PN => write_person_name,
            VR::IS | VR::DS => |out, vr, text| serde_json::to_writer(out, &numeric_text(vr, text)),
            VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DT
            | VR::TM
            | VR::UI
            | VR::LO
            | VR::SH
            | VR::UC
            | VR::LT
            | VR::ST
            | VR::UT
            | VR::UR => write_text_value,
            _ => {
                out.truncate(start);
                return Ok(false);
            }
        };
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        push_hex_tag(out, tag);
        out.extend_from_slice(b"\":{");
        // The values as `text_values` finds them: padding trimmed, none for one empty value.
        let text = text.unwrap_or_default();
        let single = is_single_valued_text(vr) || !text.contains('\\');
        if !(single && trim_padding(text).is_empty()) {
            out.extend_from_slice(b"\"Value\":[");
            if single {
                render(out, vr, trim_padding(text))?;
            } else {
                for (j, value) in text.split('\\').enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    render(out, vr, trim_padding(value))?;
                }
            }
            out.extend_from_slice(b"],");
        }
        // Keys in the order the JSON tree's map (sorted) serialises them.
        out.extend_from_slice(b"\"vr\":\"");
        out.extend_from_slice(&vr.to_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.push(b'}');
    Ok(true)
}

/// A tag as eight upper-case hexadecimal digits, as [`push_tag`] writes it.
fn push_hex_tag(out: &mut Vec<u8>, tag: Tag) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bits = (u32::from(tag.0) << 16) | u32::from(tag.1);
    out.extend(
        (0..8)
            .rev()
            .map(|nibble| HEX[((bits >> (nibble * 4)) & 0xF) as usize]),
    );
}

/// One value of a text element: `null` when empty, as [`primitive_values`] has it.
fn write_text_value(out: &mut Vec<u8>, _: VR, value: &str) -> serde_json::Result<()> {
    if value.is_empty() {
        out.extend_from_slice(b"null");
        Ok(())
    } else {
        serde_json::to_writer(out, value)
    }
}

/// One PN value, as [`person_name`] makes it.
fn write_person_name(out: &mut Vec<u8>, _: VR, value: &str) -> serde_json::Result<()> {
    let mut any = false;
    for (name, group) in [
        &b"\"Alphabetic\":"[..],
        b"\"Ideographic\":",
        b"\"Phonetic\":",
    ]
    .into_iter()
    .zip(value.splitn(3, '='))
    {
        let group = trim_padding(group);
        if group.is_empty() {
            continue;
        }
        out.push(if any { b',' } else { b'{' });
        any = true;
        out.extend_from_slice(name);
        serde_json::to_writer(&mut *out, group)?;
    }
    out.extend_from_slice(if any { b"}" } else { b"null" });
    Ok(())
}

/// The bytes `InlineBinary` would carry for the binary value at `path` (as made by
/// [`BulkRef::path`]), for serving a `BulkDataURI`; `None` when the path is malformed or names
/// no binary value. `path` may come straight from a request: it is parsed, never trusted.
pub fn bulk_value<'a>(obj: &'a InMemDicomObject, path: &str) -> Option<Cow<'a, [u8]>> {
    let mut steps = path.split('/');
    let mut current = obj;
    loop {
        let tag = parse_tag(steps.next()?)?;
        let elem = current.get(tag)?;
        match steps.next() {
            None => {
                return match elem.value() {
                    Value::PixelSequence(pixels) => Some(Cow::Owned(encapsulated_bytes(pixels))),
                    Value::Primitive(value) if is_binary_vr(elem.vr()) => Some(binary_bytes(value)),
                    _ => None,
                };
            }
            Some(index) => {
                // Digits only: `usize::from_str` would also take a leading `+`.
                if !index.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let index: usize = index.parse().ok()?;
                current = elem.items()?.get(index)?;
            }
        }
    }
}

fn parse_tag(text: &str) -> Option<Tag> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let group = u16::from_str_radix(&text[..4], 16).ok()?;
    let element = u16::from_str_radix(&text[4..], 16).ok()?;
    Some(Tag(group, element))
}

fn encode_dataset(
    obj: &InMemDicomObject,
    parents: &mut Vec<PathStep>,
    bulk: &mut dyn FnMut(&BulkRef<'_>) -> BulkPolicy,
) -> Map<String, Json> {
    let mut out = Map::new();
    // The object keeps its elements in a map ordered by tag, which is the order F.2 asks for.
    for elem in obj.iter() {
        let tag = elem.tag();
        if let Some(attr) = encode_element(elem, parents, bulk) {
            let mut key = String::with_capacity(8);
            push_tag(&mut key, tag);
            out.insert(key, Json::Object(attr));
        }
    }
    out
}

/// One attribute object, or `None` when the policy omits it.
fn encode_element(
    elem: &InMemElement,
    parents: &mut Vec<PathStep>,
    bulk: &mut dyn FnMut(&BulkRef<'_>) -> BulkPolicy,
) -> Option<Map<String, Json>> {
    let tag = elem.tag();
    let vr = elem.vr();
    let mut attr = Map::new();
    match elem.value() {
        Value::Sequence(seq) => {
            // Items only exist under SQ; an undefined-length UN read as items is one too.
            attr.insert("vr".into(), Json::from("SQ"));
            let mut items = Vec::with_capacity(seq.items().len());
            for (index, item) in seq.items().iter().enumerate() {
                parents.push(PathStep {
                    sequence: tag,
                    item: index,
                });
                items.push(Json::Object(encode_dataset(item, parents, bulk)));
                parents.pop();
            }
            if !items.is_empty() {
                attr.insert("Value".into(), Json::Array(items));
            }
        }
        Value::PixelSequence(pixels) => {
            attr.insert("vr".into(), Json::from(vr.to_string()));
            let length = encapsulated_len(pixels);
            let bulk_ref = BulkRef {
                parents,
                tag,
                vr,
                length,
                encapsulated: true,
            };
            match bulk(&bulk_ref) {
                BulkPolicy::InlineBinary => {
                    let bytes = encapsulated_bytes(pixels);
                    attr.insert("InlineBinary".into(), Json::from(BASE64.encode(bytes)));
                }
                BulkPolicy::BulkDataUri(uri) => {
                    attr.insert("BulkDataURI".into(), Json::from(uri));
                }
                BulkPolicy::Omit => return None,
            }
        }
        Value::Primitive(value) => {
            attr.insert("vr".into(), Json::from(vr.to_string()));
            if is_binary_vr(vr) {
                let length = binary_len(value);
                if length > 0 {
                    let bulk_ref = BulkRef {
                        parents,
                        tag,
                        vr,
                        length,
                        encapsulated: false,
                    };
                    match bulk(&bulk_ref) {
                        BulkPolicy::InlineBinary => {
                            let bytes = binary_bytes(value);
                            attr.insert("InlineBinary".into(), Json::from(BASE64.encode(bytes)));
                        }
                        BulkPolicy::BulkDataUri(uri) => {
                            attr.insert("BulkDataURI".into(), Json::from(uri));
                        }
                        BulkPolicy::Omit => return None,
                    }
                }
            } else {
                let values = primitive_values(vr, value);
                if !values.is_empty() {
                    attr.insert("Value".into(), Json::Array(values));
                }
            }
        }
    }
    Some(attr)
}

fn is_binary_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
    )
}

/// The `"Value"` array of a non-binary primitive element; empty for an empty element.
fn primitive_values(vr: VR, value: &PrimitiveValue) -> Vec<Json> {
    match vr {
        VR::AT => tag_values(value),
        VR::PN => text_values(vr, value)
            .iter()
            .map(|v| person_name(v))
            .collect(),
        VR::IS | VR::DS | VR::FL | VR::FD | VR::SL | VR::SS | VR::SV | VR::UL | VR::US | VR::UV => {
            numeric_values(vr, value)
        }
        _ => text_values(vr, value)
            .into_iter()
            .map(|v| {
                if v.is_empty() {
                    Json::Null
                } else {
                    Json::from(v)
                }
            })
            .collect(),
    }
}

/// LT, ST, UT and UR hold a single value in which a backslash is an ordinary character.
fn is_single_valued_text(vr: VR) -> bool {
    matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR)
}

/// The values of a text element, padding removed; empty when the element has no value.
fn text_values(vr: VR, value: &PrimitiveValue) -> Vec<String> {
    let raw: Vec<Cow<'_, str>> = match value {
        PrimitiveValue::Empty => Vec::new(),
        PrimitiveValue::Str(s) => vec![Cow::Borrowed(s.as_str())],
        PrimitiveValue::Strs(c) => c.iter().map(|s| Cow::Borrowed(s.as_str())).collect(),
        // Dates, times and numbers read by an interpreting parser, or built in code: dicom-core
        // writes them in their DICOM text form, joined by backslashes.
        other => vec![other.to_str()],
    };
    let mut values = Vec::with_capacity(raw.len());
    for text in &raw {
        if is_single_valued_text(vr) {
            values.push(trim_padding(text).to_owned());
        } else {
            values.extend(text.split('\\').map(|part| trim_padding(part).to_owned()));
        }
    }
    if values.len() == 1 && values[0].is_empty() {
        values.clear();
    }
    values
}

fn trim_padding(text: &str) -> &str {
    text.trim_end_matches([' ', '\0'])
}

/// A PN value: its component groups by name, empty ones left out.
fn person_name(value: &str) -> Json {
    let mut groups = Map::new();
    // A fourth `=` is invalid; the remainder stays in the phonetic group rather than vanishing.
    for (name, group) in ["Alphabetic", "Ideographic", "Phonetic"]
        .into_iter()
        .zip(value.splitn(3, '='))
    {
        let group = trim_padding(group);
        if !group.is_empty() {
            groups.insert(name.into(), Json::from(group));
        }
    }
    if groups.is_empty() {
        Json::Null
    } else {
        Json::Object(groups)
    }
}

fn tag_values(value: &PrimitiveValue) -> Vec<Json> {
    let tag_json = |tag: Tag| {
        let mut s = String::with_capacity(8);
        push_tag(&mut s, tag);
        Json::from(s)
    };
    match value {
        PrimitiveValue::Tags(tags) => tags.iter().map(|t| tag_json(*t)).collect(),
        // Group and element pairs, as an AT value is laid out on the wire.
        PrimitiveValue::U16(words) if words.len() % 2 == 0 => words
            .chunks_exact(2)
            .map(|pair| tag_json(Tag(pair[0], pair[1])))
            .collect(),
        PrimitiveValue::U32(words) => words
            .iter()
            .map(|w| tag_json(Tag((w >> 16) as u16, (w & 0xFFFF) as u16)))
            .collect(),
        PrimitiveValue::Empty => Vec::new(),
        // Anything else is not a tag; keep what it says as text rather than lose it.
        other => text_values(VR::AT, other)
            .into_iter()
            .map(Json::from)
            .collect(),
    }
}

fn numeric_values(vr: VR, value: &PrimitiveValue) -> Vec<Json> {
    match value {
        PrimitiveValue::Empty => Vec::new(),
        PrimitiveValue::U8(c) => c.iter().map(|v| Json::from(*v)).collect(),
        PrimitiveValue::I16(c) => c.iter().map(|v| Json::from(*v)).collect(),
        PrimitiveValue::U16(c) => c.iter().map(|v| Json::from(*v)).collect(),
        PrimitiveValue::I32(c) => c.iter().map(|v| Json::from(*v)).collect(),
        PrimitiveValue::U32(c) => c.iter().map(|v| Json::from(*v)).collect(),
        PrimitiveValue::I64(c) => c.iter().map(|v| signed_json(*v)).collect(),
        PrimitiveValue::U64(c) => c.iter().map(|v| unsigned_json(*v)).collect(),
        PrimitiveValue::F32(c) => c.iter().map(|v| f32_json(*v)).collect(),
        PrimitiveValue::F64(c) => c.iter().map(|v| f64_json(*v)).collect(),
        other => text_values(vr, other)
            .iter()
            .map(|text| numeric_text(vr, text))
            .collect(),
    }
}

/// A number held as text (DS and IS, or any numeric VR a builder filled with strings).
fn numeric_text(vr: VR, text: &str) -> Json {
    // DS and IS allow leading and trailing spaces.
    let text = text.trim_matches(' ');
    if text.is_empty() {
        return Json::Null;
    }
    if vr != VR::DS && vr != VR::FL && vr != VR::FD {
        if let Ok(v) = text.parse::<i64>() {
            return signed_json(v);
        }
        if let Ok(v) = text.parse::<u64>() {
            return unsigned_json(v);
        }
    }
    // Rust's float syntax is wider than DICOM's (it takes "inf" and "NaN"), hence the check
    // for a finite result, which also catches overflow to infinity.
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => f64_json(v),
        _ => Json::from(text),
    }
}

fn signed_json(v: i64) -> Json {
    if v.unsigned_abs() <= MAX_EXACT_JSON_INTEGER {
        Json::from(v)
    } else {
        Json::from(v.to_string())
    }
}

fn unsigned_json(v: u64) -> Json {
    if v <= MAX_EXACT_JSON_INTEGER {
        Json::from(v)
    } else {
        Json::from(v.to_string())
    }
}

fn f32_json(v: f32) -> Json {
    if !v.is_finite() {
        return non_finite_json(f64::from(v));
    }
    // Display gives the shortest text that reads back as the same f32 ("0.1", not
    // "0.10000000149011612"), which any double parser then reads back to that f32.
    let shortest: f64 = v.to_string().parse().unwrap_or(f64::from(v));
    f64_json(shortest)
}

fn f64_json(v: f64) -> Json {
    match Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None => non_finite_json(v),
    }
}

fn non_finite_json(v: f64) -> Json {
    Json::from(if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    })
}

/// The byte length of a binary value, without building its bytes.
fn binary_len(value: &PrimitiveValue) -> u64 {
    let (count, width) = match value {
        PrimitiveValue::Empty => (0, 0),
        PrimitiveValue::U8(c) => (c.len(), 1),
        PrimitiveValue::I16(c) => (c.len(), 2),
        PrimitiveValue::U16(c) => (c.len(), 2),
        PrimitiveValue::I32(c) => (c.len(), 4),
        PrimitiveValue::U32(c) => (c.len(), 4),
        PrimitiveValue::F32(c) => (c.len(), 4),
        PrimitiveValue::Tags(c) => (c.len(), 4),
        PrimitiveValue::I64(c) => (c.len(), 8),
        PrimitiveValue::U64(c) => (c.len(), 8),
        PrimitiveValue::F64(c) => (c.len(), 8),
        other => (binary_bytes(other).len(), 1),
    };
    (count as u64).saturating_mul(width)
}

/// A binary value's bytes in little-endian order.
fn binary_bytes(value: &PrimitiveValue) -> Cow<'_, [u8]> {
    fn le<T: Copy, const N: usize>(c: &[T], to_le: fn(T) -> [u8; N]) -> Cow<'static, [u8]> {
        Cow::Owned(c.iter().flat_map(|v| to_le(*v)).collect())
    }
    match value {
        PrimitiveValue::Empty => Cow::Borrowed(&[]),
        PrimitiveValue::U8(c) => Cow::Borrowed(c.as_slice()),
        PrimitiveValue::I16(c) => le(c, i16::to_le_bytes),
        PrimitiveValue::U16(c) => le(c, u16::to_le_bytes),
        PrimitiveValue::I32(c) => le(c, i32::to_le_bytes),
        PrimitiveValue::U32(c) => le(c, u32::to_le_bytes),
        PrimitiveValue::I64(c) => le(c, i64::to_le_bytes),
        PrimitiveValue::U64(c) => le(c, u64::to_le_bytes),
        PrimitiveValue::F32(c) => le(c, f32::to_le_bytes),
        PrimitiveValue::F64(c) => le(c, f64::to_le_bytes),
        PrimitiveValue::Tags(c) => Cow::Owned(
            c.iter()
                .flat_map(|t| {
                    let [g0, g1] = t.0.to_le_bytes();
                    let [e0, e1] = t.1.to_le_bytes();
                    [g0, g1, e0, e1]
                })
                .collect(),
        ),
        // Text under a binary VR (a builder's doing): its bytes as they are.
        PrimitiveValue::Str(s) => Cow::Borrowed(s.as_bytes()),
        other => Cow::Owned(other.to_str().into_owned().into_bytes()),
    }
}

const ITEM_HEADER_LEN: u64 = 8;

fn encapsulated_len(pixels: &PixelFragmentSequence<Vec<u8>>) -> u64 {
    let table = ITEM_HEADER_LEN + 4 * pixels.offset_table().len() as u64;
    pixels
        .fragments()
        .iter()
        .fold(table, |sum, f| sum + ITEM_HEADER_LEN + f.len() as u64)
}

/// The item stream of encapsulated pixel data: (FFFE,E000) items, little endian.
fn encapsulated_bytes(pixels: &PixelFragmentSequence<Vec<u8>>) -> Vec<u8> {
    fn item_header(out: &mut Vec<u8>, len: usize) {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        // A fragment over 4 GiB cannot have been read from a file; saturate rather than wrap.
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    }
    let mut out = Vec::with_capacity(usize::try_from(encapsulated_len(pixels)).unwrap_or(0));
    item_header(&mut out, pixels.offset_table().len() * 4);
    for offset in pixels.offset_table() {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for fragment in pixels.fragments() {
        item_header(&mut out, fragment.len());
        out.extend_from_slice(fragment);
    }
    out
}

fn push_tag(out: &mut String, tag: Tag) {
    let _ = write!(out, "{:04X}{:04X}", tag.0, tag.1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_written_directly_is_what_the_elements_give() {
        let elements = crate::native::sample_text_elements("ISO_IR 192");
        let built = crate::native::sample_elements(&elements);
        let mut expected = Vec::new();
        write_elements_json(&mut expected, &built).unwrap();
        let mut direct = b"[".to_vec();
        assert!(write_text_elements_json(&mut direct, &elements).unwrap());
        assert_eq!(
            String::from_utf8(direct[1..].to_vec()).unwrap(),
            String::from_utf8(expected).unwrap()
        );

        // Other VRs are left to the elements.
        let mut out = b"[".to_vec();
        let binary = [(tags::ROWS, VR::US, Some("512"))];
        assert!(!write_text_elements_json(&mut out, &binary).unwrap());
        assert_eq!(out, b"[");
    }

    #[test]
    fn elements_written_directly_read_as_the_json_tree_does() {
        let elements: Vec<InMemElement> = vec![
            DataElement::new(
                tags::SPECIFIC_CHARACTER_SET,
                VR::CS,
                dicom_value!(Str, "ISO_IR 192"),
            ),
            DataElement::new(tags::STUDY_DATE, VR::DA, dicom_value!(Str, "20240102")),
            DataElement::new(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::Empty),
            DataElement::new(
                tags::MODALITIES_IN_STUDY,
                VR::CS,
                dicom_value!(Strs, ["CT", "MR"]),
            ),
            DataElement::new(
                tags::REFERRING_PHYSICIAN_NAME,
                VR::PN,
                PrimitiveValue::Empty,
            ),
            DataElement::new(
                tags::PATIENT_NAME,
                VR::PN,
                dicom_value!(Str, "Müller^Jörg=ミュラー"),
            ),
            DataElement::new(tags::PATIENT_ID, VR::LO, dicom_value!(Str, "ID \"7\" \\ x")),
            DataElement::new(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                dicom_value!(Str, "1.2.3\0"),
            ),
            DataElement::new(tags::SERIES_NUMBER, VR::IS, dicom_value!(Str, "12 ")),
            DataElement::new(tags::SLICE_THICKNESS, VR::DS, dicom_value!(Str, "2.50")),
            DataElement::new(
                tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                VR::IS,
                dicom_value!(U32, [40]),
            ),
            DataElement::new(Tag(0x0009, 0x1001), VR::OB, dicom_value!(U8, [1, 2, 3])),
        ];
        let mut obj = InMemDicomObject::new_empty();
        for elem in &elements {
            obj.put(elem.clone());
        }
        let mut sorted = elements;
        sorted.sort_by_key(|e| e.tag());
        let mut direct = Vec::new();
        write_elements_json(&mut direct, &sorted).unwrap();
        let tree = serde_json::to_vec(&to_dicom_json(&obj, |_| BulkPolicy::InlineBinary)).unwrap();
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(tree).unwrap()
        );
    }

    use std::path::Path;
    use std::process::Command;

    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, dicom_value};
    use dicom_dictionary_std::tags;

    /// Resolves pydicom test files by name (or takes a path), reads each with pydicom and prints
    /// `[{"name", "path", "json"}]`, `json` being `Dataset.to_json_dict()` (every binary value
    /// inline) brought to the conventions this encoder documents where pydicom differs:
    /// empty sequences and lone empty values lose `"Value"`, empty values among several become
    /// `null`, and PN values lose their empty component groups.
    const PYDICOM_TO_JSON: &str = r#"
import json, sys
import pydicom, pydicom.data as d

def resolve(name):
    if name.startswith('/'):
        return name
    if name.startswith('chr'):
        return d.get_charset_files(name)[0]
    return d.get_testdata_file(name)

def norm_attr(a):
    v = a.get('Value')
    if v is None:
        return a
    if a['vr'] == 'SQ':
        if v:
            a['Value'] = [norm_ds(i) for i in v]
        else:
            del a['Value']
        return a
    if a['vr'] == 'PN':
        v = [({k: x for k, x in p.items() if x} or None) if isinstance(p, dict) else p for p in v]
    v = [None if x == '' else x for x in v]
    if v == [None]:
        del a['Value']
    else:
        a['Value'] = v
    return a

def norm_ds(ds):
    return {k: norm_attr(a) for k, a in ds.items()}

out = []
for name in sys.argv[1:]:
    path = resolve(name)
    ds = pydicom.dcmread(path)
    out.append({'name': name, 'path': path, 'json': norm_ds(ds.to_json_dict())})
print(json.dumps(out, allow_nan=False))
"#;

    /// Writes, with pydicom, a data set holding every VR and the cases that need care: PN
    /// component groups, empty values among several, an empty sequence, AT, SV and UV, binary
    /// values nested two sequences deep, backslashes in LT and UT.
    const PYDICOM_SYNTHETIC: &str = r#"
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
ds = Dataset()
ds.SpecificCharacterSet = 'ISO_IR 192'
ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
ds.SOPInstanceUID = '1.2.3.4.5'
ds.ImageType = 'ORIGINAL\\\\AXIAL'
ds.PatientName = 'Yamada^Tarou=山田^太郎=やまだ^たろう'
ds.add_new(0x00081070, 'PN', ['Doe^John', '=Ideo^Only'])
ds.PatientID = ''
ds.add_new(0x00081140, 'SQ', [])
ds.add_new(0x00209165, 'AT', [0x00100010, 0x7FE00010])
ds.add_new(0x00204000, 'LT', 'C:\\dir\\file')
ds.add_new(0x00090010, 'LO', 'WARD TEST')
ds.add_new(0x00091001, 'SV', [-5, 2**40])
ds.add_new(0x00091002, 'UV', [7, 2**52])
ds.add_new(0x00091003, 'OW', b'\x01\x02\x03\x04')
ds.add_new(0x00091004, 'UN', b'\x05\x06')
ds.add_new(0x00091005, 'OF', b'\x00\x00\x80\x3f\x00\x00\x00\x40')
ds.add_new(0x00091006, 'UC', 'a\\b')
ds.add_new(0x00091007, 'DS', ['1.5', '-2e3', '7'])
ds.add_new(0x00091008, 'IS', ['42', '-7'])
ds.add_new(0x00091009, 'FL', [0.1, -2.5])
ds.add_new(0x0009100A, 'FD', [0.1, 1e300])
ds.add_new(0x0009100B, 'SS', [-3, 4])
ds.add_new(0x0009100C, 'US', [65535])
ds.add_new(0x0009100D, 'UT', 'long text \\ with backslash')
ds.add_new(0x0009100E, 'UR', 'http://example.com/x')
ds.add_new(0x0009100F, 'SL', [-70000])
ds.add_new(0x00091013, 'UL', [4000000000])
ds.add_new(0x00091014, 'OL', b'\x01\x00\x00\x00')
ds.add_new(0x00091015, 'OV', b'\x02\x00\x00\x00\x00\x00\x00\x00')
ds.add_new(0x00091016, 'DA', ['20240131', '19991231'])
ds.add_new(0x00091017, 'TM', '235959.123')
ds.add_new(0x00091018, 'DT', '20240131235959.5+0100')
ds.add_new(0x00091019, 'AS', '042Y')
ds.add_new(0x0009101A, 'ST', 'short\\text')
inner = Dataset()
inner.add_new(0x00090010, 'LO', 'WARD TEST')
inner.add_new(0x00091011, 'OB', b'\xff\x00\x01\x02')
deeper = Dataset()
deeper.add_new(0x00090010, 'LO', 'WARD TEST')
deeper.add_new(0x00091012, 'OD', b'\x00' * 16)
inner.add_new(0x00091010, 'SQ', [deeper])
ds.add_new(0x00091010, 'SQ', [inner, Dataset()])
ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(sys.argv[1], enforce_file_format=True)
"#;

    fn python(script: &str, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 runs: the test command installs it with pydicom");
        assert!(
            out.status.success(),
            "python3 with pydicom failed (the test command installs pydicom): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("pydicom's output is UTF-8")
    }

    fn inline_all(_: &BulkRef<'_>) -> BulkPolicy {
        BulkPolicy::InlineBinary
    }

    /// Differences between pydicom's JSON and ours, as readable lines.
    fn differences(expected: &Json, actual: &Json) -> Vec<String> {
        let mut out = Vec::new();
        diff_dataset("", expected, actual, &mut out);
        out
    }

    fn diff_dataset(path: &str, expected: &Json, actual: &Json, out: &mut Vec<String>) {
        let (Some(e), Some(a)) = (expected.as_object(), actual.as_object()) else {
            out.push(format!("{path}: data set is not an object"));
            return;
        };
        for (key, e_attr) in e {
            let here = format!("{path}/{key}");
            match a.get(key) {
                None => out.push(format!("{here}: missing, pydicom has {e_attr}")),
                Some(a_attr) => diff_attr(&here, e_attr, a_attr, out),
            }
        }
        for key in a.keys().filter(|k| !e.contains_key(*k)) {
            out.push(format!("{path}/{key}: extra {}", a[key]));
        }
    }

    fn diff_attr(path: &str, expected: &Json, actual: &Json, out: &mut Vec<String>) {
        let vr = expected["vr"].as_str().unwrap_or("");
        if expected["vr"] != actual["vr"] {
            out.push(format!("{path}: vr {} != {}", expected["vr"], actual["vr"]));
        }
        for field in ["InlineBinary", "BulkDataURI"] {
            if expected.get(field) != actual.get(field) {
                out.push(format!("{path}: {field} differs"));
            }
        }
        match (expected.get("Value"), actual.get("Value")) {
            (None, None) => {}
            (Some(Json::Array(e)), Some(Json::Array(a))) if e.len() == a.len() => {
                for (i, (e, a)) in e.iter().zip(a).enumerate() {
                    let here = format!("{path}[{i}]");
                    if vr == "SQ" {
                        diff_dataset(&here, e, a, out);
                    } else if !same_value(vr, e, a) {
                        out.push(format!("{here}: pydicom {e}, ours {a}"));
                    }
                }
            }
            (e, a) => out.push(format!("{path}: Value {e:?} != {a:?}")),
        }
    }

    fn same_value(vr: &str, expected: &Json, actual: &Json) -> bool {
        match (expected, actual) {
            (Json::Number(e), Json::Number(a)) => {
                if e.is_f64() || a.is_f64() || vr == "DS" {
                    let (e, a) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(0.0));
                    if vr == "FL" {
                        // Ours is the shortest form of the f32, pydicom's the f32 widened.
                        e as f32 == a as f32
                    } else {
                        // serde_json's default float parsing may be one unit in the last
                        // place off.
                        (e - a).abs() <= 1e-15 * e.abs().max(a.abs())
                    }
                } else {
                    e == a
                }
            }
            _ => expected == actual,
        }
    }

    fn check_against_pydicom(names: &[&str]) {
        let listing: Json =
            serde_json::from_str(&python(PYDICOM_TO_JSON, names)).expect("pydicom's JSON parses");
        let entries = listing.as_array().expect("a list");
        assert_eq!(entries.len(), names.len());
        let mut failures = Vec::new();
        for entry in entries {
            let name = entry["name"].as_str().unwrap_or_default();
            let path = Path::new(entry["path"].as_str().expect("a path"));
            let obj = dicom_object::open_file(path)
                .unwrap_or_else(|e| panic!("dicom-rs reads {name}: {e}"));
            let ours = to_dicom_json(&obj, inline_all);
            for line in differences(&entry["json"], &ours) {
                failures.push(format!("{name}{line}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn matches_pydicom_on_its_test_files() {
        check_against_pydicom(&[
            "CT_small.dcm",
            "MR_small.dcm",
            "rtplan.dcm",
            "rtdose.dcm",
            "test-SR.dcm",
            "waveform_ecg.dcm",
            "priv_SQ.dcm",
            "nested_priv_SQ.dcm",
            "reportsi.dcm",
            "SC_rgb_jpeg_dcmtk.dcm",
            "JPEG2000.dcm",
            "MR_small_RLE.dcm",
            "examples_overlay.dcm",
            "liver_1frame.dcm",
            "reportsi_with_empty_number_tags.dcm",
        ]);
    }

    /// The single-byte sets and UTF-8. The ISO 2022 files (chrH31, chrH32, chrI2, chrJapMulti,
    /// chrKoreanMulti, chrSQEncoding) are not here: dicom-rs 0.10 does not switch character sets
    /// on escape sequences, so their multi-byte text reaches the encoder undecoded.
    #[test]
    fn matches_pydicom_on_character_sets() {
        check_against_pydicom(&[
            "chrFren.dcm",
            "chrFrenMulti.dcm",
            "chrGerm.dcm",
            "chrGreek.dcm",
            "chrRuss.dcm",
            "chrArab.dcm",
            "chrHbrw.dcm",
            "chrX1.dcm",
            "chrX2.dcm",
        ]);
    }

    #[test]
    fn matches_pydicom_on_every_vr() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("synthetic.dcm");
        let path = path.to_str().expect("UTF-8 temp path");
        python(PYDICOM_SYNTHETIC, &[path]);
        check_against_pydicom(&[path]);

        // The same file, checked by hand where it matters most.
        let obj = dicom_object::open_file(path).expect("dicom-rs reads it");
        let json = to_dicom_json(&obj, inline_all);
        assert_eq!(
            json["00100010"]["Value"][0],
            serde_json::json!({
                "Alphabetic": "Yamada^Tarou",
                "Ideographic": "山田^太郎",
                "Phonetic": "やまだ^たろう"
            })
        );
        assert_eq!(
            json["00081070"]["Value"],
            serde_json::json!([{"Alphabetic": "Doe^John"}, {"Ideographic": "Ideo^Only"}])
        );
        assert_eq!(
            json["00080008"]["Value"],
            serde_json::json!(["ORIGINAL", null, "AXIAL"])
        );
        assert_eq!(json["00100020"], serde_json::json!({"vr": "LO"}));
        assert_eq!(json["00081140"], serde_json::json!({"vr": "SQ"}));
        assert_eq!(
            json["00209165"]["Value"],
            serde_json::json!(["00100010", "7FE00010"])
        );
        assert_eq!(
            json["00204000"]["Value"],
            serde_json::json!(["C:\\dir\\file"])
        );
        assert_eq!(json["00091006"]["Value"], serde_json::json!(["a", "b"]));
        assert_eq!(
            json["00091007"]["Value"],
            serde_json::json!([1.5, -2000.0, 7.0])
        );
        assert_eq!(json["00091008"]["Value"], serde_json::json!([42, -7]));
        assert_eq!(json["00091009"]["Value"], serde_json::json!([0.1, -2.5]));
        assert_eq!(
            json["00091003"],
            serde_json::json!({"vr": "OW", "InlineBinary": "AQIDBA=="})
        );
    }

    fn element(tag: Tag, vr: VR, value: PrimitiveValue) -> InMemElement {
        DataElement::new(tag, vr, value)
    }

    fn object(elements: Vec<InMemElement>) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(elements)
    }

    #[test]
    fn keys_are_tags_in_ascending_order() {
        let obj = object(vec![
            element(Tag(0x7FE0, 0x0010), VR::OB, dicom_value!(U8, [1, 2])),
            element(tags::PATIENT_ID, VR::LO, dicom_value!(Str, "ID")),
            element(Tag(0x0009, 0x10AB), VR::LO, dicom_value!(Str, "x")),
            element(tags::SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, "1.2")),
        ]);
        let json = serde_json::to_string(&to_dicom_json(&obj, inline_all)).expect("serializes");
        let positions: Vec<usize> = ["00080018", "000910AB", "00100020", "7FE00010"]
            .iter()
            .map(|key| json.find(&format!("\"{key}\"")).expect("key present"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn padding_is_trimmed_and_backslashes_split_only_where_values_are_multiple() {
        let obj = object(vec![
            element(tags::SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, "1.2.3\0")),
            element(tags::MODALITY, VR::CS, dicom_value!(Str, "CT ")),
            element(tags::IMAGE_TYPE, VR::CS, dicom_value!(Str, "A \\B\\ ")),
            element(tags::IMAGE_COMMENTS, VR::LT, dicom_value!(Str, "  a\\b  ")),
            element(Tag(0x0009, 0x1001), VR::UT, dicom_value!(Str, "x\\y ")),
            element(Tag(0x0009, 0x1002), VR::ST, dicom_value!(Str, "p\\q")),
            element(
                Tag(0x0009, 0x1003),
                VR::UR,
                dicom_value!(Str, "http://h/a\\b "),
            ),
            element(Tag(0x0009, 0x1004), VR::UC, dicom_value!(Str, "u\\v ")),
            element(Tag(0x0009, 0x1005), VR::SH, dicom_value!(Str, "   ")),
        ]);
        let json = to_dicom_json(&obj, inline_all);
        assert_eq!(json["00080018"]["Value"], serde_json::json!(["1.2.3"]));
        assert_eq!(json["00080060"]["Value"], serde_json::json!(["CT"]));
        assert_eq!(
            json["00080008"]["Value"],
            serde_json::json!(["A", "B", null])
        );
        // Leading spaces are significant in LT, ST and UT.
        assert_eq!(json["00204000"]["Value"], serde_json::json!(["  a\\b"]));
        assert_eq!(json["00091001"]["Value"], serde_json::json!(["x\\y"]));
        assert_eq!(json["00091002"]["Value"], serde_json::json!(["p\\q"]));
        assert_eq!(
            json["00091003"]["Value"],
            serde_json::json!(["http://h/a\\b"])
        );
        assert_eq!(json["00091004"]["Value"], serde_json::json!(["u", "v"]));
        // Only padding: no value.
        assert_eq!(json["00091005"], serde_json::json!({"vr": "SH"}));
    }

    #[test]
    fn numbers_outside_json_stay_valid_json() {
        let obj = object(vec![
            element(
                Tag(0x0009, 0x1001),
                VR::DS,
                dicom_value!(Str, " 1.25 \\NaN\\1e999\\abc\\"),
            ),
            element(
                Tag(0x0009, 0x1002),
                VR::IS,
                dicom_value!(Str, "+12\\1.0\\x\\ -3"),
            ),
            element(
                Tag(0x0009, 0x1003),
                VR::FD,
                dicom_value!(F64, [f64::NAN, f64::INFINITY, -1.5]),
            ),
            element(
                Tag(0x0009, 0x1004),
                VR::FL,
                dicom_value!(F32, [f32::NEG_INFINITY, 0.3]),
            ),
            element(
                Tag(0x0009, 0x1005),
                VR::UV,
                dicom_value!(U64, [1 << 53, (1 << 53) + 1, u64::MAX]),
            ),
            element(
                Tag(0x0009, 0x1006),
                VR::SV,
                dicom_value!(I64, [-(1 << 53), -(1 << 53) - 1, i64::MIN]),
            ),
            element(Tag(0x0009, 0x1007), VR::US, dicom_value!(U16, [1, 65535])),
            element(Tag(0x0009, 0x1008), VR::SS, dicom_value!(I16, [-32768])),
            element(Tag(0x0009, 0x1009), VR::UL, dicom_value!(U32, [u32::MAX])),
            element(Tag(0x0009, 0x100A), VR::SL, dicom_value!(I32, [i32::MIN])),
            element(Tag(0x0009, 0x100B), VR::DS, dicom_value!(F64, [2.5])),
            element(Tag(0x0009, 0x100C), VR::IS, dicom_value!(I32, [-4])),
        ]);
        let json = to_dicom_json(&obj, inline_all);
        // Whatever went in, what comes out is JSON a strict parser takes back.
        let text = serde_json::to_string(&json).expect("serializes");
        assert_eq!(
            serde_json::from_str::<Json>(&text).expect("valid JSON"),
            json
        );
        assert_eq!(
            json["00091001"]["Value"],
            serde_json::json!([1.25, "NaN", "1e999", "abc", null])
        );
        assert_eq!(
            json["00091002"]["Value"],
            serde_json::json!([12, 1.0, "x", -3])
        );
        assert_eq!(
            json["00091003"]["Value"],
            serde_json::json!(["NaN", "Infinity", -1.5])
        );
        assert_eq!(
            json["00091004"]["Value"],
            serde_json::json!(["-Infinity", 0.3])
        );
        assert_eq!(
            json["00091005"]["Value"],
            serde_json::json!([
                9007199254740992_u64,
                "9007199254740993",
                "18446744073709551615"
            ])
        );
        assert_eq!(
            json["00091006"]["Value"],
            serde_json::json!([
                -9007199254740992_i64,
                "-9007199254740993",
                "-9223372036854775808"
            ])
        );
        assert_eq!(json["00091007"]["Value"], serde_json::json!([1, 65535]));
        assert_eq!(json["00091008"]["Value"], serde_json::json!([-32768]));
        assert_eq!(
            json["00091009"]["Value"],
            serde_json::json!([4294967295_u32])
        );
        assert_eq!(
            json["0009100A"]["Value"],
            serde_json::json!([-2147483648_i32])
        );
        assert_eq!(json["0009100B"]["Value"], serde_json::json!([2.5]));
        assert_eq!(json["0009100C"]["Value"], serde_json::json!([-4]));
    }

    #[test]
    fn person_names_keep_only_non_empty_groups() {
        let obj = object(vec![element(
            tags::PATIENT_NAME,
            VR::PN,
            dicom_value!(Strs, ["A^B==C^D", "==", "", "=I", "X=Y=Z=W "]),
        )]);
        let json = to_dicom_json(&obj, inline_all);
        assert_eq!(
            json["00100010"]["Value"],
            serde_json::json!([
                {"Alphabetic": "A^B", "Phonetic": "C^D"},
                null,
                null,
                {"Ideographic": "I"},
                {"Alphabetic": "X", "Ideographic": "Y", "Phonetic": "Z=W"}
            ])
        );
    }

    /// An object with binary values at the top level, in a sequence item and encapsulated.
    fn binary_object() -> InMemDicomObject {
        let item = object(vec![
            element(Tag(0x0009, 0x0010), VR::LO, dicom_value!(Str, "WARD")),
            element(
                Tag(0x0009, 0x1001),
                VR::OB,
                PrimitiveValue::U8(vec![7u8; 2000].into()),
            ),
            element(Tag(0x7FE0, 0x0010), VR::OW, dicom_value!(U16, [0x0102])),
        ]);
        let empty_item = object(vec![]);
        let mut obj = object(vec![
            element(Tag(0x0009, 0x0010), VR::LO, dicom_value!(Str, "WARD")),
            element(Tag(0x0009, 0x1002), VR::OB, dicom_value!(U8, [1, 2, 3])),
            element(Tag(0x0009, 0x1003), VR::UN, PrimitiveValue::Empty),
            element(Tag(0x0009, 0x1004), VR::OF, dicom_value!(F32, [1.0])),
            element(Tag(0x0009, 0x1005), VR::OD, dicom_value!(F64, [2.0])),
            element(
                Tag(0x0009, 0x1006),
                VR::OL,
                dicom_value!(U32, [0x0403_0201]),
            ),
            element(Tag(0x0009, 0x1007), VR::OV, dicom_value!(U64, [1])),
        ]);
        obj.put(DataElement::new(
            Tag(0x0088, 0x0200),
            VR::SQ,
            DataSetSequence::from(vec![empty_item, item]),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::from(PixelFragmentSequence::new(
                vec![0u32],
                vec![vec![0xFF, 0xD8, 0xFF, 0xD9]],
            )),
        ));
        obj
    }

    #[test]
    fn binary_values_inline_in_little_endian_base64() {
        let json = to_dicom_json(&binary_object(), inline_all);
        let inline = |key: &str| json[key]["InlineBinary"].as_str().map(str::to_owned);
        assert_eq!(inline("00091002").as_deref(), Some("AQID"));
        assert_eq!(json["00091003"], serde_json::json!({"vr": "UN"}));
        assert_eq!(inline("00091004").as_deref(), Some("AACAPw=="));
        assert_eq!(inline("00091005").as_deref(), Some("AAAAAAAAAEA="));
        assert_eq!(inline("00091006").as_deref(), Some("AQIDBA=="));
        assert_eq!(inline("00091007").as_deref(), Some("AQAAAAAAAAA="));
        // Encapsulated: the offset table item (one entry), then the fragment's item.
        let expected = [
            &[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0][..],
            &[0, 0, 0, 0],
            &[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xD9],
        ]
        .concat();
        assert_eq!(inline("7FE00010"), Some(BASE64.encode(expected)));
        assert_eq!(
            json["00880200"]["Value"][1]["7FE00010"],
            serde_json::json!({"vr": "OW", "InlineBinary": "AgE="})
        );
        assert_eq!(json["00880200"]["Value"][0], serde_json::json!({}));
    }

    #[test]
    fn the_policy_sees_paths_and_lengths_and_decides() {
        let mut seen = Vec::new();
        let json = to_dicom_json(&binary_object(), |bulk| {
            seen.push((bulk.path(), bulk.length, bulk.encapsulated, bulk.vr));
            match bulk.tag {
                Tag(0x0009, 0x1004) => BulkPolicy::Omit,
                Tag(0x0009, 0x1002) => BulkPolicy::InlineBinary,
                _ => BulkPolicy::BulkDataUri(format!("bulk/{}", bulk.path())),
            }
        });
        assert_eq!(
            seen,
            [
                ("00091002".to_owned(), 3, false, VR::OB),
                ("00091004".to_owned(), 4, false, VR::OF),
                ("00091005".to_owned(), 8, false, VR::OD),
                ("00091006".to_owned(), 4, false, VR::OL),
                ("00091007".to_owned(), 8, false, VR::OV),
                ("00880200/1/00091001".to_owned(), 2000, false, VR::OB),
                ("00880200/1/7FE00010".to_owned(), 2, false, VR::OW),
                ("7FE00010".to_owned(), 24, true, VR::OB),
            ]
        );
        assert!(json.get("00091004").is_none(), "omitted altogether");
        assert_eq!(json["00091002"]["InlineBinary"], "AQID");
        assert_eq!(
            json["00880200"]["Value"][1]["00091001"],
            serde_json::json!({"vr": "OB", "BulkDataURI": "bulk/00880200/1/00091001"})
        );
        assert_eq!(
            json["7FE00010"],
            serde_json::json!({"vr": "OB", "BulkDataURI": "bulk/7FE00010"})
        );
    }

    #[test]
    fn bulk_values_are_found_again_by_their_path() {
        let obj = binary_object();
        let mut paths = Vec::new();
        let json = to_dicom_json(&obj, |bulk| {
            paths.push(bulk.path());
            BulkPolicy::InlineBinary
        });
        assert_eq!(paths.len(), 8);
        for path in &paths {
            // Find the attribute in the JSON by the same path.
            let mut node = &json;
            for (i, step) in path.split('/').enumerate() {
                node = if i % 2 == 0 {
                    &node[step]
                } else {
                    &node["Value"][step.parse::<usize>().expect("index")]
                };
            }
            let inline = BASE64
                .decode(node["InlineBinary"].as_str().expect("inline"))
                .expect("base64");
            assert_eq!(
                bulk_value(&obj, path).as_deref(),
                Some(inline.as_slice()),
                "{path}"
            );
        }
        for bad in [
            "",
            "/",
            "7fe00010/",
            "7FE0001",
            "7FE000100",
            "00100020",
            "00091099",
            "00880200",
            "00880200/1",
            "00880200/2/7FE00010",
            "00880200/+1/7FE00010",
            "00880200/-1/7FE00010",
            "00880200/1/7FE00010/0",
            "00880200/99999999999999999999999/7FE00010",
            "00091002/0/00091002",
            "0009100\u{e9}",
        ] {
            assert_eq!(bulk_value(&obj, bad), None, "{bad:?}");
        }
        // Lower-case hex is read too.
        assert!(bulk_value(&obj, "7fe00010").is_some());
    }

    #[test]
    fn the_wado_policy_sends_pixel_data_and_large_values_by_uri() {
        let json = to_dicom_json(
            &binary_object(),
            wado_bulk_policy("https://pacs/studies/1/bulkdata"),
        );
        assert_eq!(json["00091002"]["InlineBinary"], "AQID");
        assert_eq!(
            json["00880200"]["Value"][1]["00091001"]["BulkDataURI"],
            "https://pacs/studies/1/bulkdata/00880200/1/00091001"
        );
        // Pixel data goes by URI however small, nested or encapsulated.
        assert_eq!(
            json["00880200"]["Value"][1]["7FE00010"]["BulkDataURI"],
            "https://pacs/studies/1/bulkdata/00880200/1/7FE00010"
        );
        assert_eq!(
            json["7FE00010"]["BulkDataURI"],
            "https://pacs/studies/1/bulkdata/7FE00010"
        );

        let policy = wado_bulk_policy("b");
        let at = |length| BulkRef {
            parents: &[],
            tag: Tag(0x0009, 0x1001),
            vr: VR::OB,
            length,
            encapsulated: false,
        };
        assert_eq!(policy(&at(DEFAULT_INLINE_LIMIT)), BulkPolicy::InlineBinary);
        assert_eq!(
            policy(&at(DEFAULT_INLINE_LIMIT + 1)),
            BulkPolicy::BulkDataUri("b/00091001".into())
        );
    }
}
