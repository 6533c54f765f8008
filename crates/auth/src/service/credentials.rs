//! Checking credentials, with all brute-force accounting: the one path for login (one-shot and
//! two-step), re-authentication and password change.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

impl AuthService {
    pub(super) fn exempt_from_account_lock(&self, origin: &Origin) -> bool {
        match origin.source {
            None => origin.channel == Channel::Console,
            Some(addr) => self.access().is_trusted(addr),
        }
    }

    /// Verifies a username, password and TOTP or recovery code with all brute-force accounting.
    /// Used by password change (which then ignores a missing second factor).
    pub(super) fn verify_credentials(
        &self,
        username: &str,
        password_text: &str,
        totp: Option<&str>,
        origin: &Origin,
        purpose: &'static str,
    ) -> Result<User, AuthError> {
        self.verify_password_and_factor(
            username,
            password_text,
            SecondFactor::from_code(totp),
            None,
            origin,
            purpose,
        )
        .map(|(user, _)| user)
    }

    /// Verifies a username, password and second factor with all brute-force accounting: the
    /// one-shot path of login and re-authentication. `key_state` is the challenge a
    /// security-key assertion must answer. Returns the user and which factor was used.
    pub(super) fn verify_password_and_factor(
        &self,
        username: &str,
        password_text: &str,
        factor: SecondFactor<'_>,
        key_state: Option<AuthenticationState>,
        origin: &Origin,
        purpose: &'static str,
    ) -> Result<(User, Option<&'static str>), AuthError> {
        let mut user = self.check_password(username, password_text, origin, purpose)?;
        let mut used = None;
        if user.mfa_enabled() {
            match self.check_factor(&mut user, factor, key_state, origin)? {
                FactorCheck::Missing => return Err(AuthError::MfaRequired),
                FactorCheck::Wrong(reason) => {
                    self.second_factor_failed(username, origin, purpose, reason)?;
                    return Err(AuthError::MfaRequired);
                }
                FactorCheck::Passed(f) => used = Some(f),
            }
        }
        Ok((self.credentials_succeeded(user, origin)?, used))
    }

    /// Refuses at once while the source is throttled, recording the refusal at most once a
    /// minute: a flood of refused attempts must not flood the audit log (the throttling
    /// itself is recorded when it starts).
    pub(super) fn refuse_if_throttled(
        &self,
        username: &str,
        origin: &Origin,
        purpose: &'static str,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let source = SourceKey::of(origin.source);
        let blocked = self.volatile().throttle.blocked(source, now);
        let Some(retry_after) = blocked else {
            return Ok(());
        };
        if self.volatile().throttle.note_refusal(source, now) {
            self.record(
                Event::new(EventKind::LoginFailed, Outcome::Failure)
                    .actor(username)
                    .source(origin.label())
                    .details(json!({"purpose": purpose, "reason": "source_throttled"})),
            );
        }
        Err(AuthError::TooManyAttempts { retry_after })
    }

    /// Checks the password with all brute-force accounting (source throttle, account lock,
    /// unknown users locked like real ones, equal work either way) and returns the usable
    /// account. Clears nothing on success: that waits for the second factor.
    pub(super) fn check_password(
        &self,
        username: &str,
        password_text: &str,
        origin: &Origin,
        purpose: &'static str,
    ) -> Result<User, AuthError> {
        let now = self.now();
        let settings = self.settings();
        self.refuse_if_throttled(username, origin, purpose)?;
        let exempt = self.exempt_from_account_lock(origin);
        let user: Option<User> = match Username::parse(username) {
            Ok(name) => self.store.get(Table::Users, name.as_str())?,
            Err(_) => None,
        };
        // Same work whether or not the user exists, so timing does not reveal accounts.
        let password_ok = match &user {
            Some(u) => password::verify(password_text, &u.password_hash).unwrap_or(false),
            None => password::verify_nonexistent(password_text),
        };
        let locked = !exempt
            && match &user {
                Some(u) => u.locked_until.is_some_and(|t| t > now),
                None => self
                    .volatile()
                    .phantoms
                    .get(username)
                    .is_some_and(|p| p.locked_until > now),
            };
        let reason = if locked {
            Some("account_locked")
        } else if !password_ok {
            Some("wrong_password")
        } else if user.as_ref().is_some_and(|u| u.disabled) {
            Some("account_disabled")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.count_failure(
                username,
                user.is_some(),
                origin,
                &settings,
                now,
                purpose,
                reason,
            )?;
            return Err(AuthError::AuthenticationFailed);
        }
        // Password right, account usable: `user` is Some here because password_ok is false
        // for unknown users.
        let Some(user) = user else {
            return Err(AuthError::AuthenticationFailed);
        };
        if !password::needs_rehash(&user.password_hash) {
            return Ok(user);
        }
        let rehash = password::hash(password_text)?;
        self.modify_user(&user.username, AuthError::AuthenticationFailed, |u| {
            u.password_hash = rehash;
            Ok(())
        })
    }

    /// Counts a wrong second factor like a wrong password.
    pub(super) fn second_factor_failed(
        &self,
        username: &str,
        origin: &Origin,
        purpose: &'static str,
        reason: &'static str,
    ) -> Result<(), AuthError> {
        let settings = self.settings();
        self.count_failure(
            username,
            true,
            origin,
            &settings,
            self.now(),
            purpose,
            reason,
        )
    }

    /// The whole credential was right: the source's failure count goes, and the account's
    /// unless the success came from an exempt path.
    pub(super) fn credentials_succeeded(
        &self,
        user: User,
        origin: &Origin,
    ) -> Result<User, AuthError> {
        self.volatile()
            .throttle
            .succeed(SourceKey::of(origin.source));
        // A success from an exempt path (console, trusted station) leaves the lock that
        // untrusted sources earned in place: the administrator getting in must not hand an
        // attacker a fresh set of attempts.
        let clear_lock = !self.exempt_from_account_lock(origin)
            && (user.failed_logins > 0 || user.lock_count > 0 || user.locked_until.is_some());
        if !clear_lock {
            return Ok(user);
        }
        self.modify_user(&user.username, AuthError::AuthenticationFailed, |u| {
            u.failed_logins = 0;
            u.lock_count = 0;
            u.locked_until = None;
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn count_failure(
        &self,
        username: &str,
        exists: bool,
        origin: &Origin,
        settings: &AuthSettings,
        now: u64,
        purpose: &'static str,
        reason: &'static str,
    ) -> Result<(), AuthError> {
        self.record(
            Event::new(EventKind::LoginFailed, Outcome::Failure)
                .actor(username)
                .source(origin.label())
                .details(json!({"purpose": purpose, "reason": reason})),
        );
        let source = SourceKey::of(origin.source);
        let throttled = self.volatile().throttle.fail(
            source,
            now,
            settings.source_threshold,
            settings.lockout_base_seconds,
            settings.lockout_max_seconds,
        );
        if let Some(secs) = throttled {
            self.record(
                Event::new(EventKind::SourceThrottled, Outcome::Failure)
                    .source(origin.label())
                    .details(json!({"seconds": secs, "threshold": settings.source_threshold})),
            );
        }
        // The console's own failures throttle the console, never the account.
        if origin.channel == Channel::Console || reason == "account_locked" {
            return Ok(());
        }
        let lock = |failed: &mut u32, lock_count: &mut u32| -> Option<u64> {
            *failed += 1;
            if *failed >= settings.lockout_threshold {
                let secs = escalate(
                    settings.lockout_base_seconds,
                    settings.lockout_max_seconds,
                    *lock_count,
                );
                *lock_count += 1;
                *failed = 0;
                Some(secs)
            } else {
                None
            }
        };
        let locked_for = if exists {
            self.store.write(|tx| {
                let Some(mut u) = tx.get::<User>(Table::Users, username)? else {
                    return Ok::<_, AuthError>(None);
                };
                let secs = lock(&mut u.failed_logins, &mut u.lock_count);
                if let Some(s) = secs {
                    u.locked_until = Some(now + s);
                }
                tx.put(Table::Users, username, &u)?;
                Ok(secs)
            })?
        } else {
            let mut v = self.volatile();
            if v.phantoms.len() >= MAX_PHANTOMS && !v.phantoms.contains_key(username) {
                v.phantoms.retain(|_, p| p.locked_until > now);
                if v.phantoms.len() >= MAX_PHANTOMS {
                    v.phantoms.clear();
                }
            }
            let p = v.phantoms.entry(username.to_string()).or_default();
            let secs = lock(&mut p.failed, &mut p.lock_count);
            if let Some(s) = secs {
                p.locked_until = now + s;
            }
            secs
        };
        if let Some(secs) = locked_for {
            self.record(
                Event::new(EventKind::LoginThresholdExceeded, Outcome::Failure)
                    .actor(username)
                    .source(origin.label())
                    .details(
                        json!({"locked_seconds": secs, "threshold": settings.lockout_threshold}),
                    ),
            );
        }
        Ok(())
    }

    /// Checks a second factor (and consumes it: a TOTP step, a recovery code, a security-key
    /// challenge).
    pub(super) fn check_factor(
        &self,
        user: &mut User,
        factor: SecondFactor<'_>,
        key_state: Option<AuthenticationState>,
        origin: &Origin,
    ) -> Result<FactorCheck, AuthError> {
        match factor {
            SecondFactor::None | SecondFactor::Code("") | SecondFactor::SecurityKey("") => {
                Ok(FactorCheck::Missing)
            }
            SecondFactor::Code(code) => Ok(self.check_code(user, code, origin)?.map_or(
                FactorCheck::Wrong("wrong_second_factor"),
                FactorCheck::Passed,
            )),
            SecondFactor::SecurityKey(json) => {
                let state = key_state.ok_or(AuthError::InvalidRequest(Invalid::NoKeyChallenge))?;
                self.check_security_key(user, json, &state)
            }
        }
    }

    /// Checks a TOTP code or a recovery code and consumes it; returns which one matched.
    fn check_code(
        &self,
        user: &mut User,
        code: &str,
        origin: &Origin,
    ) -> Result<Option<&'static str>, AuthError> {
        let now = self.now();
        let is_totp = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if let Some(totp) = user.totp.clone().filter(|t| t.confirmed && is_totp) {
            let Some(step) = totp_match(&totp.secret, code, now, totp.last_step) else {
                return Ok(None);
            };
            self.store.write(|tx| {
                if let Some(mut u) = tx.get::<User>(Table::Users, user.username.as_str())? {
                    if let Some(t) = u.totp.as_mut() {
                        t.last_step = step;
                    }
                    tx.put(Table::Users, u.username.as_str(), &u)?;
                }
                Ok::<_, AuthError>(())
            })?;
            return Ok(Some("totp"));
        }
        let hash = recovery_code_hash(code);
        let used = self.store.write(|tx| {
            let Some(mut u) = tx.get::<User>(Table::Users, user.username.as_str())? else {
                return Ok::<_, AuthError>(false);
            };
            let before = u.recovery_codes.len();
            u.recovery_codes
                .retain(|h| !digest::constant_time_eq(h.as_bytes(), hash.as_bytes()));
            if u.recovery_codes.len() == before {
                return Ok(false);
            }
            let left = u.recovery_codes.len();
            tx.put(Table::Users, u.username.as_str(), &u)?;
            self.record(
                Event::new(EventKind::RecoveryCodeUsed, Outcome::Success)
                    .actor(u.username.as_str())
                    .source(origin.label())
                    .details(json!({"remaining": left})),
            );
            *user = u;
            Ok(true)
        })?;
        Ok(used.then_some("recovery_code"))
    }
}

/// What a second factor proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FactorCheck {
    /// None was given.
    Missing,
    /// It was wrong; the reason for the audit log.
    Wrong(&'static str),
    /// It was right: `totp`, `recovery_code` or `security_key`.
    Passed(&'static str),
}
