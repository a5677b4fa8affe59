//! C-STORE SCP: the data set is streamed into the ingest path as it arrives.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};
use ward_ingest::{SpoolWriter, StoreRequest, Stored};
use ward_types::{Operation, Uid};

use crate::command::{status, tag};
use crate::session::{End, Event, Request, Response, Session};

/// Serves a C-STORE-RQ whose command has just arrived.
pub(crate) async fn handle<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    has_data: bool,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let writer = if has_data {
        begin(session, request).await
    } else {
        Err((
            status::CANNOT_UNDERSTAND,
            "C-STORE without a data set".to_owned(),
        ))
    };
    let outcome = match writer {
        Ok(writer) => receive(session, request, writer).await?,
        Err(refusal) => {
            if has_data {
                discard(session, request).await?;
            }
            Err(refusal)
        }
    };
    let response = match &outcome {
        Ok(()) => Response::status(status::SUCCESS),
        Err((code, comment)) => Response::failure(*code, comment),
    };
    session.respond(request, response).await
}

/// Checks the request and opens a spool file for it.
async fn begin<'a, S>(
    session: &Session<'a, S>,
    request: &Request,
) -> Result<SpoolWriter, (u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    session
        .check_request(request, Operation::Store)
        .map_err(|(code, comment)| (code, comment.to_owned()))?;
    let command = &request.command;
    let instance = command
        .string(tag::AFFECTED_SOP_INSTANCE_UID)
        .ok()
        .flatten()
        .ok_or((
            status::CANNOT_UNDERSTAND,
            "Affected SOP Instance UID missing".to_owned(),
        ))?;
    let bad_uid = |what: &str| (status::DATA_SET_MISMATCH, format!("invalid {what}"));
    let store_request = StoreRequest {
        sop_class: Uid::parse(&request.context.abstract_syntax)
            .map_err(|_| bad_uid("SOP Class UID"))?,
        sop_instance: Uid::parse(&instance).map_err(|_| bad_uid("SOP Instance UID"))?,
        transfer_syntax: Uid::parse(&request.context.transfer_syntax)
            .map_err(|_| bad_uid("transfer syntax UID"))?,
        source_ae: Some(session.peer.ae.as_str().to_owned()),
        actor: session.peer.actor(),
        expected_study: None,
    };
    session
        .server
        .ingest
        .begin(store_request)
        .await
        .map_err(|e| (e.status(), e.to_string()))
}

/// Streams the data set into the spool and commits it. The outer error ends the association;
/// the inner one is the failure status to answer.
async fn receive<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    mut writer: SpoolWriter,
) -> Result<Result<(), (u16, String)>, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match session.next_event().await? {
            Event::Data {
                context_id,
                bytes,
                last,
            } if context_id == request.context.id => {
                if let Err(e) = writer.write(&bytes).await {
                    // The writer (and its spool file) goes; the rest of the data set is read
                    // and dropped so that the association stays usable.
                    drop(writer);
                    if !last {
                        discard(session, request).await?;
                    }
                    return Ok(Err((e.status(), e.to_string())));
                }
                if last {
                    break;
                }
            }
            _ => return Err(End::Abort("expected the C-STORE data set")),
        }
    }
    Ok(match writer.commit().await {
        Ok(Stored::New { size, .. }) => {
            debug!(message_id = request.message_id, size, "stored");
            Ok(())
        }
        Ok(Stored::AlreadyStored { .. }) => {
            debug!(message_id = request.message_id, "already stored");
            Ok(())
        }
        Err(e) => {
            info!(message_id = request.message_id, status = e.status(), error = %e, "store refused");
            Err((e.status(), e.to_string()))
        }
    })
}

/// Reads the rest of a data set that will not be stored.
async fn discard<S>(session: &mut Session<'_, S>, request: &Request) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match session.next_event().await? {
            Event::Data {
                context_id, last, ..
            } if context_id == request.context.id => {
                if last {
                    return Ok(());
                }
            }
            _ => return Err(End::Abort("expected the C-STORE data set")),
        }
    }
}
