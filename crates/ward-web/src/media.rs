//! Media types: DICOM JSON, the `Accept` negotiation of WADO-RS, and multipart/related framing.

use axum::http::{HeaderMap, header};
use dicom_object::InMemDicomObject;
use ward_dicom::{BulkPolicy, to_dicom_json};

use crate::error::ApiError;

pub const DICOM_JSON: &str = "application/dicom+json";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// A UID from a URL path: digits and dots only. `Uid::parse` forgives the NUL padding of a
/// DICOM value, which has no business in a URL.
pub fn path_uid(text: &str) -> Result<ward_types::Uid, ApiError> {
    let invalid = || ApiError::BadRequest("invalid UID in the path".into());
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid());
    }
    ward_types::Uid::parse(text).map_err(|_| invalid())
}

/// A data set as DICOM JSON with every binary value inline (query responses carry none worth
/// a separate request).
pub fn dataset_json(obj: &InMemDicomObject) -> serde_json::Value {
    to_dicom_json(obj, |_| BulkPolicy::InlineBinary)
}

/// The transfer syntax a WADO-RS retrieval of whole instances must use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// `transfer-syntax=*`: as stored.
    AsStored,
    /// A named syntax; as stored when it is the stored one, else converted to it if possible.
    Uid(String),
}

/// One media range of an `Accept` header: type/subtype and its parameters (lower-case names).
pub(crate) fn media_ranges(headers: &HeaderMap) -> Vec<(String, Vec<(String, String)>)> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| split_outside_quotes(v, ','))
        .map(|range| media_type(&range))
        .take(32)
        .collect()
}

/// A media type and its parameters: `type/subtype` and the parameter names in lower case,
/// values unquoted.
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = split_outside_quotes(value, ';').into_iter();
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    (media, params)
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == separator && !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Negotiates a retrieval of instances: `multipart/related; type="application/dicom"` (or any
/// media type, when the client accepts anything). Without a `transfer-syntax` parameter the
/// standard's default applies: explicit VR little endian (PS3.18 8.7.3.5.2).
pub fn negotiate_instances(headers: &HeaderMap) -> Result<Syntax, ApiError> {
    let ranges = media_ranges(headers);
    if ranges.is_empty() {
        return Ok(Syntax::Uid(EXPLICIT_VR_LE.into()));
    }
    for (media, params) in &ranges {
        let fits = match media.as_str() {
            "multipart/related" => {
                param(params, "type").is_none_or(|t| t.eq_ignore_ascii_case("application/dicom"))
            }
            "*/*" | "multipart/*" => true,
            _ => false,
        };
        if fits {
            return Ok(match param(params, "transfer-syntax") {
                Some("*") => Syntax::AsStored,
                Some(uid) => Syntax::Uid(uid.to_owned()),
                None => Syntax::Uid(EXPLICIT_VR_LE.into()),
            });
        }
    }
    Err(ApiError::NotAcceptable)
}

/// Whether the client accepts `media` (or anything).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let ranges = media_ranges(headers);
    ranges.is_empty()
        || ranges.iter().any(|(m, _)| {
            m == media
                || m == "*/*"
                || m.strip_suffix("/*")
                    .is_some_and(|t| media.split('/').next() == Some(t))
        })
}

/// A fresh multipart boundary: random, so no part's content can contain it by accident.
pub fn boundary() -> String {
    format!("ward-{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The bytes that open one part.
pub fn part_header(boundary: &str, content_type: &str) -> Vec<u8> {
    format!("\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").into_bytes()
}

/// The bytes that close a multipart body.
pub fn closing(boundary: &str) -> Vec<u8> {
    format!("\r\n--{boundary}--\r\n").into_bytes()
}

/// The boundary of a `multipart/related` body whose root type is `application/dicom`.
pub fn stow_boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let unsupported = || {
        ApiError::UnsupportedMediaType(
            "send multipart/related; type=\"application/dicom\" with a boundary",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let (media, params) = media_type(value);
    if media != "multipart/related" {
        return Err(unsupported());
    }
    if param(&params, "type").is_some_and(|t| !t.eq_ignore_ascii_case("application/dicom")) {
        return Err(unsupported());
    }
    match param(&params, "boundary") {
        Some(b) if !b.is_empty() && b.len() <= 70 => Ok(b.to_owned()),
        _ => Err(unsupported()),
    }
}
