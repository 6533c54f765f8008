//! The network operations through the real privileged parent, as root, inside a private network
//! namespace with two veth interfaces.
//!
//! This binary is also the daemon under test: `--demo-parent STATE` runs `run_parent` (started
//! by the test through `ip netns exec NS`), which re-executes it with `--demo-child STATE`. The
//! first child confines itself, asks `CheckNetwork` and `ApplyNetwork` for the factory
//! configuration and `ApplyNetwork` for one that fails validation, prints the answers, waits for
//! the test's go, then sends a raw frame whose interface name contains `;`. The parent must
//! kill it; the second child sends a 16-byte interface name and must be killed too; the third
//! only says it is idle. The test compares the kernel's state before and after the hostile
//! frames.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Case, Lines, TestResult};
use mamori_netconfig::{Applier, NetworkConfig, NetworkState};
use mamori_privsep::client::Parent;
use mamori_privsep::op::Reply;
use mamori_privsep::wire;
use serde_json::{Value, json};

/// The factory configuration for wan eth0 and lan eth1, as the management process stores it.
const FACTORY_INTERFACES: &str = r#"[
  {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24", "2001:db8:1::2/64"]},
  {"name": "eth1", "role": "lan", "addresses": ["192.168.1.1/24", "fd00:1::1/64"]}
]"#;

fn factory() -> NetworkConfig {
    NetworkConfig::factory(serde_json::from_str(FACTORY_INTERFACES).unwrap_or_default())
}

fn main() -> ExitCode {
    // The parent's log (stderr) helps when a case fails.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("mamori=debug")
        .try_init();
    if let Some(code) = common::demo_main(demo_child) {
        return code;
    }
    common::run(&[Case {
        name: "the_root_parent_applies_a_network_configuration_in_a_namespace_and_kills_a_hostile_child",
        needs_root: true,
        run:
            the_root_parent_applies_a_network_configuration_in_a_namespace_and_kills_a_hostile_child,
    }])
}

// ---- the demo daemon ---------------------------------------------------------------------

fn say(tag: &str, v: &Value) {
    println!("{tag} {v}");
    let _ = std::io::stdout().flush();
}

fn demo_child(state: &Path) -> u8 {
    let (parent, _) = match common::confined_child(state) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let store = state.join("store");
    let pid = std::process::id();
    let round = (0..3)
        .find(|n| !store.join(format!("round-{n}")).exists())
        .unwrap_or(3);
    let _ = std::fs::write(store.join(format!("round-{round}")), b"x");
    let hostile = |name: &str| {
        let mut config = serde_json::to_value(factory()).unwrap_or_default();
        config["interfaces"][1]["name"] = json!(name);
        config["firewall"]["zones"][1]["interfaces"][0] = json!(name);
        json!({"op": "ApplyNetwork", "args": {"config": config}})
    };
    let send_raw = |frame: &Value| -> String {
        let Parent::Channel(chan) = &parent else {
            return "not separated".to_owned();
        };
        let Ok(mut s) = chan.lock() else {
            return "lock".to_owned();
        };
        // Framed by hand: a well-formed frame whose payload is no valid request.
        let payload = frame.to_string().into_bytes();
        let mut bytes = u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes()
            .to_vec();
        bytes.extend_from_slice(&payload);
        if let Err(e) = s.write_all(&bytes) {
            return format!("write: {e}");
        }
        match wire::read_frame::<_, Reply>(&mut *s) {
            Ok(reply) => format!("answered: {reply:?}"),
            Err(e) => format!("no answer: {e}"),
        }
    };
    match round {
        0 => {
            // The nftables socket, passed over the channel (SCM_RIGHTS) to a confined child.
            let listener = parent.nftables_listener();
            let check = parent.check_network(factory());
            let apply = parent.apply_network(factory());
            let queued_after_apply = listener.as_ref().ok().map(queued);
            let mut invalid = factory();
            invalid.interfaces[1].addresses = invalid.interfaces[0].addresses.clone();
            let refused = parent.apply_network(invalid);
            say(
                "CHILD",
                &json!({
                    "pid": pid,
                    "check": check.as_ref().map_err(ToString::to_string),
                    "apply": apply.as_ref().map_err(ToString::to_string),
                    "invalid": refused.as_ref().map_err(ToString::to_string),
                    "listener": listener.as_ref().map(drop).map_err(ToString::to_string),
                    "queued_after_apply": queued_after_apply,
                }),
            );
            while !store.join("go").exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
            // The test changed the ruleset before the go: heard.
            say(
                "HEARD",
                &json!({"queued": listener.as_ref().ok().map(queued)}),
            );
            say("HOSTILE", &json!({"pid": pid, "name": "eth1;reboot"}));
            let got = send_raw(&hostile("eth1;reboot"));
            say("AFTER", &json!({"pid": pid, "got": got}));
        }
        1 => {
            say("HOSTILE", &json!({"pid": pid, "name": "abcdefghijklmnop"}));
            let got = send_raw(&hostile("abcdefghijklmnop"));
            say("AFTER", &json!({"pid": pid, "got": got}));
        }
        _ => say("IDLE", &json!({"pid": pid})),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Datagrams queued on the nftables socket (read without waiting, then gone).
fn queued(fd: &std::os::fd::OwnedFd) -> usize {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while nix::sys::socket::recv(
        fd.as_raw_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .is_ok()
    {
        n += 1;
    }
    n
}

// ---- the test ----------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with the veth pair eth0–eth1, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Result<Self, String> {
        let name = format!(
            "mamori-ps-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name])?;
        let ns = Self(name);
        run(
            "ip",
            &[
                "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
            ],
        )?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Daemon {
    parent: Child,
    lines: Lines,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.parent.try_wait() {
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
    }
}

fn next(d: &Daemon, tag: &str) -> Result<Value, String> {
    let line = d.lines.next_with(tag, Duration::from_secs(30))?;
    serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
}

fn snapshot(ns: &Netns, state: &Path) -> Result<(NetworkState, String), String> {
    let applier = Applier::in_netns(&ns.0, state.join("network/addresses.json"));
    let s = applier.state(["eth0", "eth1"]).map_err(|e| e.to_string())?;
    let addr = run("ip", &["-n", &ns.0, "-j", "addr"])?;
    Ok((s, addr))
}

/// Waits until IPv6 duplicate address detection is over, so unchanged state reads the same.
fn settle(ns: &Netns) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match run("ip", &["-n", &ns.0, "-j", "addr"]) {
            Ok(a) if !a.contains("tentative") => return,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn the_root_parent_applies_a_network_configuration_in_a_namespace_and_kills_a_hostile_child()
-> TestResult {
    common::user()?;
    let ns = Netns::new()?;
    let dir = common::tempdir()?;
    let state = dir.path().join("state");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut parent = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&exe)
        .arg("--demo-parent")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = parent.stdout.take().ok_or("no stdout")?;
    let d = Daemon {
        parent,
        lines: Lines::new(stdout),
        state,
        _dir: dir,
    };

    let first = next(&d, "CHILD ")?;
    println!("  first child: {first}");
    check!(
        first["check"]["Ok"]["result"] == "checked",
        "CheckNetwork: {first}"
    );
    let applied = &first["apply"]["Ok"];
    check!(applied["result"] == "applied", "ApplyNetwork: {first}");
    println!(
        "  through privsep, factory for 2 interfaces: check: render {} ms, nft -c {} ms; apply: render {} ms, snapshot {} ms (listed: {}), nft -f {} ms, addresses {} ms",
        first["check"]["Ok"]["render_ms"],
        first["check"]["Ok"]["check_ms"],
        applied["render_ms"],
        applied["snapshot_ms"],
        applied["snapshot_listed"],
        applied["load_ms"],
        applied["addresses_ms"]
    );
    check!(applied["load_ms"].is_u64(), "nft -f ran: {first}");
    // The parent's own load was not announced on the socket the child received.
    check!(first["listener"]["Ok"].is_null(), "listener: {first}");
    check!(
        applied["generations"]["quiet"] == true,
        "notifications paused: {first}"
    );
    check!(
        first["queued_after_apply"] == 0,
        "mamori's own load announced: {first}"
    );
    let invalid = &first["invalid"]["Ok"];
    check!(
        invalid["result"] == "refused"
            && invalid["step"] == "validate"
            && invalid["rollback"]["state"] == "nothing_changed",
        "invalid configuration: {first}"
    );

    // The kernel of the namespace has mamori's tables and the addresses.
    run(
        "ip",
        &[
            "netns", "exec", &ns.0, "nft", "list", "table", "inet", "mamori",
        ],
    )?;
    settle(&ns);
    let (before, addr_before) = snapshot(&ns, &d.state)?;
    check!(
        before.addresses["eth0"] == ["203.0.113.2/24", "2001:db8:1::2/64"]
            && before.addresses["eth1"] == ["192.168.1.1/24", "fd00:1::1/64"],
        "{before:?}"
    );
    let record = std::fs::read_to_string(d.state.join("network/addresses.json"))
        .map_err(|e| e.to_string())?;
    check!(record.contains("192.168.1.1/24"), "{record}");

    // Another program's change is heard on the child's socket.
    run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "nft",
            "add",
            "table",
            "ip",
            "collector",
        ],
    )?;
    // The hostile frames: each child is killed before an answer, nothing runs.
    std::fs::write(d.state.join("store/go"), b"go").map_err(|e| e.to_string())?;
    let heard = next(&d, "HEARD ")?;
    check!(
        heard["queued"].as_u64().is_some_and(|n| n > 0),
        "another program's change not heard: {heard}"
    );
    // Expected from here: HOSTILE (first child), HOSTILE (second child), IDLE (third). A child
    // may see the channel close before the parent's SIGKILL lands (an AFTER line with no
    // answer); an AFTER line with an answer means the parent acted on the frame.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = d.lines.next_with("", Duration::from_secs(30))?;
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        if tag == "AFTER" {
            check!(
                !rest.contains("answered"),
                "the parent answered a hostile frame: {line}"
            );
            continue;
        }
        if !["HOSTILE", "IDLE"].contains(&tag) {
            continue;
        }
        let v: Value = serde_json::from_str(rest).map_err(|e| format!("{e}: {line}"))?;
        seen.push((tag.to_owned(), v["pid"].as_u64(), v["name"].clone()));
    }
    for (_, pid, _) in &seen[..2] {
        let pid = u32::try_from(pid.unwrap_or(0)).map_err(|e| e.to_string())?;
        let alive = common::proc_status(pid, "State").is_ok_and(|s| !s.starts_with('Z'));
        check!(!alive, "hostile child {pid} still runs");
    }
    check!(
        seen[0].0 == "HOSTILE" && seen[0].2 == "eth1;reboot" && seen[0].1 == first["pid"].as_u64(),
        "{seen:?}"
    );
    check!(
        seen[1].0 == "HOSTILE" && seen[1].2 == "abcdefghijklmnop" && seen[1].1 != seen[0].1,
        "{seen:?}"
    );
    check!(seen[2].0 == "IDLE" && seen[2].1 != seen[1].1, "{seen:?}");
    settle(&ns);
    let (after, addr_after) = snapshot(&ns, &d.state)?;
    check!(after == before, "state changed: {before:?} -> {after:?}");
    check!(addr_after == addr_before, "ip -j addr changed");
    Ok(())
}
