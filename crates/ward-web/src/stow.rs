//! STOW-RS (PS3.18 10.5): each `application/dicom` part of a multipart/related body streams into
//! the one ingest path, exactly as a C-STORE does, and the answer lists what was stored and what
//! was refused with its reason.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ward_ingest::{IngestError, StoreRequest, Stored};
use ward_types::{Operation, Uid};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{WebState, media};

/// The most a part's head can need before its data set starts: preamble, "DICM", the group
/// length element and the largest meta group Ward reads.
const HEAD_LEN: usize = 128 + 4 + 12 + ward_dicom::MAX_META_GROUP_LEN as usize;
/// Failure reason for an instance of another study than the URL's (PS3.18 Table 10.5.3-1).
const STUDY_MISMATCH: u16 = 0xA900;

pub async fn store(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    stow(&state, &principal, None, &headers, body).await
}

pub async fn store_in_study(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(study): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let study = media::path_uid(&study)?;
    stow(&state, &principal, Some(study), &headers, body).await
}

/// What became of one part.
enum PartResult {
    Stored {
        class: Uid,
        instance: Uid,
    },
    Failed {
        class: Option<Uid>,
        instance: Option<Uid>,
        reason: u16,
    },
}

async fn stow(
    state: &WebState,
    principal: &Principal,
    study: Option<Uid>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Operation::Store)?;
    let boundary = media::stow_boundary(headers)?;
    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(state.policy.max_body_bytes));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut parts: Vec<Part> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if parts.is_empty() => return Err(multipart_error(&e)),
            // Parts already stored are durable and stay reported; the rest of the body is lost,
            // and the answer says so (a failed entry without UIDs): a body cut short or over
            // the limit between two parts is never answered as wholly stored.
            Err(e) => {
                parts.push(Part::Done(PartResult::Failed {
                    class: None,
                    instance: None,
                    reason: unread_rest_reason(&e),
                }));
                break;
            }
        };
        if parts.len() >= state.policy.max_parts as usize {
            // The parts before stay stored (each was acknowledged to the ingest path on its
            // own); the request as a whole is refused, and says where it stopped.
            return Err(ApiError::PayloadTooLarge(format!(
                "more than {} parts in one request; only the first {} were processed",
                state.policy.max_parts, state.policy.max_parts
            )));
        }
        let dicom = field
            .content_type()
            .is_none_or(|m| m.essence_str().eq_ignore_ascii_case("application/dicom"));
        if !dicom {
            if parts.is_empty() {
                return Err(ApiError::UnsupportedMediaType(
                    "only application/dicom parts are accepted",
                ));
            }
            parts.push(Part::Done(PartResult::Failed {
                class: None,
                instance: None,
                reason: 0xC000,
            }));
            continue;
        }
        parts.push(receive_part(state, principal, study.as_ref(), field).await);
        settle_beyond(&mut parts, MAX_COMMITS_IN_FLIGHT).await;
    }
    if parts.is_empty() {
        return Err(ApiError::BadRequest("the body holds no part".into()));
    }
    settle_beyond(&mut parts, 0).await;
    let results: Vec<PartResult> = parts
        .into_iter()
        .filter_map(|p| match p {
            Part::Done(result) => Some(result),
            Part::Committing { .. } => None,
        })
        .collect();
    Ok(answer(&results, study.as_ref()))
}

/// Commits (checks, sealing, fsyncs, index row, audit record) run while the next parts are
/// read, at most this many at once: the answer waits for all of them anyway, and a body of
/// many small objects would otherwise be as slow as one object at a time.
const MAX_COMMITS_IN_FLIGHT: usize = 4;

/// A part received: its result, or its commit still running.
enum Part {
    Done(PartResult),
    Committing {
        class: Uid,
        instance: Uid,
        task: tokio::task::JoinHandle<Result<Stored, IngestError>>,
    },
}

/// Waits for the oldest commits until at most `limit` are running.
async fn settle_beyond(parts: &mut [Part], limit: usize) {
    let running = parts
        .iter()
        .filter(|p| matches!(p, Part::Committing { .. }))
        .count();
    let excess = running.saturating_sub(limit);
    for part in parts
        .iter_mut()
        .filter(|p| matches!(p, Part::Committing { .. }))
        .take(excess)
    {
        if let Part::Committing {
            class,
            instance,
            task,
        } = part
        {
            let result = match task.await {
                Ok(Ok(Stored::New { .. } | Stored::AlreadyStored { .. })) => PartResult::Stored {
                    class: class.clone(),
                    instance: instance.clone(),
                },
                Ok(Err(e)) => PartResult::Failed {
                    class: Some(class.clone()),
                    instance: Some(instance.clone()),
                    reason: failure_reason(&e),
                },
                Err(_) => PartResult::Failed {
                    class: Some(class.clone()),
                    instance: Some(instance.clone()),
                    reason: 0xA700,
                },
            };
            *part = Part::Done(result);
        }
    }
}

/// The PS3.18 failure reason for an ingest error: the DIMSE status, but A900 for an object of
/// another study than the URL's (Table 10.5.3-1).
fn failure_reason(e: &IngestError) -> u16 {
    match e {
        IngestError::OtherStudy => STUDY_MISMATCH,
        other => other.status(),
    }
}

/// The failure reason listed for the unread rest of a body: out of resources when it was over
/// the size limit, cannot understand otherwise.
fn unread_rest_reason(e: &multer::Error) -> u16 {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            0xA700
        }
        _ => 0xC000,
    }
}

fn multipart_error(e: &multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::PayloadTooLarge("the body is larger than allowed".into())
        }
        _ => ApiError::BadRequest("malformed multipart body".into()),
    }
}

/// Streams one part into the ingest path: its head is buffered until the meta group is read
/// (a few KiB at most), then every chunk goes to the spool as it arrives; the commit is started
/// and left running.
async fn receive_part(
    state: &WebState,
    principal: &Principal,
    study: Option<&Uid>,
    mut field: multer::Field<'_>,
) -> Part {
    let malformed = PartResult::Failed {
        class: None,
        instance: None,
        reason: 0xC000,
    };
    let mut head = Vec::with_capacity(4096);
    let mut ended = false;
    while head.len() < HEAD_LEN {
        match field.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => {
                ended = true;
                break;
            }
            Err(_) => return Part::Done(malformed),
        }
    }
    let known_len = if ended { head.len() as u64 } else { u64::MAX };
    let Ok(info) = ward_dicom::read_part10_info_from(&head[..], known_len) else {
        return Part::Done(malformed);
    };
    let (class, instance) = (info.sop_class_uid.clone(), info.sop_instance_uid.clone());
    let failed = |reason| {
        Part::Done(PartResult::Failed {
            class: Some(class.clone()),
            instance: Some(instance.clone()),
            reason,
        })
    };
    let request = StoreRequest {
        sop_class: info.sop_class_uid,
        sop_instance: info.sop_instance_uid,
        transfer_syntax: info.transfer_syntax,
        source_ae: None,
        actor: principal.actor(),
        expected_study: study.cloned(),
    };
    let mut writer = match state.ingest.begin(request).await {
        Ok(w) => w,
        Err(e) => return failed(e.status()),
    };
    let offset = usize::try_from(info.dataset_offset).unwrap_or(usize::MAX);
    if let Err(e) = writer.write(head.get(offset..).unwrap_or_default()).await {
        return failed(failure_reason(&e));
    }
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = writer.write(&chunk).await {
                    return failed(failure_reason(&e));
                }
            }
            Ok(None) => break,
            Err(_) => return failed(0xC000),
        }
    }
    // A task of its own: it finishes (stored and recorded, or refused) even if the client goes
    // away before the answer.
    Part::Committing {
        class,
        instance,
        task: tokio::spawn(writer.commit()),
    }
}

/// The PS3.18 10.5.3 response: 200 when every instance was stored, 202 when some were, 409
/// when none was; the Referenced and Failed SOP Sequences say which.
fn answer(results: &[PartResult], study: Option<&Uid>) -> Response {
    let ui = |uid: &Uid| json!({ "vr": "UI", "Value": [uid.as_str()] });
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for result in results {
        match result {
            PartResult::Stored { class, instance } => referenced.push(json!({
                "00081150": ui(class),
                "00081155": ui(instance),
            })),
            PartResult::Failed {
                class,
                instance,
                reason,
            } => {
                let mut item = serde_json::Map::new();
                if let Some(class) = class {
                    item.insert("00081150".into(), ui(class));
                }
                if let Some(instance) = instance {
                    item.insert("00081155".into(), ui(instance));
                }
                item.insert("00081197".into(), json!({ "vr": "US", "Value": [reason] }));
                failed.push(Value::Object(item));
            }
        }
    }
    let status = match (referenced.is_empty(), failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    let mut body = serde_json::Map::new();
    if let Some(study) = study {
        body.insert(
            "00081190".into(),
            json!({ "vr": "UR", "Value": [format!("/dicom-web/studies/{study}")] }),
        );
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    if !referenced.is_empty() {
        body.insert(
            "00081199".into(),
            json!({ "vr": "SQ", "Value": referenced }),
        );
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media::DICOM_JSON),
        )],
        Value::Object(body).to_string(),
    )
        .into_response()
}
