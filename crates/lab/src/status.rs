//! What a lab looks like now, compared with its plan.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{LabName, Mgmt, Place, Plan, Role, ifname};
use crate::{LabError, device, ip, rundir};

/// Whether the lab is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabState {
    /// Every namespace, link, address, route and the forwarding switches are as planned.
    Up,
    /// Some of it exists (a crash during `up`, or something removed by hand): `up` repairs it,
    /// `down` removes it.
    Partial,
    /// Nothing of it exists.
    Down,
}

/// One namespace of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsStatus {
    /// Its role.
    pub role: Role,
    /// Its name (`ip netns`).
    pub name: String,
    /// Whether it exists.
    pub present: bool,
}

/// One interface of the lab, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// `host` or the namespace's name.
    pub namespace: String,
    /// Interface name.
    pub ifname: String,
    /// Kind (`veth`, `bridge`), when the kernel says.
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Operational state (`UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`).
    pub operstate: String,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// Global addresses, `ADDR/PREFIX`.
    pub addresses: Vec<String>,
}

/// IP forwarding in the gateway's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// `net.ipv4.ip_forward`.
    pub ipv4: bool,
    /// `net.ipv6.conf.all.forwarding`.
    pub ipv6: bool,
}

/// The device (mamorid) in the gateway's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceStatus {
    /// Whether a mamorid runs in the gateway's namespace.
    pub running: bool,
    /// The mamorid processes there (the privileged parent and the management process).
    pub pids: Vec<i32>,
    /// The pid in the lab's pid file (the one `up --with-device` started).
    pub pid_file: Option<i32>,
    /// The management URL it was started for.
    pub url: Option<String>,
    /// Its state directory.
    pub state_dir: Option<PathBuf>,
    /// The certificate it serves (pin it).
    pub cert: Option<PathBuf>,
    /// Its output (stdout and stderr).
    pub log: Option<PathBuf>,
}

/// A lab's status (`mamori lab status --json` prints exactly this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabStatus {
    /// The lab's name.
    pub name: LabName,
    /// Up, partial or down.
    pub state: LabState,
    /// What differs from the plan (empty when up or down).
    pub missing: Vec<String>,
    /// The management link, when known.
    pub mgmt: Option<Mgmt>,
    /// The namespaces.
    pub namespaces: Vec<NsStatus>,
    /// Every interface in the lab's namespaces, and the host's end of the management link.
    pub links: Vec<LinkStatus>,
    /// Forwarding in the gateway, when its namespace exists.
    pub forwarding: Option<Forwarding>,
    /// The IPv4 address (`ADDR/PREFIX`) the device's DHCP client leased on the gateway's wan,
    /// when it holds one ([`wan_lease`]). It and the lease's default route stand for the plan's
    /// static IPv4 address on the wan and the gateway's IPv4 default route.
    pub wan_lease: Option<String>,
    /// The device.
    pub device: DeviceStatus,
}

impl LabStatus {
    /// Whether anything of the lab exists (namespaces, the host's link, the run directory or
    /// its processes).
    pub fn anything_exists(&self) -> bool {
        self.namespaces.iter().any(|n| n.present)
            || !self.links.is_empty()
            || !self.device.pids.is_empty()
            || self.device.pid_file.is_some()
    }
}

fn links_of(
    namespace: &str,
    ns: Option<&str>,
    only: Option<&str>,
) -> Result<Vec<LinkStatus>, LabError> {
    let mut args = vec!["-details", "addr", "show"];
    if let Some(dev) = only {
        args.extend(["dev", dev]);
    }
    let step = format!("read interfaces of {namespace}");
    let v = ip::json(&step, ns, &args)?;
    Ok(v.iter()
        .filter(|l| l["ifname"].as_str() != Some("lo"))
        .map(|l| {
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            LinkStatus {
                namespace: namespace.to_owned(),
                ifname: l["ifname"].as_str().unwrap_or_default().to_owned(),
                kind: l["linkinfo"]["info_kind"].as_str().map(str::to_owned),
                up: flags.contains(&"UP"),
                operstate: l["operstate"].as_str().unwrap_or("UNKNOWN").to_owned(),
                master: l["master"].as_str().map(str::to_owned),
                addresses: l["addr_info"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["scope"].as_str() == Some("global"))
                            .filter_map(|x| {
                                Some(format!(
                                    "{}/{}",
                                    x["local"].as_str()?,
                                    x["prefixlen"].as_u64()?
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// The gateway's wan IPv4 lease: a dynamic (finite-lifetime) global IPv4 address on wan0.
///
/// The lab sets only permanent addresses; a dynamic IPv4 one there is the device's: with
/// `dhcp: true` on wan0 its dhcpcd adds the lease's address (and default route, protocol
/// `dhcp`), and mamori's applier removes the static address it had adopted from the lab.
/// That pair, and nothing else, is the device's to change by design.
fn wan_lease(gw: &str) -> Result<Option<String>, LabError> {
    let v = ip::json(
        &format!("read the wan's addresses in {gw}"),
        Some(gw),
        &["-4", "addr", "show", "dev", ifname::GW_WAN],
    )?;
    Ok(v.iter()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
        .filter(|a| a["dynamic"] == true && a["scope"].as_str() == Some("global"))
        .find_map(|a| {
            Some(format!(
                "{}/{}",
                a["local"].as_str()?,
                a["prefixlen"].as_u64()?
            ))
        }))
}

/// Whether the gateway has the IPv4 default route of a DHCP lease on its wan.
fn has_lease_default_route(gw: &str) -> Result<bool, LabError> {
    let routes = ip::json(
        &format!("read the wan's routes in {gw}"),
        Some(gw),
        &[
            "-4",
            "route",
            "show",
            "default",
            "dev",
            ifname::GW_WAN,
            "proto",
            "dhcp",
        ],
    )?;
    Ok(!routes.is_empty())
}

fn sysctl_on(ns: &str, key: &str) -> Result<bool, LabError> {
    let out = ip::exec(&format!("read {key} in {ns}"), ns, &["sysctl", "-n", key])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "1")
}

fn has_route(ns: &str, dst: &str, via: &str) -> Result<bool, LabError> {
    let fam = if via.contains(':') { "-6" } else { "-4" };
    let routes = ip::json(
        &format!("read routes of {ns}"),
        Some(ns),
        &[fam, "route", "show"],
    )?;
    let dst_matches =
        |d: &str| d == dst || (d == "default" && (dst == "0.0.0.0/0" || dst == "::/0"));
    Ok(routes
        .iter()
        .any(|r| r["dst"].as_str().is_some_and(dst_matches) && r["gateway"].as_str() == Some(via)))
}

/// Reads the lab's state and compares it with its plan.
pub fn read(name: &LabName) -> Result<LabStatus, LabError> {
    let existing = ip::netns_list()?;
    let namespaces: Vec<NsStatus> = Role::ALL
        .iter()
        .map(|&role| {
            let n = name.netns(role);
            NsStatus {
                role,
                present: existing.contains(&n),
                name: n,
            }
        })
        .collect();
    let host_if = name.host_if();
    // Only our own veth by that name counts (the name is ours by prefix, but check the kind).
    let host_links = match links_of("host", None, Some(&host_if)) {
        Ok(l) => l,
        Err(LabError::Step { .. }) => Vec::new(), // no such device
        Err(e) => return Err(e),
    };
    let mut links = host_links.clone();
    for ns in namespaces.iter().filter(|n| n.present) {
        links.extend(links_of(&ns.name, Some(&ns.name), None)?);
    }
    let saved = rundir::read_lab(name);
    let mgmt = host_links
        .iter()
        .flat_map(|l| &l.addresses)
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .find_map(Mgmt::from_host_v4)
        .or(saved.as_ref().map(|s| s.mgmt));
    let gw = name.netns(Role::Gw);
    let gw_present = existing.contains(&gw);
    let forwarding = if gw_present {
        Some(Forwarding {
            ipv4: sysctl_on(&gw, "net.ipv4.ip_forward")?,
            ipv6: sysctl_on(&gw, "net.ipv6.conf.all.forwarding")?,
        })
    } else {
        None
    };

    let has_wan = links
        .iter()
        .any(|l| l.namespace == gw && l.ifname == ifname::GW_WAN);
    let wan_lease = if has_wan { wan_lease(&gw)? } else { None };

    let mut missing = Vec::new();
    for ns in namespaces.iter().filter(|n| !n.present) {
        missing.push(format!("namespace {}", ns.name));
    }
    match mgmt {
        None => missing.push(format!("management link {host_if} (host end)")),
        Some(m) => {
            let plan = Plan::new(name.clone(), m.slot);
            for want in plan.links() {
                let where_ = match want.place {
                    Place::Host => "host".to_owned(),
                    Place::Ns(r) => name.netns(r),
                };
                let Some(have) = links
                    .iter()
                    .find(|l| l.namespace == where_ && l.ifname == want.ifname)
                else {
                    missing.push(format!("interface {where_}/{}", want.ifname));
                    continue;
                };
                if !have.up {
                    missing.push(format!("interface {where_}/{} is down", want.ifname));
                }
                let leased = where_ == gw && want.ifname == ifname::GW_WAN && wan_lease.is_some();
                for a in &want.addrs {
                    // The lease's address replaces the plan's IPv4 address there (not the
                    // IPv6 one: the device's DHCP is IPv4 only).
                    if leased && !a.contains(':') {
                        continue;
                    }
                    if !have.addresses.contains(a) {
                        missing.push(format!("address {a} on {where_}/{}", want.ifname));
                    }
                }
                let port = want.ifname == ifname::GW_LAN1 || want.ifname == ifname::GW_LAN2;
                if port && have.master.as_deref() != Some(ifname::GW_LAN) {
                    missing.push(format!(
                        "{where_}/{} not in bridge {}",
                        want.ifname,
                        ifname::GW_LAN
                    ));
                }
            }
            for r in plan.routes() {
                let ns = name.netns(r.ns);
                if existing.contains(&ns) && !has_route(&ns, &r.dst, &r.via.to_string())? {
                    // The lease's default route, whatever its router, replaces the plan's
                    // IPv4 default of the gateway.
                    let by_lease = r.ns == Role::Gw
                        && r.dst == "0.0.0.0/0"
                        && wan_lease.is_some()
                        && has_lease_default_route(&ns)?;
                    if !by_lease {
                        missing.push(format!("route {} via {} in {ns}", r.dst, r.via));
                    }
                }
            }
        }
    }
    match forwarding {
        Some(f) if !(f.ipv4 && f.ipv6) => missing.push(format!("forwarding in {gw}")),
        _ => {}
    }
    let device = device::status(name, gw_present, saved.as_ref())?;
    let mut status = LabStatus {
        name: name.clone(),
        state: LabState::Up,
        missing,
        mgmt,
        namespaces,
        links,
        forwarding,
        wan_lease,
        device,
    };
    if !status.missing.is_empty() {
        status.state = if status.anything_exists() {
            LabState::Partial
        } else {
            status.missing.clear();
            LabState::Down
        };
    }
    Ok(status)
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            LabState::Up => "up",
            LabState::Partial => "partial (run `mamori lab up` to repair or `down` to remove)",
            LabState::Down => "down",
        };
        writeln!(f, "lab {}: {state}", self.name)?;
        if self.state == LabState::Down {
            return Ok(());
        }
        if let Some(m) = self.mgmt {
            writeln!(
                f,
                "management: host {} / {}  ->  gateway {} / {}",
                m.host_v4, m.host_v6, m.gw_v4, m.gw_v6
            )?;
        }
        if let Some(fw) = self.forwarding {
            let on = |b: bool| if b { "on" } else { "OFF" };
            writeln!(
                f,
                "forwarding in the gateway: ipv4 {}, ipv6 {}",
                on(fw.ipv4),
                on(fw.ipv6)
            )?;
        }
        if let Some(lease) = &self.wan_lease {
            writeln!(
                f,
                "gateway wan: {lease} leased by the device's DHCP client (in place of the \
                 plan's static IPv4 address and default route)"
            )?;
        }
        let d = &self.device;
        if d.running {
            let pids: Vec<String> = d.pids.iter().map(i32::to_string).collect();
            writeln!(
                f,
                "device: mamorid running (pids {}){}",
                pids.join(", "),
                d.url
                    .as_ref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default()
            )?;
        } else {
            writeln!(f, "device: not running")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:<8} {:<7} {:<6} {:<15} addresses",
            "namespace", "link", "kind", "admin", "state"
        )?;
        for ns in &self.namespaces {
            if !ns.present {
                writeln!(f, "{:<20} (missing)", ns.name)?;
            }
        }
        for l in &self.links {
            let admin = if l.up { "up" } else { "down" };
            let state = match &l.master {
                Some(m) => format!("{} ({m})", l.operstate),
                None => l.operstate.clone(),
            };
            writeln!(
                f,
                "{:<20} {:<8} {:<7} {:<6} {:<15} {}",
                l.namespace,
                l.ifname,
                l.kind.as_deref().unwrap_or("-"),
                admin,
                state,
                l.addresses.join(" ")
            )?;
        }
        for m in &self.missing {
            writeln!(f, "missing: {m}")?;
        }
        Ok(())
    }
}
