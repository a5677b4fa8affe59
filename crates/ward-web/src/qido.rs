//! QIDO-RS (PS3.18 10.6): query parameters become an identifier for the one query engine, so
//! the matching rules, caps and anti-enumeration rule are C-FIND's, and answers are DICOM JSON.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use ward_audit::{Action, AuditEvent, Outcome};
use ward_query::{Hierarchy, Level, QueryModel, QueryOptions};
use ward_types::Operation;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{WebState, media};

/// Longest query string accepted, in bytes; longer ones are refused before parsing.
pub const MAX_QUERY_STRING: usize = 8192;
/// Most query parameters accepted.
const MAX_PARAMS: usize = 64;

/// The study and series a search is scoped to by its path.
#[derive(Debug, Default, Clone)]
struct Scope {
    study: Option<String>,
    series: Option<String>,
}

pub async fn studies(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(&state, &principal, Level::Study, Scope::default(), q).await
}

pub async fn study_series(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let scope = Scope {
        study: Some(study),
        series: None,
    };
    search(&state, &principal, Level::Series, scope, q).await
}

pub async fn study_instances(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let scope = Scope {
        study: Some(study),
        series: None,
    };
    search(&state, &principal, Level::Image, scope, q).await
}

pub async fn series_instances(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let scope = Scope {
        study: Some(study),
        series: Some(series),
    };
    search(&state, &principal, Level::Image, scope, q).await
}

pub async fn all_series(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(&state, &principal, Level::Series, Scope::default(), q).await
}

pub async fn all_instances(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(&state, &principal, Level::Image, Scope::default(), q).await
}

/// A QIDO request's parameters, parsed.
#[derive(Debug)]
pub struct Search {
    pub identifier: InMemDicomObject,
    pub limit: Option<u32>,
    pub offset: u32,
    /// `fuzzymatching=true` was asked for; Ward does not do fuzzy matching and says so.
    pub fuzzy_requested: bool,
}

/// The attributes returned at each level when `includefield` does not ask for more
/// (PS3.18 Tables 10.6.3-3 to 10.6.3-5), plus the UIDs of the levels above so that a client
/// can build retrieval URLs.
fn default_keys(level: Level) -> &'static [Tag] {
    match level {
        Level::Patient | Level::Study => &[
            tags::STUDY_DATE,
            tags::STUDY_TIME,
            tags::ACCESSION_NUMBER,
            tags::MODALITIES_IN_STUDY,
            tags::REFERRING_PHYSICIAN_NAME,
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
            tags::PATIENT_SEX,
            tags::STUDY_INSTANCE_UID,
            tags::STUDY_ID,
            tags::NUMBER_OF_STUDY_RELATED_SERIES,
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
        ],
        Level::Series => &[
            tags::MODALITY,
            tags::SERIES_DESCRIPTION,
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::SERIES_NUMBER,
            tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
            tags::PERFORMED_PROCEDURE_STEP_START_DATE,
            tags::PERFORMED_PROCEDURE_STEP_START_TIME,
        ],
        Level::Image => &[
            tags::SOP_CLASS_UID,
            tags::SOP_INSTANCE_UID,
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::INSTANCE_NUMBER,
            tags::ROWS,
            tags::COLUMNS,
            tags::BITS_ALLOCATED,
            tags::NUMBER_OF_FRAMES,
        ],
    }
}

/// What `includefield=all` adds to the defaults: the other attributes Ward indexes or commonly
/// finds in the header copy at each level.
fn all_keys(level: Level) -> &'static [Tag] {
    match level {
        Level::Patient | Level::Study => &[
            tags::STUDY_DESCRIPTION,
            tags::ISSUER_OF_PATIENT_ID,
            tags::PATIENT_AGE,
            tags::SOP_CLASSES_IN_STUDY,
            tags::INSTITUTION_NAME,
        ],
        Level::Series => &[
            tags::BODY_PART_EXAMINED,
            tags::PROTOCOL_NAME,
            tags::SERIES_DATE,
            tags::SERIES_TIME,
            tags::MANUFACTURER,
        ],
        Level::Image => &[
            tags::IMAGE_TYPE,
            tags::CONTENT_DATE,
            tags::CONTENT_TIME,
            tags::PHOTOMETRIC_INTERPRETATION,
            tags::SAMPLES_PER_PIXEL,
        ],
    }
}

/// Parses a query string into an identifier at `level` scoped by the path. The same function
/// serves the QIDO front door and the test that QIDO and C-FIND agree.
pub fn parse_search(
    level: Level,
    study: Option<&str>,
    series: Option<&str>,
    query: &str,
) -> Result<Search, ApiError> {
    if query.len() > MAX_QUERY_STRING {
        return Err(ApiError::BadRequest(format!(
            "the query string is longer than {MAX_QUERY_STRING} bytes"
        )));
    }
    let mut identifier = InMemDicomObject::new_empty();
    identifier.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level.as_str()),
    ));
    let mut include_all = false;
    let mut includes = Vec::new();
    let mut limit = None;
    let mut offset = 0;
    let mut fuzzy_requested = false;
    for (count, (name, value)) in form_urlencoded::parse(query.as_bytes()).enumerate() {
        if count >= MAX_PARAMS {
            return Err(ApiError::BadRequest(format!(
                "more than {MAX_PARAMS} query parameters"
            )));
        }
        match &*name {
            "limit" => limit = Some(number(&name, &value)?),
            "offset" => offset = number(&name, &value)?,
            "fuzzymatching" => fuzzy_requested = value.eq_ignore_ascii_case("true"),
            "includefield" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field == "all" {
                        include_all = true;
                    } else {
                        includes.push(attribute(field)?);
                    }
                }
            }
            _ => put_match(&mut identifier, &name, &value)?,
        }
    }
    for (tag, uid) in [
        (tags::STUDY_INSTANCE_UID, study),
        (tags::SERIES_INSTANCE_UID, series),
    ] {
        if let Some(uid) = uid {
            let uid = media::path_uid(uid)?;
            identifier.put(DataElement::new(
                tag,
                VR::UI,
                PrimitiveValue::from(uid.as_str()),
            ));
        }
    }
    let extra = if include_all { all_keys(level) } else { &[] };
    for &tag in default_keys(level).iter().chain(extra).chain(&includes) {
        if identifier.get(tag).is_none() {
            identifier.put(empty_element(tag));
        }
    }
    Ok(Search {
        identifier,
        limit,
        offset,
        fuzzy_requested,
    })
}

fn number(name: &str, value: &str) -> Result<u32, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be a non-negative integer")))
}

/// A tag from a keyword or eight hexadecimal digits.
fn attribute(field: &str) -> Result<Tag, ApiError> {
    let unknown = || ApiError::BadRequest("unknown attribute in the query".into());
    if field.len() == 8 && field.bytes().all(|b| b.is_ascii_hexdigit()) {
        let n = u32::from_str_radix(field, 16).map_err(|_| unknown())?;
        return Ok(Tag((n >> 16) as u16, (n & 0xFFFF) as u16));
    }
    StandardDataDictionary
        .by_name(field)
        .map(|e| e.tag())
        .ok_or_else(unknown)
}

fn vr_of(tag: Tag) -> VR {
    StandardDataDictionary
        .by_tag(tag)
        .map_or(VR::UN, |e| e.vr().relaxed())
}

fn empty_element(tag: Tag) -> DataElement<InMemDicomObject> {
    let vr = vr_of(tag);
    if vr == VR::SQ {
        DataElement::new(
            tag,
            VR::SQ,
            DataSetSequence::from(Vec::<InMemDicomObject>::new()),
        )
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

/// Adds a matching key: `Keyword=value`, `ggggeeee=value`, or `Sequence.Keyword=value` for one
/// level of sequence matching. A list of UIDs may be comma-separated (PS3.18 8.3.4.1).
fn put_match(identifier: &mut InMemDicomObject, name: &str, value: &str) -> Result<(), ApiError> {
    let (outer, inner) = match name.split_once('.') {
        Some((outer, inner)) => (Some(attribute(outer)?), attribute(inner)?),
        None => (None, attribute(name)?),
    };
    let vr = vr_of(inner);
    if matches!(
        vr,
        VR::SQ | VR::UN | VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV
    ) {
        return Err(ApiError::BadRequest(
            "that attribute cannot be matched".into(),
        ));
    }
    let text = if vr == VR::UI {
        value.replace(',', "\\")
    } else {
        value.to_owned()
    };
    let element = DataElement::new(inner, vr, PrimitiveValue::from(text));
    match outer {
        None => {
            identifier.put(element);
        }
        Some(outer) => {
            if vr_of(outer) != VR::SQ {
                return Err(ApiError::BadRequest("only sequences take item keys".into()));
            }
            let mut item = match identifier
                .get(outer)
                .and_then(|e| e.items())
                .and_then(|i| i.first())
            {
                Some(existing) => existing.clone(),
                None => InMemDicomObject::new_empty(),
            };
            item.put(element);
            identifier.put(DataElement::new(
                outer,
                VR::SQ,
                DataSetSequence::from(vec![item]),
            ));
        }
    }
    Ok(())
}

async fn search(
    state: &WebState,
    principal: &Principal,
    level: Level,
    scope: Scope,
    query: Option<String>,
) -> Result<Response, ApiError> {
    principal.require(Operation::Find)?;
    let search = parse_search(
        level,
        scope.study.as_deref(),
        scope.series.as_deref(),
        query.as_deref().unwrap_or(""),
    )?;
    let query = ward_query::parse_dataset(
        &search.identifier,
        QueryModel::StudyRoot,
        Hierarchy::Relational,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let keys = ward_query::audit_keys(&query);

    let user = principal.as_association_user();
    if ward_query::is_enumeration(&query) && !ward_auth::identity::may_enumerate(Some(&user)) {
        let event = AuditEvent::new(Action::SecurityAlert, principal.actor())
            .with_detail(serde_json::json!({ "alert_type": "enumeration", "keys": keys }));
        state.audit(event).await?;
        return Err(ApiError::Forbidden(
            "enumeration refused: name a patient, study, date or accession",
        ));
    }
    let budget_key = format!("user:{}", principal.name);
    let remaining = state
        .match_budget
        .lock()
        .map(|b| b.remaining(&budget_key, Instant::now()))
        .unwrap_or(0);
    if remaining == 0 {
        let event = AuditEvent::new(Action::SecurityAlert, principal.actor())
            .with_detail(serde_json::json!({ "alert_type": "match budget", "keys": keys }));
        state.audit(event).await?;
        return Err(ApiError::TooManyRequests {
            retry_after_secs: 3600,
        });
    }
    let cap = state
        .policy
        .max_matches
        .min(u32::try_from(remaining).unwrap_or(u32::MAX));
    let wanted = search.limit.map_or(cap, |l| l.min(cap));
    // The window a page needs, bounded by the cap: paging does not lift it.
    let window = search.offset.saturating_add(wanted).min(cap);
    let options = QueryOptions {
        pn_case_insensitive: state.policy.pn_case_insensitive,
    };
    let rows = match state
        .ingest
        .index()
        .find(&query, &options, window.saturating_add(1))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let error = ApiError::from(e);
            let event = AuditEvent::new(Action::Query, principal.actor())
                .with_outcome(Outcome::Failure {
                    status: Some(400),
                    reason: error.to_string(),
                })
                .with_detail(serde_json::json!({ "keys": keys, "matches": 0 }));
            state.audit(event).await?;
            return Err(error);
        }
    };
    let truncated = rows.len() > window as usize && window == cap;
    let page: Vec<_> = rows
        .iter()
        .take(window as usize)
        .skip(search.offset as usize)
        .collect();
    let body = answer_json(&query, &page)?;
    if let Ok(mut budget) = state.match_budget.lock() {
        budget.spend(budget_key, page.len() as u64, Instant::now());
    }
    let event = AuditEvent::new(Action::Query, principal.actor()).with_detail(serde_json::json!({
        "service": "QIDO-RS",
        "keys": keys,
        "matches": page.len(),
    }));
    state.audit(event).await?;

    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media::DICOM_JSON),
        )],
        body,
    )
        .into_response();
    let mut warnings = Vec::new();
    if truncated {
        warnings.push(
            "299 ward \"The number of results exceeded the maximum supported by the server. \
             Additional results can be requested.\"",
        );
    }
    if search.fuzzy_requested {
        warnings.push("299 ward \"The fuzzymatching parameter is not supported. Only literal matching has been performed.\"");
    }
    for warning in warnings {
        response
            .headers_mut()
            .append(header::WARNING, HeaderValue::from_static(warning));
    }
    Ok(response)
}

/// The answer: a DICOM JSON array of the matches, written straight into bytes.
fn answer_json(
    query: &ward_query::Query,
    page: &[&ward_query::MatchRow],
) -> Result<Vec<u8>, ApiError> {
    let encode = |e: &dyn std::fmt::Display| ApiError::internal("cannot encode a match", e);
    let mut body = Vec::with_capacity(page.len() * 512 + 2);
    body.push(b'[');
    for (i, row) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // The Query/Retrieve Level is a C-FIND notion: QIDO-RS answers carry none.
        let Some(mut values) = ward_query::response_values(query, row) else {
            let mut obj = ward_query::response_dataset(query, row).map_err(|e| encode(&e))?;
            obj.remove_element(tags::QUERY_RETRIEVE_LEVEL);
            serde_json::to_writer(&mut body, &media::dataset_json(&obj)).map_err(|e| encode(&e))?;
            continue;
        };
        values.retain(|&(tag, _, _)| tag != tags::QUERY_RETRIEVE_LEVEL);
        if !ward_dicom::write_text_elements_json(&mut body, &values).map_err(|e| encode(&e))? {
            let elements: Vec<_> = values.into_iter().map(ward_query::value_element).collect();
            ward_dicom::write_elements_json(&mut body, &elements).map_err(|e| encode(&e))?;
        }
    }
    body.push(b']');
    Ok(body)
}
