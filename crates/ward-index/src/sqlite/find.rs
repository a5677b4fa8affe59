//! Rendering a [`Plan`] as SQLite SQL and running it.
//!
//! Values are always bound parameters; the statement text is assembled only from the fixed
//! fragments below and the column names of [`crate::plan`]. Rows stream from the database
//! (sqlx reads them on demand), so memory per query is bounded by the answer's limit whatever
//! the number of candidates; keys without a column are checked on each candidate's header copy
//! as it arrives, at most [`MAX_HEADER_CANDIDATES`] of them.
//!
//! Dialect notes for a PostgreSQL port: `GLOB` (case-sensitive `*`/`?` patterns on
//! BINARY-collated text; `LIKE` with escaping is the portable spelling), `group_concat`
//! (`string_agg`) and `CROSS JOIN … ON` as a join-order hint (a plain `JOIN` there) are the only
//! SQLite-specific pieces.

use std::collections::BTreeMap;

use dicom_core::Tag;
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use ward_dicom::PrescanLimits;
use ward_query::{Header, Level, MatchRow, QueryOptions};

use super::instance_row;
use crate::plan::{Column, Computed, Condition, Kind, Plan, Target, Test};
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
        Computed::StudySeries => "(SELECT COUNT(*) FROM series cs WHERE cs.study_fk = st.id)",
        Computed::StudyInstances => {
            "(SELECT COUNT(*) FROM series cs JOIN instance ci ON ci.series_fk = cs.id \
             WHERE cs.study_fk = st.id)"
        }
        Computed::SeriesInstances => {
            "(SELECT COUNT(*) FROM instance ci WHERE ci.series_fk = se.id)"
        }
        // Distinct values joined with commas (neither CS nor UI values contain one); sorted and
        // re-joined with backslashes in Rust.
        Computed::Modalities => {
            "(SELECT group_concat(DISTINCT cs.modality) FROM series cs \
             WHERE cs.study_fk = st.id)"
        }
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

/// Appends the statement that finds `plan`'s matches: the returned columns in plan order, the
/// computed attributes, then the header copy if the plan reads it.
pub(super) fn push_find(qb: &mut QueryBuilder<'_, Sqlite>, plan: &Plan<'_>, limit: Option<u32>) {
    qb.push("SELECT ");
    let mut select = qb.separated(", ");
    // A constant first column keeps the list valid when nothing else is selected.
    select.push("1");
    for (_, column) in &plan.returns {
        select.push(format!("{}.{}", column.table.alias(), column.name));
    }
    for (_, computed) in &plan.computed {
        select.push(computed_expr(*computed));
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

fn text_value(
    row: &SqliteRow,
    index: usize,
    column: &Column,
) -> Result<Option<String>, IndexError> {
    let value = match column.kind {
        Kind::Integer => row.try_get::<Option<i64>, _>(index)?.map(|n| n.to_string()),
        _ => row.try_get::<Option<String>, _>(index)?,
    };
    // Patient identity columns hold '' for "absent".
    Ok(value.filter(|v| !v.is_empty()))
}

fn computed_value(
    row: &SqliteRow,
    index: usize,
    computed: Computed,
) -> Result<Option<String>, IndexError> {
    Ok(match computed {
        Computed::Modalities | Computed::SopClasses => {
            let joined: Option<String> = row.try_get(index)?;
            joined.map(|joined| {
                let mut values: Vec<&str> = joined.split(',').collect();
                values.sort_unstable();
                values.dedup();
                values.join("\\")
            })
        }
        _ => Some(row.try_get::<i64, _>(index)?.to_string()),
    })
}

/// The match a row of [`push_find`]'s statement describes, or `None` if its header copy fails
/// the header keys.
fn match_row(
    plan: &Plan<'_>,
    row: &SqliteRow,
    options: &QueryOptions,
) -> Result<Option<MatchRow>, IndexError> {
    let mut index = 1;
    let mut values = BTreeMap::<Tag, String>::new();
    for (tag, column) in &plan.returns {
        if let Some(value) = text_value(row, index, column)? {
            values.insert(*tag, value);
        }
        index += 1;
    }
    for (tag, computed) in &plan.computed {
        if let Some(value) = computed_value(row, index, *computed)? {
            values.insert(*tag, value);
        }
        index += 1;
    }
    let header = if plan.reads_header() {
        header_column(row, index)?
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
