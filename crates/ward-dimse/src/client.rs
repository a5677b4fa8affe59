//! The association requestor: C-ECHO and C-STORE as a service class user, for `ward store`,
//! Ward's own tests and benchmarks, and (later) C-MOVE sub-operations.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use dicom_ul::pdu::{
    AbortRQSource, AssociationRQ, PDataValueType, Pdu, PresentationContextProposed,
    PresentationContextResultReason,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::command::{Command, CommandField, tag};
use crate::negotiation::{self, APPLICATION_CONTEXT, VERIFICATION};
use crate::pdu::{self, Incoming, PduError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Pdu(#[from] PduError),
    #[error("association rejected ({0})")]
    Rejected(String),
    #[error("association aborted by the peer")]
    Aborted,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no accepted presentation context for this object")]
    NoContext,
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// What to propose: abstract syntax and transfer syntaxes, one context each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proposal {
    pub abstract_syntax: String,
    pub transfer_syntaxes: Vec<String>,
}

impl Proposal {
    pub fn verification() -> Proposal {
        Proposal {
            abstract_syntax: VERIFICATION.to_owned(),
            transfer_syntaxes: vec![
                negotiation::EXPLICIT_VR_LE.to_owned(),
                negotiation::IMPLICIT_VR_LE.to_owned(),
            ],
        }
    }
}

/// Options of an outgoing association.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub calling_ae: String,
    pub called_ae: String,
    pub max_pdu: u32,
    pub timeout: Duration,
}

/// An established association to a remote SCP.
pub struct ClientAssociation {
    stream: TcpStream,
    /// (abstract syntax, transfer syntax) → accepted context id.
    accepted: HashMap<(String, String), u8>,
    peer_max_pdu: u32,
    options: ClientOptions,
    next_message_id: u16,
}

impl ClientAssociation {
    /// Connects and negotiates. At most 128 proposals (the protocol's limit).
    pub async fn connect(
        addr: &str,
        options: ClientOptions,
        proposals: &[Proposal],
    ) -> Result<ClientAssociation, ClientError> {
        if proposals.is_empty() || proposals.len() > negotiation::MAX_CONTEXTS {
            return Err(ClientError::Protocol(format!(
                "{} presentation contexts proposed; 1 to 128 are allowed",
                proposals.len()
            )));
        }
        let mut stream = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        let contexts: Vec<PresentationContextProposed> = proposals
            .iter()
            .zip((1u8..=255).step_by(2))
            .map(|(p, id)| PresentationContextProposed {
                id,
                abstract_syntax: p.abstract_syntax.clone(),
                transfer_syntaxes: p.transfer_syntaxes.clone(),
            })
            .collect();
        let rq = AssociationRQ {
            protocol_version: 1,
            calling_ae_title: options.calling_ae.clone(),
            called_ae_title: options.called_ae.clone(),
            application_context_name: APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: contexts.clone(),
            user_variables: negotiation::our_user_variables(options.max_pdu),
        };
        pdu::write_pdu(&mut stream, &Pdu::AssociationRQ(rq)).await?;
        let answer = tokio::time::timeout(
            options.timeout,
            pdu::read_pdu(&mut stream, pdu::MAX_CONTROL_PDU),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        match answer {
            Incoming::Other(Pdu::AssociationAC(ac)) => {
                let mut accepted = HashMap::new();
                for result in &ac.presentation_contexts {
                    if result.reason != PresentationContextResultReason::Acceptance {
                        continue;
                    }
                    if let Some(proposed) = contexts.iter().find(|c| c.id == result.id) {
                        accepted.insert(
                            (
                                proposed.abstract_syntax.clone(),
                                result.transfer_syntax.trim_end_matches('\0').to_owned(),
                            ),
                            result.id,
                        );
                    }
                }
                Ok(ClientAssociation {
                    stream,
                    accepted,
                    peer_max_pdu: negotiation::peer_max_pdu(&ac.user_variables),
                    options,
                    next_message_id: 1,
                })
            }
            Incoming::Other(Pdu::AssociationRJ(rj)) => Err(ClientError::Rejected(format!(
                "{:?}, {}",
                rj.result, rj.source
            ))),
            Incoming::Other(Pdu::AbortRQ { .. }) => Err(ClientError::Aborted),
            other => Err(ClientError::Protocol(format!(
                "unexpected answer to A-ASSOCIATE-RQ: {other:?}"
            ))),
        }
    }

    /// Whether the peer accepted `abstract_syntax` with `transfer_syntax`.
    pub fn context_for(&self, abstract_syntax: &str, transfer_syntax: &str) -> Option<u8> {
        self.accepted
            .get(&(abstract_syntax.to_owned(), transfer_syntax.to_owned()))
            .copied()
    }

    fn message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    fn max_payload(&self) -> usize {
        pdu::max_pdv_payload(self.peer_max_pdu, self.options.max_pdu)
    }

    /// C-ECHO; returns the status.
    pub async fn echo(&mut self) -> Result<u16, ClientError> {
        let context = self
            .accepted
            .iter()
            .find(|((abs, _), _)| abs == VERIFICATION)
            .map(|(_, id)| *id)
            .ok_or(ClientError::NoContext)?;
        let id = self.message_id();
        let mut rq = Command::new(CommandField::CEchoRq, VERIFICATION);
        rq.set_u16(tag::MESSAGE_ID, id);
        let max = self.max_payload();
        pdu::write_command(&mut self.stream, context, &rq.encode(), max).await?;
        let rsp = self.read_response(id).await?;
        rsp.status()
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// C-STORE of a Part 10 file, sent as stored (its data set bytes are streamed from disk
    /// unchanged; the preamble and meta group are not sent). Returns the status and the
    /// SCP's error comment, if any.
    pub async fn store_file(&mut self, path: &Path) -> Result<(u16, Option<String>), ClientError> {
        let file_err = |reason: String| ClientError::File {
            path: path.display().to_string(),
            reason,
        };
        let info = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || ward_dicom::read_part10_info(&path))
                .await
                .map_err(|e| file_err(e.to_string()))?
                .map_err(|e| file_err(e.to_string()))?
        };
        let context = self
            .context_for(info.sop_class_uid.as_str(), info.transfer_syntax.as_str())
            .ok_or(ClientError::NoContext)?;
        let id = self.message_id();
        let mut rq = Command::new(CommandField::CStoreRq, info.sop_class_uid.as_str());
        rq.set_u16(tag::MESSAGE_ID, id)
            .set_u16(tag::PRIORITY, 0)
            .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0000)
            .set_uid(
                tag::AFFECTED_SOP_INSTANCE_UID,
                info.sop_instance_uid.as_str(),
            );
        let max = self.max_payload();
        pdu::write_command(&mut self.stream, context, &rq.encode(), max).await?;

        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| file_err(e.to_string()))?;
        file.seek(std::io::SeekFrom::Start(info.dataset_offset))
            .await
            .map_err(|e| file_err(e.to_string()))?;
        let mut reader = BufReader::with_capacity(max, file);
        let mut remaining = info.file_len.saturating_sub(info.dataset_offset);
        let mut buf = vec![0u8; max];
        loop {
            let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(max);
            reader
                .read_exact(&mut buf[..want])
                .await
                .map_err(|e| file_err(e.to_string()))?;
            remaining -= want as u64;
            let last = remaining == 0;
            pdu::write_pdv(
                &mut self.stream,
                context,
                PDataValueType::Data,
                last,
                &buf[..want],
            )
            .await?;
            if last {
                break;
            }
        }
        self.stream.flush().await.map_err(PduError::from)?;
        let rsp = self.read_response(id).await?;
        let status = rsp
            .status()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let comment = rsp.string(tag::ERROR_COMMENT).ok().flatten();
        Ok((status, comment))
    }

    /// Reads PDUs until the response to `message_id` is complete.
    async fn read_response(&mut self, message_id: u16) -> Result<Command, ClientError> {
        let mut bytes = Vec::new();
        loop {
            let incoming = tokio::time::timeout(
                self.options.timeout,
                pdu::read_pdu(&mut self.stream, self.options.max_pdu),
            )
            .await
            .map_err(|_| ClientError::Timeout)??;
            let pdvs = match incoming {
                Incoming::PData(pdvs) => pdvs,
                Incoming::Other(Pdu::AbortRQ { .. }) => return Err(ClientError::Aborted),
                Incoming::Other(other) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected PDU: {}",
                        other.short_description()
                    )));
                }
            };
            for pdv in pdvs {
                if !pdv.is_command {
                    return Err(ClientError::Protocol("unexpected data set".into()));
                }
                if bytes.len() + pdv.data.len() > crate::command::MAX_COMMAND_SET {
                    return Err(ClientError::Protocol("response too large".into()));
                }
                bytes.extend_from_slice(&pdv.data);
                if pdv.is_last {
                    let cmd = Command::decode(&bytes)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    let answered = cmd
                        .u16(tag::MESSAGE_ID_BEING_RESPONDED_TO)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if answered != message_id {
                        return Err(ClientError::Protocol(format!(
                            "response to message {answered}, expected {message_id}"
                        )));
                    }
                    return Ok(cmd);
                }
            }
        }
    }

    /// Releases the association (A-RELEASE-RQ, waits for the RP).
    pub async fn release(mut self) -> Result<(), ClientError> {
        pdu::write_pdu(&mut self.stream, &Pdu::ReleaseRQ).await?;
        let answer = tokio::time::timeout(
            self.options.timeout,
            pdu::read_pdu(&mut self.stream, pdu::MAX_CONTROL_PDU),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        let _ = self.stream.shutdown().await;
        match answer {
            Incoming::Other(Pdu::ReleaseRP) => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "unexpected answer to A-RELEASE-RQ: {other:?}"
            ))),
        }
    }

    /// Aborts the association.
    pub async fn abort(mut self) {
        pdu::send_abort(&mut self.stream, AbortRQSource::ServiceUser).await;
        let _ = self.stream.shutdown().await;
    }
}
