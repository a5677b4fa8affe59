//! The one place where failures become HTTP responses. Bodies name the problem, never a value
//! from the archive: a refusal carries no data.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that did not check out.
    #[error("authentication required")]
    Unauthorized {
        /// A token was presented but refused (RFC 6750 `error="invalid_token"`).
        invalid_token: bool,
    },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("none of the accepted media types can be served")]
    NotAcceptable,
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Conflict(&'static str),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs an internal failure (without request data) and hides it from the client.
    pub fn internal(context: &'static str, e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "{context}");
        ApiError::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized { invalid_token } => {
                let challenge = if invalid_token {
                    "Bearer realm=\"ward\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"ward\""
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<ward_index::IndexError> for ApiError {
    fn from(e: ward_index::IndexError) -> ApiError {
        match e {
            ward_index::IndexError::Query(q) => ApiError::BadRequest(q.to_string()),
            ward_index::IndexError::TooBroad { .. } => {
                ApiError::BadRequest("query too broad: add keys the index can match".into())
            }
            other => ApiError::internal("index failure", other),
        }
    }
}
