//! The web front door: DICOMweb (QIDO-RS, WADO-RS, STOW-RS, PS3.18) under `/dicom-web`, the
//! admin API under `/api`, and `POST /auth/token`. The app is a value ([`router`]) so tests
//! drive it without sockets; [`serve`] puts it on a listener.
//!
//! Nothing answers without a valid bearer token but `/health`; every request that reaches a
//! handler is recorded in the audit trail. Queries go through the one query engine with the
//! same caps and anti-enumeration rule as C-FIND; uploads through the one ingest path.

mod admin;
mod auth;
mod error;
mod media;
mod pixels;
mod qido;
mod serve;
mod stow;
mod wado;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Request};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use ward_auth::throttle::Budget;
use ward_ingest::Ingest;

pub use auth::{Auth, Jwt, Principal, Via, new_api_token};
pub use axum::Router;
pub use error::ApiError;
pub use qido::{MAX_QUERY_STRING, Search, parse_search};
pub use serve::serve;

/// Limits and policy the handlers apply.
#[derive(Debug, Clone)]
pub struct WebPolicy {
    /// Matches one query returns at most (as `query.max_matches` for C-FIND).
    pub max_matches: u32,
    /// Instances one retrieval returns at most.
    pub max_retrieve: u32,
    pub pn_case_insensitive: bool,
    /// Largest request body, in bytes.
    pub max_body_bytes: u64,
    /// Most parts one STOW-RS request may hold.
    pub max_parts: u32,
    pub request_timeout: Duration,
    pub cors_allowed_origins: Vec<String>,
    /// The URL clients reach Ward at, when a proxy stands in front of it.
    pub public_url: Option<String>,
}

impl WebPolicy {
    pub fn from_config(config: &ward_config::Config) -> WebPolicy {
        WebPolicy {
            max_matches: config.query.max_matches,
            max_retrieve: config.query.max_retrieve_instances,
            pn_case_insensitive: config.query.pn_case_insensitive,
            max_body_bytes: config.web.max_body_bytes,
            max_parts: config.web.max_parts,
            request_timeout: Duration::from_secs(config.web.request_timeout_secs),
            cors_allowed_origins: config.web.cors_allowed_origins.clone(),
            public_url: config.web.public_url.clone(),
        }
    }
}

/// What every handler shares.
pub struct WebState {
    pub ingest: Arc<Ingest>,
    pub auth: Auth,
    pub policy: WebPolicy,
    /// Matches per user per hour, the same budget C-FIND keeps per AE title.
    pub match_budget: Mutex<Budget<String>>,
    /// Where the audit trail is, for the auditor's reads.
    pub audit_dir: std::path::PathBuf,
}

impl WebState {
    pub fn new(
        ingest: Arc<Ingest>,
        auth: Auth,
        policy: WebPolicy,
        matches_per_hour: u64,
        audit_dir: std::path::PathBuf,
    ) -> Self {
        WebState {
            ingest,
            auth,
            policy,
            match_budget: Mutex::new(Budget::new(Duration::from_secs(3600), matches_per_hour)),
            audit_dir,
        }
    }

    /// Appends an audit record; a request whose record cannot be written is refused.
    async fn audit(&self, event: ward_audit::AuditEvent) -> Result<(), ApiError> {
        self.ingest
            .audit()
            .append(event)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::internal("audit trail unavailable", e))
    }
}

/// The application: every route, with timeouts, body limits, CORS and tracing as layers.
pub fn router(state: Arc<WebState>) -> Router {
    let instance = "/studies/{study}/series/{series}/instances/{instance}";
    let dicomweb = Router::new()
        .route("/studies", get(qido::studies).post(stow::store))
        .route(
            "/studies/{study}",
            get(wado::get_instances).post(stow::store_in_study),
        )
        .route("/studies/{study}/metadata", get(wado::get_metadata))
        .route("/studies/{study}/series", get(qido::study_series))
        .route("/studies/{study}/instances", get(qido::study_instances))
        .route("/studies/{study}/series/{series}", get(wado::get_instances))
        .route(
            "/studies/{study}/series/{series}/metadata",
            get(wado::get_metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances",
            get(qido::series_instances),
        )
        .route(instance, get(wado::get_instances))
        .route(&format!("{instance}/metadata"), get(wado::get_metadata))
        .route(
            &format!("{instance}/bulkdata/{{*path}}"),
            get(pixels::bulkdata),
        )
        .route(
            &format!("{instance}/frames/{{frames}}"),
            get(pixels::frames),
        )
        .route(
            &format!("{instance}/frames/{{frames}}/rendered"),
            get(pixels::frame_rendered),
        )
        .route(&format!("{instance}/rendered"), get(pixels::rendered))
        .route(&format!("{instance}/thumbnail"), get(pixels::thumbnail))
        .route("/series", get(qido::all_series))
        .route("/instances", get(qido::all_instances));
    let cors = cors(&state.policy.cors_allowed_origins);
    let timeout = state.policy.request_timeout;
    let app = Router::new()
        .route("/health", get(health))
        .route("/auth/token", post(auth::login))
        .nest("/dicom-web", dicomweb)
        .nest("/api", admin::router())
        .with_state(Arc::clone(&state))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            refuse_oversized,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            auth::record_refusals,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(span));
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// The request span: method and route template only. The URI itself may carry patient names
/// (QIDO parameters) and UIDs, which belong in the audit trail, not in operational logs.
fn span<B>(request: &Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("http", method = %request.method(), route)
}

/// Strict CORS: no cross-origin access at all unless origins are listed, and then only those.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::ACCEPT,
                axum::http::header::CONTENT_TYPE,
            ]),
    )
}

/// Refuses a declared body over `web.max_body_bytes` before any of it is read, with Ward's own
/// JSON error. Bodies without a declared length are bounded where they are read: STOW-RS by its
/// multipart parser's stream limit (413, or reason A700 for the unread rest), the JSON and
/// form routes by axum's extractor limit.
async fn refuse_oversized(
    axum::extract::State(state): axum::extract::State<Arc<WebState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.policy.max_body_bytes) {
        return axum::response::IntoResponse::into_response(ApiError::PayloadTooLarge(format!(
            "the body is larger than {} bytes",
            state.policy.max_body_bytes
        )));
    }
    next.run(request).await
}

async fn health() -> &'static str {
    "ok"
}
