//! The network configuration: interfaces, routes, NAT, firewall and management access.
//!
//! Every struct refuses unknown fields, and every value that reaches the ruleset as text is a
//! validated newtype ([`crate::names`]). [`NetworkConfig::validate`](crate::validate) adds the
//! checks across fields.

use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{Comment, IfName, PortRange, Prefix, SetName, ZoneName};

/// The whole network configuration of the gateway: one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The interfaces mamori manages.
    pub interfaces: Vec<Interface>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Source and destination NAT.
    #[serde(default)]
    pub nat: Nat,
    /// Zones, policies, rules and address sets.
    pub firewall: Firewall,
    /// Who may reach the management listener.
    pub management: ManagementAccess,
    /// Protections that apply before any rule.
    #[serde(default)]
    pub protection: Protection,
}

/// What an interface is for. The factory configuration puts each role in a zone of the same
/// name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The local network(s) the gateway serves.
    Lan,
    /// A dedicated management network.
    Mgmt,
    /// The uplink (Internet side).
    Wan,
}

impl Role {
    /// The role as the lower-case word used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lan => "lan",
            Self::Mgmt => "mgmt",
            Self::Wan => "wan",
        }
    }
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// The Linux name (`eth0`).
    pub name: IfName,
    /// What the interface is for.
    pub role: Role,
    /// Static addresses with their prefix length (`192.168.1.1/24`, `fd00::1/64`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<IpNet>,
    /// Take an IPv4 address from a DHCP server (wan only).
    #[serde(default)]
    pub dhcp: bool,
}

impl Interface {
    /// An interface with no address and no DHCP.
    pub fn new(name: IfName, role: Role) -> Self {
        Self {
            name,
            role,
            addresses: Vec::new(),
            dhcp: false,
        }
    }
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Where the route leads (`0.0.0.0/0` for a default route).
    pub destination: Prefix,
    /// The next hop; must lie on a connected subnet.
    pub gateway: IpAddr,
    /// The route's metric (lower wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// NAT: masquerading and port forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    /// IPv4 source NAT to the outgoing interface's address.
    #[serde(default)]
    pub masquerade: Vec<Masquerade>,
    /// Destination NAT of ports on the gateway to hosts on a lan.
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
}

/// Masquerade IPv4 traffic leaving through a zone's interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Masquerade {
    /// The zone whose interfaces the traffic leaves by.
    pub out_zone: ZoneName,
}

/// A transport protocol with ports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl PortProto {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Forward connections to a port (or range) on the gateway to a host on a lan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// The zone the connections arrive from (usually `wan`).
    pub from_zone: ZoneName,
    /// TCP or UDP.
    pub proto: PortProto,
    /// The port or range on the gateway.
    pub external_ports: PortRange,
    /// The lan host.
    pub internal_address: IpAddr,
    /// The port on the lan host; without it the ports are kept as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<u16>,
    /// Forward only connections from this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Prefix>,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

/// Zones, policies, rules and named sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// Sets of interfaces; an interface belongs to at most one zone.
    pub zones: Vec<Zone>,
    /// The default verdict from one zone to another (or to `self`). A pair with no policy
    /// drops.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Rules, checked in order before the policies.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Named address sets the rules can match.
    #[serde(default)]
    pub sets: Vec<AddressSet>,
}

/// A firewall zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name (not `self`).
    pub name: ZoneName,
    /// Its interfaces.
    pub interfaces: Vec<IfName>,
}

/// What happens to a packet.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Accept,
    /// Discard it silently.
    Drop,
    /// Discard it and answer with an ICMP error or TCP reset.
    Reject,
}

impl Action {
    /// The nft verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Drop => "drop",
            Self::Reject => "reject",
        }
    }
}

/// The default verdict from one zone to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Where the traffic comes from.
    pub from: ZoneName,
    /// Where it goes: a zone, or `self` for the gateway itself.
    pub to: ZoneName,
    /// The verdict.
    pub action: Action,
}

/// An IP family.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Self::Ipv4
        } else {
            Self::Ipv6
        }
    }

    /// The family of a prefix.
    pub fn of_net(net: IpNet) -> Self {
        Self::of(net.addr())
    }

    /// The lower-case word used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

/// The protocol a rule matches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// ICMP (IPv4 only).
    Icmp,
    /// ICMPv6 (IPv6 only).
    Icmpv6,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Addresses a rule matches: a list of prefixes or a named set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AddressMatch {
    /// These prefixes (all of one family).
    Prefixes(Vec<Prefix>),
    /// The named set.
    Set(SetName),
}

/// Log the packets a rule matches, at most `per_minute` a minute, to the drop-log group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleLog {
    /// Log at most this many packets a minute (1 to 6000).
    pub per_minute: u32,
}

/// A firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The zone the traffic arrives from.
    pub from: ZoneName,
    /// The zone it leaves by, or `self` for traffic to the gateway.
    pub to: ZoneName,
    /// Match only this family (otherwise both, or the family of the addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Match only this protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Proto>,
    /// Destination ports (TCP or UDP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// Source addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AddressMatch>,
    /// Destination addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<AddressMatch>,
    /// The verdict.
    pub action: Action,
    /// Log what matches, rate-limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<RuleLog>,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

impl Rule {
    /// A rule from `from` to `to` with `action` and nothing else to match.
    pub fn new(from: ZoneName, to: ZoneName, action: Action) -> Self {
        Self {
            from,
            to,
            family: None,
            proto: None,
            ports: Vec::new(),
            source: None,
            destination: None,
            action,
            log: None,
            comment: None,
        }
    }
}

/// A named set of prefixes of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressSet {
    /// The set's name.
    pub name: SetName,
    /// Its family.
    pub family: Family,
    /// Its prefixes (at most 50,000, not overlapping).
    pub entries: Vec<Prefix>,
}

/// Who may open connections to the management listener (HTTPS).
///
/// The listener's port is closed to every interface outside `zones` and every source outside
/// `sources`, whatever the rules say; rules to `self` can narrow access further but never widen
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagementAccess {
    /// The listener's TCP port.
    pub port: u16,
    /// The zones it may be reached from.
    pub zones: Vec<ZoneName>,
    /// The source prefixes that may reach it (`0.0.0.0/0` and `::/0` for any).
    pub sources: Vec<Prefix>,
}

/// Protections applied to every packet before zones and rules. All are on by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// Drop packets whose source address would not be routed back out of the interface they
    /// came in on (strict reverse-path filter, `fib saddr . iif oif missing drop`).
    #[serde(default = "yes")]
    pub anti_spoofing: bool,
    /// Limit new TCP connections (SYNs) to the gateway per source address.
    #[serde(default = "SynLimit::some_default")]
    pub syn_limit: Option<SynLimit>,
    /// Log dropped packets, rate-limited, to an nflog group the daemon reads.
    #[serde(default = "DropLog::some_default")]
    pub drop_log: Option<DropLog>,
}

impl Default for Protection {
    fn default() -> Self {
        Self {
            anti_spoofing: true,
            syn_limit: SynLimit::some_default(),
            drop_log: DropLog::some_default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// SYN-flood protection: each source address may open at most `per_second` new TCP
/// connections a second to the gateway (after a burst); the excess is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynLimit {
    /// Sustained SYNs a second per source (1 to 10,000).
    pub per_second: u32,
    /// Burst allowed above the rate (1 to 100,000).
    pub burst: u32,
}

impl SynLimit {
    fn some_default() -> Option<Self> {
        Some(Self {
            per_second: 25,
            burst: 100,
        })
    }
}

/// Rate-limited logging of dropped packets to an nflog group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropLog {
    /// The nflog group the daemon listens on: always [`DROP_LOG_GROUP`] (the daemon binds it
    /// once, at start, before dropping its privileges).
    pub group: u16,
    /// At most this many log messages a second, per chain (1 to 1000).
    pub per_second: u32,
}

impl DropLog {
    fn some_default() -> Option<Self> {
        Some(Self {
            group: DROP_LOG_GROUP,
            per_second: 5,
        })
    }
}

/// The nflog group of the drop log and of rule logs.
pub const DROP_LOG_GROUP: u16 = 1;

/// The management listener's default port.
pub const MANAGEMENT_PORT: u16 = 443;

impl NetworkConfig {
    /// The secure defaults for these interfaces.
    ///
    /// - one zone per role present (`wan`, `lan`, `mgmt`), holding that role's interfaces;
    /// - policies: `lan → wan` accept; every other pair, `* → self` included, drops;
    /// - masquerade out of `wan` (when a wan interface exists);
    /// - management (port 443) from the `lan` and `mgmt` zones, any source there;
    /// - every [`Protection`] on (anti-spoofing, SYN limit, drop log);
    /// - no rule: no DNS, NTP, SSDP or other service is opened to anyone.
    ///
    /// What the ruleset always adds (established/related, invalid, ICMPv6 for neighbour
    /// discovery and path MTU, DHCP replies on DHCP interfaces) is described in
    /// [`crate::render`].
    pub fn factory(interfaces: Vec<Interface>) -> Self {
        let mut zones = Vec::new();
        for role in [Role::Wan, Role::Lan, Role::Mgmt] {
            let members: Vec<IfName> = interfaces
                .iter()
                .filter(|i| i.role == role)
                .map(|i| i.name.clone())
                .collect();
            if !members.is_empty() {
                zones.push(Zone {
                    name: role_zone(role),
                    interfaces: members,
                });
            }
        }
        let has = |role: Role| interfaces.iter().any(|i| i.role == role);
        let mut policies = Vec::new();
        let mut masquerade = Vec::new();
        if has(Role::Wan) {
            masquerade.push(Masquerade {
                out_zone: role_zone(Role::Wan),
            });
            if has(Role::Lan) {
                policies.push(Policy {
                    from: role_zone(Role::Lan),
                    to: role_zone(Role::Wan),
                    action: Action::Accept,
                });
            }
        }
        let management_zones = [Role::Lan, Role::Mgmt]
            .into_iter()
            .filter(|r| has(*r))
            .map(role_zone)
            .collect();
        Self {
            interfaces,
            routes: Vec::new(),
            nat: Nat {
                masquerade,
                port_forwards: Vec::new(),
            },
            firewall: Firewall {
                zones,
                policies,
                rules: Vec::new(),
                sets: Vec::new(),
            },
            management: ManagementAccess {
                port: MANAGEMENT_PORT,
                zones: management_zones,
                sources: vec![any_v4(), any_v6()],
            },
            protection: Protection::default(),
        }
    }

    /// The zone an interface belongs to, if any.
    pub fn zone_of(&self, interface: &IfName) -> Option<&Zone> {
        self.firewall
            .zones
            .iter()
            .find(|z| z.interfaces.contains(interface))
    }

    /// The configuration as canonical pretty JSON (field order of the structs, two-space
    /// indent, a final newline): the text revisions are stored and diffed as.
    pub fn to_canonical_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no custom
        // serialisers that error.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The zone named after a role.
fn role_zone(role: Role) -> ZoneName {
    ZoneName::from_role(role)
}

fn any_v4() -> Prefix {
    Prefix::any(Family::Ipv4)
}

fn any_v6() -> Prefix {
    Prefix::any(Family::Ipv6)
}
