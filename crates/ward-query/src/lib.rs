//! Ward's query engine: what a C-FIND, C-GET or C-MOVE identifier (and later a QIDO-RS request)
//! asks for, how a value matches it (PS3.4 C.2.2.2), and how a match is answered.
//!
//! Everything here is pure: identifiers arrive as bytes the caller has already pre-scanned,
//! matches arrive as [`MatchRow`]s from the index, answers leave as bytes. The SQL that finds the
//! matches lives in `ward-index`, which uses this crate's parsed [`Query`], its value matching for
//! attributes it has no column for, and its sortable forms of dates and times.
//!
//! Matching rules, as Ward implements them:
//! - **universal**: an empty value (and a wildcard made only of `*`) matches everything, including
//!   entities without the attribute;
//! - **single value**: exact, except that PN values compare case-insensitively by default
//!   ([`QueryOptions::pn_case_insensitive`]) and DA, TM and DT values compare as the span of time
//!   they denote (`1015` matches 10:15:00 to 10:15:59.999999);
//! - **UID list**: backslash-separated UIDs (UI only), any of which may match;
//! - **wildcard**: `*` and `?` for AE, CS, LO, LT, PN, SH, ST, UC, UR and UT;
//! - **range**: `a-b`, `a-` and `-b` for DA, TM and DT; DT time zone offsets are ignored;
//! - **sequence**: a sequence key with one item matches an entity with any item matching all of
//!   the item's keys;
//! - several backslash-separated values in a key other than a UID list (PS3.4 leaves this
//!   undefined without extended negotiation) match when any one of them matches, which is what
//!   viewers sending `ModalitiesInStudy=CT\MR` expect;
//! - a multi-valued attribute matches when any of its values matches.

mod attributes;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod matching;
mod parse;
mod response;

use std::collections::BTreeMap;
use std::fmt;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use ward_types::Uid;

pub use attributes::attribute_level;
pub use matching::{Header, sortable, sortable_bounds};
pub use parse::{Hierarchy, parse_dataset, parse_identifier};
pub use response::{response_dataset, response_identifier, response_values, value_element};

/// Most keys (counting keys inside sequence items) one identifier may hold.
pub const MAX_KEYS: usize = 256;
/// Longest key value, in characters. The standard lets a key exceed its VR's length (a UID list
/// does); this bounds what one query can make the engine compare.
pub const MAX_VALUE_CHARS: usize = 1024;

/// A level of the query/retrieve information models, from (0008,0052) Query/Retrieve Level.
/// Ordered from the top of the hierarchy down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Patient,
    Study,
    Series,
    Image,
}

impl Level {
    /// The value of (0008,0052) for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "PATIENT",
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }

    /// The attribute that identifies an entity of this level (PS3.4 C.6.1.1, C.6.2.1).
    pub fn unique_key(self) -> Tag {
        match self {
            Level::Patient => tags::PATIENT_ID,
            Level::Study => tags::STUDY_INSTANCE_UID,
            Level::Series => tags::SERIES_INSTANCE_UID,
            Level::Image => tags::SOP_INSTANCE_UID,
        }
    }

    fn parse(value: &str) -> Option<Level> {
        match value {
            "PATIENT" => Some(Level::Patient),
            "STUDY" => Some(Level::Study),
            "SERIES" => Some(Level::Series),
            "IMAGE" => Some(Level::Image),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query/retrieve information model a SOP class names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryModel {
    PatientRoot,
    StudyRoot,
}

/// The DIMSE service a query/retrieve SOP class belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Find,
    Move,
    Get,
}

impl QueryModel {
    /// The model and service of a query/retrieve SOP class UID (PS3.4 C.6), or `None` for any
    /// other SOP class.
    pub fn from_sop_class(uid: &str) -> Option<(QueryModel, Service)> {
        let (model, service) = uid
            .trim_end_matches(['\0', ' '])
            .strip_prefix("1.2.840.10008.5.1.4.1.2.")?
            .split_once('.')?;
        let model = match model {
            "1" => QueryModel::PatientRoot,
            "2" => QueryModel::StudyRoot,
            _ => return None,
        };
        let service = match service {
            "1" => Service::Find,
            "2" => Service::Move,
            "3" => Service::Get,
            _ => return None,
        };
        Some((model, service))
    }

    /// The levels of the model, top down.
    pub fn levels(self) -> &'static [Level] {
        match self {
            QueryModel::PatientRoot => &[Level::Patient, Level::Study, Level::Series, Level::Image],
            QueryModel::StudyRoot => &[Level::Study, Level::Series, Level::Image],
        }
    }
}

/// How one key matches (PS3.4 C.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Empty value: every entity matches; the key only asks for the attribute's value.
    Universal,
    /// An exact value, trimmed of padding. Several backslash-separated values match when any one
    /// does (see the crate documentation).
    Single(String),
    /// Two or more UIDs (VR UI only); any may match.
    UidList(Vec<Uid>),
    /// A value with `*` or `?`. Several backslash-separated patterns match when any one does.
    Wildcard(String),
    /// A DA, TM or DT range; `None` is an open end. Bounds are as received (validated, not
    /// normalised); [`sortable_bounds`] gives their comparable form.
    Range {
        from: Option<String>,
        to: Option<String>,
    },
    /// A sequence key: the keys of its one item, or none for a sequence sent without items.
    Sequence(Vec<Key>),
}

impl Matcher {
    /// Whether the matcher narrows anything: universal keys, all-`*` wildcards and sequences of
    /// such keys only ask for values.
    pub fn constrains(&self) -> bool {
        match self {
            Matcher::Universal => false,
            Matcher::Wildcard(pattern) => !pattern.chars().all(|c| c == '*'),
            Matcher::Sequence(keys) => keys.iter().any(|k| k.matcher.constrains()),
            Matcher::Single(_) | Matcher::UidList(_) | Matcher::Range { .. } => true,
        }
    }
}

/// One key of an identifier: the attribute, the VR it arrived with, and how it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub tag: Tag,
    pub vr: VR,
    pub matcher: Matcher,
}

/// A parsed identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub level: Level,
    pub model: QueryModel,
    /// Every key of the identifier, including universal (return) keys, in tag order. Query/
    /// Retrieve Level and Specific Character Set are not keys and are not listed.
    pub keys: Vec<Key>,
}

impl Query {
    pub fn key(&self, tag: Tag) -> Option<&Key> {
        self.keys.iter().find(|k| k.tag == tag)
    }
}

/// Matching options a deployment may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Compare PN values case-insensitively (PS3.4 leaves PN matching to the implementation;
    /// clinicians type names in any case). On by default.
    pub pn_case_insensitive: bool,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            pn_case_insensitive: true,
        }
    }
}

/// Why an identifier was refused. Messages name attributes and levels, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the identifier has no Query/Retrieve Level (0008,0052)")]
    MissingLevel,
    #[error("the Query/Retrieve Level is not PATIENT, STUDY, SERIES or IMAGE")]
    InvalidLevel,
    #[error("the query level does not exist in this information model")]
    LevelNotInModel,
    #[error("the unique key of the {level} level is missing or not a single value")]
    UniqueKeyMissing { level: Level },
    #[error("key {tag} cannot be used this way")]
    InvalidKey { tag: Tag },
    #[error("key {tag} is not a valid date, time or range")]
    InvalidRange { tag: Tag },
    #[error("the identifier has more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("the value of key {tag} is longer than {MAX_VALUE_CHARS} characters")]
    ValueTooLong { tag: Tag },
    #[error("malformed identifier: {0}")]
    Malformed(String),
}

/// One match: attribute values known from the index, the representative instance's header copy
/// (for return keys the index has no column for), and computed attributes (in `values` too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRow {
    /// Values as UTF-8 text; several values separated by backslashes.
    pub values: BTreeMap<Tag, String>,
    /// A header copy as `ward-dicom` makes it (explicit VR little endian, UTF-8), which the
    /// producer of the row has checked with the pre-scan: parsing it sizes allocations from its
    /// declared lengths.
    pub header: Option<Vec<u8>>,
}

/// Whether every key at PATIENT or STUDY level (and, for a PATIENT or STUDY query, every key of
/// an attribute whose level Ward does not know) is universal or wildcard-only: the "give me every
/// patient" pattern that policy refuses to anyone but an administrator.
///
/// A query that designates series or instances by their UIDs names what it wants, whatever its
/// other keys: QIDO-RS `/instances?SeriesInstanceUID=…` searches across studies that way.
pub fn is_enumeration(query: &Query) -> bool {
    let designates = |key: &Key| {
        [Level::Series.unique_key(), Level::Image.unique_key()].contains(&key.tag)
            && matches!(key.matcher, Matcher::Single(_) | Matcher::UidList(_))
    };
    !query.keys.iter().any(designates)
        && query.keys.iter().all(|key| {
            let level = attribute_level(key.tag).unwrap_or(query.level);
            level > Level::Study || !key.matcher.constrains()
        })
}

/// Checks that a C-GET or C-MOVE identifier designates entities by a unique key (one value or a
/// UID list), so that a retrieve can never mean "everything": the query level's own unique key
/// (PS3.4 C.4.2.2.1), or, as relational retrieval allows, the unique key of a level above it
/// (say, every study of one Patient ID). Patient ID counts in the study root model too, where
/// patient attributes belong to the study level.
pub fn check_retrieve(query: &Query) -> Result<(), QueryError> {
    let designates = |level: Level| {
        query
            .key(level.unique_key())
            .is_some_and(|key| match &key.matcher {
                Matcher::Single(value) => !value.contains('\\'),
                Matcher::UidList(_) => true,
                _ => false,
            })
    };
    let levels = [Level::Patient, Level::Study, Level::Series, Level::Image];
    if levels
        .into_iter()
        .filter(|&level| level <= query.level)
        .any(designates)
    {
        Ok(())
    } else {
        Err(QueryError::UniqueKeyMissing { level: query.level })
    }
}

#[cfg(test)]
mod tests;

/// The keys of a query that constrain it, as text by attribute tag, for the audit trail.
pub fn audit_keys(query: &Query) -> serde_json::Value {
    fn render(matcher: &Matcher) -> Option<serde_json::Value> {
        match matcher {
            Matcher::Universal => None,
            Matcher::Single(v) | Matcher::Wildcard(v) => Some(v.clone().into()),
            Matcher::UidList(uids) => Some(
                uids.iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join("\\")
                    .into(),
            ),
            Matcher::Range { from, to } => Some(
                format!(
                    "{}-{}",
                    from.as_deref().unwrap_or(""),
                    to.as_deref().unwrap_or("")
                )
                .into(),
            ),
            Matcher::Sequence(keys) => {
                let inner: serde_json::Map<String, serde_json::Value> = keys
                    .iter()
                    .filter_map(|k| render(&k.matcher).map(|v| (tag_name(k.tag), v)))
                    .collect();
                (!inner.is_empty()).then(|| inner.into())
            }
        }
    }
    let mut keys: serde_json::Map<String, serde_json::Value> = query
        .keys
        .iter()
        .filter_map(|k| render(&k.matcher).map(|v| (tag_name(k.tag), v)))
        .collect();
    keys.insert("QueryRetrieveLevel".into(), query.level.as_str().into());
    keys.into()
}

fn tag_name(tag: dicom_core::Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}
