//! Every event class of S3.1-35 R1 (A–I) produced by a real action against the running device.
//!
//! Each device runs in a network namespace of its own (`Device::builder().netns()`), so its
//! monitors see only the links, routes and rulesets its own test changes, and every record is
//! read back over HTTPS through `GET /api/v1/audit/events`. D (time) is in `time.rs`. USB
//! (G, `usb_device_added`/`usb_device_removed`) needs a device plugged into a real port and is
//! not covered here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// How long a monitor or the log may take to show a record.
const WAIT: Duration = Duration::from_secs(15);

/// The records of one event kind, oldest first.
fn events(c: &Client, kind: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/v1/audit/events?limit=1000&event={kind}"));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().expect("event list").clone()
}

/// Waits until a record of `kind` satisfies `pred`, and returns it; fails with every record
/// of that kind read.
fn wait_for(c: &Client, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    let ok = eventually(WAIT, || {
        found = events(c, kind).into_iter().find(|e| pred(e));
        found.is_some()
    });
    assert!(
        ok,
        "no {kind} record {what} within {WAIT:?}; {kind} records: {:#?}",
        events(c, kind)
    );
    found.unwrap()
}

/// Waits until there are `n` records of `kind` satisfying `pred`, and returns them.
fn wait_count(
    c: &Client,
    kind: &str,
    n: usize,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut found = Vec::new();
    let ok = eventually(WAIT, || {
        found = events(c, kind).into_iter().filter(|e| pred(e)).collect();
        found.len() >= n
    });
    assert!(
        ok,
        "expected {n} {kind} records {what} within {WAIT:?}; {kind} records: {:#?}",
        events(c, kind)
    );
    found
}

/// Whether a record's details name interface `name`.
fn names(name: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["details"]["interface"] == name
}

/// A device in its own network namespace, with the admin logged in; `None` without root.
fn device_in_netns() -> Option<(Device, Client)> {
    if !is_root() {
        eprintln!("skipped: a network namespace needs root");
        return None;
    }
    let d = Device::builder().netns().start();
    let admin = d.admin();
    Some((d, admin))
}

/// The MAC address of an interface inside the namespace, as the kernel shows it.
fn mac(ns: &Netns, interface: &str) -> String {
    let out = ns.run(&["cat", &format!("/sys/class/net/{interface}/address")]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// S3.1-35 R1 A, G, H from the kernel of the device's own namespace: a veth pair added
/// (`interface_added`), its carrier lost and back (`link_down`/`link_up`) while it carries the
/// default route (`upstream_lost`/`upstream_restored`), the default route removed and added
/// again (upstream lost and restored for that reason), an nftables table added and deleted
/// (`firewall_ruleset_changed`, one per generation), and the pair deleted
/// (`interface_removed`).
#[test]
fn network_events_a_g_h_come_from_the_kernel() {
    let Some((d, admin)) = device_in_netns() else {
        return;
    };
    let ns = d.netns().unwrap();

    // G: hardware (network interface) added.
    ns.run(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1",
    ]);
    for name in ["up0", "up1"] {
        let e = wait_for(&admin, "interface_added", name, names(name));
        assert_eq!(e["outcome"], "success", "{e}");
        assert_eq!(e["details"]["kind"], "veth", "{e}");
        assert_eq!(e["details"]["mac"], mac(ns, name).as_str(), "{e}");
        assert!(e["details"]["index"].as_u64().unwrap() > 1, "{e}");
    }

    // A: the link comes up (both ends up: carrier), then carries the default route.
    ns.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up0"]);
    ns.run(&["ip", "link", "set", "up0", "up"]);
    ns.run(&["ip", "link", "set", "up1", "up"]);
    let up = wait_for(&admin, "link_up", "for up0", names("up0"));
    assert_eq!(up["details"]["carrier"], true, "{up}");
    assert_eq!(up["details"]["admin_up"], true, "{up}");
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "up0",
    ]);

    // A: the peer goes down: up0 loses carrier, and with it the only default route.
    ns.run(&["ip", "link", "set", "up1", "down"]);
    let down = wait_for(&admin, "link_down", "for up0", names("up0"));
    assert_eq!(down["details"]["carrier"], false, "{down}");
    assert_eq!(down["details"]["admin_up"], true, "{down}");
    assert_eq!(down["details"]["kind"], "veth", "{down}");
    let lost = wait_for(&admin, "upstream_lost", "for ipv4", |e| {
        e["details"]["family"] == "ipv4"
    });
    let route = &lost["details"]["default_routes"][0];
    assert_eq!(route["gateway"], "192.0.2.1", "{lost}");
    assert_eq!(route["interfaces"][0]["interface"], "up0", "{lost}");
    assert_eq!(route["interfaces"][0]["up"], false, "{lost}");
    assert!(
        lost["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("no default route's interface has link"),
        "{lost}"
    );

    // A: the peer comes back: link up again (perhaps after the one-second damping window)
    // and the upstream restored.
    ns.run(&["ip", "link", "set", "up1", "up"]);
    let restored = wait_for(&admin, "upstream_restored", "for ipv4", |e| {
        e["details"]["family"] == "ipv4"
    });
    assert_eq!(
        restored["details"]["default_routes"][0]["interfaces"][0]["up"], true,
        "{restored}"
    );
    let ups = wait_count(&admin, "link_up", 2, "for up0", names("up0"));
    assert_eq!(ups.last().unwrap()["details"]["carrier"], true, "{ups:?}");

    // A: the default route itself removed, then added again.
    ns.run(&["ip", "route", "del", "default"]);
    let lost = wait_for(&admin, "upstream_lost", "for the removed route", |e| {
        e["details"]["reason"] == "default route removed"
    });
    assert_eq!(lost["details"]["family"], "ipv4", "{lost}");
    assert_eq!(lost["details"]["default_routes"], json!([]), "{lost}");
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "up0",
    ]);
    let back = wait_for(&admin, "upstream_restored", "for the added route", |e| {
        e["details"]["reason"] == "default route added"
    });
    assert_eq!(
        back["details"]["default_routes"][0]["interfaces"][0]["interface"], "up0",
        "{back}"
    );

    // H: one record per nftables generation, naming the table and the process.
    let table = |change: &'static str| {
        move |e: &Value| {
            e["details"]["tables"].as_array().is_some_and(|t| {
                t.contains(&json!({"family": "inet", "name": "mamori_test", "change": change}))
            })
        }
    };
    ns.run(&["nft", "add", "table", "inet", "mamori_test"]);
    let added = wait_for(
        &admin,
        "firewall_ruleset_changed",
        "adding inet mamori_test",
        table("added"),
    );
    assert_eq!(added["details"]["process"]["name"], "nft", "{added}");
    assert_eq!(added["details"]["counts"]["tables"]["added"], 1, "{added}");
    ns.run(&["nft", "delete", "table", "inet", "mamori_test"]);
    let deleted = wait_for(
        &admin,
        "firewall_ruleset_changed",
        "deleting inet mamori_test",
        table("deleted"),
    );
    assert_eq!(
        deleted["details"]["counts"]["tables"]["deleted"], 1,
        "{deleted}"
    );
    assert!(
        deleted["details"]["generation"].as_u64() > added["details"]["generation"].as_u64(),
        "{added} {deleted}"
    );

    // G: hardware (network interface) removed; deleting one end removes the pair.
    ns.run(&["ip", "link", "del", "up0"]);
    for name in ["up0", "up1"] {
        let e = wait_for(&admin, "interface_removed", name, names(name));
        assert_eq!(e["details"]["kind"], "veth", "{e}");
    }

    // The monitors watched this namespace only: no other test's interfaces, nor the host's.
    let seen: Vec<Value> = events(&admin, "interface_added,interface_removed")
        .iter()
        .map(|e| e["details"]["interface"].clone())
        .collect();
    assert!(
        seen.iter().all(|n| n == "up0" || n == "up1"),
        "interfaces outside the test: {seen:?}"
    );
}

/// S3.1-35 R1 B and C: a successful login and a failed one, each with who, from where and
/// why; the fifth failure (the default threshold) locks the account and is recorded as
/// `login_threshold_exceeded`, after which even the right password is refused and recorded as
/// a failure because of the lock.
#[test]
fn login_events_b_c() {
    let Some((d, admin)) = device_in_netns() else {
        return;
    };
    let from = d.netns().unwrap().host_ip.to_string();

    // B: the administrator's own login.
    let ok = wait_for(&admin, "login_succeeded", "for admin", |e| {
        e["actor"] == "admin"
    });
    assert_eq!(ok["outcome"], "success", "{ok}");
    assert_eq!(ok["source"], from.as_str(), "{ok}");
    assert_eq!(ok["details"]["channel"], "https", "{ok}");

    // B: a new account logs in with its one-time password (restricted to changing it).
    let otp = create_user(&admin, "carol", "operator");
    let r = d.client().login("carol", &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ok = wait_for(&admin, "login_succeeded", "for carol", |e| {
        e["actor"] == "carol"
    });
    assert_eq!(ok["source"], from.as_str(), "{ok}");
    assert_eq!(
        ok["details"]["restriction"], "password_change_required",
        "{ok}"
    );

    // B: a wrong password.
    let wrong = "Not-Carols-Password-1";
    expect(
        &d.client().login("carol", wrong),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let failed = wait_for(&admin, "login_failed", "for carol", |e| {
        e["actor"] == "carol"
    });
    assert_eq!(failed["outcome"], "failure", "{failed}");
    assert_eq!(failed["source"], from.as_str(), "{failed}");
    assert_eq!(failed["details"]["purpose"], "login", "{failed}");
    assert_eq!(failed["details"]["reason"], "wrong_password", "{failed}");
    assert!(
        events(&admin, "login_threshold_exceeded").is_empty(),
        "one failure is not over the threshold"
    );

    // C: four more failures reach the threshold of five.
    for _ in 0..4 {
        expect(
            &d.client().login("carol", wrong),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        );
    }
    let over = wait_for(&admin, "login_threshold_exceeded", "for carol", |e| {
        e["actor"] == "carol"
    });
    assert_eq!(over["outcome"], "failure", "{over}");
    assert_eq!(over["source"], from.as_str(), "{over}");
    assert_eq!(over["details"]["threshold"], 5, "{over}");
    assert_eq!(over["details"]["locked_seconds"], 60, "{over}");
    let failures = wait_count(&admin, "login_failed", 5, "for carol", |e| {
        e["actor"] == "carol"
    });
    assert_eq!(failures.len(), 5, "{failures:?}");
    assert!(
        failures
            .iter()
            .all(|e| e["seq"].as_u64() < over["seq"].as_u64()),
        "recorded after the fifth failure: {over} {failures:?}"
    );

    // Locked: the right password is refused, and the refusal says why.
    expect(
        &d.client().login("carol", &otp),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let locked = wait_for(&admin, "login_failed", "refused by the lock", |e| {
        e["actor"] == "carol" && e["details"]["reason"] == "account_locked"
    });
    assert_eq!(locked["outcome"], "failure", "{locked}");
    assert_eq!(
        events(&admin, "login_threshold_exceeded").len(),
        1,
        "one record per lock"
    );
}

/// S3.1-35 R1 E: management functions — an account created, changed and deleted, and a
/// security setting changed — each recorded with the administrator, the source and the facts.
#[test]
fn management_events_e() {
    let Some((d, admin)) = device_in_netns() else {
        return;
    };
    let from = d.netns().unwrap().host_ip.to_string();
    let by_admin = |e: &Value| {
        assert_eq!(e["actor"], "admin", "{e}");
        assert_eq!(e["source"], from.as_str(), "{e}");
        assert_eq!(e["outcome"], "success", "{e}");
    };

    // Without re-authentication nothing happens, and nothing is recorded as done.
    expect(
        &admin.post(
            "/api/v1/users",
            &json!({"username": "dave", "role": "viewer"}),
        ),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert!(events(&admin, "user_created").is_empty());

    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "dave", "role": "viewer"}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = wait_for(&admin, "user_created", "for dave", |e| {
        e["details"]["user"] == "dave"
    });
    by_admin(&created);
    assert_eq!(created["details"]["role"], "viewer", "{created}");

    let r = admin.patch(
        "/api/v1/users/dave",
        &json!({"role": "operator", "disabled": true}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let changed = wait_for(&admin, "user_changed", "for dave", |e| {
        e["details"]["user"] == "dave"
    });
    by_admin(&changed);
    assert_eq!(changed["details"]["role"], "operator", "{changed}");
    assert_eq!(changed["details"]["disabled"], true, "{changed}");

    let r = admin.delete("/api/v1/users/dave");
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let deleted = wait_for(&admin, "user_deleted", "for dave", |e| {
        e["details"]["user"] == "dave"
    });
    by_admin(&deleted);
    assert!(created["seq"].as_u64() < changed["seq"].as_u64());
    assert!(changed["seq"].as_u64() < deleted["seq"].as_u64());

    // A security setting: the lockout threshold, with the value before and after.
    assert_eq!(auth_settings(&admin)["lockout_threshold"], 5);
    set_auth_settings(&admin, &json!({"lockout_threshold": 7}));
    let s = wait_for(&admin, "settings_changed", "for auth", |e| {
        e["details"]["setting"] == "auth"
    });
    by_admin(&s);
    assert_eq!(s["details"]["before"]["lockout_threshold"], 5, "{s}");
    assert_eq!(s["details"]["after"]["lockout_threshold"], 7, "{s}");
}

/// SHA-256 of a file, by coreutils (the device's own digest is what is under test).
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Logs in again as admin (sessions do not survive a restart).
fn admin_again(d: &Device) -> Client {
    let c = d.client();
    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c
}

/// S3.1-35 R1 F: the device records the software it runs at its first start, nothing when it
/// starts again unchanged, and the digests before and after when its executable changed
/// between two starts.
#[test]
fn software_change_f_across_restarts() {
    if !is_root() {
        eprintln!("skipped: a network namespace needs root");
        return;
    }
    // A copy of the daemon the test may change, where the management user can read it.
    let dir = tempfile::Builder::new()
        .prefix("mamori-test-bin-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("mamorid");
    std::fs::copy(bin("mamorid"), &exe).unwrap();
    let exe = exe.canonicalize().unwrap();
    let first = sha256(&exe);

    let mut d = Device::builder().netns().binary(&exe).start();
    let admin = d.admin();
    let e = wait_for(&admin, "software_changed", "at the first start", |_| true);
    assert_eq!(e["outcome"], "success", "{e}");
    assert_eq!(e["details"]["before"], Value::Null, "{e}");
    assert_eq!(e["details"]["after"]["sha256"], first.as_str(), "{e}");
    assert_eq!(
        e["details"]["executable"],
        exe.display().to_string().as_str(),
        "{e}"
    );
    assert!(
        e["details"]["note"]
            .as_str()
            .unwrap()
            .contains("first start"),
        "{e}"
    );
    let version = e["details"]["after"]["version"].clone();
    assert!(version.as_str().is_some_and(|v| !v.is_empty()), "{e}");

    // The same executable again: nothing to record.
    d.stop();
    d.spawn();
    let admin = admin_again(&d);
    wait_count(&admin, "service_started", 2, "after the restart", |_| true);
    assert_eq!(events(&admin, "software_changed").len(), 1);

    // A changed executable (an ELF runs with bytes appended).
    d.stop();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&exe).unwrap();
        f.write_all(b"\0mamori software change test\0").unwrap();
    }
    let second = sha256(&exe);
    assert_ne!(first, second);
    d.spawn();
    let admin = admin_again(&d);
    let changes = wait_count(&admin, "software_changed", 2, "after the change", |_| true);
    let e = &changes[1];
    assert_eq!(e["outcome"], "success", "{e}");
    assert_eq!(e["details"]["before"]["sha256"], first.as_str(), "{e}");
    assert_eq!(e["details"]["after"]["sha256"], second.as_str(), "{e}");
    assert_eq!(e["details"]["before"]["version"], version, "{e}");
    assert_eq!(e["details"]["after"]["version"], version, "{e}");
    assert_eq!(e["details"]["digest_changed"], true, "{e}");
    assert_eq!(e["details"]["version_changed"], false, "{e}");
    assert_eq!(
        e["details"]["executable"],
        exe.display().to_string().as_str(),
        "{e}"
    );
}

/// S3.1-35 R1 I: the remote management service's start, with the address it listens on, and
/// its stop at SIGTERM, read back after the next start, in order.
#[test]
fn service_start_and_stop_i() {
    let Some((mut d, admin)) = device_in_netns() else {
        return;
    };
    let https = json!({"kind": "https", "address": d.addr.to_string()});
    let started = wait_for(&admin, "service_started", "at the start", |_| true);
    assert_eq!(started["outcome"], "success", "{started}");
    assert!(
        started["details"]["listeners"]
            .as_array()
            .is_some_and(|l| l.contains(&https)),
        "the listener {https} in {started}"
    );
    assert_eq!(
        started["details"]["privilege_separation"], true,
        "{started}"
    );
    assert!(events(&admin, "service_stopped").is_empty());

    d.stop();
    d.spawn();
    let admin = admin_again(&d);
    let starts = wait_count(&admin, "service_started", 2, "after the restart", |_| true);
    let stops = wait_count(&admin, "service_stopped", 1, "at SIGTERM", |_| true);
    assert_eq!(stops.len(), 1, "{stops:?}");
    let stop = &stops[0];
    assert_eq!(stop["outcome"], "success", "{stop}");
    assert!(
        starts[0]["seq"].as_u64() < stop["seq"].as_u64()
            && stop["seq"].as_u64() < starts[1]["seq"].as_u64(),
        "stopped between the two starts: {starts:?} {stop}"
    );
    assert!(
        starts[1]["details"]["listeners"]
            .as_array()
            .is_some_and(|l| l.contains(&https)),
        "{}",
        starts[1]
    );
}
