//! The one place where failures become HTTP answers.
//!
//! Remote clients get a code and a generic message; internal details go to the daemon's log
//! only (the opposite of an API that trusts its local socket, because this one is remote).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::AuthError;
use serde_json::json;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A decision of the authentication service.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The body is not valid JSON for the endpoint, or a value is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the limit.
    #[error("request body too large")]
    BodyTooLarge,
    /// The body did not arrive in time.
    #[error("request body not received in time")]
    BodyTimeout,
    /// A body without `Content-Type: application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// No such endpoint.
    #[error("not found")]
    NotFound,
    /// The endpoint exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The connection's source is no longer on the management allowlist.
    #[error("this source address may not use the management service")]
    SourceNotAllowed,
    /// Only over the local console.
    #[error("only available on the local console")]
    ConsoleOnly,
    /// Too many password checks in flight; try again.
    #[error("the device is busy; try again")]
    Busy,
    /// The request conflicts with the state of a part outside the authentication service (the
    /// network configuration, the clock), in that part's words. Answered as the service's
    /// conflicts are (409, `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// Something inside failed.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use AuthError as A;
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::ConsoleOnly => (StatusCode::FORBIDDEN, "console_only"),
            ApiError::SourceNotAllowed => (StatusCode::FORBIDDEN, "source_not_allowed"),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Auth(e) => match e {
                A::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                A::AuthenticationFailed => (StatusCode::UNAUTHORIZED, "authentication_failed"),
                A::MfaRequired => (StatusCode::UNAUTHORIZED, "mfa_required"),
                A::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                A::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                A::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
                A::MfaEnrollmentRequired => (StatusCode::FORBIDDEN, "mfa_enrollment_required"),
                A::ReauthRequired => (StatusCode::FORBIDDEN, "reauth_required"),
                A::TokenNotAllowed => (StatusCode::FORBIDDEN, "token_not_allowed"),
                A::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                A::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                A::ConfirmationRequired(_) => (StatusCode::CONFLICT, "confirmation_required"),
                A::PasswordRejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "password_rejected"),
                A::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
                A::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        match &self {
            ApiError::Internal(detail) | ApiError::Auth(AuthError::Internal(detail)) => {
                tracing::error!(%detail, "internal error answering a request");
            }
            ApiError::Auth(AuthError::PasswordRejected(r)) => {
                body["error"]["rule"] = json!(r.rule);
                body["error"]["reason"] = json!(r.reason);
                body["error"]["reason_ja"] = json!(r.reason_ja);
            }
            _ => {}
        }
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::Auth(AuthError::TooManyAttempts { retry_after }) = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
