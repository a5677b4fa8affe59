//! The association acceptor and the SCP services (C-ECHO, C-STORE).
//!
//! Ward owns the acceptor rather than using dicom-ul's: it needs the peer's address for the
//! registry check, a timeout on every read, a strict PDU limit, and the freedom to run over any
//! stream (TLS later) — see DESIGN.md §4.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dicom_ul::pdu::{
    AbortRQSource, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderASCEReason, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, Pdu,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info, info_span, warn};
use ward_auth::{Admission, AssociationFacts};
use ward_ingest::{Ingest, SpoolWriter, StoreRequest, Stored};
use ward_types::{AeTitle, Operation, OperationSet, Uid};

use crate::command::{Command, CommandField, status, tag};
use crate::negotiation::{self, AcceptedContext};
use crate::pdu::{self, Incoming, PduError, Pdv};

/// Settings of the DIMSE listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub ae_title: AeTitle,
    pub max_associations: usize,
    /// Largest P-DATA-TF PDU accepted, advertised as our maximum length received.
    pub max_pdu: u32,
    /// Time allowed for the A-ASSOCIATE-RQ after connecting (ARTIM).
    pub artim_timeout: Duration,
    /// Time an association may stay silent.
    pub idle_timeout: Duration,
}

/// The DIMSE server: shared by every association.
pub struct Server {
    config: ServerConfig,
    ingest: Arc<Ingest>,
    slots: Arc<Semaphore>,
    /// Connections being turned away for lack of slots, bounded too.
    overflow: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl Server {
    pub fn new(config: ServerConfig, ingest: Arc<Ingest>) -> Arc<Server> {
        let slots = Arc::new(Semaphore::new(config.max_associations));
        let overflow = Arc::new(Semaphore::new(config.max_associations));
        Arc::new(Server {
            config,
            ingest,
            slots,
            overflow,
            next_id: AtomicU64::new(1),
        })
    }

    /// Accepts connections until `shutdown` completes, then waits up to `grace` for the
    /// associations in progress to end.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let server = Arc::clone(&self);
                        tokio::spawn(async move { server.handle(stream, peer).await });
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let all = u32::try_from(self.config.max_associations).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            warn!("associations still open at shutdown were cut off");
        }
    }

    /// Serves one connection from start to end.
    pub async fn handle<S>(self: Arc<Self>, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("assoc", id, peer = %peer);
        async move {
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                if let Ok(_overflow) = Arc::clone(&self.overflow).try_acquire_owned() {
                    self.turn_away(stream).await;
                }
                warn!("association refused: too many associations");
                return;
            };
            let mut assoc = Association::new(&self, stream, peer);
            assoc.run().await;
            drop(slot);
        }
        .instrument(span)
        .await
    }

    /// Answers a connection that exceeds the association limit with a transient rejection.
    async fn turn_away<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let read = tokio::time::timeout(
            self.config.artim_timeout,
            pdu::read_pdu(&mut stream, pdu::MAX_CONTROL_PDU),
        )
        .await;
        if let Ok(Ok(Incoming::Other(Pdu::AssociationRQ(_)))) = read {
            let rj = AssociationRJ {
                result: AssociationRJResult::Transient,
                source: AssociationRJSource::ServiceProviderPresentation(
                    AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
                ),
            };
            let _ = pdu::write_pdu(&mut stream, &Pdu::AssociationRJ(rj)).await;
        }
        let _ = stream.shutdown().await;
    }
}

/// Why an association ended, for the log.
enum End {
    Released,
    AbortedByPeer,
    Closed,
    Aborted(&'static str),
}

/// The message being received on an association.
enum Phase<'a> {
    Idle,
    /// Command set fragments so far.
    Command {
        context_id: u8,
        bytes: Vec<u8>,
    },
    /// A data set is arriving for a command already decoded.
    Data {
        context_id: u8,
        reply: Reply,
        sink: Sink<'a>,
    },
}

/// Where data set bytes go.
enum Sink<'a> {
    // Boxed: a writer carries a hasher and file state, and a phase is moved on every PDV.
    Store(Box<SpoolWriter<'a>>),
    /// The request is already answered with a failure; its data set is read and dropped.
    Discard(u16, Option<String>),
}

/// What the response to the current request needs.
struct Reply {
    field: CommandField,
    sop_class: String,
    sop_instance: Option<String>,
    message_id: u16,
}

struct Association<'s, S> {
    server: &'s Server,
    stream: S,
    peer: SocketAddr,
    calling_ae: Option<AeTitle>,
    allowed: OperationSet,
    contexts: HashMap<u8, AcceptedContext>,
    peer_max_pdu: u32,
}

impl<'s, S: AsyncRead + AsyncWrite + Unpin + Send> Association<'s, S> {
    fn new(server: &'s Server, stream: S, peer: SocketAddr) -> Self {
        Association {
            server,
            stream,
            peer,
            calling_ae: None,
            allowed: OperationSet::EMPTY,
            contexts: HashMap::new(),
            peer_max_pdu: 0,
        }
    }

    async fn run(&mut self) {
        match self.establish().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                debug!(error = %e, "association request failed");
                return;
            }
        }
        let end = self.serve().await;
        match end {
            End::Released => info!("association released"),
            End::AbortedByPeer => info!("association aborted by peer"),
            End::Closed => info!("connection closed without release"),
            End::Aborted(why) => {
                warn!(reason = why, "association aborted");
                pdu::send_abort(
                    &mut self.stream,
                    AbortRQSource::ServiceProvider(
                        dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified,
                    ),
                )
                .await;
            }
        }
        let _ = self.stream.shutdown().await;
    }

    /// Reads the A-ASSOCIATE-RQ and answers it. `Ok(true)` when the association is established.
    async fn establish(&mut self) -> Result<bool, PduError> {
        let config = &self.server.config;
        let first = match tokio::time::timeout(
            config.artim_timeout,
            pdu::read_pdu(&mut self.stream, pdu::MAX_CONTROL_PDU),
        )
        .await
        {
            Err(_) => {
                debug!("no association request before the ARTIM timeout");
                return Ok(false);
            }
            Ok(Err(e)) => {
                pdu::send_abort(&mut self.stream, e.abort_source()).await;
                return Err(e);
            }
            Ok(Ok(incoming)) => incoming,
        };
        let Incoming::Other(Pdu::AssociationRQ(rq)) = first else {
            pdu::send_abort(
                &mut self.stream,
                AbortRQSource::ServiceProvider(
                    dicom_ul::pdu::AbortRQServiceProviderReason::UnexpectedPdu,
                ),
            )
            .await;
            return Ok(false);
        };

        if let Some(source) = self.protocol_problem(&rq) {
            self.reject(source).await?;
            return Ok(false);
        }

        // Look the calling title up only when it is well formed; the decision itself is
        // ward-auth's, and every refusal looks the same on the wire.
        let registered = match AeTitle::parse(&rq.calling_ae_title) {
            Ok(aet) => match self.server.ingest.index().ae_get(&aet).await {
                Ok(entry) => entry,
                Err(e) => {
                    warn!(error = %e, "registry lookup failed; refusing association");
                    self.reject_no_reason().await?;
                    return Ok(false);
                }
            },
            Err(_) => None,
        };
        let facts = AssociationFacts {
            calling_ae: &rq.calling_ae_title,
            called_ae: &rq.called_ae_title,
            peer_addr: self.peer.ip(),
        };
        let (peer_ae, allowed) =
            match ward_auth::admit(&facts, &config.ae_title, registered.as_ref()) {
                Admission::Accept { peer, allowed } => (peer, allowed),
                Admission::Reject(cause) => {
                    info!(cause = cause.as_str(), "association rejected");
                    self.reject_no_reason().await?;
                    return Ok(false);
                }
            };

        let (results, accepted) = negotiation::negotiate(&rq.presentation_contexts, allowed);
        let ac = AssociationAC {
            protocol_version: 1,
            calling_ae_title: rq.calling_ae_title.clone(),
            called_ae_title: rq.called_ae_title.clone(),
            application_context_name: negotiation::APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: results,
            user_variables: negotiation::our_user_variables(config.max_pdu),
        };
        pdu::write_pdu(&mut self.stream, &Pdu::AssociationAC(ac)).await?;
        info!(
            calling = %peer_ae,
            contexts = accepted.len(),
            "association accepted"
        );
        self.peer_max_pdu = negotiation::peer_max_pdu(&rq.user_variables);
        self.contexts = accepted.into_iter().map(|c| (c.id, c)).collect();
        self.calling_ae = Some(peer_ae);
        self.allowed = allowed;
        Ok(true)
    }

    /// Problems with the request itself (not with who sent it), answered with the standard's
    /// specific reasons.
    fn protocol_problem(&self, rq: &AssociationRQ) -> Option<AssociationRJSource> {
        if rq.protocol_version & 1 == 0 {
            return Some(AssociationRJSource::ServiceProviderASCE(
                AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
            ));
        }
        if rq.application_context_name.trim_end_matches(['\0', ' '])
            != negotiation::APPLICATION_CONTEXT
        {
            return Some(AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
            ));
        }
        if rq.presentation_contexts.len() > negotiation::MAX_CONTEXTS {
            return Some(AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::NoReasonGiven,
            ));
        }
        None
    }

    async fn reject_no_reason(&mut self) -> Result<(), PduError> {
        self.reject(AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::NoReasonGiven,
        ))
        .await
    }

    async fn reject(&mut self, source: AssociationRJSource) -> Result<(), PduError> {
        let rj = AssociationRJ {
            result: AssociationRJResult::Permanent,
            source,
        };
        pdu::write_pdu(&mut self.stream, &Pdu::AssociationRJ(rj)).await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// The established association: DIMSE messages until release or abort.
    async fn serve(&mut self) -> End {
        let config = &self.server.config;
        let mut phase = Phase::Idle;
        loop {
            let incoming = match tokio::time::timeout(
                config.idle_timeout,
                pdu::read_pdu(&mut self.stream, config.max_pdu),
            )
            .await
            {
                Err(_) => return End::Aborted("idle timeout"),
                Ok(Err(PduError::Closed)) => return End::Closed,
                Ok(Err(e)) => {
                    debug!(error = %e, "bad PDU");
                    pdu::send_abort(&mut self.stream, e.abort_source()).await;
                    return End::Closed;
                }
                Ok(Ok(incoming)) => incoming,
            };
            match incoming {
                Incoming::PData(pdvs) => {
                    for pdv in pdvs {
                        phase = match self.on_pdv(phase, pdv).await {
                            Ok(next) => next,
                            Err(why) => return End::Aborted(why),
                        };
                    }
                }
                Incoming::Other(Pdu::ReleaseRQ) => {
                    // A release in the middle of a message abandons that message; its spool
                    // file is removed when `phase` drops.
                    drop(phase);
                    let _ = pdu::write_pdu(&mut self.stream, &Pdu::ReleaseRP).await;
                    return End::Released;
                }
                Incoming::Other(Pdu::AbortRQ { .. }) => return End::AbortedByPeer,
                Incoming::Other(_) => return End::Aborted("unexpected PDU"),
            }
        }
    }

    async fn on_pdv(&mut self, phase: Phase<'s>, pdv: Pdv) -> Result<Phase<'s>, &'static str> {
        if !self.contexts.contains_key(&pdv.context_id) {
            return Err("PDV on a presentation context that was not accepted");
        }
        match (phase, pdv.is_command) {
            (Phase::Idle, true) => {
                self.on_command_fragment(pdv.context_id, Vec::new(), pdv)
                    .await
            }
            (Phase::Command { context_id, bytes }, true) if context_id == pdv.context_id => {
                self.on_command_fragment(context_id, bytes, pdv).await
            }
            (
                Phase::Data {
                    context_id,
                    reply,
                    sink,
                },
                false,
            ) if context_id == pdv.context_id => self.on_data(context_id, reply, sink, pdv).await,
            _ => Err("PDV out of sequence"),
        }
    }

    async fn on_command_fragment(
        &mut self,
        context_id: u8,
        mut bytes: Vec<u8>,
        pdv: Pdv,
    ) -> Result<Phase<'s>, &'static str> {
        if bytes.len() + pdv.data.len() > crate::command::MAX_COMMAND_SET {
            return Err("command set too large");
        }
        bytes.extend_from_slice(&pdv.data);
        if !pdv.is_last {
            return Ok(Phase::Command { context_id, bytes });
        }
        let command = Command::decode(&bytes).map_err(|_| "malformed command set")?;
        self.on_command(context_id, command).await
    }

    /// Dispatches a complete command set.
    async fn on_command(
        &mut self,
        context_id: u8,
        command: Command,
    ) -> Result<Phase<'s>, &'static str> {
        let field = command
            .command_field()
            .map_err(|_| "command without a command field")?;
        if field == CommandField::CCancelRq {
            // Nothing Ward runs yet can be cancelled; a cancel has no response.
            return Ok(Phase::Idle);
        }
        let message_id = command
            .message_id()
            .map_err(|_| "command without a message id")?;
        let has_data = command
            .has_data_set()
            .map_err(|_| "command without a data set type")?;
        let context = self
            .contexts
            .get(&context_id)
            .cloned()
            .ok_or("unknown context")?;
        let sop_class = command
            .string(tag::AFFECTED_SOP_CLASS_UID)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty());

        let (reply_field, outcome) = match field {
            CommandField::CEchoRq => (
                CommandField::CEchoRsp,
                self.check_class(&context, sop_class.as_deref(), Operation::Echo)
                    .map(|()| None),
            ),
            CommandField::CStoreRq => (
                CommandField::CStoreRsp,
                self.begin_store(&context, sop_class.as_deref(), &command, has_data)
                    .await
                    .map(Some),
            ),
            other => (
                CommandField::from_u16(other.to_u16() | 0x8000),
                Err((status::UNRECOGNIZED_OPERATION, None)),
            ),
        };
        let reply = Reply {
            field: reply_field,
            sop_class: sop_class.unwrap_or(context.abstract_syntax.clone()),
            sop_instance: command
                .string(tag::AFFECTED_SOP_INSTANCE_UID)
                .ok()
                .flatten(),
            message_id,
        };
        let sink = match outcome {
            Ok(Some(writer)) => Sink::Store(Box::new(writer)),
            Ok(None) => Sink::Discard(status::SUCCESS, None),
            Err((code, comment)) => Sink::Discard(code, comment),
        };
        if has_data {
            return Ok(Phase::Data {
                context_id,
                reply,
                sink,
            });
        }
        let (code, comment) = match sink {
            Sink::Discard(code, comment) => (code, comment),
            // A C-STORE without a data set cannot be stored; begin_store refuses it, so a
            // writer never exists here.
            Sink::Store(_) => (status::CANNOT_UNDERSTAND, None),
        };
        self.respond(context_id, &reply, code, comment.as_deref())
            .await?;
        Ok(Phase::Idle)
    }

    /// Checks a request's SOP class against its context and the peer's permissions.
    fn check_class(
        &self,
        context: &AcceptedContext,
        sop_class: Option<&str>,
        op: Operation,
    ) -> Result<(), (u16, Option<String>)> {
        if !ward_auth::may(self.allowed, op) {
            return Err((status::NOT_AUTHORIZED, None));
        }
        match sop_class {
            None => Err((
                status::CANNOT_UNDERSTAND,
                Some("Affected SOP Class UID missing".into()),
            )),
            Some(class) if class != context.abstract_syntax => Err((
                status::SOP_CLASS_NOT_SUPPORTED,
                Some("SOP class differs from the presentation context".into()),
            )),
            Some(_) => Ok(()),
        }
    }

    async fn begin_store(
        &self,
        context: &AcceptedContext,
        sop_class: Option<&str>,
        command: &Command,
        has_data: bool,
    ) -> Result<SpoolWriter<'s>, (u16, Option<String>)> {
        self.check_class(context, sop_class, Operation::Store)?;
        if !has_data {
            return Err((
                status::CANNOT_UNDERSTAND,
                Some("C-STORE without a data set".into()),
            ));
        }
        let instance = command
            .string(tag::AFFECTED_SOP_INSTANCE_UID)
            .ok()
            .flatten()
            .ok_or((
                status::CANNOT_UNDERSTAND,
                Some("Affected SOP Instance UID missing".into()),
            ))?;
        let bad_uid = |what: &str| (status::DATA_SET_MISMATCH, Some(format!("invalid {what}")));
        let request = StoreRequest {
            sop_class: Uid::parse(sop_class.unwrap_or_default())
                .map_err(|_| bad_uid("SOP Class UID"))?,
            sop_instance: Uid::parse(&instance).map_err(|_| bad_uid("SOP Instance UID"))?,
            transfer_syntax: Uid::parse(&context.transfer_syntax)
                .map_err(|_| bad_uid("transfer syntax UID"))?,
            source_ae: self.calling_ae.as_ref().map(|a| a.as_str().to_owned()),
        };
        self.server
            .ingest
            .begin(request)
            .await
            .map_err(|e| (e.status(), Some(e.to_string())))
    }

    async fn on_data(
        &mut self,
        context_id: u8,
        reply: Reply,
        sink: Sink<'s>,
        pdv: Pdv,
    ) -> Result<Phase<'s>, &'static str> {
        let sink = match sink {
            Sink::Store(mut writer) => match writer.write(&pdv.data).await {
                Ok(()) => Sink::Store(writer),
                Err(e) => Sink::Discard(e.status(), Some(e.to_string())),
            },
            discard => discard,
        };
        if !pdv.is_last {
            return Ok(Phase::Data {
                context_id,
                reply,
                sink,
            });
        }
        let (code, comment) = match sink {
            Sink::Store(writer) => match writer.commit().await {
                Ok(Stored::New { size, .. }) => {
                    debug!(message_id = reply.message_id, size, "stored");
                    (status::SUCCESS, None)
                }
                Ok(Stored::AlreadyStored { .. }) => {
                    debug!(message_id = reply.message_id, "already stored");
                    (status::SUCCESS, None)
                }
                Err(e) => {
                    info!(message_id = reply.message_id, status = e.status(), error = %e, "store refused");
                    (e.status(), Some(e.to_string()))
                }
            },
            Sink::Discard(code, comment) => (code, comment),
        };
        self.respond(context_id, &reply, code, comment.as_deref())
            .await?;
        Ok(Phase::Idle)
    }

    async fn respond(
        &mut self,
        context_id: u8,
        reply: &Reply,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), &'static str> {
        let mut rsp = Command::response(reply.field, &reply.sop_class, reply.message_id, code);
        if let Some(uid) = &reply.sop_instance {
            rsp.set_uid(tag::AFFECTED_SOP_INSTANCE_UID, uid);
        }
        if let Some(text) = comment {
            // Error Comment is LO: at most 64 characters.
            let text: String = text.chars().filter(|c| *c != '\\').take(64).collect();
            rsp.set_text(tag::ERROR_COMMENT, &text);
        }
        let max = pdu::max_pdv_payload(self.peer_max_pdu, self.server.config.max_pdu);
        // A peer that stops reading must not hold its association slot forever.
        let bytes = rsp.encode();
        let write = pdu::write_command(&mut self.stream, context_id, &bytes, max);
        match tokio::time::timeout(self.server.config.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("could not send a response"),
            Err(_) => Err("peer stopped reading"),
        }
    }
}
