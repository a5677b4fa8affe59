//! DICOM Part 10 files (PS3.10 §7): the meta information Ward writes in front of every object it
//! keeps, and the bounded, checked reading of the meta information of a file it is handed.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use dicom_core::VR;
use ward_types::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, InvalidValue, Uid};

/// The largest meta group Ward reads. Real ones are a few hundred bytes; the bound keeps a
/// declared group length from sizing an allocation.
pub const MAX_META_GROUP_LEN: u32 = 64 * 1024;

const PREAMBLE_LEN: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";
/// Preamble, magic code and the 12-byte (0002,0000) element.
const FIXED_LEN: u64 = 144;

const META_GROUP: u16 = 0x0002;
/// (0002,0000), VR UL, length 4: all that may precede the group length's value.
const GROUP_LENGTH_HEADER: [u8; 8] = [0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00];

/// A Part 10 file opened for sending: the meta information read and checked, and where the data
/// set starts. The preamble's content is ignored (it may hold an executable; Ward never copies it).
#[derive(Debug, Clone)]
pub struct Part10Info {
    pub sop_class_uid: Uid,
    pub sop_instance_uid: Uid,
    pub transfer_syntax: Uid,
    /// Offset of the first byte after the meta group.
    pub dataset_offset: u64,
    pub file_len: u64,
}

/// Why the meta information of a file was refused. Offsets count from the start of the file.
#[derive(Debug, thiserror::Error)]
pub enum Part10Error {
    #[error("I/O error while reading the file meta information")]
    Io(#[source] io::Error),
    #[error("the file is too short for a preamble, \"DICM\" and a meta group")]
    TooShort,
    #[error("\"DICM\" does not follow the 128-byte preamble")]
    NotDicom,
    #[error("the meta group does not start with its group length (0002,0000) UL")]
    MissingGroupLength,
    #[error("the meta group declares {len} bytes; the limit is {MAX_META_GROUP_LEN}")]
    MetaTooLarge { len: u32 },
    #[error("the meta group declares {len} bytes but the file ends before")]
    Truncated { len: u32 },
    #[error("the meta group length (0002,0000) does not match the group's elements")]
    GroupLengthMismatch,
    #[error("malformed meta element at offset {offset}: {reason}")]
    Malformed { offset: u64, reason: &'static str },
    #[error("the meta group lacks {attribute}")]
    Missing { attribute: &'static str },
    #[error("{attribute} in the meta group is not a valid UID")]
    InvalidUid {
        attribute: &'static str,
        #[source]
        source: InvalidValue,
    },
}

/// Writes the 128-byte zero preamble, "DICM" and a File Meta Information group with a correct
/// (0002,0000) group length: version 00\01, the SOP class and instance, the transfer syntax and
/// Ward's implementation class UID and version name.
///
/// Returns the number of bytes written, which is the offset of the data set. Deterministic: the
/// same inputs give the same bytes.
pub fn write_part10_header<W: Write>(
    w: &mut W,
    sop_class: &Uid,
    sop_instance: &Uid,
    transfer_syntax: &Uid,
) -> io::Result<u64> {
    let mut group = Vec::with_capacity(256);
    put_element(&mut group, 0x0001, VR::OB, &[0x00, 0x01])?;
    put_element(&mut group, 0x0002, VR::UI, sop_class.as_str().as_bytes())?;
    put_element(&mut group, 0x0003, VR::UI, sop_instance.as_str().as_bytes())?;
    put_element(
        &mut group,
        0x0010,
        VR::UI,
        transfer_syntax.as_str().as_bytes(),
    )?;
    put_element(
        &mut group,
        0x0012,
        VR::UI,
        IMPLEMENTATION_CLASS_UID.as_bytes(),
    )?;
    put_element(
        &mut group,
        0x0013,
        VR::SH,
        IMPLEMENTATION_VERSION_NAME.as_bytes(),
    )?;
    let group_len = u32::try_from(group.len()).map_err(io::Error::other)?;

    let mut out = Vec::with_capacity(PREAMBLE_LEN + 16 + group.len());
    out.extend_from_slice(&[0; PREAMBLE_LEN]);
    out.extend_from_slice(MAGIC);
    put_element(&mut out, 0x0000, VR::UL, &group_len.to_le_bytes())?;
    out.extend_from_slice(&group);
    w.write_all(&out)?;
    u64::try_from(out.len()).map_err(io::Error::other)
}

/// Appends one explicit VR little endian meta element, padding the value to even length (UIDs
/// with NUL, text with space, as PS3.5 §6.2 asks).
fn put_element(buf: &mut Vec<u8>, element: u16, vr: VR, value: &[u8]) -> io::Result<()> {
    let odd = value.len() % 2 == 1;
    let padded = value.len() + usize::from(odd);
    buf.extend_from_slice(&META_GROUP.to_le_bytes());
    buf.extend_from_slice(&element.to_le_bytes());
    buf.extend_from_slice(vr.to_string().as_bytes());
    if vr == VR::OB {
        buf.extend_from_slice(&[0, 0]);
        let len = u32::try_from(padded).map_err(io::Error::other)?;
        buf.extend_from_slice(&len.to_le_bytes());
    } else {
        let len = u16::try_from(padded).map_err(io::Error::other)?;
        buf.extend_from_slice(&len.to_le_bytes());
    }
    buf.extend_from_slice(value);
    if odd {
        buf.push(if vr == VR::UI { 0 } else { b' ' });
    }
    Ok(())
}

/// Reads the meta group of the Part 10 file at `path` (see [`read_part10_info_from`]).
pub fn read_part10_info(path: &Path) -> Result<Part10Info, Part10Error> {
    let file = File::open(path).map_err(Part10Error::Io)?;
    let file_len = file.metadata().map_err(Part10Error::Io)?.len();
    read_part10_info_from(BufReader::new(file), file_len)
}

/// Reads the meta group of a Part 10 file from a reader positioned at the start of the file,
/// which is `file_len` bytes long.
///
/// Requires the 128-byte preamble and "DICM", a (0002,0000) group length of at most
/// [`MAX_META_GROUP_LEN`] that ends exactly on an element boundary with no element of another
/// group inside it, explicit VR little endian elements in ascending order, and valid Media
/// Storage SOP Class and Instance UIDs and Transfer Syntax UID. Everything dicom-object will
/// later read from the meta group has then been bounds-checked. A group length that stops short
/// leaves group 0002 elements in front of the data set, which [`prescan_dataset`] refuses.
///
/// Reads exactly `dataset_offset` bytes, so a reader passed by `&mut` is left at the first byte
/// of the data set.
///
/// [`prescan_dataset`]: crate::prescan_dataset
pub fn read_part10_info_from<R: Read>(mut r: R, file_len: u64) -> Result<Part10Info, Part10Error> {
    if file_len < FIXED_LEN {
        return Err(Part10Error::TooShort);
    }
    let mut fixed = [0u8; FIXED_LEN as usize];
    r.read_exact(&mut fixed).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Part10Error::TooShort,
        _ => Part10Error::Io(e),
    })?;
    let (magic, group_length) = fixed[PREAMBLE_LEN..].split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(Part10Error::NotDicom);
    }
    let (header, value) = group_length.split_at(GROUP_LENGTH_HEADER.len());
    if header != GROUP_LENGTH_HEADER {
        return Err(Part10Error::MissingGroupLength);
    }
    let group_len = value
        .try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| Part10Error::MissingGroupLength)?;
    if group_len > MAX_META_GROUP_LEN {
        return Err(Part10Error::MetaTooLarge { len: group_len });
    }
    let dataset_offset = FIXED_LEN + u64::from(group_len);
    if dataset_offset > file_len {
        return Err(Part10Error::Truncated { len: group_len });
    }

    // Bounded by MAX_META_GROUP_LEN above.
    let mut group = vec![0u8; group_len as usize];
    r.read_exact(&mut group).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Part10Error::Truncated { len: group_len },
        _ => Part10Error::Io(e),
    })?;
    let meta = parse_group(&group)?;

    let uid = |value: Option<&[u8]>, attribute| {
        let value = value.ok_or(Part10Error::Missing { attribute })?;
        std::str::from_utf8(value)
            .map_err(|_| InvalidValue::UidCharacter)
            .and_then(Uid::parse)
            .map_err(|source| Part10Error::InvalidUid { attribute, source })
    };
    Ok(Part10Info {
        sop_class_uid: uid(meta.sop_class, "MediaStorageSOPClassUID")?,
        sop_instance_uid: uid(meta.sop_instance, "MediaStorageSOPInstanceUID")?,
        transfer_syntax: uid(meta.transfer_syntax, "TransferSyntaxUID")?,
        dataset_offset,
        file_len,
    })
}

#[derive(Default)]
struct MetaValues<'a> {
    sop_class: Option<&'a [u8]>,
    sop_instance: Option<&'a [u8]>,
    transfer_syntax: Option<&'a [u8]>,
}

/// Walks the elements after (0002,0000), which must fill `group` exactly.
fn parse_group(group: &[u8]) -> Result<MetaValues<'_>, Part10Error> {
    let mut values = MetaValues::default();
    let mut at = 0usize;
    let mut previous: Option<u16> = None;
    while at < group.len() {
        let offset = FIXED_LEN.saturating_add(at as u64);
        let malformed = |reason| Part10Error::Malformed { offset, reason };
        let [g0, g1, e0, e1, v0, v1, l0, l1] =
            bytes_at::<8>(group, at).ok_or(Part10Error::GroupLengthMismatch)?;
        if u16::from_le_bytes([g0, g1]) != META_GROUP {
            return Err(Part10Error::GroupLengthMismatch);
        }
        let element = u16::from_le_bytes([e0, e1]);
        if previous.is_some_and(|p| p >= element) {
            return Err(malformed("elements are repeated or out of order"));
        }
        previous = Some(element);
        let vr = VR::from_binary([v0, v1]).ok_or(malformed("invalid VR"))?;
        let (value_at, len) = if crate::prescan::has_long_length(vr) {
            let len = bytes_at::<4>(group, at.saturating_add(8))
                .ok_or(Part10Error::GroupLengthMismatch)?;
            (at.saturating_add(12), u32::from_le_bytes(len))
        } else {
            (
                at.saturating_add(8),
                u32::from(u16::from_le_bytes([l0, l1])),
            )
        };
        if len == u32::MAX {
            return Err(malformed("undefined length"));
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| value_at.checked_add(len))
            .ok_or(Part10Error::GroupLengthMismatch)?;
        let value = group
            .get(value_at..end)
            .ok_or(Part10Error::GroupLengthMismatch)?;
        match element {
            0x0002 => values.sop_class = Some(value),
            0x0003 => values.sop_instance = Some(value),
            0x0010 => values.transfer_syntax = Some(value),
            _ => {}
        }
        at = end;
    }
    Ok(values)
}

fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}
