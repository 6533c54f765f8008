//! Errors of the client and the exit codes they map to.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the API refused (4xx), or the account must change its password first |
//! | 2 | usage error (bad arguments, no password given) |
//! | 3 | connection or TLS error |
//! | 4 | server error (5xx or an answer that is not what the API promises) |
//! | 5 | `audit verify`: the audit log does not verify |
//! | 6 | `lab`: a step of building, reading or removing the lab failed |

use std::fmt;

/// Exit code: the API refused the request.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: connection or TLS error.
pub const EXIT_CONNECTION: u8 = 3;
/// Exit code: server error.
pub const EXIT_SERVER: u8 = 4;
/// Exit code: the audit log does not verify (a break was found).
pub const EXIT_BROKEN: u8 = 5;
/// Exit code: a step of the lab failed.
pub const EXIT_LAB: u8 = 6;

/// An error answer of the API (`{"error": {"code", "message"}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`, when the body had one.
    pub code: Option<String>,
    /// `error.message`, or a description of the status when the body had none.
    pub message: String,
    /// `rule` of a `password_rejected` answer.
    pub rule: Option<String>,
    /// `reason` of a `password_rejected` answer, if the server gives one.
    pub reason: Option<String>,
    /// `reason_ja`, the same reason in Japanese.
    pub reason_ja: Option<String>,
    /// `Retry-After` header of a throttled answer.
    pub retry_after: Option<String>,
}

impl ApiError {
    /// Builds the error from a status, the `Retry-After` header and the raw body.
    pub fn from_response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let err = json.as_ref().and_then(|j| j.get("error"));
        let text = |v: Option<&serde_json::Value>| -> Option<String> {
            v.and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        let code = text(err.and_then(|e| e.get("code")));
        let message = text(err.and_then(|e| e.get("message"))).unwrap_or_else(|| {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("unexpected status");
            format!("HTTP {status} {reason}")
        });
        // The contract says the rejected-password answer carries `rule`; accept it inside the
        // error object or beside it.
        let field = |name: &str| {
            text(err.and_then(|e| e.get(name))).or_else(|| text(json.as_ref()?.get(name)))
        };
        ApiError {
            status,
            code,
            message,
            rule: field("rule"),
            reason: field("reason"),
            reason_ja: field("reason_ja"),
            retry_after: retry_after.map(str::to_owned),
        }
    }

    /// Whether the answer has this `error.code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// A next step for the administrator, for the codes that have an obvious one.
    fn hint(&self) -> Option<&'static str> {
        Some(match self.code.as_deref()? {
            "mfa_required" => "give the current TOTP code with --totp CODE (or MAMORI_TOTP)",
            "password_change_required" => "run `mamori passwd` first",
            "mfa_enrollment_required" => {
                "your role requires a second factor: run `mamori mfa totp enroll`, then \
                 `mamori mfa totp verify CODE`"
            }
            "confirmation_required" => "re-run with --confirm if you really mean it",
            "reauth_required" => "re-authentication failed or expired; run the command again",
            "unauthenticated" => "the session or token is missing, expired or revoked",
            _ => return None,
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        match &self.code {
            Some(code) => write!(f, " ({} {code})", self.status)?,
            None => write!(f, " (HTTP {})", self.status)?,
        }
        if let Some(rule) = &self.rule {
            write!(f, "\n  password rule: {rule}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, "\n  reason: {reason}")?;
        }
        // Security information in Japanese for a Japanese locale (S3.1-43).
        if let Some(reason_ja) = self.reason_ja.as_ref().filter(|_| japanese_locale()) {
            write!(f, "\n  理由: {reason_ja}")?;
        }
        if let Some(after) = &self.retry_after {
            write!(f, "\n  retry after: {after} seconds")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Whether the user's locale is Japanese (LC_ALL, LC_MESSAGES or LANG starting with `ja`).
pub fn japanese_locale() -> bool {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .is_some_and(|v| v.starts_with("ja"))
}

/// Everything that can go wrong in one invocation.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or missing input.
    Usage(String),
    /// The API answered with an error status.
    Api(Box<ApiError>),
    /// The server could not be reached, or TLS failed.
    Connection(String),
    /// The server answered something the contract does not allow.
    Protocol(String),
    /// Login succeeded but the account must change its password first.
    MustChangePassword {
        /// The account.
        username: String,
    },
    /// `mamori audit verify` found a break in the log (the report is already printed).
    LogBroken(String),
    /// `mamori lab`: a step failed (the message names it).
    Lab(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Api(e) if (400..500).contains(&e.status) => EXIT_REFUSED,
            CliError::Api(_) => EXIT_SERVER,
            CliError::Connection(_) => EXIT_CONNECTION,
            CliError::Protocol(_) => EXIT_SERVER,
            CliError::MustChangePassword { .. } => EXIT_REFUSED,
            CliError::LogBroken(_) => EXIT_BROKEN,
            CliError::Lab(_) => EXIT_LAB,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m}"),
            CliError::LogBroken(m) => write!(f, "the audit log does not verify: {m}"),
            CliError::Lab(m) => write!(f, "lab: {m}"),
            CliError::Api(e) => write!(f, "{e}"),
            CliError::Connection(m) => write!(f, "{m}"),
            CliError::Protocol(m) => write!(f, "unexpected answer from the server: {m}"),
            CliError::MustChangePassword { username } => write!(
                f,
                "the password of {username} must be changed before anything else: run \
                 `mamori passwd` first (new password from MAMORI_NEW_PASSWORD or the next \
                 line of standard input)"
            ),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::Api(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> CliError {
        ApiError::from_response(status, None, body.as_bytes()).into()
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Connection("x".into()).exit_code(), 3);
        assert_eq!(CliError::Protocol("x".into()).exit_code(), 4);
        assert_eq!(
            CliError::MustChangePassword {
                username: "a".into()
            }
            .exit_code(),
            1
        );
        for status in [400, 401, 403, 404, 409, 413, 415, 422, 429] {
            assert_eq!(api(status, "{}").exit_code(), 1, "{status}");
        }
        for status in [500, 502, 503] {
            assert_eq!(api(status, "").exit_code(), 4, "{status}");
        }
    }

    #[test]
    fn api_error_body_is_parsed() {
        let e = ApiError::from_response(
            401,
            None,
            br#"{"error":{"code":"authentication_failed","message":"wrong username or password"}}"#,
        );
        assert_eq!(e.code.as_deref(), Some("authentication_failed"));
        assert_eq!(e.message, "wrong username or password");
        assert_eq!(
            e.to_string(),
            "wrong username or password (401 authentication_failed)"
        );
    }

    #[test]
    fn password_rule_is_shown_wherever_it_is() {
        for body in [
            r#"{"error":{"code":"password_rejected","message":"too weak","rule":"B"}}"#,
            r#"{"error":{"code":"password_rejected","message":"too weak"},"rule":"B"}"#,
        ] {
            let e = ApiError::from_response(422, None, body.as_bytes());
            assert_eq!(e.rule.as_deref(), Some("B"));
            assert!(e.to_string().contains("password rule: B"), "{e}");
        }
    }

    #[test]
    fn retry_after_is_shown() {
        let e = ApiError::from_response(
            429,
            Some("30"),
            br#"{"error":{"code":"too_many_attempts","message":"slow down"}}"#,
        );
        assert!(e.to_string().contains("retry after: 30 seconds"), "{e}");
    }

    #[test]
    fn non_json_body_still_gives_a_message() {
        let e = ApiError::from_response(502, None, b"<html>bad gateway</html>");
        assert_eq!(e.message, "HTTP 502 Bad Gateway");
        assert_eq!(e.code, None);
    }

    #[test]
    fn hints_for_actionable_codes() {
        let e = ApiError::from_response(
            409,
            None,
            br#"{"error":{"code":"confirmation_required","message":"would cut you off"}}"#,
        );
        assert!(e.to_string().contains("--confirm"), "{e}");
        let e = CliError::MustChangePassword {
            username: "admin".into(),
        };
        assert!(e.to_string().contains("mamori passwd"), "{e}");
    }
}
