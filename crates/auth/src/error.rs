//! Errors of the authentication service, sorted by who is at fault. The HTTP layer maps each
//! variant to a status code in one place; messages are safe to show to the client.

use mamori_password_policy::Rejection;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request is malformed or a value is out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// Wrong username or password (never says which).
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The password was right but the second factor is missing or wrong.
    #[error("a valid second factor (TOTP code, recovery code or security key) is required")]
    MfaRequired,
    /// No valid session or token.
    #[error("not authenticated or session expired")]
    Unauthenticated,
    /// The role does not allow this.
    #[error("your role does not allow this")]
    Forbidden,
    /// Only a password change is allowed in this session.
    #[error("the password must be changed before anything else")]
    PasswordChangeRequired,
    /// Only MFA enrolment is allowed in this session.
    #[error("your role requires a second factor: enrol one before anything else")]
    MfaEnrollmentRequired,
    /// The operation needs a recent re-authentication.
    #[error("re-authenticate to do this (valid for 5 minutes)")]
    ReauthRequired,
    /// API tokens may not do this; use an interactive session.
    #[error("API tokens cannot do this; use an interactive session")]
    TokenNotAllowed,
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The change would cut off the caller and needs an explicit confirmation.
    #[error("{0}")]
    ConfirmationRequired(String),
    /// The password policy refused the new password.
    #[error("password rejected: {}", .0.reason)]
    PasswordRejected(Rejection),
    /// The source address is throttled.
    #[error("too many failed attempts from this address; retry in {retry_after} s")]
    TooManyAttempts {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Something inside failed; details go to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl From<mamori_store::StoreError> for AuthError {
    fn from(e: mamori_store::StoreError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl From<mamori_crypto::CryptoError> for AuthError {
    fn from(e: mamori_crypto::CryptoError) -> Self {
        AuthError::Internal(e.to_string())
    }
}
