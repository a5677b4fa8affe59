//! Planning a query: which keys become conditions on the index's columns (answered by the
//! database) and which are left to Rust, matched against header copies of the candidates the
//! conditions let through. Nothing here is SQL; the SQLite module renders a [`Plan`].

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use ward_query::{Key, Level, Matcher, Query, QueryOptions, attribute_level, sortable_bounds};

/// The tables of the hierarchy, each with the alias every statement gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Patient,
    Study,
    Series,
    Instance,
}

impl Table {
    pub(crate) fn alias(self) -> &'static str {
        match self {
            Table::Patient => "p",
            Table::Study => "st",
            Table::Series => "se",
            Table::Instance => "i",
        }
    }

    fn level(self) -> Level {
        match self {
            Table::Patient => Level::Patient,
            Table::Study => Level::Study,
            Table::Series => Level::Series,
            Table::Instance => Level::Image,
        }
    }
}

/// How a column's values are stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// A PN column with an upper-cased twin for case-insensitive matching.
    Name {
        upper: &'static str,
    },
    /// A DA or TM column with its sortable twin (`ward_query::sortable`).
    DateTime {
        key: &'static str,
    },
    /// An integer column: answered from, never matched on (its key is matched on the header).
    Integer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub table: Table,
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(table: Table, name: &'static str, kind: Kind) -> Column {
    Column { table, name, kind }
}

/// The column that holds an attribute, if any.
pub(crate) fn column(tag: Tag) -> Option<Column> {
    use Kind::*;
    use Table::*;
    Some(match tag {
        tags::PATIENT_ID => col(Patient, "patient_id", Text),
        tags::ISSUER_OF_PATIENT_ID => col(Patient, "issuer_of_patient_id", Text),
        tags::PATIENT_NAME => col(
            Patient,
            "patient_name",
            Name {
                upper: "patient_name_upper",
            },
        ),
        tags::PATIENT_BIRTH_DATE => col(
            Patient,
            "patient_birth_date",
            DateTime {
                key: "patient_birth_date_key",
            },
        ),
        tags::PATIENT_SEX => col(Patient, "patient_sex", Text),
        tags::STUDY_INSTANCE_UID => col(Study, "study_instance_uid", Text),
        tags::STUDY_DATE => col(
            Study,
            "study_date",
            DateTime {
                key: "study_date_key",
            },
        ),
        tags::STUDY_TIME => col(
            Study,
            "study_time",
            DateTime {
                key: "study_time_key",
            },
        ),
        tags::ACCESSION_NUMBER => col(Study, "accession_number", Text),
        tags::STUDY_ID => col(Study, "study_id", Text),
        tags::STUDY_DESCRIPTION => col(Study, "study_description", Text),
        tags::REFERRING_PHYSICIAN_NAME => col(
            Study,
            "referring_physician_name",
            Name {
                upper: "referring_physician_name_upper",
            },
        ),
        tags::SERIES_INSTANCE_UID => col(Series, "series_instance_uid", Text),
        tags::MODALITY => col(Series, "modality", Text),
        tags::SERIES_NUMBER => col(Series, "series_number", Text),
        tags::SERIES_DESCRIPTION => col(Series, "series_description", Text),
        tags::SERIES_DATE => col(
            Series,
            "series_date",
            DateTime {
                key: "series_date_key",
            },
        ),
        tags::SERIES_TIME => col(
            Series,
            "series_time",
            DateTime {
                key: "series_time_key",
            },
        ),
        tags::BODY_PART_EXAMINED => col(Series, "body_part_examined", Text),
        tags::SOP_INSTANCE_UID => col(Instance, "sop_instance_uid", Text),
        tags::SOP_CLASS_UID => col(Instance, "sop_class_uid", Text),
        tags::INSTANCE_NUMBER => col(Instance, "instance_number", Text),
        tags::CONTENT_DATE => col(
            Instance,
            "content_date",
            DateTime {
                key: "content_date_key",
            },
        ),
        tags::CONTENT_TIME => col(
            Instance,
            "content_time",
            DateTime {
                key: "content_time_key",
            },
        ),
        tags::ROWS => col(Instance, "pixel_rows", Integer),
        tags::COLUMNS => col(Instance, "pixel_columns", Integer),
        tags::NUMBER_OF_FRAMES => col(Instance, "number_of_frames", Text),
        _ => return None,
    })
}

/// Attributes the index computes from the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Computed {
    PatientStudies,
    PatientSeries,
    PatientInstances,
    StudySeries,
    StudyInstances,
    SeriesInstances,
    /// Distinct values, backslash-separated, sorted.
    Modalities,
    SopClasses,
}

impl Computed {
    fn of(tag: Tag) -> Option<Computed> {
        Some(match tag {
            tags::NUMBER_OF_PATIENT_RELATED_STUDIES => Computed::PatientStudies,
            tags::NUMBER_OF_PATIENT_RELATED_SERIES => Computed::PatientSeries,
            tags::NUMBER_OF_PATIENT_RELATED_INSTANCES => Computed::PatientInstances,
            tags::NUMBER_OF_STUDY_RELATED_SERIES => Computed::StudySeries,
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES => Computed::StudyInstances,
            tags::NUMBER_OF_SERIES_RELATED_INSTANCES => Computed::SeriesInstances,
            tags::MODALITIES_IN_STUDY => Computed::Modalities,
            tags::SOP_CLASSES_IN_STUDY => Computed::SopClasses,
            _ => return None,
        })
    }

    /// The level of the entity the attribute describes.
    fn level(self) -> Level {
        match self {
            Computed::PatientStudies | Computed::PatientSeries | Computed::PatientInstances => {
                Level::Patient
            }
            Computed::StudySeries
            | Computed::StudyInstances
            | Computed::Modalities
            | Computed::SopClasses => Level::Study,
            Computed::SeriesInstances => Level::Series,
        }
    }
}

/// What a condition compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Column {
        table: Table,
        name: &'static str,
    },
    /// The modality of any series of the study.
    StudyModality,
    /// The SOP class of any instance of the study.
    StudySopClass,
}

/// One comparison of a condition's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Test {
    In(Vec<String>),
    Between(String, String),
    /// A DICOM wildcard pattern, with its literal prefix as a half-open range `[from, to)` (no
    /// upper end when the prefix has no successor) so an index on the target can serve it.
    Wildcard {
        pattern: String,
        prefix: Option<(String, Option<String>)>,
    },
}

/// A condition: the target passes any of the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub target: Target,
    pub tests: Vec<Test>,
}

/// A query, split between the database and Rust.
#[derive(Debug)]
pub(crate) struct Plan<'q> {
    /// The level whose entities match.
    pub level: Level,
    /// Conditions the database evaluates, all of which must hold.
    pub conditions: Vec<Condition>,
    /// Keys that constrain but have no column: matched in Rust against the header copy.
    pub header_keys: Vec<&'q Key>,
    /// Columns that answer requested keys.
    pub returns: Vec<(Tag, Column)>,
    pub computed: Vec<(Tag, Computed)>,
    /// Whether some requested key is answered from the header copy.
    pub answers_from_header: bool,
}

impl Plan<'_> {
    /// Whether each candidate's header copy must be read.
    pub(crate) fn reads_header(&self) -> bool {
        self.answers_from_header || !self.header_keys.is_empty()
    }
}

pub(crate) fn plan<'q>(query: &'q Query, options: &QueryOptions) -> Plan<'q> {
    let mut plan = Plan {
        level: query.level,
        conditions: Vec::new(),
        header_keys: Vec::new(),
        returns: Vec::new(),
        computed: Vec::new(),
        answers_from_header: false,
    };
    for key in &query.keys {
        // Below the query level a key can only ask (the parser refused matching there), and the
        // answer would be one arbitrary descendant's value: it stays empty.
        if attribute_level(key.tag).is_some_and(|level| level > query.level) {
            continue;
        }
        if let Some(computed) = Computed::of(key.tag) {
            if computed.level() <= query.level {
                plan.computed.push((key.tag, computed));
                if let Some(condition) = computed_condition(computed, key) {
                    plan.conditions.push(condition);
                }
            }
            continue;
        }
        match column(key.tag).filter(|c| c.table.level() <= query.level) {
            Some(column) => {
                plan.returns.push((key.tag, column));
                if key.matcher.constrains() {
                    match column_condition(column, key, options) {
                        Some(condition) => plan.conditions.push(condition),
                        None => plan.header_keys.push(key),
                    }
                }
            }
            None => {
                plan.answers_from_header = true;
                if key.matcher.constrains() {
                    plan.header_keys.push(key);
                }
            }
        }
    }
    plan
}

/// The values of a single-value or wildcard key: backslash-separated alternatives. An empty
/// one matches no value (absent patient identity columns hold '', which it must not match).
fn alternatives(value: &str) -> impl Iterator<Item = &str> {
    value.split('\\').filter(|v| !v.is_empty())
}

/// Tests for one wildcard alternative, or `None` when it matches everything.
fn wildcard_test(pattern: String) -> Option<Test> {
    if pattern.chars().all(|c| c == '*') {
        return None;
    }
    if !pattern.contains(['*', '?']) {
        return Some(Test::In(vec![pattern]));
    }
    let literal: String = pattern
        .chars()
        .take_while(|c| !matches!(c, '*' | '?'))
        .collect();
    let prefix = (!literal.is_empty()).then(|| {
        let end = successor(&literal);
        (literal, end)
    });
    Some(Test::Wildcard { pattern, prefix })
}

/// The least string greater than every string starting with `prefix` (in code point order,
/// which is UTF-8 byte order), or `None` if there is none.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Tests for a single-value or wildcard key's alternatives, folded by `fold`; `None` when one
/// alternative matches everything.
fn text_tests(matcher: &Matcher, fold: impl Fn(&str) -> String) -> Option<Vec<Test>> {
    let mut exact = Vec::new();
    let mut tests = Vec::new();
    match matcher {
        Matcher::Single(value) => exact.extend(alternatives(value).map(&fold)),
        Matcher::Wildcard(value) => {
            for alternative in alternatives(value) {
                match wildcard_test(fold(alternative))? {
                    Test::In(values) => exact.extend(values),
                    test => tests.push(test),
                }
            }
        }
        Matcher::UidList(uids) => exact.extend(uids.iter().map(|u| u.as_str().to_owned())),
        _ => return None,
    }
    if !exact.is_empty() {
        tests.push(Test::In(exact));
    }
    Some(tests)
}

fn column_condition(column: Column, key: &Key, options: &QueryOptions) -> Option<Condition> {
    let target = |name| Target::Column {
        table: column.table,
        name,
    };
    let tests = match (column.kind, &key.matcher) {
        (Kind::Integer, _) | (_, Matcher::Sequence(_)) => return None,
        (Kind::DateTime { key: sortable }, Matcher::Single(_) | Matcher::Range { .. }) => {
            // A key sent with a VR other than the column's (say LO for StudyDate) has no
            // sortable bounds: it is matched in Rust as the text it is.
            let (from, to) = sortable_bounds(key)?;
            return Some(Condition {
                target: target(sortable),
                tests: vec![Test::Between(from, to)],
            });
        }
        (Kind::Name { upper }, matcher) if options.pn_case_insensitive => {
            return Some(Condition {
                target: target(upper),
                tests: text_tests(matcher, str::to_uppercase)?,
            });
        }
        (_, matcher) => text_tests(matcher, str::to_owned)?,
    };
    Some(Condition {
        target: target(column.name),
        tests,
    })
}

fn computed_condition(computed: Computed, key: &Key) -> Option<Condition> {
    let target = match computed {
        Computed::Modalities => Target::StudyModality,
        Computed::SopClasses => Target::StudySopClass,
        // Counts are return keys only (the parser refused values for them).
        _ => return None,
    };
    if !key.matcher.constrains() {
        return None;
    }
    Some(Condition {
        target,
        tests: text_tests(&key.matcher, str::to_owned)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors() {
        assert_eq!(successor("DOE").as_deref(), Some("DOF"));
        assert_eq!(successor("A\u{10FFFF}").as_deref(), Some("B"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor("MÜ").as_deref(), Some("MÝ"));
    }

    #[test]
    fn wildcard_tests() {
        assert_eq!(wildcard_test("**".into()), None);
        assert_eq!(
            wildcard_test("DOE".into()),
            Some(Test::In(vec!["DOE".into()]))
        );
        assert_eq!(
            wildcard_test("DO?*".into()),
            Some(Test::Wildcard {
                pattern: "DO?*".into(),
                prefix: Some(("DO".into(), Some("DP".into())))
            })
        );
        assert_eq!(
            wildcard_test("*E".into()),
            Some(Test::Wildcard {
                pattern: "*E".into(),
                prefix: None
            })
        );
    }
}
