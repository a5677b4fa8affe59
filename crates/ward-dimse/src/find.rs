//! C-FIND SCP: the identifier becomes a query for the one query engine; matches go back as
//! pending responses, with C-CANCEL honoured between them.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};
use ward_query::{Query, QueryModel, QueryOptions};

use crate::command::status;
use crate::session::{End, Request, Response, Session};

/// Serves a C-FIND-RQ.
pub(crate) async fn handle<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    identifier: Option<Vec<u8>>,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let query = match parse(request, identifier) {
        Ok(query) => query,
        Err((code, comment)) => {
            return session
                .respond(request, Response::failure(code, &comment))
                .await;
        }
    };
    let config = &session.server.config;
    let cap = config.max_matches;
    let options = QueryOptions {
        pn_case_insensitive: config.pn_case_insensitive,
    };
    let rows = match session
        .ingest()
        .index()
        .find(&query, &options, cap.saturating_add(1))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let (code, comment) = index_failure(&e);
            return session
                .respond(request, Response::failure(code, &comment))
                .await;
        }
    };
    let truncated = rows.len() > cap as usize;
    let ts = request.context.transfer_syntax.clone();
    let mut sent = 0usize;
    for row in rows.iter().take(cap as usize) {
        if session.cancelled(request).await? {
            info!(matches = sent, "C-FIND cancelled");
            return session
                .respond(request, Response::status(status::CANCEL))
                .await;
        }
        let identifier = match ward_query::response_identifier(&query, row, &ts) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(error = %e, "cannot encode a C-FIND response");
                return session
                    .respond(
                        request,
                        Response::failure(status::UNABLE_TO_PROCESS, "cannot encode a match"),
                    )
                    .await;
            }
        };
        session
            .respond(
                request,
                Response {
                    status: status::PENDING,
                    comment: None,
                    identifier: Some(&identifier),
                    counts: None,
                },
            )
            .await?;
        sent += 1;
    }
    info!(matches = sent, truncated, "C-FIND answered");
    if truncated {
        let comment = format!("more than {cap} matches; refine the query");
        return session
            .respond(
                request,
                Response::failure(status::OUT_OF_RESOURCES, &comment),
            )
            .await;
    }
    session
        .respond(request, Response::status(status::SUCCESS))
        .await
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
        &ward_dicom::PrescanLimits::default(),
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
