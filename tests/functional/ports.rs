//! S3.1-23 R1, S3.1-26 R1: the port inventory (`GET /api/v1/system/ports`) of a device in its
//! own network namespace, checked against sockets the test opens there itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// A helper in the device's namespace holding a bound UDP socket on `[::]:udp_port` (v6 table)
/// and a TCP listener on `[::1]:tcp_port`; returns once both are bound. Killed on drop.
struct Helper(Child);

impl Helper {
    fn start(ns: &Netns, udp_port: u16, tcp_port: u16) -> Helper {
        let script = format!(
            "import socket,sys,time\n\
             u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);u.bind(('::',{udp_port}))\n\
             t=socket.socket(socket.AF_INET6,socket.SOCK_STREAM);t.bind(('::1',{tcp_port}));t.listen(1)\n\
             print('ready',flush=True);time.sleep(120)\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 in the namespace");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the helper did not bind its sockets");
        Helper(child)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ports(c: &Client) -> Value {
    let r = c.get("/api/v1/system/ports");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn find<'a>(list: &'a Value, transport: &str, port: u16) -> Option<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["transport"] == transport && s["port"] == port)
}

/// A fresh device's namespace has exactly its HTTPS listener open, held by the management
/// process and matched to the registry; then sockets opened by another process there (UDP on
/// `[::]`, TCP on `[::1]`) are reported as unexpected with their port and family, and gone again
/// once closed.
#[test]
fn the_inventory_shows_the_https_listener_and_every_stranger() {
    if !is_root() {
        eprintln!("skipped: a network namespace needs root");
        return;
    }
    let d = Device::builder().netns().start();
    let admin = d.admin();
    let port = d.addr.port();

    let inv = ports(&admin);
    assert_eq!(inv["consistent"], true, "{inv:#}");
    assert_eq!(inv["unexpected"], json!([]), "{inv:#}");
    assert_eq!(inv["missing"], json!([]), "{inv:#}");
    let live = inv["live"].as_array().unwrap();
    assert_eq!(live.len(), 1, "only the HTTPS listener: {inv:#}");
    let https = &live[0];
    assert_eq!(https["listener"], "https");
    assert_eq!(https["transport"], "tcp");
    assert_eq!(https["family"], "ipv4");
    assert_eq!(https["port"], port);
    assert_eq!(https["address"], d.addr.ip().to_string());
    // Run as root: separated, so the listener belongs to the management process.
    assert_eq!(https["owner"]["role"], "mamorid_management", "{inv:#}");
    assert_eq!(https["owner"]["name"], "mamorid");
    // The registry comes along: what is open and what is deliberately not served.
    let declared: Vec<&str> = inv["declared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    for id in [
        "https",
        "console",
        "ntp-server",
        "chronyd-command",
        "dns",
        "ssdp",
    ] {
        assert!(declared.contains(&id), "{id} not declared: {declared:?}");
    }

    let (udp_port, tcp_port) = (free_port(), free_port());
    let helper = Helper::start(d.netns().unwrap(), udp_port, tcp_port);
    let inv = ports(&admin);
    assert_eq!(inv["consistent"], false);
    let unexpected = &inv["unexpected"];
    assert_eq!(unexpected.as_array().unwrap().len(), 2, "{inv:#}");
    let udp = find(unexpected, "udp", udp_port).expect("the helper's UDP socket");
    assert_eq!(udp["family"], "ipv6");
    assert_eq!(udp["address"], "::");
    assert_eq!(udp["owner"]["role"], "other");
    let tcp = find(unexpected, "tcp", tcp_port).expect("the helper's TCP listener");
    assert_eq!(tcp["family"], "ipv6");
    assert_eq!(tcp["address"], "::1");
    assert_eq!(tcp["owner"]["role"], "other");
    assert_eq!(tcp["owner"]["pid"], udp["owner"]["pid"]);
    // The HTTPS listener is still the expected one.
    assert_eq!(
        find(&inv["live"], "tcp", port).unwrap()["listener"],
        "https"
    );

    drop(helper);
    let inv = ports(&admin);
    assert_eq!(inv["consistent"], true, "{inv:#}");
}

/// Admins and auditors read the inventory; operators and viewers do not.
#[test]
fn admins_and_auditors_read_the_inventory() {
    let d = Device::start();
    let admin = d.admin();
    for (name, role, expected) in [
        ("zz-auditor", "auditor", StatusCode::OK),
        ("zz-viewer", "viewer", StatusCode::FORBIDDEN),
        ("zz-operator", "operator", StatusCode::FORBIDDEN),
    ] {
        let c = new_user(
            &d,
            &admin,
            name,
            role,
            "Orchid-Tundra-35-plain",
            "127.0.0.1",
        );
        let r = c.get("/api/v1/system/ports");
        assert_eq!(r.status, expected, "{role}: {}", r.text);
    }
}
