//! `netbench`: the network configuration pipeline's privileged side against raw `nft -f`
//! (`BENCH_ONLY=netconfig scripts/bench`; as root).
//!
//! Everything runs in a private network namespace with two dummy interfaces (`eth0`, `eth1`;
//! a veth pair where the kernel has no dummy driver, said on the `links` line), deleted at the
//! end. For policies of 100, 1,000 and 10,000 rules and one with a 50,000-entry
//! address set:
//!
//! - (a) raw `nft -f -` of the ruleset the parent renders for that configuration, into a
//!   namespace of its own with the same interfaces in which nothing listens to nftables
//!   notifications (the bench parent's namespace holds the parent's listener, which makes the
//!   kernel announce every rule of anyone else's load) and without mamori's tables (`first`),
//!   then the ruleset of the configuration with one rule changed over it (`again`), started
//!   from a thread that entered that namespace, in the same run as (b);
//! - (b) the real privileged parent (`run_parent` of `mamori-privsep`, this binary started as
//!   `netbench parent STATE` inside the namespace) answering its child (this binary as
//!   `netbench child …`, re-executed by the parent, talking over the real socketpair and wire)
//!   `CheckNetwork` then `ApplyNetwork`, each timed (a commit's one kernel pass is
//!   `ApplyNetwork` alone; `POST /api/v1/config/check` is `CheckNetwork`): `first`
//!   after mamori's tables and the interfaces' addresses were removed, `again` with a
//!   configuration that differs from the one in force by one rule's port (so nft loads), and
//!   `same`: `ApplyNetwork` of the configuration in force (the management process's start);
//! - (c) the full commit through the daemon's HTTP API (with `--mamorid`): `mamorid
//!   --factory-network` in a namespace of its own, listening on its lan address, and a client
//!   in a second namespace on that lan (this binary as `netbench http …`) logging in as admin,
//!   re-authenticating and timing `POST /api/v1/config/commit` (`confirm_minutes: 0`): `first`
//!   over the factory configuration, `again` a configuration differing by one rule.
//!
//! The child is not confined (it runs as root, unlike the management process), so that it can
//! remove the tables and addresses between runs itself; confinement does not change the cost
//! of a round trip. Times are the child's wall clock around each request (encode, frame, the
//! parent's decode, work and reply). Results are `key=value` lines: one `net …` line per
//! workload with medians of `--runs` (and a `net_all …` line with every run), one `parent …` line (the bench parent's memory after all
//! workloads) and, with `--mamorid`, one `commit …` line per workload for (c), and one
//! `mamorid …` line: `mamorid --factory-network` with the 10,000-rule configuration as its
//! factory network, started in a fresh namespace, its parent's `VmRSS`/`VmHWM` once the
//! management process serves.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mamori_bench::{http1, procfs, stats, tls};
use mamori_netconfig::{
    Action, AddressMatch, AddressSet, Family, IfName, Interface, NetworkConfig, PortRange, Prefix,
    Proto, Role, Rule, SetName, ZoneName, render,
};
use mamori_privsep::client::{NetworkOutcome, Parent};
use mamori_privsep::parent::{ParentConfig, run_parent};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The workloads, by name.
const WORKLOADS: [&str; 4] = ["100_rules", "1000_rules", "10000_rules", "set_50000"];

fn base() -> NetworkConfig {
    let iface = |name: &str, role, addrs: [&str; 2]| {
        let mut i = Interface::new(IfName::parse(name).unwrap_or_else(|_| bad_constant()), role);
        i.addresses = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        i
    };
    NetworkConfig::factory(vec![
        iface("eth0", Role::Wan, ["203.0.113.2/24", "2001:db8:1::2/64"]),
        iface("eth1", Role::Lan, ["192.168.1.1/24", "fd00:1::1/64"]),
    ])
}

fn bad_constant() -> ! {
    panic!("a constant name or address does not parse")
}

/// The i-th /24 above 10.0.0.0.
fn net(i: u32) -> Prefix {
    let text = format!("{}.{}.{}.0/24", 10 + (i >> 16), (i >> 8) & 255, i & 255);
    Prefix::parse(&text).unwrap_or_else(|_| bad_constant())
}

fn zone(name: &str) -> ZoneName {
    ZoneName::parse(name).unwrap_or_else(|_| bad_constant())
}

/// `n` rules from wan to lan, each with its own source /24 and TCP port; `variant` moves the
/// last rule's port (a configuration differing from the other in one rule).
fn with_rules(n: u32, variant: bool) -> NetworkConfig {
    let mut cfg = base();
    for i in 0..n {
        let mut rule = Rule::new(zone("wan"), zone("lan"), Action::Accept);
        rule.source = Some(AddressMatch::Prefixes(vec![net(i)]));
        rule.proto = Some(Proto::Tcp);
        let port = if variant && i + 1 == n {
            65_000
        } else {
            1024 + i % 60_000
        };
        rule.ports = u16::try_from(port)
            .ok()
            .and_then(|p| PortRange::single(p).ok())
            .into_iter()
            .collect();
        cfg.firewall.rules.push(rule);
    }
    cfg
}

/// A 50,000-entry IPv4 set dropped from wan to the device; `variant` drops it from lan too.
fn with_set(variant: bool) -> NetworkConfig {
    let mut cfg = base();
    let set = SetName::parse("big").unwrap_or_else(|_| bad_constant());
    cfg.firewall.sets.push(AddressSet {
        name: set.clone(),
        family: Family::Ipv4,
        entries: (0..50_000).map(net).collect(),
    });
    let mut rule = Rule::new(zone("wan"), ZoneName::device(), Action::Drop);
    rule.source = Some(AddressMatch::Set(set.clone()));
    cfg.firewall.rules.push(rule);
    if variant {
        let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Drop);
        rule.source = Some(AddressMatch::Set(set));
        cfg.firewall.rules.push(rule);
    }
    cfg
}

fn workload(name: &str, variant: bool) -> NetworkConfig {
    match name {
        "100_rules" => with_rules(100, variant),
        "1000_rules" => with_rules(1000, variant),
        "10000_rules" => with_rules(10_000, variant),
        _ => with_set(variant),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn med(v: &[f64]) -> String {
    stats::median(v).map_or_else(|| "-".into(), |m| format!("{m:.1}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("parent") => parent(&args[2..]),
        Some("child") => child(&args[2..]),
        Some("http") => http_client(&args[2..]),
        _ => orchestrate(&args[1..]),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---- the parent and its child ------------------------------------------------------------

/// `netbench parent STATE RUNS NFT IP RAW_NETNS`: the real privileged parent over `STATE`, its child
/// this binary with `child STATE RUNS NFT IP RAW_NETNS`.
fn parent(args: &[String]) -> anyhow::Result<()> {
    let state = args.first().context("parent STATE RUNS NFT IP RAW_NETNS")?;
    let mut child_args = vec!["child".into()];
    child_args.extend(args.iter().map(Into::into));
    let cfg = ParentConfig::new(state, child_args);
    let exit = run_parent(cfg)?;
    eprintln!("netbench parent: stopped by {}", exit.signal);
    Ok(())
}

/// Runs `f` on a thread of its own inside the network namespace `ns`: a process it starts is
/// born there.
fn in_netns<T: Send>(
    ns: &std::fs::File,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    })
}

/// Runs `tool` with `args` and `stdin`, which must succeed.
fn tool(tool: &str, args: &[&str], stdin: &str) -> anyhow::Result<()> {
    let mut c = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {tool}"))?;
    if let Some(mut s) = c.stdin.take() {
        s.write_all(stdin.as_bytes())?;
    }
    let out = c.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes mamori's tables and the dummies' addresses: a kernel as at boot.
fn wipe(nft: &str, ip: &str) -> anyhow::Result<()> {
    tool(
        nft,
        &["-f", "-"],
        "table inet mamori\ndelete table inet mamori\ntable inet mamori_nat\ndelete table inet mamori_nat\n",
    )?;
    tool(
        ip,
        &["-batch", "-"],
        "address flush dev eth0\naddress flush dev eth1\n",
    )
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, ms(started.elapsed()))
}

/// One request's answer: `(render, nft -c or nft -f, snapshot, addresses, listed, loaded)`.
fn steps(o: &NetworkOutcome) -> anyhow::Result<(u64, u64, u64, u64, bool, bool)> {
    match o {
        NetworkOutcome::Checked {
            render_ms,
            check_ms,
        } => Ok((*render_ms, *check_ms, 0, 0, false, false)),
        NetworkOutcome::Applied {
            render_ms,
            snapshot_ms,
            snapshot_listed,
            load_ms,
            addresses_ms,
            ..
        } => Ok((
            *render_ms,
            load_ms.unwrap_or(0),
            *snapshot_ms,
            *addresses_ms,
            *snapshot_listed,
            load_ms.is_some(),
        )),
        NetworkOutcome::Refused { step, detail, .. } => bail!("refused at {step}: {detail}"),
    }
}

#[derive(Default)]
struct Series {
    values: Vec<f64>,
}

impl Series {
    fn push(&mut self, v: f64) {
        self.values.push(v);
    }
    fn med(&self) -> String {
        med(&self.values)
    }
    /// Every run, comma-separated.
    fn all(&self) -> String {
        self.values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `netbench child STATE RUNS NFT IP RAW_NETNS`: the measurements, one `net …` line per workload.
fn child(args: &[String]) -> anyhow::Result<()> {
    let parent = Parent::from_stdin()?;
    let runs: usize = args.get(1).context("RUNS")?.parse()?;
    let nft = args.get(2).context("NFT")?.as_str();
    let ip = args.get(3).context("IP")?.as_str();
    let raw_ns = std::fs::File::open(format!("/run/netns/{}", args.get(4).context("RAW_NETNS")?))?;
    for name in WORKLOADS {
        let cfg = workload(name, false);
        let other = workload(name, true);
        let json = serde_json::to_vec(&cfg)?.len();
        let ruleset = render(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
        let other_ruleset = render(&other).map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = ruleset.as_str();
        let (mut raw_first, mut raw_again) = (Series::default(), Series::default());
        let mut s: [Series; 13] = Default::default();
        let [
            check_first,
            apply_first,
            pipeline_first,
            check_again,
            apply_again,
            pipeline_again,
            same,
            p_check,
            p_load_first,
            p_load_again,
            p_render,
            p_snapshot,
            p_addresses,
        ] = &mut s;
        let (mut listed_first, mut listed_again, mut same_loaded) = (0, 0, 0);
        for _ in 0..runs {
            // (a), in the same run as (b) so that drifting load hits both alike: into a kernel
            // as at boot, then the variant's text over it (one rule differs), as (b) does.
            // In a namespace of its own where nothing listens to nftables notifications (the
            // bench parent's has its listener, which the parent pauses only for its own loads).
            let (first, again) = in_netns(&raw_ns, || -> anyhow::Result<(f64, f64)> {
                wipe(nft, ip)?;
                let (r, first) = timed(|| tool(nft, &["-f", "-"], text));
                r?;
                let (r, again) = timed(|| tool(nft, &["-f", "-"], other_ruleset.as_str()));
                r?;
                Ok((first, again))
            })?;
            raw_first.push(first);
            raw_again.push(again);
            // (b) first: the kernel as at boot.
            wipe(nft, ip)?;
            let (c0, a0) = (cfg.clone(), cfg.clone());
            let (c, tc) = timed(|| parent.check_network(c0));
            let (a, ta) = timed(|| parent.apply_network(a0));
            let (_, nft_c, ..) = steps(&c?)?;
            let (render, load, snapshot, addresses, listed, _) = steps(&a?)?;
            check_first.push(tc);
            apply_first.push(ta);
            pipeline_first.push(tc + ta);
            p_check.push(nft_c as f64);
            p_load_first.push(load as f64);
            p_render.push(render as f64);
            p_snapshot.push(snapshot as f64);
            p_addresses.push(addresses as f64);
            listed_first += usize::from(listed);
            // Again: a configuration differing from the one in force by one rule.
            let (c0, a0, s0) = (other.clone(), other.clone(), other.clone());
            let (c, tc) = timed(|| parent.check_network(c0));
            let (a, ta) = timed(|| parent.apply_network(a0));
            steps(&c?)?;
            let (_, load, _, _, listed, _) = steps(&a?)?;
            check_again.push(tc);
            apply_again.push(ta);
            pipeline_again.push(tc + ta);
            p_load_again.push(load as f64);
            listed_again += usize::from(listed);
            // Same: the configuration in force, again.
            let (a, t) = timed(|| parent.apply_network(s0));
            let (.., loaded) = steps(&a?)?;
            same.push(t);
            same_loaded += usize::from(loaded);
        }
        println!(
            "net workload={name} json_bytes={json} ruleset_bytes={} runs={runs} raw_first_ms={} raw_again_ms={} check_first_ms={} apply_first_ms={} pipeline_first_ms={} check_again_ms={} apply_again_ms={} pipeline_again_ms={} same_ms={} same_loaded={same_loaded} parent_nft_c_ms={} parent_load_first_ms={} parent_load_again_ms={} parent_render_ms={} parent_snapshot_ms={} parent_addresses_ms={} listed_first={listed_first} listed_again={listed_again}",
            text.len(),
            raw_first.med(),
            raw_again.med(),
            check_first.med(),
            apply_first.med(),
            pipeline_first.med(),
            check_again.med(),
            apply_again.med(),
            pipeline_again.med(),
            same.med(),
            p_check.med(),
            p_load_first.med(),
            p_load_again.med(),
            p_render.med(),
            p_snapshot.med(),
            p_addresses.med(),
        );
        println!(
            "net_all workload={name} raw_first_all={} raw_again_all={} pipeline_first_all={} pipeline_again_all={} apply_first_all={} apply_again_all={}",
            raw_first.all(),
            raw_again.all(),
            pipeline_first.all(),
            pipeline_again.all(),
            apply_first.all(),
            apply_again.all(),
        );
        std::io::stdout().flush()?;
    }
    println!("done");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---- the orchestrator --------------------------------------------------------------------

/// A private network namespace with the interfaces eth0 and eth1 (dummies, or a veth pair
/// where the kernel has no dummy driver) and what they are; deleted on drop.
struct Netns(String, &'static str);

impl Netns {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let name = format!("mamori-nb-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let mut ns = Self(name, "dummy");
        run("ip", &["-n", &ns.0, "link", "set", "lo", "up"])?;
        if run("ip", &["-n", &ns.0, "link", "add", "eth0", "type", "dummy"]).is_ok() {
            run("ip", &["-n", &ns.0, "link", "add", "eth1", "type", "dummy"])?;
        } else {
            run(
                "ip",
                &[
                    "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
                ],
            )?;
            ns.1 = "veth";
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The absolute path of a tool (the parent's child gets no `PATH`).
fn which(name: &str) -> anyhow::Result<String> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p.display().to_string());
        }
    }
    bail!("{name} not found")
}

/// A process we started, stopped with SIGTERM (then SIGKILL) when dropped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            if let Ok(pid) = i32::try_from(self.0.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Lines of a child's pipe, read on a thread.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A directory the management user can traverse, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("mamori-netbench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self(p))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn orchestrate(args: &[String]) -> anyhow::Result<()> {
    let mut runs = 5usize;
    let mut mamorid: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            "--mamorid" => mamorid = Some(it.next().context("--mamorid PATH")?.into()),
            other => bail!("usage: netbench [--runs N] [--mamorid PATH] (not {other:?})"),
        }
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (network namespaces, nft)");
    }
    let (nft, ip) = (which("nft")?, which("ip")?);
    println!(
        "nft_version={}",
        run(&nft, &["--version"])?.trim().replace(' ', "_")
    );

    // (a) and (b): the bench parent and its child, in their namespace.
    {
        let ns = Netns::new("pipe")?;
        // (a)'s namespace: the same interfaces, no listener.
        let raw = Netns::new("raw")?;
        println!("links kind={}", ns.1);
        let dir = Dir::new("pipe")?;
        let state = dir.0.join("state");
        let exe = std::env::current_exe()?;
        let mut p = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(&exe)
            .arg("parent")
            .arg(&state)
            .args([runs.to_string(), nft.clone(), ip.clone(), raw.0.clone()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = lines(p.stdout.take().context("stdout")?);
        let p = Stopped(p);
        loop {
            match out.recv_timeout(Duration::from_secs(1800)) {
                Ok(line) if line == "done" => break,
                Ok(line) => println!("{line}"),
                Err(e) => bail!("the bench child stopped answering: {e}"),
            }
        }
        let pid = p.0.id();
        println!(
            "parent what=bench_parent rss_kib={} hwm_kib={}",
            procfs::status_kib(pid, "VmRSS").unwrap_or(0),
            procfs::status_kib(pid, "VmHWM").unwrap_or(0)
        );
    }

    if let Some(mamorid) = mamorid {
        // (c) the full commit through the HTTP API.
        http_commits(&mamorid, runs)?;
        // mamorid's parent after putting 10,000 rules in force at start.
        println!("mamorid {}", mamorid_rss(&mamorid)?);
    }
    Ok(())
}

/// The device's lan address in (c), where it listens.
const DEVICE_LAN: &str = "192.168.1.1";
/// The client's address on that lan.
const CLIENT_LAN: &str = "192.168.1.10/24";
/// The admin password set after the first login with the label password.
const ADMIN_PASSWORD: &str = "Fjord-Lantern-58-quiet";

/// (c): `mamorid --factory-network` in namespace `gw`, whose lan `eth1` is a veth pair with
/// `c0` in namespace `cl` (the client's), and `netbench http` in `cl` timing the commits.
fn http_commits(mamorid: &Path, runs: usize) -> anyhow::Result<()> {
    let gw = Netns::new("gw")?;
    let cl = Netns(format!("mamori-nb-{}-cl", std::process::id()), "veth");
    run("ip", &["netns", "add", &cl.0])?;
    run("ip", &["-n", &cl.0, "link", "set", "lo", "up"])?;
    // The lan: eth1 in gw (replacing the one Netns made) with its peer c0 in cl.
    run("ip", &["-n", &gw.0, "link", "del", "eth1"]).ok();
    run("ip", &["-n", &gw.0, "link", "del", "eth0"]).ok();
    run(
        "ip",
        &[
            "-n", &gw.0, "link", "add", "eth0", "type", "veth", "peer", "name", "w0",
        ],
    )?;
    run(
        "ip",
        &[
            "-n", &gw.0, "link", "add", "eth1", "type", "veth", "peer", "name", "c0", "netns",
            &cl.0,
        ],
    )?;
    run(
        "ip",
        &["-n", &cl.0, "address", "add", CLIENT_LAN, "dev", "c0"],
    )?;
    run("ip", &["-n", &cl.0, "link", "set", "c0", "up"])?;
    let dir = Dir::new("http")?;
    let factory = dir.0.join("factory.json");
    std::fs::write(&factory, serde_json::to_vec(&base())?)?;
    let state = dir.0.join("state");
    let listen = format!("{DEVICE_LAN}:443");
    let mut d = Command::new("ip")
        .args(["netns", "exec", &gw.0])
        .arg(mamorid)
        .arg("--state-dir")
        .arg(&state)
        .args(["--listen", &listen, "--model", "M", "--serial", "S1"])
        .arg("--factory-network")
        .arg(&factory)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = lines(d.stdout.take().context("stdout")?);
    let _d = Stopped(d);
    let label = loop {
        match out.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                if let Some(pw) = line.strip_prefix("initial admin password: ") {
                    break pw.to_owned();
                }
            }
            Err(e) => bail!("mamorid printed no label password: {e}"),
        }
    };
    // The certificate is written, and the listener serves, a moment after the label password.
    let cert = state.join("tls/device-cert.pem");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cert.exists() {
        anyhow::ensure!(Instant::now() < deadline, "mamorid wrote no certificate");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exe = std::env::current_exe()?;
    // The raw reference of this phase, in a namespace of its own with the same interfaces.
    let raw = Netns::new("craw")?;
    let mut c = Command::new("ip")
        .args(["netns", "exec", &cl.0])
        .arg(&exe)
        .arg("http")
        .arg(&cert)
        .arg(runs.to_string())
        .arg(&raw.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    if let Some(mut i) = c.stdin.take() {
        writeln!(i, "{label}")?;
    }
    let got = c.wait_with_output()?;
    std::io::stdout().write_all(&got.stdout)?;
    if !got.status.success() {
        bail!("the HTTP client failed ({})", got.status);
    }
    Ok(())
}

/// One HTTPS exchange on a new connection to the device; the time of the exchange alone.
async fn https(
    cfg: &std::sync::Arc<rustls::ClientConfig>,
    request: &[u8],
) -> anyhow::Result<(http1::Response, f64)> {
    let addr: SocketAddr = format!("{DEVICE_LAN}:443").parse()?;
    let connector = tokio_rustls::TlsConnector::from(cfg.clone());
    let name = tls::server_name(DEVICE_LAN)?;
    let mut stream = tls::connect(&connector, &name, addr, None).await?;
    let mut buf = Vec::new();
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(300),
        http1::exchange(&mut stream, &mut buf, request),
    )
    .await
    .context("no answer within 300 s")??;
    Ok((r, ms(started.elapsed())))
}

/// A JSON POST with the session cookie.
fn post(path: &str, body: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie.map_or_else(String::new, |c| format!("Cookie: {c}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: {DEVICE_LAN}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{cookie}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The session cookie (`name=value`) an answer sets, if any.
fn session_cookie(r: &http1::Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .find_map(|(_, v)| {
            let pair = v.split(';').next()?.trim();
            pair.starts_with("__Host-mamori-session=")
                .then(|| pair.to_owned())
        })
}

/// `netbench http CERT RUNS` (label password on stdin), in the client's namespace: log in,
/// set the admin password, then per workload: re-authenticate, and `RUNS` times commit the
/// factory configuration (untimed), the workload (`first`) and its variant (`again`).
fn http_client(args: &[String]) -> anyhow::Result<()> {
    let cert = PathBuf::from(args.first().context("http CERT RUNS RAW_NETNS")?);
    let runs: usize = args.get(1).context("RUNS")?.parse()?;
    // The reference of this phase: raw nft -f of the same rulesets, in a namespace of its own
    // where nothing listens, alternating with the commits.
    let raw_ns = std::fs::File::open(format!("/run/netns/{}", args.get(2).context("RAW_NETNS")?))?;
    let (nft, ip) = (which("nft")?, which("ip")?);
    let mut label = String::new();
    std::io::stdin().read_line(&mut label)?;
    let label = label.trim().to_owned();
    let cfg = tls::client_config(&cert)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let expect = |r: &http1::Response, status: u16, what: &str| -> anyhow::Result<()> {
            anyhow::ensure!(
                r.status == status,
                "{what}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            Ok(())
        };
        let login = serde_json::json!({"username": "admin", "password": label}).to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let r = loop {
            match https(&cfg, &post("/api/v1/auth/login", &login, None)).await {
                Ok((r, _)) => break r,
                // Not serving yet.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        expect(&r, 200, "login")?;
        let mut cookie = session_cookie(&r).context("no session cookie")?;
        let change = serde_json::json!({"current": label, "new": ADMIN_PASSWORD}).to_string();
        let (r, _) = https(&cfg, &post("/api/v1/auth/password", &change, Some(&cookie))).await?;
        expect(&r, 204, "password")?;
        if let Some(c) = session_cookie(&r) {
            cookie = c;
        }
        let reauth = serde_json::json!({"password": ADMIN_PASSWORD}).to_string();
        for name in WORKLOADS {
            let bodies: Vec<String> = [base(), workload(name, false), workload(name, true)]
                .iter()
                .map(|c| {
                    serde_json::json!({"config": c, "comment": "netbench", "confirm_minutes": 0})
                        .to_string()
                })
                .collect();
            let (mut first, mut again) = (Vec::new(), Vec::new());
            let (mut raw_first, mut raw_again) = (Vec::new(), Vec::new());
            let rulesets = [workload(name, false), workload(name, true)]
                .iter()
                .map(|c| render(c).map_err(|e| anyhow::anyhow!("{e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for _ in 0..runs {
                let (f, a) = in_netns(&raw_ns, || -> anyhow::Result<(f64, f64)> {
                    wipe(&nft, &ip)?;
                    let (r, f) = timed(|| tool(&nft, &["-f", "-"], rulesets[0].as_str()));
                    r?;
                    let (r, a) = timed(|| tool(&nft, &["-f", "-"], rulesets[1].as_str()));
                    r?;
                    Ok((f, a))
                })?;
                raw_first.push(f);
                raw_again.push(a);
                // Fresh re-authentication (valid 5 minutes) before each run's three commits.
                let (r, _) =
                    https(&cfg, &post("/api/v1/auth/reauth", &reauth, Some(&cookie))).await?;
                expect(&r, 200, "reauth")?;
                for (i, body) in bodies.iter().enumerate() {
                    let (r, t) =
                        https(&cfg, &post("/api/v1/config/commit", body, Some(&cookie))).await?;
                    expect(&r, 200, &format!("commit of {name} ({i})"))?;
                    match i {
                        1 => first.push(t),
                        2 => again.push(t),
                        _ => {}
                    }
                }
            }
            println!(
                "commit workload={name} runs={runs} body_bytes={} first_ms={} again_ms={} \
                 raw_first_ms={} raw_again_ms={}",
                bodies[1].len(),
                med(&first),
                med(&again),
                med(&raw_first),
                med(&raw_again)
            );
            std::io::stdout().flush()?;
        }
        Ok(())
    })
}

/// Starts `mamorid` in a fresh namespace with the 10,000-rule configuration as its factory
/// network, waits until the management process serves, and reads the parent's memory.
fn mamorid_rss(mamorid: &Path) -> anyhow::Result<String> {
    let ns = Netns::new("rss")?;
    let dir = Dir::new("rss")?;
    let factory = dir.0.join("factory.json");
    std::fs::write(&factory, serde_json::to_vec(&with_rules(10_000, false))?)?;
    let mut d = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(mamorid)
        .arg("--state-dir")
        .arg(dir.0.join("state"))
        .args([
            "--listen",
            "127.0.0.1:18443",
            "--model",
            "M",
            "--serial",
            "S1",
        ])
        .arg("--factory-network")
        .arg(&factory)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let log = lines(d.stderr.take().context("stderr")?);
    let started = Instant::now();
    let d = Stopped(d);
    let mut boot_line = String::new();
    let mut child_start_ms = 0.0;
    loop {
        match log.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains("boot (factory)") || line.contains("boot (last") => {
                boot_line = line;
            }
            Ok(line) if line.contains("management process started") => {
                child_start_ms = ms(started.elapsed());
            }
            Ok(line) if line.contains("management service ready") => break,
            Ok(_) => {}
            Err(e) => bail!("mamorid did not become ready: {e}"),
        }
    }
    // Let the management process's start-up requests settle.
    std::thread::sleep(Duration::from_secs(3));
    let pid = d.0.id();
    let child = procfs::children(pid).first().copied();
    let load = boot_line
        .split("load_ms: Some(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or("-")
        .to_owned();
    Ok(format!(
        "rules=10000 parent_rss_kib={} parent_hwm_kib={} child_rss_kib={} boot_load_ms={load} child_started_after_ms={child_start_ms:.0}",
        procfs::status_kib(pid, "VmRSS").unwrap_or(0),
        procfs::status_kib(pid, "VmHWM").unwrap_or(0),
        child
            .and_then(|c| procfs::status_kib(c, "VmRSS"))
            .unwrap_or(0),
    ))
}
