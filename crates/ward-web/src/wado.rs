//! WADO-RS (PS3.18 10.4): whole studies, series and instances as multipart/related
//! application/dicom, streamed from the blob store one chunk at a time; and their metadata as
//! DICOM JSON with bulk data by URI.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tracing::warn;
use ward_audit::{Action, AuditEvent};
use ward_index::InstanceRow;
use ward_query::{Key, Level, Matcher, Query, QueryModel};
use ward_types::{Operation, Uid};

use crate::WebState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::media::{self, Syntax};
use crate::serve::Listener;

/// Pieces in flight between the reader task and the connection: the memory a retrieval holds
/// is this many of the store's pieces (about 256 KiB each, so 1 MiB) and the store's one batch
/// read ahead, whatever the size of the study.
const CHANNEL_CHUNKS: usize = 4;

/// The entity a WADO-RS path names.
pub(crate) struct Target {
    study: Uid,
    series: Option<Uid>,
    instance: Option<Uid>,
}

impl Target {
    pub(crate) fn parse(
        study: &str,
        series: Option<&str>,
        instance: Option<&str>,
    ) -> Result<Target, ApiError> {
        let uid = media::path_uid;
        Ok(Target {
            study: uid(study)?,
            series: series.map(uid).transpose()?,
            instance: instance.map(uid).transpose()?,
        })
    }

    /// The target of a route whose path variables are the study, series and instance UIDs,
    /// as many as it has.
    fn from_path(uids: &[String]) -> Result<Target, ApiError> {
        match uids {
            [study] => Target::parse(study, None, None),
            [study, series] => Target::parse(study, Some(series), None),
            [study, series, instance] => Target::parse(study, Some(series), Some(instance)),
            _ => Err(ApiError::BadRequest("unexpected path".into())),
        }
    }

    fn query(&self) -> Query {
        let key = |tag, uid: &Uid| Key {
            tag,
            vr: VR::UI,
            matcher: Matcher::Single(uid.as_str().to_owned()),
        };
        let mut keys = vec![key(tags::STUDY_INSTANCE_UID, &self.study)];
        let mut level = Level::Study;
        if let Some(series) = &self.series {
            keys.push(key(tags::SERIES_INSTANCE_UID, series));
            level = Level::Series;
        }
        if let Some(instance) = &self.instance {
            keys.push(key(tags::SOP_INSTANCE_UID, instance));
            level = Level::Image;
        }
        keys.sort_by_key(|k| k.tag);
        Query {
            level,
            model: QueryModel::StudyRoot,
            keys,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(uids) = Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("invalid path".into()))?;
        Target::from_path(&uids)
    }
}

/// The instances a path designates, checked against the caller's role and the retrieve cap.
pub(crate) async fn instances(
    state: &WebState,
    principal: &Principal,
    target: &Target,
) -> Result<Vec<InstanceRow>, ApiError> {
    principal.require(Operation::Get)?;
    let limit = state.policy.max_retrieve;
    let rows = state
        .ingest
        .index()
        .retrieve_instances(&target.query(), limit.saturating_add(1))
        .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound);
    }
    if rows.len() > limit as usize {
        return Err(ApiError::PayloadTooLarge(format!(
            "more than {limit} instances; retrieve series by series"
        )));
    }
    Ok(rows)
}

pub(crate) async fn record_retrieve(
    state: &WebState,
    principal: &Principal,
    rows: &[InstanceRow],
    what: &str,
) -> Result<(), ApiError> {
    let studies: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.study_instance_uid.as_str()).collect();
    let event = AuditEvent::new(Action::Retrieve, principal.actor()).with_detail(serde_json::json!({
        "service": what,
        "study_instance_uids": studies,
        "sop_instance_uids": rows.iter().map(|r| r.sop_instance_uid.as_str()).collect::<Vec<_>>(),
        "sop_class_uid": rows.first().map(|r| r.sop_class_uid.as_str()),
    }));
    state.audit(event).await
}

/// `GET` of a study, a series or an instance, as its path names it.
pub async fn get_instances(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    target: Target,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    retrieve(&state, &principal, target, &headers).await
}

/// How one instance goes out.
enum Delivery {
    AsStored,
    Convert(String),
}

fn plan(row: &InstanceRow, syntax: &Syntax) -> Option<(Delivery, String)> {
    let stored = row.transfer_syntax.as_str();
    match syntax {
        Syntax::AsStored => Some((Delivery::AsStored, stored.to_owned())),
        Syntax::Uid(uid) if uid == stored => Some((Delivery::AsStored, stored.to_owned())),
        Syntax::Uid(uid)
            if (uid == media::EXPLICIT_VR_LE || uid == "1.2.840.10008.1.2")
                && ward_ingest::convertible(row) =>
        {
            Some((Delivery::Convert(uid.clone()), uid.clone()))
        }
        Syntax::Uid(_) => None,
    }
}

async fn retrieve(
    state: &Arc<WebState>,
    principal: &Principal,
    target: Target,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let syntax = media::negotiate_instances(headers)?;
    let rows = instances(state, principal, &target).await?;
    // Every instance must be deliverable before the first byte goes out: a 200 cannot be
    // taken back half-way through a stream.
    let plans = rows
        .iter()
        .map(|row| plan(row, &syntax))
        .collect::<Option<Vec<_>>>()
        .ok_or(ApiError::NotAcceptable)?;
    record_retrieve(state, principal, &rows, "WADO-RS").await?;

    let boundary = media::boundary();
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        for (row, (send, ts)) in rows.iter().zip(plans) {
            if let Err(e) = send_instance(&state, row, send, &ts, &boundary, &tx).await {
                // The status line is gone; all that is left is to cut the body short, which the
                // client sees as a truncated multipart.
                warn!(error = %e, "retrieval stopped");
                let _ = tx
                    .send(Err(std::io::Error::other("retrieval stopped")))
                    .await;
                return;
            }
        }
        let _ = tx.send(Ok(Bytes::from(media::closing(&boundary)))).await;
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type)
                .map_err(|e| ApiError::internal("bad header", e))?,
        )],
        body,
    )
        .into_response())
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Writes one part: its header, Ward's Part 10 header for the syntax sent, then the data set.
async fn send_instance(
    state: &WebState,
    row: &InstanceRow,
    send: Delivery,
    ts: &str,
    boundary: &str,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    let closed = |_| "client went away".to_owned();
    let mut head = media::part_header(
        boundary,
        &format!("application/dicom; transfer-syntax={ts}"),
    );
    let ts_uid = Uid::parse(ts).map_err(|e| e.to_string())?;
    ward_dicom::write_part10_header(
        &mut head,
        &row.sop_class_uid,
        &row.sop_instance_uid,
        &ts_uid,
    )
    .map_err(|e| e.to_string())?;
    tx.send(Ok(Bytes::from(head))).await.map_err(closed)?;
    match send {
        Delivery::Convert(target) => {
            let bytes = state.ingest.converted(row, &target).await?;
            tx.send(Ok(Bytes::from(bytes))).await.map_err(closed)?;
        }
        Delivery::AsStored => {
            // The store's pieces (about 256 KiB each) go out as they are, without a copy.
            let (mut pieces, _) = state
                .ingest
                .open_dataset_pieces(row)
                .await
                .map_err(|e| e.to_string())?;
            while let Some(piece) = pieces.next().await {
                let piece = piece.map_err(|e| e.to_string())?;
                tx.send(Ok(piece)).await.map_err(closed)?;
            }
        }
    }
    Ok(())
}

/// `GET …/metadata` of a study, a series or an instance, as its path names it.
pub async fn get_metadata(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    target: Target,
    headers: HeaderMap,
    origin: Option<Extension<Listener>>,
) -> Result<Response, ApiError> {
    let origin = origin.map(|Extension(o)| o);
    metadata(&state, &principal, target, &headers, origin).await
}

/// The metadata of every instance, as a DICOM JSON array. Binary values over 1 KiB and the
/// pixel data are referenced by `BulkDataURI` under the instance's `/bulkdata` path.
async fn metadata(
    state: &WebState,
    principal: &Principal,
    target: Target,
    headers: &HeaderMap,
    origin: Option<Listener>,
) -> Result<Response, ApiError> {
    if !media::accepts(headers, media::DICOM_JSON) && !media::accepts(headers, "application/json") {
        return Err(ApiError::NotAcceptable);
    }
    let rows = instances(state, principal, &target).await?;
    record_retrieve(state, principal, &rows, "WADO-RS metadata").await?;
    let base = base_uri(&state.policy, headers, origin);
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let obj = state
            .ingest
            .metadata(row)
            .await
            .map_err(|e| ApiError::internal("cannot read a stored object", e))?;
        let bulk_base = format!(
            "{base}/dicom-web/studies/{}/series/{}/instances/{}/bulkdata",
            row.study_instance_uid, row.series_instance_uid, row.sop_instance_uid
        );
        let mut json = ward_dicom::to_dicom_json(&obj, ward_dicom::wado_bulk_policy(&bulk_base));
        // Pixel Data is past where the metadata read stops; an image has it.
        if obj.get(tags::ROWS).is_some() {
            if let Some(map) = json.as_object_mut() {
                let vr = if ward_dicom::is_native_transfer_syntax(row.transfer_syntax.as_str()) {
                    "OW"
                } else {
                    "OB"
                };
                map.insert(
                    "7FE00010".into(),
                    serde_json::json!({ "vr": vr, "BulkDataURI": format!("{bulk_base}/7FE00010") }),
                );
            }
        }
        out.push(json);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media::DICOM_JSON),
        )],
        serde_json::Value::Array(out).to_string(),
    )
        .into_response())
}

/// The scheme and authority of absolute bulk data URIs: the configured public URL when Ward
/// sits behind a proxy; otherwise the listener's scheme and port with the host the client
/// named (some clients leave the port out of `Host`).
fn base_uri(policy: &crate::WebPolicy, headers: &HeaderMap, origin: Option<Listener>) -> String {
    if let Some(public) = &policy.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let origin = origin.unwrap_or(Listener {
        scheme: "https",
        port: 443,
    });
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}:{}", origin.scheme, origin.port)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` without the port.
fn host_without_port(authority: &str) -> &str {
    match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.split(':').next().unwrap_or(authority),
    }
}
