//! The association acceptor: connections, limits, and the negotiation of each association.
//!
//! Ward owns the acceptor rather than using dicom-ul's: it needs the peer's address for the
//! registry check, a timeout on every read, a strict PDU limit, and the freedom to run over any
//! stream (TLS later) — see DESIGN.md §4. Once an association is established, `session` serves
//! its DIMSE messages.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderASCEReason, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, Pdu, UserIdentityType,
    UserVariableItem,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info, info_span, warn};
use ward_audit::{Action, Actor, AuditEvent, Outcome};
use ward_auth::identity::{self, IdentityCheck};
use ward_auth::throttle::{Budget, FailureTracker};
use ward_auth::{Admission, AssociationFacts, PeerCertificate, RejectCause, Transport};
use ward_ingest::Ingest;
use ward_types::{AeTitle, UserName};

use crate::negotiation;
use crate::pdu::{self, Incoming, PduError};
use crate::session::{Peer, Session};

/// How long a rejected requestor gets to close the connection itself.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Settings of the DIMSE listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub ae_title: AeTitle,
    pub max_associations: usize,
    /// Largest P-DATA-TF PDU accepted, advertised as our maximum length received.
    pub max_pdu: u32,
    /// Time allowed for the A-ASSOCIATE-RQ after connecting (ARTIM).
    pub artim_timeout: Duration,
    /// Time an association may stay silent, and a peer may take to read what we send.
    pub idle_timeout: Duration,
    /// Matches returned by one C-FIND at most; the final status says when there were more.
    pub max_matches: u32,
    /// Instances one C-GET or C-MOVE may retrieve at most.
    pub max_retrieve: u32,
    /// Whether PN values match case-insensitively.
    pub pn_case_insensitive: bool,
    /// Time allowed to connect to a C-MOVE destination.
    pub connect_timeout: Duration,
    /// The TLS listener's configuration, when Ward has one.
    pub tls: Option<TlsSetup>,
    /// Back-off after failed associations (per source address and per calling AE title).
    pub failure_threshold: u32,
    pub failure_window: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Matches one calling AE title may receive per hour.
    pub max_matches_per_hour: u64,
    /// Verifies JWT user identities (PS3.7 D.3.3.7 type 5) from the configured OIDC issuer;
    /// without it a JWT identity is refused like any unverifiable one.
    pub jwt: Option<Arc<ward_auth::JwtVerifier>>,
}

/// What the TLS listener needs: the rustls configuration (client certificates required) and the
/// set of pinned certificates its verifier consults, refreshed from the registry before each
/// handshake.
#[derive(Clone)]
pub struct TlsSetup {
    pub config: Arc<rustls::ServerConfig>,
    pub policy: Arc<ward_auth::tls::ClientCertPolicy>,
    pub pinned: ward_auth::tls::PinnedCertificates,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// The DIMSE server: shared by every association.
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) ingest: Arc<Ingest>,
    failures_by_addr: Mutex<FailureTracker<IpAddr>>,
    failures_by_ae: Mutex<FailureTracker<String>>,
    /// Matches returned per calling AE title this hour.
    pub(crate) match_budget: Mutex<Budget<String>>,
    /// An Argon2id hash of a random password, verified against when a user name is unknown so
    /// that the time an answer takes does not tell which user names exist.
    dummy_hash: String,
    slots: Arc<Semaphore>,
    /// Connections being turned away for lack of slots, bounded too.
    overflow: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl Server {
    pub fn new(config: ServerConfig, ingest: Arc<Ingest>) -> Arc<Server> {
        let slots = Arc::new(Semaphore::new(config.max_associations));
        let overflow = Arc::new(Semaphore::new(config.max_associations));
        fn tracker<K: Eq + std::hash::Hash + Clone>(config: &ServerConfig) -> FailureTracker<K> {
            FailureTracker::new(
                config.failure_window,
                config.failure_threshold,
                config.backoff,
                config.max_backoff,
            )
        }
        let failures_by_addr = Mutex::new(tracker(&config));
        let failures_by_ae = Mutex::new(tracker(&config));
        let match_budget = Mutex::new(Budget::new(
            Duration::from_secs(3600),
            config.max_matches_per_hour,
        ));
        let dummy_hash = identity::generate_password()
            .and_then(|p| identity::hash_password(&p))
            .unwrap_or_default();
        Arc::new(Server {
            dummy_hash,
            failures_by_addr,
            failures_by_ae,
            match_budget,
            config,
            ingest,
            slots,
            overflow,
            next_id: AtomicU64::new(1),
        })
    }

    /// Accepts connections on the plain and TLS listeners until `shutdown` completes, then
    /// waits up to `grace` for the associations in progress to end.
    pub async fn serve(
        self: Arc<Self>,
        plain: Option<TcpListener>,
        tls: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept(plain.as_ref()) => self.spawn_plain(accepted).await,
                accepted = accept(tls.as_ref()) => self.spawn_tls(accepted).await,
            }
        }
        drop(plain);
        drop(tls);
        let all = u32::try_from(self.config.max_associations).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            warn!("associations still open at shutdown were cut off");
        }
    }

    async fn spawn_plain(self: &Arc<Self>, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let Some((stream, peer)) = usable(accepted).await else {
            return;
        };
        if self.address_blocked(peer) {
            return;
        }
        let server = Arc::clone(self);
        tokio::spawn(async move { server.handle(stream, peer, None).await });
    }

    async fn spawn_tls(self: &Arc<Self>, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let Some((stream, peer)) = usable(accepted).await else {
            return;
        };
        if self.address_blocked(peer) {
            return;
        }
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let id = server.next_id.fetch_add(1, Ordering::Relaxed);
            let span = info_span!("tls", id, peer = %peer);
            async {
                match server.handshake(stream).await {
                    Some((stream, cert)) => {
                        Arc::clone(&server).handle(stream, peer, Some(cert)).await;
                    }
                    None => server.failed(peer, None, "TLS handshake refused").await,
                }
            }
            .instrument(span)
            .await
        });
    }

    /// The TLS handshake, within the ARTIM timeout; the registry's pinned certificates are
    /// reloaded first so that a newly pinned certificate works without a restart.
    async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, PeerCertificate)> {
        let tls = self.config.tls.as_ref()?;
        match self.ingest.index().ae_list().await {
            Ok(peers) => {
                let fresh = peers.iter().filter_map(|p| p.cert_sha256).collect();
                if let Ok(mut pinned) = tls.pinned.write() {
                    *pinned = fresh;
                }
            }
            Err(e) => warn!(error = %e, "cannot reload pinned certificates"),
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config));
        let stream =
            match tokio::time::timeout(self.config.artim_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    info!(error = %e, "TLS handshake refused");
                    return None;
                }
                Err(_) => {
                    debug!("TLS handshake timed out");
                    return None;
                }
            };
        let conn = stream.get_ref().1;
        debug!(
            version = ?conn.protocol_version(),
            suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
            group = ?conn.negotiated_key_exchange_group().map(|g| g.name()),
            "TLS handshake done"
        );
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| tls.policy.describe(chain))?;
        Some((stream, cert))
    }

    /// Serves one connection from start to end.
    pub async fn handle<S>(
        self: Arc<Self>,
        stream: S,
        peer: SocketAddr,
        cert: Option<PeerCertificate>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
            let mut stream = stream;
            match self.establish(&mut stream, peer, cert).await {
                Ok(Some(established)) => {
                    let mut session = Session::new(&self, stream, established);
                    session.run().await;
                }
                Ok(None) => {
                    let _ = stream.shutdown().await;
                }
                Err(e) => debug!(error = %e, "association request failed"),
            }
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

    /// Reads the A-ASSOCIATE-RQ and answers it; `Some` when the association is established.
    async fn establish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        addr: SocketAddr,
        cert: Option<PeerCertificate>,
    ) -> Result<Option<Peer>, PduError> {
        let config = &self.config;
        let first = match tokio::time::timeout(
            config.artim_timeout,
            pdu::read_pdu(stream, pdu::MAX_CONTROL_PDU),
        )
        .await
        {
            Err(_) => {
                debug!("no association request before the ARTIM timeout");
                return Ok(None);
            }
            Ok(Err(e)) => {
                pdu::send_abort(stream, e.abort_source()).await;
                return Err(e);
            }
            Ok(Ok(incoming)) => incoming,
        };
        let Incoming::Other(Pdu::AssociationRQ(rq)) = first else {
            pdu::send_abort(
                stream,
                AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::UnexpectedPdu),
            )
            .await;
            return Ok(None);
        };

        if let Some(source) = protocol_problem(&rq) {
            reject(stream, source).await?;
            return Ok(None);
        }

        // Look the calling title up only when it is well formed; the decision itself is
        // ward-auth's, and every refusal looks the same on the wire.
        let registered = match AeTitle::parse(&rq.calling_ae_title) {
            Ok(aet) => match self.ingest.index().ae_get(&aet).await {
                Ok(entry) => entry,
                Err(e) => {
                    warn!(error = %e, "registry lookup failed; refusing association");
                    reject(stream, no_reason()).await?;
                    return Ok(None);
                }
            },
            Err(_) => None,
        };
        let facts = AssociationFacts {
            calling_ae: &rq.calling_ae_title,
            called_ae: &rq.called_ae_title,
            peer_addr: addr.ip(),
            transport: match &cert {
                Some(cert) => Transport::Tls(cert),
                None => Transport::Plain,
            },
        };
        let calling_blocked = self
            .failures_by_ae
            .lock()
            .map(|t| t.blocked(&rq.calling_ae_title.trim().to_owned(), Instant::now()))
            .unwrap_or(false);
        let admission = if calling_blocked {
            Admission::Reject(RejectCause::Throttled)
        } else {
            ward_auth::admit(&facts, &config.ae_title, registered.as_ref())
        };
        let claim = user_identity(&rq.user_variables);
        let decision = match admission {
            Admission::Reject(cause) => Err(cause),
            Admission::Accept { peer, allowed } => {
                let mode = registered.as_ref().map(|r| r.identity).unwrap_or_default();
                let check = self.check_identity(claim.as_ref(), cert.is_some()).await;
                identity::decide_identity(mode, &check).map(|user| {
                    let allowed = identity::effective_operations(allowed, user.as_ref());
                    (peer, allowed, user)
                })
            }
        };
        let (peer_ae, allowed, user) = match decision {
            Ok(accepted) => accepted,
            Err(cause) => {
                info!(cause = cause.as_str(), "association rejected");
                let actor = Actor {
                    ae_title: Some(rq.calling_ae_title.trim().to_owned()),
                    user: claim
                        .as_ref()
                        .and_then(|c| c.user_name())
                        .map(str::to_owned),
                    address: Some(addr.to_string()),
                    certificate: cert.as_ref().and_then(|c| c.subject.clone()),
                };
                let action = if matches!(cause, RejectCause::IdentityFailed) {
                    Action::LoginFailed
                } else {
                    Action::AssociationRejected
                };
                let event = AuditEvent::new(action, actor)
                    .with_outcome(Outcome::Failure {
                        status: None,
                        reason: cause.as_str().to_owned(),
                    })
                    .with_detail(serde_json::json!({
                        "called_ae_title": rq.called_ae_title.trim(),
                    }));
                // Recorded before the answer; the answer is the same either way.
                let _ = self.audit(event).await;
                self.failed(addr, Some(rq.calling_ae_title.trim()), cause.as_str())
                    .await;
                reject(stream, no_reason()).await?;
                return Ok(None);
            }
        };

        let negotiated =
            negotiation::negotiate(&rq.presentation_contexts, &rq.user_variables, allowed);
        let mut user_variables = negotiation::our_user_variables(config.max_pdu);
        user_variables.extend(negotiated.role_replies);
        if user.is_some()
            && claim
                .as_ref()
                .is_some_and(|c| c.positive_response_requested)
        {
            // User Identity Negotiation AC (PS3.7 D.3.3.7.2): an empty server response, which
            // is what a username or passcode identity gets back.
            user_variables.push(UserVariableItem::Unknown(0x59, vec![0, 0]));
        }
        let ac = AssociationAC {
            protocol_version: 1,
            calling_ae_title: rq.calling_ae_title.clone(),
            called_ae_title: rq.called_ae_title.clone(),
            application_context_name: negotiation::APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: negotiated.results,
            user_variables,
        };
        pdu::write_pdu(stream, &Pdu::AssociationAC(ac)).await?;
        info!(
            calling = %peer_ae,
            contexts = negotiated.accepted.len(),
            "association accepted"
        );
        let peer = Peer {
            ae: peer_ae,
            user,
            addr,
            allowed,
            contexts: negotiated.accepted.into_iter().map(|c| (c.id, c)).collect(),
            max_pdu: negotiation::peer_max_pdu(&rq.user_variables),
            certificate: cert,
        };
        let event = AuditEvent::new(Action::AssociationStart, peer.actor()).with_detail(
            serde_json::json!({
                "called_ae_title": rq.called_ae_title.trim(),
                "tls": peer.certificate.is_some(),
                "allowed": allowed.to_string(),
                "contexts": peer.contexts.len(),
            }),
        );
        if self.audit(event).await.is_err() {
            return Ok(None);
        }
        Ok(Some(peer))
    }
}

/// The next connection of `listener`, or never when there is no such listener.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A connection to serve, or `None` after an accept error (out of descriptors and the like:
/// back off instead of spinning).
async fn usable(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// The user identity item of an A-ASSOCIATE-RQ, as sent.
struct IdentityClaim {
    kind: UserIdentityType,
    user: String,
    secondary: Vec<u8>,
    positive_response_requested: bool,
}

impl std::fmt::Debug for IdentityClaim {
    // The passcode or token is a secret: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityClaim")
            .field("kind", &self.kind)
            .field("user", &self.user_name())
            .finish_non_exhaustive()
    }
}

impl IdentityClaim {
    /// The user name the claim states, if its primary field is one: for a JWT, SAML assertion
    /// or Kerberos ticket the primary field is the credential itself, which never goes into a
    /// log or the audit trail.
    fn user_name(&self) -> Option<&str> {
        match self.kind {
            UserIdentityType::Username | UserIdentityType::UsernamePassword => Some(&self.user),
            _ => None,
        }
    }
}

fn user_identity(items: &[UserVariableItem]) -> Option<IdentityClaim> {
    items.iter().find_map(|item| match item {
        UserVariableItem::UserIdentityItem(id) => Some(IdentityClaim {
            kind: id.identity_type(),
            user: String::from_utf8_lossy(&id.primary_field())
                .trim_end_matches(['\0', ' '])
                .to_owned(),
            secondary: id.secondary_field(),
            positive_response_requested: id.positive_response_requested(),
        }),
        _ => None,
    })
}

impl Server {
    /// Checks an association's user identity against the local users. A passcode is accepted
    /// only over TLS, where it cannot be read off the wire.
    async fn check_identity(&self, claim: Option<&IdentityClaim>, tls: bool) -> IdentityCheck {
        let Some(claim) = claim else {
            return IdentityCheck::NotSent;
        };
        match claim.kind {
            UserIdentityType::Username => IdentityCheck::Asserted(claim.user.clone()),
            UserIdentityType::UsernamePassword if !tls => {
                IdentityCheck::Failed("passcode sent over plain TCP")
            }
            UserIdentityType::UsernamePassword => {
                let Ok(name) = UserName::parse(&claim.user) else {
                    return IdentityCheck::Failed("unknown user or wrong passcode");
                };
                let record = match self.ingest.index().user_get(&name).await {
                    Ok(Some(record)) => record,
                    Ok(None) => {
                        // Spend the time a verification takes, so that the answer's timing
                        // does not tell which user names exist.
                        let passcode = claim.secondary.clone();
                        let dummy = self.dummy_hash.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            identity::verify_password(&passcode, &dummy)
                        })
                        .await;
                        return IdentityCheck::Failed("unknown user or wrong passcode");
                    }
                    Err(e) => {
                        warn!(error = %e, "user lookup failed");
                        return IdentityCheck::Failed("user lookup failed");
                    }
                };
                let passcode = claim.secondary.clone();
                let hash = record.password_hash.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    identity::verify_password(&passcode, &hash)
                })
                .await
                .unwrap_or(false);
                if ok {
                    IdentityCheck::Verified {
                        user: record.name,
                        role: record.role,
                    }
                } else {
                    IdentityCheck::Failed("unknown user or wrong passcode")
                }
            }
            UserIdentityType::Jwt if !tls => IdentityCheck::Failed("token sent over plain TCP"),
            UserIdentityType::Jwt => self.check_jwt(claim),
            _ => IdentityCheck::Failed("identity type not supported"),
        }
    }

    /// A JWT identity: the token is the primary field; its subject and role claim make the
    /// user. A subject that is not a valid user name cannot be recorded and is refused.
    fn check_jwt(&self, claim: &IdentityClaim) -> IdentityCheck {
        let Some(verifier) = &self.config.jwt else {
            return IdentityCheck::Failed("no token issuer is configured");
        };
        let now = u64::try_from(ward_audit::now_unix_ms() / 1000).unwrap_or(0);
        match verifier.verify(&claim.user, now) {
            Ok(claims) => match (UserName::parse(&claims.subject), claims.role) {
                (Ok(user), Some(role)) => IdentityCheck::Verified { user, role },
                (Err(_), _) => IdentityCheck::Failed("token subject is not a usable user name"),
                (_, None) => IdentityCheck::Failed("token carries no Ward role"),
            },
            Err(e) => {
                debug!(error = %e, "JWT identity refused");
                IdentityCheck::Failed("token refused")
            }
        }
    }

    /// Whether connections from `peer` are in back-off; they are closed unanswered.
    fn address_blocked(&self, peer: SocketAddr) -> bool {
        let blocked = self
            .failures_by_addr
            .lock()
            .map(|t| t.blocked(&peer.ip().to_canonical(), Instant::now()))
            .unwrap_or(false);
        if blocked {
            debug!(peer = %peer, "connection refused: address in back-off");
        }
        blocked
    }

    /// Counts a failed association against its source address and calling AE title; a
    /// threshold crossed is a security alert in the audit trail.
    async fn failed(&self, peer: SocketAddr, calling_ae: Option<&str>, reason: &str) {
        let now = Instant::now();
        let ip = peer.ip().to_canonical();
        let by_addr = self
            .failures_by_addr
            .lock()
            .ok()
            .and_then(|mut t| t.failure(ip, now));
        let by_ae = calling_ae.and_then(|ae| {
            self.failures_by_ae
                .lock()
                .ok()
                .and_then(|mut t| t.failure(ae.to_owned(), now))
        });
        for (what, trip) in [("source address", by_addr), ("calling AE title", by_ae)] {
            let Some(trip) = trip else { continue };
            let seconds = trip.until.saturating_duration_since(now).as_secs();
            warn!(peer = %peer, blocked_for_secs = seconds, "{what} blocked after repeated failed associations");
            let actor = Actor {
                ae_title: calling_ae.map(str::to_owned),
                address: Some(peer.to_string()),
                ..Actor::default()
            };
            let event =
                AuditEvent::new(Action::SecurityAlert, actor).with_detail(serde_json::json!({
                    "alert_type": "failed associations",
                    "blocked": what,
                    "blocked_for_secs": seconds,
                    "trips": trip.trips,
                    "last_reason": reason,
                }));
            let _ = self.audit(event).await;
        }
    }

    /// Appends to the audit trail; a failure is logged (without the event) and returned so
    /// that the caller can refuse what it was about to do.
    pub(crate) async fn audit(&self, event: AuditEvent) -> Result<(), ()> {
        self.ingest
            .audit()
            .append(event)
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "audit trail unavailable");
            })
    }
}

/// Problems with the request itself (not with who sent it), answered with the standard's
/// specific reasons.
fn protocol_problem(rq: &AssociationRQ) -> Option<AssociationRJSource> {
    if rq.protocol_version & 1 == 0 {
        return Some(AssociationRJSource::ServiceProviderASCE(
            AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
        ));
    }
    if rq.application_context_name.trim_end_matches(['\0', ' ']) != negotiation::APPLICATION_CONTEXT
    {
        return Some(AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
        ));
    }
    if rq.presentation_contexts.len() > negotiation::MAX_CONTEXTS {
        return Some(no_reason());
    }
    None
}

fn no_reason() -> AssociationRJSource {
    AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::NoReasonGiven)
}

async fn reject<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    source: AssociationRJSource,
) -> Result<(), PduError> {
    let rj = AssociationRJ {
        result: AssociationRJResult::Permanent,
        source,
    };
    pdu::write_pdu(stream, &Pdu::AssociationRJ(rj)).await?;
    // PS3.8 §9.2 (state Sta13): after a rejection the requestor closes the connection; closing
    // first can make a client report an abort instead of the rejection. Wait a little for it.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(REJECT_LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let _ = stream.shutdown().await;
    Ok(())
}
