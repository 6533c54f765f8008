//! Login (one-shot and two-step), session authentication, logout, listing and revoking sessions,
//! re-authentication.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

impl AuthService {
    /// Logs in and opens a session in one request (the JSON API): password and, when the
    /// account has a second factor, a TOTP or recovery code. An account with only security
    /// keys can log in here with a recovery code; security keys need the two-step login.
    pub fn login(
        &self,
        username: &str,
        password_text: &str,
        totp: Option<&str>,
        origin: Origin,
    ) -> Result<LoginOutcome, AuthError> {
        let (user, factor) = self.verify_password_and_factor(
            username,
            password_text,
            SecondFactor::from_code(totp),
            None,
            &origin,
            "login",
        )?;
        self.open_session(&user, origin, factor)
    }

    /// Step 1 of an interactive login: checks the password with all brute-force accounting
    /// (the same path as [`Self::login`]). Without a second factor the session opens at once;
    /// otherwise the answer is a ticket for step 2 ([`Self::login_second_factor`]): a random
    /// secret of which only the SHA-256 is kept, in memory, for at most five minutes, bound to
    /// this user, password and origin (channel and source address), good for three attempts
    /// and one success.
    pub fn login_password(
        &self,
        username: &str,
        password_text: &str,
        origin: Origin,
    ) -> Result<LoginStep, AuthError> {
        let user = self.check_password(username, password_text, &origin, "login")?;
        if !user.mfa_enabled() {
            let user = self.credentials_succeeded(user, &origin)?;
            return Ok(LoginStep::Done(self.open_session(&user, origin, None)?));
        }
        let now = self.now();
        let methods = SecondFactorMethods::of(&user);
        let ticket = HEXLOWER.encode(&random::bytes::<32>()?);
        let expires_at = now + TICKET_SECONDS;
        self.volatile().tickets.insert(
            secret_hash(&ticket),
            Ticket {
                username: user.username.clone(),
                password: digest::sha256(user.password_hash.as_bytes()),
                channel: origin.channel,
                source: origin.source.map(crate::settings::canonical),
                serial: 0,
                expires_at,
                attempts_left: TICKET_ATTEMPTS,
                key_state: None,
            },
            now,
        );
        Ok(LoginStep::SecondFactor(PendingLogin {
            ticket,
            methods,
            expires_at,
        }))
    }

    /// The WebAuthn request (options for `navigator.credentials.get`) for a pending login.
    /// The challenge is kept with the ticket; a new call replaces it.
    pub fn login_security_key_challenge(
        &self,
        ticket: &str,
        origin: Origin,
    ) -> Result<serde_json::Value, AuthError> {
        let key = secret_hash(ticket);
        let now = self.now();
        let username = self
            .volatile()
            .tickets
            .get_mut(&key, &origin, now)
            .map(|t| t.username.clone())
            .ok_or(AuthError::Unauthenticated)?;
        let user = self
            .user(&username)
            .map_err(|_| AuthError::Unauthenticated)?;
        let (request, state) = self.authentication_challenge(&user)?;
        let mut v = self.volatile();
        let t = v
            .tickets
            .get_mut(&key, &origin, now)
            .ok_or(AuthError::Unauthenticated)?;
        t.key_state = Some(state);
        Ok(request)
    }

    /// Step 2 of an interactive login: completes a pending login with a TOTP or recovery code
    /// or a security-key assertion (`PublicKeyCredential` JSON from
    /// `navigator.credentials.get`). A wrong factor counts as a failed login and uses up one
    /// of the ticket's attempts; an unknown, expired or foreign ticket is `Unauthenticated`.
    pub fn login_second_factor(
        &self,
        ticket: &str,
        factor: SecondFactor<'_>,
        origin: Origin,
    ) -> Result<LoginOutcome, AuthError> {
        let key = secret_hash(ticket);
        let now = self.now();
        let username = self
            .volatile()
            .tickets
            .get_mut(&key, &origin, now)
            .map(|t| t.username.clone())
            .ok_or(AuthError::Unauthenticated)?;
        self.refuse_if_throttled(username.as_str(), &origin, "login")?;
        let (password, key_state, removed) = {
            let mut v = self.volatile();
            let t = v
                .tickets
                .get_mut(&key, &origin, now)
                .ok_or(AuthError::Unauthenticated)?;
            let key_state = match factor {
                SecondFactor::None | SecondFactor::Code("") | SecondFactor::SecurityKey("") => {
                    return Err(AuthError::MfaRequired);
                }
                SecondFactor::Code(_) => None,
                // Each challenge answers once, right or wrong, so an assertion cannot be
                // replayed against it.
                SecondFactor::SecurityKey(_) => Some(
                    t.key_state
                        .take()
                        .ok_or(AuthError::InvalidRequest(Invalid::NoKeyChallenge))?,
                ),
            };
            // The attempt is used up before checking, so parallel requests cannot exceed the
            // limit.
            t.attempts_left = t.attempts_left.saturating_sub(1);
            let password = t.password;
            let removed = t.attempts_left == 0 && v.tickets.remove(&key);
            (password, key_state, removed)
        };
        let end_ticket = || self.volatile().tickets.remove(&key);
        let user: Option<User> = self.store.get(Table::Users, username.as_str())?;
        // A password changed or reset since step 1 ends the ticket (a reset is what follows a
        // compromise).
        let Some(mut user) =
            user.filter(|u| digest::sha256(u.password_hash.as_bytes()) == password)
        else {
            end_ticket();
            return Err(AuthError::Unauthenticated);
        };
        let locked =
            !self.exempt_from_account_lock(&origin) && user.locked_until.is_some_and(|t| t > now);
        let refusal = if locked {
            Some("account_locked")
        } else if user.disabled {
            Some("account_disabled")
        } else {
            None
        };
        if let Some(reason) = refusal {
            end_ticket();
            self.count_failure(
                username.as_str(),
                true,
                &origin,
                &self.settings(),
                now,
                "login",
                reason,
            )?;
            return Err(AuthError::AuthenticationFailed);
        }
        match self.check_factor(&mut user, factor, key_state, &origin)? {
            FactorCheck::Passed(f) => {
                // Single use: of two parallel right answers only the one that ends the
                // ticket opens a session.
                if !removed && !end_ticket() {
                    return Err(AuthError::Unauthenticated);
                }
                let user = self.credentials_succeeded(user, &origin)?;
                self.open_session(&user, origin, Some(f))
            }
            FactorCheck::Missing => Err(AuthError::MfaRequired),
            FactorCheck::Wrong(reason) => {
                self.second_factor_failed(username.as_str(), &origin, "login", reason)?;
                Err(AuthError::MfaRequired)
            }
        }
    }

    /// Opens a session for a user whose credentials were verified.
    fn open_session(
        &self,
        user: &User,
        origin: Origin,
        factor: Option<&'static str>,
    ) -> Result<LoginOutcome, AuthError> {
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
        let info = self.session_info(&session, user, &settings);
        let secret = self.volatile().sessions.create(session)?;
        self.record(
            Event::new(EventKind::LoginSucceeded, Outcome::Success)
                .actor(user.username.as_str())
                .source(origin.label())
                .details(json!({"channel": origin.channel, "mfa": user.mfa_enabled(),
                    "factor": factor, "restriction": restriction})),
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

    /// Re-authenticates the caller's session for sensitive operations: the password and, when
    /// the account has one, a second factor. A security-key assertion answers the challenge
    /// from [`Self::reauth_security_key_challenge`].
    pub fn reauthenticate(
        &self,
        p: &Principal,
        password_text: &str,
        factor: SecondFactor<'_>,
    ) -> Result<u64, AuthError> {
        let hash = p.session_hash()?;
        let key_state = match factor {
            SecondFactor::SecurityKey(_) => {
                let now = self.now();
                self.volatile().reauth_challenges.take(&hash, now)
            }
            _ => None,
        };
        let result = self.verify_password_and_factor(
            p.username.as_str(),
            password_text,
            factor,
            key_state,
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
            .source(p.origin.label())
            .details(json!({"factor": result.as_ref().ok().and_then(|(_, f)| *f)})),
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

/// How long a pending login waits for its second factor.
const TICKET_SECONDS: u64 = 300;
/// Second-factor attempts per pending login.
const TICKET_ATTEMPTS: u8 = 3;
/// Most pending logins in memory; beyond it the oldest goes. Only a right password creates
/// one, but a flood must not grow memory.
const MAX_TICKETS: usize = 4096;
/// Most pending logins per user, so one account cannot push out everyone else's.
const MAX_TICKETS_PER_USER: usize = 8;

/// A login whose password was right, awaiting its second factor.
#[derive(Debug)]
pub(super) struct Ticket {
    username: Username,
    /// SHA-256 of the password hash at step 1: a password change or reset ends the ticket.
    password: [u8; 32],
    channel: Channel,
    /// Canonical source address.
    source: Option<IpAddr>,
    /// Issue order, for pushing out the oldest (many share a second).
    serial: u64,
    expires_at: u64,
    attempts_left: u8,
    /// The security-key challenge issued for this login, if any.
    key_state: Option<AuthenticationState>,
}

/// Pending logins by the SHA-256 of their ticket.
#[derive(Debug, Default)]
pub(super) struct Tickets {
    by_hash: HashMap<[u8; 32], Ticket>,
    issued: u64,
}

impl Tickets {
    fn insert(&mut self, hash: [u8; 32], mut ticket: Ticket, now: u64) {
        self.issued += 1;
        ticket.serial = self.issued;
        self.by_hash.retain(|_, t| t.expires_at > now);
        let oldest_of = |by_hash: &HashMap<[u8; 32], Ticket>, user: Option<&Username>| {
            by_hash
                .iter()
                .filter(|(_, t)| user.is_none_or(|u| &t.username == u))
                .min_by_key(|(_, t)| t.serial)
                .map(|(h, _)| *h)
        };
        let of_user = self
            .by_hash
            .values()
            .filter(|t| t.username == ticket.username)
            .count();
        if of_user >= MAX_TICKETS_PER_USER
            && let Some(h) = oldest_of(&self.by_hash, Some(&ticket.username))
        {
            self.by_hash.remove(&h);
        }
        if self.by_hash.len() >= MAX_TICKETS
            && let Some(h) = oldest_of(&self.by_hash, None)
        {
            self.by_hash.remove(&h);
        }
        self.by_hash.insert(hash, ticket);
    }

    /// The live ticket for `hash`, if it was issued to this origin. An expired one is dropped.
    fn get_mut(&mut self, hash: &[u8; 32], origin: &Origin, now: u64) -> Option<&mut Ticket> {
        if self.by_hash.get(hash).is_some_and(|t| t.expires_at <= now) {
            self.by_hash.remove(hash);
            return None;
        }
        let source = origin.source.map(crate::settings::canonical);
        self.by_hash
            .get_mut(hash)
            .filter(|t| t.channel == origin.channel && t.source == source)
    }

    /// Ends a ticket; true if it existed.
    fn remove(&mut self, hash: &[u8; 32]) -> bool {
        self.by_hash.remove(hash).is_some()
    }

    /// How many are held (for tests of the caps).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_hash.len()
    }
}

#[cfg(test)]
mod caps {
    use super::*;

    fn ticket(user: &str, expires_at: u64) -> Ticket {
        Ticket {
            username: Username::parse(user).unwrap(),
            password: [0; 32],
            channel: Channel::Https,
            source: None,
            serial: 0,
            expires_at,
            attempts_left: TICKET_ATTEMPTS,
            key_state: None,
        }
    }

    fn key(i: usize) -> [u8; 32] {
        digest::sha256(&i.to_be_bytes())
    }

    /// A flood of pending logins keeps memory bounded and the newest ones; expired ones go.
    #[test]
    fn a_flood_of_pending_logins_is_capped() {
        let mut t = Tickets::default();
        let https = Origin::https("192.0.2.1".parse().unwrap());
        let any = Origin {
            source: None,
            ..https
        };
        for i in 0..MAX_TICKETS + 100 {
            t.insert(key(i), ticket(&format!("u{}", i % 1000), 500), 100);
        }
        assert_eq!(t.len(), MAX_TICKETS);
        assert!(t.get_mut(&key(0), &any, 100).is_none(), "oldest kept");
        assert!(t.get_mut(&key(MAX_TICKETS + 99), &any, 100).is_some());
        assert!(t.get_mut(&key(MAX_TICKETS + 99), &https, 100).is_none());
        t.insert(key(usize::MAX), ticket("late", 900), 500);
        assert_eq!(t.len(), 1, "expired tickets kept");
    }
}
