//! Pixel-level work for WADO-RS: cutting pixel data into frames (native and encapsulated), and
//! rendering one native frame to an 8-bit image (Modality LUT, VOI windowing, MONOCHROME1
//! inversion, colour planes interleaved), scaled to a viewport and encoded as PNG or JPEG.
//!
//! Everything here reads values from stored objects, which are peer input: sizes are computed
//! with checked arithmetic and compared with the bytes present before anything is indexed or
//! allocated, and a malformed image is an error, never a panic.

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::transcode::{MAX_IN_MEMORY_LEN, TranscodeError};

/// The largest viewport side rendered: a request must not make Ward allocate an image of its
/// own choosing.
pub const MAX_VIEWPORT: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The image is well-formed but of a kind Ward does not render or cut into frames.
    #[error("{0}")]
    Unsupported(String),
    /// The image attributes or the pixel data contradict each other.
    #[error("{0}")]
    Malformed(String),
}

fn malformed(why: impl Into<String>) -> RenderError {
    RenderError::Malformed(why.into())
}

fn unsupported(why: impl Into<String>) -> RenderError {
    RenderError::Unsupported(why.into())
}

/// The function a VOI window maps values through (PS3.3 C.11.2.1.2 and C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

impl VoiFunction {
    /// The function named as in VOI LUT Function (`LINEAR_EXACT`) or in the WADO-RS `window`
    /// parameter (`linear-exact`), in any case.
    pub fn parse(name: &str) -> Option<VoiFunction> {
        match name.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "LINEAR" => Some(VoiFunction::Linear),
            "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
            "SIGMOID" => Some(VoiFunction::Sigmoid),
            _ => None,
        }
    }
}

/// A VOI window in modality units (after Rescale Slope and Intercept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

impl Window {
    /// The WADO-RS `window` parameter (PS3.18 8.3.5.1.4): `center,width,function`.
    pub fn parse(text: &str) -> Option<Window> {
        let mut parts = text.split(',');
        let center: f64 = parts.next()?.trim().parse().ok()?;
        let width: f64 = parts.next()?.trim().parse().ok()?;
        let function = VoiFunction::parse(parts.next()?)?;
        Window::new(center, width, function).filter(|_| parts.next().is_none())
    }

    /// A window, or `None` when it is not one: values not finite, or narrower than the
    /// function allows (linear needs a width of at least 1, the others a positive width).
    pub fn new(center: f64, width: f64, function: VoiFunction) -> Option<Window> {
        let least = if function == VoiFunction::Linear {
            1.0
        } else {
            f64::MIN_POSITIVE
        };
        (center.is_finite() && width.is_finite() && width >= least).then_some(Window {
            center,
            width,
            function,
        })
    }

    /// The output level (0–255) of a modality value.
    fn apply(&self, x: f64) -> u8 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            VoiFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiFunction::LinearExact => (x - c) / w + 0.5,
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        // In range after the clamp, so the conversion neither wraps nor saturates unexpectedly.
        (y.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// The attributes that describe an image's pixel data.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub rows: u32,
    pub columns: u32,
    pub samples: u32,
    pub bits_allocated: u32,
    pub bits_stored: u32,
    pub signed: bool,
    /// Planar Configuration 1: each colour plane whole, one after the other.
    pub planar: bool,
    pub frames: u32,
    pub photometric: String,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// The first window the object carries, if any.
    pub window: Option<Window>,
}

impl ImageInfo {
    /// Reads the image attributes of a data set; `Unsupported` when it has no image.
    pub fn of(obj: &InMemDicomObject) -> Result<ImageInfo, RenderError> {
        let uint = |tag: Tag| obj.get(tag).and_then(|e| e.to_int::<u32>().ok());
        let first_float = |tag: Tag| {
            obj.get(tag)
                .and_then(|e| e.to_multi_float64().ok())
                .and_then(|v| v.first().copied())
                .filter(|v| v.is_finite())
        };
        let rows = uint(tags::ROWS).ok_or_else(|| unsupported("the object has no image"))?;
        let required = |tag: Tag, name: &str| {
            uint(tag).ok_or_else(|| malformed(format!("{name} missing or not a number")))
        };
        let columns = required(tags::COLUMNS, "Columns")?;
        let bits_allocated = required(tags::BITS_ALLOCATED, "Bits Allocated")?;
        let info = ImageInfo {
            rows,
            columns,
            samples: required(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?,
            bits_allocated,
            bits_stored: uint(tags::BITS_STORED)
                .filter(|&b| (1..=bits_allocated).contains(&b))
                .unwrap_or(bits_allocated),
            signed: uint(tags::PIXEL_REPRESENTATION) == Some(1),
            planar: uint(tags::PLANAR_CONFIGURATION) == Some(1),
            frames: match obj.get(tags::NUMBER_OF_FRAMES) {
                None => 1,
                Some(_) => required(tags::NUMBER_OF_FRAMES, "Number of Frames")?,
            },
            photometric: obj
                .get(tags::PHOTOMETRIC_INTERPRETATION)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches([' ', '\0']).to_owned())
                .unwrap_or_default(),
            rescale_slope: first_float(tags::RESCALE_SLOPE)
                .filter(|&s| s != 0.0)
                .unwrap_or(1.0),
            rescale_intercept: first_float(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
            window: match (
                first_float(tags::WINDOW_CENTER),
                first_float(tags::WINDOW_WIDTH),
            ) {
                (Some(center), Some(width)) => {
                    let function = obj
                        .get(tags::VOILUT_FUNCTION)
                        .and_then(|e| e.to_str().ok())
                        .and_then(|f| VoiFunction::parse(&f))
                        .unwrap_or(VoiFunction::Linear);
                    Window::new(center, width, function)
                }
                _ => None,
            },
        };
        if info.rows == 0 || info.columns == 0 || info.frames == 0 || info.samples == 0 {
            return Err(malformed("empty image"));
        }
        Ok(info)
    }

    /// Bytes of one native frame. Bit-packed frames (Bits Allocated 1) do not start on byte
    /// boundaries and cannot be cut out, so they are unsupported.
    pub fn frame_len(&self) -> Result<usize, RenderError> {
        if self.bits_allocated % 8 != 0 || self.bits_allocated == 0 {
            return Err(unsupported(format!(
                "frames of {} bits per sample",
                self.bits_allocated
            )));
        }
        [self.columns, self.samples, self.bits_allocated / 8]
            .into_iter()
            .try_fold(u64::from(self.rows), |acc, n| acc.checked_mul(u64::from(n)))
            .filter(|&n| n <= MAX_IN_MEMORY_LEN)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| unsupported("frame too large"))
    }

    /// Frame `index` (from 0) of native pixel data `pixels` (little endian, as Ward reads it).
    pub fn native_frame<'a>(&self, pixels: &'a [u8], index: u32) -> Result<&'a [u8], RenderError> {
        let len = self.frame_len()?;
        let start = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(len))
            .ok_or_else(|| malformed("frame index"))?;
        start
            .checked_add(len)
            .and_then(|end| pixels.get(start..end))
            .ok_or_else(|| malformed("pixel data shorter than its frames"))
    }
}

/// Groups the fragments of encapsulated pixel data into frames (PS3.5 A.4), each frame's
/// fragments concatenated. A fragment never holds data of two frames, so a frame is a run of
/// fragments; where each run starts is found, in this order, from one fragment per frame, the
/// Basic Offset Table, a single frame, or a fragment opening with a JPEG SOI or JPEG 2000 SOC
/// marker. `None` when none of these delimits exactly `frames` frames.
pub fn split_frames(
    offset_table: &[u32],
    fragments: &[Vec<u8>],
    frames: u32,
) -> Option<Vec<Vec<u8>>> {
    let frames = usize::try_from(frames).ok()?;
    if fragments.is_empty() || frames == 0 {
        return None;
    }
    let starts: Vec<usize> = if fragments.len() == frames {
        (0..frames).collect()
    } else if offset_table.len() == frames {
        // Offsets count from the first fragment's item tag, each item having an 8-byte header.
        let mut positions = Vec::with_capacity(fragments.len());
        let mut at = 0u64;
        for fragment in fragments {
            positions.push(at);
            at = at.checked_add(8 + fragment.len() as u64)?;
        }
        offset_table
            .iter()
            .map(|&offset| positions.binary_search(&u64::from(offset)).ok())
            .collect::<Option<_>>()?
    } else if frames == 1 {
        vec![0]
    } else {
        fragments
            .iter()
            .enumerate()
            .filter(|(_, f)| f.starts_with(&[0xFF, 0xD8]) || f.starts_with(&[0xFF, 0x4F]))
            .map(|(i, _)| i)
            .collect()
    };
    if starts.len() != frames || starts.first() != Some(&0) || !starts.is_sorted() {
        return None;
    }
    let ends = starts.iter().skip(1).copied().chain([fragments.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| fragments.get(start..end).map(<[Vec<u8>]>::concat))
        .collect()
}

/// The frames of an object's encapsulated pixel data, as [`split_frames`] cuts them.
pub fn encapsulated_frames(obj: &InMemDicomObject) -> Result<Vec<Vec<u8>>, RenderError> {
    let info = ImageInfo::of(obj)?;
    match obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
        Some(Value::PixelSequence(seq)) => {
            split_frames(seq.offset_table(), seq.fragments(), info.frames)
                .ok_or_else(|| unsupported("the fragments cannot be delimited into frames"))
        }
        _ => Err(malformed("no encapsulated pixel data")),
    }
}

/// Parses a whole data set encoded in `ts_uid`, pixel data included; with `decode`, compressed
/// pixel data is decoded first ([`crate::decode_to_native`]), so the object read is native
/// (explicit VR little endian). The bytes must already have passed [`crate::prescan_dataset`]:
/// dicom-object trusts declared lengths.
pub fn read_image(
    dataset: &[u8],
    ts_uid: &str,
    decode: bool,
) -> Result<InMemDicomObject, TranscodeError> {
    let decoded;
    let (bytes, ts_uid) = if decode && !crate::is_native_transfer_syntax(ts_uid) {
        decoded = crate::decode_to_native(dataset, ts_uid, uids::EXPLICIT_VR_LITTLE_ENDIAN)?;
        (&decoded[..], uids::EXPLICIT_VR_LITTLE_ENDIAN)
    } else {
        (dataset, ts_uid)
    };
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| TranscodeError::NotDecodable(ts_uid.to_owned()))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| TranscodeError::Read(e.to_string()))
}

/// An 8-bit image: `channels` samples per pixel (1 grey, 3 RGB), interleaved, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// Renders one native frame (as cut by [`ImageInfo::native_frame`]). Greyscale goes through the
/// Modality LUT (Rescale Slope and Intercept), then `window` or else the object's first window
/// or else the frame's minimum to maximum, and MONOCHROME1 is inverted; RGB is passed through
/// (8 bits per sample), planes interleaved. Other photometric interpretations are unsupported.
pub fn render_frame(
    info: &ImageInfo,
    frame: &[u8],
    window: Option<Window>,
) -> Result<Rendered, RenderError> {
    if frame.len() != info.frame_len()? {
        return Err(malformed("frame length differs from the image attributes"));
    }
    let pixels = match (info.samples, info.photometric.as_str()) {
        (1, "MONOCHROME1" | "MONOCHROME2") => grey(info, frame, window)?,
        (3, "RGB") if info.bits_allocated == 8 => interleaved(info, frame),
        (samples, pi) => {
            return Err(unsupported(format!(
                "{samples} samples of {pi} at {} bits are not rendered",
                info.bits_allocated
            )));
        }
    };
    Ok(Rendered {
        width: info.columns,
        height: info.rows,
        channels: if info.samples == 1 { 1 } else { 3 },
        pixels,
    })
}

fn grey(info: &ImageInfo, frame: &[u8], window: Option<Window>) -> Result<Vec<u8>, RenderError> {
    let stored = info.bits_stored;
    let mask: u32 = if stored >= 16 {
        0xFFFF
    } else {
        (1 << stored) - 1
    };
    // Stored values, sign-extended from Bits Stored when Pixel Representation says signed.
    let value = |raw: u32| -> i32 {
        let v = raw & mask;
        if info.signed && stored < 32 && v & (1 << (stored - 1)) != 0 {
            v as i32 - (1i32 << stored)
        } else {
            v as i32
        }
    };
    // Read twice (for the minimum and maximum, then for the output) rather than collected: a
    // frame may hold hundreds of millions of samples.
    let samples = || -> Result<Box<dyn Iterator<Item = i32> + '_>, RenderError> {
        match info.bits_allocated {
            8 => Ok(Box::new(frame.iter().map(move |&b| value(u32::from(b))))),
            16 => Ok(Box::new(frame.chunks_exact(2).map(move |p| {
                value(u32::from(u16::from_le_bytes([p[0], p[1]])))
            }))),
            bits => Err(unsupported(format!(
                "greyscale of {bits} bits is not rendered"
            ))),
        }
    };
    let modality = |v: i32| f64::from(v) * info.rescale_slope + info.rescale_intercept;
    let window = match window.or(info.window) {
        Some(w) => w,
        None => {
            let (min, max) =
                samples()?.fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (a, b) = (modality(min), modality(max));
            let (lo, hi) = (a.min(b), a.max(b));
            // Linear-exact maps the minimum to black and the maximum to white exactly.
            Window::new(
                (lo + hi) / 2.0,
                (hi - lo).max(1.0),
                VoiFunction::LinearExact,
            )
            .ok_or_else(|| malformed("pixel values not finite after rescaling"))?
        }
    };
    let invert = info.photometric == "MONOCHROME1";
    // One output level per possible stored value (at most 65536), computed once.
    let offset = if info.signed {
        1i32 << (stored.min(16) - 1)
    } else {
        0
    };
    let lut: Vec<u8> = (0..=mask)
        .map(|i| {
            let level = window.apply(modality(i as i32 - offset));
            if invert { 255 - level } else { level }
        })
        .collect();
    Ok(samples()?
        .map(|v| {
            usize::try_from(v + offset)
                .ok()
                .and_then(|i| lut.get(i))
                .copied()
                .unwrap_or(0)
        })
        .collect())
}

/// 8-bit colour samples, pixel by pixel.
fn interleaved(info: &ImageInfo, frame: &[u8]) -> Vec<u8> {
    if !info.planar {
        return frame.to_vec();
    }
    let plane = frame.len() / 3;
    (0..plane)
        .flat_map(|i| (0..3).map(move |s| frame[s * plane + i]))
        .collect()
}

/// The size that fits `width`×`height` into `max_width`×`max_height` keeping its aspect ratio
/// (enlarging as well as reducing), at least 1×1.
pub fn fit(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (mw, mh) = (u64::from(max_width.max(1)), u64::from(max_height.max(1)));
    // Compare the ratios by cross-multiplying, exactly, in integers.
    let (out_w, out_h) = if w * mh >= h * mw {
        (mw, (h * mw / w).max(1))
    } else {
        ((w * mh / h).max(1), mh)
    };
    (
        u32::try_from(out_w).unwrap_or(max_width),
        u32::try_from(out_h).unwrap_or(max_height),
    )
}

/// Resamples an image to `width`×`height` (each at most [`MAX_VIEWPORT`]): each output pixel
/// is the mean of the source pixels it covers, which is a box filter when reducing and nearest
/// neighbour when enlarging.
pub fn resize(image: &Rendered, width: u32, height: u32) -> Result<Rendered, RenderError> {
    if !(1..=MAX_VIEWPORT).contains(&width) || !(1..=MAX_VIEWPORT).contains(&height) {
        return Err(unsupported("viewport out of range"));
    }
    let channels = usize::from(image.channels);
    let (sw, sh) = (image.width as usize, image.height as usize);
    if image.pixels.len() != sw * sh * channels || sw == 0 || sh == 0 {
        return Err(malformed("image buffer size"));
    }
    let (dw, dh) = (width as usize, height as usize);
    let span = |out: usize, dst: usize, src: usize| {
        let start = out * src / dst;
        (start, ((out + 1) * src / dst).max(start + 1).min(src))
    };
    let mut pixels = Vec::with_capacity(dw * dh * channels);
    for oy in 0..dh {
        let (y0, y1) = span(oy, dh, sh);
        for ox in 0..dw {
            let (x0, x1) = span(ox, dw, sw);
            let count = ((y1 - y0) * (x1 - x0)) as u64;
            for c in 0..channels {
                let sum: u64 = (y0..y1)
                    .flat_map(|y| (x0..x1).map(move |x| (y * sw + x) * channels + c))
                    .map(|i| u64::from(image.pixels[i]))
                    .sum();
                pixels.push(((sum + count / 2) / count) as u8);
            }
        }
    }
    Ok(Rendered {
        width,
        height,
        channels: image.channels,
        pixels,
    })
}

/// The image as PNG (8-bit greyscale or RGB).
pub fn encode_png(image: &Rendered) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(if image.channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    let fail = |e: png::EncodingError| malformed(format!("PNG encoding: {e}"));
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(&image.pixels).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// The image as baseline JPEG at `quality` (1–100).
pub fn encode_jpeg(image: &Rendered, quality: u8) -> Result<Vec<u8>, RenderError> {
    let (Ok(width), Ok(height)) = (u16::try_from(image.width), u16::try_from(image.height)) else {
        return Err(unsupported("image too large for JPEG"));
    };
    let color = if image.channels == 1 {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
        .encode(&image.pixels, width, height, color)
        .map_err(|e| malformed(format!("JPEG encoding: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length, PrimitiveValue, VR, dicom_value};

    fn info(samples: u32, bits: u32, signed: bool, photometric: &str) -> ImageInfo {
        ImageInfo {
            rows: 2,
            columns: 2,
            samples,
            bits_allocated: bits,
            bits_stored: bits,
            signed,
            planar: false,
            frames: 1,
            photometric: photometric.into(),
            rescale_slope: 1.0,
            rescale_intercept: 0.0,
            window: None,
        }
    }

    fn le16(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn linear_window_follows_the_standard_formula() {
        // PS3.3 C.11.2.1.2.1 with c = 40, w = 400: below c - 0.5 - 199.5 is black, above
        // c - 0.5 + 199.5 is white, the centre is mid grey.
        let w = Window::new(40.0, 400.0, VoiFunction::Linear).unwrap();
        assert_eq!(w.apply(-160.0), 0);
        assert_eq!(w.apply(-1000.0), 0);
        assert_eq!(w.apply(239.5), 255);
        assert_eq!(w.apply(3000.0), 255);
        assert_eq!(w.apply(40.0), 128);
        // A width of 1 is a threshold.
        let t = Window::new(10.0, 1.0, VoiFunction::Linear).unwrap();
        assert_eq!((t.apply(9.5), t.apply(9.6)), (0, 255));
    }

    #[test]
    fn linear_exact_and_sigmoid_windows() {
        let exact = Window::new(100.0, 200.0, VoiFunction::LinearExact).unwrap();
        assert_eq!(
            (exact.apply(0.0), exact.apply(100.0), exact.apply(200.0)),
            (0, 128, 255)
        );
        let sigmoid = Window::new(0.0, 100.0, VoiFunction::Sigmoid).unwrap();
        assert_eq!(sigmoid.apply(0.0), 128);
        assert!(sigmoid.apply(-200.0) < 2 && sigmoid.apply(200.0) > 253);
    }

    #[test]
    fn window_parameter_parsing() {
        assert_eq!(
            Window::parse("40,400,linear"),
            Some(Window {
                center: 40.0,
                width: 400.0,
                function: VoiFunction::Linear
            })
        );
        assert_eq!(
            Window::parse("-600.5, 1500, LINEAR-EXACT").map(|w| w.function),
            Some(VoiFunction::LinearExact)
        );
        for bad in [
            "40,400",
            "40,0,linear",
            "a,400,linear",
            "40,400,gamma",
            "40,400,linear,1",
            "NaN,4,linear",
            "1,0.5,linear",
        ] {
            assert_eq!(Window::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn greyscale_uses_rescale_window_and_signedness() {
        // Signed 16-bit CT values with slope 1, intercept -1024: stored 1024 is 0 HU.
        let mut ct = info(1, 16, true, "MONOCHROME2");
        ct.rescale_intercept = -1024.0;
        let frame = le16(&[0, 1024, 2048, -5]);
        let window = Window::new(0.0, 2.0, VoiFunction::LinearExact);
        let out = render_frame(&ct, &frame, window).unwrap();
        assert_eq!(out.pixels, vec![0, 128, 255, 0]);
        assert_eq!((out.width, out.height, out.channels), (2, 2, 1));
        // The object's own window when the request names none.
        ct.window = Window::new(1024.0, 2048.0, VoiFunction::LinearExact);
        assert_eq!(
            render_frame(&ct, &frame, None).unwrap().pixels,
            vec![0, 0, 128, 0]
        );
    }

    #[test]
    fn without_a_window_min_and_max_span_the_range_and_monochrome1_inverts() {
        let mut mr = info(1, 16, false, "MONOCHROME2");
        let frame = le16(&[100, 200, 300, 200]);
        assert_eq!(
            render_frame(&mr, &frame, None).unwrap().pixels,
            vec![0, 128, 255, 128]
        );
        mr.photometric = "MONOCHROME1".into();
        assert_eq!(
            render_frame(&mr, &frame, None).unwrap().pixels,
            vec![255, 127, 0, 127]
        );
        // A flat image does not divide by zero.
        let flat = le16(&[7, 7, 7, 7]);
        mr.photometric = "MONOCHROME2".into();
        assert!(render_frame(&mr, &flat, None).is_ok());
    }

    #[test]
    fn bits_stored_masks_and_sign_extends() {
        // 12 bits stored in 16 allocated, signed: 0x0FFF is -1, high bits are not part of it.
        let mut img = info(1, 16, true, "MONOCHROME2");
        img.bits_stored = 12;
        let frame = [0xFFu8, 0xFF, 0x00, 0x00, 0xFF, 0x07, 0x00, 0x08];
        let window = Window::new(0.0, 4096.0, VoiFunction::LinearExact);
        let out = render_frame(&img, &frame, window).unwrap();
        // -1, 0, 2047 (max), -2048 (min)
        assert_eq!(out.pixels, vec![127, 128, 255, 0]);
    }

    #[test]
    fn eight_bit_grey_and_rgb() {
        let grey = info(1, 8, false, "MONOCHROME2");
        let out = render_frame(&grey, &[0, 255, 0, 255], None).unwrap();
        assert_eq!(out.pixels, vec![0, 255, 0, 255]);

        let mut rgb = info(3, 8, false, "RGB");
        let pixels: Vec<u8> = (0..12).collect();
        assert_eq!(render_frame(&rgb, &pixels, None).unwrap().pixels, pixels);
        rgb.planar = true;
        let planes = [1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24];
        let out = render_frame(&rgb, &planes, None).unwrap();
        assert_eq!(out.pixels, vec![1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24]);
        assert_eq!(out.channels, 3);
    }

    #[test]
    fn unsupported_and_malformed_frames_are_errors() {
        let palette = info(1, 8, false, "PALETTE COLOR");
        assert!(matches!(
            render_frame(&palette, &[0; 4], None),
            Err(RenderError::Unsupported(_))
        ));
        let grey = info(1, 16, false, "MONOCHROME2");
        assert!(matches!(
            render_frame(&grey, &[0; 7], None),
            Err(RenderError::Malformed(_))
        ));
        let mut packed = grey.clone();
        packed.bits_allocated = 1;
        assert!(matches!(
            packed.frame_len(),
            Err(RenderError::Unsupported(_))
        ));
        let mut huge = grey;
        huge.rows = u32::MAX;
        huge.columns = u32::MAX;
        assert!(huge.frame_len().is_err());
    }

    #[test]
    fn native_frames_are_cut_by_length() {
        let mut img = info(1, 16, false, "MONOCHROME2");
        img.frames = 3;
        let pixels: Vec<u8> = (0..24).collect();
        assert_eq!(img.native_frame(&pixels, 0).unwrap(), &pixels[..8]);
        assert_eq!(img.native_frame(&pixels, 2).unwrap(), &pixels[16..]);
        assert!(img.native_frame(&pixels, 3).is_err());
        assert!(img.native_frame(&pixels[..20], 2).is_err());
        assert!(img.native_frame(&pixels, u32::MAX).is_err());
    }

    #[test]
    fn encapsulated_frames_are_delimited() {
        let f = |bytes: &[u8]| bytes.to_vec();
        // One fragment per frame.
        let one_each = [f(&[1, 2]), f(&[3, 4])];
        assert_eq!(
            split_frames(&[], &one_each, 2),
            Some(vec![f(&[1, 2]), f(&[3, 4])])
        );
        // Two frames in three fragments, found through the offset table (8-byte item headers).
        let three = [f(&[0xFF, 0xD8]), f(&[9, 9, 9, 9]), f(&[0xFF, 0xD8])];
        let expected = Some(vec![f(&[0xFF, 0xD8, 9, 9, 9, 9]), f(&[0xFF, 0xD8])]);
        assert_eq!(split_frames(&[0, 22], &three, 2), expected);
        // Without a table, by the markers opening each frame.
        assert_eq!(split_frames(&[], &three, 2), expected);
        // A single frame takes every fragment.
        assert_eq!(
            split_frames(&[], &three, 1),
            Some(vec![f(&[0xFF, 0xD8, 9, 9, 9, 9, 0xFF, 0xD8])])
        );
        // Offsets that point inside a fragment, markers that disagree with the count, nothing.
        assert_eq!(split_frames(&[0, 12], &three, 2), None);
        assert_eq!(
            split_frames(&[], &three, 3),
            Some(vec![f(&[0xFF, 0xD8]), f(&[9, 9, 9, 9]), f(&[0xFF, 0xD8])])
        );
        assert_eq!(split_frames(&[], &[f(&[1]), f(&[2]), f(&[3])], 2), None);
        assert_eq!(split_frames(&[], &[], 1), None);
        assert_eq!(split_frames(&[22, 0], &three, 2), None);
    }

    #[test]
    fn frames_from_an_object() {
        let mut obj = InMemDicomObject::new_empty();
        let us = |v: u16| PrimitiveValue::from(v);
        for (tag, v) in [
            (tags::ROWS, 1),
            (tags::COLUMNS, 1),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 8),
        ] {
            obj.put(DataElement::new(tag, VR::US, us(v)));
        }
        obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "2"));
        obj.put(DataElement::new(
            tags::WINDOW_CENTER,
            VR::DS,
            dicom_value!(Strs, ["40", "50"]),
        ));
        obj.put(DataElement::new(
            tags::WINDOW_WIDTH,
            VR::DS,
            dicom_value!(Strs, ["400", "500"]),
        ));
        obj.put(DataElement::new_with_len(
            tags::PIXEL_DATA,
            VR::OB,
            Length::UNDEFINED,
            PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![1, 0], vec![2, 0]]),
        ));
        let info = ImageInfo::of(&obj).unwrap();
        assert_eq!(info.frames, 2);
        assert_eq!(info.window, Window::new(40.0, 400.0, VoiFunction::Linear));
        assert_eq!(
            encapsulated_frames(&obj).unwrap(),
            vec![vec![1, 0], vec![2, 0]]
        );
        assert!(matches!(
            ImageInfo::of(&InMemDicomObject::new_empty()),
            Err(RenderError::Unsupported(_))
        ));
    }

    #[test]
    fn images_are_read_whole_and_decoded_on_request() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![7u8, 9]),
        ));
        let mut bytes = Vec::new();
        let explicit = uids::EXPLICIT_VR_LITTLE_ENDIAN;
        obj.write_dataset_with_ts(&mut bytes, TransferSyntaxRegistry.get(explicit).unwrap())
            .unwrap();
        for decode in [false, true] {
            let back = read_image(&bytes, explicit, decode).unwrap();
            assert_eq!(
                crate::bulk_value(&back, "7FE00010").unwrap().as_ref(),
                &[7, 9]
            );
        }
        assert!(read_image(&bytes[..bytes.len() - 1], explicit, false).is_err());
        assert!(read_image(&bytes, "1.2.3", false).is_err());
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio() {
        assert_eq!(fit(512, 256, 128, 128), (128, 64));
        assert_eq!(fit(256, 512, 128, 128), (64, 128));
        assert_eq!(fit(64, 64, 128, 128), (128, 128));
        assert_eq!(fit(10_000, 1, 128, 128), (128, 1));
        assert_eq!(fit(0, 0, 0, 0), (1, 1));
    }

    #[test]
    fn resizing_averages_and_enlarges() {
        let image = Rendered {
            width: 2,
            height: 2,
            channels: 1,
            pixels: vec![0, 100, 200, 255],
        };
        assert_eq!(resize(&image, 1, 1).unwrap().pixels, vec![139]);
        let big = resize(&image, 4, 4).unwrap();
        assert_eq!(big.pixels[..4], [0, 0, 100, 100]);
        assert_eq!(big.pixels[12..], [200, 200, 255, 255]);
        assert!(resize(&image, 0, 1).is_err());
        assert!(resize(&image, MAX_VIEWPORT + 1, 1).is_err());
        let broken = Rendered {
            pixels: vec![0],
            ..image
        };
        assert!(resize(&broken, 1, 1).is_err());
    }

    #[test]
    fn encodes_png_and_jpeg() {
        let image = Rendered {
            width: 3,
            height: 2,
            channels: 3,
            pixels: vec![128; 18],
        };
        let png = encode_png(&image).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height big endian right after the chunk type.
        assert_eq!(&png[16..24], &[0, 0, 0, 3, 0, 0, 0, 2]);
        let jpeg = encode_jpeg(
            &Rendered {
                channels: 1,
                pixels: vec![9; 6],
                ..image
            },
            90,
        )
        .unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    }
}
