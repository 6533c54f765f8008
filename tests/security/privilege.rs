//! S3.1-28 (least privilege) and S3.1-16/17 (secure storage): the process that faces the
//! network has no privilege at all and owns the listening socket; the privileged parent has no
//! network socket; keys are root-only; nothing readable is stored in plaintext.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// The management child of a harness device.
fn management_child(d: &Device) -> u32 {
    let kids: Vec<u32> = children_of(d.pid())
        .into_iter()
        .filter(|p| cmdline(*p).ends_with("--child"))
        .collect();
    assert_eq!(kids.len(), 1, "children with --child: {kids:?}");
    kids[0]
}

fn uid_of(pid: u32) -> u32 {
    // "Uid: real effective saved fs"
    let f: Vec<u32> = proc_status(pid, "Uid")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(f.iter().all(|u| *u == f[0]), "uids differ: {f:?}");
    f[0]
}

/// S3.1-28 R1: the parent runs as root; the management child runs as `_mamori` with every
/// capability set empty (effective, permitted, bounding, inheritable, ambient), no_new_privs
/// and a seccomp filter; it owns the listening HTTPS socket; the parent holds no TCP or UDP
/// socket at all; and the status page says so.
#[test]
fn the_network_facing_process_is_unprivileged_and_the_parent_has_no_network_socket() {
    let d = Device::start();
    let admin = d.admin();
    let parent = d.pid();
    let child = management_child(&d);
    assert_eq!(uid_of(parent), 0, "the parent runs as root");
    let child_uid = uid_of(child);
    assert_ne!(child_uid, 0, "the management process must not be root");
    let mamori = nix::unistd::User::from_name("_mamori")
        .unwrap()
        .expect("user _mamori");
    assert_eq!(child_uid, mamori.uid.as_raw());
    assert_ne!(
        proc_status(child, "Gid").split_whitespace().next().unwrap(),
        "0"
    );
    assert_eq!(proc_status(child, "Groups"), "", "no supplementary groups");
    for cap in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(
            proc_status(child, cap),
            "0000000000000000",
            "{cap} of the management process"
        );
    }
    assert_eq!(proc_status(child, "NoNewPrivs"), "1");
    assert_eq!(proc_status(child, "Seccomp"), "2", "seccomp filter mode");

    // The listening socket of the HTTPS port belongs to the child.
    let rows = net_rows();
    let listening: Vec<&NetRow> = rows
        .iter()
        .filter(|r| r.table.starts_with("tcp") && r.local_port == d.addr.port() && r.state == "0A")
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    let inode = listening[0].inode;
    assert!(
        socket_inodes(child).contains(&inode),
        "the child does not hold the listening socket"
    );
    assert!(
        !socket_inodes(parent).contains(&inode),
        "the parent holds the listening socket"
    );
    // The parent has no TCP/UDP socket at all (only its Unix socket pair to the child).
    let net_inodes: std::collections::HashSet<u64> = rows.iter().map(|r| r.inode).collect();
    let parent_sockets = socket_inodes(parent);
    let network: Vec<_> = parent_sockets
        .iter()
        .filter(|i| net_inodes.contains(i))
        .collect();
    assert!(
        network.is_empty(),
        "the parent holds network sockets {network:?}"
    );
    assert!(
        !parent_sockets.is_empty(),
        "the parent talks to its child over a socket"
    );

    let s = admin.get("/api/v1/status");
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    // The documented shape (docs/api.md): privilege_separation {enabled, parent_uid, ...}.
    let p = &s.body["privilege_separation"];
    assert_eq!(p["enabled"], true, "{}", s.text);
    assert_eq!(p["mode"], "separated");
    assert_eq!(p["parent_uid"], 0);
    assert_eq!(p["parent_pid"], parent);
    assert_eq!(p["child_pid"], child);
    assert_eq!(p["child_uid"], child_uid);
    assert_eq!(p["landlock"], "FullyEnforced");
    assert_eq!(p["seccomp"], true);
    assert_eq!(p["no_new_privs"], true);
}

/// S3.1-28: started by a non-root user (a laptop), the daemon runs as one process and says so:
/// `privilege_separation.enabled: false`, `mode: single_process`.
#[test]
fn started_without_root_it_runs_as_one_process_and_says_so() {
    let d = Daemon::start("127.0.0.1".parse().unwrap(), Some("nobody"));
    let admin = d.admin();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    // runuser → mamorid, and nothing below it.
    let procs: Vec<u32> = children_of(d.pid());
    assert_eq!(procs.len(), 1, "{procs:?}");
    let daemon = procs[0];
    assert!(cmdline(daemon).contains("mamorid"), "{}", cmdline(daemon));
    assert!(children_of(daemon).is_empty(), "no management child");
    assert_eq!(uid_of(daemon), nobody.uid.as_raw());
    let s = admin.get("/api/v1/status");
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let p = &s.body["privilege_separation"];
    assert_eq!(p["enabled"], false, "{}", s.text);
    assert_eq!(p["mode"], "single_process");
    assert_eq!(p["child_pid"], daemon);
    assert_eq!(p["child_uid"], nobody.uid.as_raw());
    assert_eq!(p["seccomp"], false);
}

/// S3.1-16: the keys directory is root's alone (0700) and the key-encryption key 0600 root.
#[test]
fn the_keys_are_root_only() {
    let d = Device::start();
    let keys = d.state.join("keys");
    let m = std::fs::metadata(&keys).unwrap();
    assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (0, 0o700));
    let entries: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(entries.iter().any(|p| p.ends_with("kek")), "{entries:?}");
    for f in entries {
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (m.uid(), m.permissions().mode() & 0o7777),
            (0, 0o600),
            "{}",
            f.display()
        );
    }
    // The management process's own directories are its own and private.
    let child_uid = uid_of(management_child(&d));
    for sub in ["store", "audit", "run"] {
        let m = std::fs::metadata(d.state.join(sub)).unwrap();
        assert_eq!(
            (m.uid(), m.permissions().mode() & 0o7777),
            (child_uid, 0o700),
            "{sub}"
        );
    }
}

/// S3.1-16 R1/R2: no secret or account data is readable in the state directory: not the
/// label password, not the admin password, not a user's name or password, not the serial or
/// model, not even the word "admin". (The certificate is public and names nothing either, but
/// is excluded: it is meant to be read.)
#[test]
fn nothing_readable_is_stored_in_plaintext() {
    let serial = "SN-PLAINTEXT-31337";
    let model = "MG-PLAIN-9";
    let mut d = Device::start_with(&["--model", model, "--serial", serial]);
    let label = d.label_password.clone().unwrap();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let marker_password = "Velvet-Glacier-88-marker";
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "zz-marker-user", "role": "operator", "password": marker_password}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = admin.post(
        "/api/v1/tokens",
        &json!({"name": "zz-marker-token", "role": "viewer", "expires_in_days": 1}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = admin.put(
        "/api/v1/settings/access",
        &json!({"allow": [], "trusted": ["198.51.100.77/32"]}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // Failed logins put usernames and addresses into the audit log.
    d.client_from("127.0.0.2")
        .login("zz-marker-user", "Wrong-Guess-Hammer-71");
    // A clean stop flushes everything there is to flush.
    d.stop();

    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("label password", label.clone().into_bytes()),
        ("admin password", ADMIN_PASSWORD.as_bytes().to_vec()),
        ("user's password", marker_password.as_bytes().to_vec()),
        ("username", b"zz-marker-user".to_vec()),
        ("token", token.as_bytes().to_vec()),
        ("token name", b"zz-marker-token".to_vec()),
        ("serial", serial.as_bytes().to_vec()),
        ("model", model.as_bytes().to_vec()),
        ("trusted address", b"198.51.100.77".to_vec()),
        ("attacker address", b"127.0.0.2".to_vec()),
        ("the word admin", b"admin".to_vec()),
        ("a PBKDF2 hash string", b"pbkdf2".to_vec()),
        ("audit event names", b"login_failed".to_vec()),
    ];
    let files: Vec<_> = files_beneath(&d.state)
        .into_iter()
        .filter(|f| !f.ends_with("tls/device-cert.pem"))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("store/mamori.redb")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.starts_with(d.state.join("audit"))),
        "{files:?}"
    );
    let mut scanned = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        scanned += bytes.len();
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{what} in plaintext in {}",
                f.display()
            );
            let upper = needle.to_ascii_uppercase();
            assert!(
                upper == *needle || !contains(&bytes, &upper),
                "{what} (upper case) in {}",
                f.display()
            );
        }
    }
    eprintln!(
        "{} files, {scanned} bytes under the state directory: no plaintext",
        files.len()
    );
    // The data is still all there: a restart reads it back.
    d.spawn();
    wait_healthy(&d);
    let c = d.client_from("127.0.0.3");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    assert!(user_entry(&c, "zz-marker-user").is_some());
}
