//! Parsing C-FIND, C-GET and C-MOVE identifiers into a [`Query`].

use dicom_core::header::Header as _;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ward_types::Uid;

use crate::attributes::{attribute_level, is_count};
use crate::matching::{End, sortable_at};
use crate::{Key, Level, MAX_KEYS, MAX_VALUE_CHARS, Matcher, Query, QueryError, QueryModel};

/// Parses a C-FIND/C-GET/C-MOVE identifier data set as received, in transfer syntax `ts_uid`,
/// for `model`.
///
/// The caller must already have pre-scanned the bytes with `ward_dicom::prescan_dataset`, so the
/// declared lengths are safe for dicom-object to allocate from. The identifier's Specific
/// Character Set is honoured (dicom-object decodes every text value with it).
///
/// Beyond the matching rules in the crate documentation, the identifier must follow the
/// hierarchical model (PS3.4 C.4.1.2.1): each level above the query level is designated by a
/// single value of its unique key, and attributes of levels below the query level may only be
/// asked for, not matched on.
pub fn parse_identifier(
    bytes: &[u8],
    ts_uid: &str,
    model: QueryModel,
) -> Result<Query, QueryError> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid.trim_end_matches(['\0', ' ']))
        .ok_or_else(|| QueryError::Malformed("unknown transfer syntax".into()))?;
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| QueryError::Malformed(e.to_string()))?;
    parse_dataset(&obj, model, Hierarchy::Strict)
}

/// Whether the levels above the query level must be designated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// Each level above the query level designated by a single value of its unique key
    /// (PS3.4 C.4.1.2.1): what C-FIND asks of a peer that did not negotiate relational queries.
    Strict,
    /// Upper levels may be left open: QIDO-RS `/series` and `/instances` search across all
    /// studies (PS3.18 10.6.1).
    Relational,
}

/// Parses an identifier already decoded into a data set (QIDO-RS builds one from its query
/// parameters), with the rules of [`parse_identifier`] and the given hierarchy.
pub fn parse_dataset(
    obj: &InMemDicomObject,
    model: QueryModel,
    hierarchy: Hierarchy,
) -> Result<Query, QueryError> {
    let level = obj
        .get(tags::QUERY_RETRIEVE_LEVEL)
        .ok_or(QueryError::MissingLevel)?
        .to_str()
        .map_err(|_| QueryError::InvalidLevel)?;
    let level = match level.trim_matches([' ', '\0']) {
        "" => return Err(QueryError::MissingLevel),
        value => Level::parse(value).ok_or(QueryError::InvalidLevel)?,
    };
    if !model.levels().contains(&level) {
        return Err(QueryError::LevelNotInModel);
    }

    let mut budget = MAX_KEYS;
    let keys = parse_keys(obj, &mut budget, true)?;

    let designated_levels = match hierarchy {
        Hierarchy::Strict => model.levels(),
        Hierarchy::Relational => &[],
    };
    for &upper in designated_levels.iter().take_while(|&&l| l < level) {
        let tag = upper.unique_key();
        let designated = keys
            .iter()
            .any(|k| k.tag == tag && matches!(&k.matcher, Matcher::Single(v) if !v.contains('\\')));
        if !designated {
            return Err(QueryError::UniqueKeyMissing { level: upper });
        }
    }
    if let Some(key) = keys
        .iter()
        .find(|k| attribute_level(k.tag).is_some_and(|l| l > level) && k.matcher.constrains())
    {
        return Err(QueryError::InvalidKey { tag: key.tag });
    }
    Ok(Query { level, model, keys })
}

/// The keys of a data set (the identifier, or a sequence item), counting each against `budget`.
fn parse_keys(
    obj: &InMemDicomObject,
    budget: &mut usize,
    top: bool,
) -> Result<Vec<Key>, QueryError> {
    let mut keys = Vec::new();
    for element in obj.iter() {
        let tag = element.tag();
        // Group lengths are encoding, not attributes; the character set and the level are
        // read separately.
        if tag.element() == 0
            || tag == tags::SPECIFIC_CHARACTER_SET
            || (top && tag == tags::QUERY_RETRIEVE_LEVEL)
        {
            continue;
        }
        // Command, meta and directory groups never hold attributes of an entity.
        if tag.group() < 0x0008 {
            return Err(QueryError::InvalidKey { tag });
        }
        *budget = budget.checked_sub(1).ok_or(QueryError::TooManyKeys)?;
        // A private creator names the block of the private keys that follow; its value is a
        // label, not something to match.
        let private_creator = tag.group() % 2 == 1 && (0x0010..=0x00FF).contains(&tag.element());
        let matcher = if private_creator {
            Matcher::Universal
        } else {
            parse_matcher(element, budget)?
        };
        if is_count(tag) && matcher.constrains() {
            return Err(QueryError::InvalidKey { tag });
        }
        keys.push(Key {
            tag,
            vr: element.vr(),
            matcher,
        });
    }
    Ok(keys)
}

fn parse_matcher(element: &InMemElement, budget: &mut usize) -> Result<Matcher, QueryError> {
    let tag = element.tag();
    let vr = element.vr();
    let invalid = QueryError::InvalidKey { tag };
    match element.value() {
        Value::Sequence(seq) => match seq.items() {
            [] => Ok(Matcher::Sequence(Vec::new())),
            [item] => Ok(Matcher::Sequence(parse_keys(item, budget, false)?)),
            // PS3.4 C.2.2.2.6: sequence matching takes exactly one item.
            _ => Err(invalid),
        },
        Value::PixelSequence(_) => Err(invalid),
        Value::Primitive(value) => {
            // Binary values have no matching semantics; they can only be asked for.
            if matches!(
                vr,
                VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
            ) {
                return if value.multiplicity() == 0 {
                    Ok(Matcher::Universal)
                } else {
                    Err(invalid)
                };
            }
            let raw = element.to_str().map_err(|_| invalid)?;
            if raw.chars().count() > MAX_VALUE_CHARS {
                return Err(QueryError::ValueTooLong { tag });
            }
            // Leading spaces are significant only in the text VRs.
            let value = match vr {
                VR::LT | VR::ST | VR::UT => raw.trim_end_matches([' ', '\0']),
                _ => raw.trim_matches([' ', '\0']),
            };
            if value.is_empty() {
                return Ok(Matcher::Universal);
            }
            text_matcher(tag, vr, value)
        }
    }
}

fn text_matcher(tag: Tag, vr: VR, value: &str) -> Result<Matcher, QueryError> {
    let invalid = QueryError::InvalidKey { tag };
    match vr {
        // Some SCUs send "*" in UID keys they do not constrain; it can only mean universal.
        VR::UI if value == "*" => Ok(Matcher::Universal),
        VR::UI => {
            let uids = value
                .split('\\')
                .map(Uid::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| invalid)?;
            match uids.as_slice() {
                [one] => Ok(Matcher::Single(one.to_string())),
                _ => Ok(Matcher::UidList(uids)),
            }
        }
        VR::DA | VR::TM | VR::DT => date_time_matcher(tag, vr, value),
        _ if value.contains(['*', '?']) => {
            if matches!(
                vr,
                VR::AE
                    | VR::CS
                    | VR::LO
                    | VR::LT
                    | VR::PN
                    | VR::SH
                    | VR::ST
                    | VR::UC
                    | VR::UR
                    | VR::UT
            ) {
                Ok(Matcher::Wildcard(value.to_owned()))
            } else {
                Err(invalid)
            }
        }
        _ => Ok(Matcher::Single(value.to_owned())),
    }
}

/// A single date/time value or a range; anything that is neither is refused, so that no
/// malformed value reaches a comparison (where it would silently match nothing).
fn date_time_matcher(tag: Tag, vr: VR, value: &str) -> Result<Matcher, QueryError> {
    let invalid = QueryError::InvalidRange { tag };
    // A DT with a negative UTC offset contains a hyphen too: a value that is a valid DT as a
    // whole is a single value.
    if sortable_at(vr, value, End::Start).is_some() {
        return Ok(Matcher::Single(value.to_owned()));
    }
    let bound = |s: &str, end: End| -> Result<Option<String>, ()> {
        if s.is_empty() {
            Ok(None)
        } else if sortable_at(vr, s, end).is_some() {
            Ok(Some(s.to_owned()))
        } else {
            Err(())
        }
    };
    // DA and TM have one hyphen at most; in DT it may also start a UTC offset, so take the
    // first split whose both sides are valid.
    for (i, _) in value.match_indices('-') {
        let (Some(from), Some(to)) = (value.get(..i), value.get(i + 1..)) else {
            continue;
        };
        if let (Ok(from), Ok(to)) = (bound(from, End::Start), bound(to, End::Finish)) {
            if from.is_none() && to.is_none() {
                break;
            }
            return Ok(Matcher::Range { from, to });
        }
    }
    Err(invalid)
}
