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
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::proto::AuthenticationState;

use crate::error::{AuthError, Confirmation, Conflict, Invalid};
use crate::model::{Channel, Permission, Role, SecurityKeyRecord, Totp, User, Username};
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
    /// Logins whose password was right and whose second factor is awaited.
    tickets: Tickets,
    /// Security-key registrations in progress, by session hash.
    registrations: Ceremonies<PendingRegistration>,
    /// Security-key re-authentication challenges, by session hash.
    reauth_challenges: Ceremonies<AuthenticationState>,
}

/// The authentication service.
pub struct AuthService {
    store: Arc<Store>,
    audit: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    facts: DeviceFacts,
    settings: RwLock<AuthSettings>,
    access: RwLock<AccessPolicy>,
    /// The WebAuthn verifier for the configured RP id; replaced when the settings change.
    webauthn: RwLock<Arc<WebauthnCore>>,
    volatile: Mutex<Volatile>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

/// Leaves exactly one account, the initial administrator with the label password, inside the
/// caller's transaction: the manufacturing state (S3.1-01 R4, S3.1-02).
pub fn install_initial_admin(
    tx: &mut mamori_store::WriteTxn<'_>,
    label_password_hash: &str,
    now: u64,
) -> Result<(), mamori_store::StoreError> {
    for (name, _) in tx.list::<serde_json::Value>(Table::Users)? {
        tx.delete(Table::Users, &name)?;
    }
    let admin = User::initial_admin(label_password_hash.to_string(), now);
    tx.put(Table::Users, admin.username.as_str(), &admin)
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
        let webauthn = webauthn::relying_party(&settings)?;
        Ok(Self {
            store,
            audit,
            clock,
            facts,
            settings: RwLock::new(settings),
            access: RwLock::new(access),
            webauthn: RwLock::new(Arc::new(webauthn)),
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

    /// The WebAuthn verifier for the current RP id.
    fn webauthn(&self) -> Arc<WebauthnCore> {
        self.webauthn
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |w| Arc::clone(&w))
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

    /// Records a successful action by an authenticated principal.
    fn record_by(&self, p: &Principal, kind: EventKind, details: serde_json::Value) {
        self.record(
            Event::new(kind, Outcome::Success)
                .actor(p.username.as_str())
                .source(p.origin.label())
                .details(details),
        );
    }

    /// Reads a user, lets `change` modify it, and writes it back, in one transaction.
    fn modify_user(
        &self,
        name: &Username,
        missing: AuthError,
        change: impl FnOnce(&mut User) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        self.store.write(|tx| {
            let mut u: User = tx.get(Table::Users, name.as_str())?.ok_or(missing)?;
            change(&mut u)?;
            tx.put(Table::Users, name.as_str(), &u)?;
            Ok(u)
        })
    }
    // ---------------------------------------------------------------- provisioning

    // ---------------------------------------------------------------- settings

    /// Replaces the authentication settings.
    pub fn set_settings(&self, p: &Principal, new: AuthSettings) -> Result<(), AuthError> {
        new.validate()
            .map_err(|e| AuthError::InvalidRequest(Invalid::Settings(e)))?;
        let webauthn = webauthn::relying_party(&new)?;
        let old = self.settings();
        self.store
            .write(|tx| tx.put(Table::Settings, SETTINGS_AUTH, &new))?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        *self.webauthn.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(webauthn);
        self.record_by(
            p,
            EventKind::SettingsChanged,
            json!({"setting": "auth", "before": old, "after": new}),
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
        new.validate()
            .map_err(|e| AuthError::InvalidRequest(Invalid::Access(e)))?;
        if let Some(addr) = p.origin.source.filter(|a| !new.allows(*a) && !confirm) {
            return Err(AuthError::ConfirmationRequired(
                Confirmation::AllowlistExcludesCaller(crate::settings::canonical(addr)),
            ));
        }
        let old = self.access();
        self.store
            .write(|tx| tx.put(Table::Settings, SETTINGS_ACCESS, &new))?;
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        self.record_by(
            p,
            EventKind::SettingsChanged,
            json!({"setting": "access", "before": old, "after": new,
                    "confirmed_cutoff": confirm}),
        );
        Ok(())
    }
}

mod credentials;
mod login;
mod mfa;
mod passwords;
mod tokens;
mod users;
mod webauthn;

use credentials::FactorCheck;
use login::Tickets;
use mfa::{new_recovery_codes, recovery_code_hash, totp_match};
use webauthn::{Ceremonies, PendingRegistration};
pub use webauthn::{
    LoginStep, PendingLogin, SecondFactor, SecondFactorMethods, SecurityKeyEnrolled,
    SecurityKeyListing,
};

#[cfg(test)]
mod tests;
