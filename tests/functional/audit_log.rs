//! The audit log on the real device (S3.1-35, S3.1-16, S3.1-41): what it records, how it is
//! read, who may read and purge it, that `mamori audit verify` proves it and finds tampering,
//! that a power cut during heavy logging loses no acknowledged record, and that a full log
//! overwrites its oldest records with warnings while logins keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// A login attempt that may meet a dead device: the status, or none when the connection failed.
fn try_login(c: &Client, username: &str, password: &str) -> Option<StatusCode> {
    c.http
        .post(format!("{}/api/v1/auth/login", c.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .ok()
        .map(|r| r.status())
}

fn events_of(c: &Client, query: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/v1/audit/events?limit=1000&{query}"));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().unwrap().clone()
}

/// `mamori audit verify --state-dir DIR --json`: exit code and report.
fn verify(d: &Device) -> (i32, Value) {
    let out = Command::new(bin("mamori"))
        .args(["--json", "audit", "verify", "--state-dir"])
        .arg(&d.state)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

#[test]
fn logins_are_recorded_and_read_back_filtered_and_exported() {
    let d = Device::start();
    let admin = d.admin();
    let other = d.client_from("127.0.0.9");
    assert_eq!(
        other.login("admin", "Not-The-Password-1").status,
        StatusCode::UNAUTHORIZED
    );

    let failed = events_of(&admin, "event=login_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let e = &failed[0];
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["outcome"], "failure");
    assert!(e["source"].as_str().unwrap().contains("127.0.0.9"), "{e}");
    assert!(e["seq"].as_u64().unwrap() > 0);
    assert!(
        e["mono_ms"].as_u64().unwrap() > 0,
        "monotonic time recorded: {e}"
    );
    assert!(e["time"].as_str().unwrap().ends_with('Z'), "UTC time: {e}");
    assert!(e.get("epoch").is_some(), "sealing epoch shown: {e}");
    // Outcome and event filters combine; the successful admin login is not a failure.
    let ok = events_of(&admin, "event=login_succeeded,login_failed&outcome=success");
    assert!(!ok.is_empty() && ok.iter().all(|e| e["event"] == "login_succeeded"));
    for bad in [
        "outcome=maybe",
        "event=no_such_event",
        "since=yesterday",
        "limit=0",
        "limit=1001",
        "unknown=1",
    ] {
        let r = admin.get(&format!("/api/v1/audit/events?{bad}"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }

    let r = admin.get("/api/v1/audit/export");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let seqs: Vec<u64> = r
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.len() >= 3, "{}", r.text);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let exported = events_of(&admin, "event=audit_log_exported");
    assert_eq!(exported.len(), 1, "the export is itself recorded");
    assert_eq!(exported[0]["actor"], "admin");

    let status = admin.get("/api/v1/audit/status");
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["capacity_bytes"], 128 * 1024 * 1024);
    assert!(status.body["last_seq"].as_u64().unwrap() >= *seqs.last().unwrap());
    assert_eq!(status.body["write_error"], Value::Null);
}

#[test]
fn auditors_and_admins_read_it_only_admins_purge_with_reauthentication() {
    let d = Device::start();
    let admin = d.admin();
    let viewer = new_user(
        &d,
        &admin,
        "vera",
        "viewer",
        "Quartz-Harbor-71-linen",
        "127.0.0.21",
    );
    let auditor = new_user(
        &d,
        &admin,
        "audrey",
        "auditor",
        "Copper-Willow-38-stone",
        "127.0.0.22",
    );
    for path in [
        "/api/v1/audit/events",
        "/api/v1/audit/export",
        "/api/v1/audit/status",
    ] {
        assert_eq!(viewer.get(path).status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(auditor.get(path).status, StatusCode::OK, "{path}");
    }
    let purge = json!({"before": "2000-01-01T00:00:00Z"});
    assert_eq!(
        auditor.post("/api/v1/audit/purge", &purge).status,
        StatusCode::FORBIDDEN
    );
    // Admin, but without a fresh re-authentication.
    let fresh = d.client_from("127.0.0.23");
    login_cookie(&fresh, "admin", ADMIN_PASSWORD);
    expect(
        &fresh.post("/api/v1/audit/purge", &purge),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    let r = fresh.post(
        "/api/v1/audit/purge",
        &json!({"before": "2999-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    fresh.reauth(ADMIN_PASSWORD);
    let r = fresh.post(
        "/api/v1/audit/purge",
        &json!({"before": "2999-01-01T00:00:00Z"}),
    );
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "no purge of the future: {}",
        r.text
    );
    let r = fresh.post("/api/v1/audit/purge", &purge);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["segments"], 0, "nothing is that old");
    let purged = events_of(&admin, "event=personal_data_purged");
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0]["actor"], "admin");
    // No endpoint edits or deletes a record.
    for method in ["DELETE", "PUT", "PATCH"] {
        let r = send(&admin, method, "/api/v1/audit/events", &[], None);
        assert!(
            matches!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
            ),
            "{method}: {}",
            r.status
        );
    }
}

#[test]
fn verify_proves_the_log_and_names_the_first_break_after_a_flipped_byte() {
    if !is_root() {
        eprintln!("skipped: verify reads the root-only keys");
        return;
    }
    let mut d = Device::start();
    let admin = d.admin();
    for i in 0..5 {
        let c = d.client_from(&format!("127.0.0.{}", 30 + i));
        assert_eq!(
            c.login("admin", "Wrong-Password-99").status,
            StatusCode::UNAUTHORIZED
        );
    }
    drop(admin);
    // The live log verifies while the device runs.
    let (code, report) = verify(&d);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    assert!(report["records"].as_u64().unwrap() >= 6, "{report}");
    d.stop();
    let (code, _) = verify(&d);
    assert_eq!(code, 0);

    let dir = d.state.join("audit/log");
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let (code, report) = verify(&d);
    assert_eq!(code, 5, "a flipped byte fails verification: {report}");
    assert_eq!(report["ok"], false);
    let first_break = report["first_break"].as_str().unwrap();
    assert!(
        first_break.contains("seg-"),
        "names the file: {first_break}"
    );
}

#[test]
fn a_power_cut_during_heavy_logging_loses_no_acknowledged_record() {
    if !is_root() {
        eprintln!("skipped: verify reads the root-only keys");
        return;
    }
    let mut d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, &json!({"source_threshold": 1000}));
    // Each answered failed login is an acknowledged record: the answer comes after the fsync.
    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let c = d.client_from(&format!("127.0.0.{}", 40 + t));
            let (answered, stop) = (answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("ghost{t}x{n}");
                    n += 1;
                    if try_login(&c, &name, "Wrong-Password-99") == Some(StatusCode::UNAUTHORIZED) {
                        answered.lock().unwrap().insert(name);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    d.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 5, "the load ran: {}", answered.len());

    let (code, report) = verify(&d);
    assert_eq!(code, 0, "after the power cut the log verifies: {report}");
    d.spawn();
    let admin = d.client();
    login_cookie(&admin, "admin", ADMIN_PASSWORD);
    let r = admin.get("/api/v1/audit/export?event=login_failed");
    assert_eq!(r.status, StatusCode::OK);
    let recorded: BTreeSet<String> = r
        .text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["actor"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<_> = answered.difference(&recorded).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let (code, report) = verify(&d);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_full_log_overwrites_its_oldest_records_warns_and_logins_keep_working() {
    let d = Device::start_with(&["--audit-capacity-mib", "1"]);
    let admin = d.admin();
    let viewer = new_user(
        &d,
        &admin,
        "vic",
        "viewer",
        "Quartz-Harbor-71-linen",
        "127.0.0.51",
    );
    // Every refused request is recorded (access_denied) and costs no password hashing.
    let mut n = 0;
    let full = eventually(Duration::from_secs(240), || {
        for _ in 0..200 {
            assert_eq!(viewer.get("/api/v1/users").status, StatusCode::FORBIDDEN);
            n += 1;
        }
        admin.get("/api/v1/audit/status").body["first_seq"]
            .as_u64()
            .unwrap_or(1)
            > 1
    });
    assert!(
        full,
        "the log never overwrote its oldest records after {n} refusals"
    );
    let status = admin.get("/api/v1/audit/status").body;
    assert_eq!(status["capacity_bytes"], 1024 * 1024);
    assert!(
        status["used_bytes"].as_u64().unwrap() <= 1024 * 1024,
        "{status}"
    );
    // The warnings and the overwrite are events themselves (written by the notice thread).
    assert!(eventually(Duration::from_secs(15), || {
        let kinds: BTreeSet<String> =
            events_of(&admin, "event=audit_log_capacity,audit_log_overwritten")
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["event"].as_str().unwrap(),
                        e["details"]["percent"]
                    )
                })
                .collect();
        kinds.contains("audit_log_capacity:80")
            && kinds.contains("audit_log_capacity:90")
            && kinds.iter().any(|k| k.starts_with("audit_log_overwritten"))
    }));
    // Nothing stopped: a new login works and is recorded.
    let c = d.client_from("127.0.0.52");
    login_cookie(&c, "admin", ADMIN_PASSWORD);
    let newest = events_of(&admin, "event=login_succeeded");
    assert!(
        newest
            .iter()
            .any(|e| e["source"].as_str().unwrap_or("").contains("127.0.0.52"))
    );
}

/// A tmpfs mounted on a directory; unmounted (lazily, in case a file is still open) on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` on `dir` with the contents and ownership `dir` had.
    fn replace(dir: &std::path::Path, size: &str) -> SmallDisk {
        let saved = dir.with_extension("saved");
        std::fs::rename(dir, &saved).unwrap();
        std::fs::create_dir(dir).unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("mamori-test-audit")
            .arg(dir));
        let disk = SmallDisk(dir.to_path_buf());
        ok(Command::new("cp").arg("-a").arg(saved.join(".")).arg(dir));
        ok(Command::new("chown")
            .arg("--reference")
            .arg(&saved)
            .arg(dir));
        disk
    }

    /// Fills the disk with a file until a write fails with "no space".
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_neither_logins_nor_changes_and_loses_no_event() {
    let mut d = Device::start_with(&["--audit-capacity-mib", "1"]);
    d.admin();
    d.stop();
    // The audit log alone on a small disk of its own; the store keeps its space.
    let disk = SmallDisk::replace(&d.state.join("audit/log"), "4m");
    d.spawn();
    let admin = d.client();
    login_cookie(&admin, "admin", ADMIN_PASSWORD);
    let filler = disk.fill();

    // Logins and a change keep working while every write of the log fails.
    let c = d.client_from("127.0.0.61");
    for _ in 0..3 {
        assert_eq!(
            try_login(&c, "admin", "not-the-password"),
            Some(StatusCode::UNAUTHORIZED)
        );
    }
    login_cookie(&c, "admin", ADMIN_PASSWORD);
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "diskfull", "role": "viewer", "password": "Quartz-Harbor-71-linen"}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // The failure is visible: the log's status and a standing notice.
    assert!(eventually(Duration::from_secs(10), || {
        admin.get("/api/v1/audit/status").body["write_error"].is_string()
    }));
    let status = admin.get("/api/v1/audit/status").body;
    // (The last page of the segment file may still take a record or two: tmpfs fails only when
    // a new page is needed.)
    assert!(status["queued"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["dropped"], 0, "{status}");
    let notices = admin.get("/api/v1/status").body["notices"].to_string();
    assert!(notices.contains("log_write_failing"), "{notices}");

    // Space again: the log catches up by itself, in order, and nothing was lost.
    std::fs::remove_file(filler).unwrap();
    assert!(eventually(Duration::from_secs(15), || {
        admin.get("/api/v1/audit/status").body["write_error"].is_null()
    }));
    let failed = events_of(&admin, "event=login_failed");
    let from_61 = |e: &&Value| e["source"].as_str().unwrap_or("").contains("127.0.0.61");
    assert_eq!(failed.iter().filter(from_61).count(), 3);
    let created = events_of(&admin, "event=user_created");
    assert!(
        created.iter().any(|e| e["details"]["user"] == "diskfull"),
        "{created:?}"
    );
    let seqs: Vec<u64> = events_of(&admin, "")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2)
            .all(|w| w[0] + 1 == w[1] || w[1] + 1 == w[0]),
        "no gap in the sequence: {seqs:?}"
    );
    let notices = admin.get("/api/v1/status").body["notices"].to_string();
    assert!(!notices.contains("log_write_failing"), "{notices}");
    d.stop();
    let (code, report) = verify(&d);
    assert_eq!(code, 0, "{report}");
    drop(disk);
}
