//! The admin API (JSON; described in `docs/openapi.yaml`): users, API tokens, the AE registry
//! and statistics for administrators, the audit trail for auditors. Every change and every read
//! of the trail is itself recorded.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_audit::{Action, AuditEvent};
use ward_index::{ApiTokenRecord, IndexError, UserRecord};
use ward_types::{AeTitle, Role, UserName};

use crate::WebState;
use crate::auth::{Principal, new_api_token};
use crate::error::ApiError;

/// Most audit records one request returns.
const MAX_AUDIT_RECORDS: usize = 1000;

pub fn router() -> Router<Arc<WebState>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/users", get(list_users).post(add_user))
        .route("/users/{name}", delete(remove_user))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", delete(revoke_token))
        .route("/ae", get(list_ae))
        .route("/ae/{aet}", delete(remove_ae))
        .route("/audit", get(read_audit))
}

/// The answer to a removal: 404 when there was nothing to remove, else the change recorded and
/// 204.
async fn removed(
    state: &WebState,
    principal: &Principal,
    existed: bool,
    detail: Value,
) -> Result<StatusCode, ApiError> {
    if !existed {
        return Err(ApiError::NotFound);
    }
    record(state, principal, Action::RegistryChange, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn admin(principal: &Principal) -> Result<(), ApiError> {
    principal.require_role(&[Role::Administrator])
}

async fn record(
    state: &WebState,
    principal: &Principal,
    action: Action,
    detail: Value,
) -> Result<(), ApiError> {
    state
        .audit(AuditEvent::new(action, principal.actor()).with_detail(detail))
        .await
}

async fn stats(
    State(state): State<Arc<WebState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    record(
        &state,
        &principal,
        Action::AdminRead,
        json!({ "read": "stats" }),
    )
    .await?;
    let counts = state.ingest.index().counts().await?;
    let audit = state.ingest.audit().stats();
    Ok(Json(json!({
        "patients": counts.patients,
        "studies": counts.studies,
        "series": counts.series,
        "instances": counts.instances,
        "audit_records": audit.durable_seq,
    })))
}

async fn list_users(
    State(state): State<Arc<WebState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    record(
        &state,
        &principal,
        Action::AdminRead,
        json!({ "read": "users" }),
    )
    .await?;
    let users = state.ingest.index().user_list().await?;
    Ok(Json(Value::Array(
        users
            .iter()
            .map(|u| json!({ "name": u.name.as_str(), "role": u.role.name() }))
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn add_user(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Json(new): Json<NewUser>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    let name = UserName::parse(&new.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let role: Role = new
        .role
        .parse()
        .map_err(|_| ApiError::BadRequest("unknown role".into()))?;
    if new.password.chars().count() < 12 {
        return Err(ApiError::BadRequest(
            "the password must have at least 12 characters".into(),
        ));
    }
    let password = new.password;
    let hash = tokio::task::spawn_blocking(move || ward_auth::identity::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal("hashing failed", e))?
        .map_err(|e| ApiError::internal("hashing failed", e))?;
    let user = UserRecord {
        name: name.clone(),
        role,
        password_hash: hash,
        created_at_unix_ms: ward_audit::now_unix_ms(),
    };
    match state.ingest.index().user_add(&user).await {
        Err(IndexError::AlreadyExists) => return Err(ApiError::Conflict("that user exists")),
        other => other?,
    }
    record(
        &state,
        &principal,
        Action::RegistryChange,
        json!({ "user_added": name.as_str(), "role": role.name() }),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

async fn remove_user(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    let name = UserName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let existed = state.ingest.index().user_remove(&name).await?;
    removed(
        &state,
        &principal,
        existed,
        json!({ "user_removed": name.as_str() }),
    )
    .await
}

async fn list_tokens(
    State(state): State<Arc<WebState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    record(
        &state,
        &principal,
        Action::AdminRead,
        json!({ "read": "tokens" }),
    )
    .await?;
    let tokens = state.ingest.index().token_list().await?;
    Ok(Json(Value::Array(
        tokens
            .iter()
            .map(|t| {
                json!({
                    "name": t.name.as_str(),
                    "role": t.role.name(),
                    "created_at_unix_ms": t.created_at_unix_ms,
                    "expires_at_unix_ms": t.expires_at_unix_ms,
                    "revoked_at_unix_ms": t.revoked_at_unix_ms,
                })
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

/// Creates an API token; the response is the only place the token ever appears.
async fn create_token(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Json(new): Json<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&principal)?;
    let name = UserName::parse(&new.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let role: Role = new
        .role
        .parse()
        .map_err(|_| ApiError::BadRequest("unknown role".into()))?;
    let (token, token_hash) = new_api_token();
    let now = ward_audit::now_unix_ms();
    let expires = new
        .expires_in_secs
        .map(|s| now.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    let record_ = ApiTokenRecord {
        name: name.clone(),
        role,
        token_hash,
        created_at_unix_ms: now,
        expires_at_unix_ms: expires,
        revoked_at_unix_ms: None,
    };
    match state.ingest.index().token_add(&record_).await {
        Err(IndexError::AlreadyExists) => {
            return Err(ApiError::Conflict("a token of that name exists"));
        }
        other => other?,
    }
    record(
        &state,
        &principal,
        Action::RegistryChange,
        json!({ "token_created": name.as_str(), "role": role.name() }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name.as_str(), "token": token })),
    ))
}

async fn revoke_token(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    let name = UserName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let existed = state
        .ingest
        .index()
        .token_revoke(&name, ward_audit::now_unix_ms())
        .await?;
    removed(
        &state,
        &principal,
        existed,
        json!({ "token_revoked": name.as_str() }),
    )
    .await
}

async fn list_ae(
    State(state): State<Arc<WebState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    record(
        &state,
        &principal,
        Action::AdminRead,
        json!({ "read": "ae" }),
    )
    .await?;
    let peers = state.ingest.index().ae_list().await?;
    Ok(Json(Value::Array(
        peers
            .iter()
            .map(|p| {
                json!({
                    "ae_title": p.aet.as_str(),
                    "host": p.host.to_string(),
                    "port": p.port,
                    "allow": p.allow.to_string(),
                    "legacy_plain": p.legacy_plain,
                    "pinned_certificate": p.cert_sha256.as_ref().map(hex::encode),
                    "identity": p.identity.to_string(),
                })
            })
            .collect(),
    )))
}

async fn remove_ae(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Path(aet): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    let aet = AeTitle::parse(&aet).map_err(|_| ApiError::NotFound)?;
    let existed = state.ingest.index().ae_remove(&aet).await?;
    removed(
        &state,
        &principal,
        existed,
        json!({ "ae_removed": aet.as_str() }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    since_unix_ms: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Audit records in chain order, for the auditor and administrator roles only: the trail
/// names patients, and reading it is itself recorded.
async fn read_audit(
    State(state): State<Arc<WebState>>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require_role(&[Role::Auditor, Role::Administrator])?;
    let limit = query.limit.unwrap_or(100).min(MAX_AUDIT_RECORDS);
    record(
        &state,
        &principal,
        Action::AuditRead,
        json!({ "since_unix_ms": query.since_unix_ms, "limit": limit }),
    )
    .await?;
    let dir = state.audit_dir.clone();
    let since = query.since_unix_ms;
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for record in ward_audit::read(&dir, since).map_err(|e| e.to_string())? {
            let record = record.map_err(|e| e.to_string())?;
            if since.is_some_and(|s| record.time_unix_ms < s) {
                continue;
            }
            let line = record.to_json_line().map_err(|e| e.to_string())?;
            out.push(serde_json::from_str(&line).map_err(|e| e.to_string())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::internal("audit read failed", e))?
    .map_err(|e| ApiError::internal("audit read failed", e))?;
    Ok(Json(Value::Array(records)))
}
