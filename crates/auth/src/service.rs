//! The authentication service: the one place that decides who may do what.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use mamori_audit::{Event, EventKind, Outcome, Sink};
use mamori_crypto::{digest, otp, password, random};
use mamori_password_policy::{Context as PolicyContext, Policy};
use mamori_store::{Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::AuthError;
use crate::model::{Channel, Permission, Role, Totp, User, Username};
use crate::sessions::{Restriction, Session, Sessions, expiry, secret_hash};
use crate::settings::{AccessPolicy, AuthSettings};
use crate::throttle::{SourceKey, SourceThrottle, escalate};
use crate::{Clock, GENERATED_PASSWORD_LEN, REAUTH_VALIDITY_SECONDS, UNAMBIGUOUS_ALPHABET};

const SETTINGS_AUTH: &str = "auth";
const SETTINGS_ACCESS: &str = "access";
const MAX_TOKENS_PER_USER: usize = 20;
const RECOVERY_CODES: usize = 10;
const TOKEN_PREFIX: &str = "mamori_";
/// Most unknown usernames whose failures are remembered (so they "lock" like real ones).
const MAX_PHANTOMS: usize = 16_384;

/// Public facts about the device that a password must not be built on (S3.1-02 D).
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    /// Model name.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Host name.
    pub hostname: String,
    /// MAC addresses of the device's interfaces.
    pub macs: Vec<String>,
    /// Wi-Fi SSIDs the device broadcasts.
    pub ssids: Vec<String>,
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// HTTPS or console.
    pub channel: Channel,
    /// The peer address (none on the console).
    pub source: Option<IpAddr>,
}

impl Origin {
    /// The local console.
    pub const CONSOLE: Origin = Origin {
        channel: Channel::Console,
        source: None,
    };

    /// A remote HTTPS peer.
    pub fn https(addr: IpAddr) -> Self {
        Origin {
            channel: Channel::Https,
            source: Some(addr),
        }
    }

    /// The text used for the audit log's source field.
    pub fn label(&self) -> String {
        match self.source {
            Some(a) => crate::settings::canonical(a).to_string(),
            None => "console".into(),
        }
    }
}

/// How a principal authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// An interactive session.
    Session {
        /// Hash of the session secret.
        hash: [u8; 32],
        /// The session's public handle.
        public_id: String,
    },
    /// An API token.
    Token {
        /// The token's public id.
        id: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who.
    pub username: Username,
    /// With which role (for a token, the token's role).
    pub role: Role,
    /// By which means.
    pub via: Via,
    /// From where.
    pub origin: Origin,
    /// What the session is limited to, if anything.
    pub restriction: Option<Restriction>,
    /// Until when a re-authentication is valid.
    pub reauth_until: Option<u64>,
}

/// What an endpoint requires of its caller; declared once per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The permission.
    pub permission: Permission,
    /// Whether a recent re-authentication is needed.
    pub reauth: bool,
    /// Which session restrictions still allow the endpoint.
    pub allowed_when: Allowed,
}

/// Which restricted sessions may use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allowed {
    /// Only unrestricted sessions.
    Unrestricted,
    /// Also sessions that must change their password.
    DuringPasswordChange,
    /// Also sessions that must enrol MFA.
    DuringMfaEnrollment,
    /// Any session, restricted or not (logout, who-am-I).
    Always,
}

impl Principal {
    /// Checks a requirement against this principal.
    pub fn check(&self, req: Requirement, now: u64) -> Result<(), AuthError> {
        match (self.restriction, req.allowed_when) {
            (None, _) | (_, Allowed::Always) => {}
            (Some(Restriction::PasswordChangeRequired), Allowed::DuringPasswordChange) => {}
            (Some(Restriction::MfaEnrollmentRequired), Allowed::DuringMfaEnrollment) => {}
            (Some(Restriction::MfaEnrollmentRequired), Allowed::DuringPasswordChange) => {}
            (Some(Restriction::PasswordChangeRequired), _) => {
                return Err(AuthError::PasswordChangeRequired);
            }
            (Some(Restriction::MfaEnrollmentRequired), _) => {
                return Err(AuthError::MfaEnrollmentRequired);
            }
        }
        if !self.role.allows(req.permission) {
            return Err(AuthError::Forbidden);
        }
        if req.reauth {
            if matches!(self.via, Via::Token { .. }) {
                return Err(AuthError::TokenNotAllowed);
            }
            if self.reauth_until.is_none_or(|t| t <= now) {
                return Err(AuthError::ReauthRequired);
            }
        }
        Ok(())
    }

    fn session_hash(&self) -> Result<[u8; 32], AuthError> {
        match &self.via {
            Via::Session { hash, .. } => Ok(*hash),
            Via::Token { .. } => Err(AuthError::TokenNotAllowed),
        }
    }
}

/// The result of a successful login.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The session secret (cookie value). Shown once.
    pub secret: String,
    /// The session's view.
    pub session: SessionInfo,
}

/// What a client may know about its session.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionInfo {
    /// Who.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Must change the password before anything else.
    pub must_change_password: bool,
    /// Must enrol MFA before anything else.
    pub mfa_enrollment_required: bool,
    /// A second factor is enrolled.
    pub mfa_enabled: bool,
    /// Idle timeout in seconds.
    pub idle_timeout_seconds: u64,
    /// Unix time at which the session ends at the latest.
    pub expires_at: u64,
    /// Unix time until which a re-authentication is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reauth_valid_until: Option<u64>,
    /// How the session was opened.
    pub channel: Channel,
}

/// A session as listed to its owner.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionListing {
    /// Public handle.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub last_seen_at: u64,
    /// Source address, or `console`.
    pub source: String,
    /// Channel.
    pub channel: Channel,
    /// The session making this request.
    pub current: bool,
}

/// A user as listed to an administrator.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UserListing {
    /// Name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Disabled.
    pub disabled: bool,
    /// Second factor enrolled.
    pub mfa_enabled: bool,
    /// Must change password at next login.
    pub must_change_password: bool,
    /// Locked for untrusted network logins until this unix time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
}

/// A stored API token (only its hash is kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    id: String,
    name: String,
    username: Username,
    role: Role,
    created_at: u64,
    expires_at: u64,
}

/// An API token as listed to its owner.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TokenListing {
    /// Public id.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Unix seconds, since the daemon started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
}

/// A newly created token; the secret is shown once.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// The bearer token.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// A TOTP enrolment to show to the user once.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TotpEnrollment {
    /// The secret in base32 for manual entry.
    pub secret: String,
    /// The `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

#[derive(Debug, Default, Clone, Copy)]
struct Phantom {
    failed: u32,
    lock_count: u32,
    locked_until: u64,
}

#[derive(Debug, Default)]
struct Volatile {
    sessions: Sessions,
    throttle: SourceThrottle,
    phantoms: HashMap<String, Phantom>,
    token_last_used: HashMap<String, u64>,
    tokens_seen: HashSet<String>,
}

/// The authentication service.
pub struct AuthService {
    store: Arc<Store>,
    audit: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    facts: DeviceFacts,
    settings: RwLock<AuthSettings>,
    access: RwLock<AccessPolicy>,
    volatile: Mutex<Volatile>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

/// A freshly generated password that passes the policy, for labels, resets and recovery.
pub fn generate_password(facts: &DeviceFacts, username: &str) -> Result<String, AuthError> {
    let policy = Policy::default();
    loop {
        let pw = random::string(UNAMBIGUOUS_ALPHABET, GENERATED_PASSWORD_LEN)?;
        if policy.check(&pw, &policy_context(facts, username)).is_ok() {
            return Ok(pw);
        }
    }
}

fn policy_context<'a>(facts: &'a DeviceFacts, username: &'a str) -> PolicyContext<'a> {
    PolicyContext {
        username,
        model: &facts.model,
        serial: &facts.serial,
        hostname: &facts.hostname,
        macs: &facts.macs,
        ssids: &facts.ssids,
    }
}

fn token_key(token: &str) -> String {
    HEXLOWER.encode(&digest::sha256(token.as_bytes()))
}

fn recovery_code_hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect();
    HEXLOWER.encode(&digest::sha256(normalised.as_bytes()))
}

impl AuthService {
    /// Creates the service over an opened store.
    pub fn new(
        store: Arc<Store>,
        audit: Arc<dyn Sink>,
        clock: Arc<dyn Clock>,
        facts: DeviceFacts,
    ) -> Result<Self, AuthError> {
        let settings = store
            .get(Table::Settings, SETTINGS_AUTH)?
            .unwrap_or_default();
        let access = store
            .get(Table::Settings, SETTINGS_ACCESS)?
            .unwrap_or_default();
        Ok(Self {
            store,
            audit,
            clock,
            facts,
            settings: RwLock::new(settings),
            access: RwLock::new(access),
            volatile: Mutex::new(Volatile::default()),
        })
    }

    fn volatile(&self) -> MutexGuard<'_, Volatile> {
        // A panic while holding the lock cannot leave the maps in a state worse than
        // "some counters are off", so keep serving.
        self.volatile.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current authentication settings.
    pub fn settings(&self) -> AuthSettings {
        self.settings
            .read()
            .map_or_else(|p| p.into_inner().clone(), |s| s.clone())
    }

    /// The current management access policy.
    pub fn access(&self) -> AccessPolicy {
        self.access
            .read()
            .map_or_else(|p| p.into_inner().clone(), |s| s.clone())
    }

    /// The current time according to the service's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    fn record(&self, event: Event) {
        self.audit.record(event);
    }

    // ---------------------------------------------------------------- provisioning

    /// Creates the initial `admin` account with the label password, if no user exists yet.
    /// Returns whether it was created.
    pub fn create_initial_admin(&self, label_password_hash: &str) -> Result<bool, AuthError> {
        let now = self.now();
        self.store.write(|tx| {
            if !tx.list::<User>(Table::Users)?.is_empty() {
                return Ok(false);
            }
            let admin = User::initial_admin(label_password_hash.to_string(), now);
            tx.put(Table::Users, admin.username.as_str(), &admin)?;
            Ok::<_, AuthError>(true)
        })
    }

    // ---------------------------------------------------------------- credentials

    fn exempt_from_account_lock(&self, origin: &Origin) -> bool {
        match origin.source {
            None => origin.channel == Channel::Console,
            Some(addr) => self.access().is_trusted(addr),
        }
    }

    /// Verifies a username, password and second factor with all brute-force accounting.
    /// Used by login, re-authentication and password change alike.
    fn verify_credentials(
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
        if let Some(retry_after) = self.volatile().throttle.blocked(source, now) {
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
        if user.failed_logins > 0
            || user.lock_count > 0
            || user.locked_until.is_some()
            || password::needs_rehash(&user.password_hash)
        {
            let rehash = password::needs_rehash(&user.password_hash)
                .then(|| password::hash(password_text))
                .transpose()?;
            user = self.store.write(|tx| {
                let mut u: User = tx
                    .get(Table::Users, user.username.as_str())?
                    .ok_or(AuthError::AuthenticationFailed)?;
                u.failed_logins = 0;
                u.lock_count = 0;
                u.locked_until = None;
                if let Some(h) = &rehash {
                    u.password_hash.clone_from(h);
                }
                tx.put(Table::Users, u.username.as_str(), &u)?;
                Ok::<_, AuthError>(u)
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

    // ---------------------------------------------------------------- sessions

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

    fn session_info(&self, s: &Session, user: &User, settings: &AuthSettings) -> SessionInfo {
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
        self.record(
            Event::new(EventKind::Logout, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label()),
        );
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
        self.record(
            Event::new(EventKind::SessionRevoked, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"session": public_id})),
        );
        Ok(())
    }

    /// Replaces the caller's session with a new id, carrying its state over with `change`
    /// applied. Used whenever a session gains privilege (no fixation).
    fn rotate_session(
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

    // ---------------------------------------------------------------- passwords

    fn check_policy(&self, username: &Username, new_password: &str) -> Result<(), AuthError> {
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
            return Err(AuthError::InvalidRequest(
                "the new password must differ from the current one".into(),
            ));
        }
        self.check_policy(&p.username, new_password)?;
        let new_hash = password::hash(new_password)?;
        let now = self.now();
        self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, p.username.as_str())?
                .ok_or(AuthError::Unauthenticated)?;
            u.password_hash = new_hash;
            u.must_change_password = false;
            u.password_changed_at = now;
            tx.put(Table::Users, p.username.as_str(), &u)?;
            Ok::<_, AuthError>(())
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
        self.record(
            Event::new(EventKind::PasswordChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"other_sessions_ended": ended})),
        );
        Ok(secret)
    }

    // ---------------------------------------------------------------- users

    fn user(&self, name: &Username) -> Result<User, AuthError> {
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
                return Err(AuthError::Conflict(format!(
                    "user {username} already exists"
                )));
            }
            tx.put(
                Table::Users,
                username.as_str(),
                &User::new(username.clone(), role, hash, now),
            )?;
            Ok(())
        })?;
        self.record(
            Event::new(EventKind::UserCreated, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"user": username, "role": role})),
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
            Err(AuthError::Conflict(
                "this would leave the device without an enabled administrator".into(),
            ))
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
        self.record(
            Event::new(EventKind::UserChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"user": username, "role": role, "disabled": disabled,
                    "sessions_ended": ended})),
        );
        Ok(())
    }

    /// Deletes a user, their tokens and their sessions.
    pub fn delete_user(&self, p: &Principal, username: &Username) -> Result<(), AuthError> {
        if username == &p.username {
            return Err(AuthError::Conflict(
                "you cannot delete your own account".into(),
            ));
        }
        self.store.write(|tx| {
            if tx.get::<User>(Table::Users, username.as_str())?.is_none() {
                return Err(AuthError::NotFound("user"));
            }
            Self::keep_an_admin(&tx.list::<User>(Table::Users)?, username, false)?;
            tx.delete(Table::Users, username.as_str())?;
            for (key, t) in tx.list::<TokenRecord>(Table::Tokens)? {
                if &t.username == username {
                    tx.delete(Table::Tokens, &key)?;
                }
            }
            Ok(())
        })?;
        self.volatile().sessions.remove_user(username, None);
        self.record(
            Event::new(EventKind::UserDeleted, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"user": username})),
        );
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
    ) -> Result<String, AuthError> {
        if origin.channel != Channel::Console {
            return Err(AuthError::Forbidden);
        }
        self.reset(username, false, true, "console", origin)
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
        self.store.write(|tx| {
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
            }
            if enable {
                u.disabled = false;
            }
            tx.put(Table::Users, username.as_str(), &u)?;
            Ok::<_, AuthError>(())
        })?;
        self.volatile().sessions.remove_user(username, None);
        self.record(
            Event::new(EventKind::CredentialReset, Outcome::Success)
                .actor(by)
                .source(origin.label())
                .details(json!({"user": username, "mfa_removed": reset_mfa, "path": match origin.channel {
                    Channel::Console => "console_recovery",
                    Channel::Https => "admin_reset",
                }})),
        );
        Ok(one_time)
    }

    // ---------------------------------------------------------------- MFA

    /// Starts TOTP enrolment for the caller. The factor is pending until verified.
    pub fn totp_enroll(&self, p: &Principal) -> Result<TotpEnrollment, AuthError> {
        p.session_hash()?;
        let secret = random::bytes::<32>()?.to_vec();
        self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, p.username.as_str())?
                .ok_or(AuthError::Unauthenticated)?;
            if u.mfa_enabled() {
                return Err(AuthError::Conflict(
                    "a second factor is already enrolled; disable it first".into(),
                ));
            }
            u.totp = Some(Totp {
                secret: secret.clone(),
                confirmed: false,
                last_step: 0,
                recovery_codes: Vec::new(),
            });
            tx.put(Table::Users, p.username.as_str(), &u)?;
            Ok(())
        })?;
        self.record(
            Event::new(EventKind::MfaChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"action": "totp_enrolment_started"})),
        );
        let b32 = BASE32_NOPAD.encode(&secret);
        let label = format!("mamori:{}@{}", p.username, self.facts.serial);
        Ok(TotpEnrollment {
            otpauth_uri: format!(
                "otpauth://totp/{}?secret={b32}&issuer=mamori&{}",
                percent_encode(&label),
                otp::otpauth_parameters()
            ),
            secret: b32,
        })
    }

    /// Confirms a pending TOTP enrolment with a first code. Returns the recovery codes (shown
    /// once) and, if the session was limited to enrolment, its new secret.
    pub fn totp_verify(
        &self,
        p: &Principal,
        code: &str,
    ) -> Result<(Vec<String>, Option<String>), AuthError> {
        p.session_hash()?;
        let now = self.now();
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let raw = random::string(UNAMBIGUOUS_ALPHABET, 16)?;
            codes.push(format!(
                "{}-{}-{}-{}",
                &raw[0..4],
                &raw[4..8],
                &raw[8..12],
                &raw[12..16]
            ));
        }
        self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, p.username.as_str())?
                .ok_or(AuthError::Unauthenticated)?;
            let Some(t) = u.totp.as_mut().filter(|t| !t.confirmed) else {
                return Err(AuthError::Conflict("no pending TOTP enrolment".into()));
            };
            let step = totp_match(&t.secret, code, now, 0).ok_or(AuthError::InvalidRequest(
                "the code does not match; check the device clock and try the next code".into(),
            ))?;
            t.confirmed = true;
            t.last_step = step;
            t.recovery_codes = codes.iter().map(|c| recovery_code_hash(c)).collect();
            tx.put(Table::Users, p.username.as_str(), &u)?;
            Ok(())
        })?;
        self.record(
            Event::new(EventKind::MfaChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"action": "totp_enabled"})),
        );
        let new_secret = if p.restriction == Some(Restriction::MfaEnrollmentRequired) {
            Some(self.rotate_session(p, |s| s.restriction = None)?)
        } else {
            None
        };
        Ok((codes, new_secret))
    }

    /// Removes the caller's second factor.
    pub fn totp_disable(&self, p: &Principal) -> Result<(), AuthError> {
        let settings = self.settings();
        self.store.write(|tx| {
            let mut u: User = tx
                .get(Table::Users, p.username.as_str())?
                .ok_or(AuthError::Unauthenticated)?;
            if u.totp.is_none() {
                return Err(AuthError::Conflict("no second factor is enrolled".into()));
            }
            if settings.mfa_required_roles.contains(&u.role) {
                return Err(AuthError::Conflict(format!(
                    "the {} role requires a second factor",
                    u.role.as_str()
                )));
            }
            u.totp = None;
            tx.put(Table::Users, p.username.as_str(), &u)?;
            Ok(())
        })?;
        self.record(
            Event::new(EventKind::MfaChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"action": "totp_disabled"})),
        );
        Ok(())
    }

    // ---------------------------------------------------------------- API tokens

    /// Creates an API token for the caller, with a role no higher than the caller's.
    pub fn create_token(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        days: u32,
    ) -> Result<NewToken, AuthError> {
        p.session_hash()?;
        if !p.role.can_grant(role) {
            return Err(AuthError::Forbidden);
        }
        if !(1..=365).contains(&days) {
            return Err(AuthError::InvalidRequest(
                "expires_in_days must be 1 to 365".into(),
            ));
        }
        let token = format!(
            "{TOKEN_PREFIX}{}",
            BASE32_NOPAD.encode(&random::bytes::<32>()?).to_lowercase()
        );
        let key = token_key(&token);
        let now = self.now();
        let record = TokenRecord {
            id: key[..16].to_string(),
            name: name.to_string(),
            username: p.username.clone(),
            role,
            created_at: now,
            expires_at: now + u64::from(days) * 86_400,
        };
        self.store.write(|tx| {
            let mine = tx
                .list::<TokenRecord>(Table::Tokens)?
                .into_iter()
                .filter(|(_, t)| t.username == p.username)
                .count();
            if mine >= MAX_TOKENS_PER_USER {
                return Err(AuthError::Conflict(format!(
                    "at most {MAX_TOKENS_PER_USER} tokens per user; revoke one first"
                )));
            }
            tx.put(Table::Tokens, &key, &record)?;
            Ok(())
        })?;
        self.record(
            Event::new(EventKind::TokenCreated, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"token": record.id, "name": name, "role": role, "days": days})),
        );
        Ok(NewToken {
            id: record.id,
            token,
            expires_at: record.expires_at,
        })
    }

    /// Authenticates a request by an API token.
    pub fn authenticate_token(&self, token: &str, origin: Origin) -> Result<Principal, AuthError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(AuthError::Unauthenticated);
        }
        let now = self.now();
        let record: TokenRecord = self
            .store
            .get(Table::Tokens, &token_key(token))?
            .ok_or(AuthError::Unauthenticated)?;
        if record.expires_at <= now {
            return Err(AuthError::Unauthenticated);
        }
        let user: User = self
            .store
            .get(Table::Users, record.username.as_str())?
            .ok_or(AuthError::Unauthenticated)?;
        // A token never outranks its owner's current role, and dies with a disabled account.
        if user.disabled || !user.role.can_grant(record.role) {
            return Err(AuthError::Unauthenticated);
        }
        let first_use = {
            let mut v = self.volatile();
            v.token_last_used.insert(record.id.clone(), now);
            v.tokens_seen.insert(record.id.clone())
        };
        if first_use {
            self.record(
                Event::new(EventKind::TokenUsed, Outcome::Success)
                    .actor(record.username.as_str())
                    .source(origin.label())
                    .details(json!({"token": record.id})),
            );
        }
        Ok(Principal {
            username: record.username,
            role: record.role,
            via: Via::Token { id: record.id },
            origin,
            restriction: None,
            reauth_until: None,
        })
    }

    /// The caller's tokens.
    pub fn list_tokens(&self, p: &Principal) -> Result<Vec<TokenListing>, AuthError> {
        let v = self.volatile();
        let last = v.token_last_used.clone();
        drop(v);
        Ok(self
            .store
            .list::<TokenRecord>(Table::Tokens)?
            .into_iter()
            .filter(|(_, t)| t.username == p.username)
            .map(|(_, t)| TokenListing {
                last_used_at: last.get(&t.id).copied(),
                id: t.id,
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                expires_at: t.expires_at,
            })
            .collect())
    }

    /// Revokes one of the caller's tokens.
    pub fn revoke_token(&self, p: &Principal, id: &str) -> Result<(), AuthError> {
        self.store.write(|tx| {
            let found = tx
                .list::<TokenRecord>(Table::Tokens)?
                .into_iter()
                .find(|(_, t)| t.username == p.username && t.id == id);
            let (key, _) = found.ok_or(AuthError::NotFound("token"))?;
            tx.delete(Table::Tokens, &key)?;
            Ok::<_, AuthError>(())
        })?;
        self.record(
            Event::new(EventKind::TokenRevoked, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"token": id})),
        );
        Ok(())
    }

    // ---------------------------------------------------------------- settings

    /// Replaces the authentication settings.
    pub fn set_settings(&self, p: &Principal, new: AuthSettings) -> Result<(), AuthError> {
        new.validate().map_err(AuthError::InvalidRequest)?;
        let old = self.settings();
        self.store
            .write(|tx| tx.put(Table::Settings, SETTINGS_AUTH, &new))?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        self.record(
            Event::new(EventKind::SettingsChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"setting": "auth", "before": old, "after": new})),
        );
        Ok(())
    }

    /// Replaces the management access policy. A policy that would refuse the caller's own
    /// address needs `confirm`.
    pub fn set_access(
        &self,
        p: &Principal,
        new: AccessPolicy,
        confirm: bool,
    ) -> Result<(), AuthError> {
        new.validate().map_err(AuthError::InvalidRequest)?;
        if let Some(addr) = p.origin.source.filter(|a| !new.allows(*a) && !confirm) {
            return Err(AuthError::ConfirmationRequired(format!(
                "this allowlist does not include your address {}; your session would be cut off. \
                 Resend with \"confirm\": true to apply it anyway",
                crate::settings::canonical(addr)
            )));
        }
        let old = self.access();
        self.store
            .write(|tx| tx.put(Table::Settings, SETTINGS_ACCESS, &new))?;
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        self.record(
            Event::new(EventKind::SettingsChanged, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(json!({"setting": "access", "before": old, "after": new,
                    "confirmed_cutoff": confirm})),
        );
        Ok(())
    }
}

/// Finds the step whose code matches, within one step of now, and newer than `after`.
fn totp_match(secret: &[u8], code: &str, now: u64, after: u64) -> Option<u64> {
    let current = otp::time_step(now);
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .filter(|s| *s > after)
        .find(|s| digest::constant_time_eq(otp::totp_code(secret, *s).as_bytes(), code.as_bytes()))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
