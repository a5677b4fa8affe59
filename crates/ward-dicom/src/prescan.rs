//! The length-checked pre-scan that must pass before dicom-object sees a data set.
//!
//! dicom-object 0.10 reserves and zero-fills an element's declared length before it reads the
//! value, so sixteen bytes declaring a 4 GB element cost 4 GB. The walker here reads the same
//! element headers dicom-object will read, in the same order and with the same interpretation,
//! and refuses any declared length that runs past what remains of its container. It never sizes
//! an allocation from the data: values are skipped through a fixed buffer, and nesting lives in a
//! heap stack bounded by `max_depth`, so hostile nesting cannot exhaust the thread's stack.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_dictionary_std::tags::PIXEL_DATA;
use flate2::read::DeflateDecoder;

use crate::part10::{Part10Error, Part10Info, read_part10_info_from};
use crate::ts::{Encoding, Layout};

/// Limits of the pre-scan.
#[derive(Debug, Clone)]
pub struct PrescanLimits {
    /// How many sequences may be open at once, counting encapsulated Pixel Data as one.
    pub max_depth: u32,
    /// For a deflated transfer syntax, how many bytes the data set may inflate to.
    pub max_inflated_bytes: u64,
}

impl Default for PrescanLimits {
    fn default() -> Self {
        PrescanLimits {
            max_depth: 32,
            max_inflated_bytes: 4 << 30,
        }
    }
}

impl PrescanLimits {
    /// For a query/retrieve identifier: keys and short values, never bulk data, so a deflated
    /// one may not inflate past [`MAX_IDENTIFIER_INFLATED`] (the default would let a small
    /// compressed identifier make its parser hold gigabytes).
    pub fn identifier() -> Self {
        PrescanLimits {
            max_inflated_bytes: MAX_IDENTIFIER_INFLATED,
            ..PrescanLimits::default()
        }
    }
}

/// How far a deflated identifier may inflate.
pub const MAX_IDENTIFIER_INFLATED: u64 = 4 << 20;

/// What the pre-scan saw in a data set that passed.
#[derive(Debug, Clone, Default)]
pub struct PrescanSummary {
    /// Data elements at every depth; items, delimiters and pixel fragments are not counted.
    pub elements: u64,
    /// The deepest sequence nesting reached (0 when the data set has no sequence).
    pub max_depth_seen: u32,
    /// Whether the top-level data set holds Pixel Data (7FE0,0010).
    pub has_pixel_data: bool,
}

/// Why a data set was refused. Offsets count from the first byte of the data set (after
/// inflation, for a deflated transfer syntax).
#[derive(Debug, thiserror::Error)]
pub enum PrescanError {
    #[error("I/O error while pre-scanning the data set")]
    Io(#[source] io::Error),
    #[error(
        "{needed} bytes needed at offset {offset} run past the end of their container or of the data"
    )]
    Truncated { offset: u64, needed: u64 },
    #[error("sequences are nested deeper than {max_depth}")]
    TooDeep { max_depth: u32 },
    #[error("element {tag} at offset {offset} has an invalid VR code {code:02X?}")]
    InvalidVr {
        offset: u64,
        tag: Tag,
        code: [u8; 2],
    },
    #[error(
        "element {tag} at offset {offset} has an undefined length, which its VR does not allow"
    )]
    UndefinedLength { offset: u64, tag: Tag },
    #[error(
        "an undefined-length sequence or item still open at offset {offset} was not closed by its delimiter"
    )]
    MissingDelimiter { offset: u64 },
    #[error("delimiter {tag} at offset {offset} closes nothing that is open")]
    UnexpectedDelimiter { offset: u64, tag: Tag },
    #[error("item at offset {offset} is outside any sequence")]
    ItemOutsideSequence { offset: u64 },
    #[error("tag {tag} at offset {offset} is not allowed here")]
    UnexpectedTag { offset: u64, tag: Tag },
    #[error(
        "element {tag} at offset {offset} declares {length} bytes, not a whole number of its {size}-byte values"
    )]
    PartialValue {
        offset: u64,
        tag: Tag,
        length: u64,
        size: u64,
    },
    #[error("the data set inflates to more than {max} bytes")]
    InflatedTooLarge { max: u64 },
    #[error("unknown transfer syntax {0:?}")]
    UnknownTransferSyntax(String),
    #[error("transfer syntax {0} is known but its data sets cannot be read")]
    UnsupportedTransferSyntax(String),
    #[error("the Part 10 meta information is not acceptable")]
    Meta(#[source] Part10Error),
}

/// Walks every element header of a data set encoded in transfer syntax `ts_uid` and checks every
/// declared length against the bytes that remain in its container (the enclosing defined-length
/// item or sequence, or the end of the data), without allocating anything sized from a declared
/// length.
///
/// `reader` starts at the first byte of the data set and `len` is the number of bytes of the data
/// set. For a deflated transfer syntax `len` is the compressed length; the data set is inflated
/// as raw deflate, counting inflated bytes against `max_inflated_bytes`, and the inflated
/// stream's own end is the end of the data.
///
/// The walk follows dicom-rs 0.10's reading of a data set, because what it protects is
/// dicom-object's reading of the same bytes:
/// - in implicit VR, a defined-length element is a sequence when the standard dictionary says SQ,
///   and an undefined length always opens a sequence;
/// - in explicit VR, undefined length is accepted for SQ, for UN, and for Pixel Data (OB, OW or
///   UN), which opens the encapsulated fragment sequence at any depth;
/// - the content of an undefined-length UN is read in the data set's own transfer syntax, as
///   dicom-parser 0.10 reads it. PS3.5 §6.2.2 says such content is implicit VR little endian,
///   but dicom-object would then parse those bytes with explicit VR headers and allocate from
///   lengths a standard-conformant walk never checked. Content that is only valid as implicit VR
///   is therefore refused: Ward could not read it correctly anyway;
/// - a value of a binary VR with fixed-size values (AT, US, SS, OW, UL, SL, OL, FL, OF, FD, OD,
///   SV, UV, OV; in implicit VR the VR dicom-encoding resolves from the dictionary) is read as
///   `length / size` whole values and any remainder is left in the stream, as is the remainder of
///   a basic offset table (the first item of encapsulated Pixel Data, read as 32-bit offsets):
///   dicom-parser would take those bytes for the next element header, lengths nothing checked,
///   so such lengths are refused.
pub fn prescan_dataset<R: Read>(
    reader: R,
    len: u64,
    ts_uid: &str,
    limits: &PrescanLimits,
) -> Result<PrescanSummary, PrescanError> {
    let layout = Layout::of(ts_uid)?;
    let limited = reader.take(len);
    if layout.deflated {
        let inflated = BufReader::with_capacity(BUFFER, DeflateDecoder::new(limited));
        let source = Source {
            inner: inflated,
            pos: 0,
            cap: Some(limits.max_inflated_bytes),
        };
        Walker::new(source, None, layout.encoding, limits).run()
    } else {
        let source = Source {
            inner: BufReader::with_capacity(BUFFER, limited),
            pos: 0,
            cap: None,
        };
        Walker::new(source, Some(len), layout.encoding, limits).run()
    }
}

/// Big enough that skipping large values costs few reads, small enough to be noise per
/// association.
const BUFFER: usize = 64 * 1024;

const UNDEFINED: u32 = u32::MAX;
const META_GROUP: u16 = 0x0002;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);

/// A byte source that knows its position and refuses to move past a container's end or the
/// inflation cap before it reads.
struct Source<R> {
    inner: R,
    pos: u64,
    cap: Option<u64>,
}

impl<R: BufRead> Source<R> {
    /// Returns where `needed` more bytes would end, if they fit.
    fn check(&self, needed: u64, limit: Option<u64>) -> Result<u64, PrescanError> {
        let truncated = PrescanError::Truncated {
            offset: self.pos,
            needed,
        };
        let end = match self.pos.checked_add(needed) {
            Some(end) if limit.is_none_or(|limit| end <= limit) => end,
            _ => return Err(truncated),
        };
        match self.cap {
            Some(max) if end > max => Err(PrescanError::InflatedTooLarge { max }),
            _ => Ok(end),
        }
    }

    fn read_array<const N: usize>(&mut self, limit: Option<u64>) -> Result<[u8; N], PrescanError> {
        let mut buf = [0u8; N];
        self.check(N as u64, limit)?;
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                PrescanError::Truncated {
                    offset: self.pos,
                    needed: N as u64,
                }
            } else {
                PrescanError::Io(e)
            }
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, limit: Option<u64>) -> Result<(), PrescanError> {
        self.check(n, limit)?;
        let (start, mut left) = (self.pos, n);
        while left > 0 {
            let available = self.inner.fill_buf().map_err(PrescanError::Io)?;
            if available.is_empty() {
                return Err(PrescanError::Truncated {
                    offset: start,
                    needed: n,
                });
            }
            let step = usize::try_from(left).map_or(available.len(), |l| l.min(available.len()));
            self.inner.consume(step);
            // `step` never exceeds `left`, so neither update can overflow.
            left -= step as u64;
            self.pos += step as u64;
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool, PrescanError> {
        Ok(self.inner.fill_buf().map_err(PrescanError::Io)?.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The top-level data set.
    Root,
    /// A sequence item: a nested data set.
    Item,
    /// A sequence: items and, if undefined length, a sequence delimiter.
    Sequence,
    /// Encapsulated Pixel Data: defined-length fragment items and a sequence delimiter.
    Fragments,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    /// Where the container ends, if its length is defined.
    end: Option<u64>,
    /// The nearest defined end at or above this container: nothing inside may pass it.
    limit: Option<u64>,
    /// For `Fragments`: whether the basic offset table (the first item) was read.
    items_seen: bool,
}

struct Walker<'l, R> {
    src: Source<R>,
    encoding: Encoding,
    limits: &'l PrescanLimits,
    stack: Vec<Frame>,
    depth: u32,
    summary: PrescanSummary,
}

impl<'l, R: BufRead> Walker<'l, R> {
    fn new(
        src: Source<R>,
        len: Option<u64>,
        encoding: Encoding,
        limits: &'l PrescanLimits,
    ) -> Self {
        let root = Frame {
            kind: Kind::Root,
            end: len,
            limit: len,
            items_seen: false,
        };
        Walker {
            src,
            encoding,
            limits,
            stack: vec![root],
            depth: 0,
            summary: PrescanSummary::default(),
        }
    }

    fn run(mut self) -> Result<PrescanSummary, PrescanError> {
        while let Some(&frame) = self.stack.last() {
            let pos = self.src.pos;
            if frame.end == Some(pos) {
                self.close();
                continue;
            }
            if frame.limit == Some(pos) {
                // Only an undefined-length container can still be open where its parent ends.
                return Err(PrescanError::MissingDelimiter { offset: pos });
            }
            if frame.limit.is_none() && self.src.at_end()? {
                if frame.kind == Kind::Root {
                    self.stack.clear();
                    continue;
                }
                return Err(PrescanError::MissingDelimiter { offset: pos });
            }
            let tag = self.read_tag(frame.limit)?;
            match frame.kind {
                Kind::Root | Kind::Item => self.in_data_set(frame, pos, tag)?,
                Kind::Sequence => self.in_sequence(frame, pos, tag)?,
                Kind::Fragments => self.in_fragments(frame, pos, tag)?,
            }
        }
        Ok(self.summary)
    }

    fn close(&mut self) {
        if let Some(frame) = self.stack.pop() {
            if matches!(frame.kind, Kind::Sequence | Kind::Fragments) {
                self.depth = self.depth.saturating_sub(1);
            }
        }
    }

    fn in_data_set(&mut self, frame: Frame, offset: u64, tag: Tag) -> Result<(), PrescanError> {
        if tag.group() == 0xFFFE {
            // Items and delimiters carry a 4-byte length and no VR in every transfer syntax.
            self.read_u32(frame.limit)?;
            return match tag {
                ITEM_DELIMITER if frame.kind == Kind::Item && frame.end.is_none() => {
                    self.close();
                    Ok(())
                }
                ITEM_DELIMITER | SEQUENCE_DELIMITER => {
                    Err(PrescanError::UnexpectedDelimiter { offset, tag })
                }
                ITEM => Err(PrescanError::ItemOutsideSequence { offset }),
                _ => Err(PrescanError::UnexpectedTag { offset, tag }),
            };
        }

        if tag.group() == META_GROUP {
            // File meta elements belong before the data set only; here they mean a group length
            // (0002,0000) that stopped short.
            return Err(PrescanError::UnexpectedTag { offset, tag });
        }
        self.summary.elements = self.summary.elements.saturating_add(1);
        if tag == PIXEL_DATA && frame.kind == Kind::Root {
            self.summary.has_pixel_data = true;
        }
        let (vr, len) = self.read_vr_and_length(frame.limit, offset, tag)?;

        if len == UNDEFINED {
            // dicom-parser takes undefined-length Pixel Data of any VR but SQ as fragments, and
            // in implicit VR (where `vr` is SQ or UN here) any other undefined length as a
            // sequence.
            return match vr {
                VR::OB | VR::OW | VR::UN if tag == PIXEL_DATA => {
                    self.open(Kind::Fragments, None, frame.limit)
                }
                VR::SQ | VR::UN => self.open(Kind::Sequence, None, frame.limit),
                _ => Err(PrescanError::UndefinedLength { offset, tag }),
            };
        }

        let len = u64::from(len);
        if vr == VR::SQ {
            let end = self.src.check(len, frame.limit)?;
            self.open(Kind::Sequence, Some(end), frame.limit)
        } else {
            let size = value_size(self.value_vr(tag, vr));
            if len % size != 0 {
                return Err(PrescanError::PartialValue {
                    offset,
                    tag,
                    length: len,
                    size,
                });
            }
            self.src.skip(len, frame.limit)
        }
    }

    /// The VR dicom-parser reads a value as: the header's in explicit VR; in implicit VR the one
    /// dicom-encoding's implicit decoder resolves (OW for Pixel Data and Overlay Data, otherwise
    /// the dictionary's, relaxed, otherwise UN).
    fn value_vr(&self, tag: Tag, vr: VR) -> VR {
        if self.encoding != Encoding::ImplicitLittle {
            return vr;
        }
        if tag == PIXEL_DATA || (tag.group() >> 8 == 0x60 && tag.element() == 0x3000) {
            return VR::OW;
        }
        StandardDataDictionary
            .by_tag(tag)
            .map_or(VR::UN, |entry| entry.vr().relaxed())
    }

    fn in_sequence(&mut self, frame: Frame, offset: u64, tag: Tag) -> Result<(), PrescanError> {
        let len = self.read_u32(frame.limit)?;
        match tag {
            ITEM if len == UNDEFINED => {
                self.push(Kind::Item, None, frame.limit);
                Ok(())
            }
            ITEM => {
                let end = self.src.check(u64::from(len), frame.limit)?;
                self.push(Kind::Item, Some(end), frame.limit);
                Ok(())
            }
            SEQUENCE_DELIMITER if frame.end.is_none() => {
                self.close();
                Ok(())
            }
            ITEM_DELIMITER | SEQUENCE_DELIMITER => {
                Err(PrescanError::UnexpectedDelimiter { offset, tag })
            }
            _ => Err(PrescanError::UnexpectedTag { offset, tag }),
        }
    }

    fn in_fragments(&mut self, frame: Frame, offset: u64, tag: Tag) -> Result<(), PrescanError> {
        let len = self.read_u32(frame.limit)?;
        match tag {
            ITEM if len == UNDEFINED => Err(PrescanError::UndefinedLength { offset, tag }),
            // The basic offset table is read as 32-bit offsets (see `prescan_dataset`).
            ITEM if !frame.items_seen && len % 4 != 0 => Err(PrescanError::PartialValue {
                offset,
                tag,
                length: u64::from(len),
                size: 4,
            }),
            ITEM => {
                if let Some(top) = self.stack.last_mut() {
                    top.items_seen = true;
                }
                self.src.skip(u64::from(len), frame.limit)
            }
            SEQUENCE_DELIMITER => {
                self.close();
                Ok(())
            }
            ITEM_DELIMITER => Err(PrescanError::UnexpectedDelimiter { offset, tag }),
            _ => Err(PrescanError::UnexpectedTag { offset, tag }),
        }
    }

    /// Opens a sequence or a fragment sequence, refusing before it would pass `max_depth`.
    fn open(
        &mut self,
        kind: Kind,
        end: Option<u64>,
        parent_limit: Option<u64>,
    ) -> Result<(), PrescanError> {
        let depth = self.depth.saturating_add(1);
        if depth > self.limits.max_depth {
            return Err(PrescanError::TooDeep {
                max_depth: self.limits.max_depth,
            });
        }
        self.depth = depth;
        self.summary.max_depth_seen = self.summary.max_depth_seen.max(depth);
        self.push(kind, end, parent_limit);
        Ok(())
    }

    fn push(&mut self, kind: Kind, end: Option<u64>, parent_limit: Option<u64>) {
        let limit = end.or(parent_limit);
        self.stack.push(Frame {
            kind,
            end,
            limit,
            items_seen: false,
        });
    }

    fn read_tag(&mut self, limit: Option<u64>) -> Result<Tag, PrescanError> {
        let b = self.src.read_array::<4>(limit)?;
        Ok(match self.encoding {
            Encoding::ExplicitBig => Tag(
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ),
            Encoding::ExplicitLittle | Encoding::ImplicitLittle => Tag(
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
            ),
        })
    }

    fn read_u16(&mut self, limit: Option<u64>) -> Result<u16, PrescanError> {
        let b = self.src.read_array::<2>(limit)?;
        Ok(match self.encoding {
            Encoding::ExplicitBig => u16::from_be_bytes(b),
            Encoding::ExplicitLittle | Encoding::ImplicitLittle => u16::from_le_bytes(b),
        })
    }

    fn read_u32(&mut self, limit: Option<u64>) -> Result<u32, PrescanError> {
        let b = self.src.read_array::<4>(limit)?;
        Ok(match self.encoding {
            Encoding::ExplicitBig => u32::from_be_bytes(b),
            Encoding::ExplicitLittle | Encoding::ImplicitLittle => u32::from_le_bytes(b),
        })
    }

    /// Reads the rest of a data element header. In implicit VR the VR only matters to know
    /// whether a defined-length element is a sequence, and it comes from the dictionary exactly
    /// as dicom-parser resolves it.
    fn read_vr_and_length(
        &mut self,
        limit: Option<u64>,
        offset: u64,
        tag: Tag,
    ) -> Result<(VR, u32), PrescanError> {
        if self.encoding == Encoding::ImplicitLittle {
            let len = self.read_u32(limit)?;
            let is_sequence = tag != PIXEL_DATA
                && StandardDataDictionary
                    .by_tag(tag)
                    .is_some_and(|entry| entry.vr().relaxed() == VR::SQ);
            return Ok((if is_sequence { VR::SQ } else { VR::UN }, len));
        }
        let code = self.src.read_array::<2>(limit)?;
        let vr = VR::from_binary(code).ok_or(PrescanError::InvalidVr { offset, tag, code })?;
        let len = if has_long_length(vr) {
            self.src.read_array::<2>(limit)?;
            self.read_u32(limit)?
        } else {
            u32::from(self.read_u16(limit)?)
        };
        Ok((vr, len))
    }
}

/// Bytes per value of the binary VRs that dicom-parser reads as whole values; 1 for the VRs it
/// reads byte for byte (text, OB, UN).
fn value_size(vr: VR) -> u64 {
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::UL | VR::SL | VR::OL | VR::FL | VR::OF => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// The VRs whose explicit-VR header has two reserved bytes and a 4-byte length (PS3.5 §7.1.2).
pub(crate) fn has_long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::SV
            | VR::UV
    )
}

/// Reads and checks the meta group of the Part 10 file at `path` (see
/// [`read_part10_info_from`](crate::read_part10_info_from)), then pre-scans its data set: the
/// two checks that must pass before dicom-object may open the file.
pub fn prescan_part10_file(
    path: &Path,
    limits: &PrescanLimits,
) -> Result<(Part10Info, PrescanSummary), PrescanError> {
    let file = File::open(path).map_err(PrescanError::Io)?;
    let file_len = file.metadata().map_err(PrescanError::Io)?.len();
    let info =
        read_part10_info_from(BufReader::new(&file), file_len).map_err(PrescanError::Meta)?;
    // The buffered meta reader may have read ahead; the data set starts where the meta group says.
    (&file)
        .seek(SeekFrom::Start(info.dataset_offset))
        .map_err(PrescanError::Io)?;
    let len = file_len.saturating_sub(info.dataset_offset);
    let summary = prescan_dataset(&file, len, info.transfer_syntax.as_str(), limits)?;
    Ok((info, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
    const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

    /// An explicit VR little endian element header declaring `len`.
    fn header(tag: (u16, u16), vr: &[u8; 2], len: u32) -> Vec<u8> {
        let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
        out.extend_from_slice(vr);
        let code = VR::from_binary(*vr).unwrap();
        if has_long_length(code) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.extend_from_slice(&u16::try_from(len).unwrap().to_le_bytes());
        }
        out
    }

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = header(tag, vr, u32::try_from(value.len()).unwrap());
        out.extend_from_slice(value);
        out
    }

    /// Item, item delimiter or sequence delimiter, little endian.
    fn marker(element: u16, len: u32) -> Vec<u8> {
        [
            &0xFFFEu16.to_le_bytes()[..],
            &element.to_le_bytes(),
            &len.to_le_bytes(),
        ]
        .concat()
    }

    fn item(len: u32) -> Vec<u8> {
        marker(0xE000, len)
    }

    fn item_end() -> Vec<u8> {
        marker(0xE00D, 0)
    }

    fn seq_end() -> Vec<u8> {
        marker(0xE0DD, 0)
    }

    fn implicit(tag: (u16, u16), len: u32, value: &[u8]) -> Vec<u8> {
        [
            &tag.0.to_le_bytes()[..],
            &tag.1.to_le_bytes(),
            &len.to_le_bytes(),
            value,
        ]
        .concat()
    }

    fn scan(data: &[u8], ts: &str) -> Result<PrescanSummary, PrescanError> {
        prescan_dataset(data, data.len() as u64, ts, &PrescanLimits::default())
    }

    fn patient() -> Vec<u8> {
        [
            element((0x0008, 0x0060), b"CS", b"CT"),
            element((0x0010, 0x0010), b"PN", b"Doe^John"),
            element((0x0010, 0x0020), b"LO", b"ID-1"),
        ]
        .concat()
    }

    #[test]
    fn empty_and_flat_data_sets_pass() {
        let summary = scan(&[], EXPLICIT_LE).unwrap();
        assert_eq!(summary.elements, 0);
        let summary = scan(&patient(), EXPLICIT_LE).unwrap();
        assert_eq!(summary.elements, 3);
        assert_eq!(summary.max_depth_seen, 0);
        assert!(!summary.has_pixel_data);
    }

    #[test]
    fn nested_sequences_of_every_length_form_pass() {
        let inner_item = patient();
        let inner_seq = [
            item(u32::MAX),
            inner_item.clone(),
            item_end(),
            item(inner_item.len() as u32),
            inner_item.clone(),
            seq_end(),
        ]
        .concat();
        let outer_item = [
            element((0x0008, 0x0100), b"SH", b"T-1234"),
            header((0x0040, 0xA730), b"SQ", u32::MAX),
            inner_seq,
        ]
        .concat();
        let outer_seq = [item(outer_item.len() as u32), outer_item].concat();
        let data = [
            patient(),
            header((0x0008, 0x1115), b"SQ", outer_seq.len() as u32),
            outer_seq,
            header((0x0008, 0x1140), b"SQ", 0),
            header((0x0008, 0x1150), b"SQ", u32::MAX),
            seq_end(),
        ]
        .concat();
        let summary = scan(&data, EXPLICIT_LE).unwrap();
        assert_eq!(summary.max_depth_seen, 2);
        assert_eq!(summary.elements, 3 + 1 + 1 + 1 + 3 + 3 + 2);
    }

    #[test]
    fn a_declared_4_gb_element_in_16_bytes_fails_fast() {
        let data = [header((0x7FE0, 0x0010), b"OB", 0xFFFF_FFF0), vec![0; 4]].concat();
        assert_eq!(data.len(), 16);
        let started = Instant::now();
        let err = scan(&data, EXPLICIT_LE).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(
                err,
                PrescanError::Truncated {
                    offset: 12,
                    needed: 0xFFFF_FFF0
                }
            ),
            "{err:?}"
        );
        let data = [implicit((0x7FE0, 0x0010), 0xFFFF_FFF0, &[]), vec![0; 8]].concat();
        assert!(matches!(
            scan(&data, IMPLICIT_LE),
            Err(PrescanError::Truncated { .. })
        ));
    }

    #[test]
    fn truncated_values_and_headers_fail() {
        let mut data = patient();
        data.extend(header((0x0010, 0x0030), b"DA", 8));
        data.extend(b"1970");
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::Truncated { needed: 8, .. })
        ));
        let data = &patient()[..patient().len() - 2];
        assert!(matches!(
            scan(data, EXPLICIT_LE),
            Err(PrescanError::Truncated { .. })
        ));
        let data = [patient(), vec![0x10, 0x00, 0x40]].concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::Truncated { .. })
        ));
    }

    #[test]
    fn a_reader_shorter_than_the_declared_length_is_truncated() {
        let data = patient();
        let err = prescan_dataset(
            &data[..],
            data.len() as u64 + 100,
            EXPLICIT_LE,
            &PrescanLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, PrescanError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn lengths_are_checked_against_the_enclosing_container() {
        // The element fits in the data but not in its 12-byte item.
        let item_body = element((0x0008, 0x0100), b"SH", b"T-1234");
        let mut inner = item_body.clone();
        inner.extend(element((0x0008, 0x0102), b"SH", b"SRT-"));
        let seq = [item(item_body.len() as u32 + 2), inner].concat();
        let data = [
            header((0x0008, 0x1115), b"SQ", seq.len() as u32),
            seq,
            patient(),
        ]
        .concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::Truncated { .. })
        ));

        // An item longer than its defined-length sequence.
        let seq = [item(14), element((0x0008, 0x0100), b"SH", b"T-1234")].concat();
        let data = [header((0x0008, 0x1115), b"SQ", 8), seq, patient()].concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::Truncated {
                offset: 20,
                needed: 14
            })
        ));
    }

    #[test]
    fn implicit_vr_recurses_into_dictionary_sequences() {
        // (0008,1115) is SQ in the dictionary: the overlong element inside its item is caught.
        let inner = implicit((0x0008, 0x1155), 40, b"1.2.3");
        let seq = [item(inner.len() as u32), inner].concat();
        let data = [
            implicit((0x0008, 0x1115), seq.len() as u32, &seq),
            implicit((0x0010, 0x0010), 8, b"Doe^John"),
            vec![0; 40],
        ]
        .concat();
        assert!(matches!(
            scan(&data, IMPLICIT_LE),
            Err(PrescanError::Truncated { .. })
        ));

        // Undefined length means a sequence in implicit VR, whatever the tag.
        let inner = implicit((0x0008, 0x1155), 6, b"1.2.3\0");
        let data = [
            implicit((0x0009, 0x1010), u32::MAX, &[]),
            item(u32::MAX),
            inner,
            item_end(),
            seq_end(),
            implicit((0x0010, 0x0010), 8, b"Doe^John"),
        ]
        .concat();
        let summary = scan(&data, IMPLICIT_LE).unwrap();
        assert_eq!(summary.elements, 3);
        assert_eq!(summary.max_depth_seen, 1);
    }

    /// Regression (fuzzing, `identifier` target): dicom-parser reads a binary value as whole
    /// values and leaves the remainder in the stream, where it becomes the next header. Here a
    /// 6-byte UL (0000,0000) left "Y\x08" to be read with the next element as a private creator
    /// (0859,0020) LO declaring 0xFFFF1032 bytes: a 4 GB allocation from a 96-byte C-FIND
    /// identifier that used to pass.
    #[test]
    fn values_that_are_not_whole_numbers_of_their_binary_vr_fail() {
        let found = [
            implicit((0x0008, 0x0005), 10, b"ISO_I\0\0\0\0\0"),
            implicit((0x0000, 0x0000), 6, b"STUDY\x08"),
            implicit((0x0020, 0x1032), u32::MAX, &[]),
            item(u32::MAX),
            implicit((0x0008, 0x0100), 4, b"CT* "),
            implicit((0x0008, 0x0102), 4, b"WARD"),
            item_end(),
            seq_end(),
            implicit((0x0020, 0x000D), 0, &[]),
        ]
        .concat();
        let err = scan(&found, IMPLICIT_LE).unwrap_err();
        assert!(
            matches!(
                err,
                PrescanError::PartialValue {
                    offset: 18,
                    length: 6,
                    size: 4,
                    ..
                }
            ),
            "{err:?}"
        );

        // Implicit VR takes the VR from the dictionary: Rows is US, Pixel Data OW.
        let rows = implicit((0x0028, 0x0010), 3, &[1, 0, 0]);
        assert!(matches!(
            scan(&rows, IMPLICIT_LE),
            Err(PrescanError::PartialValue { size: 2, .. })
        ));
        let pixels = implicit((0x7FE0, 0x0010), 5, &[0; 5]);
        assert!(matches!(
            scan(&pixels, IMPLICIT_LE),
            Err(PrescanError::PartialValue { size: 2, .. })
        ));
        // Explicit VR takes it from the header, whatever the dictionary says.
        for (vr, len, size) in [(b"US", 3, 2), (b"AT", 2, 4), (b"FD", 12, 8), (b"OW", 7, 2)] {
            let data = [patient(), element((0x0009, 0x1010), vr, &vec![0; len])].concat();
            let err = scan(&data, EXPLICIT_LE).unwrap_err();
            assert!(
                matches!(err, PrescanError::PartialValue { size: s, .. } if s == size),
                "{vr:?}: {err:?}"
            );
        }
        // Whole values, and the VRs read byte for byte, pass.
        let data = [
            element((0x0028, 0x0010), b"US", &[2, 0]),
            element((0x0009, 0x1011), b"FD", &[0; 16]),
            element((0x0009, 0x1012), b"OB", &[0; 3]),
            element((0x0009, 0x1013), b"UN", &[0; 5]),
            element((0x0010, 0x0010), b"PN", b"Doe^J"),
        ]
        .concat();
        scan(&data, EXPLICIT_LE).unwrap();
        scan(&implicit((0x0028, 0x0010), 2, &[2, 0]), IMPLICIT_LE).unwrap();

        // The basic offset table, the first item of encapsulated Pixel Data, is read as
        // 32-bit offsets; the fragments after it are bytes.
        let mut data = patient();
        data.extend(header((0x7FE0, 0x0010), b"OB", u32::MAX));
        data.extend(item(6));
        data.extend([0; 6]);
        data.extend(item(2));
        data.extend([0xFF, 0xD8]);
        data.extend(seq_end());
        let err = scan(&data, JPEG_BASELINE).unwrap_err();
        assert!(
            matches!(
                err,
                PrescanError::PartialValue {
                    size: 4,
                    length: 6,
                    ..
                }
            ),
            "{err:?}"
        );
        let data = [patient(), encapsulated(&[&[0xFF, 0xD8, 0xFF]]), seq_end()].concat();
        scan(&data, JPEG_BASELINE).unwrap();
    }

    #[test]
    fn explicit_big_endian_passes_and_checks_lengths() {
        let be = |tag: (u16, u16), vr: &[u8; 2], value: &[u8]| {
            let mut out = [tag.0.to_be_bytes(), tag.1.to_be_bytes()].concat();
            out.extend_from_slice(vr);
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value);
            out
        };
        let item_be = |len: u32| [&[0xFF, 0xFE, 0xE0, 0x00][..], &len.to_be_bytes()].concat();
        let inner = be((0x0008, 0x1155), b"UI", b"1.2.3\0");
        let data = [
            be((0x0008, 0x0060), b"CS", b"MR"),
            vec![0x00, 0x08, 0x11, 0x15, b'S', b'Q', 0, 0],
            (inner.len() as u32 + 8).to_be_bytes().to_vec(),
            item_be(inner.len() as u32),
            inner,
            be((0x0010, 0x0010), b"PN", b"Doe^Jane"),
        ]
        .concat();
        let summary = scan(&data, EXPLICIT_BE).unwrap();
        assert_eq!(summary.elements, 4);
        assert_eq!(summary.max_depth_seen, 1);
        // Read as little endian, the same bytes are garbage and must not pass.
        assert!(scan(&data, EXPLICIT_LE).is_err());
    }

    #[test]
    fn deep_nesting_fails_with_too_deep_without_exhausting_the_stack() {
        let depth = 10_000;
        let mut data = Vec::new();
        for _ in 0..depth {
            data.extend(header((0x0040, 0xA730), b"SQ", u32::MAX));
            data.extend(item(u32::MAX));
        }
        for _ in 0..depth {
            data.extend(item_end());
            data.extend(seq_end());
        }
        let err = scan(&data, EXPLICIT_LE).unwrap_err();
        assert!(
            matches!(err, PrescanError::TooDeep { max_depth: 32 }),
            "{err:?}"
        );

        // Without a limit the walk still uses the heap, not the call stack.
        let unlimited = PrescanLimits {
            max_depth: u32::MAX,
            ..PrescanLimits::default()
        };
        let summary =
            prescan_dataset(&data[..], data.len() as u64, EXPLICIT_LE, &unlimited).unwrap();
        assert_eq!(summary.max_depth_seen, depth);

        // Exactly at the limit is fine.
        let mut data = Vec::new();
        for _ in 0..32 {
            data.extend(header((0x0040, 0xA730), b"SQ", u32::MAX));
            data.extend(item(u32::MAX));
        }
        for _ in 0..32 {
            data.extend(item_end());
            data.extend(seq_end());
        }
        assert_eq!(scan(&data, EXPLICIT_LE).unwrap().max_depth_seen, 32);
    }

    #[test]
    fn missing_and_unbalanced_delimiters_fail() {
        // Sequence never closed: the data ends inside it.
        let data = [
            header((0x0040, 0xA730), b"SQ", u32::MAX),
            item(u32::MAX),
            patient(),
            item_end(),
        ]
        .concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::MissingDelimiter { .. })
        ));
        // Undefined-length item never closed inside a defined-length sequence.
        let seq = [item(u32::MAX), patient()].concat();
        let data = [
            header((0x0040, 0xA730), b"SQ", seq.len() as u32),
            seq,
            patient(),
        ]
        .concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::MissingDelimiter { .. })
        ));
        // Delimiters that close nothing.
        let data = [patient(), seq_end()].concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::UnexpectedDelimiter { .. })
        ));
        let data = [patient(), item_end()].concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::UnexpectedDelimiter { .. })
        ));
        let body = patient();
        let data = [
            header((0x0040, 0xA730), b"SQ", u32::MAX),
            item(body.len() as u32 + 8),
            body,
            item_end(),
            seq_end(),
        ]
        .concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::UnexpectedDelimiter { .. })
        ));
        // A sequence holding something other than items.
        let data = [
            header((0x0040, 0xA730), b"SQ", u32::MAX),
            patient(),
            seq_end(),
        ]
        .concat();
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::UnexpectedTag { .. })
        ));
    }

    #[test]
    fn items_outside_sequences_fail() {
        let data = [patient(), item(0)].concat();
        let err = scan(&data, EXPLICIT_LE).unwrap_err();
        assert!(
            matches!(err, PrescanError::ItemOutsideSequence { offset } if offset == patient().len() as u64),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_vr_fails() {
        let mut data = patient();
        data.extend([0x10, 0x00, 0x40, 0x00, b'Z', b'Z', 2, 0, b'F', b' ']);
        let err = scan(&data, EXPLICIT_LE).unwrap_err();
        assert!(
            matches!(
                err,
                PrescanError::InvalidVr {
                    code: [b'Z', b'Z'],
                    ..
                }
            ),
            "{err:?}"
        );
        let data = vec![0u8; 64];
        assert!(matches!(
            scan(&data, EXPLICIT_LE),
            Err(PrescanError::InvalidVr { .. })
        ));
    }

    #[test]
    fn undefined_length_is_refused_where_not_allowed() {
        for (tag, vr) in [((0x0042, 0x0011), b"OB"), ((0x0010, 0x4000), b"UT")] {
            let data = [header(tag, vr, u32::MAX), seq_end()].concat();
            assert!(
                matches!(
                    scan(&data, EXPLICIT_LE),
                    Err(PrescanError::UndefinedLength { .. })
                ),
                "{vr:?}"
            );
        }
    }

    fn encapsulated(fragments: &[&[u8]]) -> Vec<u8> {
        let mut out = header((0x7FE0, 0x0010), b"OB", u32::MAX);
        out.extend(item(0));
        for fragment in fragments {
            out.extend(item(fragment.len() as u32));
            out.extend_from_slice(fragment);
        }
        out
    }

    #[test]
    fn encapsulated_pixel_data_passes() {
        let data = [
            patient(),
            encapsulated(&[&[0xFF, 0xD8, 0xFF, 0xD9], &[1, 2, 3, 4, 5, 6]]),
            seq_end(),
        ]
        .concat();
        let summary = scan(&data, JPEG_BASELINE).unwrap();
        assert!(summary.has_pixel_data);
        assert_eq!(summary.elements, 4);
        assert_eq!(summary.max_depth_seen, 1);
        let data = [patient(), encapsulated(&[&[0xFF, 0xD8]]), seq_end()].concat();
        assert!(
            scan(&data, IMPLICIT_LE).is_err(),
            "implicit VR headers differ"
        );
    }

    #[test]
    fn malformed_encapsulated_pixel_data_fails() {
        // Missing sequence delimiter.
        let data = [patient(), encapsulated(&[&[0xFF, 0xD8]])].concat();
        assert!(matches!(
            scan(&data, JPEG_BASELINE),
            Err(PrescanError::MissingDelimiter { .. })
        ));
        // Fragment longer than the data.
        let data = [patient(), encapsulated(&[]), item(1 << 30), vec![0; 16]].concat();
        assert!(matches!(
            scan(&data, JPEG_BASELINE),
            Err(PrescanError::Truncated { .. })
        ));
        // Fragment of undefined length.
        let data = [patient(), encapsulated(&[]), item(u32::MAX), seq_end()].concat();
        assert!(matches!(
            scan(&data, JPEG_BASELINE),
            Err(PrescanError::UndefinedLength { .. })
        ));
        // Something other than a fragment inside.
        let data = [patient(), encapsulated(&[]), patient(), seq_end()].concat();
        assert!(matches!(
            scan(&data, JPEG_BASELINE),
            Err(PrescanError::UnexpectedTag { .. })
        ));
    }

    /// UN of undefined length is read in the data set's transfer syntax, as dicom-parser reads
    /// it (see `prescan_dataset`).
    #[test]
    fn undefined_length_un_is_read_as_dicom_parser_reads_it() {
        let explicit_content = [
            item(u32::MAX),
            element((0x0009, 0x1001), b"LO", b"private "),
            item_end(),
            seq_end(),
        ]
        .concat();
        let data = [
            header((0x0009, 0x0010), b"LO", 4),
            b"ACME".to_vec(),
            header((0x0009, 0x1010), b"UN", u32::MAX),
            explicit_content,
            patient(),
        ]
        .concat();
        assert_eq!(scan(&data, EXPLICIT_LE).unwrap().max_depth_seen, 1);

        // Valid implicit VR content whose length, 0x424F, reads as VR "OB" to an explicit VR
        // parser, which then takes the value's first bytes as a 2 GB length: dicom-object would
        // allocate that, so it must not pass.
        let len = u32::from_le_bytes([b'O', b'B', 0, 0]);
        let mut value = vec![0u8; len as usize];
        value[..4].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        let implicit_content = [
            item(u32::MAX),
            implicit((0x0009, 0x1001), len, &value),
            item_end(),
            seq_end(),
        ]
        .concat();
        let data = [
            header((0x0009, 0x1010), b"UN", u32::MAX),
            implicit_content,
            patient(),
        ]
        .concat();
        let err = scan(&data, EXPLICIT_LE).unwrap_err();
        assert!(matches!(err, PrescanError::Truncated { .. }), "{err:?}");
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn deflated_data_sets_pass() {
        let plain = [
            patient(),
            header((0x0040, 0xA730), b"SQ", u32::MAX),
            item(u32::MAX),
            patient(),
            item_end(),
            seq_end(),
        ]
        .concat();
        let summary = scan(&deflate(&plain), DEFLATED).unwrap();
        assert_eq!(summary.elements, 7);
        assert_eq!(summary.max_depth_seen, 1);

        // The inflated stream's end is the container end: a sequence left open there fails.
        let open = &plain[..plain.len() - 8];
        assert!(matches!(
            scan(&deflate(open), DEFLATED),
            Err(PrescanError::MissingDelimiter { .. })
        ));
        // An element running past the end of the inflated stream fails.
        let over = [
            patient(),
            header((0x0010, 0x4000), b"LT", 100),
            vec![b'x'; 10],
        ]
        .concat();
        assert!(matches!(
            scan(&deflate(&over), DEFLATED),
            Err(PrescanError::Truncated { .. })
        ));
        // A cut compressed stream fails, wherever the cut falls.
        let compressed = deflate(&plain);
        for cut in 1..compressed.len() {
            let part = &compressed[..compressed.len() - cut];
            assert!(scan(part, DEFLATED).is_err(), "cut {cut}");
        }
        // Corrupt compressed data fails rather than passing as an empty data set.
        let err = scan(&[0xFF; 64], DEFLATED).unwrap_err();
        assert!(matches!(err, PrescanError::Io(_)), "{err:?}");
        // An identifier inflating past a few MiB (a bomb of a few KiB) is refused as one, while
        // an object may legitimately be that large.
        let size = usize::try_from(MAX_IDENTIFIER_INFLATED).unwrap() + 1024;
        let bomb = [
            patient(),
            header((0x0009, 0x1001), b"OB", size as u32),
            vec![0; size],
        ]
        .concat();
        let compressed = deflate(&bomb);
        assert!(compressed.len() < 64 * 1024, "{}", compressed.len());
        let identifier = prescan_dataset(
            &compressed[..],
            compressed.len() as u64,
            DEFLATED,
            &PrescanLimits::identifier(),
        );
        assert!(
            matches!(identifier, Err(PrescanError::InflatedTooLarge { .. })),
            "{identifier:?}"
        );
        scan(&compressed, DEFLATED).unwrap();
    }

    #[test]
    fn deflate_bombs_are_capped() {
        let limits = PrescanLimits {
            max_inflated_bytes: 100 * 1024,
            ..PrescanLimits::default()
        };
        let run = |plain: &[u8]| {
            let compressed = deflate(plain);
            assert!(compressed.len() < 10 * 1024);
            prescan_dataset(&compressed[..], compressed.len() as u64, DEFLATED, &limits)
        };
        // One element declaring 1 MB and holding it.
        let big = [header((0x0042, 0x0011), b"OB", 1 << 20), vec![0; 1 << 20]].concat();
        let err = run(&big).unwrap_err();
        assert!(
            matches!(err, PrescanError::InflatedTooLarge { max: 102_400 }),
            "{err:?}"
        );
        // Many small elements adding up past the cap.
        let many: Vec<u8> = (0..20_000)
            .flat_map(|_| {
                element(
                    (0x0010, 0x4000),
                    b"LT",
                    b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                )
            })
            .collect();
        let err = run(&many).unwrap_err();
        assert!(
            matches!(err, PrescanError::InflatedTooLarge { .. }),
            "{err:?}"
        );
        // 1 MB of zeros is refused either way.
        assert!(run(&vec![0; 1 << 20]).is_err());
        // The same 1 MB element passes under a larger cap.
        let compressed = deflate(&big);
        let summary = prescan_dataset(
            &compressed[..],
            compressed.len() as u64,
            DEFLATED,
            &PrescanLimits::default(),
        )
        .unwrap();
        assert_eq!(summary.elements, 1);
    }

    #[test]
    fn unknown_transfer_syntax_fails() {
        assert!(matches!(
            scan(&patient(), "1.2.3.4.5"),
            Err(PrescanError::UnknownTransferSyntax(_))
        ));
    }
}
