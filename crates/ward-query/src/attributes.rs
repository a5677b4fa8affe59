//! Which level of the information model an attribute belongs to.

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use crate::Level;

/// The level of an attribute in the query/retrieve information models (PS3.4 C.6.1.1 and
/// C.6.2.1, plus the common attributes of each level's modules), or `None` for attributes Ward
/// does not place: those are treated as attributes of the query level and matched against the
/// representative instance's header copy.
pub fn attribute_level(tag: Tag) -> Option<Level> {
    let level = match tag {
        tags::PATIENT_NAME
        | tags::PATIENT_ID
        | tags::ISSUER_OF_PATIENT_ID
        | tags::PATIENT_BIRTH_DATE
        | tags::PATIENT_BIRTH_TIME
        | tags::PATIENT_SEX
        | tags::OTHER_PATIENT_I_DS_SEQUENCE
        | tags::OTHER_PATIENT_NAMES
        | tags::PATIENT_BIRTH_NAME
        | tags::PATIENT_COMMENTS
        | tags::NUMBER_OF_PATIENT_RELATED_STUDIES
        | tags::NUMBER_OF_PATIENT_RELATED_SERIES
        | tags::NUMBER_OF_PATIENT_RELATED_INSTANCES => Level::Patient,
        tags::STUDY_INSTANCE_UID
        | tags::STUDY_DATE
        | tags::STUDY_TIME
        | tags::ACCESSION_NUMBER
        | tags::ISSUER_OF_ACCESSION_NUMBER_SEQUENCE
        | tags::STUDY_ID
        | tags::STUDY_DESCRIPTION
        | tags::REFERRING_PHYSICIAN_NAME
        | tags::PROCEDURE_CODE_SEQUENCE
        | tags::NAME_OF_PHYSICIANS_READING_STUDY
        | tags::ADMITTING_DIAGNOSES_DESCRIPTION
        | tags::PATIENT_AGE
        | tags::PATIENT_SIZE
        | tags::PATIENT_WEIGHT
        | tags::ADDITIONAL_PATIENT_HISTORY
        | tags::MODALITIES_IN_STUDY
        | tags::SOP_CLASSES_IN_STUDY
        | tags::NUMBER_OF_STUDY_RELATED_SERIES
        | tags::NUMBER_OF_STUDY_RELATED_INSTANCES => Level::Study,
        tags::SERIES_INSTANCE_UID
        | tags::MODALITY
        | tags::SERIES_NUMBER
        | tags::SERIES_DESCRIPTION
        | tags::SERIES_DATE
        | tags::SERIES_TIME
        | tags::BODY_PART_EXAMINED
        | tags::LATERALITY
        | tags::PROTOCOL_NAME
        | tags::PERFORMED_PROCEDURE_STEP_START_DATE
        | tags::PERFORMED_PROCEDURE_STEP_START_TIME
        | tags::REQUEST_ATTRIBUTES_SEQUENCE
        | tags::NUMBER_OF_SERIES_RELATED_INSTANCES => Level::Series,
        tags::SOP_INSTANCE_UID
        | tags::SOP_CLASS_UID
        | tags::INSTANCE_NUMBER
        | tags::CONTENT_DATE
        | tags::CONTENT_TIME
        | tags::ACQUISITION_DATE
        | tags::ACQUISITION_TIME
        | tags::ACQUISITION_DATE_TIME
        | tags::ACQUISITION_NUMBER
        | tags::IMAGE_TYPE
        | tags::ROWS
        | tags::COLUMNS
        | tags::NUMBER_OF_FRAMES => Level::Image,
        _ => return None,
    };
    Some(level)
}

/// The "Number of … Related …" attributes: return keys only (PS3.4 C.6.1.1 gives them no
/// matching type).
pub(crate) fn is_count(tag: Tag) -> bool {
    matches!(
        tag,
        tags::NUMBER_OF_PATIENT_RELATED_STUDIES
            | tags::NUMBER_OF_PATIENT_RELATED_SERIES
            | tags::NUMBER_OF_PATIENT_RELATED_INSTANCES
            | tags::NUMBER_OF_STUDY_RELATED_SERIES
            | tags::NUMBER_OF_STUDY_RELATED_INSTANCES
            | tags::NUMBER_OF_SERIES_RELATED_INSTANCES
    )
}
