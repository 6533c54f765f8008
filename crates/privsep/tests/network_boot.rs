//! The network operations of the real privileged parent at size and at start, as root, each
//! case in a private network namespace with two veth interfaces.
//!
//! This binary is also the daemon under test (`common::demo_main`): `--demo-parent STATE
//! [--demo-factory FILE]` runs `run_parent` (started through `ip netns exec NS`), whose child is
//! this binary with `--demo-child STATE`. What the child does is written by the test to
//! `STATE/store/scenario` before the parent starts:
//!
//! - `large`: the confined child sends `CheckNetwork` and `ApplyNetwork` of 10,000 rules and a
//!   50,000-entry address set (about 2.3 MB of JSON, over the old 1 MiB frame cap), then
//!   `ApplyNetwork` of the same configuration again (nft must not run).
//! - `boot`: before confining itself (still root, in the namespace) the child lists the
//!   ruleset and says whether mamori's tables are there and which configuration they carry;
//!   that is what the parent put in force before the child existed. In its first two lives it
//!   then applies a configuration of its own.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Case, Lines, TestResult};
use mamori_netconfig::{
    Action, AddressMatch, AddressSet, Comment, Family, NetworkConfig, PortRange, Prefix, Proto,
    Rule, SetName, ZoneName,
};
use mamori_privsep::client::NetworkOutcome;
use serde_json::{Value, json};

const INTERFACES: &str = r#"[
  {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24", "2001:db8:1::2/64"]},
  {"name": "eth1", "role": "lan", "addresses": ["192.168.1.1/24", "fd00:1::1/64"]}
]"#;

fn factory() -> NetworkConfig {
    NetworkConfig::factory(serde_json::from_str(INTERFACES).unwrap_or_default())
}

/// The factory configuration with one rule whose comment names the configuration.
fn marked(mark: &str) -> NetworkConfig {
    let mut cfg = factory();
    let (Ok(lan), Ok(comment)) = (ZoneName::parse("lan"), Comment::parse(mark)) else {
        return cfg;
    };
    let mut rule = Rule::new(lan, ZoneName::device(), Action::Accept);
    rule.proto = Some(Proto::Udp);
    rule.ports = PortRange::single(53).into_iter().collect();
    rule.comment = Some(comment);
    cfg.firewall.rules.push(rule);
    cfg
}

/// 10,000 rules from wan to lan, each with its own /24 and port, and a 50,000-entry IPv4 set
/// dropped from wan to the device.
fn large() -> NetworkConfig {
    let mut cfg = factory();
    let (Ok(wan), Ok(lan), Ok(set)) = (
        ZoneName::parse("wan"),
        ZoneName::parse("lan"),
        SetName::parse("big"),
    ) else {
        return cfg;
    };
    // 10.0.0.0/24, 10.0.1.0/24, …: the i-th /24 above 10.0.0.0.
    let net = |i: u32| {
        let text = format!("{}.{}.{}.0/24", 10 + (i >> 16), (i >> 8) & 255, i & 255);
        Prefix::parse(&text).ok()
    };
    for i in 0..10_000u32 {
        let mut rule = Rule::new(wan.clone(), lan.clone(), Action::Accept);
        rule.source = net(i).map(|p| AddressMatch::Prefixes(vec![p]));
        rule.proto = Some(Proto::Tcp);
        rule.ports = u16::try_from(1024 + i)
            .ok()
            .and_then(|p| PortRange::single(p).ok())
            .into_iter()
            .collect();
        cfg.firewall.rules.push(rule);
    }
    cfg.firewall.sets.push(AddressSet {
        name: set.clone(),
        family: Family::Ipv4,
        entries: (0..50_000).filter_map(net).collect(),
    });
    let mut drop = Rule::new(wan, ZoneName::device(), Action::Drop);
    drop.source = Some(AddressMatch::Set(set));
    cfg.firewall.rules.push(drop);
    cfg
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("mamori=info")
        .try_init();
    if let Some(code) = common::demo_main(demo_child) {
        return code;
    }
    common::run(&[
        Case {
            name: "a_configuration_of_10000_rules_and_a_50000_entry_set_passes_the_real_parent",
            needs_root: true,
            run: a_configuration_of_10000_rules_and_a_50000_entry_set_passes_the_real_parent,
        },
        Case {
            name: "the_parent_puts_the_last_applied_or_the_factory_network_in_force_before_its_child_starts",
            needs_root: true,
            run: the_parent_puts_the_last_applied_or_the_factory_network_in_force_before_its_child_starts,
        },
    ])
}

// ---- the demo daemon ---------------------------------------------------------------------

fn say(tag: &str, v: &Value) {
    println!("{tag} {v}");
    let _ = std::io::stdout().flush();
}

fn outcome(r: &Result<NetworkOutcome, mamori_privsep::PrivsepError>) -> Value {
    match r {
        Ok(o) => serde_json::to_value(o).unwrap_or_default(),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn demo_child(state: &Path) -> u8 {
    let store = state.join("store");
    let scenario = std::fs::read_to_string(store.join("scenario")).unwrap_or_default();
    let round = (0..16)
        .find(|n| !store.join(format!("round-{n}")).exists())
        .unwrap_or(16);
    let _ = std::fs::write(store.join(format!("round-{round}")), b"x");
    if scenario.trim() == "boot" {
        // Still root and not yet confined: what did the parent put in force? (The parent
        // gives its child no PATH.)
        let listed = Command::new("/usr/sbin/nft")
            .args(["list", "ruleset"])
            .output();
        let (text, error) = match listed {
            Ok(o) if o.status.success() => (String::from_utf8_lossy(&o.stdout).into_owned(), None),
            Ok(o) => (
                String::new(),
                Some(String::from_utf8_lossy(&o.stderr).into_owned()),
            ),
            Err(e) => (String::new(), Some(e.to_string())),
        };
        let mark = ["boot-a", "boot-b"]
            .into_iter()
            .find(|m| text.contains(&format!("r0: {m}")));
        say(
            "BOOT",
            &json!({
                "round": round,
                "mamori": text.contains("table inet mamori {"),
                "mamori_nat": text.contains("table inet mamori_nat {"),
                "mark": mark,
                "error": error,
            }),
        );
    }
    let (parent, _) = match common::confined_child(state) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match (scenario.trim(), round) {
        ("large", 0) => {
            let cfg = large();
            let bytes = serde_json::to_vec(&cfg).map_or(0, |b| b.len());
            let t = Instant::now();
            let check = parent.check_network(cfg.clone());
            let check_ms = t.elapsed().as_millis();
            let t = Instant::now();
            let apply = parent.apply_network(cfg.clone());
            let apply_ms = t.elapsed().as_millis();
            let t = Instant::now();
            let again = parent.apply_network(cfg);
            let again_ms = t.elapsed().as_millis();
            say(
                "LARGE",
                &json!({
                    "bytes": bytes,
                    "check": outcome(&check), "check_ms": check_ms,
                    "apply": outcome(&apply), "apply_ms": apply_ms,
                    "again": outcome(&again), "again_ms": again_ms,
                }),
            );
        }
        ("boot", 0 | 1) => {
            let apply = parent.apply_network(marked("boot-b"));
            say(
                "APPLIED",
                &json!({"round": round, "apply": outcome(&apply)}),
            );
        }
        _ => say("IDLE", &json!({"round": round})),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---- the tests ---------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with the veth pair eth0–eth1, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Result<Self, String> {
        let name = format!(
            "mamori-pb-{}-{}",
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

    fn nft(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", self.0.as_str(), "nft"];
        all.extend_from_slice(args);
        run("ip", &all)
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

/// The demo parent in `ns`, killed on drop if still running.
struct Daemon {
    parent: Child,
    lines: Lines,
}

impl Daemon {
    fn start(ns: &Netns, state: &Path, factory: Option<&Path>) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0])
            .arg(&exe)
            .arg("--demo-parent")
            .arg(state);
        if let Some(f) = factory {
            cmd.arg("--demo-factory").arg(f);
        }
        let mut parent = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = parent.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            parent,
            lines: Lines::new(stdout),
        })
    }

    fn next(&self, tag: &str, timeout: Duration) -> Result<Value, String> {
        let line = self.lines.next_with(tag, timeout)?;
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
    }

    /// SIGTERM, and the parent's own report of its exit.
    fn stop(mut self) -> Result<(), String> {
        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(self.parent.id()).map_err(|e| e.to_string())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| e.to_string())?;
        self.lines
            .next_with("PARENT-EXIT", Duration::from_secs(20))?;
        let _ = self.parent.wait();
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.parent.try_wait() {
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
    }
}

/// A state directory with the scenario for the child, and a directory for other files.
fn state_for(scenario: &str) -> Result<(tempfile::TempDir, PathBuf), String> {
    let dir = common::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("store")).map_err(|e| e.to_string())?;
    std::fs::write(state.join("store/scenario"), scenario).map_err(|e| e.to_string())?;
    Ok((dir, state))
}

fn a_configuration_of_10000_rules_and_a_50000_entry_set_passes_the_real_parent() -> TestResult {
    common::user()?;
    let ns = Netns::new()?;
    let (_dir, state) = state_for("large")?;
    let d = Daemon::start(&ns, &state, None)?;
    let got = d.next("LARGE ", Duration::from_secs(300))?;
    let bytes = got["bytes"].as_u64().unwrap_or(0);
    println!(
        "  {bytes} bytes of JSON; CheckNetwork {} ms {}; ApplyNetwork {} ms {}; again {} ms {}",
        got["check_ms"], got["check"], got["apply_ms"], got["apply"], got["again_ms"], got["again"]
    );
    check!(
        bytes > 1 << 20 && bytes < 16 << 20,
        "{bytes} bytes: over the old 1 MiB cap, under the new 16 MiB one"
    );
    check!(got["check"]["result"] == "checked", "{got}");
    check!(got["apply"]["result"] == "applied", "{got}");
    check!(got["apply"]["load_ms"].is_u64(), "nft -f ran: {got}");
    check!(got["again"]["result"] == "applied", "{got}");
    check!(
        got["again"]["load_ms"].is_null() && got["again"]["snapshot_listed"] == false,
        "the same configuration again does not run nft: {got}"
    );
    // The kernel holds the rules and the set.
    let forward = ns.nft(&["list", "chain", "inet", "mamori", "forward"])?;
    let rules = forward.matches("comment \"r").count();
    check!(rules == 10_000, "{rules} rules in forward");
    let set = ns.nft(&["-j", "list", "set", "inet", "mamori", "u_big"])?;
    let v: Value = serde_json::from_str(&set).map_err(|e| e.to_string())?;
    let elements = v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["set"]["elem"].as_array()))
        .map_or(0, Vec::len);
    check!(elements == 50_000, "{elements} elements in u_big");
    // The configuration is recorded for the next start: root, 0600.
    let applied = state.join("network/applied.json");
    let meta = std::fs::metadata(&applied).map_err(|e| format!("{}: {e}", applied.display()))?;
    check!(
        meta.uid() == 0 && meta.permissions().mode() & 0o777 == 0o600,
        "applied.json: uid {} mode {:o}",
        meta.uid(),
        meta.permissions().mode()
    );
    let recorded: NetworkConfig =
        serde_json::from_slice(&std::fs::read(&applied).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    check!(
        recorded == large(),
        "applied.json is the configuration applied"
    );
    d.stop()
}

fn the_parent_puts_the_last_applied_or_the_factory_network_in_force_before_its_child_starts()
-> TestResult {
    common::user()?;
    let ns = Netns::new()?;
    let (dir, state) = state_for("boot")?;
    let factory_file = dir.path().join("factory.json");
    let write_factory = |cfg: &NetworkConfig| {
        std::fs::write(&factory_file, serde_json::to_vec(cfg).unwrap_or_default())
            .map_err(|e| e.to_string())
    };
    write_factory(&marked("boot-a"))?;
    let wipe = || -> TestResult {
        // What a reboot does to the kernel's tables.
        for t in ["mamori", "mamori_nat"] {
            let _ = ns.nft(&["delete", "table", "inet", t]);
        }
        check!(
            !ns.nft(&["list", "tables"])?.contains("mamori"),
            "tables left"
        );
        Ok(())
    };
    let long = Duration::from_secs(60);

    // 1. First start: no applied configuration yet, so the factory one, before the child.
    let d = Daemon::start(&ns, &state, Some(&factory_file))?;
    let boot = d.next("BOOT ", long)?;
    println!("  first start: {boot}");
    check!(boot["error"].is_null(), "{boot}");
    check!(
        boot["round"] == 0 && boot["mamori"] == true && boot["mamori_nat"] == true,
        "{boot}"
    );
    check!(
        boot["mark"] == "boot-a",
        "the factory configuration: {boot}"
    );
    let applied = d.next("APPLIED ", long)?;
    check!(applied["apply"]["result"] == "applied", "{applied}");
    let file = state.join("network/applied.json");
    let meta = std::fs::metadata(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    check!(
        meta.uid() == 0 && meta.permissions().mode() & 0o777 == 0o600,
        "uid {} mode {:o}",
        meta.uid(),
        meta.permissions().mode()
    );
    check!(
        std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())?
            .contains("boot-b"),
        "applied.json holds the configuration the child applied"
    );
    d.stop()?;

    // 2. Restart after a "reboot": the last applied configuration, not the factory one; the
    //    child's apply of the same configuration then runs no nft.
    wipe()?;
    let d = Daemon::start(&ns, &state, Some(&factory_file))?;
    let boot = d.next("BOOT ", long)?;
    println!("  second start: {boot}");
    check!(boot["round"] == 1 && boot["mamori"] == true, "{boot}");
    check!(
        boot["mark"] == "boot-b",
        "the last applied configuration: {boot}"
    );
    let applied = d.next("APPLIED ", long)?;
    println!("  the same configuration again: {applied}");
    check!(
        applied["apply"]["result"] == "applied" && applied["apply"]["load_ms"].is_null(),
        "{applied}"
    );
    d.stop()?;

    // 3. An unreadable last configuration: the factory one.
    wipe()?;
    std::fs::write(&file, b"{ not json").map_err(|e| e.to_string())?;
    let d = Daemon::start(&ns, &state, Some(&factory_file))?;
    let boot = d.next("BOOT ", long)?;
    println!("  unreadable applied.json: {boot}");
    check!(boot["mamori"] == true && boot["mark"] == "boot-a", "{boot}");
    d.stop()?;

    // 4. Nothing usable (no last configuration, a factory one naming a missing interface):
    //    logged, and the parent still starts its child.
    wipe()?;
    std::fs::remove_file(&file).map_err(|e| e.to_string())?;
    let mut missing = marked("boot-a");
    missing.interfaces[1].name =
        mamori_netconfig::IfName::parse("eth9").map_err(|e| e.to_string())?;
    missing.firewall.zones[1].interfaces[0] = missing.interfaces[1].name.clone();
    write_factory(&missing)?;
    let d = Daemon::start(&ns, &state, Some(&factory_file))?;
    let boot = d.next("BOOT ", long)?;
    println!("  nothing usable: {boot}");
    check!(boot["mamori"] == false && boot["error"].is_null(), "{boot}");
    d.next("IDLE ", long)?;
    d.stop()
}
