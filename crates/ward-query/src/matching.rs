//! Value matching in Rust: for attributes the index has no column for (matched against a stored
//! header copy), and the sortable forms of dates and times that both sides of a range compare.

use dicom_core::VR;
use dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::{Key, Matcher, QueryError, QueryOptions};

/// Which end of the span a partial date or time stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Start,
    Finish,
}

/// The sortable form of a DA, TM or DT value, or `None` when the VR is another or the value is
/// not a valid date or time. Sortable forms of one VR have one length and compare as the times
/// they denote when compared as strings:
/// - DA `YYYYMMDD` (the pre-1993 `YYYY.MM.DD` is read too);
/// - TM `HHMMSS.FFFFFF`, missing parts filled with zeros (`HH:MM:SS` is read too);
/// - DT `YYYYMMDDHHMMSS.FFFFFF`, missing parts filled with their first value; a UTC offset is
///   dropped, so values compare as written.
pub fn sortable(vr: VR, value: &str) -> Option<String> {
    sortable_at(vr, value.trim_matches([' ', '\0']), End::Start)
}

/// The inclusive sortable bounds of a DA, TM or DT key with a single value or a range, or `None`
/// for any other key. A partial upper bound stands for the end of its span (`-1015` includes
/// 10:15:59.999999); an open end is a bound no valid value passes.
pub fn sortable_bounds(key: &Key) -> Option<(String, String)> {
    let (from, to) = match &key.matcher {
        Matcher::Single(value) => (Some(value.as_str()), Some(value.as_str())),
        Matcher::Range { from, to } => (from.as_deref(), to.as_deref()),
        _ => return None,
    };
    let (lowest, highest) = open_bounds(key.vr)?;
    let from = match from {
        Some(value) => sortable_at(key.vr, value, End::Start)?,
        None => lowest.to_owned(),
    };
    let to = match to {
        Some(value) => sortable_at(key.vr, value, End::Finish)?,
        None => highest.to_owned(),
    };
    Some((from, to))
}

/// Bounds below and above every sortable value of the VR.
fn open_bounds(vr: VR) -> Option<(&'static str, &'static str)> {
    match vr {
        VR::DA => Some(("00000000", "99999999")),
        VR::TM => Some(("000000.000000", "999999.999999")),
        VR::DT => Some(("00000000000000.000000", "99999999999999.999999")),
        _ => None,
    }
}

pub(crate) fn sortable_at(vr: VR, value: &str, end: End) -> Option<String> {
    match vr {
        VR::DA => sortable_date(value),
        VR::TM => sortable_time(value, end),
        VR::DT => sortable_datetime(value, end),
        _ => None,
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn sortable_date(value: &str) -> Option<String> {
    let digits: String = if value.len() == 10 && value.as_bytes().get(4) == Some(&b'.') {
        value.replace('.', "")
    } else {
        value.to_owned()
    };
    (digits.len() == 8 && all_digits(&digits)).then_some(digits)
}

/// Appends the fraction `frac` (digits, at most six) padded for `end`.
fn push_fraction(out: &mut String, frac: &str, end: End) {
    out.push('.');
    out.push_str(frac);
    let fill = if end == End::Start { '0' } else { '9' };
    out.extend(std::iter::repeat_n(fill, 6 - frac.len()));
}

/// Splits `HHMMSS.FFFFFF`-like text into its digits and its fraction; the fraction is only
/// allowed after a full `HHMMSS` (or date and time, for DT), as PS3.5 writes it.
fn split_fraction(value: &str, full: usize) -> Option<(&str, &str)> {
    let (whole, frac) = match value.split_once('.') {
        Some((whole, frac)) => {
            if whole.len() != full || frac.is_empty() || frac.len() > 6 || !all_digits(frac) {
                return None;
            }
            (whole, frac)
        }
        None => (value, ""),
    };
    all_digits(whole).then_some((whole, frac))
}

fn sortable_time(value: &str, end: End) -> Option<String> {
    let value = value.replace(':', "");
    let (hms, frac) = split_fraction(&value, 6)?;
    if ![2, 4, 6].contains(&hms.len()) {
        return None;
    }
    let mut out = String::with_capacity(13);
    out.push_str(hms);
    let rest = if end == End::Start { "0000" } else { "5959" };
    out.push_str(rest.get(hms.len() - 2..)?);
    push_fraction(&mut out, frac, end);
    Some(out)
}

fn sortable_datetime(value: &str, end: End) -> Option<String> {
    // A UTC offset (&ZZXX) follows the digits and fraction.
    let split = value
        .len()
        .checked_sub(5)
        .and_then(|i| Some((value.get(..i)?, value.get(i..)?)));
    let value = match split {
        Some((head, offset))
            if offset.starts_with(['+', '-']) && offset.get(1..).is_some_and(all_digits) =>
        {
            head
        }
        _ => value,
    };
    let (digits, frac) = split_fraction(value, 14)?;
    if ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return None;
    }
    let mut out = String::with_capacity(21);
    out.push_str(digits);
    let rest = if end == End::Start {
        "0101000000"
    } else {
        "1231235959"
    };
    out.push_str(rest.get(digits.len() - 4..)?);
    push_fraction(&mut out, frac, end);
    Some(out)
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and `?`
/// one character. Linear in the text for each star (the classic backtracking to the last star),
/// so O(pattern × text) at worst; both are capped at 1024 characters by the parser and the
/// header copy.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The position after the last star seen, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after, from)) => {
                    // Let the last star swallow one more character and retry from there.
                    pi = after;
                    ti = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

impl Key {
    /// Whether one value of an entity's attribute (trimmed of padding, not empty) matches the
    /// key. Sequence keys match data sets, not values: see [`Header::matches`].
    pub fn matches_value(&self, value: &str, options: &QueryOptions) -> bool {
        let fold = self.vr == VR::PN && options.pn_case_insensitive;
        let folded = |s: &str| {
            if fold { s.to_uppercase() } else { s.to_owned() }
        };
        match &self.matcher {
            Matcher::Universal => true,
            Matcher::UidList(uids) => uids.iter().any(|uid| uid.as_str() == value),
            Matcher::Single(_) | Matcher::Range { .. } if open_bounds(self.vr).is_some() => {
                match (sortable_bounds(self), sortable(self.vr, value)) {
                    (Some((from, to)), Some(v)) => from <= v && v <= to,
                    _ => false,
                }
            }
            Matcher::Single(wanted) => {
                let value = folded(value);
                wanted.split('\\').any(|w| folded(w) == value)
            }
            Matcher::Wildcard(pattern) => {
                let value = folded(value);
                pattern
                    .split('\\')
                    .any(|p| wildcard_match(&folded(p), &value))
            }
            Matcher::Range { .. } | Matcher::Sequence(_) => false,
        }
    }
}

/// A stored header copy, parsed for matching and for answering return keys.
#[derive(Debug, Clone)]
pub struct Header {
    pub(crate) obj: InMemDicomObject,
}

impl Header {
    /// Parses a header copy (explicit VR little endian). The bytes must have passed
    /// `ward_dicom::prescan_dataset`: dicom-object sizes allocations from declared lengths.
    pub fn parse(bytes: &[u8]) -> Result<Header, QueryError> {
        let ts = TransferSyntaxRegistry
            .get(EXPLICIT_VR_LITTLE_ENDIAN)
            .ok_or_else(|| QueryError::Malformed("explicit VR little endian is unknown".into()))?;
        let obj = InMemDicomObject::read_dataset_with_ts(bytes, ts)
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
        Ok(Header { obj })
    }

    /// Whether the entity this header stands for matches `key`. An absent or empty attribute
    /// matches only keys that do not constrain.
    pub fn matches(&self, key: &Key, options: &QueryOptions) -> bool {
        matches_in(&self.obj, key, options)
    }
}

fn matches_in(obj: &InMemDicomObject, key: &Key, options: &QueryOptions) -> bool {
    if !key.matcher.constrains() {
        return true;
    }
    let Some(element) = obj.get(key.tag) else {
        return false;
    };
    if let Matcher::Sequence(item_keys) = &key.matcher {
        return element.items().is_some_and(|items| {
            items
                .iter()
                .any(|item| item_keys.iter().all(|k| matches_in(item, k, options)))
        });
    }
    let Ok(values) = element.to_multi_str() else {
        return false;
    };
    values
        .iter()
        .map(|v| v.trim_matches([' ', '\0']))
        .filter(|v| !v.is_empty())
        .any(|v| key.matches_value(v, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*", "abc", true),
            ("a*", "bac", false),
            ("*c", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*b*", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("??", "ü1", true),
            ("", "", true),
            ("", "a", false),
            ("a**", "a", true),
            ("*a*a*a*a*b", &"a".repeat(1024), false),
        ] {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn sortable_forms() {
        assert_eq!(sortable(VR::DA, "20240102").as_deref(), Some("20240102"));
        assert_eq!(sortable(VR::DA, "2024.01.02").as_deref(), Some("20240102"));
        assert_eq!(sortable(VR::DA, "2024010"), None);
        assert_eq!(sortable(VR::DA, "2024O102"), None);
        assert_eq!(sortable(VR::TM, "10").as_deref(), Some("100000.000000"));
        assert_eq!(sortable(VR::TM, "1015").as_deref(), Some("101500.000000"));
        assert_eq!(
            sortable(VR::TM, "101530.25").as_deref(),
            Some("101530.250000")
        );
        assert_eq!(
            sortable(VR::TM, "10:15:30").as_deref(),
            Some("101530.000000")
        );
        assert_eq!(sortable(VR::TM, "1015.5"), None);
        assert_eq!(sortable(VR::TM, "101"), None);
        assert_eq!(sortable(VR::TM, "101530.1234567"), None);
        assert_eq!(
            sortable(VR::DT, "2024").as_deref(),
            Some("20240101000000.000000")
        );
        assert_eq!(
            sortable(VR::DT, "20240220141530.5+0100").as_deref(),
            Some("20240220141530.500000")
        );
        assert_eq!(
            sortable(VR::DT, "202402201415-0500").as_deref(),
            Some("20240220141500.000000")
        );
        assert_eq!(sortable(VR::DT, "20240"), None);
        assert_eq!(sortable(VR::LO, "20240101"), None);
        assert_eq!(
            sortable_at(VR::TM, "10", End::Finish).as_deref(),
            Some("105959.999999")
        );
        assert_eq!(
            sortable_at(VR::DT, "202402", End::Finish).as_deref(),
            Some("20240231235959.999999")
        );
    }
}
