//! WADO-RS below the instance (PS3.18 10.4): the bulk data the metadata refers to, frames, and
//! rendered images and thumbnails.
//!
//! These routes need the object's pixel data, which the metadata read stops before, so they
//! read the whole object into memory: only objects up to [`CONVERT_LIMIT`] are served (413
//! beyond), always after the pre-scan. The pixel work itself is in `ward_dicom`; this module
//! negotiates media types, checks parameters and frames the answers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Deserialize;
use ward_dicom::{ImageInfo, RenderError, TranscodeError, Window};
use ward_index::InstanceRow;
use ward_ingest::{CONVERT_LIMIT, ImageError};

use crate::WebState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::media::{self, EXPLICIT_VR_LE};
use crate::wado::{self, Target};

/// Frame numbers one request may list: enough for any viewer's prefetch, few enough that the
/// list itself costs nothing.
const MAX_FRAME_NUMBERS: usize = 1000;

/// The side of the square a thumbnail fits in when the request names no viewport.
const THUMBNAIL_SIDE: u32 = 128;

/// JPEG quality when the request names none.
const DEFAULT_QUALITY: u8 = 90;

const OCTET_STREAM: &str = "application/octet-stream";
const PIXEL_DATA_PATH: &str = "7FE00010";

type InstancePath = (String, String, String);

/// The one instance a path names, once the caller may retrieve it.
async fn locate(
    state: &WebState,
    principal: &Principal,
    (study, series, instance): &InstancePath,
) -> Result<InstanceRow, ApiError> {
    let target = Target::parse(study, Some(series), Some(instance))?;
    let mut rows = wado::instances(state, principal, &target).await?;
    rows.pop().ok_or(ApiError::NotFound)
}

fn within_memory_limit(row: &InstanceRow) -> Result<(), ApiError> {
    if row.size > CONVERT_LIMIT {
        return Err(ApiError::PayloadTooLarge(format!(
            "frames, bulk pixel data and renderings are served for objects up to {} MiB; \
             retrieve this instance whole",
            CONVERT_LIMIT >> 20
        )));
    }
    Ok(())
}

fn read_failure(e: ImageError) -> ApiError {
    match e {
        // Pixel data Ward cannot decode (12-bit JPEG, an unusual layout) is a media type it
        // cannot offer, not a server fault.
        ImageError::Decode(
            e @ (TranscodeError::NotDecodable(_)
            | TranscodeError::TooLarge
            | TranscodeError::Pixels(_)),
        ) => {
            tracing::info!(error = %e, "pixel data not decoded");
            ApiError::NotAcceptable
        }
        e => ApiError::internal("cannot read a stored object", e),
    }
}

fn render_failure(e: RenderError) -> ApiError {
    match e {
        RenderError::Unsupported(why) => {
            tracing::info!(why = %why, "pixel data not served");
            ApiError::NotAcceptable
        }
        RenderError::Malformed(why) => ApiError::internal("stored pixel data malformed", why),
    }
}

/// The media type of frames in a compressed transfer syntax (PS3.18 Table 8.7.3-5).
fn compressed_media_type(ts: &str) -> Option<&'static str> {
    Some(match ts {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "image/jphc"
        }
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        _ => return None,
    })
}

/// How pixel data goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelForm {
    /// Native little-endian bytes, decoded first when the object is stored compressed.
    Uncompressed,
    /// The stored compressed bytes, one frame per part, in this media type.
    Stored(&'static str),
}

/// Whether the answer is `multipart/related` or the bare value (`Accept: application/octet-stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Multipart,
    Single,
}

/// What an object's value can be sent as.
struct Offer<'a> {
    /// Native bytes are available (stored native, or decodable within the memory limit).
    uncompressed: bool,
    /// The stored compressed syntax and its media type, when the value is compressed pixel data.
    stored: Option<(&'a str, &'static str)>,
}

impl<'a> Offer<'a> {
    fn pixel_data(row: &'a InstanceRow) -> Offer<'a> {
        let ts = row.transfer_syntax.as_str();
        Offer {
            uncompressed: ward_ingest::convertible(row),
            stored: (!ward_dicom::is_native_transfer_syntax(ts))
                .then(|| compressed_media_type(ts).map(|media| (ts, media)))
                .flatten(),
        }
    }

    /// What `*/*` gets: native bytes when Ward has them (every client can read them), else the
    /// stored compressed frames.
    fn default(&self) -> Option<PixelForm> {
        if self.uncompressed {
            Some(PixelForm::Uncompressed)
        } else {
            self.stored.map(|(_, media)| PixelForm::Stored(media))
        }
    }
}

/// Negotiates `Accept` for bulk data and frames (PS3.18 8.7.3.3.2, 8.7.3.5): the first range
/// Ward can serve wins. `multipart/related` without `type` means octet-stream. Uncompressed data
/// is explicit VR little endian, so its `transfer-syntax` may be absent, `*` or that UID; the
/// stored form's may be absent, `*` or the stored UID.
fn negotiate(headers: &HeaderMap, offer: &Offer<'_>) -> Result<(PixelForm, Framing), ApiError> {
    let ranges = media::media_ranges(headers);
    if ranges.is_empty() {
        return offer
            .default()
            .map(|form| (form, Framing::Multipart))
            .ok_or(ApiError::NotAcceptable);
    }
    for (range, params) in &ranges {
        let ts = media::param(params, "transfer-syntax");
        let found = match range.as_str() {
            "*/*" | "multipart/*" => offer.default().map(|f| (f, Framing::Multipart)),
            OCTET_STREAM if offer.uncompressed && ts.is_none_or(|t| t == EXPLICIT_VR_LE) => {
                Some((PixelForm::Uncompressed, Framing::Single))
            }
            "multipart/related" => {
                let part = media::param(params, "type")
                    .unwrap_or(OCTET_STREAM)
                    .to_ascii_lowercase();
                let as_native = ts.is_none_or(|t| t == "*" || t == EXPLICIT_VR_LE);
                match part.as_str() {
                    "*/*" => offer.default(),
                    OCTET_STREAM if offer.uncompressed && as_native => {
                        Some(PixelForm::Uncompressed)
                    }
                    part => offer
                        .stored
                        .filter(|&(stored_ts, media)| {
                            // Clients still send the `image/x-` names of older editions.
                            let aliased =
                                media.strip_prefix("image/").map(|s| format!("image/x-{s}"));
                            (part == media || Some(part) == aliased.as_deref() || part == "image/*")
                                && ts.is_none_or(|t| t == "*" || t == stored_ts)
                        })
                        .map(|(_, media)| PixelForm::Stored(media)),
                }
                .map(|f| (f, Framing::Multipart))
            }
            _ => None,
        };
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Err(ApiError::NotAcceptable)
}

/// A response holding `parts`, each of `part_type`; with [`Framing::Single`], the one part bare.
fn respond(parts: Vec<Bytes>, part_type: &str, framing: Framing) -> Result<Response, ApiError> {
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| ApiError::internal("bad header", e));
    if framing == Framing::Single {
        let [part] = <[Bytes; 1]>::try_from(parts).map_err(|_| ApiError::NotAcceptable)?;
        return Ok(([(header::CONTENT_TYPE, header_value(OCTET_STREAM)?)], part).into_response());
    }
    let root = part_type.split(';').next().unwrap_or(part_type);
    let boundary = media::boundary();
    let content_type = format!("multipart/related; type=\"{root}\"; boundary={boundary}");
    let mut chunks = Vec::with_capacity(parts.len() * 2 + 1);
    for part in parts {
        chunks.push(Bytes::from(media::part_header(&boundary, part_type)));
        chunks.push(part);
    }
    chunks.push(Bytes::from(media::closing(&boundary)));
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, std::io::Error>),
    ));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, header_value(&content_type)?)],
        body,
    )
        .into_response())
}

/// The content type of each part of a form.
fn part_type(form: PixelForm, row: &InstanceRow) -> String {
    match form {
        PixelForm::Uncompressed => format!("{OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LE}"),
        PixelForm::Stored(media) => format!("{media}; transfer-syntax={}", row.transfer_syntax),
    }
}

/// The object for `form`: decoded for native bytes, as stored for compressed frames. Check
/// [`within_memory_limit`] first.
async fn load(
    state: &WebState,
    row: &InstanceRow,
    form: PixelForm,
) -> Result<InMemDicomObject, ApiError> {
    state
        .ingest
        .image(row, form == PixelForm::Uncompressed)
        .await
        .map_err(read_failure)
}

/// Frames `numbers` (from 1) of an object loaded for `form`, as parts.
fn frames_of(
    obj: &InMemDicomObject,
    form: PixelForm,
    numbers: &[u32],
) -> Result<Vec<Bytes>, ApiError> {
    let info = ImageInfo::of(obj).map_err(render_failure)?;
    if numbers.iter().any(|&n| n > info.frames) {
        return Err(ApiError::NotFound);
    }
    match form {
        PixelForm::Uncompressed => {
            let pixels = Bytes::from(
                ward_dicom::bulk_value(obj, PIXEL_DATA_PATH)
                    .ok_or(ApiError::NotFound)?
                    .into_owned(),
            );
            numbers
                .iter()
                .map(|&n| {
                    let frame = info.native_frame(&pixels, n - 1).map_err(render_failure)?;
                    // The parts share the one buffer.
                    Ok(pixels.slice_ref(frame))
                })
                .collect()
        }
        PixelForm::Stored(_) => {
            let frames = ward_dicom::encapsulated_frames(obj).map_err(render_failure)?;
            numbers
                .iter()
                .map(|&n| {
                    frames
                        .get(n as usize - 1)
                        .map(|f| Bytes::from(f.clone()))
                        .ok_or(ApiError::NotFound)
                })
                .collect()
        }
    }
}

/// `GET {instance}/bulkdata/{path}`: the value a `BulkDataURI` of the metadata names, as one
/// octet-stream part. Pixel Data is served like all of an object's frames: native bytes in one
/// part, or the stored compressed frames one per part.
pub async fn bulkdata(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path((study, series, instance, path)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = locate(&state, &principal, &(study, series, instance)).await?;
    if path.eq_ignore_ascii_case(PIXEL_DATA_PATH) {
        within_memory_limit(&row)?;
        let (form, framing) = negotiate(&headers, &Offer::pixel_data(&row))?;
        wado::record_retrieve(
            &state,
            &principal,
            std::slice::from_ref(&row),
            "WADO-RS bulkdata",
        )
        .await?;
        let obj = load(&state, &row, form).await?;
        if obj.get(tags::PIXEL_DATA).is_none() {
            return Err(ApiError::NotFound);
        }
        let parts = match form {
            PixelForm::Uncompressed => vec![Bytes::from(
                ward_dicom::bulk_value(&obj, PIXEL_DATA_PATH)
                    .ok_or(ApiError::NotFound)?
                    .into_owned(),
            )],
            PixelForm::Stored(_) => ward_dicom::encapsulated_frames(&obj)
                .map_err(render_failure)?
                .into_iter()
                .map(Bytes::from)
                .collect(),
        };
        return respond(parts, &part_type(form, &row), framing);
    }
    // Any other value sits before Pixel Data, where the streamed metadata read reaches.
    let offer = Offer {
        uncompressed: true,
        stored: None,
    };
    let (_, framing) = negotiate(&headers, &offer)?;
    wado::record_retrieve(
        &state,
        &principal,
        std::slice::from_ref(&row),
        "WADO-RS bulkdata",
    )
    .await?;
    let obj = state
        .ingest
        .metadata(&row)
        .await
        .map_err(|e| ApiError::internal("cannot read a stored object", e))?;
    let value = ward_dicom::bulk_value(&obj, &path).ok_or(ApiError::NotFound)?;
    respond(vec![Bytes::from(value.into_owned())], OCTET_STREAM, framing)
}

/// Parses a frame list (PS3.18 8.3.3.1.2.2: comma-separated, 1-based). Numbers past the
/// object's last frame are found only once it is read (404); a malformed list is a 400.
fn frame_numbers(list: &str) -> Result<Vec<u32>, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("frame list: {why}"));
    let numbers: Vec<&str> = list.split(',').take(MAX_FRAME_NUMBERS + 1).collect();
    if numbers.len() > MAX_FRAME_NUMBERS {
        return Err(bad(&format!("more than {MAX_FRAME_NUMBERS} frames")));
    }
    numbers
        .iter()
        .map(|n| {
            let n = n.trim();
            // Digits only: `u32::from_str` would also take a leading `+`.
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not a list of frame numbers"));
            }
            n.parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| bad("frame numbers run from 1 to 4294967295"))
        })
        .collect()
}

/// `GET {instance}/frames/{list}`: the listed frames, one part each, in the order listed.
pub async fn frames(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = locate(&state, &principal, &(study, series, instance)).await?;
    let numbers = frame_numbers(&list)?;
    within_memory_limit(&row)?;
    let (form, framing) = negotiate(&headers, &Offer::pixel_data(&row))?;
    if framing == Framing::Single && numbers.len() != 1 {
        return Err(ApiError::NotAcceptable);
    }
    wado::record_retrieve(
        &state,
        &principal,
        std::slice::from_ref(&row),
        "WADO-RS frames",
    )
    .await?;
    let obj = load(&state, &row, form).await?;
    let parts = frames_of(&obj, form, &numbers)?;
    respond(parts, &part_type(form, &row), framing)
}

/// The query parameters of rendered resources (PS3.18 8.3.5.1); others are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct RenderParams {
    window: Option<String>,
    viewport: Option<String>,
    quality: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageType {
    Jpeg,
    Png,
}

impl ImageType {
    /// The first of `image/jpeg` and `image/png` the client accepts; JPEG for wildcards, the
    /// default of PS3.18 8.7.4.
    fn negotiate(headers: &HeaderMap) -> Result<ImageType, ApiError> {
        let ranges = media::media_ranges(headers);
        if ranges.is_empty() {
            return Ok(ImageType::Jpeg);
        }
        ranges
            .iter()
            .find_map(|(range, _)| match range.as_str() {
                "image/jpeg" | "image/*" | "*/*" => Some(ImageType::Jpeg),
                "image/png" => Some(ImageType::Png),
                _ => None,
            })
            .ok_or(ApiError::NotAcceptable)
    }

    fn media_type(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
        }
    }
}

/// A rendering request, checked before anything is read.
struct Rendering {
    image: ImageType,
    window: Option<Window>,
    /// The box the image is scaled to fit; `None` keeps the image's own size.
    viewport: Option<(u32, u32)>,
    quality: u8,
}

impl Rendering {
    fn parse(
        headers: &HeaderMap,
        params: &RenderParams,
        thumbnail: bool,
    ) -> Result<Rendering, ApiError> {
        let bad = |what: &str| ApiError::BadRequest(format!("invalid {what} parameter"));
        let window = params
            .window
            .as_deref()
            .map(|w| Window::parse(w).ok_or_else(|| bad("window")))
            .transpose()?;
        let viewport = match params.viewport.as_deref() {
            Some(v) => {
                let side = |s: &str| {
                    s.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=ward_dicom::MAX_VIEWPORT).contains(n))
                };
                match v.split(',').collect::<Vec<_>>()[..] {
                    [w, h] => Some((side(w), side(h))),
                    _ => None,
                }
                .and_then(|(w, h)| Some((w?, h?)))
                .map(Some)
                .ok_or_else(|| bad("viewport"))?
            }
            None => thumbnail.then_some((THUMBNAIL_SIDE, THUMBNAIL_SIDE)),
        };
        let quality = match params.quality.as_deref() {
            Some(q) => q
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or_else(|| bad("quality"))?,
            None => DEFAULT_QUALITY,
        };
        Ok(Rendering {
            image: ImageType::negotiate(headers)?,
            window,
            viewport,
            quality,
        })
    }

    /// Renders frame `number` (from 1) of a native object and encodes it.
    fn run(&self, obj: &InMemDicomObject, number: u32) -> Result<Vec<u8>, ApiError> {
        let info = ImageInfo::of(obj).map_err(render_failure)?;
        if number > info.frames {
            return Err(ApiError::NotFound);
        }
        let pixels = ward_dicom::bulk_value(obj, PIXEL_DATA_PATH).ok_or(ApiError::NotFound)?;
        let frame = info
            .native_frame(&pixels, number - 1)
            .map_err(render_failure)?;
        let mut image =
            ward_dicom::render_frame(&info, frame, self.window).map_err(render_failure)?;
        if let Some((w, h)) = self.viewport {
            let (w, h) = ward_dicom::fit(image.width, image.height, w, h);
            image = ward_dicom::resize(&image, w, h).map_err(render_failure)?;
        }
        match self.image {
            ImageType::Jpeg => ward_dicom::encode_jpeg(&image, self.quality),
            ImageType::Png => ward_dicom::encode_png(&image),
        }
        .map_err(render_failure)
    }
}

/// Renders frame `number` of the instance the path names.
async fn rendered_frame(
    state: Arc<WebState>,
    principal: Principal,
    path: InstancePath,
    number: u32,
    headers: HeaderMap,
    params: RenderParams,
    thumbnail: bool,
) -> Result<Response, ApiError> {
    let row = locate(&state, &principal, &path).await?;
    let rendering = Rendering::parse(&headers, &params, thumbnail)?;
    within_memory_limit(&row)?;
    if !ward_ingest::convertible(&row) {
        return Err(ApiError::NotAcceptable);
    }
    let what = if thumbnail {
        "WADO-RS thumbnail"
    } else {
        "WADO-RS rendered"
    };
    wado::record_retrieve(&state, &principal, std::slice::from_ref(&row), what).await?;
    let obj = load(&state, &row, PixelForm::Uncompressed).await?;
    let media_type = rendering.image.media_type();
    let image = tokio::task::spawn_blocking(move || rendering.run(&obj, number))
        .await
        .map_err(|e| ApiError::internal("rendering failed", e))??;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(media_type))],
        image,
    )
        .into_response())
}

/// `GET {instance}/rendered`: the first frame as JPEG or PNG.
pub async fn rendered(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(path): Path<InstancePath>,
    Query(params): Query<RenderParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    rendered_frame(state, principal, path, 1, headers, params, false).await
}

/// `GET {instance}/thumbnail`: the first frame scaled to fit the viewport, 128×128 by default.
pub async fn thumbnail(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(path): Path<InstancePath>,
    Query(params): Query<RenderParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    rendered_frame(state, principal, path, 1, headers, params, true).await
}

/// `GET {instance}/frames/{n}/rendered`: one frame as JPEG or PNG.
pub async fn frame_rendered(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
    Query(params): Query<RenderParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let [number] = frame_numbers(&list)?[..] else {
        return Err(ApiError::BadRequest("render one frame at a time".into()));
    };
    let path = (study, series, instance);
    rendered_frame(state, principal, path, number, headers, params, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    const NATIVE: Offer<'static> = Offer {
        uncompressed: true,
        stored: None,
    };
    const JPEG: Offer<'static> = Offer {
        uncompressed: true,
        stored: Some(("1.2.840.10008.1.2.4.50", "image/jpeg")),
    };
    const JPEG2000: Offer<'static> = Offer {
        uncompressed: false,
        stored: Some(("1.2.840.10008.1.2.4.90", "image/jp2")),
    };

    #[test]
    fn frame_lists() {
        assert_eq!(frame_numbers("1").unwrap(), vec![1]);
        assert_eq!(frame_numbers("3, 1,2").unwrap(), vec![3, 1, 2]);
        for bad in ["", "0", "1,,2", "+1", "-1", "a", "1;2", "99999999999"] {
            assert!(
                matches!(frame_numbers(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
        let many = vec!["1"; MAX_FRAME_NUMBERS + 1].join(",");
        assert!(matches!(frame_numbers(&many), Err(ApiError::BadRequest(_))));
        assert!(frame_numbers(&many[2..]).is_ok());
    }

    #[test]
    fn pixel_negotiation() {
        use Framing::*;
        use PixelForm::*;
        let cases = [
            // dicomweb-client's default for frames and bulk data.
            (
                "multipart/related; type=\"*/*\"",
                &JPEG,
                Some((Uncompressed, Multipart)),
            ),
            (
                "multipart/related; type=\"*/*\"",
                &JPEG2000,
                Some((Stored("image/jp2"), Multipart)),
            ),
            (
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                &JPEG,
                Some((Uncompressed, Multipart)),
            ),
            (
                "multipart/related; type=\"application/octet-stream\"",
                &JPEG2000,
                None,
            ),
            (
                "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50",
                &JPEG,
                Some((Stored("image/jpeg"), Multipart)),
            ),
            (
                "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.70",
                &JPEG,
                None,
            ),
            ("multipart/related; type=\"image/jpeg\"", &NATIVE, None),
            (
                "multipart/related; type=\"image/x-jp2\"",
                &JPEG2000,
                Some((Stored("image/jp2"), Multipart)),
            ),
            (
                "application/octet-stream",
                &NATIVE,
                Some((Uncompressed, Single)),
            ),
            ("image/png, */*", &NATIVE, Some((Uncompressed, Multipart))),
            (
                "multipart/related",
                &NATIVE,
                Some((Uncompressed, Multipart)),
            ),
            ("text/html", &NATIVE, None),
            (
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.2",
                &NATIVE,
                None,
            ),
        ];
        for (value, offer, expected) in cases {
            assert_eq!(negotiate(&accept(value), offer).ok(), expected, "{value}");
        }
        assert_eq!(
            negotiate(&HeaderMap::new(), &JPEG2000).ok(),
            Some((Stored("image/jp2"), Multipart))
        );
    }

    #[test]
    fn rendering_parameters() {
        let params =
            |window: Option<&str>, viewport: Option<&str>, quality: Option<&str>| RenderParams {
                window: window.map(Into::into),
                viewport: viewport.map(Into::into),
                quality: quality.map(Into::into),
            };
        let none = HeaderMap::new();
        let r = Rendering::parse(&none, &params(None, None, None), true).unwrap();
        assert_eq!(
            (r.image, r.viewport, r.quality),
            (ImageType::Jpeg, Some((128, 128)), 90)
        );
        let r = Rendering::parse(
            &accept("image/png"),
            &params(Some("40,400,linear"), Some("64,32"), Some("50")),
            false,
        )
        .unwrap();
        assert_eq!(
            (r.image, r.viewport, r.quality),
            (ImageType::Png, Some((64, 32)), 50)
        );
        assert!(r.window.is_some());
        assert!(
            Rendering::parse(&none, &params(None, None, None), false)
                .unwrap()
                .viewport
                .is_none()
        );
        for bad in [
            params(Some("40"), None, None),
            params(None, Some("0,10"), None),
            params(None, Some("10"), None),
            params(None, Some("10,10,0,0,5,5"), None),
            params(None, Some("100000,10"), None),
            params(None, None, Some("0")),
            params(None, None, Some("101")),
        ] {
            assert!(matches!(
                Rendering::parse(&none, &bad, false),
                Err(ApiError::BadRequest(_))
            ));
        }
        assert!(matches!(
            Rendering::parse(&accept("image/gif"), &params(None, None, None), false),
            Err(ApiError::NotAcceptable)
        ));
    }
}
