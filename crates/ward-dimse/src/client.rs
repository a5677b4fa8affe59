//! The association requestor: C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE as a service class
//! user, for `ward store`/`find`/`get`/`move`, C-MOVE sub-operations, `ward audit`, Ward's own
//! tests and benchmarks. It runs over any byte stream (plain TCP, or TLS set up by the caller).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_ul::pdu::{
    AbortRQSource, AssociationRJ, AssociationRQ, PDataValueType, Pdu, PresentationContextProposed,
    PresentationContextResultReason, RequestorRoles, UserIdentity, UserVariableItem,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use ward_types::Uid;

use crate::command::{Command, CommandField, tag};
use crate::negotiation::{self, APPLICATION_CONTEXT, VERIFICATION};
use crate::pdu::{self, Incoming, PduError, Pdv};

/// Largest identifier accepted in a response.
const MAX_RESPONSE_IDENTIFIER: usize = 1 << 20;

/// Bytes read from the peer at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Counts and status of a C-GET or C-MOVE, from its latest response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetrieveProgress {
    pub status: u16,
    pub remaining: Option<u16>,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
    pub comment: Option<String>,
}

impl RetrieveProgress {
    fn from_command(cmd: &Command) -> Result<RetrieveProgress, ClientError> {
        Ok(RetrieveProgress {
            status: cmd
                .status()
                .map_err(|e| ClientError::Protocol(e.to_string()))?,
            remaining: cmd.u16(tag::REMAINING_SUBOPERATIONS).ok(),
            completed: cmd.u16(tag::COMPLETED_SUBOPERATIONS).unwrap_or(0),
            failed: cmd.u16(tag::FAILED_SUBOPERATIONS).unwrap_or(0),
            warning: cmd.u16(tag::WARNING_SUBOPERATIONS).unwrap_or(0),
            comment: cmd.string(tag::ERROR_COMMENT).ok().flatten(),
        })
    }
}

/// Checks that a response answers `id`.
fn check_answers(cmd: &Command, id: u16) -> Result<(), ClientError> {
    match cmd.u16(tag::MESSAGE_ID_BEING_RESPONDED_TO) {
        Ok(answered) if answered == id => Ok(()),
        Ok(answered) => Err(ClientError::Protocol(format!(
            "response to message {answered}, expected {id}"
        ))),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// Parses a response identifier after the length-checked pre-scan.
fn decode_identifier(bytes: &[u8], ts_uid: &str) -> Result<InMemDicomObject, ClientError> {
    ward_dicom::prescan_dataset(
        bytes,
        bytes.len() as u64,
        ts_uid,
        &ward_dicom::PrescanLimits::identifier(),
    )
    .map_err(|e| ClientError::Protocol(format!("malformed identifier: {e}")))?;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or(ClientError::NoContext)?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| ClientError::Protocol(format!("malformed identifier: {e}")))
}

fn hex_random() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Pdu(#[from] PduError),
    #[error("association rejected ({:?}, {})", .0.result, .0.source)]
    Rejected(AssociationRJ),
    #[error("association aborted by the peer")]
    Aborted,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no accepted presentation context for this object")]
    NoContext,
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// Where the instances a C-GET brings go.
enum Destination<'a> {
    /// Part 10 files in a directory.
    Files(&'a Path),
    /// A callback that sees each data set's bytes as they arrive; nothing is kept.
    Callback(&'a mut (dyn FnMut(&[u8], bool) + Send)),
}

/// What to propose: abstract syntax and transfer syntaxes, one context each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proposal {
    pub abstract_syntax: String,
    pub transfer_syntaxes: Vec<String>,
    /// Propose the SCP role too (PS3.7 D.3.3.4): needed to receive C-GET sub-operations.
    pub scp_role: bool,
}

impl Proposal {
    pub fn verification() -> Proposal {
        Proposal {
            abstract_syntax: VERIFICATION.to_owned(),
            transfer_syntaxes: vec![
                negotiation::EXPLICIT_VR_LE.to_owned(),
                negotiation::IMPLICIT_VR_LE.to_owned(),
            ],
            scp_role: false,
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

/// What the acceptor said about one proposed presentation context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    pub id: u8,
    pub abstract_syntax: String,
    pub result: PresentationContextResultReason,
    /// The accepted transfer syntax (meaningless unless accepted).
    pub transfer_syntax: String,
}

/// How the acceptor described itself in its A-ASSOCIATE-AC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerImplementation {
    pub class_uid: Option<String>,
    pub version_name: Option<String>,
    /// Its maximum PDU length (0: no limit).
    pub max_pdu: u32,
}

impl PeerImplementation {
    fn from_user_variables(items: &[UserVariableItem]) -> PeerImplementation {
        let text = |s: &str| s.trim_end_matches(['\0', ' ']).to_owned();
        PeerImplementation {
            class_uid: items.iter().find_map(|item| match item {
                UserVariableItem::ImplementationClassUID(uid) => Some(text(uid)),
                _ => None,
            }),
            version_name: items.iter().find_map(|item| match item {
                UserVariableItem::ImplementationVersionName(name) => Some(text(name)),
                _ => None,
            }),
            max_pdu: negotiation::peer_max_pdu(items),
        }
    }
}

/// An established association to a remote SCP, over a plain TCP stream unless the caller set
/// up another (TLS).
pub struct ClientAssociation<S = TcpStream> {
    /// Reads are buffered: a C-FIND answer or a C-GET is many small PDUs, and reading each
    /// header and body straight from the socket cost two system calls apiece.
    stream: BufReader<S>,
    /// (abstract syntax, transfer syntax) → accepted context id.
    accepted: HashMap<(String, String), u8>,
    contexts: Vec<ContextResult>,
    peer: PeerImplementation,
    options: ClientOptions,
    next_message_id: u16,
    /// PDVs received but not yet consumed.
    queued: VecDeque<Pdv>,
}

impl ClientAssociation<TcpStream> {
    /// Connects over TCP and negotiates. At most 128 proposals (the protocol's limit).
    pub async fn connect(
        addr: &str,
        options: ClientOptions,
        proposals: &[Proposal],
    ) -> Result<ClientAssociation, ClientError> {
        let stream = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        ClientAssociation::negotiate(stream, options, proposals, None).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientAssociation<S> {
    /// Negotiates an association over an established stream, sending `user_identity`
    /// (PS3.7 D.3.3.7) when given. At most 128 proposals (the protocol's limit).
    pub async fn negotiate(
        stream: S,
        options: ClientOptions,
        proposals: &[Proposal],
        user_identity: Option<UserIdentity>,
    ) -> Result<ClientAssociation<S>, ClientError> {
        let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
        if proposals.is_empty() || proposals.len() > negotiation::MAX_CONTEXTS {
            return Err(ClientError::Protocol(format!(
                "{} presentation contexts proposed; 1 to 128 are allowed",
                proposals.len()
            )));
        }
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
            user_variables: {
                let mut items = negotiation::our_user_variables(options.max_pdu);
                let roles: std::collections::BTreeSet<&str> = proposals
                    .iter()
                    .filter(|p| p.scp_role)
                    .map(|p| p.abstract_syntax.as_str())
                    .collect();
                items.extend(roles.into_iter().map(|class| {
                    UserVariableItem::ScuScpRoleSelectionSubItem(
                        class.to_owned(),
                        RequestorRoles {
                            scu: true,
                            scp: true,
                        },
                    )
                }));
                items.extend(user_identity.map(UserVariableItem::UserIdentityItem));
                items
            },
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
                // Results for contexts never proposed are ignored.
                let results: Vec<ContextResult> = ac
                    .presentation_contexts
                    .iter()
                    .filter_map(|result| {
                        let proposed = contexts.iter().find(|c| c.id == result.id)?;
                        Some(ContextResult {
                            id: result.id,
                            abstract_syntax: proposed.abstract_syntax.clone(),
                            result: result.reason.clone(),
                            transfer_syntax: result
                                .transfer_syntax
                                .trim_end_matches('\0')
                                .to_owned(),
                        })
                    })
                    .collect();
                let accepted = results
                    .iter()
                    .filter(|r| r.result == PresentationContextResultReason::Acceptance)
                    .map(|r| ((r.abstract_syntax.clone(), r.transfer_syntax.clone()), r.id))
                    .collect();
                Ok(ClientAssociation {
                    stream,
                    accepted,
                    contexts: results,
                    peer: PeerImplementation::from_user_variables(&ac.user_variables),
                    options,
                    next_message_id: 1,
                    queued: VecDeque::new(),
                })
            }
            Incoming::Other(Pdu::AssociationRJ(rj)) => Err(ClientError::Rejected(rj)),
            Incoming::Other(Pdu::AbortRQ { .. }) => Err(ClientError::Aborted),
            other => Err(ClientError::Protocol(format!(
                "unexpected answer to A-ASSOCIATE-RQ: {other:?}"
            ))),
        }
    }

    /// The acceptor's answer to each proposed context, in the order it gave them.
    pub fn context_results(&self) -> &[ContextResult] {
        &self.contexts
    }

    /// How the acceptor described itself.
    pub fn peer(&self) -> &PeerImplementation {
        &self.peer
    }

    /// The (context id, transfer syntax) pairs the peer accepted for `abstract_syntax`.
    pub fn accepted_syntaxes(&self, abstract_syntax: &str) -> Vec<(u8, String)> {
        let mut out: Vec<(u8, String)> = self
            .accepted
            .iter()
            .filter(|((abs, _), _)| abs == abstract_syntax)
            .map(|((_, ts), id)| (*id, ts.clone()))
            .collect();
        out.sort();
        out
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
        pdu::max_pdv_payload(self.peer.max_pdu, self.options.max_pdu)
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
        pdu::write_fragments(
            &mut self.stream,
            context,
            PDataValueType::Command,
            &rq.encode(),
            max,
        )
        .await?;
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
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| file_err(e.to_string()))?;
        file.seek(std::io::SeekFrom::Start(info.dataset_offset))
            .await
            .map_err(|e| file_err(e.to_string()))?;
        self.store_stream(
            info.sop_class_uid.as_str(),
            info.sop_instance_uid.as_str(),
            info.transfer_syntax.as_str(),
            file,
            info.file_len.saturating_sub(info.dataset_offset),
            None,
        )
        .await
    }

    /// C-STORE of a data set read from `reader` (`len` bytes, encoded in `transfer_syntax`),
    /// streamed in PDVs. `originator` names the C-MOVE this is a sub-operation of. Returns the
    /// status and the SCP's error comment, if any.
    pub async fn store_stream<R: AsyncRead + Unpin>(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        reader: R,
        len: u64,
        originator: Option<(&str, u16)>,
    ) -> Result<(u16, Option<String>), ClientError> {
        let context = self
            .context_for(sop_class, transfer_syntax)
            .ok_or(ClientError::NoContext)?;
        let id = self.message_id();
        let mut rq = Command::new(CommandField::CStoreRq, sop_class);
        rq.set_u16(tag::MESSAGE_ID, id)
            .set_u16(tag::PRIORITY, 0)
            .set_u16(tag::COMMAND_DATA_SET_TYPE, crate::command::DATA_SET_PRESENT)
            .set_uid(tag::AFFECTED_SOP_INSTANCE_UID, sop_instance);
        if let Some((aet, message_id)) = originator {
            rq.set_text(tag::MOVE_ORIGINATOR_AE_TITLE, aet)
                .set_u16(tag::MOVE_ORIGINATOR_MESSAGE_ID, message_id);
        }
        let max = self.max_payload();
        pdu::write_fragments(
            &mut self.stream,
            context,
            PDataValueType::Command,
            &rq.encode(),
            max,
        )
        .await?;
        let reader = BufReader::with_capacity(max, reader);
        pdu::write_stream(
            &mut self.stream,
            context,
            reader,
            len,
            max,
            self.options.timeout,
        )
        .await?;
        let rsp = self.read_response(id).await?;
        let status = rsp
            .status()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let comment = rsp.string(tag::ERROR_COMMENT).ok().flatten();
        Ok((status, comment))
    }

    /// The next PDV from the peer, reading a PDU when none is queued.
    async fn next_pdv(&mut self) -> Result<Pdv, ClientError> {
        loop {
            if let Some(pdv) = self.queued.pop_front() {
                return Ok(pdv);
            }
            let incoming = tokio::time::timeout(
                self.options.timeout,
                pdu::read_pdu(&mut self.stream, self.options.max_pdu),
            )
            .await
            .map_err(|_| ClientError::Timeout)??;
            match incoming {
                Incoming::PData(pdvs) => self.queued.extend(pdvs),
                Incoming::Other(Pdu::AbortRQ { .. }) => return Err(ClientError::Aborted),
                Incoming::Other(other) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected PDU: {}",
                        other.short_description()
                    )));
                }
            }
        }
    }

    /// The next complete command set and its context.
    async fn read_command(&mut self) -> Result<(u8, Command), ClientError> {
        let mut bytes = Vec::new();
        loop {
            let pdv = self.next_pdv().await?;
            if !pdv.is_command {
                return Err(ClientError::Protocol(
                    "data set where a command was expected".into(),
                ));
            }
            if bytes.len() + pdv.data.len() > crate::command::MAX_COMMAND_SET {
                return Err(ClientError::Protocol("command set too large".into()));
            }
            bytes.extend_from_slice(&pdv.data);
            if pdv.is_last {
                let cmd =
                    Command::decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
                return Ok((pdv.context_id, cmd));
            }
        }
    }

    /// Reads the data set that follows a command into memory, up to `cap` bytes.
    async fn read_data(&mut self, context_id: u8, cap: usize) -> Result<Vec<u8>, ClientError> {
        let mut bytes = Vec::new();
        loop {
            let pdv = self.next_pdv().await?;
            if pdv.is_command || pdv.context_id != context_id {
                return Err(ClientError::Protocol("data set expected".into()));
            }
            if bytes.len() + pdv.data.len() > cap {
                return Err(ClientError::Protocol("data set too large".into()));
            }
            bytes.extend_from_slice(&pdv.data);
            if pdv.is_last {
                return Ok(bytes);
            }
        }
    }

    /// Reads the response to `message_id` (a data set following it is left unread).
    async fn read_response(&mut self, message_id: u16) -> Result<Command, ClientError> {
        let (_, cmd) = self.read_command().await?;
        let answered = cmd
            .u16(tag::MESSAGE_ID_BEING_RESPONDED_TO)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if answered != message_id {
            return Err(ClientError::Protocol(format!(
                "response to message {answered}, expected {message_id}"
            )));
        }
        Ok(cmd)
    }

    /// The accepted context for `abstract_syntax` (any transfer syntax) and its transfer syntax.
    fn context_for_class(&self, abstract_syntax: &str) -> Option<(u8, String)> {
        self.accepted
            .iter()
            .filter(|((abs, _), _)| abs == abstract_syntax)
            .map(|((_, ts), id)| (*id, ts.clone()))
            .min()
    }

    /// Sends a C-FIND/C-GET/C-MOVE request with its identifier; returns the message id and the
    /// context's transfer syntax.
    async fn send_query(
        &mut self,
        field: CommandField,
        sop_class: &str,
        identifier: &InMemDicomObject,
        move_destination: Option<&str>,
    ) -> Result<(u16, String), ClientError> {
        let (context, ts_uid) = self
            .context_for_class(sop_class)
            .ok_or(ClientError::NoContext)?;
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(&ts_uid)
            .ok_or(ClientError::NoContext)?;
        let mut data = Vec::new();
        identifier
            .write_dataset_with_ts(&mut data, ts)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the identifier: {e}")))?;
        let id = self.message_id();
        let mut rq = Command::new(field, sop_class);
        rq.set_u16(tag::MESSAGE_ID, id)
            .set_u16(tag::PRIORITY, 0)
            .set_u16(tag::COMMAND_DATA_SET_TYPE, crate::command::DATA_SET_PRESENT);
        if let Some(dest) = move_destination {
            rq.set_text(tag::MOVE_DESTINATION, dest);
        }
        let max = self.max_payload();
        pdu::write_fragments(
            &mut self.stream,
            context,
            PDataValueType::Command,
            &rq.encode(),
            max,
        )
        .await?;
        pdu::write_fragments(&mut self.stream, context, PDataValueType::Data, &data, max).await?;
        Ok((id, ts_uid))
    }

    /// C-FIND: `on_match` gets each match's identifier. Returns the final status and comment.
    pub async fn find(
        &mut self,
        sop_class: &str,
        identifier: &InMemDicomObject,
        mut on_match: impl FnMut(InMemDicomObject),
    ) -> Result<(u16, Option<String>), ClientError> {
        let mut decoded = Ok(());
        let outcome = self
            .find_encoded(sop_class, identifier, |bytes, ts| {
                if decoded.is_ok() {
                    decoded = decode_identifier(bytes, ts).map(&mut on_match);
                }
            })
            .await?;
        decoded.map(|()| outcome)
    }

    /// [`find`](Self::find), each match handed over as received: the identifier's bytes and
    /// the transfer syntax they are in, for a caller that only counts matches or keeps them
    /// as they are.
    pub async fn find_encoded(
        &mut self,
        sop_class: &str,
        identifier: &InMemDicomObject,
        mut on_match: impl FnMut(&[u8], &str),
    ) -> Result<(u16, Option<String>), ClientError> {
        let (id, ts) = self
            .send_query(CommandField::CFindRq, sop_class, identifier, None)
            .await?;
        loop {
            let (context, rsp) = self.read_command().await?;
            check_answers(&rsp, id)?;
            let status = rsp
                .status()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if rsp.has_data_set().unwrap_or(false) {
                let bytes = self.read_data(context, MAX_RESPONSE_IDENTIFIER).await?;
                on_match(&bytes, &ts);
            }
            if status != crate::command::status::PENDING && status != 0xFF01 {
                return Ok((status, rsp.string(tag::ERROR_COMMENT).ok().flatten()));
            }
        }
    }

    /// C-MOVE to `destination`; `on_progress` sees each pending response's counts.
    pub async fn move_to(
        &mut self,
        sop_class: &str,
        identifier: &InMemDicomObject,
        destination: &str,
        on_progress: impl FnMut(&RetrieveProgress),
    ) -> Result<RetrieveProgress, ClientError> {
        let (id, _) = self
            .send_query(
                CommandField::CMoveRq,
                sop_class,
                identifier,
                Some(destination),
            )
            .await?;
        self.follow_retrieve(id, None, on_progress).await
    }

    /// C-GET: the instances arrive on this association and are written into `out_dir` as Part
    /// 10 files named by the SHA-256 of their content (never by a value the peer sent).
    pub async fn get(
        &mut self,
        sop_class: &str,
        identifier: &InMemDicomObject,
        out_dir: &Path,
        on_progress: impl FnMut(&RetrieveProgress),
    ) -> Result<RetrieveProgress, ClientError> {
        let (id, _) = self
            .send_query(CommandField::CGetRq, sop_class, identifier, None)
            .await?;
        self.follow_retrieve(id, Some(Destination::Files(out_dir)), on_progress)
            .await
    }

    /// C-GET that stores nothing: each instance's data set is handed to `on_data` fragment by
    /// fragment as it arrives (`true` with its last fragment), and the sub-operation is answered
    /// with success. For callers that only need to know what a peer would give away.
    pub async fn get_streaming(
        &mut self,
        sop_class: &str,
        identifier: &InMemDicomObject,
        mut on_data: impl FnMut(&[u8], bool) + Send,
        on_progress: impl FnMut(&RetrieveProgress),
    ) -> Result<RetrieveProgress, ClientError> {
        let (id, _) = self
            .send_query(CommandField::CGetRq, sop_class, identifier, None)
            .await?;
        self.follow_retrieve(id, Some(Destination::Callback(&mut on_data)), on_progress)
            .await
    }

    /// Follows a C-GET or C-MOVE to its final response, receiving C-GET's sub-operations.
    async fn follow_retrieve(
        &mut self,
        id: u16,
        mut destination: Option<Destination<'_>>,
        mut on_progress: impl FnMut(&RetrieveProgress),
    ) -> Result<RetrieveProgress, ClientError> {
        loop {
            let (context, cmd) = self.read_command().await?;
            let field = cmd
                .command_field()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if field == CommandField::CStoreRq {
                let Some(destination) = destination.as_mut() else {
                    return Err(ClientError::Protocol(
                        "C-STORE on a C-MOVE association".into(),
                    ));
                };
                self.receive_sub_operation(context, &cmd, destination)
                    .await?;
                continue;
            }
            check_answers(&cmd, id)?;
            let progress = RetrieveProgress::from_command(&cmd)?;
            if cmd.has_data_set().unwrap_or(false) {
                // Failed SOP Instance UID List; the counts already tell the story.
                self.read_data(context, MAX_RESPONSE_IDENTIFIER).await?;
            }
            on_progress(&progress);
            if progress.status != crate::command::status::PENDING {
                return Ok(progress);
            }
        }
    }

    /// Receives one C-GET sub-operation into `destination` and answers it.
    async fn receive_sub_operation(
        &mut self,
        context: u8,
        cmd: &Command,
        destination: &mut Destination<'_>,
    ) -> Result<(), ClientError> {
        let message_id = cmd
            .message_id()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let ts = self
            .accepted
            .iter()
            .find(|(_, id)| **id == context)
            .map(|((_, ts), _)| ts.clone())
            .ok_or_else(|| ClientError::Protocol("C-STORE on an unknown context".into()))?;
        let class = cmd.string(tag::AFFECTED_SOP_CLASS_UID).ok().flatten();
        let instance = cmd.string(tag::AFFECTED_SOP_INSTANCE_UID).ok().flatten();
        let uids = (
            class.as_deref().map(Uid::parse),
            instance.as_deref().map(Uid::parse),
            Uid::parse(&ts),
        );
        let status = match (uids, destination) {
            ((Some(Ok(class)), Some(Ok(instance)), Ok(ts)), Destination::Files(dir)) => {
                match self
                    .write_received(context, &class, &instance, &ts, dir)
                    .await?
                {
                    Ok(()) => crate::command::status::SUCCESS,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write a received object");
                        crate::command::status::OUT_OF_RESOURCES
                    }
                }
            }
            ((Some(Ok(_)), Some(Ok(_)), Ok(_)), Destination::Callback(on_data)) => {
                self.read_data_with(context, |data, last| on_data(data, last))
                    .await?;
                crate::command::status::SUCCESS
            }
            _ => {
                // Unusable UIDs: read and drop the data set, then refuse.
                self.read_data_with(context, |_, _| {}).await?;
                crate::command::status::DATA_SET_MISMATCH
            }
        };
        let sop_class = class.unwrap_or_default();
        let mut rsp = Command::response(CommandField::CStoreRsp, &sop_class, message_id, status);
        if let Some(uid) = instance {
            rsp.set_uid(tag::AFFECTED_SOP_INSTANCE_UID, &uid);
        }
        let max = self.max_payload();
        pdu::write_fragments(
            &mut self.stream,
            context,
            PDataValueType::Command,
            &rsp.encode(),
            max,
        )
        .await?;
        Ok(())
    }

    /// Reads the data set that follows a command, handing each fragment to `on_data` (`true`
    /// with the last) without keeping it.
    async fn read_data_with(
        &mut self,
        context_id: u8,
        mut on_data: impl FnMut(&[u8], bool),
    ) -> Result<(), ClientError> {
        loop {
            let pdv = self.next_pdv().await?;
            if pdv.is_command || pdv.context_id != context_id {
                return Err(ClientError::Protocol("data set expected".into()));
            }
            on_data(&pdv.data, pdv.is_last);
            if pdv.is_last {
                return Ok(());
            }
        }
    }

    /// Streams a received data set into `dir` behind a Part 10 header. The outer error is the
    /// association's; the inner one the file's (the data set is still read to its end).
    async fn write_received(
        &mut self,
        context: u8,
        class: &Uid,
        instance: &Uid,
        ts: &Uid,
        dir: &Path,
    ) -> Result<Result<(), std::io::Error>, ClientError> {
        let temp = dir.join(format!(".{}.part", hex_random()));
        let mut header = Vec::new();
        // Once a write fails, `file` holds the error and the rest of the data set is only read.
        let mut file = match ward_dicom::write_part10_header(&mut header, class, instance, ts) {
            Ok(_) => tokio::fs::File::create(&temp).await,
            Err(e) => Err(e),
        };
        let mut hasher = Sha256::new();
        hasher.update(&header);
        let mut chunk = header;
        loop {
            if let Ok(f) = &mut file {
                if let Err(e) = f.write_all(&chunk).await {
                    file = Err(e);
                }
            }
            let pdv = self.next_pdv().await?;
            if pdv.is_command || pdv.context_id != context {
                return Err(ClientError::Protocol("C-STORE data set expected".into()));
            }
            hasher.update(&pdv.data);
            chunk = pdv.data;
            if pdv.is_last {
                break;
            }
        }
        let result = async {
            let mut f = file?;
            f.write_all(&chunk).await?;
            f.flush().await?;
            f.sync_all().await?;
            let name = format!("{}.dcm", hex::encode(hasher.finalize()));
            tokio::fs::rename(&temp, dir.join(name)).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        Ok(result)
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
