//! C-GET and C-MOVE SCP: the identifier designates instances; each is sent as a C-STORE
//! sub-operation — on the same association for C-GET, on Ward's own association to a registered
//! destination for C-MOVE — with pending responses counting progress and C-CANCEL honoured.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};
use ward_audit::{Action, AuditEvent, Outcome};
use ward_index::InstanceRow;
use ward_types::{AeTitle, Operation};

use crate::client::{ClientAssociation, ClientOptions, Proposal};
use crate::command::{Command, CommandField, status, tag};
use crate::negotiation::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use crate::session::{End, Event, Request, Response, Session};

/// Progress of the sub-operations of one retrieval.
#[derive(Default)]
struct Progress {
    remaining: usize,
    completed: u16,
    failed: u16,
    warning: u16,
    failed_uids: Vec<String>,
}

impl Progress {
    fn counts(&self) -> [u16; 4] {
        [
            u16::try_from(self.remaining).unwrap_or(u16::MAX),
            self.completed,
            self.failed,
            self.warning,
        ]
    }

    fn record(&mut self, row: &InstanceRow, status_code: Option<u16>) {
        self.remaining = self.remaining.saturating_sub(1);
        match status_code {
            Some(status::SUCCESS) => self.completed = self.completed.saturating_add(1),
            Some(code) if status::is_success_or_warning(code) => {
                self.warning = self.warning.saturating_add(1)
            }
            _ => {
                self.failed = self.failed.saturating_add(1);
                self.failed_uids
                    .push(row.sop_instance_uid.as_str().to_owned());
            }
        }
    }

    /// The final status (PS3.4 C.4.2.1.5, C.4.3.1.4).
    fn final_status(&self) -> u16 {
        if self.failed == 0 && self.warning == 0 {
            status::SUCCESS
        } else if self.completed == 0 && self.warning == 0 {
            status::UNABLE_TO_PERFORM_SUBOPERATIONS
        } else {
            status::SUBOPERATIONS_WITH_FAILURES
        }
    }
}

/// Serves a C-GET-RQ or C-MOVE-RQ and records it in the audit trail.
pub(crate) async fn handle<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    op: Operation,
    identifier: Option<Vec<u8>>,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut record = RetrieveRecord {
        operation: op.name(),
        destination: request.command.string(tag::MOVE_DESTINATION).ok().flatten(),
        ..RetrieveRecord::default()
    };
    let (code, comment, identifier, counts) =
        match retrieve(session, request, op, identifier, &mut record).await? {
            Ok((code, progress)) => {
                let identifier = if progress.failed_uids.is_empty() {
                    None
                } else {
                    failed_uid_list(&progress.failed_uids, &request.context.transfer_syntax)
                };
                (code, None, identifier, Some(progress.counts()))
            }
            Err((code, comment)) => (code, Some(comment), None, None),
        };
    let outcome = if status::is_success_or_warning(code) || code == status::CANCEL {
        Outcome::Success
    } else {
        Outcome::Failure {
            status: Some(code),
            reason: comment.clone().unwrap_or_default(),
        }
    };
    let event = AuditEvent::new(Action::Retrieve, session.peer.actor())
        .with_outcome(outcome)
        .with_detail(serde_json::json!({
            "operation": record.operation,
            "move_destination": record.destination,
            "keys": record.keys,
            "study_instance_uids": record.studies,
            "sop_instance_uids": record.instances,
            "completed": counts.map(|c| c[1]),
            "failed": counts.map(|c| c[2]),
            "status": code,
        }));
    let _ = session.server.audit(event).await;
    session
        .respond(
            request,
            Response {
                status: code,
                comment: comment.as_deref(),
                identifier: identifier.as_deref(),
                counts,
            },
        )
        .await
}

/// What the audit trail keeps of a retrieval.
#[derive(Default)]
struct RetrieveRecord {
    operation: &'static str,
    destination: Option<String>,
    keys: serde_json::Value,
    studies: Vec<String>,
    instances: Vec<String>,
}

/// Runs a retrieval: the outer error ends the association; the inner result is the final
/// status with the progress, or a refusal with its reason.
async fn retrieve<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    op: Operation,
    identifier: Option<Vec<u8>>,
    record: &mut RetrieveRecord,
) -> Result<Result<(u16, Progress), (u16, String)>, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let query = match crate::find::parse(request, identifier) {
        Ok(query) => query,
        Err(refusal) => return Ok(Err(refusal)),
    };
    record.keys = ward_query::audit_keys(&query);
    // For C-MOVE the destination is checked before anything is looked up.
    let destination = if op == Operation::Move {
        match destination(session, request).await {
            Ok(dest) => Some(dest),
            Err(comment) => {
                info!("C-MOVE to an unknown or unusable destination refused");
                return Ok(Err((status::MOVE_DESTINATION_UNKNOWN, comment.to_owned())));
            }
        }
    } else {
        None
    };
    let limit = session.server.config.max_retrieve;
    let rows = match session
        .ingest()
        .index()
        .retrieve_instances(&query, limit)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return Ok(Err(crate::find::index_failure(&e))),
    };
    record.instances = rows
        .iter()
        .map(|r| r.sop_instance_uid.as_str().to_owned())
        .collect();
    record.studies = rows
        .iter()
        .map(|r| r.study_instance_uid.as_str().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut progress = Progress {
        remaining: rows.len(),
        ..Progress::default()
    };
    let cancelled = match destination {
        None => get(session, request, &rows, &mut progress).await?,
        Some(dest) => match move_to(session, request, &dest, &rows, &mut progress).await? {
            Some(cancelled) => cancelled,
            None => {
                return Ok(Err((
                    status::UNABLE_TO_PERFORM_SUBOPERATIONS,
                    "move destination cannot be reached".to_owned(),
                )));
            }
        },
    };
    info!(
        completed = progress.completed,
        failed = progress.failed,
        warning = progress.warning,
        cancelled,
        "retrieve answered"
    );
    let code = if cancelled {
        status::CANCEL
    } else {
        progress.final_status()
    };
    Ok(Ok((code, progress)))
}

/// C-GET: each instance goes back on this association, on a storage context for which the peer
/// took the SCP role with the instance's stored transfer syntax. Returns whether the peer
/// cancelled.
async fn get<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    rows: &[InstanceRow],
    progress: &mut Progress,
) -> Result<bool, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut cancelled = false;
    for row in rows {
        if cancelled || session.cancelled(request).await? {
            return Ok(true);
        }
        let candidates: Vec<(u8, String)> = session
            .peer
            .contexts
            .values()
            .filter(|c| c.peer_is_storage_scp && c.abstract_syntax == row.sop_class_uid.as_str())
            .map(|c| (c.id, c.transfer_syntax.clone()))
            .collect();
        let Some(plan) = plan(row, &candidates) else {
            progress.record(row, None);
            report(session, request, progress).await?;
            continue;
        };
        let message_id = session.next_message_id();
        let mut rq = Command::new(CommandField::CStoreRq, row.sop_class_uid.as_str());
        rq.set_u16(tag::MESSAGE_ID, message_id)
            .set_u16(tag::PRIORITY, 0)
            .set_u16(tag::COMMAND_DATA_SET_TYPE, crate::command::DATA_SET_PRESENT)
            .set_uid(
                tag::AFFECTED_SOP_INSTANCE_UID,
                row.sop_instance_uid.as_str(),
            );
        let sent = match &plan {
            Plan::AsStored(context_id) => match session.ingest().open_dataset(row).await {
                Ok((reader, len)) => {
                    session.send_streamed(*context_id, &rq, reader, len).await?;
                    true
                }
                Err(e) => {
                    warn!(error = %e, "cannot read a stored object");
                    false
                }
            },
            Plan::Convert(context_id, ts) => match session.ingest().converted(row, ts).await {
                Ok(bytes) => {
                    session.send(*context_id, &rq, Some(&bytes)).await?;
                    true
                }
                Err(e) => {
                    warn!(error = %e, "cannot convert a stored object");
                    false
                }
            },
        };
        if !sent {
            progress.record(row, None);
            report(session, request, progress).await?;
            continue;
        }
        // Wait for the sub-operation's response; a cancel may arrive meanwhile.
        let outcome = loop {
            match session.next_event().await? {
                Event::Command { command, .. }
                    if command.command_field().ok() == Some(CommandField::CStoreRsp) =>
                {
                    if command.u16(tag::MESSAGE_ID_BEING_RESPONDED_TO).ok() != Some(message_id) {
                        return Err(End::Abort("response to an unknown sub-operation"));
                    }
                    break command.status().ok();
                }
                other => {
                    if session.is_cancel_of(request, other)? {
                        cancelled = true;
                    }
                }
            }
        };
        progress.record(row, outcome);
        if progress.remaining > 0 {
            report(session, request, progress).await?;
        }
    }
    Ok(cancelled)
}

/// A pending response with the counts so far.
async fn report<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    progress: &Progress,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if progress.remaining == 0 {
        return Ok(());
    }
    session
        .respond(
            request,
            Response {
                status: status::PENDING,
                comment: None,
                identifier: None,
                counts: Some(progress.counts()),
            },
        )
        .await
}

/// A registered C-MOVE destination: where it listens and its title.
struct Destination {
    aet: AeTitle,
    addr: SocketAddr,
}

/// Resolves the Move Destination: it must be registered, with a single address and a port,
/// and allowed to take part in storage.
async fn destination<S>(
    session: &Session<'_, S>,
    request: &Request,
) -> Result<Destination, &'static str>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = request
        .command
        .string(tag::MOVE_DESTINATION)
        .ok()
        .flatten()
        .ok_or("Move Destination missing")?;
    let aet = AeTitle::parse(&name).map_err(|_| "Move Destination is not a valid AE title")?;
    let entry = session
        .ingest()
        .index()
        .ae_get(&aet)
        .await
        .map_err(|_| "registry lookup failed")?
        .ok_or("Move Destination is not registered")?;
    if !entry.allow.contains(Operation::Store) {
        return Err("Move Destination is not registered for storage");
    }
    let ip = entry
        .host
        .single_address()
        .ok_or("Move Destination is registered with a network, not an address")?;
    let port = entry
        .port
        .ok_or("Move Destination has no port registered")?;
    Ok(Destination {
        aet,
        addr: SocketAddr::new(ip, port),
    })
}

/// C-MOVE: opens Ward's own association to the destination and stores each instance there.
/// `None` when the destination cannot be reached; otherwise whether the peer cancelled.
async fn move_to<S>(
    session: &mut Session<'_, S>,
    request: &Request,
    dest: &Destination,
    rows: &[InstanceRow],
    progress: &mut Progress,
) -> Result<Option<bool>, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if rows.is_empty() {
        return Ok(Some(false));
    }
    let proposals: Vec<Proposal> = rows
        .iter()
        .map(|r| Proposal {
            abstract_syntax: r.sop_class_uid.as_str().to_owned(),
            transfer_syntaxes: sendable_syntaxes(r),
            scp_role: false,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(crate::negotiation::MAX_CONTEXTS)
        .collect();
    let config = &session.server.config;
    let options = ClientOptions {
        calling_ae: config.ae_title.as_str().to_owned(),
        called_ae: dest.aet.as_str().to_owned(),
        max_pdu: config.max_pdu,
        timeout: config.connect_timeout,
    };
    let mut assoc =
        match ClientAssociation::connect(&dest.addr.to_string(), options, &proposals).await {
            Ok(assoc) => assoc,
            Err(e) => {
                warn!(error = %e, destination = %dest.aet, "C-MOVE destination unreachable");
                return Ok(None);
            }
        };
    let originator = (session.peer.ae.as_str().to_owned(), request.message_id);
    for row in rows {
        if session.cancelled(request).await? {
            assoc.abort().await;
            return Ok(Some(true));
        }
        let accepted = assoc.accepted_syntaxes(row.sop_class_uid.as_str());
        let data = match plan(row, &accepted) {
            None => Err("no usable presentation context".to_owned()),
            Some(Plan::AsStored(_)) => session
                .ingest()
                .open_dataset(row)
                .await
                .map(|(reader, len)| {
                    (
                        Outgoing::Stream(reader),
                        len,
                        row.transfer_syntax.as_str().to_owned(),
                    )
                })
                .map_err(|e| e.to_string()),
            Some(Plan::Convert(_, ts)) => session.ingest().converted(row, &ts).await.map(|bytes| {
                let len = bytes.len() as u64;
                (Outgoing::Bytes(bytes), len, ts)
            }),
        };
        let outcome = match data {
            Ok((data, len, ts)) => {
                let originator = Some((originator.0.as_str(), originator.1));
                let (class, instance) = (row.sop_class_uid.as_str(), row.sop_instance_uid.as_str());
                let sent = match data {
                    Outgoing::Stream(reader) => {
                        assoc
                            .store_stream(class, instance, &ts, reader, len, originator)
                            .await
                    }
                    Outgoing::Bytes(bytes) => {
                        assoc
                            .store_stream(class, instance, &ts, &bytes[..], len, originator)
                            .await
                    }
                };
                match sent {
                    Ok((code, _)) => Some(code),
                    Err(e) => {
                        warn!(error = %e, "C-MOVE sub-operation failed");
                        progress.record(row, None);
                        // The destination association is gone: the rest cannot be sent.
                        let rest = rows
                            .iter()
                            .skip_while(|r| r.sop_instance_uid != row.sop_instance_uid)
                            .skip(1);
                        for r in rest {
                            progress.record(r, None);
                        }
                        return Ok(Some(false));
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot send a stored object");
                None
            }
        };
        progress.record(row, outcome);
        report(session, request, progress).await?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), assoc.release()).await;
    Ok(Some(false))
}

/// How one instance goes out on the contexts a peer accepted for its SOP class.
enum Plan {
    /// As stored, on this context.
    AsStored(u8),
    /// Converted to this native transfer syntax (re-encoded, or its pixel data decoded), on
    /// this context.
    Convert(u8, String),
}

/// A data set to send: streamed from the store, or converted in memory.
enum Outgoing {
    Stream(Box<dyn AsyncRead + Send + Unpin>),
    Bytes(Vec<u8>),
}

/// Chooses how to send `row` given the accepted (context id, transfer syntax) pairs: as stored
/// when the peer took that syntax, else converted to uncompressed little endian when possible.
/// `None` fails the sub-operation.
fn plan(row: &InstanceRow, accepted: &[(u8, String)]) -> Option<Plan> {
    let stored = row.transfer_syntax.as_str();
    if let Some((id, _)) = accepted.iter().find(|(_, ts)| ts == stored) {
        return Some(Plan::AsStored(*id));
    }
    if !ward_ingest::convertible(row) {
        return None;
    }
    accepted
        .iter()
        .find(|(_, ts)| ts == EXPLICIT_VR_LE || ts == IMPLICIT_VR_LE)
        .map(|(id, ts)| Plan::Convert(*id, ts.clone()))
}

/// The transfer syntaxes to propose for sending `row`: as stored first, then the uncompressed
/// ones it can be converted to.
fn sendable_syntaxes(row: &InstanceRow) -> Vec<String> {
    let stored = row.transfer_syntax.as_str();
    let mut out = vec![stored.to_owned()];
    if ward_ingest::convertible(row) {
        for ts in [EXPLICIT_VR_LE, IMPLICIT_VR_LE] {
            if ts != stored {
                out.push(ts.to_owned());
            }
        }
    }
    out
}

/// The identifier of a final C-GET/C-MOVE response: Failed SOP Instance UID List (0008,0058).
fn failed_uid_list(uids: &[String], ts_uid: &str) -> Option<Vec<u8>> {
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(ts_uid)?;
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::FAILED_SOP_INSTANCE_UID_LIST,
        VR::UI,
        PrimitiveValue::Strs(uids.iter().cloned().collect()),
    ));
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_types::Uid;

    const RLE: &str = "1.2.840.10008.1.2.5";
    const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
    const JPEG_2000: &str = "1.2.840.10008.1.2.4.90";

    fn row(ts: &str, size: u64) -> InstanceRow {
        let uid = |s: &str| Uid::parse(s).unwrap();
        InstanceRow {
            sop_instance_uid: uid("1.2.3.4"),
            sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.7"),
            study_instance_uid: uid("1.2.3"),
            series_instance_uid: uid("1.2.3.1"),
            transfer_syntax: uid(ts),
            size,
            blob_key: String::new(),
        }
    }

    fn accepted(syntaxes: &[&str]) -> Vec<(u8, String)> {
        (1u8..)
            .step_by(2)
            .zip(syntaxes)
            .map(|(id, ts)| (id, (*ts).to_owned()))
            .collect()
    }

    fn describe(plan: Option<Plan>) -> Option<(u8, Option<String>)> {
        plan.map(|p| match p {
            Plan::AsStored(id) => (id, None),
            Plan::Convert(id, ts) => (id, Some(ts)),
        })
    }

    #[test]
    fn plan_sends_as_stored_else_uncompressed_else_nothing() {
        let both = accepted(&[JPEG_BASELINE, EXPLICIT_VR_LE]);
        let only_le = accepted(&[IMPLICIT_VR_LE]);
        let small = 1 << 20;
        assert_eq!(
            describe(plan(&row(JPEG_BASELINE, small), &both)),
            Some((1, None))
        );
        for ts in [RLE, JPEG_BASELINE, EXPLICIT_VR_LE] {
            assert_eq!(
                describe(plan(&row(ts, small), &only_le)),
                Some((1, Some(IMPLICIT_VR_LE.to_owned()))),
                "{ts}"
            );
        }
        // Not decodable, or too large to convert in memory: the sub-operation fails.
        assert_eq!(describe(plan(&row(JPEG_2000, small), &only_le)), None);
        assert_eq!(
            describe(plan(&row(RLE, ward_ingest::CONVERT_LIMIT + 1), &only_le)),
            None
        );
        assert_eq!(
            describe(plan(&row(RLE, small), &accepted(&[JPEG_BASELINE]))),
            None
        );
    }

    #[test]
    fn moves_propose_uncompressed_syntaxes_for_what_can_be_converted() {
        let le = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];
        assert_eq!(sendable_syntaxes(&row(RLE, 100)), [RLE, le[0], le[1]]);
        assert_eq!(
            sendable_syntaxes(&row(JPEG_BASELINE, 100)),
            [JPEG_BASELINE, le[0], le[1]]
        );
        assert_eq!(sendable_syntaxes(&row(IMPLICIT_VR_LE, 100)), [le[1], le[0]]);
        assert_eq!(sendable_syntaxes(&row(JPEG_2000, 100)), [JPEG_2000]);
        assert_eq!(
            sendable_syntaxes(&row(RLE, ward_ingest::CONVERT_LIMIT + 1)),
            [RLE]
        );
    }
}
