//! The lab's topology as data: namespace and interface names, addresses and routes. Building
//! (`ip -batch`) and checking (`status`) both read this one description.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::LabError;

/// Prefix of everything a lab creates outside its own namespaces (the namespace names and the
/// host's end of the management link).
pub const PREFIX: &str = "mlab-";

/// Longest lab name: `mlab-` + name must fit an interface name (15 bytes, IFNAMSIZ - 1).
pub const MAX_NAME: usize = 10;

/// Number of management links the host can carry at once (the /30s of 198.51.100.0/24).
pub const SLOTS: u8 = 64;

/// A lab's name: 1 to 10 of `a-z`, `0-9`, so `mlab-NAME` is a valid interface name and no lab's
/// names can be a prefix of another's pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabName(String);

impl LabName {
    /// Checks a name.
    pub fn new(name: &str) -> Result<LabName, LabError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(LabName(name.to_owned()))
        } else {
            Err(LabError::InvalidName(name.to_owned()))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace of a role: `mlab-NAME-ROLE`.
    pub fn netns(&self, role: Role) -> String {
        format!("{PREFIX}{}-{}", self.0, role.as_str())
    }

    /// The host's (root namespace's) end of the management link: `mlab-NAME`.
    pub fn host_if(&self) -> String {
        format!("{PREFIX}{}", self.0)
    }
}

impl TryFrom<String> for LabName {
    type Error = LabError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        LabName::new(&s)
    }
}

impl From<LabName> for String {
    fn from(n: LabName) -> String {
        n.0
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The namespaces of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The upstream: later the update repository and the log collector.
    Wan,
    /// The gateway: runs mamorid, routes between wan and lan, holds the lan bridge.
    Gw,
    /// The first lan host.
    Lan1,
    /// The second lan host.
    Lan2,
}

impl Role {
    /// Every role, in build order.
    pub const ALL: [Role; 4] = [Role::Wan, Role::Gw, Role::Lan1, Role::Lan2];

    /// The suffix of the namespace name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wan => "wan",
            Role::Gw => "gw",
            Role::Lan1 => "lan1",
            Role::Lan2 => "lan2",
        }
    }
}

/// Where a link lives: the host's root namespace or one of the lab's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// The root namespace (the host the lab runs on).
    Host,
    /// A lab namespace.
    Ns(Role),
}

// Fixed addresses. Each lab's wan and lan live only inside its own namespaces, so every lab uses
// the same ones; only the management link reaches the host and needs a /30 of its own.

/// The lab's IPv6 ULA /48 (global ID 6d:616d:6f72, "mamor").
const ULA: [u16; 3] = [0xfd6d, 0x616d, 0x6f72];

fn ula(subnet: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(ULA[0], ULA[1], ULA[2], subnet, 0, 0, 0, host)
}

/// Wan (TEST-NET-3): the wan host.
pub const WAN_HOST_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Wan: the gateway's wan address.
pub const GW_WAN_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Lan: the gateway's lan address (on the bridge).
pub const GW_LAN_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// Lan: lan host 1.
pub const LAN1_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
/// Lan: lan host 2.
pub const LAN2_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 11);

/// Wan v6 subnet number in the ULA.
const WAN6: u16 = 1;
/// Lan v6 subnet number in the ULA.
const LAN6: u16 = 2;
/// Management v6 subnets are `ff00 + slot`.
const MGMT6: u16 = 0xff00;

/// The wan host's v6 address.
pub fn wan_host_v6() -> Ipv6Addr {
    ula(WAN6, 1)
}
/// The gateway's wan v6 address.
pub fn gw_wan_v6() -> Ipv6Addr {
    ula(WAN6, 2)
}
/// The gateway's lan v6 address.
pub fn gw_lan_v6() -> Ipv6Addr {
    ula(LAN6, 1)
}
/// Lan host 1's v6 address.
pub fn lan1_v6() -> Ipv6Addr {
    ula(LAN6, 0x10)
}
/// Lan host 2's v6 address.
pub fn lan2_v6() -> Ipv6Addr {
    ula(LAN6, 0x11)
}

/// The management link's addresses for a slot (0..64): 198.51.100.4k+1 (host) and +2 (gateway)
/// of TEST-NET-2, and `ULA:ff00+k::1` / `::2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mgmt {
    /// Which /30 of 198.51.100.0/24.
    pub slot: u8,
    /// The host's end.
    pub host_v4: Ipv4Addr,
    /// The gateway's end: the management address.
    pub gw_v4: Ipv4Addr,
    /// The host's end, v6.
    pub host_v6: Ipv6Addr,
    /// The gateway's end, v6.
    pub gw_v6: Ipv6Addr,
}

impl Mgmt {
    /// The addresses of a slot.
    pub fn slot(slot: u8) -> Mgmt {
        let base = slot.wrapping_mul(4);
        Mgmt {
            slot,
            host_v4: Ipv4Addr::new(198, 51, 100, base + 1),
            gw_v4: Ipv4Addr::new(198, 51, 100, base + 2),
            host_v6: ula(MGMT6 + u16::from(slot), 1),
            gw_v6: ula(MGMT6 + u16::from(slot), 2),
        }
    }

    /// The slot whose host end is `ip`, if it is one.
    pub fn from_host_v4(ip: Ipv4Addr) -> Option<Mgmt> {
        let [a, b, c, d] = ip.octets();
        let slot = d / 4;
        ((a, b, c) == (198, 51, 100) && d % 4 == 1 && slot < SLOTS).then(|| Mgmt::slot(slot))
    }
}

/// One interface the lab expects, with its addresses (`addr/prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    /// Where it lives.
    pub place: Place,
    /// Its name there.
    pub ifname: String,
    /// Its addresses, `ADDR/PREFIX`.
    pub addrs: Vec<String>,
}

/// One route the lab expects (`ip route` words after `route replace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// The namespace.
    pub ns: Role,
    /// Destination prefix (`0.0.0.0/0` and `::/0` for the defaults, unambiguous in a batch).
    pub dst: String,
    /// Next hop.
    pub via: IpAddr,
}

/// The whole lab.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The lab's name.
    pub name: LabName,
    /// Its management link.
    pub mgmt: Mgmt,
}

/// Interface names inside the namespaces (each namespace is its own name space for links, so
/// they are the same in every lab).
pub mod ifname {
    /// Gateway: wan port.
    pub const GW_WAN: &str = "wan0";
    /// Gateway: the lan bridge.
    pub const GW_LAN: &str = "lan0";
    /// Gateway: the bridge port towards lan host 1.
    pub const GW_LAN1: &str = "lan0p1";
    /// Gateway: the bridge port towards lan host 2.
    pub const GW_LAN2: &str = "lan0p2";
    /// Gateway: the management port (peer of the host's `mlab-NAME`).
    pub const GW_MGMT: &str = "mgmt0";
    /// Wan host and lan hosts: their one port.
    pub const HOST: &str = "eth0";
}

/// IPv6 addresses skip duplicate address detection: usable at once, not tentative for 1-2 s.
fn nodad(addr: &str) -> &'static str {
    if addr.contains(':') { " nodad" } else { "" }
}

fn v4(a: Ipv4Addr, p: u8) -> String {
    format!("{a}/{p}")
}
fn v6(a: Ipv6Addr) -> String {
    format!("{a}/64")
}

impl Plan {
    /// The lab `name` with the management link in `slot`.
    pub fn new(name: LabName, slot: u8) -> Plan {
        Plan {
            name,
            mgmt: Mgmt::slot(slot),
        }
    }

    /// The namespaces, in build order.
    pub fn namespaces(&self) -> Vec<(Role, String)> {
        Role::ALL.iter().map(|&r| (r, self.name.netns(r))).collect()
    }

    /// Every interface with its addresses (a bridge port has none).
    pub fn links(&self) -> Vec<LinkPlan> {
        use ifname::*;
        let m = self.mgmt;
        let l = |place, ifname: &str, addrs: Vec<String>| LinkPlan {
            place,
            ifname: ifname.to_owned(),
            addrs,
        };
        vec![
            l(
                Place::Host,
                &self.name.host_if(),
                vec![v4(m.host_v4, 30), v6(m.host_v6)],
            ),
            l(
                Place::Ns(Role::Gw),
                GW_MGMT,
                vec![v4(m.gw_v4, 30), v6(m.gw_v6)],
            ),
            l(
                Place::Ns(Role::Gw),
                GW_WAN,
                vec![v4(GW_WAN_V4, 24), v6(gw_wan_v6())],
            ),
            l(
                Place::Ns(Role::Gw),
                GW_LAN,
                vec![v4(GW_LAN_V4, 24), v6(gw_lan_v6())],
            ),
            l(Place::Ns(Role::Gw), GW_LAN1, vec![]),
            l(Place::Ns(Role::Gw), GW_LAN2, vec![]),
            l(
                Place::Ns(Role::Wan),
                HOST,
                vec![v4(WAN_HOST_V4, 24), v6(wan_host_v6())],
            ),
            l(
                Place::Ns(Role::Lan1),
                HOST,
                vec![v4(LAN1_V4, 24), v6(lan1_v6())],
            ),
            l(
                Place::Ns(Role::Lan2),
                HOST,
                vec![v4(LAN2_V4, 24), v6(lan2_v6())],
            ),
        ]
    }

    /// The routes: the gateway's default points to the wan host; lan hosts default to the
    /// gateway; the wan host routes the lan back through the gateway (it stands in for the
    /// provider routing the customer's prefix; there is no NAT yet).
    pub fn routes(&self) -> Vec<RoutePlan> {
        let r = |ns, dst: &str, via: IpAddr| RoutePlan {
            ns,
            dst: dst.to_owned(),
            via,
        };
        let lan6 = format!("{}/64", ula(LAN6, 0));
        vec![
            r(Role::Gw, "0.0.0.0/0", WAN_HOST_V4.into()),
            r(Role::Gw, "::/0", wan_host_v6().into()),
            r(Role::Lan1, "0.0.0.0/0", GW_LAN_V4.into()),
            r(Role::Lan1, "::/0", gw_lan_v6().into()),
            r(Role::Lan2, "0.0.0.0/0", GW_LAN_V4.into()),
            r(Role::Lan2, "::/0", gw_lan_v6().into()),
            r(Role::Wan, "192.168.77.0/24", GW_WAN_V4.into()),
            r(Role::Wan, &lan6, gw_wan_v6().into()),
        ]
    }

    /// The `ip -batch` lines run in the root namespace: the namespaces and every veth, each end
    /// created directly where it belongs (so no lab's interface name is ever seen in the root
    /// namespace except the host's end of the management link).
    pub fn root_batch(&self) -> Vec<(String, String)> {
        use ifname::*;
        let ns = |r| self.name.netns(r);
        let mut b: Vec<(String, String)> = self
            .namespaces()
            .into_iter()
            .map(|(_, n)| (format!("create namespace {n}"), format!("netns add {n}")))
            .collect();
        let veth = |a_ns: &str, a: &str, b_ns: &str, b: &str| {
            (
                format!("veth {a_ns}/{a} <-> {b_ns}/{b}"),
                format!("link add {a} netns {a_ns} type veth peer name {b} netns {b_ns}"),
            )
        };
        b.push(veth(&ns(Role::Wan), HOST, &ns(Role::Gw), GW_WAN));
        b.push(veth(&ns(Role::Lan1), HOST, &ns(Role::Gw), GW_LAN1));
        b.push(veth(&ns(Role::Lan2), HOST, &ns(Role::Gw), GW_LAN2));
        let host = self.name.host_if();
        b.push((
            format!("management veth {host} <-> {}/{GW_MGMT}", ns(Role::Gw)),
            format!(
                "link add {host} type veth peer name {GW_MGMT} netns {}",
                ns(Role::Gw)
            ),
        ));
        for a in &self.links_in(Place::Host) {
            b.push((
                format!("address {a} on {host}"),
                format!("addr add {a} dev {host}{}", nodad(a)),
            ));
        }
        b.push((format!("{host} up"), format!("link set {host} up")));
        b
    }

    fn links_in(&self, place: Place) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l.place == place)
            .flat_map(|l| l.addrs)
            .collect()
    }

    /// The `ip -batch` lines run inside namespace `role` (`ip -n NS -batch -`).
    pub fn ns_batch(&self, role: Role) -> Vec<(String, String)> {
        use ifname::*;
        let mut b = vec![("lo up".to_owned(), "link set lo up".to_owned())];
        if role == Role::Gw {
            b.push((
                format!("bridge {GW_LAN}"),
                format!("link add {GW_LAN} type bridge stp_state 0"),
            ));
            for port in [GW_LAN1, GW_LAN2] {
                b.push((
                    format!("{port} into bridge {GW_LAN}"),
                    format!("link set {port} master {GW_LAN}"),
                ));
            }
        }
        for l in self.links() {
            if l.place != Place::Ns(role) {
                continue;
            }
            for a in &l.addrs {
                b.push((
                    format!("address {a} on {}", l.ifname),
                    format!("addr add {a} dev {}{}", l.ifname, nodad(a)),
                ));
            }
            b.push((
                format!("{} up", l.ifname),
                format!("link set {} up", l.ifname),
            ));
        }
        for r in self.routes() {
            if r.ns != role {
                continue;
            }
            b.push((
                format!("route {} via {}", r.dst, r.via),
                format!("route replace {} via {}", r.dst, r.via),
            ));
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_an_interface_and_are_checked() {
        let n = LabName::new("abcdefghij").unwrap();
        assert_eq!(n.host_if().len(), 15);
        assert_eq!(n.netns(Role::Lan1), "mlab-abcdefghij-lan1");
        for bad in ["", "abcdefghijk", "a-b", "A", "a b", "a/b", "ä"] {
            assert!(LabName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn management_slots_do_not_overlap() {
        let mut seen = std::collections::HashSet::new();
        for s in 0..SLOTS {
            let m = Mgmt::slot(s);
            assert!(seen.insert(m.host_v4) && seen.insert(m.gw_v4));
            assert_eq!(Mgmt::from_host_v4(m.host_v4), Some(m));
            assert_eq!(Mgmt::from_host_v4(m.gw_v4), None);
        }
        assert_eq!(Mgmt::slot(63).gw_v4, Ipv4Addr::new(198, 51, 100, 254));
        assert_eq!(Mgmt::from_host_v4(Ipv4Addr::new(192, 0, 3, 1)), None);
    }

    #[test]
    fn every_batch_line_is_an_ip_command_with_a_step() {
        let p = Plan::new(LabName::new("x").unwrap(), 3);
        let root = p.root_batch();
        assert!(
            root.iter()
                .any(|(_, c)| c == "link add mlab-x type veth peer name mgmt0 netns mlab-x-gw")
        );
        assert!(
            root.iter()
                .any(|(_, c)| c == "addr add 198.51.100.13/30 dev mlab-x")
        );
        let gw = p.ns_batch(Role::Gw);
        assert!(
            gw.iter()
                .any(|(_, c)| c == "route replace 0.0.0.0/0 via 203.0.113.1")
        );
        assert!(
            gw.iter()
                .any(|(_, c)| c == "addr add 198.51.100.14/30 dev mgmt0")
        );
        let wan = p.ns_batch(Role::Wan);
        assert!(
            wan.iter()
                .any(|(_, c)| c == "route replace fd6d:616d:6f72:2::/64 via fd6d:616d:6f72:1::2")
        );
    }
}
