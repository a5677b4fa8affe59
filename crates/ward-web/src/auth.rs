//! Who is calling: bearer tokens of three kinds, checked on every request but `/health`.
//!
//! - Session tokens from `POST /auth/token` (a local user's password, Argon2id-verified):
//!   `ward-s.<payload>.<HMAC-SHA256>`, signed with a key drawn at start, so a restart ends
//!   every session. The user's role is read from the user table on each request, so removing
//!   a user or changing a role takes effect at once.
//! - API tokens for machines (`ward token create`): `ward-t.<32 random bytes>`, stored as their
//!   SHA-256 only, revocable, optionally expiring.
//! - OAuth2/OIDC JWTs from a configured issuer (IHE IUA), when one is configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use ward_audit::{Action, Actor, AuditEvent, Outcome};
use ward_auth::throttle::FailureTracker;
use ward_index::Index;
use ward_types::{Operation, Role, UserName};

use crate::WebState;
use crate::error::ApiError;

const SESSION_PREFIX: &str = "ward-s.";
const API_TOKEN_PREFIX: &str = "ward-t.";
/// Longer bearer values are refused before any decoding.
const MAX_TOKEN_LEN: usize = 8192;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    ApiToken,
    Jwt,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
    pub address: Option<SocketAddr>,
}

impl Principal {
    /// Refuses the request unless the role allows `op` (the same operations as on DIMSE).
    pub fn require(&self, op: Operation) -> Result<(), ApiError> {
        if self.role.operations().contains(op) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("the caller's role does not allow this"))
        }
    }

    pub fn require_role(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("the caller's role does not allow this"))
        }
    }

    /// The audit trail's view of the caller.
    pub fn actor(&self) -> Actor {
        Actor {
            user: Some(format!("{} ({})", self.name, self.role)),
            address: self.address.map(|a| a.to_string()),
            ..Actor::default()
        }
    }

    /// The identity the anti-enumeration rule and the match budget consider.
    pub fn as_association_user(&self) -> ward_auth::identity::AssociationUser {
        ward_auth::identity::AssociationUser {
            name: self.name.clone(),
            role: Some(self.role),
        }
    }
}

/// The verifier of every bearer token.
pub struct Auth {
    index: Arc<dyn Index>,
    session_key: aws_lc_rs::hmac::Key,
    session_ttl: Duration,
    jwt: Option<Jwt>,
    logins: Mutex<FailureTracker<String>>,
    /// Verified against when the user does not exist, so that a login for an unknown name
    /// costs the same time as one for a known name.
    dummy_hash: String,
}

/// The verifier of a configured OIDC issuer's tokens, shared with the DIMSE front door.
pub type Jwt = Arc<ward_auth::JwtVerifier>;

impl Auth {
    pub fn new(
        index: Arc<dyn Index>,
        config: &ward_config::WebConfig,
        jwt: Option<Jwt>,
    ) -> Result<Auth, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let session_key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .map_err(|_| "cannot draw a session key".to_owned())?;
        let dummy_hash = ward_auth::identity::generate_password()
            .and_then(|p| ward_auth::identity::hash_password(&p))
            .map_err(|e| e.to_string())?;
        Ok(Auth {
            index,
            session_key,
            session_ttl: Duration::from_secs(config.session_ttl_secs),
            jwt,
            logins: Mutex::new(FailureTracker::new(
                Duration::from_secs(config.failed_login_window_secs),
                config.failed_logins_threshold,
                Duration::from_secs(config.login_backoff_secs),
                Duration::from_secs(config.max_login_backoff_secs),
            )),
            dummy_hash,
        })
    }

    /// Checks a bearer token; `None` for anything that does not identify a current principal.
    async fn verify(&self, token: &str, now: u64) -> Option<(String, Role, Via)> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        if let Some(rest) = token.strip_prefix(SESSION_PREFIX) {
            let name = self.verify_session(rest, now)?;
            let user = self.index.user_get(&name).await.ok()??;
            return Some((user.name.to_string(), user.role, Via::Session));
        }
        if token.starts_with(API_TOKEN_PREFIX) {
            let record = self.index.token_by_hash(&token_hash(token)).await.ok()??;
            let now_ms = i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX);
            let live = record.revoked_at_unix_ms.is_none()
                && record.expires_at_unix_ms.is_none_or(|exp| now_ms < exp);
            return live.then(|| (record.name.to_string(), record.role, Via::ApiToken));
        }
        let claims = self.jwt.as_ref()?.verify(token, now).ok()?;
        Some((claims.subject, claims.role?, Via::Jwt))
    }

    fn verify_session(&self, rest: &str, now: u64) -> Option<UserName> {
        let (payload, tag) = rest.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        aws_lc_rs::hmac::verify(&self.session_key, payload.as_bytes(), &tag).ok()?;
        let claims: SessionClaims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (now < claims.exp).then_some(())?;
        UserName::parse(&claims.sub).ok()
    }

    fn issue_session(&self, user: &UserName, now: u64) -> String {
        let claims = SessionClaims {
            sub: user.to_string(),
            exp: now + self.session_ttl.as_secs(),
        };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = aws_lc_rs::hmac::sign(&self.session_key, payload.as_bytes());
        format!("{SESSION_PREFIX}{payload}.{}", B64.encode(tag.as_ref()))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SessionClaims {
    sub: String,
    exp: u64,
}

/// A new API token and the hash to store: the token is shown once and never kept.
pub fn new_api_token() -> (String, String) {
    let token = format!(
        "{API_TOKEN_PREFIX}{}",
        B64.encode(rand::random::<[u8; 32]>())
    );
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn unix_now() -> u64 {
    u64::try_from(ward_audit::now_unix_ms() / 1000).unwrap_or(0)
}

pub(crate) fn peer_address(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who made a request, once the `Principal` extractor knows: the refusal record names them.
#[derive(Clone, Default)]
pub(crate) struct Caller(Arc<Mutex<Option<Principal>>>);

/// Records every refused or failed request (any 4xx or 5xx but 401, which the extractor
/// records itself, with the route it was refused on) in the audit trail: handlers record what
/// they did, this records what was not done, unmatched routes and body-limit and timeout
/// refusals included, so that every request leaves a record.
pub(crate) async fn record_refusals(
    State(state): State<Arc<WebState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let caller = Caller::default();
    request.extensions_mut().insert(caller.clone());
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let refused = status.is_client_error() || status.is_server_error();
    if refused && status != axum::http::StatusCode::UNAUTHORIZED && path != "/health" {
        let actor = caller
            .0
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(Principal::actor))
            .unwrap_or_else(|| Actor {
                address: address.map(|a| a.to_string()),
                ..Actor::default()
            });
        let event = AuditEvent::new(Action::Refusal, actor)
            .with_outcome(Outcome::Failure {
                status: Some(status.as_u16()),
                reason: status.canonical_reason().unwrap_or("refused").to_owned(),
            })
            .with_detail(serde_json::json!({ "method": method, "route": path }));
        let _ = state.ingest.audit().append(event).await;
    }
    response
}

impl FromRequestParts<Arc<WebState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        let address = peer_address(parts);
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError::Unauthorized {
                invalid_token: false,
            });
        };
        match state.auth.verify(token, unix_now()).await {
            Some((name, role, via)) => {
                let principal = Principal {
                    name,
                    role,
                    via,
                    address,
                };
                if let Some(Ok(mut slot)) = parts.extensions.get::<Caller>().map(|c| c.0.lock()) {
                    *slot = Some(principal.clone());
                }
                Ok(principal)
            }
            None => {
                let actor = Actor {
                    address: address.map(|a| a.to_string()),
                    ..Actor::default()
                };
                let event = AuditEvent::new(Action::Refusal, actor)
                    .with_outcome(Outcome::Failure {
                        status: Some(401),
                        reason: "bearer token refused".into(),
                    })
                    .with_detail(serde_json::json!({ "route": parts.uri.path() }));
                let _ = state.ingest.audit().append(event).await;
                Err(ApiError::Unauthorized {
                    invalid_token: true,
                })
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// OAuth2's resource-owner password grant names itself; anything else is refused.
    #[serde(default)]
    grant_type: Option<String>,
}

/// `POST /auth/token`: a local user's name and password (JSON or form-encoded, as in the
/// OAuth2 password grant) for a short-lived bearer token. Failures from one address or for one
/// name back off, then lock out for a growing time; every attempt is audited.
pub async fn login(
    State(state): State<Arc<WebState>>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let address = peer_address(&parts);
    let form: LoginForm = parse_login(&parts.headers, &body)?;
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::BadRequest("unsupported grant_type".into()));
    }
    let auth = &state.auth;
    let ip_key = format!(
        "ip:{}",
        address.map(|a| a.ip()).unwrap_or(IpAddr::from([0; 4]))
    );
    let user_key = format!("user:{}", form.username);
    let now = Instant::now();
    let blocked = auth
        .logins
        .lock()
        .map(|t| {
            t.blocked_for(&ip_key, now)
                .max(t.blocked_for(&user_key, now))
        })
        .unwrap_or(Some(Duration::from_secs(1)));
    let actor = Actor {
        user: Some(form.username.clone()),
        address: address.map(|a| a.to_string()),
        ..Actor::default()
    };
    if let Some(remaining) = blocked {
        let event = AuditEvent::new(Action::LoginFailed, actor).with_outcome(Outcome::Failure {
            status: Some(429),
            reason: "locked out after repeated failures".into(),
        });
        let _ = state.ingest.audit().append(event).await;
        return Err(ApiError::TooManyRequests {
            retry_after_secs: remaining.as_secs().max(1),
        });
    }
    let user = match UserName::parse(&form.username) {
        Ok(name) => auth.index.user_get(&name).await?,
        Err(_) => None,
    };
    let hash = user
        .as_ref()
        .map_or_else(|| auth.dummy_hash.clone(), |u| u.password_hash.clone());
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || {
        ward_auth::identity::verify_password(password.as_bytes(), &hash)
    })
    .await
    .unwrap_or(false);
    match user.filter(|_| verified) {
        Some(user) => {
            if let Ok(mut t) = auth.logins.lock() {
                t.success(&user_key);
            }
            let token = auth.issue_session(&user.name, unix_now());
            let event = AuditEvent::new(Action::Login, actor)
                .with_detail(serde_json::json!({ "via": "password", "role": user.role.name() }));
            state
                .ingest
                .audit()
                .append(event)
                .await
                .map_err(|e| ApiError::internal("audit trail unavailable", e))?;
            Ok(axum::Json(serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": auth.session_ttl.as_secs(),
            }))
            .into_response())
        }
        None => {
            if let Ok(mut t) = auth.logins.lock() {
                let _ = t.failure(ip_key, now);
                let _ = t.failure(user_key, now);
            }
            let event =
                AuditEvent::new(Action::LoginFailed, actor).with_outcome(Outcome::Failure {
                    status: Some(401),
                    reason: "wrong user name or password".into(),
                });
            let _ = state.ingest.audit().append(event).await;
            Err(ApiError::Unauthorized {
                invalid_token: false,
            })
        }
    }
}

fn parse_login(headers: &HeaderMap, body: &[u8]) -> Result<LoginForm, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bad = |_| ApiError::BadRequest("expected username and password".into());
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(bad)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded_form(body).ok_or(ApiError::BadRequest(
            "expected username and password".into(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send application/json or application/x-www-form-urlencoded",
        ))
    }
}

fn serde_urlencoded_form(body: &[u8]) -> Option<LoginForm> {
    let mut username = None;
    let mut password = None;
    let mut grant_type = None;
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "username" => username = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            "grant_type" => grant_type = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(LoginForm {
        username: username?,
        password: password?,
        grant_type,
    })
}
