//! The shared matching corpus and its expected answers.
//!
//! Twenty instances across four patients and six studies, with chosen names (one non-ASCII),
//! dates, times, modalities, accession numbers, procedure codes and acquisition date-times; and a
//! table of queries, one or more per PS3.4 C.2.2.2 rule, level and model, each with the exact set
//! of entities it must match. Every index backend and every query front end (C-FIND over the
//! network, QIDO-RS) runs the same table, so they all agree on what matches.
//!
//! Built only for tests (feature `conformance`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::{Level, QueryModel};

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const PET_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.128";
pub const BASIC_TEXT_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.11";

/// One instance of the corpus, with the attributes of its patient, study and series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusInstance {
    pub patient_id: &'static str,
    pub patient_name: &'static str,
    pub patient_birth_date: &'static str,
    pub patient_sex: &'static str,
    pub study_instance_uid: &'static str,
    pub study_date: &'static str,
    pub study_time: &'static str,
    pub accession_number: &'static str,
    pub study_description: &'static str,
    pub referring_physician_name: &'static str,
    /// Code Value of the one item of Procedure Code Sequence (coding scheme `WARD`).
    pub procedure_code: &'static str,
    pub series_instance_uid: &'static str,
    pub modality: &'static str,
    pub series_number: &'static str,
    pub series_description: &'static str,
    pub sop_class_uid: &'static str,
    pub sop_instance_uid: &'static str,
    pub instance_number: &'static str,
    /// Acquisition DateTime (DT): an attribute no index keeps a column for.
    pub acquisition_date_time: &'static str,
}

type PatientRow = (&'static str, &'static str, &'static str, &'static str);
/// UID, patient, date, time, accession number, description, referring physician, procedure code.
type StudyRow = (
    &'static str,
    usize,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
/// UID, study, modality, number, description, instances (number, acquisition date-time).
type SeriesRow = (
    &'static str,
    usize,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PATIENTS: [PatientRow; 4] = [
    ("PAT-001", "Doe^Jane", "19700101", "F"),
    ("PAT-002", "Doe^John", "19651231", "M"),
    ("PAT-003", "Müller^Jürgen", "19801115", "M"),
    ("PAT-004", "Smith^Anna", "20010704", "F"),
];

const STUDIES: [StudyRow; 6] = [
    (
        "1.2.3.1",
        0,
        "20240115",
        "083000",
        "ACC-1001",
        "CT CHEST",
        "House^Gregory",
        "CTCH",
    ),
    (
        "1.2.3.2",
        0,
        "20240220",
        "141500.25",
        "ACC-1002",
        "MR BRAIN",
        "Wilson^James",
        "MRBR",
    ),
    (
        "1.2.3.3",
        1,
        "20231231",
        "235959",
        "ACC-2001",
        "CT ABDOMEN",
        "Cuddy^Lisa",
        "CTAB",
    ),
    (
        "1.2.3.4",
        2,
        "20240115",
        "1200",
        "ACC-3001",
        "XR HAND",
        "house^gregory",
        "XRHA",
    ),
    (
        "1.2.3.5",
        2,
        "20240301",
        "07",
        "ACC-3002",
        "CT HEAD",
        "Chase^Robert",
        "CTHD",
    ),
    (
        "1.2.3.6",
        3,
        "20240601",
        "160000",
        "ACC-4001",
        "MR KNEE",
        "Foreman^Eric",
        "MRKN",
    ),
];

const SERIES: [SeriesRow; 9] = [
    (
        "1.2.3.1.1",
        0,
        "CT",
        "1",
        "AXIAL",
        &[
            ("1", "20240115083100"),
            ("2", "20240115083105"),
            ("3", "20240115083110"),
        ],
    ),
    (
        "1.2.3.1.2",
        0,
        "SR",
        "2",
        "REPORT",
        &[("1", "20240115090000")],
    ),
    (
        "1.2.3.2.1",
        1,
        "MR",
        "1",
        "T1",
        &[
            ("1", "20240220141501"),
            ("2", "20240220141530.5"),
            ("3", "20240220141610+0100"),
            ("4", "20240220141700"),
        ],
    ),
    (
        "1.2.3.3.1",
        2,
        "CT",
        "1",
        "PORTAL",
        &[("1", "20231231235959"), ("2", "20240101000001")],
    ),
    (
        "1.2.3.3.2",
        2,
        "PT",
        "2",
        "PET",
        &[("1", "20240101000100"), ("2", "20240101000200")],
    ),
    (
        "1.2.3.4.1",
        3,
        "CR",
        "1",
        "PA",
        &[("1", "20240115120100"), ("2", "20240115120200")],
    ),
    (
        "1.2.3.5.1",
        4,
        "CT",
        "1",
        "HEAD",
        &[
            ("1", "20240301070100"),
            ("2", "20240301070200"),
            ("3", "20240301070300"),
        ],
    ),
    (
        "1.2.3.6.1",
        5,
        "MR",
        "1",
        "SAG PD",
        &[("1", "20240601160100"), ("2", "20240601160200")],
    ),
    (
        "1.2.3.6.2",
        5,
        "MR",
        "2",
        "COR T2",
        &[("1", "20240601161000")],
    ),
];

/// The instance UIDs are their series UID with the instance number appended.
const INSTANCE_UIDS: [&str; 20] = [
    "1.2.3.1.1.1",
    "1.2.3.1.1.2",
    "1.2.3.1.1.3",
    "1.2.3.1.2.1",
    "1.2.3.2.1.1",
    "1.2.3.2.1.2",
    "1.2.3.2.1.3",
    "1.2.3.2.1.4",
    "1.2.3.3.1.1",
    "1.2.3.3.1.2",
    "1.2.3.3.2.1",
    "1.2.3.3.2.2",
    "1.2.3.4.1.1",
    "1.2.3.4.1.2",
    "1.2.3.5.1.1",
    "1.2.3.5.1.2",
    "1.2.3.5.1.3",
    "1.2.3.6.1.1",
    "1.2.3.6.1.2",
    "1.2.3.6.2.1",
];

fn sop_class(modality: &str) -> &'static str {
    match modality {
        "CT" => CT_IMAGE_STORAGE,
        "MR" => MR_IMAGE_STORAGE,
        "CR" => CR_IMAGE_STORAGE,
        "PT" => PET_IMAGE_STORAGE,
        _ => BASIC_TEXT_SR_STORAGE,
    }
}

/// The corpus, in insertion order (series by series).
pub fn corpus() -> Vec<CorpusInstance> {
    let mut uids = INSTANCE_UIDS.iter();
    let mut out = Vec::new();
    for (series_uid, study, modality, series_number, series_description, instances) in SERIES {
        let (study_uid, patient, date, time, accession, description, referring, code) =
            STUDIES[study];
        let (patient_id, name, birth, sex) = PATIENTS[patient];
        for &(number, acquired) in instances {
            let sop_uid = uids.next().expect("one UID per instance");
            debug_assert_eq!(*sop_uid, format!("{series_uid}.{number}"));
            out.push(CorpusInstance {
                patient_id,
                patient_name: name,
                patient_birth_date: birth,
                patient_sex: sex,
                study_instance_uid: study_uid,
                study_date: date,
                study_time: time,
                accession_number: accession,
                study_description: description,
                referring_physician_name: referring,
                procedure_code: code,
                series_instance_uid: series_uid,
                modality,
                series_number,
                series_description,
                sop_class_uid: sop_class(modality),
                sop_instance_uid: sop_uid,
                instance_number: number,
                acquisition_date_time: acquired,
            });
        }
    }
    out
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn code_item(value: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, value);
    put(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, "WARD");
    put(&mut item, tags::CODE_MEANING, VR::LO, "Ward test procedure");
    item
}

fn encode(obj: &InMemDicomObject, ts_uid: &str) -> Vec<u8> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .expect("known transfer syntax");
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts)
        .expect("the corpus encodes");
    out
}

impl CorpusInstance {
    /// The instance as a data set (UTF-8, a 2×2 image unless it is a report).
    pub fn dataset(&self) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let o = &mut obj;
        put(o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        put(o, tags::SOP_CLASS_UID, VR::UI, self.sop_class_uid);
        put(o, tags::SOP_INSTANCE_UID, VR::UI, self.sop_instance_uid);
        put(o, tags::STUDY_DATE, VR::DA, self.study_date);
        put(o, tags::STUDY_TIME, VR::TM, self.study_time);
        put(
            o,
            tags::ACQUISITION_DATE_TIME,
            VR::DT,
            self.acquisition_date_time,
        );
        put(o, tags::ACCESSION_NUMBER, VR::SH, self.accession_number);
        put(o, tags::MODALITY, VR::CS, self.modality);
        put(
            o,
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            self.referring_physician_name,
        );
        put(o, tags::STUDY_DESCRIPTION, VR::LO, self.study_description);
        o.put(DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![code_item(self.procedure_code)]),
        ));
        put(o, tags::SERIES_DESCRIPTION, VR::LO, self.series_description);
        put(o, tags::PATIENT_NAME, VR::PN, self.patient_name);
        put(o, tags::PATIENT_ID, VR::LO, self.patient_id);
        put(o, tags::PATIENT_BIRTH_DATE, VR::DA, self.patient_birth_date);
        put(o, tags::PATIENT_SEX, VR::CS, self.patient_sex);
        put(o, tags::STUDY_INSTANCE_UID, VR::UI, self.study_instance_uid);
        put(
            o,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            self.series_instance_uid,
        );
        put(o, tags::STUDY_ID, VR::SH, self.procedure_code);
        put(o, tags::SERIES_NUMBER, VR::IS, self.series_number);
        put(o, tags::INSTANCE_NUMBER, VR::IS, self.instance_number);
        if self.sop_class_uid != BASIC_TEXT_SR_STORAGE {
            put(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
            for (tag, v) in [
                (tags::SAMPLES_PER_PIXEL, 1u16),
                (tags::ROWS, 2),
                (tags::COLUMNS, 2),
                (tags::BITS_ALLOCATED, 16),
                (tags::BITS_STORED, 12),
                (tags::HIGH_BIT, 11),
                (tags::PIXEL_REPRESENTATION, 0),
            ] {
                o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
            }
            o.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(vec![0u8; 8]),
            ));
        }
        obj
    }

    /// The data set encoded in transfer syntax `ts_uid` (no preamble, no meta group).
    pub fn dataset_bytes(&self, ts_uid: &str) -> Vec<u8> {
        encode(&self.dataset(), ts_uid)
    }
}

/// One key of a query in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseKey {
    /// A key with its value as an SCU would write it ("" for universal).
    Value(Tag, VR, &'static str),
    /// A sequence key with one item holding these keys.
    Item(Tag, Vec<(Tag, VR, &'static str)>),
}

/// One row of the matching table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The rule the row exercises.
    pub name: &'static str,
    pub model: QueryModel,
    pub level: Level,
    pub keys: Vec<CaseKey>,
    /// The values of the level's unique key ([`Level::unique_key`]: Patient ID at PATIENT
    /// level, the UID otherwise) of exactly the matching entities, in any order.
    pub expected: Vec<&'static str>,
}

impl Case {
    /// The identifier an SCU would send: Specific Character Set ISO_IR 192, the level, the
    /// keys, and the level's unique key as a return key if the row does not match on it.
    pub fn identifier(&self) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        put(
            &mut obj,
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            self.level.as_str(),
        );
        let unique = self.level.unique_key();
        let vr = if self.level == Level::Patient {
            VR::LO
        } else {
            VR::UI
        };
        put(&mut obj, unique, vr, "");
        for key in &self.keys {
            match key {
                CaseKey::Value(tag, vr, value) => put(&mut obj, *tag, *vr, value),
                CaseKey::Item(tag, item_keys) => {
                    let mut item = InMemDicomObject::new_empty();
                    for (tag, vr, value) in item_keys {
                        put(&mut item, *tag, *vr, value);
                    }
                    obj.put(DataElement::new(
                        *tag,
                        VR::SQ,
                        DataSetSequence::from(vec![item]),
                    ));
                }
            }
        }
        obj
    }

    /// [`identifier`](Case::identifier) encoded in transfer syntax `ts_uid`.
    pub fn encode(&self, ts_uid: &str) -> Vec<u8> {
        encode(&self.identifier(), ts_uid)
    }
}

fn case(
    name: &'static str,
    model: QueryModel,
    level: Level,
    keys: Vec<CaseKey>,
    expected: &[&'static str],
) -> Case {
    Case {
        name,
        model,
        level,
        keys,
        expected: expected.to_vec(),
    }
}

/// The matching table.
pub fn cases() -> Vec<Case> {
    use CaseKey::{Item, Value};
    use Level::{Image, Patient, Series, Study};
    use QueryModel::{PatientRoot as PR, StudyRoot as SR};
    let all_patients = ["PAT-001", "PAT-002", "PAT-003", "PAT-004"];
    let all_studies = [
        "1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4", "1.2.3.5", "1.2.3.6",
    ];
    vec![
        // Patient level, patient root.
        case(
            "single value",
            PR,
            Patient,
            vec![Value(tags::PATIENT_ID, VR::LO, "PAT-002")],
            &["PAT-002"],
        ),
        case(
            "single value matching nothing",
            PR,
            Patient,
            vec![Value(tags::PATIENT_ID, VR::LO, "PAT-999")],
            &[],
        ),
        case(
            "universal",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "")],
            &all_patients,
        ),
        case(
            "wildcard * alone is universal",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "*")],
            &all_patients,
        ),
        case(
            "wildcard * prefix",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "Doe*")],
            &["PAT-001", "PAT-002"],
        ),
        case(
            "wildcard ?",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "Doe^Jo?n")],
            &["PAT-002"],
        ),
        case(
            "wildcards ? and * together",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "?m*th^*")],
            &["PAT-004"],
        ),
        case(
            "PN single value is case-insensitive",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "DOE^JANE")],
            &["PAT-001"],
        ),
        case(
            "PN wildcard is case-insensitive beyond ASCII",
            PR,
            Patient,
            vec![Value(tags::PATIENT_NAME, VR::PN, "müller*")],
            &["PAT-003"],
        ),
        case(
            "single value CS",
            PR,
            Patient,
            vec![Value(tags::PATIENT_SEX, VR::CS, "F")],
            &["PAT-001", "PAT-004"],
        ),
        case(
            "DA range closed (patient birth date)",
            PR,
            Patient,
            vec![Value(tags::PATIENT_BIRTH_DATE, VR::DA, "19650101-19751231")],
            &["PAT-001", "PAT-002"],
        ),
        // Study level.
        case(
            "universal at study level",
            SR,
            Study,
            vec![Value(tags::STUDY_DATE, VR::DA, "")],
            &all_studies,
        ),
        case(
            "DA single value",
            SR,
            Study,
            vec![Value(tags::STUDY_DATE, VR::DA, "20240115")],
            &["1.2.3.1", "1.2.3.4"],
        ),
        case(
            "DA range closed",
            SR,
            Study,
            vec![Value(tags::STUDY_DATE, VR::DA, "20240101-20240229")],
            &["1.2.3.1", "1.2.3.2", "1.2.3.4"],
        ),
        case(
            "DA range open start",
            SR,
            Study,
            vec![Value(tags::STUDY_DATE, VR::DA, "-20231231")],
            &["1.2.3.3"],
        ),
        case(
            "DA range open end",
            SR,
            Study,
            vec![Value(tags::STUDY_DATE, VR::DA, "20240301-")],
            &["1.2.3.5", "1.2.3.6"],
        ),
        case(
            "TM range closed, stored times of every precision",
            SR,
            Study,
            vec![Value(tags::STUDY_TIME, VR::TM, "0800-1200")],
            &["1.2.3.1", "1.2.3.4"],
        ),
        case(
            "TM range open end with a fraction",
            SR,
            Study,
            vec![Value(tags::STUDY_TIME, VR::TM, "141500.1-")],
            &["1.2.3.2", "1.2.3.3", "1.2.3.6"],
        ),
        case(
            "TM single value of partial precision",
            SR,
            Study,
            vec![Value(tags::STUDY_TIME, VR::TM, "1415")],
            &["1.2.3.2"],
        ),
        case(
            "single value SH",
            SR,
            Study,
            vec![Value(tags::ACCESSION_NUMBER, VR::SH, "ACC-3001")],
            &["1.2.3.4"],
        ),
        case(
            "list of UIDs",
            SR,
            Study,
            vec![Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1\\1.2.3.3")],
            &["1.2.3.1", "1.2.3.3"],
        ),
        case(
            "wildcard LO",
            SR,
            Study,
            vec![Value(tags::STUDY_DESCRIPTION, VR::LO, "CT*")],
            &["1.2.3.1", "1.2.3.3", "1.2.3.5"],
        ),
        case(
            "wildcard outside PN is case-sensitive",
            SR,
            Study,
            vec![Value(tags::STUDY_DESCRIPTION, VR::LO, "ct*")],
            &[],
        ),
        case(
            "PN case-insensitive on a study attribute",
            SR,
            Study,
            vec![Value(
                tags::REFERRING_PHYSICIAN_NAME,
                VR::PN,
                "HOUSE^GREGORY",
            )],
            &["1.2.3.1", "1.2.3.4"],
        ),
        case(
            "patient attribute at study level (study root)",
            SR,
            Study,
            vec![Value(tags::PATIENT_ID, VR::LO, "PAT-004")],
            &["1.2.3.6"],
        ),
        case(
            "ModalitiesInStudy",
            SR,
            Study,
            vec![Value(tags::MODALITIES_IN_STUDY, VR::CS, "PT")],
            &["1.2.3.3"],
        ),
        case(
            "ModalitiesInStudy with several values matches any",
            SR,
            Study,
            vec![Value(tags::MODALITIES_IN_STUDY, VR::CS, "PT\\MR")],
            &["1.2.3.2", "1.2.3.3", "1.2.3.6"],
        ),
        case(
            "SOPClassesInStudy",
            SR,
            Study,
            vec![Value(
                tags::SOP_CLASSES_IN_STUDY,
                VR::UI,
                BASIC_TEXT_SR_STORAGE,
            )],
            &["1.2.3.1"],
        ),
        case(
            "sequence item, single value",
            SR,
            Study,
            vec![Item(
                tags::PROCEDURE_CODE_SEQUENCE,
                vec![(tags::CODE_VALUE, VR::SH, "MRBR")],
            )],
            &["1.2.3.2"],
        ),
        case(
            "sequence item, wildcard and a second key",
            SR,
            Study,
            vec![Item(
                tags::PROCEDURE_CODE_SEQUENCE,
                vec![
                    (tags::CODE_VALUE, VR::SH, "CT*"),
                    (tags::CODING_SCHEME_DESIGNATOR, VR::SH, "WARD"),
                ],
            )],
            &["1.2.3.1", "1.2.3.3", "1.2.3.5"],
        ),
        case(
            "sequence item not matching",
            SR,
            Study,
            vec![Item(
                tags::PROCEDURE_CODE_SEQUENCE,
                vec![
                    (tags::CODE_VALUE, VR::SH, "CT*"),
                    (tags::CODING_SCHEME_DESIGNATOR, VR::SH, "OTHER"),
                ],
            )],
            &[],
        ),
        case(
            "combination of keys",
            SR,
            Study,
            vec![
                Value(tags::STUDY_DATE, VR::DA, "20240101-"),
                Value(tags::PATIENT_NAME, VR::PN, "doe*"),
            ],
            &["1.2.3.1", "1.2.3.2"],
        ),
        case(
            "patient root study level under a patient",
            PR,
            Study,
            vec![Value(tags::PATIENT_ID, VR::LO, "PAT-003")],
            &["1.2.3.4", "1.2.3.5"],
        ),
        case(
            "patient root study level with a key",
            PR,
            Study,
            vec![
                Value(tags::STUDY_DATE, VR::DA, "20240201-"),
                Value(tags::PATIENT_ID, VR::LO, "PAT-001"),
            ],
            &["1.2.3.2"],
        ),
        // Series level.
        case(
            "study root series level",
            SR,
            Series,
            vec![Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.3")],
            &["1.2.3.3.1", "1.2.3.3.2"],
        ),
        case(
            "series level with Modality",
            SR,
            Series,
            vec![
                Value(tags::MODALITY, VR::CS, "PT"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.3"),
            ],
            &["1.2.3.3.2"],
        ),
        case(
            "wildcard ? on CS",
            SR,
            Series,
            vec![
                Value(tags::MODALITY, VR::CS, "S?"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
            ],
            &["1.2.3.1.2"],
        ),
        case(
            "patient root series level",
            PR,
            Series,
            vec![
                Value(tags::PATIENT_ID, VR::LO, "PAT-001"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
            ],
            &["1.2.3.1.1", "1.2.3.1.2"],
        ),
        case(
            "patient root series level under another patient's study",
            PR,
            Series,
            vec![
                Value(tags::PATIENT_ID, VR::LO, "PAT-002"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
            ],
            &[],
        ),
        // Image level.
        case(
            "study root image level",
            SR,
            Image,
            vec![
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
                Value(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.1.1"),
            ],
            &["1.2.3.1.1.1", "1.2.3.1.1.2", "1.2.3.1.1.3"],
        ),
        case(
            "single value IS",
            SR,
            Image,
            vec![
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
                Value(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.1.1"),
                Value(tags::INSTANCE_NUMBER, VR::IS, "2"),
            ],
            &["1.2.3.1.1.2"],
        ),
        case(
            "patient root image level with a UID list",
            PR,
            Image,
            vec![
                Value(tags::PATIENT_ID, VR::LO, "PAT-001"),
                Value(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.2.1.1\\1.2.3.2.1.4"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
                Value(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2.1"),
            ],
            &["1.2.3.2.1.1", "1.2.3.2.1.4"],
        ),
        case(
            "DT range closed (attribute without a column)",
            SR,
            Image,
            vec![
                Value(
                    tags::ACQUISITION_DATE_TIME,
                    VR::DT,
                    "20240220141500-20240220141600",
                ),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
                Value(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2.1"),
            ],
            &["1.2.3.2.1.1", "1.2.3.2.1.2"],
        ),
        case(
            "DT range open end, UTC offset ignored",
            SR,
            Image,
            vec![
                Value(tags::ACQUISITION_DATE_TIME, VR::DT, "20240220141600-"),
                Value(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
                Value(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2.1"),
            ],
            &["1.2.3.2.1.3", "1.2.3.2.1.4"],
        ),
    ]
}
