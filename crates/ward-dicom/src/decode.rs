//! Decoding of encapsulated (compressed) pixel data to native form, for sending an object to a
//! peer that accepted only the uncompressed transfer syntaxes.
//!
//! Stored objects are peer input, so every size is checked against the data set's own image
//! attributes before anything is decoded or allocated. dicom-pixeldata 0.10 is not used: its RLE
//! and JPEG adapters index past their buffers on malformed fragments (an RLE segment shorter
//! than Rows × Columns, a JPEG frame larger than the declared image), and let the JPEG decoder
//! size its buffers from the JPEG header alone. RLE is simple enough to decode here; JPEG goes
//! through the same pure-Rust decoder, driven with the checks it lacks.

use std::io::Cursor;

use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use jpeg_decoder::{CodingProcess, ColorTransform, Decoder, PixelFormat};

use crate::transcode::{MAX_IN_MEMORY_LEN, TranscodeError};

/// The syntaxes decoded output is written in: the two every storage SCP must accept.
const TARGETS: &[&str] = &[
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Rle,
    /// JPEG processes 1 and 2/4 (8-bit only: the decoder has no 12-bit DCT).
    JpegLossy,
    /// JPEG process 14, any predictor.
    JpegLossless,
}

fn codec(ts_uid: &str) -> Option<Codec> {
    match ts_uid {
        uids::RLE_LOSSLESS => Some(Codec::Rle),
        uids::JPEG_BASELINE8_BIT | uids::JPEG_EXTENDED12_BIT => Some(Codec::JpegLossy),
        uids::JPEG_LOSSLESS | uids::JPEG_LOSSLESS_SV1 => Some(Codec::JpegLossless),
        _ => None,
    }
}

/// Whether Ward can decode pixel data in this transfer syntax to native form (individual objects
/// may still fail, e.g. 12-bit JPEG extended).
pub fn is_decodable_transfer_syntax(ts_uid: &str) -> bool {
    codec(ts_uid).is_some()
}

/// The image attributes that size the native pixel data.
struct Geometry {
    rows: usize,
    columns: usize,
    samples: usize,
    bytes_per_sample: usize,
    frames: usize,
    photometric: String,
}

impl Geometry {
    fn of(obj: &InMemDicomObject) -> Result<Geometry, TranscodeError> {
        let uint = |tag: Tag, name: &str| {
            obj.get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| invalid(format!("{name} missing or not a number")))
        };
        let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(_) => uint(tags::NUMBER_OF_FRAMES, "Number of Frames")?,
        };
        let bits = uint(tags::BITS_ALLOCATED, "Bits Allocated")?;
        let geometry = Geometry {
            rows: uint(tags::ROWS, "Rows")?,
            columns: uint(tags::COLUMNS, "Columns")?,
            samples: uint(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?,
            bytes_per_sample: match bits {
                8 | 16 | 32 => bits / 8,
                _ => return Err(invalid(format!("Bits Allocated {bits} is not decoded"))),
            },
            frames,
            photometric: obj
                .get(tags::PHOTOMETRIC_INTERPRETATION)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches([' ', '\0']).to_owned())
                .ok_or_else(|| invalid("Photometric Interpretation missing".into()))?,
        };
        if ![1, 3].contains(&geometry.samples) {
            return Err(invalid(format!(
                "Samples per Pixel {} is not decoded",
                geometry.samples
            )));
        }
        if geometry.rows == 0 || geometry.columns == 0 || geometry.frames == 0 {
            return Err(invalid("empty image".into()));
        }
        Ok(geometry)
    }

    /// Bytes of native pixel data, refused before any decoding when it exceeds the in-memory
    /// limit: a few bytes of compressed data can claim gigabytes of pixels.
    fn checked_total(&self) -> Result<usize, TranscodeError> {
        [
            self.columns,
            self.samples,
            self.bytes_per_sample,
            self.frames,
        ]
        .into_iter()
        .try_fold(self.rows as u64, |acc, n| acc.checked_mul(n as u64))
        .filter(|&n| n <= MAX_IN_MEMORY_LEN)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(TranscodeError::TooLarge)
    }

    /// Bytes of one native frame; only called once [`Self::checked_total`] passed.
    fn frame_len(&self) -> usize {
        self.rows * self.columns * self.samples * self.bytes_per_sample
    }
}

fn invalid(why: String) -> TranscodeError {
    TranscodeError::Pixels(why)
}

/// Decodes the encapsulated pixel data of a data set (all frames) and writes the data set in the
/// native `to_ts` (implicit or explicit VR little endian), with the attributes that describe the
/// pixel encoding corrected: Photometric Interpretation RGB for color JPEG, Planar
/// Configuration 0, Lossy Image Compression "01" after a lossy process, no encapsulation-only
/// attributes.
///
/// The bytes must already have passed [`crate::prescan_dataset`]: dicom-object trusts declared
/// lengths. Decoded pixel data is limited to [`MAX_IN_MEMORY_LEN`].
pub fn decode_to_native(
    dataset: &[u8],
    from_ts: &str,
    to_ts: &str,
) -> Result<Vec<u8>, TranscodeError> {
    let codec = codec(from_ts).ok_or_else(|| TranscodeError::NotDecodable(from_ts.to_owned()))?;
    let to = TARGETS
        .contains(&to_ts)
        .then(|| TransferSyntaxRegistry.get(to_ts))
        .flatten()
        .ok_or_else(|| TranscodeError::NotDecodable(to_ts.to_owned()))?;
    let from = TransferSyntaxRegistry
        .get(from_ts)
        .ok_or_else(|| TranscodeError::NotDecodable(from_ts.to_owned()))?;
    let mut obj = InMemDicomObject::read_dataset_with_ts(dataset, from)
        .map_err(|e| TranscodeError::Read(e.to_string()))?;

    let geometry = Geometry::of(&obj)?;
    let total = geometry.checked_total()?;
    let fragments = match obj.take(tags::PIXEL_DATA).map(|e| e.into_value()) {
        Some(Value::PixelSequence(seq)) => seq.into_fragments(),
        _ => return Err(invalid("no encapsulated Pixel Data".into())),
    };
    // Native syntaxes cannot carry encapsulated pixel data anywhere: an icon image compressed
    // along with the image would be written as a malformed element.
    if holds_pixel_sequence(&obj) {
        return Err(invalid("encapsulated pixel data inside a sequence".into()));
    }
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(total)
        .map_err(|_| TranscodeError::TooLarge)?;
    match codec {
        Codec::Rle => decode_rle(&fragments, &geometry, &mut pixels)?,
        Codec::JpegLossy | Codec::JpegLossless => {
            decode_jpeg(&fragments, &geometry, codec, &mut pixels)?
        }
    }
    drop(fragments);

    if codec == Codec::JpegLossy && geometry.samples == 3 {
        // The decoder was told to convert YBR to RGB (or that the data already was RGB).
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "RGB",
        ));
    }
    if geometry.samples > 1 {
        // Both decoders interleave the samples of each pixel.
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    if codec == Codec::JpegLossy {
        // PS3.3 C.7.6.1.1.5: an image that went through lossy compression stays marked as such.
        obj.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION,
            VR::CS,
            "01",
        ));
    }
    for tag in [
        tags::EXTENDED_OFFSET_TABLE,
        tags::EXTENDED_OFFSET_TABLE_LENGTHS,
        tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH,
    ] {
        obj.remove_element(tag);
    }
    let vr = if geometry.bytes_per_sample == 1 {
        VR::OB
    } else {
        VR::OW
    };
    // Values are even-length (PS3.5 7.1); only 8-bit images with an odd pixel count need the pad.
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    // The decoded bytes are little endian, which is how both target syntaxes encode OW: they are
    // the value's encoding as they stand, with no conversion to 16-bit words.
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(pixels),
    ));

    let mut out = Vec::new();
    out.try_reserve(dataset.len().saturating_add(total))
        .map_err(|_| TranscodeError::TooLarge)?;
    obj.write_dataset_with_ts(&mut out, to)
        .map_err(|e| TranscodeError::Write(e.to_string()))?;
    crate::transcode::check_output(&out, to_ts)?;
    Ok(out)
}

fn holds_pixel_sequence(obj: &InMemDicomObject) -> bool {
    obj.iter().any(|e| match e.value() {
        Value::PixelSequence(_) => true,
        Value::Sequence(seq) => seq.items().iter().any(holds_pixel_sequence),
        Value::Primitive(_) => false,
    })
}

/// RLE Lossless (PS3.5 Annex G): one fragment per frame, each a 64-byte header of segment
/// offsets followed by PackBits segments, one per byte of each sample, most significant first.
fn decode_rle(
    fragments: &[Vec<u8>],
    geometry: &Geometry,
    out: &mut Vec<u8>,
) -> Result<(), TranscodeError> {
    if fragments.len() != geometry.frames {
        return Err(invalid(format!(
            "{} RLE fragments for {} frames",
            fragments.len(),
            geometry.frames
        )));
    }
    // In RLE, YBR_FULL_422 would need subsampled segments that Annex G does not define.
    if geometry.photometric == "YBR_FULL_422" {
        return Err(invalid("RLE with YBR_FULL_422".into()));
    }
    let bytes = geometry.bytes_per_sample;
    let segments = geometry.samples * bytes;
    let pixel_stride = segments;
    let plane = geometry.rows * geometry.columns;
    for fragment in fragments {
        let header = fragment
            .get(..64)
            .ok_or_else(|| invalid("RLE fragment shorter than its header".into()))?;
        let le32 = |i: usize| {
            header
                .get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .and_then(|b| usize::try_from(u32::from_le_bytes(b)).ok())
        };
        if le32(0) != Some(segments) {
            return Err(invalid(format!(
                "RLE header declares {:?} segments, the image needs {segments}",
                le32(0)
            )));
        }
        let start = out.len();
        out.resize(start + geometry.frame_len(), 0);
        let frame = out
            .get_mut(start..)
            .ok_or_else(|| invalid("frame buffer".into()))?;
        for k in 0..segments {
            let begin = le32(k + 1).unwrap_or(0);
            let end = if k + 1 < segments {
                le32(k + 2).unwrap_or(0)
            } else {
                fragment.len()
            };
            let segment = fragment
                .get(begin..end)
                .filter(|_| begin >= 64)
                .ok_or_else(|| invalid(format!("RLE segment {k} out of its fragment")))?;
            // Segment k holds byte (k % bytes) of sample (k / bytes), 0 being the most
            // significant; native little endian puts that byte last within the sample.
            let offset = (k / bytes) * bytes + (bytes - 1 - k % bytes);
            let slots = frame.iter_mut().skip(offset).step_by(pixel_stride);
            if unpack_bits(segment, slots) < plane {
                return Err(invalid(format!("RLE segment {k} is short")));
            }
        }
    }
    Ok(())
}

/// PackBits (PS3.5 G.3.1) into `slots` until they are full or the input ends; returns how many
/// slots were written. Bytes decoded past the last slot (segment padding) are dropped.
fn unpack_bits<'a>(input: &[u8], mut slots: impl Iterator<Item = &'a mut u8>) -> usize {
    let mut written = 0;
    let mut put = |byte: u8| match slots.next() {
        Some(slot) => {
            *slot = byte;
            written += 1;
            true
        }
        None => false,
    };
    let mut input = input.iter().copied();
    while let Some(header) = input.next() {
        let done = match header as i8 {
            n @ 0.. => input.by_ref().take(n as usize + 1).any(|b| !put(b)),
            -128 => false,
            n => match input.next() {
                Some(b) => (0..=n.unsigned_abs()).any(|_| !put(b)),
                None => true,
            },
        };
        if done {
            break;
        }
    }
    written
}

/// JPEG (PS3.5 A.4.1): frames in order, a frame possibly split over several fragments, each
/// fragment padded to even length. The fragments are read as one stream and each frame starts
/// at the next SOI marker, which copes with every fragmentation without the offset table.
fn decode_jpeg(
    fragments: &[Vec<u8>],
    geometry: &Geometry,
    codec: Codec,
    out: &mut Vec<u8>,
) -> Result<(), TranscodeError> {
    if geometry.bytes_per_sample > 2 {
        return Err(invalid("JPEG samples are at most 16 bits".into()));
    }
    let transform = match (geometry.samples, geometry.photometric.as_str()) {
        (1, "MONOCHROME1" | "MONOCHROME2") => ColorTransform::Grayscale,
        // The data set's Photometric Interpretation, not the JPEG markers, says whether the
        // encoder converted to YCbCr (PS3.5 8.2.1). Lossless decoding ignores the transform.
        (3, "YBR_FULL" | "YBR_FULL_422") => ColorTransform::YCbCr,
        (3, "RGB") => ColorTransform::RGB,
        (samples, pi) => {
            return Err(invalid(format!(
                "JPEG with {samples} samples of {pi} is not decoded"
            )));
        }
    };
    let frame_len = geometry.frame_len();
    let stream = fragments.concat();
    let mut pos = 0;
    for frame in 0..geometry.frames {
        let start = stream
            .get(pos..)
            .and_then(|rest| rest.windows(2).position(|w| w == [0xFF, 0xD8]))
            .map(|at| pos + at)
            .ok_or_else(|| invalid(format!("no JPEG data for frame {frame}")))?;
        let mut cursor = Cursor::new(stream.get(start..).unwrap_or_default());
        let mut decoder = Decoder::new(&mut cursor);
        decoder.set_color_transform(transform);
        let jpeg = |e: jpeg_decoder::Error| invalid(format!("JPEG frame {frame}: {e}"));
        decoder.read_info().map_err(jpeg)?;
        let info = decoder
            .info()
            .ok_or_else(|| invalid(format!("JPEG frame {frame} has no frame header")))?;
        let components = match info.pixel_format {
            PixelFormat::L8 | PixelFormat::L16 => 1,
            PixelFormat::RGB24 => 3,
            PixelFormat::CMYK32 => 4,
        };
        // Checked before decoding: the decoder sizes its buffers from this header.
        if usize::from(info.width) != geometry.columns
            || usize::from(info.height) != geometry.rows
            || components != geometry.samples
        {
            return Err(invalid(format!(
                "JPEG frame {frame} is {}x{}x{components}, the data set declares {}x{}x{}",
                info.width, info.height, geometry.columns, geometry.rows, geometry.samples
            )));
        }
        if (codec == Codec::JpegLossless) != (info.coding_process == CodingProcess::Lossless) {
            return Err(invalid(format!(
                "JPEG frame {frame} is coded {:?}, not as the transfer syntax says",
                info.coding_process
            )));
        }
        decoder.set_max_decoding_buffer_size(frame_len);
        let mut pixels = decoder.decode().map_err(jpeg)?;
        drop(decoder);
        if pixels.len() != frame_len {
            return Err(invalid(format!(
                "JPEG frame {frame} decodes to {} bytes, the data set declares {frame_len}",
                pixels.len()
            )));
        }
        if geometry.bytes_per_sample == 2 {
            // Lossless samples over 8 bits come out in the host's byte order.
            for pair in pixels.chunks_exact_mut(2) {
                if let [a, b] = pair {
                    [*a, *b] = u16::from_ne_bytes([*a, *b]).to_le_bytes();
                }
            }
        }
        out.extend_from_slice(&pixels);
        pos = start.saturating_add(usize::try_from(cursor.position()).unwrap_or(usize::MAX));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::Length;
    use dicom_core::value::PixelFragmentSequence;

    const EXPLICIT: &str = uids::EXPLICIT_VR_LITTLE_ENDIAN;
    const IMPLICIT: &str = uids::IMPLICIT_VR_LITTLE_ENDIAN;

    /// The image attributes of a test object.
    #[derive(Clone, Copy)]
    struct Image {
        rows: u16,
        columns: u16,
        samples: u16,
        bits: u16,
        frames: u32,
        photometric: &'static str,
    }

    impl Image {
        fn frame_len(&self) -> usize {
            usize::from(self.rows)
                * usize::from(self.columns)
                * usize::from(self.samples)
                * usize::from(self.bits / 8)
        }
    }

    /// A data set with encapsulated pixel data, encoded in `ts`.
    fn dataset(img: Image, ts: &str, fragments: Vec<Vec<u8>>) -> Vec<u8> {
        let us = |v: u16| PrimitiveValue::from(v);
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, "Doe^Jane"));
        obj.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            us(img.samples),
        ));
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            img.photometric,
        ));
        if img.samples > 1 {
            // Encoders often write 1 for RLE; the native result must say 0.
            obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(1)));
        }
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            img.frames.to_string(),
        ));
        obj.put(DataElement::new(tags::ROWS, VR::US, us(img.rows)));
        obj.put(DataElement::new(tags::COLUMNS, VR::US, us(img.columns)));
        obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(img.bits)));
        obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(img.bits)));
        obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(img.bits - 1)));
        obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
        let total: u64 = fragments.iter().map(|f| f.len() as u64).sum();
        obj.put(DataElement::new(
            tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH,
            VR::UV,
            PrimitiveValue::from(total),
        ));
        obj.put(DataElement::new_with_len(
            tags::PIXEL_DATA,
            VR::OB,
            Length::UNDEFINED,
            PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
        ));
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, TransferSyntaxRegistry.get(ts).unwrap())
            .unwrap();
        out
    }

    fn decode(bytes: &[u8], from: &str, to: &str) -> Result<InMemDicomObject, TranscodeError> {
        let out = decode_to_native(bytes, from, to)?;
        Ok(InMemDicomObject::read_dataset_with_ts(
            &out[..],
            TransferSyntaxRegistry.get(to).unwrap(),
        )
        .unwrap())
    }

    fn text(obj: &InMemDicomObject, tag: Tag) -> String {
        obj.element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end()
            .to_owned()
    }

    fn pixels(obj: &InMemDicomObject) -> Vec<u8> {
        obj.element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .into_owned()
    }

    /// Native little-endian pixels with runs and noise, so that both kinds of PackBits run
    /// occur.
    fn native_pixels(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|i| {
                if (i / 9) % 2 == 0 {
                    (i / 9) as u8
                } else {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                }
            })
            .collect()
    }

    /// PackBits: replicate runs of two or more equal bytes, literal runs for the rest.
    fn pack_bits(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let run = data[i..]
                .iter()
                .take(128)
                .take_while(|&&b| b == data[i])
                .count();
            if run >= 2 {
                out.push((1 - run as i16) as u8);
                out.push(data[i]);
                i += run;
                continue;
            }
            let mut j = i + 1;
            while j < data.len() && j - i < 128 && !(j + 1 < data.len() && data[j] == data[j + 1]) {
                j += 1;
            }
            out.push((j - i - 1) as u8);
            out.extend_from_slice(&data[i..j]);
            i = j;
        }
        out
    }

    /// One RLE fragment (PS3.5 G.4) for a native frame.
    fn rle_frame(native: &[u8], samples: usize, bytes: usize) -> Vec<u8> {
        let stride = samples * bytes;
        let mut segments = Vec::new();
        for sample in 0..samples {
            for byte in (0..bytes).rev() {
                let plane: Vec<u8> = native
                    .iter()
                    .skip(sample * bytes + byte)
                    .step_by(stride)
                    .copied()
                    .collect();
                let mut packed = pack_bits(&plane);
                if packed.len() % 2 == 1 {
                    packed.push(0);
                }
                segments.push(packed);
            }
        }
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut offset = 64u32;
        for (i, seg) in segments.iter().enumerate() {
            header[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
            offset += seg.len() as u32;
        }
        header.extend(segments.concat());
        header
    }

    #[test]
    fn rle_frames_decode_to_the_original_pixels() {
        for (samples, bits, photometric) in [
            (1, 8, "MONOCHROME2"),
            (3, 8, "RGB"),
            (1, 16, "MONOCHROME2"),
            (3, 16, "YBR_FULL"),
            (1, 32, "MONOCHROME2"),
        ] {
            // 5 × 7 pixels: an odd byte count for 8-bit monochrome, which needs the pad.
            let img = Image {
                rows: 5,
                columns: 7,
                samples,
                bits,
                frames: 2,
                photometric,
            };
            let frames: Vec<Vec<u8>> = (0..2)
                .map(|f| native_pixels(img.frame_len(), f + 1))
                .collect();
            let fragments = frames
                .iter()
                .map(|f| rle_frame(f, usize::from(samples), usize::from(bits / 8)))
                .collect();
            let bytes = dataset(img, uids::RLE_LOSSLESS, fragments);
            let mut expected = frames.concat();
            if expected.len() % 2 == 1 {
                expected.push(0);
            }
            for to in [EXPLICIT, IMPLICIT] {
                let obj = decode(&bytes, uids::RLE_LOSSLESS, to).unwrap();
                let what = format!("{samples}x{bits} to {to}");
                assert_eq!(pixels(&obj), expected, "{what}");
                assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), photometric);
                assert_eq!(text(&obj, tags::NUMBER_OF_FRAMES), "2");
                assert_eq!(text(&obj, tags::PATIENT_NAME), "Doe^Jane");
                assert!(
                    obj.get(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH)
                        .is_none()
                );
                assert!(
                    obj.get(tags::LOSSY_IMAGE_COMPRESSION).is_none(),
                    "RLE is lossless"
                );
                if samples == 3 {
                    let planar = obj.element(tags::PLANAR_CONFIGURATION).unwrap();
                    assert_eq!(planar.to_int::<u16>().unwrap(), 0, "{what}");
                }
                if to == EXPLICIT {
                    let vr = obj.element(tags::PIXEL_DATA).unwrap().vr();
                    assert_eq!(vr, if bits == 8 { VR::OB } else { VR::OW }, "{what}");
                }
            }
        }
    }

    /// The `transcode_native` regression found by fuzzing, on the decoding path: a value of a tag
    /// the dictionary makes a sequence cannot go out in implicit VR.
    #[test]
    fn implicit_output_refuses_values_the_dictionary_makes_sequences() {
        let img = Image {
            rows: 2,
            columns: 2,
            samples: 1,
            bits: 8,
            frames: 1,
            photometric: "MONOCHROME2",
        };
        let frame = native_pixels(img.frame_len(), 1);
        let bytes = dataset(img, uids::RLE_LOSSLESS, vec![rle_frame(&frame, 1, 1)]);
        let rle = TransferSyntaxRegistry.get(uids::RLE_LOSSLESS).unwrap();
        let mut obj = InMemDicomObject::read_dataset_with_ts(&bytes[..], rle).unwrap();
        obj.put(DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::LO,
            PrimitiveValue::from("CT CHEST"),
        ));
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, rle).unwrap();
        let err = decode_to_native(&bytes, uids::RLE_LOSSLESS, IMPLICIT).unwrap_err();
        assert!(matches!(err, TranscodeError::Write(_)), "{err:?}");
        decode(&bytes, uids::RLE_LOSSLESS, EXPLICIT).unwrap();

        // And the output check: a US value under a UL tag would read back as half a value.
        obj.remove_element(tags::PROCEDURE_CODE_SEQUENCE);
        obj.put(DataElement::new(
            tags::REGION_FLAGS,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, rle).unwrap();
        let err = decode_to_native(&bytes, uids::RLE_LOSSLESS, IMPLICIT).unwrap_err();
        assert!(matches!(err, TranscodeError::Write(_)), "{err:?}");
        decode(&bytes, uids::RLE_LOSSLESS, EXPLICIT).unwrap();
    }

    #[test]
    fn malformed_rle_is_refused() {
        let img = Image {
            rows: 4,
            columns: 4,
            samples: 1,
            bits: 8,
            frames: 1,
            photometric: "MONOCHROME2",
        };
        let good = rle_frame(&native_pixels(16, 3), 1, 1);
        let refused = |fragments: Vec<Vec<u8>>, img: Image| {
            let bytes = dataset(img, uids::RLE_LOSSLESS, fragments);
            match decode_to_native(&bytes, uids::RLE_LOSSLESS, EXPLICIT) {
                Err(TranscodeError::Pixels(why)) => why,
                other => panic!("{other:?}"),
            }
        };
        // A segment that decodes to fewer bytes than Rows × Columns.
        let mut short = good[..64].to_vec();
        short.extend([1, 7, 7, 0]);
        assert!(refused(vec![short], img).contains("short"));
        // A fragment shorter than its header.
        assert!(refused(vec![vec![1, 0]], img).contains("header"));
        // More segments declared than the image has samples.
        let mut count = good.clone();
        count[0] = 3;
        assert!(refused(vec![count], img).contains("segments"));
        // A segment offset past the end, or into the header.
        for bad in [u32::MAX, 1_000, 8] {
            let mut offset = good.clone();
            offset[4..8].copy_from_slice(&bad.to_le_bytes());
            assert!(refused(vec![offset], img).contains("out of"), "{bad}");
        }
        // One fragment per frame, no more, no less.
        assert!(refused(vec![good.clone(), good.clone()], img).contains("fragments"));
        let two = Image { frames: 2, ..img };
        assert!(refused(vec![good.clone()], two).contains("fragments"));
        let ybr = Image {
            samples: 3,
            photometric: "YBR_FULL_422",
            ..img
        };
        assert!(refused(vec![rle_frame(&native_pixels(48, 1), 3, 1)], ybr).contains("YBR"));
    }

    /// A colourful, smooth 16 × 16 RGB image: lossy coding stays close, and a missing or extra
    /// colour conversion would not.
    fn rgb_image() -> Vec<u8> {
        (0..16u8)
            .flat_map(|y| {
                (0..16u8).flat_map(move |x| [40 + 10 * x, 220 - 9 * y, 90 + 3 * x + 2 * y])
            })
            .collect()
    }

    fn baseline_jpeg(data: &[u8], color: jpeg_encoder::ColorType) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 100);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
        encoder.encode(data, 16, 16, color).unwrap();
        out
    }

    fn max_difference(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
    }

    #[test]
    fn jpeg_baseline_ybr_is_converted_to_rgb() {
        let rgb = rgb_image();
        let jpeg = baseline_jpeg(&rgb, jpeg_encoder::ColorType::Rgb);
        let img = Image {
            rows: 16,
            columns: 16,
            samples: 3,
            bits: 8,
            frames: 2,
            photometric: "YBR_FULL_422",
        };
        // The second frame split over two fragments, the first padded as DICOM requires.
        let (head, tail) = jpeg.split_at(jpeg.len() / 2 + 1);
        let mut padded = jpeg.clone();
        padded.push(0);
        let fragments = vec![padded, head.to_vec(), tail.to_vec()];
        let bytes = dataset(img, uids::JPEG_BASELINE8_BIT, fragments);
        let obj = decode(&bytes, uids::JPEG_BASELINE8_BIT, EXPLICIT).unwrap();
        let out = pixels(&obj);
        assert_eq!(out.len(), 2 * rgb.len());
        // Chroma subsampling costs a few levels; a missing colour conversion would cost a hundred.
        assert!(max_difference(&out[..rgb.len()], &rgb) <= 10);
        assert_eq!(&out[..rgb.len()], &out[rgb.len()..]);
        assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
        assert_eq!(text(&obj, tags::LOSSY_IMAGE_COMPRESSION), "01");
        assert_eq!(
            obj.element(tags::PLANAR_CONFIGURATION)
                .unwrap()
                .to_int::<u16>()
                .unwrap(),
            0
        );
    }

    #[test]
    fn jpeg_baseline_rgb_is_not_colour_converted() {
        // The JPEG markers claim YCbCr, but the data set says the encoder kept RGB: the
        // data set wins, as in PS3.5 8.2.1.
        let rgb = rgb_image();
        let jpeg = baseline_jpeg(&rgb, jpeg_encoder::ColorType::Ycbcr);
        let img = Image {
            rows: 16,
            columns: 16,
            samples: 3,
            bits: 8,
            frames: 1,
            photometric: "RGB",
        };
        let bytes = dataset(img, uids::JPEG_BASELINE8_BIT, vec![jpeg]);
        let obj = decode(&bytes, uids::JPEG_BASELINE8_BIT, IMPLICIT).unwrap();
        assert!(max_difference(&pixels(&obj), &rgb) <= 6);
        assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
    }

    /// Bits for a JPEG entropy-coded segment, most significant first, with 0xFF stuffing.
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl Bits {
        fn put(&mut self, value: u32, len: u32) {
            for i in (0..len).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    if self.acc == 0xFF {
                        self.out.push(0);
                    }
                    (self.acc, self.n) = (0, 0);
                }
            }
        }

        fn finish(mut self) -> Vec<u8> {
            if self.n > 0 {
                self.put(0x7F, 8 - self.n);
            }
            self.out
        }
    }

    /// A JPEG lossless (process 14, first-order prediction) image of interleaved samples. The
    /// one Huffman table gives every difference category a 5-bit code.
    fn lossless_jpeg(samples: &[u16], width: u16, components: u8, precision: u8) -> Vec<u8> {
        let c = usize::from(components);
        let w = usize::from(width);
        let height = (samples.len() / c / w) as u16;
        let mut out = vec![0xFF, 0xD8];
        let mut segment = |marker: u8, body: Vec<u8>| {
            out.extend([0xFF, marker]);
            out.extend(((body.len() + 2) as u16).to_be_bytes());
            out.extend(body);
        };
        let mut sof = vec![precision];
        sof.extend(height.to_be_bytes());
        sof.extend(width.to_be_bytes());
        sof.push(components);
        for id in 1..=components {
            sof.extend([id, 0x11, 0]);
        }
        segment(0xC3, sof);
        let mut dht = vec![0x00, 0, 0, 0, 0, 17];
        dht.extend([0; 11]);
        dht.extend(0..=16u8);
        segment(0xC4, dht);
        let mut sos = vec![components];
        for id in 1..=components {
            sos.extend([id, 0x00]);
        }
        sos.extend([1, 0, 0]);
        segment(0xDA, sos);
        let mut bits = Bits::default();
        for (i, &x) in samples.iter().enumerate() {
            let predictor = if i < c {
                1 << (precision - 1)
            } else if (i / c) % w == 0 {
                samples[i - w * c]
            } else {
                samples[i - c]
            };
            let diff = i32::from(x) - i32::from(predictor);
            let category = 32 - diff.unsigned_abs().leading_zeros();
            bits.put(category, 5);
            let extra = if diff < 0 { diff - 1 } else { diff };
            bits.put(extra as u32 & ((1 << category) - 1), category);
        }
        out.extend(bits.finish());
        out.extend([0xFF, 0xD9]);
        out
    }

    #[test]
    fn jpeg_lossless_is_exact() {
        // 12-bit monochrome in 16-bit samples, little endian once decoded.
        let mono: Vec<u16> = (0..6 * 5).map(|i| (i * 331 % 4096) as u16).collect();
        let img = Image {
            rows: 5,
            columns: 6,
            samples: 1,
            bits: 16,
            frames: 1,
            photometric: "MONOCHROME2",
        };
        let bytes = dataset(
            img,
            uids::JPEG_LOSSLESS_SV1,
            vec![lossless_jpeg(&mono, 6, 1, 12)],
        );
        let obj = decode(&bytes, uids::JPEG_LOSSLESS_SV1, EXPLICIT).unwrap();
        let expected: Vec<u8> = mono.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(pixels(&obj), expected);
        assert!(obj.get(tags::LOSSY_IMAGE_COMPRESSION).is_none());

        // 8-bit colour, kept as YBR_FULL: lossless coding does no colour conversion.
        let rgb: Vec<u16> = rgb_image().into_iter().map(u16::from).collect();
        let img = Image {
            rows: 16,
            columns: 16,
            samples: 3,
            bits: 8,
            frames: 1,
            photometric: "YBR_FULL",
        };
        let bytes = dataset(
            img,
            uids::JPEG_LOSSLESS,
            vec![lossless_jpeg(&rgb, 16, 3, 8)],
        );
        let obj = decode(&bytes, uids::JPEG_LOSSLESS, IMPLICIT).unwrap();
        assert_eq!(pixels(&obj), rgb_image());
        assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), "YBR_FULL");
    }

    #[test]
    fn jpeg_that_disagrees_with_the_data_set_is_refused() {
        let gray = [9u8; 256];
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(&gray, 16, 16, jpeg_encoder::ColorType::Luma)
            .unwrap();
        let img = Image {
            rows: 16,
            columns: 16,
            samples: 1,
            bits: 8,
            frames: 1,
            photometric: "MONOCHROME2",
        };
        let refused = |img: Image, ts: &str, fragments: Vec<Vec<u8>>| {
            let bytes = dataset(img, ts, fragments);
            match decode_to_native(&bytes, ts, EXPLICIT) {
                Err(TranscodeError::Pixels(why)) => why,
                other => panic!("{other:?}"),
            }
        };
        let baseline = uids::JPEG_BASELINE8_BIT;
        // A frame larger than the declared image, which must not be decoded at all.
        let small = Image {
            rows: 8,
            columns: 8,
            ..img
        };
        assert!(refused(small, baseline, vec![jpeg.clone()]).contains("declares"));
        // Colour data declared monochrome, and the reverse.
        let colour = baseline_jpeg(&rgb_image(), jpeg_encoder::ColorType::Rgb);
        assert!(refused(img, baseline, vec![colour]).contains("declares"));
        let rgb = Image {
            samples: 3,
            photometric: "RGB",
            ..img
        };
        assert!(refused(rgb, baseline, vec![jpeg.clone()]).contains("declares"));
        // Fewer frames in the data than declared.
        let two = Image { frames: 2, ..img };
        assert!(refused(two, baseline, vec![jpeg.clone()]).contains("frame 1"));
        // Not JPEG at all; cut short.
        assert!(refused(img, baseline, vec![vec![0x12; 64]]).contains("no JPEG"));
        let cut = jpeg[..jpeg.len() / 2].to_vec();
        assert!(refused(img, baseline, vec![cut]).contains("JPEG frame 0"));
        // DCT data under a lossless transfer syntax.
        assert!(refused(img, uids::JPEG_LOSSLESS_SV1, vec![jpeg.clone()]).contains("coded"));
        // Photometric interpretations JPEG does not carry.
        let palette = Image {
            photometric: "PALETTE COLOR",
            ..img
        };
        assert!(refused(palette, baseline, vec![jpeg]).contains("PALETTE"));
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        let tiny = vec![rle_frame(&[0; 4], 1, 1)];
        for img in [
            // 65535² × 3 × 2 bytes: 24 GiB from a few bytes.
            Image {
                rows: 65535,
                columns: 65535,
                samples: 3,
                bits: 16,
                frames: 1,
                photometric: "RGB",
            },
            // Just over the limit through the number of frames.
            Image {
                rows: 512,
                columns: 512,
                samples: 1,
                bits: 16,
                frames: 513,
                photometric: "MONOCHROME2",
            },
            // A product that overflows 64 bits.
            Image {
                rows: 65535,
                columns: 65535,
                samples: 3,
                bits: 32,
                frames: u32::MAX,
                photometric: "RGB",
            },
        ] {
            let bytes = dataset(img, uids::RLE_LOSSLESS, tiny.clone());
            assert!(matches!(
                decode_to_native(&bytes, uids::RLE_LOSSLESS, EXPLICIT),
                Err(TranscodeError::TooLarge)
            ));
        }
        // Exactly at the limit is allowed to proceed (and fails on the data instead).
        let img = Image {
            rows: 512,
            columns: 512,
            samples: 1,
            bits: 16,
            frames: 512,
            photometric: "MONOCHROME2",
        };
        let bytes = dataset(img, uids::RLE_LOSSLESS, tiny);
        assert!(matches!(
            decode_to_native(&bytes, uids::RLE_LOSSLESS, EXPLICIT),
            Err(TranscodeError::Pixels(_))
        ));
    }

    #[test]
    fn decodable_syntaxes() {
        for ts in [
            uids::RLE_LOSSLESS,
            uids::JPEG_BASELINE8_BIT,
            uids::JPEG_EXTENDED12_BIT,
            uids::JPEG_LOSSLESS,
            uids::JPEG_LOSSLESS_SV1,
        ] {
            assert!(is_decodable_transfer_syntax(ts), "{ts}");
        }
        for ts in [
            EXPLICIT,
            uids::JPEG2000,
            uids::JPEG2000_LOSSLESS,
            uids::JPEGLS_LOSSLESS,
            "1.2.3",
        ] {
            assert!(!is_decodable_transfer_syntax(ts), "{ts}");
        }
        assert!(matches!(
            decode_to_native(&[], EXPLICIT, IMPLICIT),
            Err(TranscodeError::NotDecodable(_))
        ));
        assert!(matches!(
            decode_to_native(&[], uids::RLE_LOSSLESS, uids::JPEG_BASELINE8_BIT),
            Err(TranscodeError::NotDecodable(_))
        ));
        assert!(matches!(
            decode_to_native(&[], uids::RLE_LOSSLESS, "1.2.840.10008.1.2.2"),
            Err(TranscodeError::NotDecodable(_))
        ));
    }
}
