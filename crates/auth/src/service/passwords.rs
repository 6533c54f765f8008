//! Changing one's own password.

use mamori_audit::EventKind;
use serde_json::json;

use super::*;

impl AuthService {
    pub(super) fn check_policy(
        &self,
        username: &Username,
        new_password: &str,
    ) -> Result<(), AuthError> {
        let policy = Policy {
            min_length: self.settings().password_min_length,
            ..Policy::default()
        };
        policy
            .check(
                new_password,
                &policy_context(&self.facts, username.as_str()),
            )
            .map_err(AuthError::PasswordRejected)
    }

    /// Checks a candidate for the caller's new password against the policy, without changing
    /// anything: the UI explains the rules while the user types.
    pub fn check_new_password(&self, p: &Principal, candidate: &str) -> Result<(), AuthError> {
        self.check_policy(&p.username, candidate)
    }

    /// Changes the caller's own password. Returns the new session secret: the session id
    /// changes, and every other session of the user ends.
    pub fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new_password: &str,
    ) -> Result<String, AuthError> {
        let hash = p.session_hash()?;
        self.verify_credentials(
            p.username.as_str(),
            current,
            None,
            &p.origin,
            "password_change",
        )
        .or_else(|e| match e {
            // The second factor was proven at login; the password is what is re-checked.
            AuthError::MfaRequired => Ok(self.user(&p.username)?),
            e => Err(e),
        })?;
        if current == new_password {
            return Err(AuthError::InvalidRequest(Invalid::SamePassword));
        }
        self.check_policy(&p.username, new_password)?;
        let new_hash = password::hash(new_password)?;
        let now = self.now();
        self.modify_user(&p.username, AuthError::Unauthenticated, |u| {
            u.password_hash = new_hash;
            u.must_change_password = false;
            u.password_changed_at = now;
            Ok(())
        })?;
        let ended = self
            .volatile()
            .sessions
            .remove_user(&p.username, Some(&hash));
        let settings = self.settings();
        let user = self.user(&p.username)?;
        let secret = self.rotate_session(p, |s| {
            s.restriction = (settings.mfa_required_roles.contains(&user.role)
                && !user.mfa_enabled())
            .then_some(Restriction::MfaEnrollmentRequired);
        })?;
        self.record_by(
            p,
            EventKind::PasswordChanged,
            json!({"other_sessions_ended": ended}),
        );
        Ok(secret)
    }
}
