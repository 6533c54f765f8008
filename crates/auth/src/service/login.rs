//! Login, session authentication, logout, listing and revoking sessions, re-authentication.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

impl AuthService {
    /// Logs in and opens a session.
    pub fn login(
        &self,
        username: &str,
        password_text: &str,
        totp: Option<&str>,
        origin: Origin,
    ) -> Result<LoginOutcome, AuthError> {
        let user = self.verify_credentials(username, password_text, totp, &origin, "login")?;
        let settings = self.settings();
        let now = self.now();
        let restriction = if user.must_change_password {
            Some(Restriction::PasswordChangeRequired)
        } else if settings.mfa_required_roles.contains(&user.role) && !user.mfa_enabled() {
            Some(Restriction::MfaEnrollmentRequired)
        } else {
            None
        };
        let session = Session {
            public_id: HEXLOWER.encode(&random::bytes::<8>()?),
            username: user.username.clone(),
            role: user.role,
            channel: origin.channel,
            source: origin.source,
            created_at: now,
            last_seen_at: now,
            restriction,
            reauth_until: None,
        };
        let info = self.session_info(&session, &user, &settings);
        let secret = self.volatile().sessions.create(session)?;
        self.record(
            Event::new(EventKind::LoginSucceeded, Outcome::Success)
                .actor(user.username.as_str())
                .source(origin.label())
                .details(json!({"channel": origin.channel, "mfa": user.mfa_enabled(),
                    "restriction": restriction})),
        );
        Ok(LoginOutcome {
            secret,
            session: info,
        })
    }

    pub(super) fn session_info(
        &self,
        s: &Session,
        user: &User,
        settings: &AuthSettings,
    ) -> SessionInfo {
        SessionInfo {
            username: s.username.clone(),
            role: s.role,
            must_change_password: s.restriction == Some(Restriction::PasswordChangeRequired),
            mfa_enrollment_required: s.restriction == Some(Restriction::MfaEnrollmentRequired),
            mfa_enabled: user.mfa_enabled(),
            idle_timeout_seconds: settings.idle_timeout_seconds,
            expires_at: s.created_at + settings.absolute_timeout_seconds,
            reauth_valid_until: s.reauth_until.filter(|t| *t > self.now()),
            channel: s.channel,
        }
    }

    /// Authenticates a request by its session secret, and marks the session as used.
    pub fn authenticate_session(
        &self,
        secret: &str,
        origin: Origin,
    ) -> Result<Principal, AuthError> {
        let now = self.now();
        let settings = self.settings();
        let hash = secret_hash(secret);
        let mut v = self.volatile();
        let Some(s) = v.sessions.get_mut(&hash) else {
            return Err(AuthError::Unauthenticated);
        };
        if s.channel != origin.channel {
            return Err(AuthError::Unauthenticated);
        }
        if let Some(why) = expiry(
            s,
            now,
            settings.idle_timeout_seconds,
            settings.absolute_timeout_seconds,
        ) {
            let s = v.sessions.remove(&hash);
            drop(v);
            if let Some(s) = s {
                self.audit_expired(&s, why);
            }
            return Err(AuthError::Unauthenticated);
        }
        s.last_seen_at = now;
        Ok(Principal {
            username: s.username.clone(),
            role: s.role,
            via: Via::Session {
                hash,
                public_id: s.public_id.clone(),
            },
            origin,
            restriction: s.restriction,
            reauth_until: s.reauth_until,
        })
    }

    fn audit_expired(&self, s: &Session, why: &'static str) {
        self.record(
            Event::new(EventKind::SessionExpired, Outcome::Success)
                .actor(s.username.as_str())
                .source(s.source.map_or("console".into(), |a| a.to_string()))
                .details(json!({"reason": why, "session": s.public_id})),
        );
    }

    /// Ends sessions past their timeouts; run periodically so expiry is audited promptly.
    pub fn sweep(&self) {
        let settings = self.settings();
        let expired = self.volatile().sessions.expire(
            self.now(),
            settings.idle_timeout_seconds,
            settings.absolute_timeout_seconds,
        );
        for (s, why) in expired {
            self.audit_expired(&s, why);
        }
    }

    /// The caller's session.
    pub fn session(&self, p: &Principal) -> Result<SessionInfo, AuthError> {
        let hash = p.session_hash()?;
        let user = self.user(&p.username)?;
        let settings = self.settings();
        let v = self.volatile();
        let s = v
            .sessions
            .of_user(&p.username)
            .find(|(h, _)| **h == hash)
            .map(|(_, s)| s.clone())
            .ok_or(AuthError::Unauthenticated)?;
        drop(v);
        Ok(self.session_info(&s, &user, &settings))
    }

    /// Ends the caller's session.
    pub fn logout(&self, p: &Principal) -> Result<(), AuthError> {
        let hash = p.session_hash()?;
        self.volatile().sessions.remove(&hash);
        self.record_by(p, EventKind::Logout, serde_json::Value::Null);
        Ok(())
    }

    /// Lists the caller's sessions.
    pub fn list_sessions(&self, p: &Principal) -> Vec<SessionListing> {
        let current = p.session_hash().ok();
        let v = self.volatile();
        let mut out: Vec<SessionListing> = v
            .sessions
            .of_user(&p.username)
            .map(|(h, s)| SessionListing {
                id: s.public_id.clone(),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                source: s.source.map_or("console".into(), |a| a.to_string()),
                channel: s.channel,
                current: Some(*h) == current,
            })
            .collect();
        out.sort_by_key(|s| s.created_at);
        out
    }

    /// Ends one of the caller's own sessions.
    pub fn revoke_session(&self, p: &Principal, public_id: &str) -> Result<(), AuthError> {
        self.volatile()
            .sessions
            .remove_public(&p.username, public_id)
            .ok_or(AuthError::NotFound("session"))?;
        self.record_by(p, EventKind::SessionRevoked, json!({"session": public_id}));
        Ok(())
    }

    /// Replaces the caller's session with a new id, carrying its state over with `change`
    /// applied. Used whenever a session gains privilege (no fixation).
    pub(super) fn rotate_session(
        &self,
        p: &Principal,
        change: impl FnOnce(&mut Session),
    ) -> Result<String, AuthError> {
        let hash = p.session_hash()?;
        let mut v = self.volatile();
        let mut s = v.sessions.remove(&hash).ok_or(AuthError::Unauthenticated)?;
        change(&mut s);
        Ok(v.sessions.create(s)?)
    }

    /// Re-authenticates the caller's session for sensitive operations.
    pub fn reauthenticate(
        &self,
        p: &Principal,
        password_text: &str,
        totp: Option<&str>,
    ) -> Result<u64, AuthError> {
        let hash = p.session_hash()?;
        let result = self.verify_credentials(
            p.username.as_str(),
            password_text,
            totp,
            &p.origin,
            "reauth",
        );
        self.record(
            Event::new(
                EventKind::Reauthenticated,
                if result.is_ok() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            )
            .actor(p.username.as_str())
            .source(p.origin.label()),
        );
        result?;
        let until = self.now() + REAUTH_VALIDITY_SECONDS;
        let mut v = self.volatile();
        let s = v
            .sessions
            .get_mut(&hash)
            .ok_or(AuthError::Unauthenticated)?;
        s.reauth_until = Some(until);
        Ok(until)
    }
}
