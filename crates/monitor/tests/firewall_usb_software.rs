//! Firewall (S3.1-35 R1 H), USB/uevent (G) and software (F) monitors against the real kernel,
//! and the capability each socket needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Collect, Netns, dump};
use mamori_audit::{EventKind, Sink};
use mamori_monitor::software::{self, SoftwareCheck, SoftwareConfig};
use mamori_monitor::{FirewallConfig, UsbConfig, firewall, usb};

/// S3.1-35 R1 H: each nft transaction in the namespace is one `firewall_ruleset_changed`
/// naming the table and chain, the counts, and the committing process; deleting the table is
/// another, counting what went with it.
#[test]
fn nft_changes_are_recorded_per_generation_with_names() {
    let ns = Netns::new();
    let sink = Collect::new();
    let handle = ns.enter(|| {
        firewall::open(FirewallConfig::default())
            .unwrap()
            .start(sink.clone())
    });
    assert!(handle.wait_ready(Duration::from_secs(10)));

    ns.run(&["nft", "add", "table", "inet", "mamori_t"]);
    let t = sink
        .wait_for(EventKind::FirewallRulesetChanged, |d| {
            d["tables"][0]["name"] == "mamori_t"
        })
        .expect("table added");
    assert_eq!(t.details["tables"][0]["family"], "inet");
    assert_eq!(t.details["tables"][0]["change"], "added");
    assert_eq!(t.details["counts"]["tables"]["added"], 1);
    assert_eq!(t.details["process"]["name"], "nft");
    assert!(t.details["process"]["pid"].as_u64().is_some());
    let gen1 = t.details["generation"].as_u64().expect("generation id");

    ns.run(&[
        "nft",
        "add chain inet mamori_t input_c { type filter hook input priority 0 ; policy accept ; }",
    ]);
    ns.run(&[
        "nft",
        "add rule inet mamori_t input_c tcp dport 22 counter accept",
    ]);
    assert!(
        sink.wait(Duration::from_secs(10), |ev| ev.len() >= 3),
        "{}",
        dump(&sink.events())
    );
    let ev = sink.of(EventKind::FirewallRulesetChanged);
    assert_eq!(ev[1].details["chains"][0]["name"], "input_c");
    assert_eq!(ev[1].details["chains"][0]["change"], "added");
    assert_eq!(ev[2].details["chains"][0]["name"], "input_c");
    assert_eq!(ev[2].details["chains"][0]["table"], "mamori_t");
    assert_eq!(ev[2].details["chains"][0]["rules"]["added"], 1);
    assert_eq!(ev[2].details["generation"].as_u64().unwrap(), gen1 + 2);
    assert!(ev[2].details.get("generations_skipped").is_none());

    ns.run(&["nft", "delete", "table", "inet", "mamori_t"]);
    let del = sink
        .wait_for(EventKind::FirewallRulesetChanged, |d| {
            d["tables"][0]["change"] == "deleted"
        })
        .expect("table deleted");
    assert_eq!(del.details["tables"][0]["name"], "mamori_t");
    assert_eq!(del.details["counts"]["tables"]["deleted"], 1);
    assert_eq!(del.details["counts"]["chains"]["deleted"], 1);
    assert_eq!(del.details["counts"]["rules"]["deleted"], 1);

    // One batch (nft -f) is one generation, however many objects.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.nft");
    std::fs::write(
        &file,
        "table ip mamori_b {\n set blocked { type ipv4_addr; elements = { 192.0.2.7, 192.0.2.8 } }\n \
         chain forward_c { type filter hook forward priority 0; ip saddr @blocked drop; ct state established accept; }\n}\n",
    )
    .unwrap();
    let before = sink.of(EventKind::FirewallRulesetChanged).len();
    ns.run(&["nft", "-f", file.to_str().unwrap()]);
    let batch = sink
        .wait_for(EventKind::FirewallRulesetChanged, |d| {
            d["tables"][0]["name"] == "mamori_b"
        })
        .expect("batch recorded");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.of(EventKind::FirewallRulesetChanged).len(), before + 1);
    assert_eq!(batch.details["counts"]["rules"]["added"], 2);
    assert_eq!(batch.details["counts"]["sets"]["added"], 1);
    assert_eq!(batch.details["counts"]["set_elements"]["added"], 2);
    // Set elements are counted, never copied.
    assert!(!batch.details.to_string().contains("192.0.2.7"));
    handle.stop();
}

/// S3.1-35 R1 G, socket path: a real kobject uevent (writing `add` to a veth's sysfs `uevent`)
/// reaches the USB monitor and is counted as `net`, and records nothing; a forged USB uevent
/// sent by a user-space socket is ignored.
#[test]
fn uevents_reach_the_usb_monitor_and_only_kernel_usb_devices_count() {
    let ns = Netns::new();
    let sink = Collect::new();
    let handle = ns.enter(|| usb::open(UsbConfig::default()).unwrap().start(sink.clone()));
    assert!(handle.wait_ready(Duration::from_secs(10)));
    let net_seen = |h: &mamori_monitor::MonitorHandle| {
        h.monitor("usb")
            .unwrap()
            .seen
            .get("net")
            .copied()
            .unwrap_or(0)
    };

    ns.run(&[
        "ip", "link", "add", "ueA", "type", "veth", "peer", "name", "ueB",
    ]);
    let wait_net = |min: u64| {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while net_seen(&handle) < min {
            assert!(std::time::Instant::now() < end, "{handle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_net(2); // the two veth ends' own add uevents
    let after_create = net_seen(&handle);
    ns.run(&["sh", "-c", "echo add > /sys/class/net/ueA/uevent"]);
    wait_net(after_create + 1);

    // A forged USB add from user space (root may send to the group; the kernel is port 0).
    let forged = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-9\0ACTION=add\0\
DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-9\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0\
PRODUCT=dead/beef/100\0TYPE=0/0/0\0BUSNUM=001\0DEVNUM=009\0SEQNUM=1\0";
    ns.enter(|| {
        let mut s =
            netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_KOBJECT_UEVENT).unwrap();
        s.bind_auto().unwrap();
        s.send_to(forged, &netlink_sys::SocketAddr::new(0, 1), 0)
            .unwrap();
    });
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while handle.monitor("usb").unwrap().ignored == 0 {
        assert!(
            std::time::Instant::now() < end,
            "forged uevent not seen: {handle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        sink.of(EventKind::UsbDeviceAdded).is_empty(),
        "{}",
        dump(&sink.events())
    );
    assert!(sink.events().is_empty(), "{}", dump(&sink.events()));
    let st = handle.monitor("usb").unwrap();
    assert!(st.running && st.last_error.is_none(), "{st:?}");
    handle.stop();
}

/// S3.1-35 R1 F: a state file recording another digest gives `software_changed` with before and
/// after; the same software again gives nothing; a new version is a change too.
#[test]
fn software_changed_is_recorded_with_before_and_after_and_only_on_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("mamorid");
    std::fs::write(&exe, b"first build").unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = |version: &str| SoftwareConfig {
        state_dir: state.clone(),
        version: version.into(),
        executable: exe.clone(),
    };
    let collect = Collect::new();
    let sink: Arc<dyn Sink> = collect.clone();

    // First start: no record yet.
    let r = software::check(&config("1.0.0"), &sink).unwrap();
    assert!(
        matches!(r, SoftwareCheck::Changed { before: None, .. }),
        "{r:?}"
    );
    assert_eq!(collect.of(EventKind::SoftwareChanged).len(), 1);

    // Same software: nothing.
    let r = software::check(&config("1.0.0"), &sink).unwrap();
    assert!(matches!(r, SoftwareCheck::Unchanged(_)), "{r:?}");
    assert_eq!(collect.events().len(), 1);

    // A state file recording a different digest (as after an update).
    let digest_1 = software::sha256_file(&exe).unwrap();
    std::fs::write(&exe, b"second build").unwrap();
    let digest_2 = software::sha256_file(&exe).unwrap();
    let r = software::check(&config("1.0.0"), &sink).unwrap();
    let SoftwareCheck::Changed { before, after } = r else {
        panic!("{r:?}")
    };
    assert_eq!(before.unwrap().sha256, digest_1);
    assert_eq!(after.sha256, digest_2);
    let ev = collect.of(EventKind::SoftwareChanged);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].details["before"]["sha256"], digest_1.as_str());
    assert_eq!(ev[1].details["after"]["sha256"], digest_2.as_str());
    assert_eq!(ev[1].details["digest_changed"], true);
    assert_eq!(ev[1].details["version_changed"], false);

    // A new version with the same binary is a change as well.
    software::check(&config("1.1.0"), &sink).unwrap();
    let ev = collect.of(EventKind::SoftwareChanged);
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[2].details["before"]["version"], "1.0.0");
    assert_eq!(ev[2].details["after"]["version"], "1.1.0");

    // A damaged record is not trusted: recorded as a change from an unknown state.
    std::fs::write(state.join(software::STATE_FILE), b"{not json").unwrap();
    let r = software::check(&config("1.1.0"), &sink).unwrap();
    assert!(matches!(r, SoftwareCheck::Changed { before: None, .. }));
    let ev = collect.of(EventKind::SoftwareChanged);
    assert!(
        ev[3].details["note"]
            .as_str()
            .unwrap()
            .contains("unreadable")
    );
}

/// The default executable is the running one (`/proc/self/exe`), and `Monitors::start` runs the
/// check once.
#[test]
fn the_software_check_hashes_the_running_executable() {
    let dir = tempfile::tempdir().unwrap();
    let collect = Collect::new();
    let handle = mamori_monitor::Monitors::start(
        mamori_monitor::Config {
            links: None,
            interfaces: None,
            usb: None,
            firewall: None,
            drops: None,
            software: Some(SoftwareConfig::new(dir.path(), "9.9.9")),
        },
        collect.clone(),
    );
    let me = std::env::current_exe().unwrap();
    let digest = software::sha256_file(&me).unwrap();
    let Some(SoftwareCheck::Changed { after, .. }) = handle.software() else {
        panic!("{handle:?}")
    };
    assert_eq!(after.sha256, digest);
    assert_eq!(collect.of(EventKind::SoftwareChanged).len(), 1);
}

/// Capabilities, measured: as an unprivileged user with no capabilities, the rtnetlink and
/// uevent sockets open and subscribe, the nftables one is refused (EPERM), and so is binding the
/// drop summary's nflog group. Runs this test binary again under `setpriv` as `nobody`.
#[test]
fn sockets_need_no_capability_except_nftables() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("probe");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ])
        .arg(&bin)
        .args([
            "--exact",
            "unprivileged_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAMORI_MONITOR_PROBE", "1")
        .output()
        .expect("setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(&format!("PROBE {name} ")).map(|(_, v)| v))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no probe line for {name}:\n{stdout}"))
    };
    assert_eq!(line("uid"), "65534");
    assert_eq!(line("links"), "ok");
    assert_eq!(line("interfaces"), "ok");
    assert_eq!(line("usb"), "ok");
    assert!(
        line("firewall").contains("Operation not permitted"),
        "{stdout}"
    );
    assert!(
        line("drops").contains("Operation not permitted"),
        "{stdout}"
    );
}

/// The child of [`sockets_need_no_capability_except_nftables`]; does nothing in a normal run.
#[test]
fn unprivileged_probe_child() {
    if std::env::var_os("MAMORI_MONITOR_PROBE").is_none() {
        return;
    }
    println!("PROBE uid {}", nix::unistd::getuid());
    let show = |name: &str, r: std::io::Result<mamori_monitor::Prepared>| match r {
        Ok(_) => println!("PROBE {name} ok"),
        Err(e) => println!("PROBE {name} {e}"),
    };
    show("links", mamori_monitor::links::open(Default::default()));
    show(
        "interfaces",
        mamori_monitor::interfaces::open(Default::default()),
    );
    show("usb", usb::open(UsbConfig::default()));
    show("firewall", firewall::open(FirewallConfig::default()));
    show(
        "drops",
        mamori_monitor::drops::open(mamori_monitor::DropConfig::default()),
    );
}

/// The privileged parent's listener, shared with the monitor: mamori's own load (made with
/// the listener out of the group and noted in `OwnLoads`) is neither recorded nor counted as
/// skipped; another program's change after it is recorded as usual.
#[test]
fn own_loads_through_the_shared_socket_are_not_recorded_nor_counted_as_skipped() {
    let ns = Netns::new();
    let sink = Collect::new();
    let listener =
        Arc::new(mamori_netconfig::NftablesListener::open(Some(&ns.name), 1 << 20).unwrap());
    let config = FirewallConfig {
        socket: Some(Arc::new(listener.share().unwrap())),
        ..FirewallConfig::default()
    };
    let own = config.own.clone();
    let handle = firewall::open(config).unwrap().start(sink.clone());
    assert!(handle.wait_ready(Duration::from_secs(10)));
    ns.run(&["nft", "add", "table", "inet", "before_t"]);
    let before = sink
        .wait_for(EventKind::FirewallRulesetChanged, |d| {
            d["tables"][0]["name"] == "before_t"
        })
        .expect("a change before");
    let g0 = before.details["generation"].as_u64().unwrap();

    // mamori's load: a quiet applier in the namespace (it needs an interface of the config).
    ns.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut applier =
        mamori_netconfig::Applier::in_netns(&ns.name, dir.path().join("addresses.json"))
            .with_quiet(listener.clone());
    let cfg: mamori_netconfig::NetworkConfig = serde_json::from_str(
        r#"{"interfaces":[{"name":"eth1","role":"lan","addresses":["192.168.1.1/24"]}],
            "firewall":{"zones":[{"name":"lan","interfaces":["eth1"]}]},
            "management":{"port":443,"zones":["lan"],"sources":[]}}"#,
    )
    .unwrap();
    let g = applier.apply(&cfg).unwrap().generations.unwrap();
    assert!(g.quiet && g.others() == 0, "{g:?}");
    assert_eq!(u64::from(g.after), g0 + 1);
    own.note(g.after);

    ns.run(&["nft", "add", "table", "inet", "after_t"]);
    let after = sink
        .wait_for(EventKind::FirewallRulesetChanged, |d| {
            d["tables"][0]["name"] == "after_t"
        })
        .expect("a change after");
    assert_eq!(after.details["generation"].as_u64().unwrap(), g0 + 2);
    assert!(
        after.details.get("generations_skipped").is_none(),
        "{}",
        after.details
    );
    assert!(
        sink.of(EventKind::FirewallRulesetChanged)
            .iter()
            .all(|e| e.details["generation"].as_u64() != Some(g0 + 1)),
        "mamori's own load is not recorded by the monitor: {}",
        dump(&sink.events())
    );
    handle.stop();
}
