//! The account model: usernames, roles, permissions and the stored user record.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A validated username: 1–32 characters, lowercase ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Username(
    #[schemars(length(min = 1, max = 32), pattern(r"^[a-z_][a-z0-9._-]{0,31}$"))] String,
);

impl Username {
    /// Parses and validates a username.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let mut chars = s.chars();
        match chars.next() {
            None => return Err("username is empty"),
            Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
                return Err("username must start with a lowercase letter or '_'");
            }
            _ => {}
        }
        if s.len() > 32 {
            return Err("username is longer than 32 characters");
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)) {
            return Err("username may contain only a-z, 0-9, '.', '_' and '-'");
        }
        Ok(Self(s.to_string()))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Name of the one account that exists at first start.
pub const INITIAL_ADMIN: &str = "admin";

/// A role. Viewer < operator < admin form a ladder; auditor stands apart and reads logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control of the device.
    Admin,
    /// Reads logs only (and manages their own account).
    Auditor,
    /// Operates the device: reads everything but accounts and security settings, and (later)
    /// changes network configuration.
    Operator,
    /// Reads status.
    Viewer,
}

/// What an endpoint needs. Each endpoint declares exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Manage one's own account: password, MFA, sessions, tokens.
    OwnAccount,
    /// Read device identity and status.
    DeviceRead,
    /// Read the audit log.
    AuditRead,
    /// Create, change, delete users and reset credentials.
    UsersManage,
    /// Read and change security settings (auth policy, management access).
    SecurityManage,
    /// Read the network configuration, its revisions and diffs.
    ConfigRead,
    /// Commit, confirm and roll back network configurations.
    ConfigManage,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Auditor, Role::Operator, Role::Viewer];

    /// Whether this role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            // Operators run the network; they do not manage accounts or security settings.
            Role::Operator => matches!(
                permission,
                OwnAccount | DeviceRead | ConfigRead | ConfigManage
            ),
            Role::Viewer => matches!(permission, OwnAccount | DeviceRead),
            // Auditors review what the device was configured to do, and change nothing.
            Role::Auditor => matches!(permission, OwnAccount | DeviceRead | AuditRead | ConfigRead),
        }
    }

    /// Whether a holder of this role may hand out `other` (to a token or a new user).
    pub fn can_grant(self, other: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => matches!(other, Role::Operator | Role::Viewer),
            Role::Viewer => other == Role::Viewer,
            Role::Auditor => other == Role::Auditor,
        }
    }

    /// The role's name as used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// A confirmed or pending TOTP second factor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totp {
    /// The shared secret (stored sealed, like every value).
    pub secret: Vec<u8>,
    /// False until the user proved possession with a first code.
    pub confirmed: bool,
    /// The last time step accepted, so a code cannot be replayed.
    pub last_step: u64,
}

/// A registered WebAuthn security key (ES256 only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityKeyRecord {
    /// Short random public id (hex), for listing and removal.
    pub id: String,
    /// The label the user gave it (1–64 characters).
    pub name: String,
    /// The credential: id, public key, signature counter, flags seen at registration.
    pub credential: webauthn_rs_core::proto::Credential,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last successful use.
    pub last_used_at: Option<u64>,
}

/// A stored user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StoredUser")]
pub struct User {
    /// The name.
    pub username: Username,
    /// The role.
    pub role: Role,
    /// PBKDF2 hash (PHC string).
    pub password_hash: String,
    /// The password was set by someone else (label, reset, recovery) and must be changed
    /// before anything else.
    pub must_change_password: bool,
    /// Disabled accounts cannot log in; their tokens do not work.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub password_changed_at: u64,
    /// The TOTP factor, if any (pending until confirmed).
    pub totp: Option<Totp>,
    /// Registered security keys.
    #[serde(default)]
    pub security_keys: Vec<SecurityKeyRecord>,
    /// SHA-256 hashes (hex) of the unused recovery codes. They belong to the account, not to
    /// one factor: issued when the first second factor is confirmed, cleared with the last.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: u32,
    /// How many times the account was locked since the last success (drives escalation).
    pub lock_count: u32,
    /// Locked (for network logins from untrusted sources) until this unix time.
    pub locked_until: Option<u64>,
}

/// A user record as read from the store, including records written before security keys
/// existed, when the recovery codes were kept inside `totp`.
#[derive(Deserialize)]
struct StoredUser {
    username: Username,
    role: Role,
    password_hash: String,
    must_change_password: bool,
    disabled: bool,
    created_at: u64,
    password_changed_at: u64,
    totp: Option<StoredTotp>,
    #[serde(default)]
    security_keys: Vec<SecurityKeyRecord>,
    #[serde(default)]
    recovery_codes: Vec<String>,
    failed_logins: u32,
    lock_count: u32,
    locked_until: Option<u64>,
}

#[derive(Deserialize)]
struct StoredTotp {
    secret: Vec<u8>,
    confirmed: bool,
    last_step: u64,
    /// Where recovery codes lived before they moved to the account.
    #[serde(default)]
    recovery_codes: Vec<String>,
}

impl From<StoredUser> for User {
    fn from(s: StoredUser) -> Self {
        let mut recovery_codes = s.recovery_codes;
        let totp = s.totp.map(|t| {
            // Migrate on read; the next write stores the new layout.
            if recovery_codes.is_empty() {
                recovery_codes = t.recovery_codes;
            }
            Totp {
                secret: t.secret,
                confirmed: t.confirmed,
                last_step: t.last_step,
            }
        });
        Self {
            username: s.username,
            role: s.role,
            password_hash: s.password_hash,
            must_change_password: s.must_change_password,
            disabled: s.disabled,
            created_at: s.created_at,
            password_changed_at: s.password_changed_at,
            totp,
            security_keys: s.security_keys,
            recovery_codes,
            failed_logins: s.failed_logins,
            lock_count: s.lock_count,
            locked_until: s.locked_until,
        }
    }
}

impl User {
    /// A new account whose password was set by someone else, so it must be changed at first
    /// login.
    pub fn new(username: Username, role: Role, password_hash: String, now: u64) -> Self {
        Self {
            username,
            role,
            password_hash,
            must_change_password: true,
            disabled: false,
            created_at: now,
            password_changed_at: now,
            totp: None,
            security_keys: Vec::new(),
            recovery_codes: Vec::new(),
            failed_logins: 0,
            lock_count: 0,
            locked_until: None,
        }
    }

    /// The initial administrator, created at provisioning with the label password.
    pub fn initial_admin(label_password_hash: String, now: u64) -> Self {
        Self::new(
            Username(INITIAL_ADMIN.to_string()),
            Role::Admin,
            label_password_hash,
            now,
        )
    }

    /// True if a confirmed second factor is enrolled: TOTP or at least one security key.
    pub fn mfa_enabled(&self) -> bool {
        self.has_totp() || self.has_security_keys()
    }

    /// True if a confirmed TOTP factor is enrolled (a pending enrolment does not count).
    pub fn has_totp(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed)
    }

    /// True if at least one security key is registered.
    pub fn has_security_keys(&self) -> bool {
        !self.security_keys.is_empty()
    }
}

/// How a request reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// HTTPS API or web UI.
    Https,
    /// The local console socket (access without the network).
    Console,
}
