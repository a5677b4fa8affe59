//! The synthetic corpus: a deterministic function from (size, seed) to patients, studies,
//! series and instances, so that an index seeded here, a set of files written for another
//! archive and the queries that time both all describe the same data.
//!
//! Shape: every patient has [`STUDIES_PER_PATIENT`] studies of [`SERIES_PER_STUDY`] series of
//! [`INSTANCES_PER_SERIES`] instances, so a corpus of N instances has N / 100 patients. Study
//! dates are spread evenly over the ten years 2015–2024; patient names are `SURNAME^GIVEN`
//! drawn from fixed lists, so that a prefix query such as `SMITH^J*` matches what it would in
//! a real archive. A smaller corpus is a prefix of a larger one with the same seed.

use std::collections::HashMap;

use anyhow::{Result, bail};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use sha2::{Digest, Sha256};
use ward_index::NewInstance;
use ward_types::{InstanceAttributes, Uid};

pub const STUDIES_PER_PATIENT: u64 = 5;
pub const SERIES_PER_STUDY: u64 = 4;
pub const INSTANCES_PER_SERIES: u64 = 5;
pub const INSTANCES_PER_STUDY: u64 = SERIES_PER_STUDY * INSTANCES_PER_SERIES;
pub const INSTANCES_PER_PATIENT: u64 = STUDIES_PER_PATIENT * INSTANCES_PER_STUDY;

/// Explicit VR little endian, the transfer syntax of every generated object.
pub const TRANSFER_SYNTAX: &str = "1.2.840.10008.1.2.1";

/// Days from 1970-01-01 to 2015-01-01, the first possible study date.
const FIRST_STUDY_DAY: i64 = 16_436;
/// 2015-01-01 to 2024-12-31 inclusive.
const STUDY_DAYS: u64 = 3_653;
/// Days from 1970-01-01 to 1930-01-01, the first possible birth date.
const FIRST_BIRTH_DAY: i64 = -14_610;
const BIRTH_DAYS: u64 = 32_872;

pub const FIRST_YEAR: i64 = 2015;
pub const YEARS: i64 = 10;

const SURNAMES: &[&str] = &[
    "ABBOTT",
    "ADEYEMI",
    "ALVAREZ",
    "ANDERSSON",
    "BAKER",
    "BANERJEE",
    "BECKER",
    "BERGSTROM",
    "BIANCHI",
    "BLANCO",
    "BROWN",
    "CAMPBELL",
    "CARVALHO",
    "CHEN",
    "COHEN",
    "COSTA",
    "DAVIES",
    "DIALLO",
    "DUBOIS",
    "EKSTROM",
    "EVANS",
    "FERNANDEZ",
    "FISCHER",
    "FITZGERALD",
    "FONTAINE",
    "GARCIA",
    "GONZALEZ",
    "GRAHAM",
    "GUPTA",
    "HANSEN",
    "HARRIS",
    "HOFFMANN",
    "HUGHES",
    "IBRAHIM",
    "IVANOV",
    "JACKSON",
    "JANSEN",
    "JOHANSSON",
    "JONES",
    "KAPOOR",
    "KELLY",
    "KIM",
    "KOWALSKI",
    "KRUGER",
    "LAMBERT",
    "LARSEN",
    "LEE",
    "LEHMANN",
    "LOPEZ",
    "MARTIN",
    "MARTINEZ",
    "MENDES",
    "MEYER",
    "MORENO",
    "MULLER",
    "MURPHY",
    "NAKAMURA",
    "NGUYEN",
    "NIELSEN",
    "NOVAK",
    "OKAFOR",
    "OLSEN",
    "PATEL",
    "PEREIRA",
    "PETERSEN",
    "PHAM",
    "QUINN",
    "RAMOS",
    "REYES",
    "RICHTER",
    "ROSSI",
    "SANTOS",
    "SATO",
    "SCHMIDT",
    "SCHNEIDER",
    "SILVA",
    "SINGH",
    "SMITH",
    "SUZUKI",
    "TANAKA",
    "TAYLOR",
    "THOMAS",
    "TORRES",
    "VANDIJK",
    "VOGEL",
    "WAGNER",
    "WALSH",
    "WANG",
    "WEBER",
    "WILLIAMS",
    "WILSON",
    "WONG",
    "YAMAMOTO",
    "YILMAZ",
    "ZHANG",
    "ZIMMERMANN",
];

const GIVEN_NAMES: &[&str] = &[
    "AARON",
    "ADA",
    "AHMED",
    "AISHA",
    "ALICE",
    "AMIR",
    "ANA",
    "ANDREA",
    "ANNA",
    "ARJUN",
    "BEATRIZ",
    "BEN",
    "CARLOS",
    "CHLOE",
    "CLARA",
    "DANIEL",
    "DAVID",
    "ELENA",
    "EMMA",
    "ERIK",
    "FATIMA",
    "FELIX",
    "FRANCESCA",
    "GABRIEL",
    "GRACE",
    "HANNA",
    "HENRIK",
    "HIROSHI",
    "IDA",
    "IGOR",
    "ISABEL",
    "JAMES",
    "JAN",
    "JULIA",
    "KAI",
    "KARIN",
    "LARS",
    "LAURA",
    "LEO",
    "LINA",
    "LUCAS",
    "MARIA",
    "MARTA",
    "MATEO",
    "MEI",
    "MIA",
    "NOAH",
    "NORA",
    "OLIVER",
    "OMAR",
    "PAUL",
    "PRIYA",
    "RAFAEL",
    "ROSA",
    "SAMUEL",
    "SARA",
    "SOFIA",
    "THOMAS",
    "VERA",
    "YUKI",
    "ZOE",
];

/// What a study is: its modality, description and the shape of its images.
pub struct StudyKind {
    pub modality: &'static str,
    pub description: &'static str,
    pub body_part: &'static str,
    pub sop_class: &'static str,
    pub rows: u16,
    pub columns: u16,
    pub series: [&'static str; SERIES_PER_STUDY as usize],
}

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
const US: &str = "1.2.840.10008.5.1.4.1.1.6.1";
const MG: &str = "1.2.840.10008.5.1.4.1.1.1.2";

const KINDS: &[StudyKind] = &[
    StudyKind {
        modality: "CT",
        description: "CT CHEST W CONTRAST",
        body_part: "CHEST",
        sop_class: CT,
        rows: 512,
        columns: 512,
        series: ["SCOUT", "AXIAL 5MM", "AXIAL 1MM LUNG", "CORONAL MPR"],
    },
    StudyKind {
        modality: "CT",
        description: "CT ABDOMEN PELVIS",
        body_part: "ABDOMEN",
        sop_class: CT,
        rows: 512,
        columns: 512,
        series: ["SCOUT", "ARTERIAL", "PORTAL VENOUS", "DELAYED"],
    },
    StudyKind {
        modality: "CT",
        description: "CT HEAD WO CONTRAST",
        body_part: "HEAD",
        sop_class: CT,
        rows: 512,
        columns: 512,
        series: ["SCOUT", "AXIAL BRAIN", "AXIAL BONE", "SAGITTAL MPR"],
    },
    StudyKind {
        modality: "MR",
        description: "MR BRAIN",
        body_part: "HEAD",
        sop_class: MR,
        rows: 256,
        columns: 256,
        series: ["T1 SAG", "T2 AX", "FLAIR AX", "DWI"],
    },
    StudyKind {
        modality: "MR",
        description: "MR KNEE",
        body_part: "KNEE",
        sop_class: MR,
        rows: 384,
        columns: 384,
        series: ["PD SAG", "PD FS COR", "T1 COR", "T2 FS AX"],
    },
    StudyKind {
        modality: "MR",
        description: "MR LUMBAR SPINE",
        body_part: "LSPINE",
        sop_class: MR,
        rows: 320,
        columns: 320,
        series: ["T1 SAG", "T2 SAG", "STIR SAG", "T2 AX"],
    },
    StudyKind {
        modality: "CR",
        description: "XR CHEST 2 VIEWS",
        body_part: "CHEST",
        sop_class: CR,
        rows: 2500,
        columns: 2048,
        series: ["PA", "LATERAL", "PA REPEAT", "LATERAL REPEAT"],
    },
    StudyKind {
        modality: "US",
        description: "US ABDOMEN COMPLETE",
        body_part: "ABDOMEN",
        sop_class: US,
        rows: 600,
        columns: 800,
        series: ["LIVER", "KIDNEYS", "PANCREAS", "SPLEEN"],
    },
    StudyKind {
        modality: "MG",
        description: "MAMMO SCREENING BILATERAL",
        body_part: "BREAST",
        sop_class: MG,
        rows: 3328,
        columns: 2560,
        series: ["R CC", "L CC", "R MLO", "L MLO"],
    },
];

/// What each draw is for, so that draws for different attributes are independent.
#[derive(Clone, Copy)]
enum Draw {
    Surname = 1,
    GivenName,
    BirthDate,
    Sex,
    StudyDate,
    StudyTime,
    StudyKind,
    Referrer,
    StudyUid,
    SeriesUid,
    InstanceUid,
    Query,
}

#[derive(Debug, Clone, Copy)]
pub struct Corpus {
    patients: u64,
    seed: u64,
}

pub struct Patient {
    pub id: String,
    pub name: String,
    pub birth_date: String,
    pub sex: &'static str,
}

pub struct Study {
    pub index: u64,
    pub patient: u64,
    pub uid: Uid,
    pub date: Date,
    pub time: String,
    pub accession: String,
    pub kind: &'static StudyKind,
    pub referrer: String,
    pub performed_at_unix_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// The civil date `days` after 1970-01-01 (proleptic Gregorian).
    fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date { year, month, day }
    }

    pub fn dicom(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

/// Days in a month of the Gregorian calendar.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// SplitMix64 of the seed, the purpose and the index: a stateless, well-mixed draw.
fn draw(seed: u64, what: Draw, index: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((what as u64) << 56)
        .wrapping_add(index)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T>(list: &[T], value: u64) -> &T {
    &list[(value % list.len() as u64) as usize]
}

impl Corpus {
    /// A corpus of `instances` instances (a multiple of [`INSTANCES_PER_PATIENT`]).
    pub fn new(instances: u64, seed: u64) -> Result<Corpus> {
        if instances == 0 || instances % INSTANCES_PER_PATIENT != 0 {
            bail!("the instance count must be a positive multiple of {INSTANCES_PER_PATIENT}");
        }
        Ok(Corpus {
            patients: instances / INSTANCES_PER_PATIENT,
            seed,
        })
    }

    pub fn patients(&self) -> u64 {
        self.patients
    }

    pub fn studies(&self) -> u64 {
        self.patients * STUDIES_PER_PATIENT
    }

    pub fn instances(&self) -> u64 {
        self.patients * INSTANCES_PER_PATIENT
    }

    fn draw(&self, what: Draw, index: u64) -> u64 {
        draw(self.seed, what, index)
    }

    /// A UID under 2.25: the draw as the 128-bit integer of a version 8 (custom) UUID.
    fn uid(&self, what: Draw, index: u64) -> Uid {
        let high = u128::from(self.draw(what, index));
        let low = u128::from(self.draw(what, index ^ (1 << 63)));
        let uuid = (high << 64 | low) & !(0xF << 76) & !(0x3 << 62) | (0x8 << 76) | (0x2 << 62);
        Uid::parse(&format!("2.25.{uuid}")).unwrap_or_else(|_| unreachable!("2.25 UIDs are valid"))
    }

    pub fn patient(&self, index: u64) -> Patient {
        let birth = self.draw(Draw::BirthDate, index) % BIRTH_DAYS;
        Patient {
            id: format!("WS{index:07}"),
            name: format!(
                "{}^{}",
                pick(SURNAMES, self.draw(Draw::Surname, index)),
                pick(GIVEN_NAMES, self.draw(Draw::GivenName, index))
            ),
            birth_date: Date::from_days(FIRST_BIRTH_DAY + birth as i64).dicom(),
            sex: if self.draw(Draw::Sex, index) % 2 == 0 {
                "F"
            } else {
                "M"
            },
        }
    }

    pub fn study(&self, index: u64) -> Study {
        let day = FIRST_STUDY_DAY + (self.draw(Draw::StudyDate, index) % STUDY_DAYS) as i64;
        // 07:00:00 to 18:59:59.
        let second = 7 * 3600 + self.draw(Draw::StudyTime, index) % (12 * 3600);
        let referrer = self.draw(Draw::Referrer, index);
        Study {
            index,
            patient: index / STUDIES_PER_PATIENT,
            uid: self.uid(Draw::StudyUid, index),
            date: Date::from_days(day),
            time: format!(
                "{:02}{:02}{:02}",
                second / 3600,
                second / 60 % 60,
                second % 60
            ),
            accession: format!("AC{index:08}"),
            kind: pick(KINDS, self.draw(Draw::StudyKind, index)),
            // A few dozen referring physicians, named like patients.
            referrer: format!(
                "{}^{}",
                pick(SURNAMES, referrer % 37),
                pick(GIVEN_NAMES, referrer / 37 % 11)
            ),
            performed_at_unix_ms: (day * 86_400 + second as i64) * 1000,
        }
    }

    /// The data set of instance `index`: everything but pixel data, with Specific Character
    /// Set "ISO_IR 192" first (as in Ward's header copies), and the attributes the index keeps.
    pub fn instance(&self, index: u64) -> (InstanceAttributes, InMemDicomObject) {
        let study = self.study(index / INSTANCES_PER_STUDY);
        let patient = self.patient(study.patient);
        let series_index = index / INSTANCES_PER_SERIES;
        let series_number = (index % INSTANCES_PER_STUDY) / INSTANCES_PER_SERIES;
        let kind = study.kind;
        let date = study.date.dicom();
        let attrs = InstanceAttributes {
            specific_character_set: Some("ISO_IR 192".into()),
            patient_id: Some(patient.id),
            issuer_of_patient_id: None,
            patient_name: Some(patient.name),
            patient_birth_date: Some(patient.birth_date),
            patient_sex: Some(patient.sex.into()),
            study_instance_uid: Some(study.uid),
            study_date: Some(date.clone()),
            study_time: Some(study.time.clone()),
            accession_number: Some(study.accession),
            study_id: Some((study.index % 100_000 + 1).to_string()),
            study_description: Some(kind.description.into()),
            referring_physician_name: Some(study.referrer),
            series_instance_uid: Some(self.uid(Draw::SeriesUid, series_index)),
            modality: Some(kind.modality.into()),
            series_number: Some((series_number + 1).to_string()),
            series_description: Some(kind.series[series_number as usize].into()),
            series_date: Some(date.clone()),
            series_time: Some(study.time.clone()),
            body_part_examined: Some(kind.body_part.into()),
            sop_class_uid: Uid::parse(kind.sop_class).ok(),
            sop_instance_uid: Some(self.uid(Draw::InstanceUid, index)),
            instance_number: Some((index % INSTANCES_PER_SERIES + 1).to_string()),
            content_date: Some(date),
            content_time: Some(study.time),
            rows: Some(kind.rows),
            columns: Some(kind.columns),
            number_of_frames: None,
        };
        let object = data_set(&attrs);
        (attrs, object)
    }

    /// Instance `index` as the index would receive it from ingest, with its header copy. The
    /// blob it names does not exist: this is for query benchmarks, which never read blobs.
    pub fn new_instance(&self, index: u64) -> Result<NewInstance> {
        let (attrs, object) = self.instance(index);
        let mut header = Vec::with_capacity(1024);
        object.write_dataset_with_ts(&mut header, &EXPLICIT_VR_LITTLE_ENDIAN.erased())?;
        let study = self.study(index / INSTANCES_PER_STUDY);
        let pixels = u64::from(study.kind.rows) * u64::from(study.kind.columns) * 2;
        Ok(NewInstance {
            transfer_syntax: Uid::parse(TRANSFER_SYNTAX)?,
            size: header.len() as u64 + 132 + 200 + pixels,
            blob_key: hex::encode(Sha256::digest(&header)),
            source_ae: Some(study.kind.modality.to_owned() + "_SCANNER"),
            received_at_unix_ms: study.performed_at_unix_ms,
            attrs,
            header,
        })
    }

    /// A number below `bound` for the `n`th pick of a query generator `stream`, independent of
    /// the corpus's own draws.
    pub fn pick(&self, stream: u64, n: u64, bound: u64) -> u64 {
        self.draw(Draw::Query, stream << 32 | n) % bound.max(1)
    }

    /// Instance `index` as a Part 10 file: Ward's meta group, then [`Corpus::instance`]'s data
    /// set in explicit VR little endian.
    pub fn part10(&self, index: u64) -> Result<Vec<u8>> {
        let (attrs, object) = self.instance(index);
        let (Some(class), Some(instance)) = (&attrs.sop_class_uid, &attrs.sop_instance_uid) else {
            bail!("instance {index} has no SOP class or instance UID");
        };
        let mut bytes = Vec::with_capacity(2048);
        ward_dicom::write_part10_header(
            &mut bytes,
            class,
            instance,
            &Uid::parse(TRANSFER_SYNTAX)?,
        )?;
        object.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased())?;
        Ok(bytes)
    }

    /// The studies, in order.
    pub fn all_studies(&self) -> impl Iterator<Item = Study> + '_ {
        (0..self.studies()).map(|s| self.study(s))
    }

    /// How many studies each `SURNAME^X` prefix (surname, caret, first letter of the given
    /// name) matches.
    pub fn studies_by_name_prefix(&self) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for p in 0..self.patients {
            *counts
                .entry(name_prefix(&self.patient(p).name))
                .or_default() += STUDIES_PER_PATIENT;
        }
        counts
    }
}

/// `SURNAME^G` for a name `SURNAME^GIVEN`.
pub fn name_prefix(name: &str) -> String {
    match name.split_once('^') {
        Some((surname, given)) => format!("{surname}^{}", given.chars().next().unwrap_or(' ')),
        None => name.to_owned(),
    }
}

fn text(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &Option<String>) {
    if let Some(value) = value {
        obj.put(DataElement::new(
            tag,
            vr,
            PrimitiveValue::from(value.as_str()),
        ));
    }
}

/// The data set that carries `attrs`.
fn data_set(attrs: &InstanceAttributes) -> InMemDicomObject {
    let a = attrs;
    let mut obj = InMemDicomObject::new_empty();
    text(
        &mut obj,
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        &a.specific_character_set,
    );
    let uid = |u: &Option<Uid>| u.as_ref().map(|u| u.as_str().to_owned());
    text(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        &uid(&a.sop_class_uid),
    );
    text(
        &mut obj,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &uid(&a.sop_instance_uid),
    );
    text(&mut obj, tags::STUDY_DATE, VR::DA, &a.study_date);
    text(&mut obj, tags::SERIES_DATE, VR::DA, &a.series_date);
    text(&mut obj, tags::CONTENT_DATE, VR::DA, &a.content_date);
    text(&mut obj, tags::STUDY_TIME, VR::TM, &a.study_time);
    text(&mut obj, tags::SERIES_TIME, VR::TM, &a.series_time);
    text(&mut obj, tags::CONTENT_TIME, VR::TM, &a.content_time);
    text(
        &mut obj,
        tags::ACCESSION_NUMBER,
        VR::SH,
        &a.accession_number,
    );
    text(&mut obj, tags::MODALITY, VR::CS, &a.modality);
    text(
        &mut obj,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &a.referring_physician_name,
    );
    text(
        &mut obj,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        &a.study_description,
    );
    text(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &a.series_description,
    );
    text(&mut obj, tags::PATIENT_NAME, VR::PN, &a.patient_name);
    text(&mut obj, tags::PATIENT_ID, VR::LO, &a.patient_id);
    text(
        &mut obj,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &a.patient_birth_date,
    );
    text(&mut obj, tags::PATIENT_SEX, VR::CS, &a.patient_sex);
    text(
        &mut obj,
        tags::BODY_PART_EXAMINED,
        VR::CS,
        &a.body_part_examined,
    );
    text(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &uid(&a.study_instance_uid),
    );
    text(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &uid(&a.series_instance_uid),
    );
    text(&mut obj, tags::STUDY_ID, VR::SH, &a.study_id);
    text(&mut obj, tags::SERIES_NUMBER, VR::IS, &a.series_number);
    text(&mut obj, tags::INSTANCE_NUMBER, VR::IS, &a.instance_number);
    for (tag, value) in [(tags::ROWS, a.rows), (tags::COLUMNS, a.columns)] {
        if let Some(value) = value {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn civil_dates() {
        let date = |days| Date::from_days(days).dicom();
        assert_eq!(date(0), "19700101");
        assert_eq!(date(FIRST_STUDY_DAY), "20150101");
        assert_eq!(date(FIRST_STUDY_DAY + STUDY_DAYS as i64 - 1), "20241231");
        assert_eq!(date(FIRST_BIRTH_DAY), "19300101");
        assert_eq!(date(FIRST_BIRTH_DAY + BIRTH_DAYS as i64 - 1), "20191231");
        assert_eq!(date(19_782), "20240229");
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2024, 4), 30);
        assert_eq!(days_in_month(2024, 12), 31);
    }

    #[test]
    fn sizes_must_be_whole_patients() {
        assert!(Corpus::new(0, 1).is_err());
        assert!(Corpus::new(150, 1).is_err());
        let c = Corpus::new(1_000_000, 1).unwrap();
        assert_eq!((c.patients(), c.studies()), (10_000, 50_000));
    }

    /// A seeded row is what ingest would have indexed from the corresponding file.
    #[test]
    fn seeded_rows_are_what_ingest_reads_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = Corpus::new(1000, 7).unwrap();
        for i in [0, 1, 19, 20, 537, 999] {
            let path = dir.path().join(format!("{i}.dcm"));
            std::fs::write(&path, corpus.part10(i).unwrap()).unwrap();
            ward_dicom::prescan_part10_file(&path, &ward_dicom::PrescanLimits::default()).unwrap();
            let (attrs, copy) = ward_dicom::read_header_with_copy(&path).unwrap();
            let new = corpus.new_instance(i).unwrap();
            assert_eq!(attrs, new.attrs, "instance {i}");
            assert_eq!(copy, new.header, "instance {i}");
        }
    }

    #[test]
    fn a_smaller_corpus_is_a_prefix_of_a_larger_one() {
        let small = Corpus::new(100, 1).unwrap();
        let large = Corpus::new(1_000_000, 1).unwrap();
        let other_seed = Corpus::new(100, 2).unwrap();
        for i in [0, 42, 99] {
            assert_eq!(small.instance(i).0, large.instance(i).0);
            assert_ne!(small.instance(i).0, other_seed.instance(i).0);
        }
    }

    #[test]
    fn hierarchy_and_unique_keys() {
        let corpus = Corpus::new(2000, 1).unwrap();
        let mut sops = HashSet::new();
        let mut series = HashSet::new();
        let mut studies = HashSet::new();
        let mut accessions = HashSet::new();
        let mut patients = HashSet::new();
        for i in 0..corpus.instances() {
            let (a, _) = corpus.instance(i);
            assert!(sops.insert(a.sop_instance_uid.unwrap()));
            series.insert((a.series_instance_uid.unwrap(), a.study_instance_uid.clone()));
            studies.insert((a.study_instance_uid.unwrap(), a.patient_id.clone()));
            accessions.insert(a.accession_number.unwrap());
            patients.insert(a.patient_id.unwrap());
        }
        // Each series in one study, each study of one patient, accession numbers unique.
        assert_eq!(series.len() as u64, corpus.studies() * SERIES_PER_STUDY);
        assert_eq!(studies.len() as u64, corpus.studies());
        assert_eq!(accessions.len() as u64, corpus.studies());
        assert_eq!(patients.len() as u64, corpus.patients());
    }

    #[test]
    fn name_prefixes() {
        assert_eq!(name_prefix("SMITH^JAMES"), "SMITH^J");
        assert_eq!(name_prefix("SMITH"), "SMITH");
        let corpus = Corpus::new(100_000, 1).unwrap();
        let counts = corpus.studies_by_name_prefix();
        assert_eq!(counts.values().sum::<u64>(), corpus.studies());
        assert!(counts.values().all(|n| n % STUDIES_PER_PATIENT == 0));
    }
}
