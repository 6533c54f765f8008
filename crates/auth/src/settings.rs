//! Security settings of the authentication service, validated as a whole.

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Role;

/// Authentication policy. Every field has a documented range; a value outside it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Consecutive failures that lock an account (1–100, default 5). S3.1-04 R1-1.
    #[schemars(range(min = 1, max = 100))]
    pub lockout_threshold: u32,
    /// First lock duration in seconds (10–86400, default 60); doubles with each further lock.
    #[schemars(range(min = 10, max = 86400))]
    pub lockout_base_seconds: u64,
    /// Longest lock duration in seconds (≥ base, ≤ 86400, default 3600).
    #[schemars(range(min = 10, max = 86400))]
    pub lockout_max_seconds: u64,
    /// Consecutive failures from one source address (an IPv6 /64) that throttle it (1–1000,
    /// default 10). S3.1-04 R1-2 ②.
    #[schemars(range(min = 1, max = 1000))]
    pub source_threshold: u32,
    /// Minimum password length (8–64, default 12). S3.1-02.
    #[schemars(range(min = 8, max = 64))]
    pub password_min_length: usize,
    /// Roles whose members must enrol a second factor before doing anything else.
    pub mfa_required_roles: Vec<Role>,
    /// Idle session timeout in seconds (10–3600, default 600). S3.1-01 R3.
    #[schemars(range(min = 10, max = 3600))]
    pub idle_timeout_seconds: u64,
    /// Absolute session lifetime in seconds (60–86400, default 28800).
    #[schemars(range(min = 60, max = 86400))]
    pub absolute_timeout_seconds: u64,
    /// WebAuthn relying-party id: the DNS name under which the web UI is opened (default
    /// `localhost`). Security keys work only when the UI is opened at `https://` this name (any
    /// port), never at an IP address. Changing it invalidates every registered security key:
    /// keys are bound to the RP id, and users must sign in with TOTP or a recovery code and
    /// register them again.
    #[serde(default = "default_webauthn_rp_id")]
    #[schemars(length(min = 1, max = 253))]
    pub webauthn_rp_id: String,
}

fn default_webauthn_rp_id() -> String {
    "localhost".into()
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            lockout_threshold: 5,
            lockout_base_seconds: 60,
            lockout_max_seconds: 3600,
            source_threshold: 10,
            password_min_length: 12,
            mfa_required_roles: Vec::new(),
            idle_timeout_seconds: 600,
            absolute_timeout_seconds: 8 * 3600,
            webauthn_rp_id: default_webauthn_rp_id(),
        }
    }
}

impl AuthSettings {
    /// Checks every field against its range and the fields against each other.
    pub fn validate(&self) -> Result<(), SettingsProblem> {
        fn range<T: PartialOrd + Into<u64>>(
            name: &'static str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), SettingsProblem> {
            if v < lo || v > hi {
                return Err(SettingsProblem::OutOfRange {
                    name,
                    lo: lo.into(),
                    hi: hi.into(),
                });
            }
            Ok(())
        }
        range("lockout_threshold", self.lockout_threshold, 1, 100)?;
        range("lockout_base_seconds", self.lockout_base_seconds, 10, 86400)?;
        range("lockout_max_seconds", self.lockout_max_seconds, 10, 86400)?;
        range("source_threshold", self.source_threshold, 1, 1000)?;
        range(
            "password_min_length",
            u64::try_from(self.password_min_length).unwrap_or(u64::MAX),
            8,
            64,
        )?;
        range("idle_timeout_seconds", self.idle_timeout_seconds, 10, 3600)?;
        range(
            "absolute_timeout_seconds",
            self.absolute_timeout_seconds,
            60,
            86400,
        )?;
        if self.lockout_max_seconds < self.lockout_base_seconds {
            return Err(SettingsProblem::LockoutMaxBelowBase);
        }
        if self.absolute_timeout_seconds < self.idle_timeout_seconds {
            return Err(SettingsProblem::AbsoluteBelowIdle);
        }
        let mut roles = self.mfa_required_roles.clone();
        roles.sort_by_key(|r| r.as_str());
        roles.dedup();
        if roles.len() != self.mfa_required_roles.len() {
            return Err(SettingsProblem::RoleTwice);
        }
        check_rp_id(&self.webauthn_rp_id).map_err(SettingsProblem::RpId)
    }
}

/// Why settings were refused. The `Display` is the API's message; the web UI words each in its
/// reader's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsProblem {
    /// A number outside its documented range.
    #[error("{name} must be between {lo} and {hi}")]
    OutOfRange {
        /// The field.
        name: &'static str,
        /// The least value allowed.
        lo: u64,
        /// The greatest value allowed.
        hi: u64,
    },
    /// The longest lock is shorter than the first.
    #[error("lockout_max_seconds must not be below lockout_base_seconds")]
    LockoutMaxBelowBase,
    /// The session lifetime is shorter than the idle timeout.
    #[error("absolute_timeout_seconds must not be below idle_timeout_seconds")]
    AbsoluteBelowIdle,
    /// `mfa_required_roles` names a role twice.
    #[error("mfa_required_roles lists a role twice")]
    RoleTwice,
    /// The WebAuthn relying-party id is not a DNS name browsers accept.
    #[error("webauthn_rp_id must be a DNS name: {0}")]
    RpId(RpIdProblem),
}

/// What keeps a WebAuthn RP id from being a DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RpIdProblem {
    /// Empty or longer than 253 characters.
    #[error("1 to 253 characters")]
    Length,
    /// A character other than lowercase letters, digits, '-' and '.'.
    #[error("only lowercase letters, digits, '-' and '.' (no port, no scheme)")]
    Characters,
    /// An empty label, or one longer than 63 characters.
    #[error("each label between dots has 1 to 63 characters")]
    LabelLength,
    /// A label that starts or ends with '-'.
    #[error("a label does not start or end with '-'")]
    LabelHyphen,
    /// An IP address, which browsers refuse for WebAuthn.
    #[error("not an IP address")]
    IpAddress,
}

/// A WebAuthn RP id must be a host name that browsers accept as one: lowercase letters, digits,
/// '-' and '.', labels of 1–63 characters, at most 253 in all, and no IP address (browsers
/// refuse WebAuthn on IP origins), so no port either.
fn check_rp_id(id: &str) -> Result<(), RpIdProblem> {
    if id.is_empty() || id.len() > 253 {
        return Err(RpIdProblem::Length);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(RpIdProblem::Characters);
    }
    for label in id.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(RpIdProblem::LabelLength);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(RpIdProblem::LabelHyphen);
        }
    }
    // Browsers read "192.168.1.1", and also shorthands such as "127.1", as IPv4 addresses; a
    // numeric last label is what makes them do so.
    if id.parse::<std::net::IpAddr>().is_ok()
        || id
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(RpIdProblem::IpAddress);
    }
    Ok(())
}

/// Which sources may reach the management service (S3.1-01 R7), and which of them are trusted
/// management stations that an account lock caused elsewhere never blocks (S3.1-04).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// Networks allowed to connect. Empty means any source. At most 64 entries.
    #[schemars(with = "Vec<String>", length(max = 64))]
    pub allow: Vec<IpNet>,
    /// Trusted management stations (each inside `allow` when `allow` is not empty). At most 64.
    #[schemars(with = "Vec<String>", length(max = 64))]
    pub trusted: Vec<IpNet>,
}

impl AccessPolicy {
    /// Checks sizes and that every trusted network is allowed to connect.
    pub fn validate(&self) -> Result<(), AccessProblem> {
        if self.allow.len() > MAX_ACCESS_ENTRIES || self.trusted.len() > MAX_ACCESS_ENTRIES {
            return Err(AccessProblem::TooMany {
                max: MAX_ACCESS_ENTRIES,
            });
        }
        if !self.allow.is_empty() {
            for t in &self.trusted {
                if !self.allow.iter().any(|a| a.contains(t)) {
                    return Err(AccessProblem::TrustedNotAllowed(*t));
                }
            }
        }
        Ok(())
    }

    /// Whether a connection from `addr` is accepted.
    pub fn allows(&self, addr: std::net::IpAddr) -> bool {
        let addr = canonical(addr);
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&addr))
    }

    /// Whether `addr` is a trusted management station.
    pub fn is_trusted(&self, addr: std::net::IpAddr) -> bool {
        let addr = canonical(addr);
        self.trusted.iter().any(|n| n.contains(&addr))
    }
}

/// The most entries of each list of an [`AccessPolicy`].
pub const MAX_ACCESS_ENTRIES: usize = 64;

/// Why an access policy was refused. The `Display` is the API's message; the web UI words each
/// in its reader's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessProblem {
    /// A list is too long.
    #[error("at most {max} entries per list")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// A trusted station outside every allowed network.
    #[error("trusted network {0} is not inside any allowed network")]
    TrustedNotAllowed(IpNet),
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to IPv4 so one rule covers both forms.
pub fn canonical(addr: std::net::IpAddr) -> std::net::IpAddr {
    match addr {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, std::net::IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documentation() {
        let s = AuthSettings::default();
        s.validate().unwrap();
        assert_eq!(
            (
                s.lockout_threshold,
                s.idle_timeout_seconds,
                s.absolute_timeout_seconds
            ),
            (5, 600, 28800)
        );
        assert_eq!(s.password_min_length, 12);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let bad = [
            AuthSettings {
                lockout_threshold: 0,
                ..Default::default()
            },
            AuthSettings {
                password_min_length: 7,
                ..Default::default()
            },
            AuthSettings {
                idle_timeout_seconds: 5,
                ..Default::default()
            },
            AuthSettings {
                lockout_max_seconds: 30,
                lockout_base_seconds: 60,
                ..Default::default()
            },
        ];
        for s in bad {
            assert!(s.validate().is_err(), "{s:?}");
        }
    }

    #[test]
    fn webauthn_rp_id_must_be_a_dns_name() {
        let with = |id: &str| AuthSettings {
            webauthn_rp_id: id.into(),
            ..Default::default()
        };
        for good in [
            "localhost",
            "gateway.example.jp",
            "mg-100.lan",
            "a1.b2",
            "x",
        ] {
            with(good)
                .validate()
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let long_label = "a".repeat(64);
        let long_name = ["abcdefghi"; 26].join(".");
        for bad in [
            "",
            "192.168.1.1",
            "127.1",
            "::1",
            "[::1]",
            "2001:db8::1",
            "gateway:8443",
            "localhost:443",
            "Gateway.example.jp",
            "LOCALHOST",
            "https://gateway",
            "gate way",
            "gateway.",
            ".gateway",
            "a..b",
            "-gateway",
            "gateway-.lan",
            "ゲートウェイ",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(with(bad).validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn settings_stored_before_webauthn_still_load() {
        let old = r#"{"lockout_threshold":5,"lockout_base_seconds":60,"lockout_max_seconds":3600,
            "source_threshold":10,"password_min_length":12,"mfa_required_roles":[],
            "idle_timeout_seconds":600,"absolute_timeout_seconds":28800}"#;
        let s: AuthSettings = serde_json::from_str(old).unwrap();
        assert_eq!(s, AuthSettings::default());
    }

    #[test]
    fn allowlist_matches_v4_v6_and_mapped_addresses() {
        let p = AccessPolicy {
            allow: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            trusted: vec!["192.0.2.10/32".parse().unwrap()],
        };
        p.validate().unwrap();
        assert!(p.allows("192.0.2.7".parse().unwrap()));
        assert!(p.allows("::ffff:192.0.2.7".parse().unwrap()));
        assert!(p.allows("2001:db8::1".parse().unwrap()));
        assert!(!p.allows("198.51.100.1".parse().unwrap()));
        assert!(p.is_trusted("192.0.2.10".parse().unwrap()));
        assert!(!p.is_trusted("192.0.2.11".parse().unwrap()));
        assert!(AccessPolicy::default().allows("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn trusted_outside_allowed_is_refused() {
        let p = AccessPolicy {
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            trusted: vec!["198.51.100.1/32".parse().unwrap()],
        };
        assert!(p.validate().is_err());
    }
}
