//! The gateway as a device: mamorid in the lab's gateway namespace managing its network, driven
//! through its API from the management link, probed from the lab's hosts (issue 5's tests that
//! need the daemon: commit-confirm, rollback, anti-lockout, management sources, restarts, link
//! events, floods). The kernel-level traffic tests are in crates/lab/tests/traffic.rs.
//!
//! Every test builds its own lab (unique name, its own management /30) and takes it down after.
//! Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use mamori_lab::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{
    GW_LAN, GW_LAN_V6, GW_WAN, GW_WAN_V6, Gateway, LAN1, connects, eventually, https_status, run_in,
};

const QUICK: Duration = Duration::from_secs(2);

fn cert(gw: &Gateway) -> std::path::PathBuf {
    gw.state_dir().join("tls/device-cert.pem")
}

/// The management UI answers from this host of the lab (HTTP status of `/healthz`).
fn management_from(gw: &Gateway, role: Role, addr: &str) -> Option<u16> {
    let host = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    };
    https_status(
        &gw.netns(role),
        &cert(gw),
        &format!("https://{host}/healthz"),
        QUICK,
    )
}

fn with_management_zones(cfg: &Value, zones: &[&str]) -> Value {
    let mut c = cfg.clone();
    c["management"]["zones"] = json!(zones);
    c
}

fn with_port_forward(cfg: &Value) -> Value {
    let mut c = cfg.clone();
    c["nat"]["port_forwards"] = json!([{
        "from_zone": "wan", "proto": "tcp", "external_ports": 8080,
        "internal_address": LAN1, "internal_port": 80
    }]);
    c
}

#[test]
fn factory_defaults_admit_management_from_lan_and_mgmt_and_drop_it_from_wan() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (rev, cfg) = gw.running(&admin);
    assert_eq!(rev, 1, "the rescue (factory) revision runs at first start");
    assert_eq!(cfg["management"]["zones"], json!(["lan", "mgmt"]));

    // The management link (this client) and the lan reach the UI, v4 and v6.
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), Some(200));
    assert_eq!(management_from(&gw, Role::Lan2, GW_LAN_V6), Some(200));
    // The wan reaches nothing: not the wan address, not the lan address behind it.
    for addr in [GW_WAN, GW_LAN, GW_WAN_V6, GW_LAN_V6] {
        assert!(
            !connects(&gw.netns(Role::Wan), addr, 443, QUICK),
            "wan reached management on {addr}"
        );
    }
    // The port inventory: only the declared listeners, on the device's own namespace.
    let ports = admin.get("/api/v1/system/ports");
    assert_eq!(ports.status, StatusCode::OK, "{}", ports.text);
    assert_eq!(ports.body["consistent"], true, "{}", ports.text);
    // The start was recorded.
    let applied = gw.events(&admin, "config_applied");
    assert!(
        applied
            .iter()
            .any(|e| e["outcome"] == "success" && e["details"]["revision"] == 1),
        "{applied:?}"
    );
}

#[test]
fn a_commit_that_would_cut_the_committing_session_is_refused_and_changes_nothing() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    let before = (gw.ruleset(), gw.addresses_and_routes());
    // This client comes over the management link: dropping the mgmt zone would cut it.
    let r = gw.commit(&admin, &with_management_zones(&cfg, &["lan"]), 30, "cut");
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["step"], "management", "{}", r.text);
    assert_eq!(r.body["error"]["code"], "config_refused");
    assert_eq!((gw.ruleset(), gw.addresses_and_routes()), before);
    assert_eq!(gw.running(&admin).0, 1);
    let refused = gw.events(&admin, "config_committed");
    assert!(
        refused
            .iter()
            .any(|e| e["outcome"] == "failure" && e["details"]["step"] == "management"),
        "{refused:?}"
    );
}

#[test]
fn broken_candidates_change_nothing_in_the_kernel() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    let before = (gw.ruleset(), gw.addresses_and_routes());

    // Validation: a zone naming an interface that is not configured.
    let mut invalid = cfg.clone();
    invalid["firewall"]["zones"][0]["interfaces"] = json!(["nope0"]);
    let r = gw.commit(&admin, &invalid, 0, "invalid");
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["step"], "validate");
    assert!(
        r.body["problems"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/firewall/zones/0/interfaces"),
        "{}",
        r.text
    );

    // The parent's dry run: valid, but the interface does not exist on this device.
    let mut absent = cfg.clone();
    let lan = absent["interfaces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["name"] == "lan0")
        .unwrap();
    lan["name"] = json!("lan9");
    for z in absent["firewall"]["zones"].as_array_mut().unwrap() {
        if z["name"] == "lan" {
            z["interfaces"] = json!(["lan9"]);
        }
    }
    let r = gw.commit(&admin, &absent, 0, "absent interface");
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["step"], "check", "{}", r.text);

    // A body that is not a configuration at all.
    let r = admin.post(
        "/api/v1/config/commit",
        &json!({"config": {"interfaces": "all"}}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    assert_eq!((gw.ruleset(), gw.addresses_and_routes()), before);
    let history = admin.get("/api/v1/config/revisions");
    assert_eq!(history.body["revisions"].as_array().unwrap().len(), 1);
    // The device still serves.
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), Some(200));
}

#[test]
fn an_unconfirmed_commit_that_breaks_management_from_the_lan_reverts_by_itself() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (rev, cfg) = gw.running(&admin);
    let before = gw.ruleset();
    let r = gw.commit(
        &admin,
        &with_management_zones(&cfg, &["mgmt"]),
        6,
        "lan out",
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"], "committed");
    let new = r.body["revision"].as_u64().unwrap();
    // In force: the lan lost management.
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), None);
    let pending = admin.get("/api/v1/config");
    assert_eq!(pending.body["pending"]["revision"], new, "{}", pending.text);
    // Nobody confirms: within the window plus the ticker's second it goes back in place.
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(15), || management_from(
            &gw,
            Role::Lan1,
            GW_LAN
        ) == Some(200)),
        "not reverted"
    );
    eprintln!("reverted {:?} after the commit", t.elapsed());
    assert_eq!(gw.ruleset(), before);
    let (now, now_cfg) = gw.running(&admin);
    assert!(now > new);
    assert_eq!(now_cfg, gw.revision(&admin, rev));
    let reverted = gw.events(&admin, "config_reverted");
    assert!(
        reverted
            .iter()
            .any(|e| e["details"]["reason"] == "not_confirmed" && e["details"]["from"] == new),
        "{reverted:?}"
    );
    // Confirming now is refused: nothing waits.
    let r = admin.post("/api/v1/config/confirm", &json!({}));
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

#[test]
fn a_confirmed_commit_stays_and_its_port_forward_carries_traffic() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    // A web server on lan host 1, reached through the gateway's wan address.
    let _server = support::TcpServer::start(&gw.netns(Role::Lan1), LAN1, 80);
    // Up, and reachable on the lan (lan host 2 to lan host 1 across the lan bridge).
    assert!(eventually(Duration::from_secs(10), || connects(
        &gw.netns(Role::Lan2),
        LAN1,
        80,
        QUICK
    )));
    assert!(!connects(&gw.netns(Role::Wan), GW_WAN, 8080, QUICK));

    let r = gw.commit(&admin, &with_port_forward(&cfg), 6, "forward 8080");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rev = r.body["revision"].as_u64().unwrap();
    let r = admin.post("/api/v1/config/confirm", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"], "confirmed");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(gw.running(&admin).0, rev, "a confirmed commit stays");
    assert!(connects(&gw.netns(Role::Wan), GW_WAN, 8080, QUICK));
}

#[test]
fn a_kill_9_during_the_window_reverts_at_the_next_start() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (rev, cfg) = gw.running(&admin);
    let before = gw.ruleset();
    let r = gw.commit(
        &admin,
        &with_management_zones(&cfg, &["mgmt"]),
        600,
        "then power cut",
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["revision"].as_u64().unwrap();
    assert_ne!(gw.ruleset(), before);
    gw.kill9();
    // The kernel keeps what was loaded: the lan is still cut.
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), None);
    gw.restart();
    let admin = gw.admin();
    assert_eq!(gw.ruleset(), before, "reverted at start");
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), Some(200));
    let (now, now_cfg) = gw.running(&admin);
    assert!(now > new);
    assert_eq!(now_cfg, gw.revision(&admin, rev));
    assert!(admin.get("/api/v1/config").body["pending"].is_null());
    let reverted = gw.events(&admin, "config_reverted");
    assert!(
        reverted
            .iter()
            .any(|e| e["details"]["reason"] == "restart" && e["details"]["from"] == new),
        "{reverted:?}"
    );
}

#[test]
fn rollback_to_a_revision_restores_it_byte_for_byte() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    let r = gw.commit(&admin, &with_port_forward(&cfg), 0, "r2");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r2 = r.body["revision"].as_u64().unwrap();
    let ruleset_r2 = gw.ruleset();
    let state_r2 = gw.addresses_and_routes();
    let config_r2 = gw.revision(&admin, r2);

    let mut other = cfg.clone();
    other["management"]["sources"] = json!(["198.51.100.0/24", "192.168.77.0/24", "::/0"]);
    let r = gw.commit(&admin, &other, 0, "r3");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_ne!(gw.ruleset(), ruleset_r2);

    let r = admin.post(
        "/api/v1/config/rollback",
        &json!({"revision": r2, "confirm_seconds": 0}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (now, now_cfg) = gw.running(&admin);
    assert!(now > r2);
    assert_eq!(now_cfg, config_r2);
    assert_eq!(gw.ruleset(), ruleset_r2);
    assert_eq!(gw.addresses_and_routes(), state_r2);
    let diff = admin.get(&format!("/api/v1/config/diff?from={r2}&to={now}"));
    assert_eq!(diff.body["diff"], "", "{}", diff.text);
    let history = admin.get("/api/v1/config/revisions");
    let newest = &history.body["revisions"][0];
    assert_eq!(newest["comment"], format!("rollback to r{r2}"));
    assert_eq!(newest["author"], "admin");
}

#[test]
fn management_from_an_unlisted_source_fails() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    let mgmt_net = format!("{}/32", gw.mgmt().host_v4);
    let mut c = cfg.clone();
    c["management"]["sources"] = json!([mgmt_net, format!("{LAN1}/32")]);
    let r = gw.commit(&admin, &c, 0, "only lan host 1");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN), Some(200));
    assert_eq!(management_from(&gw, Role::Lan2, GW_LAN), None);
    // IPv6 is not in the list at all now.
    assert_eq!(management_from(&gw, Role::Lan1, GW_LAN_V6), None);
}

#[test]
fn a_link_taken_down_and_up_keeps_the_configuration_and_is_recorded() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let before = (gw.ruleset(), gw.addresses_and_routes());
    let ns = gw.netns(Role::Gw);
    for link in ["lan0p1", "wan0"] {
        run_in(&ns, &["ip", "link", "set", link, "down"]);
        std::thread::sleep(Duration::from_millis(500));
        run_in(&ns, &["ip", "link", "set", link, "up"]);
    }
    assert!(eventually(Duration::from_secs(10), || {
        let downs = gw.events(&admin, "link_down");
        let ups = gw.events(&admin, "link_up");
        ["lan0p1", "wan0"].iter().all(|l| {
            downs.iter().any(|e| e["details"]["interface"] == *l)
                && ups.iter().any(|e| e["details"]["interface"] == *l)
        })
    }));
    // The kernel removed the routes through the links, and wan0's IPv6 address, when they went
    // down; the device puts them back once the links are up again.
    let settled = eventually(Duration::from_secs(10), || {
        (gw.ruleset(), gw.addresses_and_routes()) == before
    });
    assert!(
        settled,
        "configuration changed after the link came back:\nbefore:\n{}\nafter:\n{}",
        before.1,
        gw.addresses_and_routes()
    );
    let reapplied = gw.events(&admin, "config_applied");
    assert!(
        reapplied
            .iter()
            .any(|e| e["details"]["reason"] == "link_up" && e["outcome"] == "success"),
        "{reapplied:?}"
    );
    assert!(eventually(Duration::from_secs(10), || management_from(
        &gw,
        Role::Lan1,
        GW_LAN
    ) == Some(200)));
}

#[test]
fn floods_from_the_wan_leave_management_from_the_lan_answering() {
    if std::process::Command::new("hping3")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("hping3 is needed (scripts/test installs it)");
    }
    let mut gw = Gateway::up();
    let _admin = gw.admin();
    let wan = gw.netns(Role::Wan);
    for (what, args) in [
        (
            "SYN flood",
            vec!["-S", "-p", "443", "--flood", "--rand-source"],
        ),
        (
            "UDP flood",
            vec!["--udp", "-p", "53", "--flood", "--rand-source"],
        ),
    ] {
        let mut flood = std::process::Command::new("ip")
            .args(["netns", "exec", &wan, "timeout", "6", "hping3", "-q"])
            .args(&args)
            .arg(GW_WAN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let mut worst = Duration::ZERO;
        let until = Instant::now() + Duration::from_secs(4);
        let mut answered = 0;
        while Instant::now() < until {
            let t = Instant::now();
            assert_eq!(
                management_from(&gw, Role::Lan1, GW_LAN),
                Some(200),
                "management from the lan during the {what}"
            );
            worst = worst.max(t.elapsed());
            answered += 1;
        }
        let _ = flood.wait();
        eprintln!("{what}: {answered} requests from the lan answered, slowest {worst:?}");
        assert!(worst < QUICK);
    }
    // Afterwards: normal, lan to wan through NAT included.
    assert_eq!(management_from(&gw, Role::Lan2, GW_LAN), Some(200));
    let _server = support::TcpServer::start(&wan, "203.0.113.1", 8000);
    let through = eventually(Duration::from_secs(10), || {
        connects(&gw.netns(Role::Lan1), "203.0.113.1", 8000, QUICK)
    });
    assert!(through, "lan to wan after the floods");
}

impl Gateway {
    /// Revision `id`'s configuration.
    fn revision(&self, c: &common::Client, id: u64) -> Value {
        let r = c.get(&format!("/api/v1/config/revisions/{id}"));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["config"].clone()
    }
}

#[test]
fn drops_from_the_wan_are_summarised_in_the_audit_log() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    // A few connection attempts from the wan host to closed and management ports.
    let wan = gw.netns(Role::Wan);
    for port in [22, 443, 8443] {
        assert!(!connects(&wan, GW_WAN, port, Duration::from_millis(300)));
    }
    // One summary per interval (a minute), only when something was dropped.
    let mut found = None;
    assert!(
        eventually(Duration::from_secs(90), || {
            found = gw
                .events(&admin, "firewall_dropped")
                .into_iter()
                .find(|e| e["details"]["by_chain"]["input"].as_u64().unwrap_or(0) > 0);
            found.is_some()
        }),
        "no firewall_dropped record"
    );
    let e = found.unwrap();
    assert_eq!(e["actor"], Value::Null);
    let sources = e["details"]["top_sources"].to_string();
    assert!(sources.contains("203.0.113.1"), "{e}");
}

/// Runs `mamori` against the lab's device as admin; (exit code, stdout, stderr).
fn cli(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(common::bin("mamori"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAMORI_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .env("MAMORI_URL", format!("https://{}", gw.mgmt().gw_v4))
        .env("MAMORI_CACERT", cert(gw))
        .env("MAMORI_PASSWORD", common::ADMIN_PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_shows_checks_commits_confirms_diffs_and_rolls_back() {
    let mut gw = Gateway::up();
    let _admin = gw.admin();
    let dir = tempfile::tempdir().unwrap();
    let (code, shown, err) = cli(&gw, &["config", "show"]);
    assert_eq!(code, 0, "{err}");
    let cfg: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(cfg["management"]["port"], 443);

    // A broken candidate: exit 1 (refused), the problem named by its path, nothing changed.
    let mut bad = cfg.clone();
    bad["firewall"]["zones"][0]["interfaces"] = json!(["nope0"]);
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let (code, out, err) = cli(&gw, &["config", "check", bad_file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("/firewall/zones/0/interfaces/0"), "{out}");
    let (code, _, err) = cli(&gw, &["config", "commit", bad_file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused at step validate"), "{err}");

    // A good one: checked (with its diff), committed with the default window, confirmed.
    let good_file = dir.path().join("good.json");
    std::fs::write(&good_file, with_port_forward(&cfg).to_string()).unwrap();
    let (code, out, err) = cli(&gw, &["config", "check", good_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("+        \"internal_port\": 80"), "{out}");
    assert!(out.contains("check passed"), "{out}");
    let (code, out, err) = cli(
        &gw,
        &[
            "config",
            "commit",
            good_file.to_str().unwrap(),
            "--comment",
            "pf 8080",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("committed as revision 2"), "{out}");
    assert!(
        out.contains("confirm with `mamori config confirm`"),
        "{out}"
    );
    let (code, out, _) = cli(&gw, &["config", "history"]);
    assert_eq!(code, 0);
    assert!(out.contains("waits for confirmation"), "{out}");
    assert!(out.contains("pf 8080") && out.contains("cli"), "{out}");
    let (code, out, err) = cli(&gw, &["config", "confirm"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revision 2 confirmed"), "{out}");
    let (code, out, _) = cli(&gw, &["config", "diff", "1", "2"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("--- r1\n+++ r2\n"), "{out}");

    // Back to the factory configuration, without a window.
    let (code, out, err) = cli(&gw, &["config", "rollback", "1", "--confirm", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("committed as revision 3 (was 2)"), "{out}");
    let (_, shown, _) = cli(&gw, &["config", "show"]);
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), cfg);
    let (_, out, _) = cli(&gw, &["config", "diff", "1", "3"]);
    assert_eq!(out, "no difference\n");
}

/// A user of `role` logged in from the management link (its one-time password changed).
fn user(gw: &Gateway, admin: &common::Client, name: &str, role: &str) -> common::Client {
    admin.reauth(common::ADMIN_PASSWORD);
    let r = admin.post("/api/v1/users", &json!({"username": name, "role": role}));
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let otp = r.body["one_time_password"].as_str().unwrap().to_owned();
    let c = gw.client();
    let r = c.login(name, &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let password = "Quartz-Harbor-71-linen";
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": otp, "new": password}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = c.login(name, password);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c
}

#[test]
fn who_may_read_and_change_the_configuration_and_that_commits_need_reauthentication() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_, cfg) = gw.running(&admin);
    let changed = with_port_forward(&cfg);
    let auditor = user(&gw, &admin, "audrey", "auditor");
    let viewer = user(&gw, &admin, "victor", "viewer");
    let operator = user(&gw, &admin, "olga", "operator");

    // Reading: admin, operator, auditor; not a viewer. The DHCP status too (no wan on DHCP
    // here: an empty list).
    for c in [&auditor, &operator] {
        assert_eq!(c.get("/api/v1/config").status, StatusCode::OK);
        assert_eq!(c.get("/api/v1/config/revisions").status, StatusCode::OK);
        let r = c.get("/api/v1/network/status");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"dhcp": [], "truncated": false}));
    }
    assert_eq!(viewer.get("/api/v1/config").status, StatusCode::FORBIDDEN);
    assert_eq!(
        viewer.get("/api/v1/network/status").status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer.get("/api/v1/config/revisions/1").status,
        StatusCode::FORBIDDEN
    );
    // Changing: never an auditor or a viewer.
    for c in [&auditor, &viewer] {
        let r = gw.commit(c, &changed, 0, "");
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let r = c.post("/api/v1/config/rollback", &json!({"revision": 1}));
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    // An operator may, after confirming the password again; only they may confirm their commit.
    let r = gw.commit(&operator, &changed, 60, "by the operator");
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "reauth_required", "{}", r.text);
    operator.reauth("Quartz-Harbor-71-linen");
    let r = gw.commit(&operator, &changed, 60, "by the operator");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = admin.post("/api/v1/config/confirm", &json!({}));
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("only olga"), "{}", r.text);
    let r = operator.post("/api/v1/config/confirm", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A second commit while none waits is fine; while one waits it is refused with 409.
    let r = gw.commit(&operator, &cfg, 60, "back");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = gw.commit(&admin, &changed, 60, "overlapping");
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "commit_pending");
    let committed = gw.events(&admin, "config_committed");
    assert!(
        committed
            .iter()
            .any(|e| e["actor"] == "olga" && e["details"]["result"] == "committed"),
        "{committed:?}"
    );
}

/// S3.1-23 R1 (the DHCP client in the port inventory) and the lease made visible: the gateway's
/// wan on DHCP from dnsmasq on the wan host; the API, the CLI and the web UI show the lease
/// dnsmasq gave as bound, and the inventory stays consistent with dhcpcd's UDP 68 as
/// `dhcp-client`.
#[test]
fn a_wan_on_dhcp_gets_its_lease_from_the_wan_host_and_the_lan_still_reaches_the_wan() {
    for bin in ["/usr/sbin/dhcpcd", "/usr/sbin/dnsmasq"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is needed (scripts/test installs dhcpcd-base and dnsmasq-base)"
        );
    }
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (server, lease) = wan_on_dhcp(&gw, &admin);
    let gw_ns = gw.netns(Role::Gw);
    assert_ne!(lease, GW_WAN, "the static address went");
    let host: u8 = lease.rsplit('.').next().unwrap().parse().unwrap();
    assert!((100..=150).contains(&host), "{lease}");
    let routes = run_in(&gw_ns, &["ip", "-4", "route", "show", "default"]);
    assert!(
        routes.contains("default via 203.0.113.1 dev wan0 proto dhcp"),
        "{routes}"
    );
    // The client's files are the device's: under its state directory.
    assert!(gw.state_dir().join("dhcp/wan0/dhcpcd.conf").is_file());
    assert!(gw.state_dir().join("dhcp/wan0/lib/wan0.lease").is_file());

    // A lan host reaches the wan host through NAT. The wan host's route back to the lan points
    // at the gateway's old static address, which is gone: only connections masqueraded to the
    // leased address get an answer.
    let _web = support::TcpServer::start(&gw.netns(Role::Wan), "203.0.113.1", 8000);
    let through = eventually(Duration::from_secs(10), || {
        connects(&gw.netns(Role::Lan1), "203.0.113.1", 8000, QUICK)
    });
    assert!(through, "lan to wan through NAT over the DHCP uplink");

    // The lease as the device shows it: the address dnsmasq gave (its own lease file says so),
    // its router, DNS server and lease time, bound.
    let given = std::fs::read_to_string(server.leases()).unwrap();
    assert!(given.contains(&format!(" {lease} ")), "dnsmasq: {given}");
    let mut status = Value::Null;
    let bound = eventually(Duration::from_secs(20), || {
        let r = admin.get("/api/v1/network/status");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        status = r.body;
        status["dhcp"][0]["state"] == "bound"
    });
    assert!(bound, "{status:#}");
    let wan = &status["dhcp"][0];
    assert_eq!(status["dhcp"].as_array().unwrap().len(), 1, "{status:#}");
    assert_eq!(wan["interface"], "wan0");
    assert_eq!(wan["configured"], true);
    assert_eq!(wan["running"], true);
    let l = &wan["lease"];
    assert_eq!(l["address"], format!("{lease}/24"), "{status:#}");
    assert_eq!(l["gateway"], "203.0.113.1");
    assert_eq!(l["server"], "203.0.113.1");
    assert_eq!(l["dns_servers"], json!(["203.0.113.53"]));
    assert_eq!(l["lease_seconds"], 600);
    let at = |k: &str| {
        time::OffsetDateTime::parse(
            l[k].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!((at("expires_at") - at("obtained_at")).whole_seconds(), 600);
    let age = (time::OffsetDateTime::now_utc() - at("obtained_at")).whole_seconds();
    assert!((-5..120).contains(&age), "obtained {age} s ago");
    assert!(l["remaining_seconds"].as_u64().unwrap() <= 600);
    assert_eq!(wan["lease_error"], Value::Null);

    // The port inventory: dhcpcd's UDP 68 on the leased address is the declared DHCP client,
    // nothing is unexpected.
    let mut ports = Value::Null;
    let attributed = eventually(Duration::from_secs(20), || {
        ports = admin.get("/api/v1/system/ports").body;
        ports["live"].as_array().unwrap().iter().any(|s| {
            s["listener"] == "dhcp-client"
                && s["transport"] == "udp"
                && s["port"] == 68
                && s["address"] == lease.as_str()
                && s["owner"]["role"] == "dhcpcd"
                && s["owner"]["name"] == "dhcpcd"
        })
    });
    assert!(attributed, "{ports:#}");
    assert_eq!(ports["consistent"], true, "{ports:#}");
    assert_eq!(ports["unexpected"], json!([]), "{ports:#}");
    let declared = ports["declared"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "dhcp-client")
        .cloned()
        .unwrap();
    assert_eq!(declared["direction"], "client");
    assert_eq!(declared["holder"], "dhcpcd");
    assert!(!declared["purpose"]["en"].as_str().unwrap().is_empty());
    assert!(!declared["opens"]["ja"].as_str().unwrap().is_empty());

    // The CLI and the web UI's network page say the same.
    let (code, out, err) = cli(&gw, &["config", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("wan0  bound\n"), "{out}");
    assert!(out.contains(&format!("address      {lease}/24")), "{out}");
    assert!(out.contains("dns servers  203.0.113.53"), "{out}");
    let page = admin.get("/ui/config");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains(r#"data-interface="wan0" data-state="bound""#),
        "{}",
        page.text
    );
    assert!(page.text.contains(&format!("{lease}/24")));
    // The running revision says so (read over the management link).
    let (_, running) = gw.running(&admin);
    assert!(
        running["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "wan0" && i["dhcp"] == json!(true)),
        "{running}"
    );
}

/// Serves DHCP on the wan host and commits wan0 by DHCP: no static IPv4 address and no static
/// IPv4 default route (the lease brings one); IPv6 stays static. Waits for the lease; returns
/// the server (keep it while the lease matters) and the leased address.
fn wan_on_dhcp(gw: &Gateway, admin: &common::Client) -> (Dnsmasq, String) {
    let (_, cfg) = gw.running(admin);
    let server = Dnsmasq::start(&gw.netns(Role::Wan));
    let mut dhcp = cfg.clone();
    for i in dhcp["interfaces"].as_array_mut().unwrap() {
        if i["name"] == "wan0" {
            i["dhcp"] = json!(true);
            i["addresses"] = json!([format!("{GW_WAN_V6}/64")]);
        }
    }
    dhcp["routes"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["gateway"] != "203.0.113.1");
    let r = gw.commit(admin, &dhcp, 0, "wan by dhcp");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A lease from the range, and the default route through the router option.
    let gw_ns = gw.netns(Role::Gw);
    let mut lease = None;
    let got = eventually(Duration::from_secs(40), || {
        let addrs = run_in(
            &gw_ns,
            &["ip", "-4", "-o", "address", "show", "dev", "wan0"],
        );
        lease = addrs
            .split_whitespace()
            .find(|w| w.starts_with("203.0.113.") && w.ends_with("/24"))
            .map(|w| w.trim_end_matches("/24").to_owned());
        lease.is_some() && addrs.contains("dynamic")
    });
    assert!(got, "no lease:\n{}", gw.addresses_and_routes());
    (server, lease.unwrap())
}

/// `mamori lab up` on a lab whose gateway took its wan address by DHCP (the device's dhcpcd
/// replaced the plan's static IPv4 address and default route) reports it up and builds
/// nothing: the same namespaces, veths and device. A veth deleted by hand is still a
/// divergence that `up` repairs.
#[test]
fn a_second_lab_up_leaves_a_gateway_on_dhcp_alone_and_still_repairs_a_deleted_veth() {
    let mut gw = Gateway::up();
    let admin = gw.admin();
    let (_server, lease) = wan_on_dhcp(&gw, &admin);
    let status = mamori_lab::Lab::status(&gw.name).unwrap();
    assert_eq!(status.state, mamori_lab::LabState::Up, "{status}");
    assert_eq!(status.wan_lease, Some(format!("{lease}/24")));
    let before = gw.identity();

    // Only the lease's address and route stand in: the wan's IPv6 address, or the lease's
    // default route, gone by hand, are still missing (each put back after).
    let gw_ns = gw.netns(Role::Gw);
    let missing_after = |undo: &[&str], redo: &[&str], what: &str| {
        run_in(&gw_ns, undo);
        let status = mamori_lab::Lab::status(&gw.name).unwrap();
        assert_eq!(status.state, mamori_lab::LabState::Partial, "{status}");
        assert!(
            status.missing.iter().any(|m| m.contains(what)),
            "{:?}",
            status.missing
        );
        run_in(&gw_ns, redo);
        let status = mamori_lab::Lab::status(&gw.name).unwrap();
        assert_eq!(status.state, mamori_lab::LabState::Up, "{status}");
    };
    let v6 = format!("{GW_WAN_V6}/64");
    missing_after(
        &["ip", "addr", "del", &v6, "dev", "wan0"],
        &["ip", "addr", "replace", &v6, "dev", "wan0", "nodad"],
        &format!("address {v6}"),
    );
    missing_after(
        &["ip", "-4", "route", "del", "default", "dev", "wan0"],
        &[
            "ip",
            "-4",
            "route",
            "replace",
            "default",
            "via",
            "203.0.113.1",
            "dev",
            "wan0",
            "proto",
            "dhcp",
        ],
        "route 0.0.0.0/0",
    );

    let again = gw.up_again();
    assert!(!again.built, "rebuilt: {:?}", again.repaired);
    let device = again.device.unwrap();
    assert!(!device.started);
    assert_eq!(device.pid, gw.report.device.as_ref().unwrap().pid);
    assert_eq!(gw.identity(), before, "namespaces or veths were made again");

    // A real divergence: lan host 2's veth gone (both ends).
    run_in(&gw_ns, &["ip", "link", "del", "lan0p2"]);
    let status = mamori_lab::Lab::status(&gw.name).unwrap();
    assert_eq!(status.state, mamori_lab::LabState::Partial, "{status}");
    assert!(
        status.missing.iter().any(|m| m.contains("lan0p2")),
        "{:?}",
        status.missing
    );
    let repaired = gw.up_again();
    assert!(repaired.built && !repaired.repaired.is_empty());
    assert!(repaired.device.unwrap().started);
    let status = mamori_lab::Lab::status(&gw.name).unwrap();
    assert_eq!(status.state, mamori_lab::LabState::Up, "{status}");
    assert_ne!(gw.identity(), before);
}

/// dnsmasq as the wan's DHCP server (no DNS), in the foreground on the wan host's eth0; killed
/// on drop.
struct Dnsmasq {
    child: std::process::Child,
    /// Its lease file's directory, removed after it.
    leases_dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(ns: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("leases");
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "dnsmasq", "--no-daemon"])
            .args([
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                "--dhcp-range=203.0.113.100,203.0.113.150,255.255.255.0,10m",
                "--dhcp-option=3,203.0.113.1",
                "--dhcp-option=6,203.0.113.53",
            ])
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Dnsmasq {
            child,
            leases_dir: dir,
        }
    }

    /// Its lease file (what it gave).
    fn leases(&self) -> std::path::PathBuf {
        self.leases_dir.path().join("leases")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
