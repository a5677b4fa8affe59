//! Rendering a [`Plan`] as SQLite SQL and running it.
//!
//! Values are always bound parameters; the statement text is assembled only from the fixed
//! fragments below and the column names of [`crate::plan`]. Rows stream from the database
//! (sqlx reads them on demand), so memory per query is bounded by the answer's limit whatever
//! the number of candidates; keys without a column are checked on each candidate's header copy
//! as it arrives, at most [`MAX_HEADER_CANDIDATES`] of them.
//!
//! A plan that never reads header copies (every requested key has a column or is computed) is
//! answered in one row instead: a JSON array with one array of values per match, built by the
//! database under the answer's limit. Each row sqlx hands over costs a copy of every value on
//! its worker thread, a free on ours and a hand-over between the two threads; for a study
//! browser's query that per-row cost was most of the cost of a match.
//!
//! Dialect notes for a PostgreSQL port: `GLOB` (case-sensitive `*`/`?` patterns on
//! BINARY-collated text; `LIKE` with escaping is the portable spelling), `group_concat`
//! (`string_agg`), `json_group_array` and `json_array` (`json_agg` and `json_build_array`) and
//! `CROSS JOIN … ON` as a join-order hint (a plain `JOIN` there) are the only SQLite-specific
//! pieces.

use std::collections::BTreeMap;

use dicom_core::Tag;
use futures_util::TryStreamExt;
use serde::de::{Deserialize, Deserializer, Visitor};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use ward_dicom::PrescanLimits;
use ward_query::{Header, Level, MatchRow, QueryOptions};

use super::instance_row;
use crate::plan::{Computed, Condition, Kind, Plan, Target, Test};
use crate::{IndexError, InstanceRow};

/// Most candidates one query may check against header copies. Keys without a column scan the
/// candidates the column conditions let through; past this many the query is refused as too
/// broad rather than left to run for a time that grows with the archive.
pub const MAX_HEADER_CANDIDATES: u64 = 10_000;

/// Largest header copy accepted from the database (ward-dicom writes at most 64 KiB).
const MAX_HEADER_BYTES: usize = 1 << 20;

const FROM_PATIENT: &str = " FROM patient p";
const FROM_STUDY: &str = " FROM study st JOIN patient p ON p.id = st.patient_fk";
const FROM_SERIES: &str = " FROM series se JOIN study st ON st.id = se.study_fk \
     JOIN patient p ON p.id = st.patient_fk";
const FROM_INSTANCE: &str = " FROM instance i JOIN series se ON se.id = i.series_fk \
     JOIN study st ON st.id = se.study_fk JOIN patient p ON p.id = st.patient_fk";

fn from_clause(level: Level) -> &'static str {
    match level {
        Level::Patient => FROM_PATIENT,
        Level::Study => FROM_STUDY,
        Level::Series => FROM_SERIES,
        Level::Image => FROM_INSTANCE,
    }
}

/// Joins from the entities of `level` down to their instances. CROSS JOIN makes SQLite keep the
/// matched entities as the outer loop: without statistics its planner would otherwise rather
/// scan every instance than descend from a range on a patient or study index.
fn descend_to_instances(level: Level) -> &'static str {
    match level {
        Level::Patient => {
            " CROSS JOIN study st ON st.patient_fk = p.id \
             CROSS JOIN series se ON se.study_fk = st.id \
             CROSS JOIN instance i ON i.series_fk = se.id"
        }
        Level::Study => {
            " CROSS JOIN series se ON se.study_fk = st.id \
             CROSS JOIN instance i ON i.series_fk = se.id"
        }
        Level::Series => " CROSS JOIN instance i ON i.series_fk = se.id",
        Level::Image => "",
    }
}

/// The header copy of one instance under the current entity. Which one is unspecified but
/// stable: the first the indexes lead to, so the lookup costs one index probe per level.
fn header_expr(level: Level) -> &'static str {
    match level {
        Level::Patient => {
            "(SELECT h.header FROM study hst JOIN series hs ON hs.study_fk = hst.id \
             JOIN instance h ON h.series_fk = hs.id WHERE hst.patient_fk = p.id LIMIT 1)"
        }
        Level::Study => {
            "(SELECT h.header FROM series hs JOIN instance h ON h.series_fk = hs.id \
             WHERE hs.study_fk = st.id LIMIT 1)"
        }
        Level::Series => "(SELECT h.header FROM instance h WHERE h.series_fk = se.id LIMIT 1)",
        Level::Image => "i.header",
    }
}

fn computed_expr(computed: Computed) -> &'static str {
    match computed {
        Computed::PatientStudies => "(SELECT COUNT(*) FROM study c WHERE c.patient_fk = p.id)",
        Computed::PatientSeries => {
            "(SELECT COUNT(*) FROM study c JOIN series cs ON cs.study_fk = c.id \
             WHERE c.patient_fk = p.id)"
        }
        Computed::PatientInstances => {
            "(SELECT COUNT(*) FROM study c JOIN series cs ON cs.study_fk = c.id \
             JOIN instance ci ON ci.series_fk = cs.id WHERE c.patient_fk = p.id)"
        }
        // Kept up to date by the insert transaction (migration 0006): reading them costs
        // nothing beyond the study row a study-level match reads anyway.
        Computed::StudySeries => "st.series_count",
        Computed::StudyInstances => "st.instance_count",
        Computed::SeriesInstances => {
            "(SELECT COUNT(*) FROM instance ci WHERE ci.series_fk = se.id)"
        }
        // Distinct values joined with commas (neither CS nor UI values contain one); sorted and
        // re-joined with backslashes in Rust. The study's modalities are kept in its row.
        Computed::Modalities => "st.modalities",
        Computed::SopClasses => {
            "(SELECT group_concat(DISTINCT ci.sop_class_uid) FROM series cs \
             JOIN instance ci ON ci.series_fk = cs.id WHERE cs.study_fk = st.id)"
        }
    }
}

/// A DICOM wildcard pattern as a GLOB pattern: `*` and `?` mean the same in both; `[` opens a
/// character class in GLOB and is the only other character to escape.
fn glob_pattern(pattern: &str) -> String {
    pattern.replace('[', "[[]")
}

fn push_test(qb: &mut QueryBuilder<'_, Sqlite>, expr: &str, test: &Test) {
    match test {
        Test::In(values) => {
            qb.push(expr);
            qb.push(" IN (");
            let mut list = qb.separated(", ");
            for value in values {
                list.push_bind(value.clone());
            }
            qb.push(")");
        }
        Test::Between(from, to) => {
            qb.push(expr);
            qb.push(" BETWEEN ");
            qb.push_bind(from.clone());
            qb.push(" AND ");
            qb.push_bind(to.clone());
        }
        Test::Wildcard { pattern, prefix } => {
            qb.push("(");
            // The range on the literal prefix is what lets an index serve the pattern whatever
            // SQLite's LIKE/GLOB optimisation decides for a bound parameter.
            if let Some((from, to)) = prefix {
                qb.push(expr);
                qb.push(" >= ");
                qb.push_bind(from.clone());
                qb.push(" AND ");
                if let Some(to) = to {
                    qb.push(expr);
                    qb.push(" < ");
                    qb.push_bind(to.clone());
                    qb.push(" AND ");
                }
            }
            qb.push(expr);
            qb.push(" GLOB ");
            qb.push_bind(glob_pattern(pattern));
            qb.push(")");
        }
    }
}

fn push_condition(qb: &mut QueryBuilder<'_, Sqlite>, condition: &Condition) {
    let (open, expr, close) = match &condition.target {
        Target::Column { table, name } => ("", format!("{}.{name}", table.alias()), ""),
        Target::StudyModality => (
            "EXISTS (SELECT 1 FROM series fs WHERE fs.study_fk = st.id AND ",
            "fs.modality".to_owned(),
            ")",
        ),
        Target::StudySopClass => (
            "EXISTS (SELECT 1 FROM series fs JOIN instance fi ON fi.series_fk = fs.id \
             WHERE fs.study_fk = st.id AND ",
            "fi.sop_class_uid".to_owned(),
            ")",
        ),
    };
    qb.push(open);
    qb.push("(");
    for (i, test) in condition.tests.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        push_test(qb, &expr, test);
    }
    // A condition without tests cannot come out of the planner; it would match nothing.
    if condition.tests.is_empty() {
        qb.push("0");
    }
    qb.push(")");
    qb.push(close);
}

fn push_where(qb: &mut QueryBuilder<'_, Sqlite>, plan: &Plan<'_>) {
    for (i, condition) in plan.conditions.iter().enumerate() {
        qb.push(if i == 0 { " WHERE " } else { " AND " });
        push_condition(qb, condition);
    }
}

/// The expressions answering the plan's requested keys: its columns in plan order, then its
/// computed attributes.
fn answer_exprs(plan: &Plan<'_>) -> Vec<String> {
    let columns = plan
        .returns
        .iter()
        .map(|(_, column)| format!("{}.{}", column.table.alias(), column.name));
    let computed = plan
        .computed
        .iter()
        .map(|(_, computed)| computed_expr(*computed).to_owned());
    columns.chain(computed).collect()
}

/// Appends the statement that finds `plan`'s matches.
///
/// When the plan reads header copies: one row per match, with the returned columns in plan
/// order, the computed attributes, then the header copy. Otherwise one row holding the whole
/// answer as a JSON array of arrays, each with the same values in the same order (see
/// [`answer_rows`]); the limit applies to the matches inside it.
pub(super) fn push_find(qb: &mut QueryBuilder<'_, Sqlite>, plan: &Plan<'_>, limit: Option<u32>) {
    let exprs = answer_exprs(plan);
    let aggregated = !plan.reads_header();
    if aggregated {
        qb.push("SELECT json_group_array(json_array(");
        let mut cells = qb.separated(", ");
        for i in 0..exprs.len() {
            cells.push(format!("a{i}"));
        }
        qb.push(")) FROM (");
    }
    qb.push("SELECT ");
    let mut select = qb.separated(", ");
    // A constant first column keeps the list valid when nothing else is selected.
    select.push("1");
    for (i, expr) in exprs.iter().enumerate() {
        if aggregated {
            select.push(format!("{expr} AS a{i}"));
        } else {
            select.push(expr);
        }
    }
    if plan.reads_header() {
        select.push(header_expr(plan.level));
    }
    qb.push(from_clause(plan.level));
    push_where(qb, plan);
    if let Some(limit) = limit {
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(limit));
    }
    if aggregated {
        qb.push(") AS answer");
    }
}

/// Appends the statement that lists the instances under `plan`'s matches (with each instance's
/// own header copy when keys must be checked on it).
pub(super) fn push_retrieve(
    qb: &mut QueryBuilder<'_, Sqlite>,
    plan: &Plan<'_>,
    limit: Option<u32>,
) {
    qb.push(concat!("SELECT ", instance_columns!()));
    if !plan.header_keys.is_empty() {
        // After the InstanceRow columns, which instance_row reads by position.
        qb.push(", i.header");
    }
    qb.push(from_clause(plan.level));
    qb.push(descend_to_instances(plan.level));
    push_where(qb, plan);
    if let Some(limit) = limit {
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(limit));
    }
}

/// Reads a header copy column, checked with the pre-scan before anything parses it: a damaged
/// database must not make dicom-object allocate from a bogus declared length.
fn header_column(row: &SqliteRow, index: usize) -> Result<Option<Vec<u8>>, IndexError> {
    let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>(index)? else {
        return Ok(None);
    };
    let corrupt = IndexError::Corrupt("instance.header");
    if bytes.len() > MAX_HEADER_BYTES {
        return Err(corrupt);
    }
    ward_dicom::prescan_dataset(
        bytes.as_slice(),
        bytes.len() as u64,
        EXPLICIT_VR_LITTLE_ENDIAN,
        &PrescanLimits::default(),
    )
    .map_err(|_| corrupt)?;
    Ok(Some(bytes))
}

const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// Whether the candidate's header copy satisfies the plan's header keys. A candidate without a
/// copy (indexed before copies existed) has none of those attributes.
fn header_passes(
    plan: &Plan<'_>,
    header: Option<&[u8]>,
    options: &QueryOptions,
) -> Result<bool, IndexError> {
    if plan.header_keys.is_empty() {
        return Ok(true);
    }
    let Some(bytes) = header else {
        return Ok(false);
    };
    let header = Header::parse(bytes).map_err(|_| IndexError::Corrupt("instance.header"))?;
    Ok(plan
        .header_keys
        .iter()
        .all(|key| header.matches(key, options)))
}

/// One value of an answer as text: `None` for NULL.
type Cell = Option<String>;

/// The values of a row of [`push_find`]'s per-match statement, in plan order, as text.
fn row_cells(plan: &Plan<'_>, row: &SqliteRow) -> Result<Vec<Cell>, IndexError> {
    let mut cells = Vec::with_capacity(plan.returns.len() + plan.computed.len());
    // Column 0 is the constant.
    let mut index = 1;
    for (_, column) in &plan.returns {
        cells.push(match column.kind {
            Kind::Integer => row.try_get::<Option<i64>, _>(index)?.map(|n| n.to_string()),
            _ => row.try_get::<Option<String>, _>(index)?,
        });
        index += 1;
    }
    for (_, computed) in &plan.computed {
        cells.push(match computed {
            Computed::Modalities | Computed::SopClasses => row.try_get(index)?,
            _ => Some(row.try_get::<i64, _>(index)?.to_string()),
        });
        index += 1;
    }
    Ok(cells)
}

/// The requested keys' values from one match's cells (in plan order).
fn match_values(
    plan: &Plan<'_>,
    cells: impl IntoIterator<Item = Cell>,
) -> Result<BTreeMap<Tag, String>, IndexError> {
    let mut cells = cells.into_iter();
    let mut values = BTreeMap::new();
    for (tag, _) in &plan.returns {
        let cell = cells.next().ok_or(IndexError::Corrupt("answer row"))?;
        // Patient identity columns hold '' for "absent".
        if let Some(value) = cell.filter(|v| !v.is_empty()) {
            values.insert(*tag, value);
        }
    }
    for (tag, computed) in &plan.computed {
        let cell = cells.next().ok_or(IndexError::Corrupt("answer row"))?;
        let value = match computed {
            Computed::Modalities | Computed::SopClasses => cell.map(|joined| {
                let mut values: Vec<&str> = joined.split(',').collect();
                values.sort_unstable();
                values.dedup();
                values.join("\\")
            }),
            _ => Some(cell.ok_or(IndexError::Corrupt("computed count"))?),
        };
        if let Some(value) = value {
            values.insert(*tag, value);
        }
    }
    if cells.next().is_some() {
        return Err(IndexError::Corrupt("answer row"));
    }
    Ok(values)
}

/// The match a row of [`push_find`]'s per-match statement describes, or `None` if its header
/// copy fails the header keys.
fn match_row(
    plan: &Plan<'_>,
    row: &SqliteRow,
    options: &QueryOptions,
) -> Result<Option<MatchRow>, IndexError> {
    let values = match_values(plan, row_cells(plan, row)?)?;
    let header = if plan.reads_header() {
        header_column(row, 1 + plan.returns.len() + plan.computed.len())?
    } else {
        None
    };
    if !header_passes(plan, header.as_deref(), options)? {
        return Ok(None);
    }
    Ok(Some(MatchRow {
        values,
        header: header.filter(|_| plan.answers_from_header),
    }))
}

/// A value of the JSON answer: text, an integer (the integer columns and the counts) or null,
/// read as text.
struct JsonCell(Cell);

impl<'de> Deserialize<'de> for JsonCell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;

        impl Visitor<'_> for CellVisitor {
            type Value = JsonCell;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, an integer or null")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonCell, E> {
                Ok(JsonCell(Some(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<JsonCell, E> {
                Ok(JsonCell(Some(v)))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<JsonCell, E> {
                Ok(JsonCell(Some(v.to_string())))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<JsonCell, E> {
                Ok(JsonCell(Some(v.to_string())))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<JsonCell, E> {
                Ok(JsonCell(None))
            }
        }

        deserializer.deserialize_any(CellVisitor)
    }
}

/// The matches of [`push_find`]'s aggregated statement: its one row's JSON array, one array of
/// cells per match.
fn answer_rows(plan: &Plan<'_>, row: &SqliteRow) -> Result<Vec<MatchRow>, IndexError> {
    let corrupt = |_| IndexError::Corrupt("answer");
    let json: String = row.try_get(0)?;
    let rows: Vec<Vec<JsonCell>> = serde_json::from_str(&json).map_err(corrupt)?;
    rows.into_iter()
        .map(|cells| {
            Ok(MatchRow {
                values: match_values(plan, cells.into_iter().map(|cell| cell.0))?,
                header: None,
            })
        })
        .collect()
}

/// Counts candidates checked against header copies, refusing past the cap.
#[derive(Default)]
pub(super) struct Budget(u64);

impl Budget {
    pub(super) fn spend(&mut self) -> Result<(), IndexError> {
        self.0 += 1;
        if self.0 > MAX_HEADER_CANDIDATES {
            return Err(IndexError::TooBroad {
                max_candidates: MAX_HEADER_CANDIDATES,
            });
        }
        Ok(())
    }
}

/// Parsing header copies is CPU work on the runtime's thread; this lets other tasks run between
/// candidates when the task has used its share.
async fn checked_one_more(budget: &mut Budget) -> Result<(), IndexError> {
    budget.spend()?;
    tokio::task::consume_budget().await;
    Ok(())
}

pub(super) async fn find(
    readers: &SqlitePool,
    plan: &Plan<'_>,
    options: &QueryOptions,
    limit: u32,
) -> Result<Vec<MatchRow>, IndexError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let filtered = !plan.header_keys.is_empty();
    let mut qb = QueryBuilder::new("");
    // Rows the header keys reject do not count against the limit, so SQL cannot apply it.
    push_find(&mut qb, plan, (!filtered).then_some(limit));
    if !plan.reads_header() {
        let row = qb.build().fetch_one(readers).await?;
        return answer_rows(plan, &row);
    }
    let mut rows = qb.build().fetch(readers);
    let mut matches = Vec::new();
    let mut budget = Budget::default();
    while matches.len() < limit as usize {
        let Some(row) = rows.try_next().await? else {
            break;
        };
        if filtered {
            checked_one_more(&mut budget).await?;
        }
        if let Some(found) = match_row(plan, &row, options)? {
            matches.push(found);
        }
    }
    Ok(matches)
}

pub(super) async fn retrieve(
    readers: &SqlitePool,
    plan: &Plan<'_>,
    limit: u32,
) -> Result<Vec<InstanceRow>, IndexError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let filtered = !plan.header_keys.is_empty();
    let mut qb = QueryBuilder::new("");
    push_retrieve(&mut qb, plan, (!filtered).then_some(limit));
    let mut rows = qb.build().fetch(readers);
    let options = QueryOptions::default();
    let mut instances = Vec::new();
    let mut budget = Budget::default();
    while instances.len() < limit as usize {
        let Some(row) = rows.try_next().await? else {
            break;
        };
        if filtered {
            checked_one_more(&mut budget).await?;
            let header = header_column(&row, 7)?;
            if !header_passes(plan, header.as_deref(), &options)? {
                continue;
            }
        }
        instances.push(instance_row(&row)?);
    }
    Ok(instances)
}
