//! C-FIND SCP: the identifier becomes a query for the one query engine; matches go back as
//! pending responses, with C-CANCEL honoured between them.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};
use ward_audit::{Action, AuditEvent, Outcome};
use ward_query::{Query, QueryModel, QueryOptions};

use crate::command::status;
use crate::session::{End, Request, Response, Session};

/// Bytes of encoded pending responses gathered before each write.
const FIND_BATCH: usize = 32 * 1024;

/// Serves a C-FIND-RQ and records it in the audit trail.
pub(crate) async fn handle<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    identifier: Option<Vec<u8>>,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (code, comment, matches, keys) = match parse(request, identifier) {
        Err((code, comment)) => (code, Some(comment), 0, serde_json::Value::Null),
        Ok(query) => match allowance(session, &query).await {
            Err((code, comment)) => (code, Some(comment), 0, ward_query::audit_keys(&query)),
            Ok(allowed) => {
                let (code, comment, matches) = answer(session, request, &query, allowed).await?;
                let ae = session.peer.ae.as_str().to_owned();
                if let Ok(mut budget) = session.server.match_budget.lock() {
                    budget.spend(ae, matches as u64, Instant::now());
                }
                (code, comment, matches, ward_query::audit_keys(&query))
            }
        },
    };
    let outcome = if status::is_success_or_warning(code) || code == status::CANCEL {
        Outcome::Success
    } else {
        Outcome::Failure {
            status: Some(code),
            reason: comment.clone().unwrap_or_default(),
        }
    };
    let event = AuditEvent::new(Action::Query, session.peer.actor())
        .with_outcome(outcome)
        .with_detail(serde_json::json!({
            "sop_class_uid": request.context.abstract_syntax,
            "keys": keys,
            "matches": matches,
            "status": code,
        }));
    let _ = session.server.audit(event).await;
    let response = match &comment {
        Some(text) => Response::failure(code, text),
        None => Response::status(code),
    };
    session.respond(request, response).await
}

/// The anti-enumeration policy (DESIGN.md §1.3): a query that names no patient, study, date
/// or accession — only universal or wildcard-only keys at PATIENT or STUDY level — is refused
/// (only a user verified as an administrator may enumerate); and each
/// calling AE title has an hourly budget of matches. Returns how many matches this query may
/// return; a refusal is recorded as a security alert.
async fn allowance<S>(session: &Session<'_, S>, query: &Query) -> Result<u32, (u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &session.server.config;
    let enumerating = ward_query::is_enumeration(query)
        && !ward_auth::identity::may_enumerate(session.peer.user.as_ref());
    let (code, comment, alert) = if enumerating {
        (
            status::NOT_AUTHORIZED,
            "enumeration refused: name a patient, study, date or accession",
            "enumeration",
        )
    } else {
        let ae = session.peer.ae.as_str().to_owned();
        let remaining = session
            .server
            .match_budget
            .lock()
            .map(|b| b.remaining(&ae, Instant::now()))
            .unwrap_or(0);
        if remaining > 0 {
            return Ok(config
                .max_matches
                .min(u32::try_from(remaining).unwrap_or(u32::MAX)));
        }
        (
            status::OUT_OF_RESOURCES,
            "hourly match budget spent for this AE title",
            "match budget",
        )
    };
    info!(alert, "query refused by policy");
    let event = AuditEvent::new(Action::SecurityAlert, session.peer.actor()).with_detail(
        serde_json::json!({ "alert_type": alert, "keys": ward_query::audit_keys(query) }),
    );
    let _ = session.server.audit(event).await;
    Err((code, comment.to_owned()))
}

/// Sends at most `cap` matches as pending responses; returns the final status, its comment
/// and the number of matches sent.
async fn answer<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    query: &Query,
    cap: u32,
) -> Result<(u16, Option<String>, usize), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &session.server.config;
    let options = QueryOptions {
        pn_case_insensitive: config.pn_case_insensitive,
    };
    let rows = match session
        .ingest()
        .index()
        .find(query, &options, cap.saturating_add(1))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let (code, comment) = index_failure(&e);
            return Ok((code, Some(comment), 0));
        }
    };
    let truncated = rows.len() > cap as usize;
    let ts = request.context.transfer_syntax.clone();
    let mut sent = 0usize;
    // Pending responses go out in batches of about 32 KiB: one write for dozens of matches
    // rather than one each, and a C-CANCEL is still looked for before every match.
    let mut batch = Vec::with_capacity(FIND_BATCH + 4096);
    // Every pending response has the same command set.
    let pending = session.encode_command(
        request,
        &Response {
            status: status::PENDING,
            comment: None,
            identifier: Some(&[]),
            counts: None,
        },
    );
    for row in rows.iter().take(cap as usize) {
        if session.cancelled(request).await? {
            session.write_encoded(&batch).await?;
            info!(matches = sent, "C-FIND cancelled");
            return Ok((status::CANCEL, None, sent));
        }
        let identifier = match ward_query::response_identifier(query, row, &ts) {
            Ok(bytes) => bytes,
            Err(e) => {
                session.write_encoded(&batch).await?;
                warn!(error = %e, "cannot encode a C-FIND response");
                let comment = "cannot encode a match".to_owned();
                return Ok((status::UNABLE_TO_PROCESS, Some(comment), sent));
            }
        };
        session.encode_response(request, &pending, Some(&identifier), &mut batch)?;
        sent += 1;
        if batch.len() >= FIND_BATCH {
            session.write_encoded(&batch).await?;
            batch.clear();
        }
    }
    session.write_encoded(&batch).await?;
    info!(matches = sent, truncated, "C-FIND answered");
    if truncated {
        let comment = format!("more than {cap} matches; refine the query");
        return Ok((status::OUT_OF_RESOURCES, Some(comment), sent));
    }
    Ok((status::SUCCESS, None, sent))
}

/// The status for a query the index could not answer: the request's fault (0xA900, 0xA700)
/// or ours (0xC001, logged).
pub(crate) fn index_failure(e: &ward_index::IndexError) -> (u16, String) {
    match e {
        ward_index::IndexError::Query(q) => (status::DATA_SET_MISMATCH, q.to_string()),
        ward_index::IndexError::TooBroad { .. } => (
            status::OUT_OF_RESOURCES,
            "query too broad: add keys the index can match".to_owned(),
        ),
        other => {
            warn!(error = %other, "query failed");
            (status::UNABLE_TO_PROCESS, "query failed".to_owned())
        }
    }
}

/// Checks and parses a C-FIND, C-GET or C-MOVE identifier.
pub(crate) fn parse(
    request: &Request,
    identifier: Option<Vec<u8>>,
) -> Result<Query, (u16, String)> {
    let Some(bytes) = identifier else {
        return Err((
            status::OUT_OF_RESOURCES,
            "identifier missing or too large".to_owned(),
        ));
    };
    let (model, _) = QueryModel::from_sop_class(&request.context.abstract_syntax).ok_or((
        status::SOP_CLASS_NOT_SUPPORTED,
        "not a query/retrieve SOP class".to_owned(),
    ))?;
    let ts = &request.context.transfer_syntax;
    ward_dicom::prescan_dataset(
        &bytes[..],
        bytes.len() as u64,
        ts,
        &ward_dicom::PrescanLimits::identifier(),
    )
    .map_err(|e| {
        (
            status::DATA_SET_MISMATCH,
            format!("malformed identifier: {e}"),
        )
    })?;
    ward_query::parse_identifier(&bytes, ts, model)
        .map_err(|e| (status::DATA_SET_MISMATCH, e.to_string()))
}
