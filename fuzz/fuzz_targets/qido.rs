//! QIDO-RS query strings: `ward_web::parse_search` (what every QIDO-RS route calls on the raw
//! query string), then `ward_query::parse_dataset`, `is_enumeration` and `audit_keys` on what it
//! built, as the search handler calls them.
//!
//! Input: one configuration byte, then the query string (the part of the URL after `?`).
//! - bits 0–2 (modulo 6): the route, which fixes the level and the path scope: `/studies`,
//!   `/studies/{study}/series`, `/studies/{study}/instances`,
//!   `/studies/{study}/series/{series}/instances`, `/series`, `/instances`;
//! - bit 3: the bytes are percent-encoded (all but `&`, `=`, `,`, `.` and ASCII alphanumerics),
//!   so that decoded names and values may be any bytes, invalid UTF-8 included; otherwise the
//!   bytes are read as UTF-8 (lossily), as axum hands the handler the raw query;
//! - bit 4: the path's UIDs come from the input too: the text before the first `?` is
//!   `study[/series]` and the query string follows it; otherwise they are fixed valid UIDs.
//!
//! Properties:
//! - nothing panics;
//! - a query string longer than `MAX_QUERY_STRING` is refused;
//! - an accepted one has at most 64 parameters (`qido::MAX_PARAMS`), and the identifier built
//!   from it at most that many constraining keys plus the path's UIDs;
//! - a path scope cannot be widened by the query: the study (and series) of the path is the
//!   key's single value, and a search scoped to a study is never an enumeration;
//! - parsing allocates at most a constant factor of the query string's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_query::{Hierarchy, Level, Matcher, QueryModel, parse_dataset};
use ward_web::{MAX_QUERY_STRING, parse_search};

/// `qido::MAX_PARAMS`: parameters one query string may hold.
const MAX_PARAMS: usize = 64;

const STUDY: &str = "1.2.826.0.1.3680043.2.1125.1";
const SERIES: &str = "1.2.826.0.1.3680043.2.1125.1.1";

/// The QIDO-RS routes: level, and whether the path names a study and a series.
const ROUTES: [(Level, bool, bool); 6] = [
    (Level::Study, false, false),
    (Level::Series, true, false),
    (Level::Image, true, false),
    (Level::Image, true, true),
    (Level::Series, false, false),
    (Level::Image, false, false),
];

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'&' | b'=' | b',' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn warm_up() {
    // The data dictionary's keyword index is built on first use.
    let _ = parse_search(Level::Study, None, None, "PatientName=A*&includefield=all");
}

fuzz_target!(
    init: ward_fuzz::init("qido", ward_fuzz::seeds::qido, warm_up),
    |data: &[u8]| {
        let Some((&config, bytes)) = data.split_first() else {
            return;
        };
        let (level, has_study, has_series) = ROUTES[usize::from(config & 0x07) % ROUTES.len()];
        let (path, bytes) = if config & 0x10 != 0 {
            match bytes.iter().position(|&b| b == b'?') {
                Some(i) => (Some(String::from_utf8_lossy(&bytes[..i])), &bytes[i + 1..]),
                None => (Some(String::from_utf8_lossy(bytes)), &[][..]),
            }
        } else {
            (None, bytes)
        };
        let (study, series) = match &path {
            Some(path) => {
                let (study, series) = path.split_once('/').unwrap_or((path, SERIES));
                (study.to_owned(), series.to_owned())
            }
            None => (STUDY.to_owned(), SERIES.to_owned()),
        };
        let study = has_study.then_some(study.as_str());
        let series = has_series.then_some(series.as_str());
        let query = if config & 0x08 != 0 {
            percent_encode(bytes)
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };

        ward_fuzz::with_budget(ward_fuzz::parse_budget(query.len()), || {
            let search = parse_search(level, study, series, &query);
            if query.len() > MAX_QUERY_STRING {
                assert!(search.is_err(), "a query string of {} bytes was accepted", query.len());
            }
            let Ok(search) = search else {
                return;
            };
            let params = form_urlencoded::parse(query.as_bytes()).count();
            assert!(params <= MAX_PARAMS, "{params} parameters accepted");

            let Ok(parsed) =
                parse_dataset(&search.identifier, QueryModel::StudyRoot, Hierarchy::Relational)
            else {
                return;
            };
            assert_eq!(parsed.level, level);
            let constraining = parsed.keys.iter().filter(|k| k.matcher.constrains()).count();
            let scoped = usize::from(study.is_some()) + usize::from(series.is_some());
            assert!(
                constraining <= params + scoped,
                "{constraining} constraining keys from {params} parameters"
            );
            for (uid, level) in [(study, Level::Study), (series, Level::Series)] {
                let Some(uid) = uid else { continue };
                let matcher = parsed.key(level.unique_key()).map(|k| &k.matcher);
                assert!(
                    matches!(matcher, Some(Matcher::Single(v)) if v == uid),
                    "the path's {level:?} UID {uid} became {matcher:?}"
                );
            }
            let enumeration = ward_query::is_enumeration(&parsed);
            assert!(
                !(enumeration && study.is_some()),
                "a search scoped to a study counts as an enumeration"
            );
            let _ = ward_query::audit_keys(&parsed);
        });
    }
);
