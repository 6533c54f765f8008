//! Errors of the authentication service, sorted by who is at fault. The HTTP layer maps each
//! variant to a status code in one place; messages are safe to show to the client.
//!
//! Every refusal is typed, down to the reason: the `Display` is the API's message (English), and
//! the web UI words each variant in its reader's language with an exhaustive match, so these
//! enums are not `#[non_exhaustive]`: a new reason does not compile until it is translated
//! (S3.1-43).

use std::net::IpAddr;

use mamori_password_policy::Rejection;

use crate::model::{Role, Username};
use crate::settings::{AccessProblem, SettingsProblem};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is malformed or a value is out of range.
    #[error(transparent)]
    InvalidRequest(Invalid),
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
    #[error(transparent)]
    Conflict(Conflict),
    /// The change would cut off the caller and needs an explicit confirmation.
    #[error(transparent)]
    ConfirmationRequired(Confirmation),
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

/// Why a request's values were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A new password equal to the current one.
    #[error("the new password must differ from the current one")]
    SamePassword,
    /// A security key's name that is empty, too long or holds control characters.
    #[error("name must be 1 to 64 characters without control characters")]
    KeyName,
    /// A registration answer that is not what the browser makes.
    #[error("the answer is not a PublicKeyCredential from navigator.credentials.create")]
    KeyAnswerMalformed,
    /// A key that signs with another algorithm than ES256.
    #[error("only ES256 (ECDSA P-256) security keys are accepted")]
    KeyAlgorithm,
    /// The browser's library refused the key: another algorithm, or a key registered already.
    #[error(
        "the security key was refused: only ES256 (ECDSA P-256) keys are accepted, and a key cannot be registered twice"
    )]
    KeyAlgorithmOrTaken,
    /// An answer made for another challenge or another origin.
    #[error(
        "the answer does not belong to this registration: open the web UI at https://{rp_id} and start again"
    )]
    KeyOrigin {
        /// The relying-party id the UI must be opened at.
        rp_id: String,
    },
    /// Any other refusal of a key's answer.
    #[error("the security key's answer was refused")]
    KeyRefused,
    /// A token's lifetime outside 1–365 days.
    #[error("expires_in_days must be 1 to 365")]
    TokenDays,
    /// A TOTP code that does not match while enrolling.
    #[error("the code does not match; check the device clock and try the next code")]
    TotpCode,
    /// A security-key answer without a challenge.
    #[error("no security-key challenge is pending: request one first")]
    NoKeyChallenge,
    /// Authentication settings out of range.
    #[error(transparent)]
    Settings(SettingsProblem),
    /// A management access policy that cannot be.
    #[error(transparent)]
    Access(AccessProblem),
}

/// Why a request conflicts with the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The account has the most security keys it may.
    #[error("at most {max} security keys per account; remove one first")]
    KeyLimit {
        /// The limit.
        max: usize,
    },
    /// A registration answer without a registration in progress.
    #[error("no security-key registration is pending; start again")]
    NoKeyRegistration,
    /// The key is registered to an account already.
    #[error("this security key is already registered")]
    KeyTaken,
    /// A security-key login for an account without one.
    #[error("no security key is registered for this account")]
    NoSecurityKey,
    /// The user name is taken.
    #[error("user {0} already exists")]
    UserExists(Username),
    /// The change would leave no enabled administrator.
    #[error("this would leave the device without an enabled administrator")]
    LastAdmin,
    /// An administrator deleting their own account.
    #[error("you cannot delete your own account")]
    DeleteSelf,
    /// TOTP enrolment while TOTP is enrolled.
    #[error("TOTP is already enrolled; disable it first")]
    TotpEnrolled,
    /// A TOTP code for an enrolment that was not started.
    #[error("no pending TOTP enrolment")]
    NoTotpEnrolment,
    /// Removing TOTP that is not there.
    #[error("TOTP is not enrolled")]
    TotpNotEnrolled,
    /// Removing the last second factor of a role that requires one.
    #[error("the {} role requires a second factor; this is your last one", .0.as_str())]
    LastRequiredFactor(Role),
    /// The user has the most API tokens they may.
    #[error("at most {max} tokens per user; revoke one first")]
    TokenLimit {
        /// The limit.
        max: usize,
    },
}

/// A change that would cut the caller off and is applied only when confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Confirmation {
    /// The new allowlist leaves out the caller's own address.
    #[error(
        "this allowlist does not include your address {0}; your session would be cut off. Resend with \"confirm\": true to apply it anyway"
    )]
    AllowlistExcludesCaller(IpAddr),
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
