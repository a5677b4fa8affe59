//! Extraction of the attributes the index keeps from an instance's header.

use std::borrow::Cow;
use std::path::Path;

use dicom_core::header::Header as _;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use ward_types::{InstanceAttributes, InvalidValue, Uid};

#[allow(deprecated)] // retired, but still a transfer syntax Ward reads
const EXPLICIT_VR_BIG_ENDIAN: &str = dicom_dictionary_std::uids::EXPLICIT_VR_BIG_ENDIAN;

/// Why the header of a file could not be turned into index attributes.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("cannot read the header of the DICOM file")]
    Read(#[source] Box<dicom_object::ReadError>),
    #[error("{attribute} is not a valid UID")]
    InvalidUid {
        attribute: &'static str,
        #[source]
        source: InvalidValue,
    },
    #[error("{attribute} does not hold a value of the expected kind")]
    InvalidValue { attribute: &'static str },
    #[error("cannot encode the header copy")]
    Copy(#[source] Box<dicom_object::WriteError>),
}

/// Largest value, in bytes, of a primitive element kept in a header copy. Longer values (LUTs,
/// overlays, private blobs) are never query keys worth answering from a copy.
pub const HEADER_COPY_MAX_VALUE: usize = 1024;
/// Largest header copy, in bytes. Sequences are kept while they fit.
pub const HEADER_COPY_MAX_LEN: usize = 64 * 1024;

/// The Specific Character Set element every header copy starts with, as encoded: tag, VR,
/// length and "ISO_IR 192".
const COPY_CHARSET_LEN: usize = 8 + 10;

/// Reads the header (everything before Pixel Data) of a Part 10 file and extracts the attributes
/// the index keeps, decoded to UTF-8 with the data set's Specific Character Set and trimmed of
/// padding spaces and NULs; absent or empty values are `None`.
///
/// The file must ALREADY have passed [`prescan_part10_file`](crate::prescan_part10_file) (or
/// [`read_part10_info`](crate::read_part10_info) and
/// [`prescan_dataset`](crate::prescan_dataset)): dicom-object sizes allocations from declared
/// lengths. A present but invalid UID is an error, not `None`, because the index keys on them.
pub fn read_header(path: &Path) -> Result<InstanceAttributes, HeaderError> {
    attributes(&open_header(path)?)
}

/// [`read_header`], and a copy of the header for answering queries on attributes the index has
/// no column for: the top-level elements before Pixel Data, re-encoded as explicit VR little
/// endian in UTF-8 (the copy starts with Specific Character Set "ISO_IR 192"), without group
/// lengths, without elements whose encoding exceeds [`HEADER_COPY_MAX_VALUE`] bytes of value
/// (sequences excepted) and without what no longer fits in [`HEADER_COPY_MAX_LEN`] bytes.
/// Elements that cannot be re-encoded are left out.
///
/// The same precondition as [`read_header`] applies: the file must have passed the pre-scan.
pub fn read_header_with_copy(path: &Path) -> Result<(InstanceAttributes, Vec<u8>), HeaderError> {
    let obj = open_header(path)?;
    Ok((attributes(&obj)?, header_copy(&obj)?))
}

/// [`read_header_with_copy`] of a Part 10 object (preamble first) read from `reader`.
pub fn read_header_with_copy_from<R: std::io::Read>(
    reader: R,
) -> Result<(InstanceAttributes, Vec<u8>), HeaderError> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(reader)
        .map_err(|e| HeaderError::Read(Box::new(e)))?;
    Ok((attributes(&obj)?, header_copy(&obj)?))
}

/// Reads a Part 10 object (preamble first) from `reader` up to, and without, Pixel Data: the
/// metadata WADO-RS serves. The same precondition as [`read_header`] applies: the data set must
/// have passed the pre-scan.
pub fn read_metadata<R: std::io::Read>(reader: R) -> Result<InMemDicomObject, HeaderError> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(reader)
        .map(|obj| obj.into_inner())
        .map_err(|e| HeaderError::Read(Box::new(e)))
}

fn open_header(path: &Path) -> Result<DefaultDicomObject, HeaderError> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| HeaderError::Read(Box::new(e)))
}

fn utf8_charset() -> InMemElement {
    DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    )
}

/// How many bytes `element` takes in a UTF-8 explicit VR little endian copy, or `None` if it
/// cannot be encoded there (a value the UTF-8 codec or the writer refuses).
fn copy_len(element: &InMemElement) -> Option<usize> {
    let mut alone = InMemDicomObject::new_empty();
    alone.put(utf8_charset());
    alone.put(element.clone());
    let mut out = Vec::new();
    alone
        .write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .ok()?;
    out.len().checked_sub(COPY_CHARSET_LEN)
}

/// The length of an explicit VR little endian element header (PS3.5 7.1.2): 12 bytes for the
/// VRs with a 32-bit length, 8 for the others.
fn element_header_len(vr: VR) -> usize {
    match vr {
        VR::OB
        | VR::OD
        | VR::OF
        | VR::OL
        | VR::OV
        | VR::OW
        | VR::SQ
        | VR::SV
        | VR::UC
        | VR::UN
        | VR::UR
        | VR::UT
        | VR::UV => 12,
        _ => 8,
    }
}

/// How much longer a value can get when re-encoded as UTF-8 (a two-byte character set's
/// character can take three bytes), so that the pre-check before measuring never skips an
/// element that would fit.
const MAX_EXPANSION: usize = 3;

/// An element's size as held, without encoding it: primitive values' byte lengths, summed
/// through sequences, saturating.
fn rough_len(element: &InMemElement) -> usize {
    match element.value() {
        Value::Primitive(value) => value.calculate_byte_len(),
        Value::Sequence(seq) => seq
            .items()
            .iter()
            .flat_map(|item| item.iter())
            .fold(0usize, |sum, e| {
                sum.saturating_add(rough_len(e)).saturating_add(12)
            }),
        Value::PixelSequence(_) => usize::MAX,
    }
}

fn header_copy(obj: &DefaultDicomObject) -> Result<Vec<u8>, HeaderError> {
    let mut copy = InMemDicomObject::new_empty();
    // Text was decoded with the file's character set; the copy re-encodes all of it as UTF-8,
    // so readers never need the original character set.
    copy.put(utf8_charset());
    let mut budget = HEADER_COPY_MAX_LEN - COPY_CHARSET_LEN;
    for element in obj.iter() {
        let tag = element.tag();
        if tag.group() <= 0x0002
            || tag.element() == 0
            || tag == tags::SPECIFIC_CHARACTER_SET
            || tag >= tags::PIXEL_DATA
        {
            continue;
        }
        // Measuring an element for the copy clones and encodes it: one that cannot fit is
        // skipped before that, so a large private element costs nothing here.
        let fits = match element.value() {
            Value::Primitive(value) => {
                value.calculate_byte_len() <= MAX_EXPANSION * HEADER_COPY_MAX_VALUE
            }
            Value::Sequence(_) => rough_len(element) <= MAX_EXPANSION * budget,
            Value::PixelSequence(_) => false,
        };
        if !fits {
            continue;
        }
        let Some(len) = copy_len(element) else {
            continue;
        };
        let too_long = match element.value() {
            Value::Primitive(_) => len > HEADER_COPY_MAX_VALUE + element_header_len(element.vr()),
            Value::Sequence(_) => false,
            Value::PixelSequence(_) => true,
        };
        if too_long || len > budget {
            continue;
        }
        budget -= len;
        copy.put(element.clone());
    }
    let mut out = Vec::new();
    copy.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| HeaderError::Copy(Box::new(e)))?;
    Ok(out)
}

fn attributes(obj: &DefaultDicomObject) -> Result<InstanceAttributes, HeaderError> {
    let header = Header::new(obj)?;
    Ok(InstanceAttributes {
        specific_character_set: header
            .text(tags::SPECIFIC_CHARACTER_SET, "SpecificCharacterSet")?,
        patient_id: header.text(tags::PATIENT_ID, "PatientID")?,
        issuer_of_patient_id: header.text(tags::ISSUER_OF_PATIENT_ID, "IssuerOfPatientID")?,
        patient_name: header.text(tags::PATIENT_NAME, "PatientName")?,
        patient_birth_date: header.text(tags::PATIENT_BIRTH_DATE, "PatientBirthDate")?,
        patient_sex: header.text(tags::PATIENT_SEX, "PatientSex")?,
        study_instance_uid: header.uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        study_date: header.text(tags::STUDY_DATE, "StudyDate")?,
        study_time: header.text(tags::STUDY_TIME, "StudyTime")?,
        accession_number: header.text(tags::ACCESSION_NUMBER, "AccessionNumber")?,
        study_id: header.text(tags::STUDY_ID, "StudyID")?,
        study_description: header.text(tags::STUDY_DESCRIPTION, "StudyDescription")?,
        referring_physician_name: header
            .text(tags::REFERRING_PHYSICIAN_NAME, "ReferringPhysicianName")?,
        series_instance_uid: header.uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        modality: header.text(tags::MODALITY, "Modality")?,
        series_number: header.text(tags::SERIES_NUMBER, "SeriesNumber")?,
        series_description: header.text(tags::SERIES_DESCRIPTION, "SeriesDescription")?,
        series_date: header.text(tags::SERIES_DATE, "SeriesDate")?,
        series_time: header.text(tags::SERIES_TIME, "SeriesTime")?,
        body_part_examined: header.text(tags::BODY_PART_EXAMINED, "BodyPartExamined")?,
        sop_class_uid: header.uid(tags::SOP_CLASS_UID, "SOPClassUID")?,
        sop_instance_uid: header.uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        instance_number: header.text(tags::INSTANCE_NUMBER, "InstanceNumber")?,
        content_date: header.text(tags::CONTENT_DATE, "ContentDate")?,
        content_time: header.text(tags::CONTENT_TIME, "ContentTime")?,
        rows: header.u16(tags::ROWS, "Rows")?,
        columns: header.u16(tags::COLUMNS, "Columns")?,
        number_of_frames: header.text(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?,
    })
}

struct Header<'a> {
    obj: &'a DefaultDicomObject,
    /// For values stored as UN, which dicom-object leaves undecoded.
    charset: SpecificCharacterSet,
    big_endian: bool,
}

impl<'a> Header<'a> {
    fn new(obj: &'a DefaultDicomObject) -> Result<Self, HeaderError> {
        let mut header = Header {
            obj,
            charset: SpecificCharacterSet::default(),
            big_endian: obj.meta().transfer_syntax() == EXPLICIT_VR_BIG_ENDIAN,
        };
        // Only the first value matters for UN values: code extensions (ISO 2022) are not
        // supported there, and an unknown term falls back to the default repertoire.
        let charset = header.text(tags::SPECIFIC_CHARACTER_SET, "SpecificCharacterSet")?;
        if let Some(cs) = charset
            .as_deref()
            .and_then(|cs| cs.split('\\').next())
            .and_then(|term| SpecificCharacterSet::from_code(term.trim()))
        {
            header.charset = cs;
        }
        Ok(header)
    }

    /// The value as text (multiple values joined by a backslash), or `None` when absent or empty.
    fn text(&self, tag: Tag, attribute: &'static str) -> Result<Option<String>, HeaderError> {
        let Some(element) = self.obj.get(tag) else {
            return Ok(None);
        };
        let invalid = HeaderError::InvalidValue { attribute };
        // A writer that did not know the attribute sends it as UN: its bytes are still text in
        // the data set's character set.
        let value = if element.vr() == VR::UN {
            let bytes = element.to_bytes().map_err(|_| invalid)?;
            match self.charset.decode(&bytes) {
                Ok(text) => Cow::Owned(text),
                Err(_) => return Err(HeaderError::InvalidValue { attribute }),
            }
        } else {
            element.to_str().map_err(|_| invalid)?
        };
        let value = value.trim_matches([' ', '\0']);
        Ok((!value.is_empty()).then(|| value.to_owned()))
    }

    fn uid(&self, tag: Tag, attribute: &'static str) -> Result<Option<Uid>, HeaderError> {
        self.text(tag, attribute)?
            .map(|value| {
                Uid::parse(&value).map_err(|source| HeaderError::InvalidUid { attribute, source })
            })
            .transpose()
    }

    fn u16(&self, tag: Tag, attribute: &'static str) -> Result<Option<u16>, HeaderError> {
        let invalid = || HeaderError::InvalidValue { attribute };
        match self.obj.get(tag) {
            None => Ok(None),
            Some(element) if element.vr() == VR::UN => {
                let bytes = element.to_bytes().map_err(|_| invalid())?;
                match <[u8; 2]>::try_from(bytes.as_ref()) {
                    Ok(b) if self.big_endian => Ok(Some(u16::from_be_bytes(b))),
                    Ok(b) => Ok(Some(u16::from_le_bytes(b))),
                    Err(_) if bytes.is_empty() => Ok(None),
                    Err(_) => Err(invalid()),
                }
            }
            Some(_) => self
                .text(tag, attribute)?
                .map(|value| value.parse().map_err(|_| invalid()))
                .transpose(),
        }
    }
}
