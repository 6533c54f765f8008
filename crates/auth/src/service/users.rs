//! User administration and credential resets.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

impl AuthService {
    pub(super) fn user(&self, name: &Username) -> Result<User, AuthError> {
        self.store
            .get(Table::Users, name.as_str())?
            .ok_or(AuthError::NotFound("user"))
    }

    /// Every user, for administrators.
    pub fn list_users(&self) -> Result<Vec<UserListing>, AuthError> {
        let now = self.now();
        Ok(self
            .store
            .list::<User>(Table::Users)?
            .into_iter()
            .map(|(_, u)| UserListing {
                mfa_enabled: u.mfa_enabled(),
                username: u.username,
                role: u.role,
                disabled: u.disabled,
                must_change_password: u.must_change_password,
                locked_until: u.locked_until.filter(|t| *t > now),
                created_at: u.created_at,
            })
            .collect())
    }

    /// Creates a user. Without a password, a one-time password is generated and returned.
    /// Either way the user must change it at first login.
    pub fn create_user(
        &self,
        p: &Principal,
        username: Username,
        role: Role,
        initial_password: Option<&str>,
    ) -> Result<Option<String>, AuthError> {
        if !p.role.can_grant(role) {
            return Err(AuthError::Forbidden);
        }
        let generated = match initial_password {
            Some(pw) => {
                self.check_policy(&username, pw)?;
                None
            }
            None => Some(generate_password(&self.facts, username.as_str())?),
        };
        let hash = password::hash(
            initial_password
                .or(generated.as_deref())
                .unwrap_or_default(),
        )?;
        let now = self.now();
        self.store.write(|tx| {
            if tx.get::<User>(Table::Users, username.as_str())?.is_some() {
                return Err(AuthError::Conflict(Conflict::UserExists(username.clone())));
            }
            tx.put(
                Table::Users,
                username.as_str(),
                &User::new(username.clone(), role, hash, now),
            )?;
            Ok(())
        })?;
        self.record_by(
            p,
            EventKind::UserCreated,
            json!({"user": username, "role": role}),
        );
        Ok(generated)
    }

    /// Refuses a change that would leave no enabled administrator.
    fn keep_an_admin(
        users: &[(String, User)],
        changing: &Username,
        still_admin: bool,
    ) -> Result<(), AuthError> {
        let others = users
            .iter()
            .any(|(_, u)| &u.username != changing && u.role == Role::Admin && !u.disabled);
        if still_admin || others {
            Ok(())
        } else {
            Err(AuthError::Conflict(Conflict::LastAdmin))
        }
    }

    /// Changes a user's role or enabled state. Their sessions end.
    pub fn update_user(
        &self,
        p: &Principal,
        username: &Username,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<(), AuthError> {
        if role.is_some_and(|r| !p.role.can_grant(r)) {
            return Err(AuthError::Forbidden);
        }
        self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, username.as_str())?
                .ok_or(AuthError::NotFound("user"))?;
            if let Some(r) = role {
                u.role = r;
            }
            if let Some(d) = disabled {
                u.disabled = d;
            }
            Self::keep_an_admin(
                &tx.list::<User>(Table::Users)?,
                username,
                u.role == Role::Admin && !u.disabled,
            )?;
            tx.put(Table::Users, username.as_str(), &u)?;
            Ok::<_, AuthError>(())
        })?;
        let ended = self.volatile().sessions.remove_user(username, None);
        self.record_by(
            p,
            EventKind::UserChanged,
            json!({"user": username, "role": role, "disabled": disabled,
                    "sessions_ended": ended}),
        );
        Ok(())
    }

    /// Deletes a user, their tokens and their sessions.
    pub fn delete_user(&self, p: &Principal, username: &Username) -> Result<(), AuthError> {
        if username == &p.username {
            return Err(AuthError::Conflict(Conflict::DeleteSelf));
        }
        self.store.write(|tx| {
            if tx.get::<User>(Table::Users, username.as_str())?.is_none() {
                return Err(AuthError::NotFound("user"));
            }
            Self::keep_an_admin(&tx.list::<User>(Table::Users)?, username, false)?;
            tx.delete(Table::Users, username.as_str())?;
            Self::delete_tokens_of(tx, username)?;
            Ok(())
        })?;
        self.volatile().sessions.remove_user(username, None);
        self.record_by(p, EventKind::UserDeleted, json!({"user": username}));
        Ok(())
    }

    /// Resets another user's password to a generated one-time password (and optionally
    /// removes their second factor). Also clears a lock. Their sessions end.
    pub fn reset_credentials(
        &self,
        p: &Principal,
        username: &Username,
        reset_mfa: bool,
    ) -> Result<String, AuthError> {
        self.reset(username, reset_mfa, false, p.username.as_str(), &p.origin)
    }

    /// The console's recovery path (S3.1-03 R4): resets a user's password, clears any lock and
    /// re-enables the account. Only callable with the console origin.
    pub fn console_recover(
        &self,
        origin: &Origin,
        username: &Username,
        reset_mfa: bool,
    ) -> Result<String, AuthError> {
        if origin.channel != Channel::Console {
            return Err(AuthError::Forbidden);
        }
        self.reset(username, reset_mfa, true, "console", origin)
    }

    fn reset(
        &self,
        username: &Username,
        reset_mfa: bool,
        enable: bool,
        by: &str,
        origin: &Origin,
    ) -> Result<String, AuthError> {
        let one_time = generate_password(&self.facts, username.as_str())?;
        let hash = password::hash(&one_time)?;
        let now = self.now();
        // A reset is what one does after a compromise: the credential, the sessions and the
        // API tokens all go, in one transaction.
        let tokens_revoked = self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, username.as_str())?
                .ok_or(AuthError::NotFound("user"))?;
            u.password_hash = hash;
            u.must_change_password = true;
            u.password_changed_at = now;
            u.failed_logins = 0;
            u.lock_count = 0;
            u.locked_until = None;
            if reset_mfa {
                u.totp = None;
                u.security_keys.clear();
                u.recovery_codes.clear();
            }
            if enable {
                u.disabled = false;
            }
            tx.put(Table::Users, username.as_str(), &u)?;
            Self::delete_tokens_of(tx, username)
        })?;
        self.volatile().sessions.remove_user(username, None);
        self.record(
            Event::new(EventKind::CredentialReset, Outcome::Success)
                .actor(by)
                .source(origin.label())
                .details(json!({"user": username, "mfa_removed": reset_mfa,
                    "tokens_revoked": tokens_revoked, "path": match origin.channel {
                    Channel::Console => "console_recovery",
                    Channel::Https => "admin_reset",
                }})),
        );
        Ok(one_time)
    }
}
