//! S3.1-04: brute force is made difficult. The account locks after the threshold and the lock
//! escalates; a source address is throttled after its own threshold; trusted stations and the
//! console keep working; nothing tells an attacker whether an account exists; and the device
//! never sleeps on a throttled source.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

const WRONG: &str = "Wrong-Guess-Hammer-71";

fn assert_failed(what: &str, r: &Answer) {
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "authentication_failed"),
        "{what}: {}",
        r.text
    );
}

/// S3.1-04 R1-1: five wrong passwords lock the account: the right password from the same
/// untrusted source then fails with the same 401 as a wrong one, other sources are locked out
/// too, the admin sees the lock and the audit log has `login_threshold_exceeded`.
#[test]
fn five_wrong_passwords_lock_the_account_so_the_right_one_then_fails_with_401() {
    let d = Device::start();
    let admin = d.admin();
    let attacker = d.client_from("127.0.0.2");
    for i in 1..=4 {
        assert_failed(
            &format!("wrong password {i}"),
            &attacker.login("admin", WRONG),
        );
    }
    assert!(
        events(&audit(&admin), "login_threshold_exceeded").is_empty(),
        "locked before the fifth failure"
    );
    let fifth = attacker.login("admin", WRONG);
    assert_failed("wrong password 5", &fifth);

    let right = attacker.login("admin", ADMIN_PASSWORD);
    assert_failed("right password while locked", &right);
    assert_eq!(
        right.text, fifth.text,
        "a locked account answers exactly like a wrong password"
    );
    assert_failed(
        "right password from another untrusted source",
        &d.client_from("127.0.0.3").login("admin", ADMIN_PASSWORD),
    );

    let all = audit(&admin);
    let locks = events(&all, "login_threshold_exceeded");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["actor"], "admin");
    assert_eq!(locks[0]["source"], "127.0.0.2");
    assert_eq!(locks[0]["details"]["threshold"], 5);
    assert_eq!(locks[0]["details"]["locked_seconds"], 60);
    let reasons: Vec<_> = events(&all, "login_failed")
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "account_locked"),
        "the refused right password is audited as account_locked: {reasons:?}"
    );
    let entry = user_entry(&admin, "admin").unwrap();
    let until = entry["locked_until"]
        .as_u64()
        .expect("admin shows as locked");
    assert!(until > unix_now() && until <= unix_now() + 61, "{entry}");
}

/// S3.1-04 R1-1 B): the lock is a suspension that ends by itself and doubles while the
/// attack goes on (10 s, then 20 s); a successful login afterwards starts over at the base.
#[test]
fn the_account_lock_expires_and_escalates_while_the_attack_continues() {
    let d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, |s| s["lockout_base_seconds"] = json!(10));

    // First lock: 10 s.
    let a = d.client_from("127.0.0.2");
    for _ in 0..5 {
        assert_failed("wrong", &a.login("admin", WRONG));
    }
    let t1 = Instant::now();
    assert_failed("locked", &a.login("admin", ADMIN_PASSWORD));
    std::thread::sleep(Duration::from_secs(12).saturating_sub(t1.elapsed()));

    // The lock has expired; the attack goes on from another address: second lock, 20 s.
    let b = d.client_from("127.0.0.3");
    for _ in 0..5 {
        assert_failed("wrong after the first lock", &b.login("admin", WRONG));
    }
    let t2 = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    assert_failed(
        "right password 12 s into the second (20 s) lock",
        &d.client_from("127.0.0.4").login("admin", ADMIN_PASSWORD),
    );
    std::thread::sleep(Duration::from_secs(22).saturating_sub(t2.elapsed()));
    let ok = d.client_from("127.0.0.4").login("admin", ADMIN_PASSWORD);
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "after the second lock: {}",
        ok.text
    );

    // A success resets the escalation: the next lock is 10 s again.
    let c = d.client_from("127.0.0.5");
    for _ in 0..5 {
        assert_failed("wrong after success", &c.login("admin", WRONG));
    }
    assert_failed(
        "right password in the third lock",
        &d.client().login("admin", ADMIN_PASSWORD),
    );
    // The session opened before the attack still reads the audit log: a lock stops logins,
    // not sessions.
    let seconds: Vec<u64> = events(&audit(&admin), "login_threshold_exceeded")
        .iter()
        .filter_map(|e| e["details"]["locked_seconds"].as_u64())
        .collect();
    assert_eq!(seconds, [10, 20, 10], "lock durations");
}

/// S3.1-04 R1-2 ②: ten failures from one address, spread over different usernames, throttle
/// that address: 429 `too_many_attempts` with `Retry-After`, even for the right password; other
/// addresses are unaffected and no account is locked by it.
#[test]
fn ten_failures_from_one_address_throttle_it_with_429_and_retry_after_but_not_others() {
    let d = Device::start();
    let admin = d.admin();
    let attacker = d.client_from("127.0.0.2");
    for i in 0..10 {
        let r = attacker.login(&format!("guess-user-{i}"), WRONG);
        assert_failed(&format!("failure {i}"), &r);
    }
    let r = attacker.login("admin", ADMIN_PASSWORD);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        "right password from the throttled address: {}",
        r.text
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_security_headers("429", &r.headers);

    let other = d.client_from("127.0.0.3").login("admin", ADMIN_PASSWORD);
    assert_eq!(
        other.status,
        StatusCode::OK,
        "other address: {}",
        other.text
    );

    let all = audit(&admin);
    let throttled = events(&all, "source_throttled");
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0]["source"], "127.0.0.2");
    assert!(
        events(&all, "login_threshold_exceeded").is_empty(),
        "one failure per username locks no account"
    );
    assert!(user_entry(&admin, "admin").unwrap()["locked_until"].is_null());
}

/// S3.1-04 R1-2 ②, IPv6: a source on ::1 is throttled like an IPv4 one. The harness always
/// listens on 127.0.0.1 (and mamorid takes one `--listen`), so this device is started on [::1].
#[test]
fn an_ipv6_source_is_throttled_after_ten_failures() {
    let d = Daemon::start("::1".parse().unwrap(), None);
    let admin = d.admin();
    let attacker = d.client_from("::1");
    for i in 0..10 {
        assert_failed("v6 failure", &attacker.login(&format!("guess-{i}"), WRONG));
    }
    let r = attacker.login("admin", ADMIN_PASSWORD);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        "{}",
        r.text
    );
    assert!(r.headers.get("retry-after").is_some());
    let throttled = events(&audit(&admin), "source_throttled")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0]["source"], "::1");
}

/// S3.1-04 with S3.1-01 R7: a trusted management station still logs in while another address
/// has brute-forced the account into its lock; untrusted addresses stay locked out.
#[test]
fn a_trusted_station_logs_in_while_an_attacker_has_locked_the_account() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put(
        "/api/v1/settings/access",
        &json!({"allow": [], "trusted": ["127.0.0.5/32"]}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let attacker = d.client_from("127.0.0.6");
    for _ in 0..5 {
        assert_failed("attack", &attacker.login("admin", WRONG));
    }
    assert_failed(
        "attacker with the right password",
        &attacker.login("admin", ADMIN_PASSWORD),
    );
    assert_failed(
        "untrusted station",
        &d.client_from("127.0.0.7").login("admin", ADMIN_PASSWORD),
    );
    let trusted = d.client_from("127.0.0.5");
    let r = trusted.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::OK, "trusted station: {}", r.text);
    assert_eq!(trusted.get("/api/v1/users").status, StatusCode::OK);
    // The trusted login does not lift the lock for everybody else.
    assert_failed(
        "untrusted station after the trusted login",
        &d.client_from("127.0.0.7").login("admin", ADMIN_PASSWORD),
    );
    assert_eq!(events(&audit(&admin), "login_threshold_exceeded").len(), 1);
}

/// S3.1-04 R1-1 and S3.1-01 R6: the local console logs in while the network has locked the
/// account (so an attacker cannot lock the owner out of the device).
#[test]
fn the_console_logs_in_while_the_network_has_locked_the_account() {
    let d = Device::start();
    let _admin = d.admin();
    let attacker = d.client_from("127.0.0.6");
    for _ in 0..5 {
        assert_failed("attack", &attacker.login("admin", WRONG));
    }
    assert_failed("network", &d.client().login("admin", ADMIN_PASSWORD));
    let r = console_login(&d, "admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "console: {}", r.text);
    assert_eq!(r.body["channel"], "console");
    let cookie = r.session_cookie().expect("console session");
    let users = console(&d, "GET", "/api/v1/users", None, Some(&cookie));
    assert_eq!(users.status, 200, "{}", users.text);
    // The console login does not lift the network lock.
    assert_failed(
        "network after the console login",
        &d.client_from("127.0.0.7").login("admin", ADMIN_PASSWORD),
    );
}

/// S3.1-04 R1-1 (local authentication too): wrong passwords on the console throttle the
/// console after ten failures (429, even for the right password), but never lock the account
/// for the network.
#[test]
fn console_failures_throttle_the_console_but_never_lock_the_account() {
    let d = Device::start();
    let admin = d.admin();
    for i in 0..10 {
        let r = console_login(&d, "admin", WRONG);
        assert_eq!(
            (r.status, r.code()),
            (401, "authentication_failed"),
            "console failure {i}: {}",
            r.text
        );
    }
    let r = console_login(&d, "admin", ADMIN_PASSWORD);
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts"),
        "console after ten failures: {}",
        r.text
    );
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    let net = d.client_from("127.0.0.8").login("admin", ADMIN_PASSWORD);
    assert_eq!(
        net.status,
        StatusCode::OK,
        "ten console failures must not lock the account: {}",
        net.text
    );
    let all = audit(&admin);
    assert!(events(&all, "login_threshold_exceeded").is_empty());
    let throttled = events(&all, "source_throttled");
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0]["source"], "console");
}

/// S3.1-04: no username enumeration. An unknown username, a wrong password for `admin` and
/// the right password for a locked `admin` all get the same status and byte-identical bodies,
/// and unknown and known usernames take alike long (both run one PBKDF2).
#[test]
fn unknown_usernames_and_wrong_passwords_look_and_take_the_same() {
    let d = Device::start();
    let _admin = d.admin();
    const TRIES: u32 = 8;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut bodies = std::collections::BTreeSet::new();
    for i in 0..TRIES {
        // A fresh address per try keeps the source throttle out of the measurement; the
        // connection is set up first so only the login is timed.
        for (user, samples) in [("admin", &mut known), ("nobody-here-at-all", &mut unknown)] {
            let c = raw_client(&d, &fresh_source(i * 2 + u32::from(user == "admin")));
            assert_eq!(
                c.get(d.url("/healthz")).send().unwrap().status(),
                StatusCode::OK
            );
            let t = Instant::now();
            let r = answer(
                c.post(d.url("/api/v1/auth/login"))
                    .json(&json!({"username": user, "password": WRONG}))
                    .send()
                    .unwrap(),
            );
            samples.push(t.elapsed());
            assert_failed(user, &r);
            assert!(set_session_cookie(&r).is_none());
            bodies.insert((r.status.as_u16(), r.text));
        }
    }
    // By now admin is locked (8 failures ≥ 5): the right password answers the same too.
    let locked = d
        .client_from(&fresh_source(100))
        .login("admin", ADMIN_PASSWORD);
    bodies.insert((locked.status.as_u16(), locked.text.clone()));
    assert_eq!(bodies.len(), 1, "answers differ: {bodies:?}");

    let k = median_ms(&mut known);
    let u = median_ms(&mut unknown);
    eprintln!(
        "login timing over {TRIES} tries each: wrong password for admin median {k:.1} ms, \
         unknown username median {u:.1} ms (ratio {:.2})",
        k / u
    );
    assert!(
        k / u < 2.0 && u / k < 2.0,
        "timing reveals whether an account exists: known {k:.1} ms vs unknown {u:.1} ms"
    );
    assert!(
        k > 20.0 && u > 20.0,
        "both should include a password hash: {k:.1} / {u:.1} ms"
    );
}

/// S3.1-04: throttling never sleeps. While one address is throttled and keeps hammering, a
/// login from another address answers within 2 s, and the throttled answers come at once.
#[test]
fn a_throttled_address_never_slows_down_a_login_from_another() {
    let d = Device::start();
    let _admin = d.admin();
    let attacker = d.client_from("127.0.0.2");
    for i in 0..10 {
        attacker.login(&format!("guess-{i}"), WRONG);
    }
    assert_eq!(
        attacker.login("admin", WRONG).status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let hammer = std::thread::spawn(move || {
        let mut slowest = Duration::ZERO;
        for _ in 0..30 {
            let t = Instant::now();
            let r = attacker.login("admin", WRONG);
            slowest = slowest.max(t.elapsed());
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        }
        slowest
    });
    std::thread::sleep(Duration::from_millis(50));
    let other = d.client_from("127.0.0.3");
    let t = Instant::now();
    let r = other.login("admin", ADMIN_PASSWORD);
    let took = t.elapsed();
    let slowest = hammer.join().unwrap();
    eprintln!(
        "login from another address took {} ms while 127.0.0.2 was throttled; slowest 429 {} ms",
        took.as_millis(),
        slowest.as_millis()
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a throttled answer took {slowest:?}"
    );
}
