//! WebAuthn security keys (ES256 only) as a second factor: registration, the challenges for
//! login and re-authentication, checking an assertion, listing and removal.
//!
//! Built on `webauthn-rs-core` with the settings `webauthn-rs` uses for security keys, except
//! that only the algorithms of the crypto policy are requested and accepted, and that every
//! challenge comes from the policy's random generator. Ceremony states stay in memory on the
//! server; the client only ever sees the options and sends back the authenticator's answer.

use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use mamori_audit::EventKind;
use mamori_crypto::policy::WEBAUTHN_COSE_ALGORITHMS;
use serde::de::DeserializeOwned;
use serde_json::json;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, COSEAlgorithm, CredProtect, CredentialProtectionPolicy,
    PublicKeyCredential, PublicKeyCredentialHints, RegisterPublicKeyCredential, RegistrationState,
    RequestRegistrationExtensions, UserVerificationPolicy,
};

use super::*;

/// Most security keys per account.
const MAX_SECURITY_KEYS: usize = 16;
/// How long a registration or a challenge may take (also the browser's timeout).
const CEREMONY_SECONDS: u64 = 300;
/// Most ceremonies of one kind in memory.
const MAX_CEREMONIES: usize = 4096;
/// Relying-party name shown by some browsers and authenticators.
const RP_NAME: &str = "mamori";

/// Proof of the second factor offered with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor<'a> {
    /// None offered.
    None,
    /// A TOTP code or a recovery code.
    Code(&'a str),
    /// A `PublicKeyCredential` as JSON, from `navigator.credentials.get`.
    SecurityKey(&'a str),
}

impl<'a> SecondFactor<'a> {
    /// A TOTP or recovery code if one was given (an empty one counts as none).
    pub fn from_code(code: Option<&'a str>) -> Self {
        match code {
            Some(c) if !c.is_empty() => SecondFactor::Code(c),
            _ => SecondFactor::None,
        }
    }
}

/// Which second factors an account can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SecondFactorMethods {
    /// A TOTP code.
    pub totp: bool,
    /// A security key.
    pub security_key: bool,
    /// A recovery code (some are left).
    pub recovery_code: bool,
}

impl SecondFactorMethods {
    pub(super) fn of(user: &User) -> Self {
        Self {
            totp: user.has_totp(),
            security_key: user.has_security_keys(),
            recovery_code: !user.recovery_codes.is_empty(),
        }
    }
}

/// What step 1 of an interactive login led to.
#[derive(Debug)]
pub enum LoginStep {
    /// The account has no second factor: the session is open.
    Done(LoginOutcome),
    /// The password was right; the second factor is awaited.
    SecondFactor(PendingLogin),
}

/// A login awaiting its second factor.
pub struct PendingLogin {
    /// The secret naming this login in step 2 (for a cookie). Shown once.
    pub ticket: String,
    /// What the account can answer with.
    pub methods: SecondFactorMethods,
    /// Unix time after which the ticket is void.
    pub expires_at: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ticket is a credential: keep it out of logs.
        f.debug_struct("PendingLogin")
            .field("methods", &self.methods)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A security key as listed to its owner.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SecurityKeyListing {
    /// Public id.
    pub id: String,
    /// The name given at registration.
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last successful use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
}

impl From<&SecurityKeyRecord> for SecurityKeyListing {
    fn from(k: &SecurityKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// The result of registering a security key.
#[derive(Debug)]
pub struct SecurityKeyEnrolled {
    /// The new key.
    pub key: SecurityKeyListing,
    /// The recovery codes, shown once, if this was the account's first second factor.
    pub recovery_codes: Option<Vec<String>>,
    /// The session's new secret, if the session was limited to MFA enrolment.
    pub new_session_secret: Option<String>,
}

/// A registration in progress.
#[derive(Debug)]
pub(super) struct PendingRegistration {
    state: RegistrationState,
    name: String,
}

/// Ceremony states by the session hash they belong to, each valid for a few minutes.
#[derive(Debug)]
pub(super) struct Ceremonies<T> {
    by_session: HashMap<[u8; 32], (u64, T)>,
}

impl<T> Default for Ceremonies<T> {
    fn default() -> Self {
        Self {
            by_session: HashMap::new(),
        }
    }
}

impl<T> Ceremonies<T> {
    /// Stores a state, replacing the session's previous one; expired ones go, and beyond the
    /// cap the one closest to expiry.
    pub(super) fn insert(&mut self, session: [u8; 32], value: T, now: u64) {
        self.by_session.retain(|_, (until, _)| *until > now);
        if self.by_session.len() >= MAX_CEREMONIES
            && !self.by_session.contains_key(&session)
            && let Some(k) = self
                .by_session
                .iter()
                .min_by_key(|(_, (until, _))| *until)
                .map(|(k, _)| *k)
        {
            self.by_session.remove(&k);
        }
        self.by_session
            .insert(session, (now + CEREMONY_SECONDS, value));
    }

    /// Takes the session's state out (a state answers once), if it has not expired.
    pub(super) fn take(&mut self, session: &[u8; 32], now: u64) -> Option<T> {
        self.by_session
            .remove(session)
            .filter(|(until, _)| *until > now)
            .map(|(_, v)| v)
    }
}

/// The relying party for the settings: origin `https://{rp id}` on any port, no subdomains.
pub(super) fn relying_party(settings: &AuthSettings) -> Result<WebauthnCore, AuthError> {
    let rp_id = settings.webauthn_rp_id.as_str();
    // `Url` is inferred from the constructor; a validated RP id always parses.
    let origin = format!("https://{rp_id}")
        .parse()
        .map_err(|_| AuthError::Internal(format!("no origin for the RP id {rp_id:?}")))?;
    Ok(WebauthnCore::new_unsafe_experts_only(
        RP_NAME,
        rp_id,
        vec![origin],
        Duration::from_secs(CEREMONY_SECONDS),
        Some(false),
        Some(true),
    ))
}

/// The policy's algorithms as COSE identifiers the library knows.
fn algorithms() -> Result<Vec<COSEAlgorithm>, AuthError> {
    WEBAUTHN_COSE_ALGORITHMS
        .iter()
        .map(|id| {
            COSEAlgorithm::try_from(i128::from(*id))
                .map_err(|()| AuthError::Internal(format!("unknown COSE algorithm {id}")))
        })
        .collect()
}

/// Replaces the library's challenge (drawn from a user-space generator) with one from the
/// policy's generator, in the options sent to the browser and in the state kept here alike.
fn own_challenge<S: Serialize + DeserializeOwned>(
    options_challenge: &mut Vec<u8>,
    state: S,
) -> Result<S, AuthError> {
    let challenge = random::bytes::<32>()?;
    let mut s = serde_json::to_value(state).map_err(|e| AuthError::Internal(e.to_string()))?;
    let slot = s
        .get_mut("challenge")
        .ok_or_else(|| AuthError::Internal("ceremony state without a challenge".into()))?;
    *slot = BASE64URL_NOPAD.encode(&challenge).into();
    *options_challenge = challenge.to_vec();
    serde_json::from_value(s).map_err(|e| AuthError::Internal(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, AuthError> {
    serde_json::to_value(v).map_err(|e| AuthError::Internal(e.to_string()))
}

fn webauthn_internal(e: WebauthnError) -> AuthError {
    AuthError::Internal(format!("webauthn: {e}"))
}

/// A key's name: 1–64 characters, no control characters.
fn key_name(name: &str) -> Result<String, AuthError> {
    let n = name.chars().count();
    if !(1..=64).contains(&n) || name.chars().any(char::is_control) || name.trim().is_empty() {
        return Err(AuthError::InvalidRequest(Invalid::KeyName));
    }
    Ok(name.to_string())
}

impl AuthService {
    /// Starts registering a security key for the caller: the options for
    /// `navigator.credentials.create` (`CreationChallengeResponse`). The caller's own keys are
    /// excluded; the name is kept with the state until [`Self::security_key_register_finish`].
    pub fn security_key_register_begin(
        &self,
        p: &Principal,
        name: &str,
    ) -> Result<serde_json::Value, AuthError> {
        let hash = p.session_hash()?;
        let name = key_name(name)?;
        let user = self
            .user(&p.username)
            .map_err(|_| AuthError::Unauthenticated)?;
        if user.security_keys.len() >= MAX_SECURITY_KEYS {
            return Err(AuthError::Conflict(Conflict::KeyLimit {
                max: MAX_SECURITY_KEYS,
            }));
        }
        let exclude = user
            .security_keys
            .iter()
            .map(|k| k.credential.cred_id.clone())
            .collect();
        // The user handle is only a hint to the authenticator (these keys are not discoverable,
        // so it is never used to find an account): random, so it carries no name.
        let handle = random::bytes::<16>()?;
        let rp = self.webauthn();
        // What we ask of a security key: user verification preferred (and then enforced on
        // that key by webauthn-rs), no resident key, no attestation. credProtect asks only that
        // the credential is never usable without its id: browsers refuse the stronger
        // "user verification required" level unless verification is required too, and as a
        // second factor after the password, presence of the key is what counts.
        let builder = rp
            .new_challenge_register_builder(&handle, p.username.as_str(), p.username.as_str())
            .map_err(webauthn_internal)?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(algorithms()?)
            .require_resident_key(false)
            .authenticator_attachment(None)
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .reject_synchronised_authenticators(false)
            .exclude_credentials(Some(exclude))
            .hints(Some(vec![PublicKeyCredentialHints::SecurityKey]))
            .extensions(Some(RequestRegistrationExtensions {
                cred_protect: Some(CredProtect {
                    credential_protection_policy:
                        CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIDList,
                    enforce_credential_protection_policy: Some(false),
                }),
                uvm: Some(true),
                cred_props: Some(true),
                min_pin_length: None,
                hmac_create_secret: None,
            }));
        let (mut options, state) = rp
            .generate_challenge_register(builder)
            .map_err(webauthn_internal)?;
        let state = own_challenge(&mut options.public_key.challenge, state)?;
        let now = self.now();
        self.volatile()
            .registrations
            .insert(hash, PendingRegistration { state, name }, now);
        to_json(&options)
    }

    /// Finishes registering a security key with the authenticator's answer
    /// (`RegisterPublicKeyCredential` JSON from `navigator.credentials.create`). Only ES256
    /// keys are accepted, and a key registered to any account is refused. Returns the key,
    /// the recovery codes if it is the account's first second factor, and a new session secret
    /// if the session was limited to MFA enrolment.
    pub fn security_key_register_finish(
        &self,
        p: &Principal,
        response_json: &str,
    ) -> Result<SecurityKeyEnrolled, AuthError> {
        let hash = p.session_hash()?;
        let now = self.now();
        let pending = self
            .volatile()
            .registrations
            .take(&hash, now)
            .ok_or(AuthError::Conflict(Conflict::NoKeyRegistration))?;
        let reg: RegisterPublicKeyCredential = serde_json::from_str(response_json)
            .map_err(|_| AuthError::InvalidRequest(Invalid::KeyAnswerMalformed))?;
        let rp = self.webauthn();
        let credential = rp
            .register_credential(&reg, &pending.state, None)
            .map_err(|e| {
                tracing::info!(user = %p.username, error = %e, "security key registration refused");
                registration_refused(&e, &self.settings().webauthn_rp_id)
            })?;
        // register_credential already refused any algorithm that was not requested; this
        // keeps the policy true even if that ever changed.
        if !algorithms()?.contains(&credential.cred.type_) {
            return Err(AuthError::InvalidRequest(Invalid::KeyAlgorithm));
        }
        let record = SecurityKeyRecord {
            id: HEXLOWER.encode(&random::bytes::<8>()?),
            name: pending.name,
            credential,
            created_at: now,
            last_used_at: None,
        };
        let listing = SecurityKeyListing::from(&record);
        let (codes, hashes) = new_recovery_codes()?;
        let first = self.store.write(|tx| {
            // WebAuthn §7.1 step 22: one credential id, one account.
            let taken = tx.list::<User>(Table::Users)?.into_iter().any(|(_, u)| {
                u.security_keys
                    .iter()
                    .any(|k| k.credential.cred_id == record.credential.cred_id)
            });
            if taken {
                return Err(AuthError::Conflict(Conflict::KeyTaken));
            }
            let mut u: User = tx
                .get(Table::Users, p.username.as_str())?
                .ok_or(AuthError::Unauthenticated)?;
            if u.security_keys.len() >= MAX_SECURITY_KEYS {
                return Err(AuthError::Conflict(Conflict::KeyLimit {
                    max: MAX_SECURITY_KEYS,
                }));
            }
            let first = !u.mfa_enabled();
            u.security_keys.push(record);
            if first {
                u.recovery_codes = hashes;
            }
            tx.put(Table::Users, p.username.as_str(), &u)?;
            Ok(first)
        })?;
        self.record_by(
            p,
            EventKind::MfaChanged,
            json!({"action": "security_key_registered", "key": listing.id,
                "name": listing.name, "recovery_codes_issued": first}),
        );
        let new_session_secret = if p.restriction == Some(Restriction::MfaEnrollmentRequired) {
            Some(self.rotate_session(p, |s| s.restriction = None)?)
        } else {
            None
        };
        Ok(SecurityKeyEnrolled {
            key: listing,
            recovery_codes: first.then_some(codes),
            new_session_secret,
        })
    }

    /// The caller's security keys.
    pub fn security_keys(&self, p: &Principal) -> Result<Vec<SecurityKeyListing>, AuthError> {
        let user = self
            .user(&p.username)
            .map_err(|_| AuthError::Unauthenticated)?;
        Ok(user.security_keys.iter().map(Into::into).collect())
    }

    /// Removes one of the caller's security keys. The recovery codes go with the account's last
    /// second factor; a role that requires MFA cannot remove its last one.
    pub fn security_key_remove(&self, p: &Principal, id: &str) -> Result<(), AuthError> {
        p.session_hash()?;
        let settings = self.settings();
        let mut removed = None;
        self.modify_user(&p.username, AuthError::Unauthenticated, |u| {
            let i = u
                .security_keys
                .iter()
                .position(|k| k.id == id)
                .ok_or(AuthError::NotFound("security key"))?;
            if !u.has_totp() && u.security_keys.len() == 1 {
                super::mfa::refuse_removing_required_factor(&settings, u)?;
            }
            removed = Some(u.security_keys.remove(i));
            if !u.mfa_enabled() {
                u.recovery_codes.clear();
            }
            Ok(())
        })?;
        let name = removed.map(|k| k.name).unwrap_or_default();
        self.record_by(
            p,
            EventKind::MfaChanged,
            json!({"action": "security_key_removed", "key": id, "name": name}),
        );
        Ok(())
    }

    /// A security-key challenge (options for `navigator.credentials.get`) to re-authenticate
    /// the caller's session; the state is kept for that session and answers once.
    pub fn reauth_security_key_challenge(
        &self,
        p: &Principal,
    ) -> Result<serde_json::Value, AuthError> {
        let hash = p.session_hash()?;
        let user = self
            .user(&p.username)
            .map_err(|_| AuthError::Unauthenticated)?;
        let (request, state) = self.authentication_challenge(&user)?;
        let now = self.now();
        self.volatile().reauth_challenges.insert(hash, state, now);
        Ok(request)
    }

    /// An authentication challenge for a user's security keys, as webauthn-rs issues it for
    /// security keys: user verification preferred, no extensions, no backup-eligibility change.
    pub(super) fn authentication_challenge(
        &self,
        user: &User,
    ) -> Result<(serde_json::Value, AuthenticationState), AuthError> {
        if !user.has_security_keys() {
            return Err(AuthError::Conflict(Conflict::NoSecurityKey));
        }
        let credentials = user
            .security_keys
            .iter()
            .map(|k| k.credential.clone())
            .collect();
        let rp = self.webauthn();
        let builder = rp
            .new_challenge_authenticate_builder(
                credentials,
                Some(UserVerificationPolicy::Preferred),
            )
            .map_err(webauthn_internal)?
            .extensions(None)
            .allow_backup_eligible_upgrade(false)
            .hints(Some(vec![PublicKeyCredentialHints::SecurityKey]));
        let (mut request, state) = rp
            .generate_challenge_authenticate(builder)
            .map_err(webauthn_internal)?;
        let state = own_challenge(&mut request.public_key.challenge, state)?;
        Ok((to_json(&request)?, state))
    }

    /// Checks a security-key assertion against the challenge it must answer, and records the
    /// key's new signature counter and last use.
    pub(super) fn check_security_key(
        &self,
        user: &mut User,
        assertion_json: &str,
        state: &AuthenticationState,
    ) -> Result<FactorCheck, AuthError> {
        const WRONG: FactorCheck = FactorCheck::Wrong("wrong_second_factor");
        let Ok(assertion) = serde_json::from_str::<PublicKeyCredential>(assertion_json) else {
            return Ok(WRONG);
        };
        let result = match self.webauthn().authenticate_credential(&assertion, state) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(user = %user.username, "security key counter went backwards: possibly cloned");
                return Ok(FactorCheck::Wrong("security_key_counter_regression"));
            }
            Err(e) => {
                tracing::info!(user = %user.username, error = %e, "security key assertion refused");
                return Ok(WRONG);
            }
        };
        let now = self.now();
        self.store.write(|tx| {
            let Some(mut u) = tx.get::<User>(Table::Users, user.username.as_str())? else {
                return Ok(WRONG);
            };
            // The key may have been removed since the challenge was issued.
            let Some(k) = u
                .security_keys
                .iter_mut()
                .find(|k| &k.credential.cred_id == result.cred_id())
            else {
                return Ok(WRONG);
            };
            // Checked again against the stored counter, which a parallel login may have
            // advanced since the challenge was issued (as webauthn-rs' update_credential).
            let (seen, stored) = (result.counter(), k.credential.counter);
            if (seen > 0 || stored > 0) && seen <= stored {
                return Ok(FactorCheck::Wrong("security_key_counter_regression"));
            }
            k.credential.counter = seen;
            k.credential.backup_state = result.backup_state();
            k.last_used_at = Some(now);
            tx.put(Table::Users, u.username.as_str(), &u)?;
            *user = u;
            Ok::<_, AuthError>(FactorCheck::Passed("security_key"))
        })
    }
}

/// A refused registration, explained without echoing the client's data.
fn registration_refused(e: &WebauthnError, rp_id: &str) -> AuthError {
    AuthError::InvalidRequest(match e {
        WebauthnError::CredentialAlteredAlgFromRequest => Invalid::KeyAlgorithmOrTaken,
        WebauthnError::MismatchedChallenge
        | WebauthnError::InvalidRPOrigin
        | WebauthnError::InvalidRPIDHash => Invalid::KeyOrigin {
            rp_id: rp_id.to_string(),
        },
        _ => Invalid::KeyRefused,
    })
}

#[cfg(test)]
mod caps {
    use super::*;

    /// Ceremony states answer once, expire, and stay bounded in number.
    #[test]
    fn ceremonies_expire_answer_once_and_are_capped() {
        let mut c = Ceremonies::<usize>::default();
        let key = |i: usize| digest::sha256(&i.to_be_bytes());
        for i in 0..MAX_CEREMONIES + 10 {
            c.insert(key(i), i, 100);
        }
        assert_eq!(c.by_session.len(), MAX_CEREMONIES);
        let last = MAX_CEREMONIES + 9;
        assert_eq!(c.take(&key(last), 200), Some(last));
        assert_eq!(c.take(&key(last), 200), None, "answered twice");
        assert_eq!(
            c.take(&key(last - 1), 100 + CEREMONY_SECONDS),
            None,
            "expired state used"
        );
        c.insert(key(0), 0, 100 + CEREMONY_SECONDS);
        assert_eq!(c.by_session.len(), 1, "expired states kept");
    }
}
