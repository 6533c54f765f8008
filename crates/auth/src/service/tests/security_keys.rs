//! Security keys (WebAuthn, ES256) and the two-step login, with a software authenticator.

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use super::softkey::{Answer, SoftKey};
use super::*;

const OTHER: &str = "198.51.100.9";

fn other() -> Origin {
    Origin::https(OTHER.parse().unwrap())
}

fn events(f: &Fixture, kind: EventKind) -> Vec<Event> {
    f.audit
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event == kind)
        .cloned()
        .collect()
}

fn failure_reasons(f: &Fixture) -> Vec<String> {
    events(f, EventKind::LoginFailed)
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

impl Fixture {
    /// Registers a new ES256 key for the principal's account.
    fn register(&self, p: &Principal, name: &str) -> (SoftKey, SecurityKeyEnrolled) {
        let mut key = SoftKey::es256();
        let options = self.svc.security_key_register_begin(p, name).unwrap();
        let enrolled = self
            .svc
            .security_key_register_finish(p, &key.register(&options))
            .unwrap();
        (key, enrolled)
    }

    /// Step 1 from `origin`, expecting a second factor to be asked for.
    fn ticket(&self, user: &str, password: &str, origin: Origin) -> PendingLogin {
        match self.svc.login_password(user, password, origin).unwrap() {
            LoginStep::SecondFactor(p) => p,
            LoginStep::Done(_) => panic!("no second factor asked"),
        }
    }

    /// A full two-step login with a key.
    fn key_login(&self, key: &mut SoftKey, origin: Origin) -> Result<LoginOutcome, AuthError> {
        let t = self.ticket("admin", GOOD, origin);
        let options = self
            .svc
            .login_security_key_challenge(&t.ticket, origin)
            .unwrap();
        self.svc.login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&options)),
            origin,
        )
    }

    fn stored_admin(&self) -> User {
        self.svc.user(&Username::parse("admin").unwrap()).unwrap()
    }

    /// A second account with a session, its password already changed.
    fn user_session(&self, admin: &Principal, name: &str, role: Role) -> Principal {
        let username = Username::parse(name).unwrap();
        let pw = self
            .svc
            .create_user(admin, username, role, None)
            .unwrap()
            .unwrap();
        let out = self.svc.login(name, &pw, None, remote()).unwrap();
        let p = self
            .svc
            .authenticate_session(&out.secret, remote())
            .unwrap();
        let secret = self.svc.change_password(&p, &pw, GOOD).unwrap();
        self.svc.authenticate_session(&secret, remote()).unwrap()
    }

    fn require_mfa_for_admins(&self, p: &Principal) {
        let settings = AuthSettings {
            mfa_required_roles: vec![Role::Admin],
            ..self.svc.settings()
        };
        self.svc.set_settings(p, settings).unwrap();
    }
}

/// The options ask for exactly what the policy allows and what webauthn-rs asks of a security
/// key; a registered key then logs in through the two steps, and its use is recorded.
#[test]
fn a_registered_key_logs_in_in_two_steps() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let options = f.svc.security_key_register_begin(&p, "YubiKey 5").unwrap();
    let o = &options["publicKey"];
    assert_eq!(o["rp"]["id"], "localhost");
    assert_eq!(
        o["pubKeyCredParams"],
        serde_json::json!([{"type": "public-key", "alg": -7}]),
        "only ES256 may be requested"
    );
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["hints"], serde_json::json!(["security-key"]));
    assert_eq!(o["authenticatorSelection"]["residentKey"], "discouraged");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "preferred");
    assert_eq!(
        BASE64URL_NOPAD
            .decode(o["challenge"].as_str().unwrap().as_bytes())
            .unwrap()
            .len(),
        32
    );
    let mut key = SoftKey::es256();
    let enrolled = f
        .svc
        .security_key_register_finish(&p, &key.register(&options))
        .unwrap();
    assert_eq!(enrolled.key.name, "YubiKey 5");
    assert_eq!(enrolled.key.id.len(), 16);
    assert_eq!(enrolled.recovery_codes.as_ref().map(Vec::len), Some(10));
    assert!(enrolled.new_session_secret.is_none());
    let listed = f.svc.security_keys(&p).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, enrolled.key.id);
    assert!(listed[0].last_used_at.is_none());
    let registered = events(&f, EventKind::MfaChanged);
    let last = registered.last().unwrap();
    assert_eq!(last.details["action"], "security_key_registered");
    assert_eq!(last.details["key"], enrolled.key.id.as_str());
    assert_eq!(last.details["name"], "YubiKey 5");

    // The password alone no longer opens a session, in either login.
    assert!(matches!(
        f.svc.login("admin", GOOD, None, remote()),
        Err(AuthError::MfaRequired)
    ));
    let t = f.ticket("admin", GOOD, remote());
    assert_eq!(
        t.methods,
        SecondFactorMethods {
            totp: false,
            security_key: true,
            recovery_code: true
        }
    );
    assert!(t.expires_at > f.svc.now() && t.expires_at <= f.svc.now() + 300);
    assert!(!format!("{t:?}").contains(&t.ticket), "ticket in Debug");
    let request = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    let allowed = &request["publicKey"]["allowCredentials"];
    assert_eq!(allowed.as_array().unwrap().len(), 1);
    assert_eq!(allowed[0]["id"], BASE64URL_NOPAD.encode(&key.cred_id));
    assert_eq!(request["publicKey"]["rpId"], "localhost");
    f.advance(5);
    let out = f
        .svc
        .login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&request)),
            remote(),
        )
        .unwrap();
    assert!(out.session.mfa_enabled);
    f.svc.authenticate_session(&out.secret, remote()).unwrap();
    let login = events(&f, EventKind::LoginSucceeded);
    let last = login.last().unwrap();
    assert_eq!(last.details["mfa"], true);
    assert_eq!(last.details["factor"], "security_key");
    let stored = &f.stored_admin().security_keys[0];
    assert_eq!(stored.credential.counter, 1);
    assert_eq!(stored.last_used_at, Some(f.svc.now()));
    assert_eq!(
        f.svc.security_keys(&p).unwrap()[0].last_used_at,
        Some(f.svc.now())
    );
    // The key is excluded from a further registration of the same account.
    let again = f.svc.security_key_register_begin(&p, "spare").unwrap();
    assert_eq!(
        again["publicKey"]["excludeCredentials"][0]["id"],
        BASE64URL_NOPAD.encode(&key.cred_id)
    );
}

/// An account without a second factor is logged in by step 1 alone.
#[test]
fn without_a_second_factor_the_password_step_opens_the_session() {
    let f = fixture();
    f.admin_session();
    match f.svc.login_password("admin", GOOD, remote()).unwrap() {
        LoginStep::Done(out) => assert!(!out.session.mfa_enabled),
        LoginStep::SecondFactor(_) => panic!("asked for a factor the account has not"),
    }
    assert!(matches!(
        f.svc.login_password("admin", "wrong-password-x", remote()),
        Err(AuthError::AuthenticationFailed)
    ));
    assert!(matches!(
        f.svc.login_password("ghost", "wrong-password-x", remote()),
        Err(AuthError::AuthenticationFailed)
    ));
}

/// A wrong signature, an answer to another challenge, from another origin or for another RP
/// id is refused and counted like a wrong password: five lock the account, and then even the
/// right key does not get in from an untrusted source.
#[test]
fn wrong_assertions_are_refused_and_lock_the_account() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let (mut key, _) = f.register(&p, "key");
    let wrong: [(&str, Answer); 3] = [
        (
            "signature",
            Answer {
                bad_signature: true,
                ..Answer::default()
            },
        ),
        (
            "origin",
            Answer {
                origin: "https://evil.example".into(),
                ..Answer::default()
            },
        ),
        (
            "rp id",
            Answer {
                rp_id: Some("evil.example".into()),
                ..Answer::default()
            },
        ),
    ];
    for (what, how) in &wrong {
        let t = f.ticket("admin", GOOD, remote());
        let request = f
            .svc
            .login_security_key_challenge(&t.ticket, remote())
            .unwrap();
        let r = f.svc.login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert_as(&request, how)),
            remote(),
        );
        assert!(matches!(r, Err(AuthError::MfaRequired)), "{what}: {r:?}");
    }
    // An answer to an earlier challenge: a new challenge replaced it.
    let t = f.ticket("admin", GOOD, remote());
    let earlier = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    f.svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    assert!(matches!(
        f.svc.login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&earlier)),
            remote()
        ),
        Err(AuthError::MfaRequired)
    ));
    // Not even JSON.
    f.svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::SecurityKey("{"), remote()),
        Err(AuthError::MfaRequired)
    ));
    let reasons = failure_reasons(&f);
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "wrong_second_factor")
            .count(),
        5,
        "{reasons:?}"
    );
    assert_eq!(events(&f, EventKind::LoginThresholdExceeded).len(), 1);
    assert!(f.stored_admin().locked_until.is_some());
    assert!(matches!(
        f.svc.login_password("admin", GOOD, remote()),
        Err(AuthError::AuthenticationFailed)
    ));
    // A ticket issued before the lock is refused too.
    let t = f.ticket("admin", GOOD, Origin::CONSOLE);
    let request = f
        .svc
        .login_security_key_challenge(&t.ticket, Origin::CONSOLE)
        .unwrap();
    f.svc
        .login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&request)),
            Origin::CONSOLE,
        )
        .unwrap();
    f.advance(61);
    f.key_login(&mut key, remote()).unwrap();
}

/// A ticket taken before the account is locked does not get past the lock.
#[test]
fn a_ticket_does_not_outlive_a_lock() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let (mut key, _) = f.register(&p, "key");
    let t = f.ticket("admin", GOOD, remote());
    for _ in 0..5 {
        let _ = f.svc.login("admin", "wrong-password-x", None, other());
    }
    let request = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    assert!(matches!(
        f.svc.login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&request)),
            remote()
        ),
        Err(AuthError::AuthenticationFailed)
    ));
    assert_eq!(failure_reasons(&f).last().unwrap(), "account_locked");
}

/// An assertion works once: not again on its ticket, not against a new challenge, and a
/// counter that goes backwards (a cloned key) is refused and counted.
#[test]
fn a_replayed_assertion_is_refused() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let (mut key, _) = f.register(&p, "key");
    let t = f.ticket("admin", GOOD, remote());
    let request = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    let assertion = key.assert(&request);
    f.svc
        .login_second_factor(&t.ticket, SecondFactor::SecurityKey(&assertion), remote())
        .unwrap();
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::SecurityKey(&assertion), remote()),
        Err(AuthError::Unauthenticated)
    ));
    let t = f.ticket("admin", GOOD, remote());
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::SecurityKey(&assertion), remote()),
        Err(AuthError::InvalidRequest(_))
    ));
    f.svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::SecurityKey(&assertion), remote()),
        Err(AuthError::MfaRequired)
    ));
    // The challenge answers once, even wrongly.
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::SecurityKey(&assertion), remote()),
        Err(AuthError::InvalidRequest(_))
    ));

    f.key_login(&mut key, remote()).unwrap();
    let counter = f.stored_admin().security_keys[0].credential.counter;
    key.counter = counter - 1;
    assert!(matches!(
        f.key_login(&mut key, remote()),
        Err(AuthError::MfaRequired)
    ));
    assert_eq!(
        failure_reasons(&f).last().unwrap(),
        "security_key_counter_regression"
    );
    assert_eq!(
        f.stored_admin().security_keys[0].credential.counter,
        counter
    );
}

/// WebAuthn §7.1 step 22: a credential registered to one account cannot be registered to
/// another (nor twice to the same).
#[test]
fn a_credential_id_belongs_to_one_account() {
    let f = fixture();
    let (_, admin) = f.admin_session();
    let alice = f.user_session(&admin, "alice", Role::Operator);
    let (mut key, _) = f.register(&admin, "shared");
    let options = f.svc.security_key_register_begin(&alice, "mine").unwrap();
    assert!(matches!(
        f.svc
            .security_key_register_finish(&alice, &key.register(&options)),
        Err(AuthError::Conflict(_))
    ));
    assert!(f.svc.security_keys(&alice).unwrap().is_empty());
    let options = f.svc.security_key_register_begin(&admin, "again").unwrap();
    assert!(matches!(
        f.svc
            .security_key_register_finish(&admin, &key.register(&options)),
        Err(AuthError::InvalidRequest(_))
    ));
    assert_eq!(f.svc.security_keys(&admin).unwrap().len(), 1);
}

/// Only ES256 keys: an ES384 or RS256 credential is refused even if the browser sends it.
#[test]
fn only_es256_keys_can_be_registered() {
    let f = fixture();
    let (_, p) = f.admin_session();
    for mut key in [SoftKey::es384(), SoftKey::rs256()] {
        let options = f.svc.security_key_register_begin(&p, "key").unwrap();
        match f
            .svc
            .security_key_register_finish(&p, &key.register(&options))
        {
            Err(AuthError::InvalidRequest(m)) => assert!(m.to_string().contains("ES256"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(f.svc.security_keys(&p).unwrap().is_empty());
    assert!(!f.stored_admin().mfa_enabled());
    f.register(&p, "key");
}

/// A registration must answer its own options, from the UI's origin, for the RP id; it is
/// finished once; names are checked; tokens cannot register keys.
#[test]
fn registration_checks_its_answer() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let mut key = SoftKey::es256();
    for how in [
        Answer {
            origin: "https://localhost.evil.example".into(),
            ..Answer::default()
        },
        Answer {
            rp_id: Some("evil.example".into()),
            ..Answer::default()
        },
    ] {
        let options = f.svc.security_key_register_begin(&p, "key").unwrap();
        assert!(matches!(
            f.svc
                .security_key_register_finish(&p, &key.register_as(&options, &how)),
            Err(AuthError::InvalidRequest(_))
        ));
    }
    let options = f.svc.security_key_register_begin(&p, "key").unwrap();
    f.svc.security_key_register_begin(&p, "key").unwrap();
    assert!(matches!(
        f.svc
            .security_key_register_finish(&p, &key.register(&options)),
        Err(AuthError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.svc
            .security_key_register_finish(&p, &key.register(&options)),
        Err(AuthError::Conflict(_))
    ));
    let long = "k".repeat(65);
    for bad in ["", "   ", "a\u{7}b", long.as_str()] {
        assert!(matches!(
            f.svc.security_key_register_begin(&p, bad),
            Err(AuthError::InvalidRequest(_))
        ));
    }
    f.svc
        .security_key_register_begin(&p, &"鍵".repeat(64))
        .unwrap();
    let token = f.svc.create_token(&p, "ci", Role::Admin, 1).unwrap();
    let tp = f.svc.authenticate_token(&token.token, remote()).unwrap();
    assert!(matches!(
        f.svc.security_key_register_begin(&tp, "key"),
        Err(AuthError::TokenNotAllowed)
    ));
    assert!(matches!(
        f.svc.security_key_register_finish(&tp, "{}"),
        Err(AuthError::TokenNotAllowed)
    ));
    assert!(matches!(
        f.svc.reauth_security_key_challenge(&tp),
        Err(AuthError::TokenNotAllowed)
    ));
    assert!(f.svc.security_keys(&p).unwrap().is_empty());
}

/// A ticket lives five minutes, works only from the address and channel it was issued to,
/// allows three attempts and one success.
#[test]
fn tickets_expire_stay_with_their_source_and_work_once() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let (mut key, enrolled) = f.register(&p, "key");
    let codes = enrolled.recovery_codes.unwrap();

    let t = f.ticket("admin", GOOD, remote());
    for origin in [other(), Origin::CONSOLE] {
        assert!(matches!(
            f.svc.login_security_key_challenge(&t.ticket, origin),
            Err(AuthError::Unauthenticated)
        ));
        assert!(matches!(
            f.svc
                .login_second_factor(&t.ticket, SecondFactor::Code(&codes[0]), origin),
            Err(AuthError::Unauthenticated)
        ));
    }
    // The same address, IPv4-mapped, is the same source.
    let mapped = Origin::https(format!("::ffff:{REMOTE}").parse().unwrap());
    f.svc
        .login_second_factor(&t.ticket, SecondFactor::Code(&codes[0]), mapped)
        .unwrap();
    // Single use.
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::Code(&codes[1]), remote()),
        Err(AuthError::Unauthenticated)
    ));
    assert!(matches!(
        f.svc
            .login_second_factor("not-a-ticket", SecondFactor::Code(&codes[1]), remote()),
        Err(AuthError::Unauthenticated)
    ));

    // Expiry.
    let t = f.ticket("admin", GOOD, remote());
    f.advance(299);
    let request = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    f.advance(1);
    assert!(matches!(
        f.svc.login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert(&request)),
            remote()
        ),
        Err(AuthError::Unauthenticated)
    ));

    // Three attempts; no factor at all does not use one.
    let t = f.ticket("admin", GOOD, remote());
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::None, remote()),
        Err(AuthError::MfaRequired)
    ));
    for _ in 0..3 {
        assert!(matches!(
            f.svc
                .login_second_factor(&t.ticket, SecondFactor::Code("0000-0000"), remote()),
            Err(AuthError::MfaRequired)
        ));
    }
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::Code(&codes[1]), remote()),
        Err(AuthError::Unauthenticated)
    ));
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 9, "code used");

    // A password changed since step 1 voids the ticket.
    let t = f.ticket("admin", GOOD, remote());
    f.svc
        .change_password(&p, GOOD, "other-Kettle-58-lantern")
        .unwrap();
    assert!(matches!(
        f.svc
            .login_second_factor(&t.ticket, SecondFactor::Code(&codes[1]), remote()),
        Err(AuthError::Unauthenticated)
    ));
}

/// One account may hold a few pending logins; more push out its oldest, not anyone else's.
#[test]
fn pending_logins_are_capped_per_user() {
    let f = fixture();
    let (_, p) = f.admin_session();
    f.register(&p, "key");
    let first = f.ticket("admin", GOOD, remote());
    for _ in 0..8 {
        f.ticket("admin", GOOD, remote());
    }
    assert_eq!(f.svc.volatile().tickets.len(), 8);
    assert!(matches!(
        f.svc.login_security_key_challenge(&first.ticket, remote()),
        Err(AuthError::Unauthenticated)
    ));
}

/// Recovery codes belong to the account: issued with its first factor only, used with any,
/// and gone with its last.
#[test]
fn recovery_codes_come_with_the_first_factor_and_go_with_the_last() {
    let f = fixture();
    let (_, p) = f.admin_session();
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 0);
    let (_, enrolled) = f.register(&p, "first");
    let codes = enrolled.recovery_codes.unwrap();
    let (_, second) = f.register(&p, "second");
    assert!(second.recovery_codes.is_none(), "codes issued twice");
    // TOTP after a key: no new codes, the old ones stay valid.
    let e = f.svc.totp_enroll(&p).unwrap();
    let secret = BASE32_NOPAD.decode(e.secret.as_bytes()).unwrap();
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    let (totp_codes, _) = f.svc.totp_verify(&p, &code).unwrap();
    assert!(totp_codes.is_empty());
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 10);
    // The one-shot login takes a recovery code for an account with keys.
    f.svc
        .login("admin", GOOD, Some(&codes[0]), remote())
        .unwrap();
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 9);
    let login = events(&f, EventKind::LoginSucceeded);
    assert_eq!(login.last().unwrap().details["factor"], "recovery_code");

    for k in f.svc.security_keys(&p).unwrap() {
        f.svc.security_key_remove(&p, &k.id).unwrap();
    }
    assert_eq!(
        f.svc.recovery_codes_left(&p).unwrap(),
        9,
        "TOTP still there"
    );
    let removed = events(&f, EventKind::MfaChanged);
    assert_eq!(
        removed.last().unwrap().details["action"],
        "security_key_removed"
    );
    assert_eq!(removed.last().unwrap().details["name"], "second");
    f.svc.totp_disable(&p).unwrap();
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 0);
    assert!(!f.stored_admin().mfa_enabled());
    assert!(matches!(
        f.svc.security_key_remove(&p, "0011223344556677"),
        Err(AuthError::NotFound(_))
    ));

    // TOTP first: its codes; a key after it adds none.
    let e = f.svc.totp_enroll(&p).unwrap();
    let secret = BASE32_NOPAD.decode(e.secret.as_bytes()).unwrap();
    f.advance(30);
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    let (totp_codes, _) = f.svc.totp_verify(&p, &code).unwrap();
    assert_eq!(totp_codes.len(), 10);
    let (_, enrolled) = f.register(&p, "later");
    assert!(enrolled.recovery_codes.is_none());
    // Removing TOTP leaves the key, and the codes with it.
    f.svc.totp_disable(&p).unwrap();
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 10);
    f.svc
        .login("admin", GOOD, Some(&totp_codes[3]), remote())
        .unwrap();
    // With a key only, a TOTP-looking code is just wrong, and nothing is MfaRequired.
    let e = f.svc.login("admin", GOOD, None, remote()).unwrap_err();
    assert!(matches!(e, AuthError::MfaRequired));
    assert!(e.to_string().contains("security key"), "{e}");
    assert!(
        f.svc
            .login("admin", GOOD, Some("123456"), remote())
            .is_err()
    );
}

/// A role that requires MFA cannot remove its last factor, whichever kind it is.
#[test]
fn a_required_role_keeps_its_last_factor() {
    let f = fixture();
    let (_, p) = f.admin_session();
    let (_, first) = f.register(&p, "first");
    let (_, second) = f.register(&p, "second");
    f.require_mfa_for_admins(&p);
    f.svc.security_key_remove(&p, &first.key.id).unwrap();
    assert!(matches!(
        f.svc.security_key_remove(&p, &second.key.id),
        Err(AuthError::Conflict(_))
    ));
    let e = f.svc.totp_enroll(&p).unwrap();
    let secret = BASE32_NOPAD.decode(e.secret.as_bytes()).unwrap();
    let code = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    f.svc.totp_verify(&p, &code).unwrap();
    f.svc.security_key_remove(&p, &second.key.id).unwrap();
    assert!(matches!(
        f.svc.totp_disable(&p),
        Err(AuthError::Conflict(_))
    ));
    assert!(f.stored_admin().has_totp());
    assert_eq!(f.svc.recovery_codes_left(&p).unwrap(), 10);
}

/// A session limited to MFA enrolment is freed by registering a key, under a new secret.
#[test]
fn registering_a_key_lifts_the_enrolment_restriction() {
    let f = fixture();
    let (_, p) = f.admin_session();
    f.require_mfa_for_admins(&p);
    let out = f.svc.login("admin", GOOD, None, remote()).unwrap();
    assert!(out.session.mfa_enrollment_required);
    let limited = f.svc.authenticate_session(&out.secret, remote()).unwrap();
    assert!(matches!(
        limited.check(ANY, f.svc.now()),
        Err(AuthError::MfaEnrollmentRequired)
    ));
    let (_, enrolled) = f.register(&limited, "key");
    let new = enrolled.new_session_secret.expect("a new secret");
    assert_ne!(new, out.secret);
    assert!(f.svc.authenticate_session(&out.secret, remote()).is_err());
    let freed = f.svc.authenticate_session(&new, remote()).unwrap();
    freed.check(ANY, f.svc.now()).unwrap();
    assert_eq!(enrolled.recovery_codes.map(|c| c.len()), Some(10));
}

/// Re-authentication takes a security key through its own challenge, once.
#[test]
fn reauthentication_with_a_security_key() {
    let f = fixture();
    let (secret, p) = f.admin_session();
    let (mut key, _) = f.register(&p, "key");
    assert!(matches!(
        f.svc.reauthenticate(&p, GOOD, SecondFactor::None),
        Err(AuthError::MfaRequired)
    ));
    let request = f.svc.reauth_security_key_challenge(&p).unwrap();
    let assertion = key.assert(&request);
    f.svc
        .reauthenticate(&p, GOOD, SecondFactor::SecurityKey(&assertion))
        .unwrap();
    let p = f.svc.authenticate_session(&secret, remote()).unwrap();
    assert!(p.reauth_until.is_some());
    assert!(matches!(
        f.svc
            .reauthenticate(&p, GOOD, SecondFactor::SecurityKey(&assertion)),
        Err(AuthError::InvalidRequest(_))
    ));
    let request = f.svc.reauth_security_key_challenge(&p).unwrap();
    assert!(matches!(
        f.svc.reauthenticate(
            &p,
            "wrong-password-x",
            SecondFactor::SecurityKey(&key.assert(&request))
        ),
        Err(AuthError::AuthenticationFailed)
    ));
    let request = f.svc.reauth_security_key_challenge(&p).unwrap();
    let bad = Answer {
        bad_signature: true,
        ..Answer::default()
    };
    assert!(matches!(
        f.svc.reauthenticate(
            &p,
            GOOD,
            SecondFactor::SecurityKey(&key.assert_as(&request, &bad))
        ),
        Err(AuthError::MfaRequired)
    ));
    assert_eq!(failure_reasons(&f).last().unwrap(), "wrong_second_factor");
    let reauth = events(&f, EventKind::Reauthenticated);
    let ok = reauth
        .iter()
        .find(|e| e.outcome == Outcome::Success)
        .unwrap();
    assert_eq!(ok.details["factor"], "security_key");
}

/// The console's recovery with `reset_mfa` removes keys and recovery codes too.
#[test]
fn console_recovery_removes_keys_and_codes() {
    let f = fixture();
    let (_, p) = f.admin_session();
    f.register(&p, "lost");
    let admin = Username::parse("admin").unwrap();
    let pw = f
        .svc
        .console_recover(&Origin::CONSOLE, &admin, true)
        .unwrap();
    let u = f.stored_admin();
    assert!(u.security_keys.is_empty() && u.recovery_codes.is_empty() && u.totp.is_none());
    assert!(
        !f.svc
            .login("admin", &pw, None, remote())
            .unwrap()
            .session
            .mfa_enabled
    );
}

/// Keys are bound to the RP id: after it changes, new ceremonies name the new id, an answer for
/// the old one is refused, and keys registered under the new id work at its origin, any port.
#[test]
fn the_rp_id_comes_from_the_settings() {
    let f = fixture();
    let (_, p) = f.admin_session();
    for bad in ["", "192.0.2.1", "gateway:8443", "Gateway.lan", "[::1]"] {
        let s = AuthSettings {
            webauthn_rp_id: bad.into(),
            ..f.svc.settings()
        };
        assert!(
            matches!(f.svc.set_settings(&p, s), Err(AuthError::InvalidRequest(_))),
            "{bad:?}"
        );
    }
    let (mut old_key, _) = f.register(&p, "old");
    let s = AuthSettings {
        webauthn_rp_id: "gateway.lan".into(),
        ..f.svc.settings()
    };
    f.svc.set_settings(&p, s).unwrap();
    assert!(matches!(
        f.key_login(&mut old_key, remote()),
        Err(AuthError::MfaRequired)
    ));
    let options = f.svc.security_key_register_begin(&p, "new").unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "gateway.lan");
    let at = |origin: &str| Answer {
        origin: origin.into(),
        ..Answer::default()
    };
    let mut key = SoftKey::es256();
    f.svc
        .security_key_register_finish(&p, &key.register_as(&options, &at("https://gateway.lan")))
        .unwrap();
    let t = f.ticket("admin", GOOD, remote());
    let request: Value = f
        .svc
        .login_security_key_challenge(&t.ticket, remote())
        .unwrap();
    assert_eq!(request["publicKey"]["rpId"], "gateway.lan");
    f.svc
        .login_second_factor(
            &t.ticket,
            SecondFactor::SecurityKey(&key.assert_as(&request, &at("https://gateway.lan:8443"))),
            remote(),
        )
        .unwrap();
}

/// Records written before security keys existed, with the recovery codes inside `totp`, load,
/// keep working, and are written back in the new layout.
#[test]
fn old_user_records_keep_their_recovery_codes() {
    let f = fixture();
    f.admin_session();
    let secret = vec![7u8; 32];
    let code = "abcd-efgh-jkmn-pqrs";
    let admin = f.stored_admin();
    let old = serde_json::json!({
        "username": "admin",
        "role": "admin",
        "password_hash": admin.password_hash,
        "must_change_password": false,
        "disabled": false,
        "created_at": 1_000_000,
        "password_changed_at": 1_000_000,
        "totp": {
            "secret": secret,
            "confirmed": true,
            "last_step": 0,
            "recovery_codes": [recovery_code_hash(code)],
        },
        "failed_logins": 0,
        "lock_count": 0,
        "locked_until": null,
    });
    f.svc
        .store
        .write(|tx| tx.put(Table::Users, "admin", &old))
        .unwrap();
    let u = f.stored_admin();
    assert!(u.has_totp() && !u.has_security_keys());
    assert_eq!(u.recovery_codes, vec![recovery_code_hash(code)]);
    let t = f.ticket("admin", GOOD, remote());
    assert!(t.methods.totp && t.methods.recovery_code && !t.methods.security_key);
    let totp = otp::totp_code(&secret, otp::time_step(f.svc.now()));
    f.svc.login("admin", GOOD, Some(&totp), remote()).unwrap();
    f.svc
        .login_second_factor(&t.ticket, SecondFactor::Code(code), remote())
        .unwrap();
    let stored: Value = f.svc.store.get(Table::Users, "admin").unwrap().unwrap();
    assert_eq!(stored["recovery_codes"], serde_json::json!([]));
    assert!(stored["totp"].get("recovery_codes").is_none());
    assert_eq!(stored["security_keys"], serde_json::json!([]));
}
