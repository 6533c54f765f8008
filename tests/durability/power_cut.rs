//! S3.1-33 R1: after a power cut the device keeps the authentication values and settings it had
//! just before, and never falls back to its factory state. Here the "power cut" is SIGKILL to
//! the parent and the management process at a random moment of a password change or a user
//! creation (PBKDF2 takes ~80 ms, so the kill lands before, during and after the commit).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

const OTHER_PASSWORD: &str = "Harbor-Violet-73-drift";
const USER_PASSWORD: &str = "Saffron-Ledger-46-tide";
const PASSWORD_ROUNDS: u32 = 20;
const USER_ROUNDS: u32 = 10;

/// The upper end of the kill delays: `factor` × the time one password hash took just before
/// (under the current load), at least `floor_ms`.
fn spread(one_hash: Duration, factor: u64, floor_ms: u64) -> u64 {
    (u64::try_from(one_hash.as_millis()).unwrap_or(u64::MAX) * factor).max(floor_ms)
}

/// A uniformly random delay in 0..=max_ms, from the OS CSPRNG.
fn random_delay(max_ms: u64) -> Duration {
    let b = mamori_crypto::random::bytes::<8>().unwrap();
    Duration::from_millis(u64::from_le_bytes(b) % (max_ms + 1))
}

/// Hands out a new loopback source per login, so no failed attempt is ever throttled.
struct Sources(u32);

impl Sources {
    fn next(&mut self) -> String {
        self.0 += 1;
        fresh_source(self.0)
    }
}

/// Starts the daemon again on the same state, and checks it did not re-provision itself.
fn restart_after_power_cut(d: &mut Device, label: &str, sources: &mut Sources) {
    d.label_password = None;
    d.spawn();
    wait_healthy(d);
    assert!(
        d.label_password.is_none(),
        "the device printed a new initial admin password: it came back in factory state"
    );
    let r = d.client_from(&sources.next()).login("admin", label);
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the label password works again: factory state ({})",
        r.text
    );
}

fn loosen_lockout(d: &Device) {
    let admin = d.admin();
    // Two logins per round fail on purpose (the password that no longer works, the label);
    // they must never lock the account and hide the result.
    set_auth_settings(&admin, |s| {
        s["lockout_threshold"] = json!(100);
        s["source_threshold"] = json!(1000);
    });
}

/// The device's provisioning happened once, whatever the number of restarts.
fn assert_provisioned_once(d: &Device, password: &str, sources: &mut Sources) {
    let c = d.client_from(&sources.next());
    assert_eq!(c.login("admin", password).status, StatusCode::OK);
    let all = audit(&c);
    assert_eq!(
        events(&all, "device_provisioned").len(),
        1,
        "provisioned more than once"
    );
    let started = events(&all, "service_started").len();
    eprintln!("audit: 1 device_provisioned, {started} service_started");
}

/// S3.1-33 R1: SIGKILL at a random moment (over about four password hashes, see [`spread`]) of a password change, twenty times:
/// after each restart exactly one of the old and the new password works, a change the client
/// saw acknowledged (204) is never lost, the store opens, and the label password never comes
/// back.
#[test]
fn a_power_cut_during_a_password_change_leaves_exactly_one_password_working() {
    let mut d = Device::start();
    let label = d.label_password.clone().unwrap();
    loosen_lockout(&d);
    let mut sources = Sources(0);
    let passwords = [ADMIN_PASSWORD, OTHER_PASSWORD];
    let mut current = 0;
    let (mut before_commit, mut after_commit, mut acknowledged) = (0, 0, 0);
    let started = Instant::now();
    for round in 1..=PASSWORD_ROUNDS {
        let (old, new) = (passwords[current], passwords[1 - current]);
        let c = d.client_from(&sources.next());
        let t = Instant::now();
        let r = c.login("admin", old);
        // A login is one PBKDF2; a change is two and a commit. Spreading the kill over four
        // logins' time (at least 250 ms) makes it land before, during and after the commit
        // whatever the load on the machine.
        let max_delay = spread(t.elapsed(), 4, 250);
        assert_eq!(r.status, StatusCode::OK, "round {round}: login: {}", r.text);
        let delay = random_delay(max_delay);
        let t = Instant::now();
        let request = std::thread::spawn(move || {
            c.http
                .post(format!("{}/api/v1/auth/password", c.base))
                .json(&json!({"current": old, "new": new}))
                .send()
                .ok()
                .map(|r| r.status())
        });
        std::thread::sleep(delay.saturating_sub(t.elapsed()));
        d.kill9();
        let killed_at = t.elapsed();
        let ack = request.join().unwrap();
        restart_after_power_cut(&mut d, &label, &mut sources);
        let old_works = d.client_from(&sources.next()).login("admin", old).status == StatusCode::OK;
        let new_works = d.client_from(&sources.next()).login("admin", new).status == StatusCode::OK;
        eprintln!(
            "round {round:2}: kill after {:4} ms (of 0-{max_delay}), answer {:?}: old {}, new {}",
            killed_at.as_millis(),
            ack.map(|s| s.as_u16()),
            if old_works { "works" } else { "refused" },
            if new_works { "works" } else { "refused" },
        );
        assert!(
            old_works != new_works,
            "round {round}: exactly one password must work (old {old_works}, new {new_works})"
        );
        if ack == Some(StatusCode::NO_CONTENT) {
            acknowledged += 1;
            assert!(new_works, "round {round}: an acknowledged change was lost");
        }
        if new_works {
            after_commit += 1;
            current = 1 - current;
        } else {
            before_commit += 1;
        }
    }
    eprintln!(
        "password change: {PASSWORD_ROUNDS} power cuts in {:.0} s: {before_commit} before the \
         commit (old password kept), {after_commit} after it (new password kept, \
         {acknowledged} of them acknowledged to the client)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(before_commit + after_commit, PASSWORD_ROUNDS);
    assert_provisioned_once(&d, passwords[current], &mut sources);
}

/// S3.1-33 R1: SIGKILL at a random moment (over about two password hashes, see [`spread`]) of a user creation, ten times: after the
/// restart the user either does not exist or exists completely (role, forced password change)
/// and logs in with its initial or one-time password; an acknowledged creation is never lost.
#[test]
fn a_power_cut_during_user_creation_leaves_no_user_or_a_complete_one() {
    let mut d = Device::start();
    let label = d.label_password.clone().unwrap();
    loosen_lockout(&d);
    let mut sources = Sources(0);
    let (mut missing, mut complete, mut acknowledged) = (0, 0, 0);
    let mut expected_users = vec!["admin".to_string()];
    for round in 1..=USER_ROUNDS {
        let name = format!("zz-cut-{round}");
        let with_password = round % 2 == 1;
        let c = d.client_from(&sources.next());
        assert_eq!(c.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
        let t = Instant::now();
        c.reauth(ADMIN_PASSWORD);
        // A creation with a given password is one PBKDF2 and a commit, like the reauth.
        let max_delay = spread(t.elapsed(), 2, 200);
        let mut body = json!({"username": name, "role": "operator"});
        if with_password {
            body["password"] = json!(USER_PASSWORD);
        }
        let delay = random_delay(max_delay);
        let t = Instant::now();
        let request = std::thread::spawn(move || {
            let r = c
                .http
                .post(format!("{}/api/v1/users", c.base))
                .json(&body)
                .send()
                .ok()?;
            let status = r.status();
            let body: Value = r.json().unwrap_or(Value::Null);
            Some((status, body))
        });
        std::thread::sleep(delay.saturating_sub(t.elapsed()));
        d.kill9();
        let killed_at = t.elapsed();
        let ack = request.join().unwrap();
        restart_after_power_cut(&mut d, &label, &mut sources);

        let admin = d.client_from(&sources.next());
        assert_eq!(admin.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
        let entry = user_entry(&admin, &name);
        let acked = ack.as_ref().filter(|(s, _)| *s == StatusCode::CREATED);
        eprintln!(
            "round {round:2}: kill after {:4} ms (of 0-{max_delay}), answer {:?}: user {}",
            killed_at.as_millis(),
            ack.as_ref().map(|(s, _)| s.as_u16()),
            if entry.is_some() { "exists" } else { "absent" }
        );
        if acked.is_some() {
            acknowledged += 1;
            assert!(
                entry.is_some(),
                "round {round}: an acknowledged user was lost"
            );
        }
        let Some(e) = entry else {
            missing += 1;
            continue;
        };
        complete += 1;
        expected_users.push(name.clone());
        assert_eq!(e["role"], "operator", "{e}");
        assert_eq!(e["disabled"], false, "{e}");
        assert_eq!(e["must_change_password"], true, "{e}");
        let password = if with_password {
            Some(USER_PASSWORD.to_string())
        } else {
            acked.and_then(|(_, b)| b["one_time_password"].as_str().map(str::to_string))
        };
        if let Some(pw) = password {
            let r = d.client_from(&sources.next()).login(&name, &pw);
            assert_eq!(
                r.status,
                StatusCode::OK,
                "round {round}: {name}: {}",
                r.text
            );
            assert_eq!(r.body["must_change_password"], true);
        }
    }
    // Nothing but the admin and the users whose creation went through exists.
    let admin = d.client_from(&sources.next());
    assert_eq!(admin.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    let mut listed: Vec<String> = admin
        .get("/api/v1/users")
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    expected_users.sort();
    assert_eq!(listed, expected_users);
    eprintln!(
        "user creation: {USER_ROUNDS} power cuts: {missing} users absent (cut before the \
         commit), {complete} complete ({acknowledged} acknowledged to the client)"
    );
    assert_provisioned_once(&d, ADMIN_PASSWORD, &mut sources);
}
