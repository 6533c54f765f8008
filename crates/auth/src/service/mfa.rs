//! The TOTP second factor, and the account's recovery codes.

use mamori_audit::EventKind;
use serde_json::json;

use super::*;

impl AuthService {
    /// Starts TOTP enrolment for the caller. The factor is pending until verified.
    pub fn totp_enroll(&self, p: &Principal) -> Result<TotpEnrollment, AuthError> {
        p.session_hash()?;
        let secret = random::bytes::<32>()?.to_vec();
        self.modify_user(&p.username, AuthError::Unauthenticated, |u| {
            if u.has_totp() {
                return Err(AuthError::Conflict(Conflict::TotpEnrolled));
            }
            u.totp = Some(Totp {
                secret: secret.clone(),
                confirmed: false,
                last_step: 0,
            });
            Ok(())
        })?;
        self.record_by(
            p,
            EventKind::MfaChanged,
            json!({"action": "totp_enrolment_started"}),
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
    /// once; empty when the account already had a second factor, whose codes stay valid) and,
    /// if the session was limited to enrolment, its new secret.
    pub fn totp_verify(
        &self,
        p: &Principal,
        code: &str,
    ) -> Result<(Vec<String>, Option<String>), AuthError> {
        p.session_hash()?;
        let now = self.now();
        let (mut codes, hashes) = new_recovery_codes()?;
        let mut first = false;
        self.modify_user(&p.username, AuthError::Unauthenticated, |u| {
            first = !u.mfa_enabled();
            let Some(t) = u.totp.as_mut().filter(|t| !t.confirmed) else {
                return Err(AuthError::Conflict(Conflict::NoTotpEnrolment));
            };
            let step = totp_match(&t.secret, code, now, 0)
                .ok_or(AuthError::InvalidRequest(Invalid::TotpCode))?;
            t.confirmed = true;
            t.last_step = step;
            if first {
                u.recovery_codes = hashes;
            }
            Ok(())
        })?;
        if !first {
            codes.clear();
        }
        self.record_by(p, EventKind::MfaChanged, json!({"action": "totp_enabled"}));
        let new_secret = if p.restriction == Some(Restriction::MfaEnrollmentRequired) {
            Some(self.rotate_session(p, |s| s.restriction = None)?)
        } else {
            None
        };
        Ok((codes, new_secret))
    }

    /// Removes the caller's TOTP factor (or a pending enrolment). The recovery codes go with
    /// the account's last factor; a role that requires MFA cannot remove its last one.
    pub fn totp_disable(&self, p: &Principal) -> Result<(), AuthError> {
        let settings = self.settings();
        self.modify_user(&p.username, AuthError::Unauthenticated, |u| {
            if u.totp.is_none() {
                return Err(AuthError::Conflict(Conflict::TotpNotEnrolled));
            }
            if u.has_totp() && !u.has_security_keys() {
                refuse_removing_required_factor(&settings, u)?;
            }
            u.totp = None;
            if !u.mfa_enabled() {
                u.recovery_codes.clear();
            }
            Ok(())
        })?;
        self.record_by(p, EventKind::MfaChanged, json!({"action": "totp_disabled"}));
        Ok(())
    }
}

/// Refuses to remove the last second factor of a role that requires one.
pub(super) fn refuse_removing_required_factor(
    settings: &AuthSettings,
    u: &User,
) -> Result<(), AuthError> {
    if settings.mfa_required_roles.contains(&u.role) {
        return Err(AuthError::Conflict(Conflict::LastRequiredFactor(u.role)));
    }
    Ok(())
}

impl AuthService {
    /// How many unused recovery codes the caller has left.
    pub fn recovery_codes_left(&self, p: &Principal) -> Result<usize, AuthError> {
        Ok(self
            .user(&p.username)
            .map_err(|_| AuthError::Unauthenticated)?
            .recovery_codes
            .len())
    }

    /// Which second factors the caller's account has (for the account pages).
    pub fn second_factor_methods(
        &self,
        p: &Principal,
    ) -> Result<super::webauthn::SecondFactorMethods, AuthError> {
        let user = self
            .user(&p.username)
            .map_err(|_| AuthError::Unauthenticated)?;
        Ok(super::webauthn::SecondFactorMethods::of(&user))
    }
}

/// A fresh set of recovery codes: the codes to show once, and the hashes to keep.
pub(super) fn new_recovery_codes() -> Result<(Vec<String>, Vec<String>), AuthError> {
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
    let hashes = codes.iter().map(|c| recovery_code_hash(c)).collect();
    Ok((codes, hashes))
}

/// Finds the step whose code matches, within one step of now, and newer than `after`.
pub(super) fn totp_match(secret: &[u8], code: &str, now: u64, after: u64) -> Option<u64> {
    let current = otp::time_step(now);
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .filter(|s| *s > after)
        .find(|s| digest::constant_time_eq(otp::totp_code(secret, *s).as_bytes(), code.as_bytes()))
}

/// Hash under which a recovery code is kept (separators and spaces ignored).
pub(super) fn recovery_code_hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect();
    HEXLOWER.encode(&digest::sha256(normalised.as_bytes()))
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
