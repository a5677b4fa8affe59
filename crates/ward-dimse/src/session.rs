//! An established association: reassembly of DIMSE messages, the dispatch to the services, and
//! the primitives the services use to answer.
//!
//! PDUs are read through a cancel-safe buffer, so that a service streaming responses (C-FIND,
//! C-GET, C-MOVE) can look for a C-CANCEL between its own writes — a read that finds nothing
//! complete is abandoned without losing the bytes it got.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource, PDataValueType, Pdu};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};
use ward_types::{AeTitle, Operation, OperationSet};

use crate::command::{Command, CommandField, status, tag};
use crate::negotiation::AcceptedContext;
use crate::pdu::{self, Incoming, PduBuffer, PduError, Pdv};
use crate::server::Server;

/// Largest identifier (C-FIND/GET/MOVE data set) accepted; real ones are a few hundred bytes.
pub(crate) const MAX_IDENTIFIER: usize = 1 << 20;

/// Who is on the other end, as established at association time.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub ae: AeTitle,
    /// The user the association identified, if any.
    pub user: Option<ward_auth::identity::AssociationUser>,
    pub addr: std::net::SocketAddr,
    pub allowed: OperationSet,
    pub contexts: HashMap<u8, AcceptedContext>,
    /// The peer's maximum length received (0: unlimited).
    pub max_pdu: u32,
    /// The client certificate, over TLS.
    pub certificate: Option<ward_auth::PeerCertificate>,
}

impl Peer {
    /// Who this peer is, for the audit trail.
    pub fn actor(&self) -> ward_audit::Actor {
        ward_audit::Actor {
            ae_title: Some(self.ae.as_str().to_owned()),
            user: self.user.as_ref().map(|u| u.name.clone()),
            address: Some(self.addr.to_string()),
            certificate: self.certificate.as_ref().and_then(|c| c.subject.clone()),
        }
    }
}

/// Why an association ended.
pub(crate) enum End {
    Released,
    AbortedByPeer,
    Closed,
    /// Ward aborts: a protocol violation by the peer, or a timeout.
    Abort(&'static str),
    /// Ward aborts because of a malformed PDU.
    BadPdu(PduError),
}

/// A complete command, or a fragment of a data set.
pub(crate) enum Event {
    Command {
        context_id: u8,
        command: Command,
    },
    Data {
        context_id: u8,
        bytes: Vec<u8>,
        last: bool,
    },
}

/// A request being served: its context, command and the facts every response repeats.
pub(crate) struct Request {
    pub context: AcceptedContext,
    pub command: Command,
    pub field: CommandField,
    pub message_id: u16,
}

/// A response to send.
pub(crate) struct Response<'a> {
    pub status: u16,
    pub comment: Option<&'a str>,
    pub identifier: Option<&'a [u8]>,
    /// Remaining, completed, failed and warning sub-operations (C-GET, C-MOVE).
    pub counts: Option<[u16; 4]>,
}

impl Response<'_> {
    pub fn status(status: u16) -> Response<'static> {
        Response {
            status,
            comment: None,
            identifier: None,
            counts: None,
        }
    }

    pub fn failure(status: u16, comment: &str) -> Response<'_> {
        Response {
            status,
            comment: Some(comment),
            identifier: None,
            counts: None,
        }
    }
}

pub(crate) struct Session<'s, S> {
    pub server: &'s Server,
    stream: S,
    incoming: PduBuffer,
    /// PDVs of a PDU received but not yet consumed.
    queued: VecDeque<Pdv>,
    /// A command set still arriving: its context and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
    pub peer: Peer,
    next_message_id: u16,
}

impl<'s, S> Session<'s, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(server: &'s Server, stream: S, peer: Peer) -> Self {
        Session {
            server,
            stream,
            incoming: PduBuffer::default(),
            queued: VecDeque::new(),
            partial: None,
            peer,
            next_message_id: 1,
        }
    }

    pub async fn run(&mut self) {
        let end = self.serve().await;
        let how = match end {
            End::Released => {
                info!("association released");
                "released".to_owned()
            }
            End::AbortedByPeer => {
                info!("association aborted by peer");
                "aborted by peer".to_owned()
            }
            End::Closed => {
                info!("connection closed without release");
                "closed without release".to_owned()
            }
            End::Abort(why) => {
                warn!(reason = why, "association aborted");
                self.abort(AbortRQServiceProviderReason::ReasonNotSpecified)
                    .await;
                format!("aborted by Ward: {why}")
            }
            End::BadPdu(e) => {
                warn!(error = %e, "association aborted");
                pdu::send_abort(&mut self.stream, e.abort_source()).await;
                format!("aborted by Ward: {e}")
            }
        };
        let event =
            ward_audit::AuditEvent::new(ward_audit::Action::AssociationEnd, self.peer.actor())
                .with_detail(serde_json::json!({ "end": how }));
        let _ = self.server.audit(event).await;
        let _ = self.stream.shutdown().await;
    }

    async fn abort(&mut self, reason: AbortRQServiceProviderReason) {
        pdu::send_abort(&mut self.stream, AbortRQSource::ServiceProvider(reason)).await;
    }

    async fn serve(&mut self) -> End {
        loop {
            let event = match self.next_event().await {
                Ok(event) => event,
                Err(end) => return end,
            };
            let result = match event {
                Event::Command {
                    context_id,
                    command,
                } => self.dispatch(context_id, command).await,
                Event::Data { .. } => Err(End::Abort("data set without a command")),
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Waits for the next event, at most the idle timeout.
    pub async fn next_event(&mut self) -> Result<Event, End> {
        loop {
            if let Some(pdv) = self.queued.pop_front() {
                if let Some(event) = self.assemble(pdv)? {
                    return Ok(event);
                }
                continue;
            }
            let limit = self.server.config.max_pdu;
            let received = tokio::time::timeout(
                self.server.config.idle_timeout,
                self.incoming.read(&mut self.stream, limit),
            )
            .await
            .map_err(|_| End::Abort("idle timeout"))?;
            self.take_pdu(received).await?;
        }
    }

    /// The next event if one has already arrived, without waiting.
    pub async fn poll_event(&mut self) -> Result<Option<Event>, End> {
        loop {
            if let Some(pdv) = self.queued.pop_front() {
                if let Some(event) = self.assemble(pdv)? {
                    return Ok(Some(event));
                }
                continue;
            }
            let limit = self.server.config.max_pdu;
            // Poll the read once: a PDU already (fully) here is taken, otherwise the read is
            // dropped, which the buffer makes harmless.
            let received = tokio::select! {
                biased;
                received = self.incoming.read(&mut self.stream, limit) => received,
                () = std::future::ready(()) => return Ok(None),
            };
            self.take_pdu(received).await?;
        }
    }

    /// Queues the PDVs of a P-DATA PDU; ends the association on anything else.
    async fn take_pdu(&mut self, received: Result<Incoming, PduError>) -> Result<(), End> {
        match received {
            Err(PduError::Closed) => Err(End::Closed),
            Err(e) => Err(End::BadPdu(e)),
            Ok(Incoming::PData(pdvs)) => {
                self.queued.extend(pdvs);
                Ok(())
            }
            Ok(Incoming::Other(Pdu::ReleaseRQ)) => {
                let _ = pdu::write_pdu(&mut self.stream, &Pdu::ReleaseRP).await;
                Err(End::Released)
            }
            Ok(Incoming::Other(Pdu::AbortRQ { .. })) => Err(End::AbortedByPeer),
            Ok(Incoming::Other(_)) => Err(End::Abort("unexpected PDU")),
        }
    }

    /// Turns PDVs into events: command fragments are joined, data fragments passed on.
    fn assemble(&mut self, pdv: Pdv) -> Result<Option<Event>, End> {
        if !self.peer.contexts.contains_key(&pdv.context_id) {
            return Err(End::Abort(
                "PDV on a presentation context that was not accepted",
            ));
        }
        if !pdv.is_command {
            if self.partial.is_some() {
                return Err(End::Abort("data PDV inside a command set"));
            }
            return Ok(Some(Event::Data {
                context_id: pdv.context_id,
                bytes: pdv.data,
                last: pdv.is_last,
            }));
        }
        let (context_id, mut bytes) = self
            .partial
            .take()
            .unwrap_or_else(|| (pdv.context_id, Vec::new()));
        if context_id != pdv.context_id {
            return Err(End::Abort("command set fragments on different contexts"));
        }
        if bytes.len() + pdv.data.len() > crate::command::MAX_COMMAND_SET {
            return Err(End::Abort("command set too large"));
        }
        bytes.extend_from_slice(&pdv.data);
        if !pdv.is_last {
            self.partial = Some((context_id, bytes));
            return Ok(None);
        }
        let command = Command::decode(&bytes).map_err(|_| End::Abort("malformed command set"))?;
        Ok(Some(Event::Command {
            context_id,
            command,
        }))
    }

    /// Serves one request.
    async fn dispatch(&mut self, context_id: u8, command: Command) -> Result<(), End> {
        let field = command
            .command_field()
            .map_err(|_| End::Abort("command without a command field"))?;
        if field == CommandField::CCancelRq {
            // Nothing is running: a late cancel has nothing to stop and no response.
            return Ok(());
        }
        let message_id = command
            .message_id()
            .map_err(|_| End::Abort("command without a message id"))?;
        let has_data = command
            .has_data_set()
            .map_err(|_| End::Abort("command without a data set type"))?;
        let context = self
            .peer
            .contexts
            .get(&context_id)
            .cloned()
            .ok_or(End::Abort("unknown context"))?;
        let request = Request {
            context,
            command,
            field,
            message_id,
        };
        if field == CommandField::CStoreRq {
            return crate::store::handle(self, &request, has_data).await;
        }
        let identifier = if has_data {
            self.receive_identifier(context_id).await?
        } else {
            None
        };
        let op = match field {
            CommandField::CEchoRq => Operation::Echo,
            CommandField::CFindRq => Operation::Find,
            CommandField::CGetRq => Operation::Get,
            CommandField::CMoveRq => Operation::Move,
            _ => {
                return self
                    .respond(&request, Response::status(status::UNRECOGNIZED_OPERATION))
                    .await;
            }
        };
        if let Err((code, comment)) = self.check_request(&request, op) {
            return self
                .respond(&request, Response::failure(code, comment))
                .await;
        }
        match op {
            Operation::Echo => {
                self.respond(&request, Response::status(status::SUCCESS))
                    .await
            }
            Operation::Find => crate::find::handle(self, &request, identifier).await,
            Operation::Get | Operation::Move => {
                crate::retrieve::handle(self, &request, op, identifier).await
            }
            Operation::Store => Err(End::Abort("unreachable: C-STORE dispatched above")),
        }
    }

    /// Checks a request against its presentation context and the peer's permissions.
    pub fn check_request(
        &self,
        request: &Request,
        op: Operation,
    ) -> Result<(), (u16, &'static str)> {
        if request.context.operation != op {
            return Err((
                status::SOP_CLASS_NOT_SUPPORTED,
                "operation not offered on this presentation context",
            ));
        }
        if !ward_auth::may(self.peer.allowed, op) {
            return Err((
                status::NOT_AUTHORIZED,
                "operation not allowed for this peer",
            ));
        }
        match request
            .command
            .string(tag::AFFECTED_SOP_CLASS_UID)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())
        {
            None => Err((status::CANNOT_UNDERSTAND, "Affected SOP Class UID missing")),
            Some(class) if class != request.context.abstract_syntax => Err((
                status::SOP_CLASS_NOT_SUPPORTED,
                "SOP class differs from the presentation context",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Collects an identifier data set; `None` (after reading it all) when it is too large.
    async fn receive_identifier(&mut self, context_id: u8) -> Result<Option<Vec<u8>>, End> {
        let mut bytes = Vec::new();
        let mut too_large = false;
        loop {
            match self.next_event().await? {
                Event::Data {
                    context_id: ctx,
                    bytes: chunk,
                    last,
                } if ctx == context_id => {
                    if bytes.len() + chunk.len() > MAX_IDENTIFIER {
                        too_large = true;
                        bytes = Vec::new();
                    } else if !too_large {
                        bytes.extend_from_slice(&chunk);
                    }
                    if last {
                        return Ok((!too_large).then_some(bytes));
                    }
                }
                _ => return Err(End::Abort("expected the request's data set")),
            }
        }
    }

    /// Sends a response to `request`.
    pub async fn respond(&mut self, request: &Request, response: Response<'_>) -> Result<(), End> {
        let identifier = response.identifier;
        let rsp = response_command(request, &response);
        self.send(request.context.id, &rsp, identifier).await
    }

    /// The encoded command set of `response` to `request`. It depends on the response's status,
    /// comment and counts and on whether an identifier follows, not on the identifier itself:
    /// C-FIND encodes the command of its pending responses once for all its matches.
    pub fn encode_command(&self, request: &Request, response: &Response<'_>) -> Vec<u8> {
        response_command(request, response).encode()
    }

    /// Encodes a response to `request` into `out` as P-DATA-TF PDUs: its command set as
    /// [`encode_command`](Self::encode_command) made it, then its identifier if it has one;
    /// to be written later with others by [`write_encoded`](Self::write_encoded): C-FIND
    /// sends its pending responses in batches rather than one write each.
    pub fn encode_response(
        &self,
        request: &Request,
        command: &[u8],
        identifier: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), End> {
        let max = self.max_payload();
        let id = request.context.id;
        let encoded = pdu::encode_fragments(out, id, PDataValueType::Command, command, max)
            .and_then(|()| match identifier {
                Some(data) => pdu::encode_fragments(out, id, PDataValueType::Data, data, max),
                None => Ok(()),
            });
        encoded.map_err(|_| End::Abort("cannot encode a response"))
    }

    /// Writes PDUs [`encode_response`](Self::encode_response) prepared, within the idle
    /// timeout.
    pub async fn write_encoded(&mut self, bytes: &[u8]) -> Result<(), End> {
        if bytes.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.server.config.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Abort("peer stopped reading")),
        }
    }

    /// Sends a command and, if given, its data set, within the idle timeout.
    pub async fn send(
        &mut self,
        context_id: u8,
        command: &Command,
        data: Option<&[u8]>,
    ) -> Result<(), End> {
        let max = self.max_payload();
        let bytes = command.encode();
        let write = async {
            // A response and its identifier go out in one write; a large data set follows
            // the command without being copied.
            let mut buf = Vec::new();
            pdu::encode_fragments(&mut buf, context_id, PDataValueType::Command, &bytes, max)?;
            let rest = match data {
                Some(data) if data.len() <= pdu::COALESCE_LIMIT => {
                    pdu::encode_fragments(&mut buf, context_id, PDataValueType::Data, data, max)?;
                    None
                }
                other => other,
            };
            self.stream.write_all(&buf).await?;
            if let Some(data) = rest {
                pdu::write_fragments(
                    &mut self.stream,
                    context_id,
                    PDataValueType::Data,
                    data,
                    max,
                )
                .await?;
            }
            self.stream.flush().await?;
            Ok::<(), PduError>(())
        };
        match tokio::time::timeout(self.server.config.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Abort("peer stopped reading")),
        }
    }

    /// Sends a command followed by a data set streamed from `reader` (`len` bytes).
    pub async fn send_streamed<R: AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        command: &Command,
        reader: R,
        len: u64,
    ) -> Result<(), End> {
        self.send(context_id, command, None).await?;
        let max = self.max_payload();
        let idle = self.server.config.idle_timeout;
        match pdu::write_stream(&mut self.stream, context_id, reader, len, max, idle).await {
            Ok(()) => Ok(()),
            Err(PduError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(End::Abort("peer stopped reading"))
            }
            Err(e) => {
                debug!(error = %e, "sending a data set failed");
                Err(End::Closed)
            }
        }
    }

    fn max_payload(&self) -> usize {
        pdu::max_pdv_payload(self.peer.max_pdu, self.server.config.max_pdu)
    }

    /// A message id for a request Ward sends (C-GET's C-STORE sub-operations).
    pub fn next_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    /// Whether the peer has cancelled `request` (C-CANCEL-RQ naming its message id). Anything
    /// else arriving while a request runs is a protocol violation.
    pub async fn cancelled(&mut self, request: &Request) -> Result<bool, End> {
        match self.poll_event().await? {
            None => Ok(false),
            Some(event) => self.is_cancel_of(request, event),
        }
    }

    /// Interprets an event that arrived while `request` runs: its cancellation, or an error.
    pub fn is_cancel_of(&self, request: &Request, event: Event) -> Result<bool, End> {
        match event {
            Event::Command { command, .. }
                if command.command_field().ok() == Some(CommandField::CCancelRq) =>
            {
                Ok(
                    command.u16(tag::MESSAGE_ID_BEING_RESPONDED_TO).ok()
                        == Some(request.message_id),
                )
            }
            _ => Err(End::Abort("message out of sequence while a request runs")),
        }
    }

    pub fn ingest(&self) -> &Arc<ward_ingest::Ingest> {
        &self.server.ingest
    }
}

/// The response command to `request`: its command field with the response bit, its SOP class
/// and instance, the status, the comment, the sub-operation counts and whether a data set
/// follows.
fn response_command(request: &Request, response: &Response<'_>) -> Command {
    let field = CommandField::from_u16(request.field.to_u16() | 0x8000);
    let sop_class = request
        .command
        .string(tag::AFFECTED_SOP_CLASS_UID)
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| request.context.abstract_syntax.clone());
    let mut rsp = Command::response(field, &sop_class, request.message_id, response.status);
    if let Ok(Some(uid)) = request.command.string(tag::AFFECTED_SOP_INSTANCE_UID) {
        rsp.set_uid(tag::AFFECTED_SOP_INSTANCE_UID, &uid);
    }
    if let Some(text) = response.comment {
        // Error Comment is LO: at most 64 characters, no backslash.
        let text: String = text.chars().filter(|c| *c != '\\').take(64).collect();
        rsp.set_text(tag::ERROR_COMMENT, &text);
    }
    if let Some([remaining, completed, failed, warning]) = response.counts {
        // PS3.7 C.4.2.1.5: a final response carries no remaining count.
        if response.status == status::PENDING {
            rsp.set_u16(tag::REMAINING_SUBOPERATIONS, remaining);
        }
        rsp.set_u16(tag::COMPLETED_SUBOPERATIONS, completed)
            .set_u16(tag::FAILED_SUBOPERATIONS, failed)
            .set_u16(tag::WARNING_SUBOPERATIONS, warning);
    }
    if response.identifier.is_some() {
        rsp.set_u16(tag::COMMAND_DATA_SET_TYPE, crate::command::DATA_SET_PRESENT);
    }
    rsp
}
