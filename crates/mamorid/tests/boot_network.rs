//! `mamorid --factory-network FILE` started as root in a private network namespace: the
//! privileged parent puts the factory configuration in force before it starts the management
//! process (whose listener must find the firewall standing). Skipped unless root with nft and
//! ip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // unwraps are assertions here

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// wan eth0, lan eth1; lan to wan accepted, management from the lan.
const FACTORY: &str = r#"{
  "interfaces": [
    {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24"]},
    {"name": "eth1", "role": "lan", "addresses": ["192.168.1.1/24"]}
  ],
  "firewall": {
    "zones": [{"name": "wan", "interfaces": ["eth0"]}, {"name": "lan", "interfaces": ["eth1"]}],
    "policies": [{"from": "lan", "to": "wan", "action": "accept"}]
  },
  "management": {"port": 443, "zones": ["lan"], "sources": []}
}"#;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tools = Command::new("nft").arg("--version").output().is_ok()
        && Command::new("ip").arg("-V").output().is_ok();
    if !(root && tools) {
        eprintln!("skipped: needs root, nft and ip");
    }
    root && tools
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Removes ANSI colour sequences from a log line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_parent_puts_the_factory_network_in_force_before_the_management_process_starts() {
    if !can_run() {
        return;
    }
    let ns = Netns(format!("mamori-md-{}", std::process::id()));
    run("ip", &["netns", "add", &ns.0]);
    run("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
    run(
        "ip",
        &[
            "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ],
    );
    let dir = tempfile_dir();
    let factory = dir.join("factory.json");
    std::fs::write(&factory, FACTORY).unwrap();
    let state = dir.join("state");
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_mamorid"))
        .arg("--state-dir")
        .arg(&state)
        .args([
            "--listen",
            "127.0.0.1:18443",
            "--model",
            "M1",
            "--serial",
            "S1",
        ])
        .arg("--factory-network")
        .arg(&factory)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = daemon.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(plain(&line)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut before = Vec::new();
    let started = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("management process started") => break Some(line),
            Ok(line) => before.push(line),
            Err(_) => break None,
        }
    };
    // The tables, as the management process finds them.
    let tables = run("ip", &["netns", "exec", &ns.0, "nft", "list", "tables"]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(daemon.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stop = Instant::now() + Duration::from_secs(20);
    while daemon.try_wait().unwrap().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        started.is_some(),
        "no management process started:\n{}",
        before.join("\n")
    );
    let booted = before
        .iter()
        .find(|l| l.contains("network at start"))
        .unwrap_or_else(|| panic!("no boot apply before the child:\n{}", before.join("\n")));
    eprintln!("{booted}\n{}", started.unwrap_or_default());
    assert!(booted.contains("Factory"), "{booted}");
    assert!(
        tables.contains("table inet mamori\n") && tables.contains("table inet mamori_nat"),
        "{tables}"
    );
}

/// A temporary directory the management user can traverse (0755).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mamori-md-boot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
