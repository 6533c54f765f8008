//! Real traffic between the lab's namespaces: a lab whose gateway is configured with a
//! `NetworkConfig`, servers and probes run as `probe.py` (python3, standard library) inside the
//! namespaces, and readings of the gateway's kernel state. Traffic only ever goes to the lab's
//! own addresses.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mamori_lab::plan::{self, ifname};
use mamori_lab::{LabName, Mgmt, Role};
use mamori_netconfig::{Applied, Applier, ApplyError, NetworkConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Guard;

/// The probe tool (see its header for the modes).
const PROBE: &str = include_str!("probe.py");

/// Debian's python3 when there is one: a version manager's shim first on `PATH` (pyenv) costs
/// ~200 ms per start, Debian's ~40 ms, and the tests start dozens.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Panics with an install hint unless `prog` runs (scripts/test installs them all).
pub fn require(prog: &str, version_arg: &str) {
    let ok = Command::new(prog)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{prog} is missing: the traffic tests need it (scripts/test installs it)"
    );
}

/// A lab for traffic: taken down on drop (also after a panic), with a directory for the
/// applier's address record.
pub struct TrafficLab {
    pub name: LabName,
    pub mgmt: Mgmt,
    dir: tempfile::TempDir,
    /// Duplicate address detection waited for, once, before the first probe.
    settled: std::sync::Once,
    _guard: Guard,
}

impl TrafficLab {
    /// Brings up a lab named `prefix` + this process's pid digits (so parallel tests, each with
    /// its own prefix of at most 5 bytes, and parallel test runs never share one).
    pub fn up(prefix: &str) -> TrafficLab {
        assert!(
            prefix.len() <= 5,
            "{prefix}: the pid takes the other 5 bytes"
        );
        require(python(), "-V");
        require("nft", "--version");
        let (guard, up) = Guard::up(Guard::name(prefix));
        TrafficLab {
            name: guard.0.clone(),
            mgmt: up.mgmt,
            dir: tempfile::tempdir().unwrap(),
            settled: std::sync::Once::new(),
            _guard: guard,
        }
    }

    /// Before the first probe: waits for duplicate address detection (below), which runs
    /// meanwhile, while the test starts its servers and configures the gateway.
    pub fn settle(&self) {
        self.settled.call_once(|| {
            let t = std::time::Instant::now();
            self.wait_for_link_local();
            eprintln!(
                "{}: link-local addresses usable after {:?}",
                self.name,
                t.elapsed()
            );
        });
    }

    /// Waits until no namespace of the lab has a tentative address. The lab adds its own
    /// addresses with `nodad`, but the kernel's link-local ones go through duplicate address
    /// detection for 1-2 s after a link comes up; until then they neither receive nor serve as
    /// a source, and neighbour discovery on the lan stalls.
    pub fn wait_for_link_local(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for role in Role::ALL {
            while self
                .ip(Some(role), &["-6", "addr", "show", "tentative"])
                .contains("inet6")
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{role:?}: addresses still tentative after 10 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn ns(&self, role: Role) -> String {
        self.name.netns(role)
    }

    /// The gateway's configuration for this lab (the factory, `gateway_config`).
    pub fn factory(&self) -> NetworkConfig {
        mamori_lab::gateway_config(&self.mgmt)
    }

    /// How a configuration gets onto the gateway: today what the privileged parent does for
    /// `ApplyNetwork` — the netconfig applier in the gateway's namespace, then the router's
    /// kernel settings (forwarding, bridged frames kept out of the IP firewall, hardening);
    /// later a commit through the daemon's API. Every test configures the gateway through here
    /// and nowhere else.
    pub fn configure(&self, cfg: &NetworkConfig) -> Result<Applied, ApplyError> {
        let applied = self.applier().apply(cfg)?;
        let failed = mamori_netconfig::sysctl::set_router(Some(&self.ns(Role::Gw)));
        assert!(failed.is_empty(), "router settings not applied: {failed:?}");
        Ok(applied)
    }

    /// The applier itself, for what only it can be given (a ruleset as text).
    pub fn applier(&self) -> Applier {
        Applier::in_netns(&self.ns(Role::Gw), self.dir.path().join("addresses.json"))
    }

    /// `ip -n NS ARGS` (None: the host), its stdout; panics on failure.
    pub fn ip(&self, role: Option<Role>, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        if let Some(r) = role {
            cmd.args(["-n", &self.ns(r)]);
        }
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?} in {role:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A program run inside `role`'s namespace; its stdout; panics on failure.
    pub fn exec(&self, role: Role, argv: &[&str]) -> String {
        let mut args = vec!["netns", "exec"];
        let ns = self.ns(role);
        args.push(&ns);
        args.extend_from_slice(argv);
        self.ip(None, &args)
    }

    /// Puts a host namespace's addresses and routes back as the lab's plan builds them (`ip
    /// -force -batch`: what exists stays). A host whose link was set down lost its IPv6
    /// addresses and its routes, as any Linux host does.
    pub fn rebuild_host(&self, role: Role) {
        use std::io::Write as _;
        let plan = mamori_lab::plan::Plan::new(self.name.clone(), self.mgmt.slot);
        let script: String = plan
            .ns_batch(role)
            .into_iter()
            .map(|(_, c)| c + "\n")
            .collect();
        let mut child = Command::new("ip")
            .args(["-n", &self.ns(role), "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        // Lines for what still exists fail ("File exists"); the rest is what counts, checked
        // by the traffic that follows.
        let _ = child.wait();
    }

    /// The chains of mamori's filter table with their counters (`nft list chain`, not the
    /// whole ruleset: that lists the SYN limit's dynamic sets, up to 65,536 entries).
    pub fn chains(&self) -> String {
        ["prerouting", "input", "mgmt_guard", "forward"]
            .iter()
            .map(|c| self.exec(Role::Gw, &["nft", "list", "chain", "inet", "mamori", c]))
            .collect()
    }

    /// What a configuration change must leave alone, read from the gateway: `ip -j addr`,
    /// `ip -j route` of both families, and `nft -s list ruleset` (no counters: they move with
    /// traffic).
    pub fn kernel_state(&self) -> KernelState {
        // IPv6 addresses added without nodad are tentative for a moment; read once settled.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let addresses = loop {
            let a = self.ip(Some(Role::Gw), &["-j", "addr"]);
            if !a.contains("tentative") || std::time::Instant::now() > deadline {
                break a;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        KernelState {
            addresses,
            routes_v4: self.ip(
                Some(Role::Gw),
                &["-4", "-j", "route", "show", "table", "all"],
            ),
            routes_v6: self.ip(
                Some(Role::Gw),
                &["-6", "-j", "route", "show", "table", "all"],
            ),
            ruleset: self.exec(Role::Gw, &["nft", "-s", "list", "ruleset"]),
        }
    }

    /// The gateway's addresses on `ifname` (global and link-local), read from the kernel.
    pub fn gw_addresses(&self, ifname: &str) -> Vec<IpAddr> {
        let out = self.ip(Some(Role::Gw), &["-j", "addr", "show", "dev", ifname]);
        let links: Vec<Value> = serde_json::from_str(&out).unwrap();
        links
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str()?.parse().ok())
            .collect()
    }

    /// Routes on the wan host to the management link's prefixes through the gateway: the wan
    /// host has none (it stands in for the Internet), but an upstream router can send anything
    /// to the gateway's wan port, so probes of "every gateway address" need them.
    pub fn wan_routes_to_mgmt(&self) {
        let m = self.mgmt;
        self.ip(
            Some(Role::Wan),
            &[
                "route",
                "add",
                &format!("{}/32", m.gw_v4),
                "via",
                &plan::GW_WAN_V4.to_string(),
            ],
        );
        self.ip(
            Some(Role::Wan),
            &[
                "route",
                "add",
                &format!("{}/128", m.gw_v6),
                "via",
                &plan::gw_wan_v6().to_string(),
            ],
        );
    }

    fn python(&self, at: Option<Role>, mode: &str, arg: &Value) -> Command {
        let mut cmd = match at {
            Some(r) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns(r), python()]);
                c
            }
            None => Command::new(python()),
        };
        cmd.args(["-c", PROBE, mode, &arg.to_string()]);
        cmd
    }

    fn run_probe<T: for<'de> Deserialize<'de>>(
        &self,
        at: Option<Role>,
        mode: &str,
        arg: &Value,
    ) -> T {
        let out = self.python(at, mode, arg).output().unwrap();
        assert!(
            out.status.success(),
            "probe {mode} in {at:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe {mode}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Starts the server of probe.py in `at` (None: the host): TCP ports answered with
    /// `peer=IP me=IP`, UDP ports answered with `reply peer=IP me=IP`, after joining `join`
    /// (multicast group, interface). Returns once it is bound; killed on drop.
    pub fn serve(&self, at: Role, tcp: &[u16], udp: &[u16], join: &[(&str, &str)]) -> Running {
        let mut child = self
            .python(
                Some(at),
                "serve",
                &json!({"tcp": tcp, "udp": udp, "join": join}),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.contains("ready") {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "server in {at:?} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Running(Some(child))
    }

    /// Starts `argv` inside `role`'s namespace, its output captured; killed on drop.
    pub fn spawn(&self, role: Role, argv: &[&str]) -> Running {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running(Some(child))
    }

    /// `ip -s -j link show dev IFNAME` in `role`: (rx packets, rx dropped, tx packets).
    pub fn link_stats(&self, role: Role, ifname: &str) -> (u64, u64, u64) {
        let out = self.ip(Some(role), &["-s", "-j", "link", "show", "dev", ifname]);
        let links: Vec<Value> = serde_json::from_str(&out).unwrap();
        let s = &links[0]["stats64"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        (
            n(&s["rx"]["packets"]),
            n(&s["rx"]["dropped"]),
            n(&s["tx"]["packets"]),
        )
    }

    /// TCP connections from `at` (None: the host) to every target at once, each with `timeout`.
    pub fn tcp(&self, at: Option<Role>, targets: &[(IpAddr, u16)], timeout: Duration) -> Vec<Tcp> {
        let list: Vec<Value> = targets
            .iter()
            .map(|(a, p)| json!({"addr": a.to_string(), "port": p, "timeout": timeout.as_secs_f64()}))
            .collect();
        self.settle();
        let mut out: Vec<Tcp> = self.run_probe(at, "tcp", &Value::Array(list));
        for (o, t) in out.iter_mut().zip(targets) {
            o.target = Some(*t);
        }
        out
    }

    /// UDP datagrams from `at`, each from its own socket, and what came back within `wait`.
    pub fn udp(&self, at: Role, probes: &[UdpProbe], wait: Duration) -> Vec<Udp> {
        let list: Vec<Value> = probes
            .iter()
            .map(|p| {
                json!({"addr": p.addr.to_string(), "port": p.port, "payload": hex(&p.payload),
                       "ifname": p.ifname, "sport": p.sport})
            })
            .collect();
        self.settle();
        let mut out: Vec<Udp> = self.run_probe(
            Some(at),
            "udp",
            &json!({"wait": wait.as_secs_f64(), "probes": list}),
        );
        for (o, p) in out.iter_mut().zip(probes) {
            o.probe = Some(p.clone());
        }
        out
    }

    /// One TCP connection after another from `at` to `target` for `seconds`: (ok, ms) each.
    pub fn connect_loop(
        &self,
        at: Role,
        target: (IpAddr, u16),
        seconds: f64,
        timeout: Duration,
    ) -> Vec<(bool, f64)> {
        self.settle();
        self.run_probe(
            Some(at),
            "connect",
            &json!({"addr": target.0.to_string(), "port": target.1, "seconds": seconds,
                    "interval": 0.05, "timeout": timeout.as_secs_f64()}),
        )
    }
}

/// A process the test started (a server, a flood); killed on drop, also after a panic.
pub struct Running(Option<Child>);

impl Running {
    /// Still running (a silent probe proves nothing if the server died).
    pub fn alive(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for it to end; its output.
    pub fn finish(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a TCP connection attempt gave.
#[derive(Debug, Clone, Deserialize)]
pub struct Tcp {
    #[serde(skip)]
    pub target: Option<(IpAddr, u16)>,
    pub ok: bool,
    #[serde(default)]
    pub reply: String,
    #[serde(default)]
    pub error: String,
    pub ms: f64,
}

impl Tcp {
    /// The `peer=` the server saw.
    pub fn peer(&self) -> Option<&str> {
        field(&self.reply, "peer")
    }

    /// The server's own address (`me=`).
    pub fn me(&self) -> Option<&str> {
        field(&self.reply, "me")
    }
}

fn field<'a>(reply: &'a str, key: &str) -> Option<&'a str> {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// One UDP probe.
#[derive(Debug, Clone)]
pub struct UdpProbe {
    pub addr: IpAddr,
    pub port: u16,
    pub payload: Vec<u8>,
    /// The interface to send from (a link-local or multicast destination needs it).
    pub ifname: Option<String>,
    /// A fixed source port (distinct between phases, so a conntrack entry of an earlier
    /// phase can never match a later probe).
    pub sport: Option<u16>,
}

/// What came back for a UDP probe.
#[derive(Debug, Clone, Deserialize)]
pub struct Udp {
    #[serde(skip)]
    pub probe: Option<UdpProbe>,
    /// (source address, its first bytes as text, length) of every reply.
    pub replies: Vec<(String, String, usize)>,
    #[serde(default)]
    pub error: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a configuration change must leave byte-identical (see [`TrafficLab::kernel_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelState {
    pub addresses: String,
    pub routes_v4: String,
    pub routes_v6: String,
    pub ruleset: String,
}

/// The interfaces of the gateway a probe from `role` arrives on, for link-local targets.
pub fn facing(role: Role) -> &'static str {
    match role {
        Role::Wan => ifname::GW_WAN,
        _ => ifname::GW_LAN,
    }
}

/// `/proc/sys/net/netfilter/nf_conntrack_count` in the gateway (per namespace, so read from
/// inside it).
pub fn conntrack_count(lab: &TrafficLab) -> u64 {
    lab.exec(
        Role::Gw,
        &["cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
    )
    .trim()
    .parse()
    .unwrap()
}

/// The rules of `nft list ruleset` whose counter moved: (packets, the rule).
pub fn counters(ruleset: &str) -> Vec<(u64, String)> {
    ruleset
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("counter packets ")?;
            let packets: u64 = rest.split_whitespace().next()?.parse().ok()?;
            (packets > 0).then(|| (packets, l.trim().to_owned()))
        })
        .collect()
}
