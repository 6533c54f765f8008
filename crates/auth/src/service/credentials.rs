//! Checking credentials, with all brute-force accounting: the one path for login, re-authentication and password change.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

impl AuthService {
    fn exempt_from_account_lock(&self, origin: &Origin) -> bool {
        match origin.source {
            None => origin.channel == Channel::Console,
            Some(addr) => self.access().is_trusted(addr),
        }
    }

    /// Verifies a username, password and second factor with all brute-force accounting.
    /// Used by login, re-authentication and password change alike.
    pub(super) fn verify_credentials(
        &self,
        username: &str,
        password_text: &str,
        totp: Option<&str>,
        origin: &Origin,
        purpose: &'static str,
    ) -> Result<User, AuthError> {
        let now = self.now();
        let settings = self.settings();
        let source = SourceKey::of(origin.source);
        let blocked = self.volatile().throttle.blocked(source, now);
        if let Some(retry_after) = blocked {
            // One record per source per minute: a flood of refused attempts must not flood
            // the audit log (the throttling itself is recorded when it starts).
            if !self.volatile().throttle.note_refusal(source, now) {
                return Err(AuthError::TooManyAttempts { retry_after });
            }
            self.record(
                Event::new(EventKind::LoginFailed, Outcome::Failure)
                    .actor(username)
                    .source(origin.label())
                    .details(json!({"purpose": purpose, "reason": "source_throttled"})),
            );
            return Err(AuthError::TooManyAttempts { retry_after });
        }
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
        let Some(mut user) = user else {
            return Err(AuthError::AuthenticationFailed);
        };
        if user.mfa_enabled() {
            let Some(code) = totp.filter(|c| !c.is_empty()) else {
                return Err(AuthError::MfaRequired);
            };
            if !self.check_second_factor(&mut user, code, origin, now)? {
                self.count_failure(
                    username,
                    true,
                    origin,
                    &settings,
                    now,
                    purpose,
                    "wrong_second_factor",
                )?;
                return Err(AuthError::MfaRequired);
            }
        }
        self.volatile().throttle.succeed(source);
        // A success from an exempt path (console, trusted station) leaves the lock that
        // untrusted sources earned in place: the administrator getting in must not hand an
        // attacker a fresh set of attempts.
        let clear_lock = !exempt
            && (user.failed_logins > 0 || user.lock_count > 0 || user.locked_until.is_some());
        let rehash = password::needs_rehash(&user.password_hash)
            .then(|| password::hash(password_text))
            .transpose()?;
        if clear_lock || rehash.is_some() {
            user = self.modify_user(&user.username, AuthError::AuthenticationFailed, |u| {
                if clear_lock {
                    u.failed_logins = 0;
                    u.lock_count = 0;
                    u.locked_until = None;
                }
                if let Some(h) = &rehash {
                    u.password_hash.clone_from(h);
                }
                Ok(())
            })?;
        }
        Ok(user)
    }

    #[allow(clippy::too_many_arguments)]
    fn count_failure(
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

    /// Checks a TOTP code or a recovery code and consumes it; returns whether it was valid.
    fn check_second_factor(
        &self,
        user: &mut User,
        code: &str,
        origin: &Origin,
        now: u64,
    ) -> Result<bool, AuthError> {
        let Some(totp) = user.totp.clone() else {
            return Ok(false);
        };
        let is_totp = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if is_totp {
            let Some(step) = totp_match(&totp.secret, code, now, totp.last_step) else {
                return Ok(false);
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
            return Ok(true);
        }
        let hash = recovery_code_hash(code);
        let used = self.store.write(|tx| {
            let Some(mut u) = tx.get::<User>(Table::Users, user.username.as_str())? else {
                return Ok::<_, AuthError>(false);
            };
            let Some(t) = u.totp.as_mut() else {
                return Ok(false);
            };
            let before = t.recovery_codes.len();
            t.recovery_codes
                .retain(|h| !digest::constant_time_eq(h.as_bytes(), hash.as_bytes()));
            if t.recovery_codes.len() == before {
                return Ok(false);
            }
            let left = t.recovery_codes.len();
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
        Ok(used)
    }
}
