#![allow(clippy::unwrap_used, clippy::expect_used)]

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::*;
use crate::conformance::{CaseKey, cases, corpus};

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn encode(obj: &InMemDicomObject, ts_uid: &str) -> Vec<u8> {
    let ts = TransferSyntaxRegistry.get(ts_uid).unwrap();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts).unwrap();
    out
}

/// An identifier at `level` with `keys`, in UTF-8.
fn identifier(level: &str, keys: &[(Tag, VR, &str)]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut obj, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
    for (tag, vr, value) in keys {
        put(&mut obj, *tag, *vr, value);
    }
    obj
}

fn parse(model: QueryModel, level: &str, keys: &[(Tag, VR, &str)]) -> Result<Query, QueryError> {
    let bytes = encode(&identifier(level, keys), EXPLICIT_VR_LITTLE_ENDIAN);
    parse_identifier(&bytes, EXPLICIT_VR_LITTLE_ENDIAN, model)
}

fn matcher(model: QueryModel, level: &str, keys: &[(Tag, VR, &str)], tag: Tag) -> Matcher {
    parse(model, level, keys)
        .unwrap()
        .key(tag)
        .unwrap()
        .matcher
        .clone()
}

fn study_matcher(tag: Tag, vr: VR, value: &str) -> Matcher {
    matcher(QueryModel::StudyRoot, "STUDY", &[(tag, vr, value)], tag)
}

fn study_error(tag: Tag, vr: VR, value: &str) -> QueryError {
    parse(QueryModel::StudyRoot, "STUDY", &[(tag, vr, value)]).unwrap_err()
}

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

#[test]
fn sop_classes_name_model_and_service() {
    use QueryModel::*;
    use Service::*;
    for (uid, expected) in [
        ("1.2.840.10008.5.1.4.1.2.1.1", Some((PatientRoot, Find))),
        ("1.2.840.10008.5.1.4.1.2.1.2", Some((PatientRoot, Move))),
        ("1.2.840.10008.5.1.4.1.2.1.3", Some((PatientRoot, Get))),
        ("1.2.840.10008.5.1.4.1.2.2.1", Some((StudyRoot, Find))),
        ("1.2.840.10008.5.1.4.1.2.2.2", Some((StudyRoot, Move))),
        ("1.2.840.10008.5.1.4.1.2.2.3\0", Some((StudyRoot, Get))),
        // Patient/Study Only (retired), worklist, storage: not served here.
        ("1.2.840.10008.5.1.4.1.2.3.1", None),
        ("1.2.840.10008.5.1.4.31", None),
        ("1.2.840.10008.5.1.4.1.1.2", None),
        ("1.2.840.10008.5.1.4.1.2.2.1.1", None),
    ] {
        assert_eq!(QueryModel::from_sop_class(uid), expected, "{uid}");
    }
}

#[test]
fn every_table_row_parses_in_both_little_endian_syntaxes() {
    for case in cases() {
        for ts in [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] {
            let query = parse_identifier(&case.encode(ts), ts, case.model)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!((query.level, query.model), (case.level, case.model));
            // Keys come in tag order, the level's unique key among them.
            assert!(query.keys.windows(2).all(|w| w[0].tag < w[1].tag));
            assert!(
                query.key(case.level.unique_key()).is_some(),
                "{}",
                case.name
            );
            let item_keys = case
                .keys
                .iter()
                .filter(|k| matches!(k, CaseKey::Item(..)))
                .count();
            let sequences = query
                .keys
                .iter()
                .filter(|k| matches!(k.matcher, Matcher::Sequence(_)))
                .count();
            assert_eq!(item_keys, sequences, "{}", case.name);
        }
    }
}

#[test]
fn matcher_kinds() {
    assert_eq!(
        study_matcher(tags::ACCESSION_NUMBER, VR::SH, " ACC-1 "),
        Matcher::Single("ACC-1".into())
    );
    assert_eq!(
        study_matcher(tags::ACCESSION_NUMBER, VR::SH, ""),
        Matcher::Universal
    );
    assert_eq!(
        study_matcher(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
        Matcher::Single("1.2.3".into())
    );
    assert_eq!(
        study_matcher(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3\\1.2.4"),
        Matcher::UidList(vec![uid("1.2.3"), uid("1.2.4")])
    );
    assert_eq!(
        study_matcher(tags::STUDY_INSTANCE_UID, VR::UI, "*"),
        Matcher::Universal
    );
    assert_eq!(
        study_matcher(tags::PATIENT_NAME, VR::PN, "Doe*"),
        Matcher::Wildcard("Doe*".into())
    );
    assert_eq!(
        study_matcher(tags::PATIENT_NAME, VR::PN, "D?e"),
        Matcher::Wildcard("D?e".into())
    );
    assert_eq!(
        study_matcher(tags::STUDY_DATE, VR::DA, "20240101-20240131"),
        Matcher::Range {
            from: Some("20240101".into()),
            to: Some("20240131".into())
        }
    );
    assert_eq!(
        study_matcher(tags::STUDY_DATE, VR::DA, "-20240131"),
        Matcher::Range {
            from: None,
            to: Some("20240131".into())
        }
    );
    assert_eq!(
        study_matcher(tags::STUDY_TIME, VR::TM, "1015-"),
        Matcher::Range {
            from: Some("1015".into()),
            to: None
        }
    );
    assert_eq!(
        study_matcher(tags::STUDY_DATE, VR::DA, "20240101"),
        Matcher::Single("20240101".into())
    );
    // A DT with a negative UTC offset is one value; around a range hyphen both sides count.
    assert_eq!(
        study_matcher(tags::DATE_TIME, VR::DT, "20240101120000-0500"),
        Matcher::Single("20240101120000-0500".into())
    );
    assert_eq!(
        study_matcher(tags::DATE_TIME, VR::DT, "20240101-0500-20240102-0500"),
        Matcher::Range {
            from: Some("20240101-0500".into()),
            to: Some("20240102-0500".into())
        }
    );

    let mut obj = identifier("STUDY", &[]);
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, "CT*");
    put(&mut item, tags::CODE_MEANING, VR::LO, "");
    obj.put(DataElement::new(
        tags::PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    obj.put(DataElement::new(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(Vec::<InMemDicomObject>::new()),
    ));
    for ts in [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] {
        let query = parse_identifier(&encode(&obj, ts), ts, QueryModel::StudyRoot).unwrap();
        assert_eq!(
            query.key(tags::PROCEDURE_CODE_SEQUENCE).unwrap().matcher,
            Matcher::Sequence(vec![
                Key {
                    tag: tags::CODE_VALUE,
                    vr: VR::SH,
                    matcher: Matcher::Wildcard("CT*".into())
                },
                Key {
                    tag: tags::CODE_MEANING,
                    vr: VR::LO,
                    matcher: Matcher::Universal
                },
            ])
        );
        let empty_sequence = &query
            .key(tags::REQUEST_ATTRIBUTES_SEQUENCE)
            .unwrap()
            .matcher;
        assert_eq!(*empty_sequence, Matcher::Sequence(vec![]));
        assert!(!empty_sequence.constrains());
    }
}

#[test]
fn malformed_values_are_refused() {
    use QueryError::*;
    let date = tags::STUDY_DATE;
    for bad in [
        "2024-01-01",
        "2024010a",
        "-",
        "20240101--",
        "2024",
        "20240101\\20240102",
    ] {
        assert_eq!(
            study_error(date, VR::DA, bad),
            InvalidRange { tag: date },
            "{bad}"
        );
    }
    let time = tags::STUDY_TIME;
    for bad in ["10:1", "1015.5", "abc-", "1-2"] {
        assert_eq!(
            study_error(time, VR::TM, bad),
            InvalidRange { tag: time },
            "{bad}"
        );
    }
    let uid_tag = tags::STUDY_INSTANCE_UID;
    for bad in ["1.2.*", "1.2.3\\", "1.02", "../x"] {
        assert_eq!(
            study_error(uid_tag, VR::UI, bad),
            InvalidKey { tag: uid_tag },
            "{bad}"
        );
    }
    // No wildcards for IS, DS, AS.
    assert_eq!(
        study_error(tags::STUDY_ID, VR::IS, "1*"),
        InvalidKey {
            tag: tags::STUDY_ID
        }
    );
    // Counts are return keys only.
    let count = tags::NUMBER_OF_STUDY_RELATED_INSTANCES;
    assert_eq!(study_error(count, VR::IS, "3"), InvalidKey { tag: count });
    // Attributes below the query level may be asked for, not matched.
    assert_eq!(
        study_error(tags::MODALITY, VR::CS, "CT"),
        InvalidKey {
            tag: tags::MODALITY
        }
    );
    assert!(
        parse(
            QueryModel::StudyRoot,
            "STUDY",
            &[(tags::MODALITY, VR::CS, "")]
        )
        .is_ok()
    );
    // Private creators label a block; they are not matched.
    let creator = Tag(0x0009, 0x0010);
    assert_eq!(
        study_matcher(creator, VR::LO, "ACME 1.0"),
        Matcher::Universal
    );
    // Binary values have no matching.
    let mut obj = identifier("STUDY", &[]);
    obj.put(DataElement::new(
        Tag(0x0009, 0x1010),
        VR::OB,
        PrimitiveValue::from(vec![1u8, 2]),
    ));
    let bytes = encode(&obj, EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(
        parse_identifier(&bytes, EXPLICIT_VR_LITTLE_ENDIAN, QueryModel::StudyRoot),
        Err(InvalidKey {
            tag: Tag(0x0009, 0x1010)
        })
    );
    // Sequence matching takes exactly one item.
    let mut obj = identifier("STUDY", &[]);
    obj.put(DataElement::new(
        tags::PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![
            InMemDicomObject::new_empty(),
            InMemDicomObject::new_empty(),
        ]),
    ));
    let bytes = encode(&obj, EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(
        parse_identifier(&bytes, EXPLICIT_VR_LITTLE_ENDIAN, QueryModel::StudyRoot),
        Err(InvalidKey {
            tag: tags::PROCEDURE_CODE_SEQUENCE
        })
    );
    // Garbage and unknown syntaxes are errors, not panics.
    assert!(matches!(
        parse_identifier(&[0xff; 7], EXPLICIT_VR_LITTLE_ENDIAN, QueryModel::StudyRoot),
        Err(Malformed(_))
    ));
    assert!(matches!(
        parse_identifier(&[], "1.2.3.4", QueryModel::StudyRoot),
        Err(Malformed(_))
    ));
}

#[test]
fn levels_and_unique_keys() {
    use Level::*;
    use QueryError::*;
    use QueryModel::*;
    let pid = (tags::PATIENT_ID, VR::LO, "PAT-1");
    let study = (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3");
    let series = (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4");

    let bytes = encode(
        &{
            let mut obj = InMemDicomObject::new_empty();
            put(&mut obj, tags::PATIENT_ID, VR::LO, "");
            obj
        },
        EXPLICIT_VR_LITTLE_ENDIAN,
    );
    assert_eq!(
        parse_identifier(&bytes, EXPLICIT_VR_LITTLE_ENDIAN, PatientRoot),
        Err(MissingLevel)
    );
    assert_eq!(parse(PatientRoot, "", &[pid]), Err(MissingLevel));
    assert_eq!(parse(PatientRoot, "WORKLIST", &[pid]), Err(InvalidLevel));
    assert_eq!(parse(StudyRoot, "PATIENT", &[pid]), Err(LevelNotInModel));
    assert_eq!(parse(PatientRoot, " PATIENT", &[]).unwrap().level, Patient);

    assert_eq!(
        parse(PatientRoot, "STUDY", &[]),
        Err(UniqueKeyMissing { level: Patient })
    );
    assert_eq!(
        parse(PatientRoot, "STUDY", &[(tags::PATIENT_ID, VR::LO, "PAT*")]),
        Err(UniqueKeyMissing { level: Patient })
    );
    assert_eq!(parse(PatientRoot, "STUDY", &[pid]).unwrap().level, Study);
    assert_eq!(parse(StudyRoot, "STUDY", &[]).unwrap().level, Study);
    assert_eq!(
        parse(PatientRoot, "SERIES", &[pid]),
        Err(UniqueKeyMissing { level: Study })
    );
    assert_eq!(
        parse(StudyRoot, "SERIES", &[]),
        Err(UniqueKeyMissing { level: Study })
    );
    assert_eq!(
        parse(
            StudyRoot,
            "SERIES",
            &[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3\\1.2.4")]
        ),
        Err(UniqueKeyMissing { level: Study })
    );
    assert_eq!(parse(StudyRoot, "SERIES", &[study]).unwrap().level, Series);
    assert_eq!(
        parse(StudyRoot, "IMAGE", &[study]),
        Err(UniqueKeyMissing { level: Series })
    );
    assert_eq!(
        parse(PatientRoot, "IMAGE", &[study, series]),
        Err(UniqueKeyMissing { level: Patient })
    );
    assert_eq!(
        parse(PatientRoot, "IMAGE", &[pid, study, series])
            .unwrap()
            .level,
        Image
    );
}

#[test]
fn caps_on_keys_and_values() {
    let many: Vec<(Tag, VR, &str)> = (0..MAX_KEYS as u16)
        .map(|i| (Tag(0x0011, 0x1000 + i), VR::LO, ""))
        .collect();
    assert!(parse(QueryModel::StudyRoot, "STUDY", &many).is_ok());
    let mut too_many = many.clone();
    too_many.push((Tag(0x0013, 0x1000), VR::LO, ""));
    assert_eq!(
        parse(QueryModel::StudyRoot, "STUDY", &too_many),
        Err(QueryError::TooManyKeys)
    );
    // Keys inside items count too.
    let mut obj = identifier("STUDY", &many[1..]);
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, "");
    obj.put(DataElement::new(
        tags::PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    let bytes = encode(&obj, EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(
        parse_identifier(&bytes, EXPLICIT_VR_LITTLE_ENDIAN, QueryModel::StudyRoot),
        Err(QueryError::TooManyKeys)
    );

    let long = format!("{}*", "A".repeat(9_999));
    assert_eq!(
        study_error(tags::PATIENT_NAME, VR::PN, &long),
        QueryError::ValueTooLong {
            tag: tags::PATIENT_NAME
        }
    );
    let limit = "é".repeat(MAX_VALUE_CHARS);
    assert!(matches!(
        study_matcher(tags::STUDY_DESCRIPTION, VR::LO, &limit),
        Matcher::Single(_)
    ));
}

#[test]
fn character_sets_are_honoured() {
    for charset in ["ISO_IR 100", "ISO_IR 192"] {
        let mut obj = InMemDicomObject::new_empty();
        put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, charset);
        put(&mut obj, tags::QUERY_RETRIEVE_LEVEL, VR::CS, "PATIENT");
        put(&mut obj, tags::PATIENT_NAME, VR::PN, "Müller*");
        for ts in [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] {
            let bytes = encode(&obj, ts);
            // The writer really used the declared character set.
            let latin1 = bytes.windows(2).any(|w| w == [b'M', 0xFC]);
            assert_eq!(latin1, charset == "ISO_IR 100", "{charset}");
            let query = parse_identifier(&bytes, ts, QueryModel::PatientRoot).unwrap();
            assert_eq!(
                query.key(tags::PATIENT_NAME).unwrap().matcher,
                Matcher::Wildcard("Müller*".into())
            );
        }
    }
}

#[test]
fn enumeration_pattern() {
    use QueryModel::*;
    let name = |v| (tags::PATIENT_NAME, VR::PN, v);
    let enumerating = |model, level, keys: &[(Tag, VR, &str)]| {
        is_enumeration(&parse(model, level, keys).unwrap())
    };
    assert!(enumerating(PatientRoot, "PATIENT", &[]));
    assert!(enumerating(PatientRoot, "PATIENT", &[name(""), name("")]));
    assert!(enumerating(PatientRoot, "PATIENT", &[name("**")]));
    assert!(enumerating(
        StudyRoot,
        "STUDY",
        &[
            name("*"),
            (tags::STUDY_DATE, VR::DA, ""),
            (tags::MODALITY, VR::CS, "")
        ]
    ));
    // Unknown attributes count at PATIENT and STUDY level.
    assert!(!enumerating(
        StudyRoot,
        "STUDY",
        &[(Tag(0x0011, 0x1010), VR::LO, "x")]
    ));
    assert!(!enumerating(PatientRoot, "PATIENT", &[name("D*")]));
    assert!(!enumerating(PatientRoot, "PATIENT", &[name("?*")]));
    assert!(!enumerating(
        StudyRoot,
        "STUDY",
        &[(tags::STUDY_DATE, VR::DA, "20240101-")]
    ));
    assert!(!enumerating(
        StudyRoot,
        "SERIES",
        &[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3")]
    ));
    // Relational queries (QIDO-RS across studies): series or instances named by UID are not
    // an enumeration; a series-level attribute alone still is.
    let relational = |level: &str, keys: &[(Tag, VR, &str)]| {
        let mut obj = InMemDicomObject::new_empty();
        put(&mut obj, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
        for (tag, vr, value) in keys {
            put(&mut obj, *tag, *vr, value);
        }
        is_enumeration(&parse_dataset(&obj, StudyRoot, Hierarchy::Relational).unwrap())
    };
    assert!(!relational(
        "IMAGE",
        &[(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3")]
    ));
    assert!(!relational(
        "IMAGE",
        &[(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3\\1.2.4")]
    ));
    assert!(relational("SERIES", &[(tags::MODALITY, VR::CS, "CT")]));
    assert!(relational("IMAGE", &[(tags::INSTANCE_NUMBER, VR::IS, "1")]));
}

#[test]
fn retrieve_needs_the_level_unique_key() {
    use QueryModel::*;
    let check = |model, level, keys: &[(Tag, VR, &str)]| {
        check_retrieve(&parse(model, level, keys).unwrap())
    };
    assert_eq!(
        check(StudyRoot, "STUDY", &[]),
        Err(QueryError::UniqueKeyMissing {
            level: Level::Study
        })
    );
    assert_eq!(
        check(PatientRoot, "PATIENT", &[(tags::PATIENT_ID, VR::LO, "*")]),
        Err(QueryError::UniqueKeyMissing {
            level: Level::Patient
        })
    );
    assert!(check(PatientRoot, "PATIENT", &[(tags::PATIENT_ID, VR::LO, "P1")]).is_ok());
    // Relational: every study of one patient.
    assert!(check(StudyRoot, "STUDY", &[(tags::PATIENT_ID, VR::LO, "P1")]).is_ok());
    assert_eq!(
        check(
            StudyRoot,
            "STUDY",
            &[
                (tags::PATIENT_ID, VR::LO, "P1\\P2"),
                (tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
                (tags::STUDY_DATE, VR::DA, "20240101"),
            ]
        ),
        Err(QueryError::UniqueKeyMissing {
            level: Level::Study
        })
    );
    assert!(
        check(
            StudyRoot,
            "STUDY",
            &[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2\\1.3")]
        )
        .is_ok()
    );
    assert!(
        check(
            StudyRoot,
            "SERIES",
            &[
                (tags::STUDY_INSTANCE_UID, VR::UI, "1.2"),
                (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3")
            ]
        )
        .is_ok()
    );
}

#[test]
fn value_matching() {
    let options = QueryOptions::default();
    let key = |tag, vr, matcher| Key { tag, vr, matcher };
    let name = key(
        tags::PATIENT_NAME,
        VR::PN,
        Matcher::Wildcard("müller*\\Doe".into()),
    );
    assert!(name.matches_value("MÜLLER^JÜRGEN", &options));
    assert!(name.matches_value("doe", &options));
    assert!(!name.matches_value("Doe^Jane", &options));
    let sensitive = QueryOptions {
        pn_case_insensitive: false,
    };
    assert!(!name.matches_value("MÜLLER^JÜRGEN", &sensitive));
    assert!(name.matches_value("müller^jürgen", &sensitive));

    let cs = key(tags::MODALITY, VR::CS, Matcher::Single("CT\\MR".into()));
    assert!(cs.matches_value("MR", &options));
    assert!(!cs.matches_value("mr", &options));

    let tm = key(
        tags::STUDY_TIME,
        VR::TM,
        Matcher::Range {
            from: Some("10".into()),
            to: Some("1015".into()),
        },
    );
    for (value, expected) in [
        ("095959.999999", false),
        ("10", true),
        ("1015", true),
        ("101559.999999", true),
        ("1016", false),
        ("bogus", false),
    ] {
        assert_eq!(tm.matches_value(value, &options), expected, "{value}");
    }
    let uids = key(
        tags::SOP_CLASS_UID,
        VR::UI,
        Matcher::UidList(vec![uid("1.2"), uid("1.3")]),
    );
    assert!(uids.matches_value("1.3", &options) && !uids.matches_value("1.4", &options));
}

#[test]
fn header_matching_with_sequences() {
    let instance = &corpus()[4];
    let header = Header::parse(&instance.dataset_bytes(EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let options = QueryOptions::default();
    let code = |matcher| Key {
        tag: tags::CODE_VALUE,
        vr: VR::SH,
        matcher,
    };
    let sequence = |keys| Key {
        tag: tags::PROCEDURE_CODE_SEQUENCE,
        vr: VR::SQ,
        matcher: Matcher::Sequence(keys),
    };
    assert!(header.matches(
        &sequence(vec![code(Matcher::Single("MRBR".into()))]),
        &options
    ));
    assert!(header.matches(
        &sequence(vec![code(Matcher::Wildcard("MR*".into()))]),
        &options
    ));
    assert!(!header.matches(
        &sequence(vec![code(Matcher::Single("CTCH".into()))]),
        &options
    ));
    assert!(header.matches(&sequence(vec![code(Matcher::Universal)]), &options));
    // An absent attribute matches only keys that do not constrain.
    let absent = |matcher| Key {
        tag: tags::OTHER_PATIENT_NAMES,
        vr: VR::PN,
        matcher,
    };
    assert!(header.matches(&absent(Matcher::Universal), &options));
    assert!(header.matches(&absent(Matcher::Wildcard("*".into())), &options));
    assert!(!header.matches(&absent(Matcher::Wildcard("*?".into())), &options));
}

fn element_str(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end()
        .to_owned()
}

#[test]
fn response_identifier_round_trip() {
    let instance = &corpus()[4];
    let mut header_obj = instance.dataset();
    header_obj.remove_element(tags::PIXEL_DATA);
    let header = encode(&header_obj, EXPLICIT_VR_LITTLE_ENDIAN);

    let mut obj = identifier(
        "STUDY",
        &[
            (tags::PATIENT_NAME, VR::PN, "müller*"),
            (tags::STUDY_INSTANCE_UID, VR::UI, ""),
            (tags::STUDY_DATE, VR::DA, ""),
            (tags::STUDY_DESCRIPTION, VR::LO, ""),
            (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
            (tags::MODALITIES_IN_STUDY, VR::CS, ""),
            (tags::ROWS, VR::US, ""),
            (tags::MODALITY, VR::CS, ""),
            (tags::PATIENT_COMMENTS, VR::LT, ""),
        ],
    );
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, "");
    obj.put(DataElement::new(
        tags::PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    let query = parse_identifier(
        &encode(&obj, IMPLICIT_VR_LITTLE_ENDIAN),
        IMPLICIT_VR_LITTLE_ENDIAN,
        QueryModel::StudyRoot,
    )
    .unwrap();

    let mut row = MatchRow {
        header: Some(header),
        ..MatchRow::default()
    };
    row.values
        .insert(tags::PATIENT_NAME, "Müller^Jürgen".into());
    row.values
        .insert(tags::STUDY_INSTANCE_UID, "1.2.3.2".into());
    row.values
        .insert(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "4".into());
    row.values
        .insert(tags::MODALITIES_IN_STUDY, "CT\\MR".into());
    // A value that does not fit its VR falls back to the header, then to empty.
    row.values.insert(tags::ROWS, "many".into());

    for ts in [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] {
        let bytes = response_identifier(&query, &row, ts).unwrap();
        let ts_entry = TransferSyntaxRegistry.get(ts).unwrap();
        let answer = InMemDicomObject::read_dataset_with_ts(bytes.as_slice(), ts_entry).unwrap();

        assert_eq!(
            element_str(&answer, tags::SPECIFIC_CHARACTER_SET),
            "ISO_IR 192"
        );
        assert_eq!(element_str(&answer, tags::QUERY_RETRIEVE_LEVEL), "STUDY");
        assert_eq!(element_str(&answer, tags::PATIENT_NAME), "Müller^Jürgen");
        assert_eq!(element_str(&answer, tags::STUDY_INSTANCE_UID), "1.2.3.2");
        // From the header copy.
        assert_eq!(element_str(&answer, tags::STUDY_DATE), "20240220");
        assert_eq!(element_str(&answer, tags::STUDY_DESCRIPTION), "MR BRAIN");
        assert_eq!(
            element_str(&answer, tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
            "4"
        );
        assert_eq!(
            answer
                .get(tags::MODALITIES_IN_STUDY)
                .unwrap()
                .to_multi_str()
                .unwrap()
                .as_ref(),
            ["CT", "MR"]
        );
        // Rows and Modality are below the study level: not taken from the header.
        assert_eq!(element_str(&answer, tags::ROWS), "");
        assert_eq!(element_str(&answer, tags::MODALITY), "");
        // Absent everywhere: present and empty.
        assert_eq!(element_str(&answer, tags::PATIENT_COMMENTS), "");
        // The sequence comes back with the asked-for item keys only.
        let items = answer
            .get(tags::PROCEDURE_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(element_str(&items[0], tags::CODE_VALUE), "MRBR");
        assert!(items[0].get(tags::CODE_MEANING).is_none());
        // Nothing but the keys, the level and the character set.
        assert_eq!(answer.iter().count(), query.keys.len() + 2);
    }

    // A numeric value from the index is encoded in its VR.
    row.values.insert(tags::ROWS, "512".into());
    let image = parse(
        QueryModel::StudyRoot,
        "IMAGE",
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2.1"),
            (tags::ROWS, VR::US, ""),
        ],
    )
    .unwrap();
    let bytes = response_identifier(&image, &row, EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
    let ts_entry = TransferSyntaxRegistry
        .get(EXPLICIT_VR_LITTLE_ENDIAN)
        .unwrap();
    let answer = InMemDicomObject::read_dataset_with_ts(bytes.as_slice(), ts_entry).unwrap();
    assert_eq!(
        answer.get(tags::ROWS).unwrap().to_int::<u16>().unwrap(),
        512
    );

    assert!(matches!(
        response_identifier(&image, &row, "1.2.840.10008.1.2.2"),
        Err(QueryError::Malformed(_))
    ));
    let broken = MatchRow {
        header: Some(vec![0xff; 9]),
        ..MatchRow::default()
    };
    assert!(matches!(
        response_identifier(&image, &broken, EXPLICIT_VR_LITTLE_ENDIAN),
        Err(QueryError::Malformed(_))
    ));
}

/// Responses without a header copy or sequence are written element by element; the bytes must
/// be those of writing the object `response_dataset` builds.
#[test]
fn primitive_responses_encode_as_the_object_would() {
    let query = parse(
        QueryModel::StudyRoot,
        "IMAGE",
        &[
            (tags::PATIENT_NAME, VR::PN, ""),
            (tags::PATIENT_ID, VR::LO, ""),
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.2"),
            (tags::STUDY_DATE, VR::DA, ""),
            (tags::STUDY_TIME, VR::TM, ""),
            (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
            (tags::MODALITIES_IN_STUDY, VR::CS, ""),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2.1"),
            (tags::ROWS, VR::US, ""),
            (tags::COLUMNS, VR::US, ""),
            (tags::PATIENT_COMMENTS, VR::LT, ""),
            (tags::STUDY_DESCRIPTION, VR::LO, ""),
        ],
    )
    .unwrap();
    let mut row = MatchRow::default();
    for (tag, value) in [
        (tags::PATIENT_NAME, "Müller^Jürgen"),
        (tags::PATIENT_ID, "P1"),
        (tags::STUDY_INSTANCE_UID, "1.2.3.2"),
        (tags::STUDY_DATE, "20240220"),
        (tags::STUDY_TIME, "101530.5"),
        (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "123"),
        (tags::MODALITIES_IN_STUDY, "CT\\MR\\PT"),
        (tags::SERIES_INSTANCE_UID, "1.2.3.2.1"),
        (tags::ROWS, "512"),
        // Not a number: answered empty.
        (tags::COLUMNS, "wide"),
        (tags::PATIENT_COMMENTS, "a\\b, ünd c"),
    ] {
        row.values.insert(tag, value.into());
    }
    for ts in [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] {
        let expected = encode(&response_dataset(&query, &row).unwrap(), ts);
        assert_eq!(response_identifier(&query, &row, ts).unwrap(), expected);
        let empty = MatchRow::default();
        let expected = encode(&response_dataset(&query, &empty).unwrap(), ts);
        assert_eq!(response_identifier(&query, &empty, ts).unwrap(), expected);
    }
}
