//! The `mamori` command-line client against the real daemon, over HTTPS and the console.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// One run of the client.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// Runs the client with a clean `MAMORI_*` environment and no standard input, and keeps the
/// output for the secrecy check.
struct Cli<'a> {
    d: &'a Device,
    runs: Vec<String>,
}

impl<'a> Cli<'a> {
    fn new(d: &'a Device) -> Self {
        Cli {
            d,
            runs: Vec::new(),
        }
    }

    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bin("mamori"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MAMORI_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied()).stdin(Stdio::null());
        cmd
    }

    fn finish(&mut self, cmd: &mut Command) -> Run {
        let out = cmd.output().expect("run mamori");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        };
        self.runs.push(format!("{}\n{}", run.stdout, run.stderr));
        run
    }

    /// `mamori --url https://ADDR --cacert CERT ARGS...` over HTTPS.
    fn https(&mut self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(env);
        cmd.arg("--url")
            .arg(format!("https://{}", self.d.addr))
            .arg("--cacert")
            .arg(self.d.cert_path())
            .args(args);
        self.finish(&mut cmd)
    }

    /// As admin with [`ADMIN_PASSWORD`].
    fn admin(&mut self, args: &[&str]) -> Run {
        self.https(args, &[("MAMORI_PASSWORD", ADMIN_PASSWORD)])
    }

    /// `mamori --console --state-dir STATE ARGS...`.
    fn console(&mut self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(env);
        cmd.arg("--console")
            .arg("--state-dir")
            .arg(&self.d.state)
            .args(args);
        self.finish(&mut cmd)
    }

    /// No run printed any of `secrets`.
    #[track_caller]
    fn assert_never_printed(&self, secrets: &[&str]) {
        assert!(!self.runs.is_empty());
        for out in &self.runs {
            for s in secrets {
                assert!(!out.contains(s), "a password was printed: {out}");
            }
        }
    }
}

/// S3.1-02 R2-1, S3.1-03 R1: over the CLI the label password only allows `passwd`; any other
/// command refuses with a clear message; a guessable new password is refused with its rule;
/// afterwards `login` works. No password is ever printed.
#[test]
fn cli_login_needs_passwd_first_and_passwd_changes_the_label_password() {
    let d = Device::start();
    let label = d.label_password.clone().unwrap();
    let mut cli = Cli::new(&d);

    let r = cli.https(&["login"], &[("MAMORI_PASSWORD", &label)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("mamori passwd"), "{r:?}");
    let r = cli.https(&["status"], &[("MAMORI_PASSWORD", &label)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    let r = cli.https(
        &["passwd"],
        &[
            ("MAMORI_PASSWORD", &label),
            ("MAMORI_NEW_PASSWORD", "Password123456!"),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("password_rejected"), "{r:?}");
    assert!(r.stderr.contains("password rule: A"), "{r:?}");

    let r = cli
        .https(
            &["passwd"],
            &[
                ("MAMORI_PASSWORD", &label),
                ("MAMORI_NEW_PASSWORD", ADMIN_PASSWORD),
            ],
        )
        .ok();
    assert!(r.stdout.contains("password of admin changed"), "{r:?}");

    let r = cli.https(&["login"], &[("MAMORI_PASSWORD", &label)]);
    assert_eq!(r.code, 1, "the label password still works: {r:?}");
    let r = cli.admin(&["login"]).ok();
    assert!(
        r.stdout.contains("logged in as admin (role admin)"),
        "{r:?}"
    );
    let v = cli.admin(&["login", "--json"]).ok().json();
    assert_eq!(v["username"], "admin");
    assert_eq!(v["must_change_password"], false);
    // The CLI logs out after each command: no session is left behind.
    let c = d.client();
    login_cookie(&c, "admin", ADMIN_PASSWORD);
    assert_eq!(c.get("/api/v1/sessions").body.as_array().unwrap().len(), 1);

    cli.assert_never_printed(&[&label, ADMIN_PASSWORD, "Password123456!"]);
}

/// S3.1-01 R1: a wrong password makes the CLI exit non-zero with a clear message on stderr and
/// nothing on stdout; a missing password and an untrusted certificate are reported as such.
#[test]
fn cli_wrong_password_exits_non_zero_with_a_clear_message() {
    let d = Device::start();
    let _admin = d.admin();
    let mut cli = Cli::new(&d);
    let wrong = "Wrong-Password-For-Cli-7";
    let r = cli.https(&["device"], &[("MAMORI_PASSWORD", wrong)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains("authentication failed"), "{r:?}");
    assert!(r.stderr.contains("401"), "{r:?}");

    // No password at all: a usage error naming where it comes from.
    let r = cli.https(&["device"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("MAMORI_PASSWORD"), "{r:?}");

    // Another device's certificate is not trusted.
    let other = Device::start();
    let mut cmd = cli.command(&[("MAMORI_PASSWORD", ADMIN_PASSWORD)]);
    cmd.arg("--url")
        .arg(format!("https://{}", d.addr))
        .arg("--cacert")
        .arg(other.cert_path())
        .arg("device");
    let r = cli.finish(&mut cmd);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    cli.assert_never_printed(&[wrong, ADMIN_PASSWORD]);
    // The failure was counted like any other.
    let admin = d.client();
    login_cookie(&admin, "admin", ADMIN_PASSWORD);
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "login_failed")
    );
}

/// S3.1-14: `status --json` is the API's JSON with the device's serial number; `device` shows
/// model and serial to a person.
#[test]
fn cli_status_json_shows_the_serial_number() {
    let d = Device::start_with(&["--model", "MG-CLI", "--serial", "SN-CLI-0042"]);
    let _admin = d.admin();
    let mut cli = Cli::new(&d);
    let v = cli.admin(&["status", "--json"]).ok().json();
    assert_eq!(v["device"]["serial"], "SN-CLI-0042");
    assert_eq!(v["device"]["model"], "MG-CLI");
    assert!(v["notices"].is_array());
    let r = cli.admin(&["device"]).ok();
    assert!(r.stdout.contains("SN-CLI-0042"), "{r:?}");
    assert!(r.stdout.contains("MG-CLI"), "{r:?}");
    cli.assert_never_printed(&[ADMIN_PASSWORD]);
}

/// S3.1-01 R4, R5: `users add` prints a one-time password that works and forces a change;
/// `users list`, `users disable` and `users delete` do what they say.
#[test]
fn cli_adds_lists_disables_and_deletes_users() {
    let d = Device::start();
    let admin = d.admin();
    let mut cli = Cli::new(&d);

    let v = cli
        .admin(&["users", "add", "bob", "--role", "viewer", "--json"])
        .ok()
        .json();
    assert_eq!(v["username"], "bob");
    let otp = v["one_time_password"].as_str().unwrap().to_string();
    let c = d.client();
    let r = c.login("bob", &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    assert_eq!(user_entry(&admin, "bob").unwrap()["role"], "viewer");

    let r = cli.admin(&["users", "list"]).ok();
    assert!(r.stdout.contains("USERNAME"), "{r:?}");
    assert!(r.stdout.lines().any(|l| l.starts_with("bob ")), "{r:?}");
    let list = cli.admin(&["users", "list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2);

    let r = cli
        .admin(&["users", "add", "bob", "--role", "admin"])
        .stderr
        .clone();
    assert!(r.contains("409") && r.contains("conflict"), "{r}");
    assert_eq!(user_entry(&admin, "bob").unwrap()["role"], "viewer");

    cli.admin(&["users", "disable", "bob"]).ok();
    assert_eq!(user_entry(&admin, "bob").unwrap()["disabled"], true);
    expect(
        &d.client().login("bob", &otp),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let list = cli.admin(&["users", "list", "--json"]).ok().json();
    let bob = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["disabled"], true);

    cli.admin(&["users", "delete", "bob"]).ok();
    assert!(user_entry(&admin, "bob").is_none());
    let r = cli.admin(&["users", "delete", "bob"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("404"), "{r:?}");

    cli.assert_never_printed(&[ADMIN_PASSWORD]);
}

/// S3.1-01 R3, S3.1-03 R1: `sessions list` shows the caller's sessions with the CLI's own as
/// current; `token create` prints the token once, `token list` never, `MAMORI_TOKEN` works, and
/// `token revoke` ends it.
#[test]
fn cli_lists_sessions_and_creates_lists_and_revokes_tokens() {
    let d = Device::start();
    let admin = d.admin();
    let mut cli = Cli::new(&d);

    let v = cli.admin(&["sessions", "list", "--json"]).ok().json();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let r = cli.admin(&["sessions", "list"]).ok();
    assert!(r.stdout.contains("CURRENT"), "{r:?}");

    let v = cli
        .admin(&[
            "token", "create", "ci", "--role", "viewer", "--days", "30", "--json",
        ])
        .ok()
        .json();
    let id = v["id"].as_str().unwrap().to_string();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&d, &token, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );

    let r = cli.admin(&["token", "list"]).ok();
    assert!(r.stdout.contains(&id), "{r:?}");
    let listed = cli.admin(&["token", "list", "--json"]).ok();
    assert!(!listed.stdout.contains(&token));
    assert_eq!(listed.json()[0]["role"], "viewer");

    // The token authenticates the CLI instead of a password.
    let v = cli
        .https(&["device", "--json"], &[("MAMORI_TOKEN", &token)])
        .ok()
        .json();
    assert!(v["serial"].is_string());
    let r = cli.https(&["users", "list"], &[("MAMORI_TOKEN", &token)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("forbidden"), "{r:?}");

    // Bad lifetimes are refused by the device.
    let r = cli.admin(&["token", "create", "x", "--role", "viewer", "--days", "0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("400"), "{r:?}");

    cli.admin(&["token", "revoke", &id]).ok();
    expect(
        &bearer(&d, &token, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let v = cli.admin(&["token", "list", "--json"]).ok().json();
    assert_eq!(v, json!([]));
    assert!(
        admin
            .get("/api/v1/tokens")
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Only the token's creation printed it.
    let printed = cli.runs.iter().filter(|o| o.contains(&token)).count();
    assert_eq!(printed, 1, "the token was printed more than once");
    cli.assert_never_printed(&[ADMIN_PASSWORD]);
}

/// S3.1-04 R2: `mfa totp enroll` prints the secret, `mfa totp verify CODE` the recovery codes;
/// then a login needs `--totp`.
#[test]
fn cli_enrols_totp_and_then_needs_a_code() {
    let d = Device::start();
    let admin = d.admin();
    let mut cli = Cli::new(&d);
    let v = cli.admin(&["mfa", "totp", "enroll", "--json"]).ok().json();
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.contains("algorithm=SHA256&digits=6&period=30"), "{uri}");
    let mut auth = Authenticator::new(v["secret"].as_str().unwrap());

    let r = cli.admin(&["mfa", "totp", "verify", &auth.wrong_code()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], false);
    let v = cli
        .admin(&["mfa", "totp", "verify", &auth.code(), "--json"])
        .ok()
        .json();
    assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], true);

    let r = cli.admin(&["login"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("mfa_required"), "{r:?}");
    assert!(r.stderr.contains("--totp"), "{r:?}");
    let r = cli.admin(&["--totp", &auth.code(), "login"]).ok();
    assert!(r.stdout.contains("logged in as admin"), "{r:?}");
    cli.assert_never_printed(&[ADMIN_PASSWORD]);
}

/// S3.1-03 R4: `mamori --console --state-dir STATE recover admin`, as root, prints a one-time
/// password that works over HTTPS and forces a change; `recover` without `--console` is a usage
/// error.
#[test]
fn cli_console_recover_prints_a_one_time_password() {
    let d = Device::start();
    let admin = d.admin();
    let mut cli = Cli::new(&d);

    let r = cli.https(&["recover", "admin"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--console"), "{r:?}");
    assert_eq!(admin.get("/api/v1/device").status, StatusCode::OK);

    let v = cli
        .console(&["recover", "admin", "--json"], &[])
        .ok()
        .json();
    let otp = v["one_time_password"].as_str().unwrap().to_string();
    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let c = d.client();
    let r = c.login("admin", &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    expect(
        &c.get("/api/v1/device"),
        StatusCode::FORBIDDEN,
        "password_change_required",
    );

    let r = cli.console(&["recover", "admin"], &[]).ok();
    assert!(r.stdout.contains("one-time password for admin: "), "{r:?}");
    assert!(r.stdout.contains("must change it"), "{r:?}");
    // The first one-time password was replaced.
    expect(
        &d.client().login("admin", &otp),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let r = cli.console(&["recover", "ghost"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("404"), "{r:?}");
    cli.assert_never_printed(&[ADMIN_PASSWORD]);
}
