//! The service's behaviour, stated as requirements. HTTP-level tests live in tests/.

use std::sync::atomic::{AtomicU64, Ordering};

use mamori_crypto::aead::Key;

use super::*;

mod security_keys;
mod softkey;

#[derive(Default)]
struct ManualClock(AtomicU64);
impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);
impl Sink for Recorder {
    fn record(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
}
impl Recorder {
    fn kinds(&self) -> Vec<EventKind> {
        self.0.lock().unwrap().iter().map(|e| e.event).collect()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    svc: AuthService,
    clock: Arc<ManualClock>,
    audit: Arc<Recorder>,
}

const LABEL: &str = "Hq7ZbT4mWx9kPd3R";
const GOOD: &str = "river-Kettle-47-lantern";
const REMOTE: &str = "192.0.2.50";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("s.redb"), Key::generate().unwrap()).unwrap());
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000)));
    let audit = Arc::new(Recorder::default());
    let label = password::hash(LABEL).unwrap();
    store
        .write(|tx| install_initial_admin(tx, &label, 1_000_000))
        .unwrap();
    let svc = AuthService::new(
        store,
        audit.clone(),
        clock.clone(),
        DeviceFacts {
            model: "MG-100".into(),
            serial: "SN12345678".into(),
            hostname: "gateway".into(),
            ..Default::default()
        },
    )
    .unwrap();
    Fixture {
        _dir: dir,
        svc,
        clock,
        audit,
    }
}

fn remote() -> Origin {
    Origin::https(REMOTE.parse().unwrap())
}

impl Fixture {
    fn admin_session(&self) -> (String, Principal) {
        let out = self.svc.login("admin", LABEL, None, remote()).unwrap();
        let p = self
            .svc
            .authenticate_session(&out.secret, remote())
            .unwrap();
        let secret = self.svc.change_password(&p, LABEL, GOOD).unwrap();
        let p = self.svc.authenticate_session(&secret, remote()).unwrap();
        (secret, p)
    }
    fn advance(&self, secs: u64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
    }
}

const ANY: Requirement = Requirement {
    permission: Permission::DeviceRead,
    reauth: false,
    allowed_when: Allowed::Unrestricted,
};

/// S3.1-02 R2-1: the label password opens a session that can do nothing but change it.
#[test]
fn label_password_session_can_only_change_the_password() {
    let f = fixture();
    let out = f.svc.login("admin", LABEL, None, remote()).unwrap();
    assert!(out.session.must_change_password);
    let p = f.svc.authenticate_session(&out.secret, remote()).unwrap();
    assert!(matches!(
        p.check(ANY, f.svc.now()),
        Err(AuthError::PasswordChangeRequired)
    ));
    let new_secret = f.svc.change_password(&p, LABEL, GOOD).unwrap();
    assert_ne!(
        new_secret, out.secret,
        "session id must change at privilege change"
    );
    assert!(f.svc.authenticate_session(&out.secret, remote()).is_err());
    let p = f.svc.authenticate_session(&new_secret, remote()).unwrap();
    p.check(ANY, f.svc.now()).unwrap();
    assert!(
        f.svc.login("admin", LABEL, None, remote()).is_err(),
        "label password still works"
    );
}

/// S3.1-02: a weak new password is refused with its rule.
#[test]
fn weak_new_password_is_refused_with_the_rule() {
    let f = fixture();
    let out = f.svc.login("admin", LABEL, None, remote()).unwrap();
    let p = f.svc.authenticate_session(&out.secret, remote()).unwrap();
    match f.svc.change_password(&p, LABEL, "SN12345678abc") {
        Err(AuthError::PasswordRejected(r)) => assert_eq!(r.rule, mamori_password_policy::Rule::D),
        other => panic!("{other:?}"),
    }
}

/// S3.1-04 R1-1: the account locks after the threshold, and the right password is then
/// refused from an untrusted source, while the console still gets in.
#[test]
fn account_locks_after_threshold_but_console_still_logs_in() {
    let f = fixture();
    f.admin_session();
    for _ in 0..5 {
        assert!(matches!(
            f.svc.login("admin", "wrong-password-x", None, remote()),
            Err(AuthError::AuthenticationFailed)
        ));
    }
    assert!(f.audit.kinds().contains(&EventKind::LoginThresholdExceeded));
    let other = Origin::https("198.51.100.9".parse().unwrap());
    assert!(matches!(
        f.svc.login("admin", GOOD, None, other),
        Err(AuthError::AuthenticationFailed)
    ));
    f.svc.login("admin", GOOD, None, Origin::CONSOLE).unwrap();
    f.advance(61);
    f.svc.login("admin", GOOD, None, other).unwrap();
}

/// S3.1-04: a trusted management station is not blocked by a lock caused elsewhere.
#[test]
fn trusted_station_is_not_locked_out_by_an_attacker() {
    let f = fixture();
    let (_, admin) = f.admin_session();
    let mut admin = admin;
    admin.reauth_until = Some(f.svc.now() + 100);
    f.svc
        .set_access(
            &admin,
            AccessPolicy {
                allow: vec![],
                trusted: vec!["192.0.2.10/32".parse().unwrap()],
            },
            false,
        )
        .unwrap();
    for _ in 0..6 {
        let _ = f.svc.login("admin", "nope-nope-nope", None, remote());
    }
    assert!(f.svc.login("admin", GOOD, None, remote()).is_err());
    f.svc
        .login(
            "admin",
            GOOD,
            None,
            Origin::https("192.0.2.10".parse().unwrap()),
        )
        .unwrap();
}

/// S3.1-04 R1-2 ②: a source is throttled after its own failures, across usernames, and the
/// right password from it is refused while the block lasts.
#[test]
fn source_is_throttled_across_usernames() {
    let f = fixture();
    f.admin_session();
    for i in 0..10 {
        let _ = f
            .svc
            .login(&format!("nobody{i}"), "whatever-pass", None, remote());
    }
    assert!(matches!(
        f.svc.login("admin", GOOD, None, remote()),
        Err(AuthError::TooManyAttempts { .. })
    ));
    f.svc
        .login(
            "admin",
            GOOD,
            None,
            Origin::https("192.0.2.51".parse().unwrap()),
        )
        .unwrap();
}

/// S3.1-04: an unknown user gets the same answer as a wrong password, and locks the same way.
#[test]
fn unknown_user_is_indistinguishable_from_wrong_password() {
    let f = fixture();
    f.admin_session();
    let a = f
        .svc
        .login("ghost", "wrong-password-1", None, remote())
        .unwrap_err();
    let b = f
        .svc
        .login("admin", "wrong-password-1", None, remote())
        .unwrap_err();
    assert_eq!(a.to_string(), b.to_string());
}

/// S3.1-01 R3: idle and absolute timeouts end sessions, and the expiry is audited.
#[test]
fn sessions_expire_when_idle_and_absolutely() {
    let f = fixture();
    let (secret, _) = f.admin_session();
    f.advance(599);
    f.svc.authenticate_session(&secret, remote()).unwrap();
    f.advance(600);
    assert!(f.svc.authenticate_session(&secret, remote()).is_err());
    assert!(f.audit.kinds().contains(&EventKind::SessionExpired));
    let (secret, _) = f.admin_session_again();
    // Kept busy, it lives until the absolute limit (8 h) and not beyond.
    for _ in 0..48 {
        f.advance(590);
        f.svc.authenticate_session(&secret, remote()).unwrap();
    }
    f.advance(590);
    assert!(f.svc.authenticate_session(&secret, remote()).is_err());
}

impl Fixture {
    fn admin_session_again(&self) -> (String, Principal) {
        let out = self.svc.login("admin", GOOD, None, remote()).unwrap();
        let p = self
            .svc
            .authenticate_session(&out.secret, remote())
            .unwrap();
        (out.secret, p)
    }
}

/// S3.1-01 R2: sensitive operations need a fresh re-authentication, which expires.
#[test]
fn reauth_is_required_and_expires_after_five_minutes() {
    let f = fixture();
    let (secret, p) = f.admin_session();
    let req = Requirement {
        permission: Permission::UsersManage,
        reauth: true,
        allowed_when: Allowed::Unrestricted,
    };
    assert!(matches!(
        p.check(req, f.svc.now()),
        Err(AuthError::ReauthRequired)
    ));
    f.svc.reauthenticate(&p, GOOD, SecondFactor::None).unwrap();
    let p = f.svc.authenticate_session(&secret, remote()).unwrap();
    p.check(req, f.svc.now()).unwrap();
    f.advance(301);
    let p = f.svc.authenticate_session(&secret, remote()).unwrap();
    assert!(matches!(
        p.check(req, f.svc.now()),
        Err(AuthError::ReauthRequired)
    ));
}

/// S3.1-01 R5: roles limit what a user can do; tokens never outrank their owner.
#[test]
fn roles_and_token_grants_are_limited() {
    assert!(!Role::Viewer.allows(Permission::UsersManage));
    assert!(!Role::Operator.allows(Permission::SecurityManage));
    assert!(!Role::Auditor.allows(Permission::UsersManage));
    assert!(Role::Auditor.allows(Permission::AuditRead));
    assert!(!Role::Viewer.allows(Permission::AuditRead));
    assert!(!Role::Operator.can_grant(Role::Admin));
    assert!(!Role::Auditor.can_grant(Role::Viewer));
}

/// TOTP: enrolment, login with code, replay refused, recovery code works once.
#[test]
fn totp_enrolment_login_replay_and_recovery_codes() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let e = f.svc.totp_enroll(&p).unwrap();
    assert!(e.otpauth_uri.contains("algorithm=SHA256"));
    let secret = BASE32_NOPAD.decode(e.secret.as_bytes()).unwrap();
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    let (codes, _) = f.svc.totp_verify(&p, &code).unwrap();
    assert_eq!(codes.len(), 10);
    assert!(matches!(
        f.svc.login("admin", GOOD, None, remote()),
        Err(AuthError::MfaRequired)
    ));
    // The code used for enrolment cannot be replayed.
    assert!(f.svc.login("admin", GOOD, Some(&code), remote()).is_err());
    f.advance(30);
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    f.svc.login("admin", GOOD, Some(&code), remote()).unwrap();
    assert!(
        f.svc.login("admin", GOOD, Some(&code), remote()).is_err(),
        "replay accepted"
    );
    f.svc
        .login("admin", GOOD, Some(&codes[0]), remote())
        .unwrap();
    assert!(
        f.svc
            .login("admin", GOOD, Some(&codes[0]), remote())
            .is_err(),
        "recovery code reused"
    );
}

/// The last enabled administrator cannot be removed, demoted or disabled.
#[test]
fn the_last_admin_cannot_be_removed() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let admin = Username::parse("admin").unwrap();
    assert!(matches!(
        f.svc.update_user(&p, &admin, Some(Role::Viewer), None),
        Err(AuthError::Conflict(_))
    ));
    assert!(matches!(
        f.svc.update_user(&p, &admin, None, Some(true)),
        Err(AuthError::Conflict(_))
    ));
}

/// S3.1-03 R4: the console recovery path resets a password and only works on the console.
#[test]
fn console_recovery_works_only_from_the_console() {
    let f = fixture();
    f.admin_session();
    let admin = Username::parse("admin").unwrap();
    assert!(f.svc.console_recover(&remote(), &admin, false).is_err());
    let otp_pw = f
        .svc
        .console_recover(&Origin::CONSOLE, &admin, false)
        .unwrap();
    let out = f.svc.login("admin", &otp_pw, None, remote()).unwrap();
    assert!(out.session.must_change_password);
    assert!(f.audit.kinds().contains(&EventKind::CredentialReset));
}

/// API tokens authenticate, carry their role, cannot pass the re-auth gate, and can be revoked.
#[test]
fn tokens_authenticate_until_revoked() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let t = f.svc.create_token(&p, "ci", Role::Viewer, 30).unwrap();
    let tp = f.svc.authenticate_token(&t.token, remote()).unwrap();
    assert_eq!(tp.role, Role::Viewer);
    let req = Requirement {
        permission: Permission::OwnAccount,
        reauth: true,
        allowed_when: Allowed::Unrestricted,
    };
    assert!(matches!(
        tp.check(req, f.svc.now()),
        Err(AuthError::TokenNotAllowed)
    ));
    f.svc.revoke_token(&p, &t.id).unwrap();
    assert!(f.svc.authenticate_token(&t.token, remote()).is_err());
    assert!(f.audit.kinds().contains(&EventKind::TokenUsed));
}

/// A new access policy that excludes the caller needs an explicit confirmation.
#[test]
fn allowlist_that_cuts_off_the_caller_needs_confirmation() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let policy = AccessPolicy {
        allow: vec!["10.9.9.0/24".parse().unwrap()],
        trusted: vec![],
    };
    assert!(matches!(
        f.svc.set_access(&p, policy.clone(), false),
        Err(AuthError::ConfirmationRequired(_))
    ));
    f.svc.set_access(&p, policy, true).unwrap();
}

/// S3.1-04: the administrator getting in through the console does not clear the lock that an
/// attacker earned, so the attacker gets no fresh attempts.
#[test]
fn a_console_login_leaves_the_remote_lock_in_place() {
    let f = fixture();
    f.admin_session();
    for _ in 0..5 {
        let _ = f.svc.login("admin", "wrong-password-x", None, remote());
    }
    f.svc.login("admin", GOOD, None, Origin::CONSOLE).unwrap();
    let other = Origin::https("198.51.100.9".parse().unwrap());
    assert!(matches!(
        f.svc.login("admin", GOOD, None, other),
        Err(AuthError::AuthenticationFailed)
    ));
}

/// S3.1-03 R4: a reset after a compromise also ends the user's API tokens.
#[test]
fn a_credential_reset_revokes_the_users_tokens() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let t = f.svc.create_token(&p, "ci", Role::Viewer, 30).unwrap();
    let admin = Username::parse("admin").unwrap();
    f.svc
        .console_recover(&Origin::CONSOLE, &admin, false)
        .unwrap();
    assert!(f.svc.authenticate_token(&t.token, remote()).is_err());
}

/// S3.1-03 R4: a sole administrator who lost the authenticator and the recovery codes gets
/// back in through the console, which can remove the second factor.
#[test]
fn console_recovery_can_remove_a_lost_second_factor() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let e = f.svc.totp_enroll(&p).unwrap();
    let secret = BASE32_NOPAD.decode(e.secret.as_bytes()).unwrap();
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    f.svc.totp_verify(&p, &code).unwrap();
    let admin = Username::parse("admin").unwrap();
    let pw = f
        .svc
        .console_recover(&Origin::CONSOLE, &admin, true)
        .unwrap();
    let out = f.svc.login("admin", &pw, None, remote()).unwrap();
    assert!(!out.session.mfa_enabled);
}
