//! Audit forwarding on the real device (S3.1-35 R5, S3.1-20 R5/R6): collectors configured
//! through the API reach a real rsyslog (Debian rsyslog with rsyslog-gnutls) over TLS from the
//! confined management process (seccomp and landlock on, as root); an untrusted collector gets
//! nothing and the failure shows; changing collectors needs re-authentication; plain text needs
//! an explicit flag and raises a standing notice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

const SERVER_NAME: &str = "collector.test";

/// Installs rsyslog and rsyslog-gnutls if missing (scripts/test installs them too).
fn ensure_rsyslog() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    let missing: Vec<&str> = ["rsyslog", "rsyslog-gnutls"]
        .into_iter()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        let env = ("DEBIAN_FRONTEND", "noninteractive");
        let ok = Command::new("apt-get")
            .args(["update", "-qq"])
            .env(env.0, env.1)
            .status()
            .unwrap()
            .success()
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env(env.0, env.1)
                .status()
                .unwrap()
                .success();
        assert!(ok, "installing {missing:?} failed");
    }
    *done = true;
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    CertifiedIssuer::self_signed(params, key).unwrap()
}

/// A server certificate for [`SERVER_NAME`] and 127.0.0.1: (certificate PEM, key PEM).
fn server_cert(issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAME);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// One rsyslogd on loopback, TLS (anonymous clients) or plain TCP, writing what it receives
/// to `received.log` (one line per message: msgid, structured data, message).
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Rsyslog {
    fn start(dir: &Path, tls: Option<(&str, &str, &str)>) -> Self {
        ensure_rsyslog();
        fs::create_dir_all(dir.join("work")).unwrap();
        let port = free_port();
        let d = dir.display();
        let (global, module) = match tls {
            Some((cert, key, ca)) => {
                fs::write(dir.join("server.pem"), cert).unwrap();
                fs::write(dir.join("server.key"), key).unwrap();
                fs::write(dir.join("ca.pem"), ca).unwrap();
                (
                    format!(
                        r#"DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{d}/ca.pem"
                       DefaultNetstreamDriverCertFile="{d}/server.pem"
                       DefaultNetstreamDriverKeyFile="{d}/server.key""#
                    ),
                    r#"module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#,
                )
            }
            None => (String::new(), r#"module(load="imtcp")"#),
        };
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="8k" {global})
{module}
template(name="fields" type="string" string="%msgid%\t%structured-data%\t%msg%\n")
ruleset(name="fwd") {{
  action(type="omfile" file="{d}/received.log" template="fields")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="fwd")
*.* action(type="omfile" file="{d}/rsyslog-internal.log")
"#
        );
        fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let out = fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "rsyslogd", "-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start rsyslogd");
        let mut r = Self {
            dir: dir.to_path_buf(),
            port,
            child,
        };
        let end = Instant::now() + Duration::from_secs(15);
        // Listening? (read the socket table: a bare TCP probe would be a TLS error in its log)
        let want = format!("0100007F:{port:04X}");
        while !fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1] == want && f[3] == "0A"
            })
        {
            assert!(
                r.child.try_wait().unwrap().is_none(),
                "rsyslogd exited: {}",
                r.diagnostics()
            );
            assert!(Instant::now() < end, "rsyslogd did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (msgid, structured data, message) of every message received.
    fn received(&self) -> Vec<(String, String, String)> {
        fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(3, '\t').collect();
                let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
                (get(0), get(1), get(2))
            })
            .collect()
    }

    fn diagnostics(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "rsyslogd.out:\n{}\nrsyslog-internal.log:\n{}",
            read("rsyslogd.out"),
            read("rsyslog-internal.log")
        )
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_collector(id: &str, address: &str, ca_pem: &str) -> Value {
    json!({"id": id, "address": address, "ca_pem": ca_pem, "server_name": SERVER_NAME})
}

fn collector_status(admin: &Client, id: &str) -> Value {
    let r = admin.get("/api/v1/audit/forwarding");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn notice_codes(c: &Client) -> Vec<String> {
    let r = c.get("/api/v1/status");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_failed_login_reaches_rsyslog_over_tls_and_an_untrusted_collector_gets_nothing() {
    assert!(
        is_root(),
        "this suite runs as root (device mode: seccomp, landlock)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let good_ca = ca("collector CA");
    let (cert, key) = server_cert(&good_ca);
    let good = Rsyslog::start(
        &tmp.path().join("good"),
        Some((&cert, &key, &good_ca.pem())),
    );
    // Its certificate is from a CA the device is not told about.
    let rogue_ca = ca("rogue CA");
    let (rcert, rkey) = server_cert(&rogue_ca);
    let rogue = Rsyslog::start(
        &tmp.path().join("rogue"),
        Some((&rcert, &rkey, &rogue_ca.pem())),
    );

    let d = Device::start();
    let admin = d.admin();
    let status = admin.get("/api/v1/status");
    assert_eq!(
        status.body["privilege_separation"]["seccomp"], true,
        "{}",
        status.text
    );
    let settings = json!({"collectors": [
        tls_collector("siem", &good.address(), &good_ca.pem()),
        tls_collector("rogue", &rogue.address(), &good_ca.pem()),
    ]});

    // Without a fresh re-authentication: refused, nothing changes.
    let fresh = d.client_from("127.0.0.31");
    login_cookie(&fresh, "admin", ADMIN_PASSWORD);
    expect(
        &fresh.put("/api/v1/settings/forwarding", &settings),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(
        admin.get("/api/v1/settings/forwarding").body["collectors"],
        json!([])
    );
    // Invalid settings are refused whole.
    admin.reauth(ADMIN_PASSWORD);
    for bad in [
        json!({"collectors": [tls_collector("Bad_Id", &good.address(), &good_ca.pem())]}),
        json!({"collectors": [tls_collector("x", "127.0.0.1", &good_ca.pem())]}),
        json!({"collectors": [tls_collector("x", &good.address(), "not a certificate")]}),
        json!({"collectors": [{"id": "x", "address": good.address()}]}),
    ] {
        let r = admin.put("/api/v1/settings/forwarding", &bad);
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = admin.put("/api/v1/settings/forwarding", &settings);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let got = admin.get("/api/v1/settings/forwarding");
    assert_eq!(got.body["collectors"][0]["id"], "siem", "{}", got.text);

    // A failed login, from another address.
    let other = d.client_from("127.0.0.32");
    assert_eq!(
        other.login("admin", "Not-The-Password-1").status,
        StatusCode::UNAUTHORIZED
    );
    let failed = audit_events(&admin)
        .into_iter()
        .find(|e| e["event"] == "login_failed")
        .expect("login_failed recorded");
    let seq = failed["seq"].as_u64().unwrap();

    let arrived = eventually(Duration::from_secs(30), || {
        good.received()
            .iter()
            .any(|(msgid, sd, _)| msgid == "login_failed" && sd.contains(&format!("seq=\"{seq}\"")))
    });
    assert!(
        arrived,
        "login_failed seq {seq} not at rsyslog: {:?}\nstatus: {}\n{}",
        good.received(),
        collector_status(&admin, "siem"),
        good.diagnostics()
    );
    let line = good
        .received()
        .into_iter()
        .find(|(m, sd, _)| m == "login_failed" && sd.contains(&format!("seq=\"{seq}\"")))
        .unwrap();
    assert!(line.1.contains("outcome=\"failure\""), "{line:?}");
    assert!(line.2.contains("127.0.0.32"), "{line:?}");
    // The settings change itself was forwarded too (it came before the login).
    assert!(
        good.received()
            .iter()
            .any(|(m, _, _)| m == "settings_changed"),
        "{:?}",
        good.received()
    );

    let siem = collector_status(&admin, "siem");
    assert_eq!(siem["transport"], "tls", "{siem}");
    assert!(siem["cursor"].as_u64().unwrap() > seq, "{siem}");
    // The untrusted collector: refused by the device, shown, and it received nothing.
    assert!(
        eventually(Duration::from_secs(20), || {
            collector_status(&admin, "rogue")["last_error"]["kind"] == "certificate_untrusted"
        }),
        "{}",
        collector_status(&admin, "rogue")
    );
    assert_eq!(collector_status(&admin, "rogue")["delivered"], 0);
    assert!(rogue.received().is_empty(), "{:?}", rogue.received());
    // An auditor may read the status, not the settings.
    let auditor = new_user(
        &d,
        &admin,
        "audrey",
        "auditor",
        "Copper-Willow-38-stone",
        "127.0.0.33",
    );
    assert_eq!(
        auditor.get("/api/v1/audit/forwarding").status,
        StatusCode::OK
    );
    assert_eq!(
        auditor.get("/api/v1/settings/forwarding").status,
        StatusCode::FORBIDDEN
    );
    // The change was recorded with before and after, without the CA's body.
    let changed = audit_events(&admin)
        .into_iter()
        .find(|e| e["event"] == "settings_changed" && e["details"]["setting"] == "forwarding")
        .expect("recorded");
    let text = changed.to_string();
    assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    assert!(
        changed["details"]["after"]["collectors"][0]["ca_pem_sha256"].is_string(),
        "{text}"
    );
}

#[test]
fn plain_text_needs_the_explicit_flag_and_raises_a_standing_notice() {
    assert!(
        is_root(),
        "this suite runs as root (device mode: seccomp, landlock)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let plain = Rsyslog::start(&tmp.path().join("plain"), None);
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    assert!(!notice_codes(&admin).contains(&"insecure_forwarding".to_string()));
    // Without TLS settings and without the flag: refused (there is no silent plain text).
    let r = admin.put(
        "/api/v1/settings/forwarding",
        &json!({"collectors": [{"id": "plain", "address": plain.address()}]}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = admin.put(
        "/api/v1/settings/forwarding",
        &json!({"collectors": [{"id": "plain", "address": plain.address(), "insecure_plaintext": true}]}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(notice_codes(&admin).contains(&"insecure_forwarding".to_string()));
    let status = admin.get("/api/v1/audit/forwarding");
    assert_eq!(status.body["insecure_plaintext"], true, "{}", status.text);
    assert!(
        eventually(Duration::from_secs(30), || {
            plain
                .received()
                .iter()
                .any(|(m, _, _)| m == "settings_changed")
        }),
        "{:?} {}",
        plain.received(),
        collector_status(&admin, "plain")
    );
    assert_eq!(
        collector_status(&admin, "plain")["transport"],
        "insecure_plaintext"
    );
    // Removing it clears the notice.
    let r = admin.put("/api/v1/settings/forwarding", &json!({"collectors": []}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(!notice_codes(&admin).contains(&"insecure_forwarding".to_string()));
}
