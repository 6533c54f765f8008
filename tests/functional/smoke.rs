//! The device starts, provisions itself and serves its API.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// S3.1-02 R2-1, S3.1-14: the label password opens only a password change; after it the
/// device shows its model and serial.
#[test]
fn first_start_label_password_forces_a_change_then_device_info_is_visible() {
    let d = Device::start_with(&["--model", "MG-100", "--serial", "SN-TEST-0001"]);
    let c = d.client();
    let label = d.label_password.clone().unwrap();
    assert!(label.len() >= 12);
    assert_eq!(c.login("admin", &label).status, StatusCode::OK);
    let r = c.get("/api/v1/device");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "password_change_required")
    );
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": label, "new": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = c.get("/api/v1/device");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["model"], "MG-100");
    assert_eq!(r.body["serial"], "SN-TEST-0001");
    assert!(r.body["uptime_seconds"].as_u64().is_some());
    // The label password works once: it no longer logs in.
    assert_eq!(
        d.client().login("admin", &label).status,
        StatusCode::UNAUTHORIZED
    );
}

/// Without `--factory-network` the device manages no network: the configuration endpoints say so
/// (409, a plain reason) instead of failing, and nothing is applied.
#[test]
fn without_a_factory_network_the_configuration_endpoints_say_the_network_is_not_managed() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    // A whole, well-formed candidate: the body is read and checked first, then refused for the
    // device's mode.
    let candidate = mamori_lab::gateway_config(&mamori_lab::Mgmt::slot(0)).to_canonical_json();
    let candidate: serde_json::Value = serde_json::from_str(&candidate).unwrap();
    for r in [
        admin.get("/api/v1/config"),
        admin.get("/api/v1/config/revisions"),
        admin.post("/api/v1/config/check", &json!({"config": candidate})),
        admin.post("/api/v1/config/commit", &json!({"config": candidate})),
        admin.post("/api/v1/config/confirm", &json!({})),
        admin.post("/api/v1/config/rollback", &json!({"revision": 1})),
        admin.get("/api/v1/network/status"),
    ] {
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert!(r.text.contains("does not manage its network"), "{}", r.text);
    }
}

/// The DHCP status is read with the configuration's permission (ConfigRead): an auditor passes
/// the guard (and learns the device manages no network), a viewer is refused before anything
/// is read.
#[test]
fn the_network_status_needs_the_permission_to_read_the_configuration() {
    let d = Device::start();
    let admin = d.admin();
    let viewer = new_user(&d, &admin, "vera", "viewer", OTHER_PASSWORD, "127.0.0.23");
    let auditor = new_user(
        &d,
        &admin,
        "audrey",
        "auditor",
        "Copper-Willow-38-stone",
        "127.0.0.24",
    );
    let r = viewer.get("/api/v1/network/status");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("manage its network"), "{}", r.text);
    let r = auditor.get("/api/v1/network/status");
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // Without a session: 401, nothing else.
    let r = d.client().get("/api/v1/network/status");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}
