//! The checks across fields. Single values were checked when they were parsed
//! ([`crate::names`]); here the configuration is checked as a whole, and every problem found is
//! reported with the JSON pointer of the value at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    AddressMatch, AddressSet, DROP_LOG_GROUP, Family, NetworkConfig, Proto, Role, Rule,
};
use crate::names::{IfName, SetName, ZoneName};

/// The most entries a named set may hold.
pub const MAX_SET_ENTRIES: usize = 50_000;
/// The most rules a configuration may hold.
pub const MAX_RULES: usize = 20_000;
/// The most named sets.
pub const MAX_SETS: usize = 256;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ValidationError {
    /// JSON pointer to the value at fault (`/firewall/rules/3/source`).
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with a value. Messages name other values by their JSON pointer, never repeat
/// free text from the configuration.
///
/// Not `#[non_exhaustive]`: the web UI words every kind in Japanese with an exhaustive match,
/// so a new kind does not compile until it is translated (S3.1-43).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// An address is the unspecified, a loopback or a multicast address.
    #[error("not usable as an interface address")]
    AddressUnusable,
    /// An interface name is used twice.
    #[error("interface {0} is listed twice")]
    DuplicateInterface(IfName),
    /// A policy for the same pair of zones exists already.
    #[error("a policy for this pair of zones is at {0}")]
    DuplicatePolicy(String),
    /// Two routes to the same destination.
    #[error("a route to this destination is at {0}")]
    DuplicateRoute(String),
    /// A set name is used twice.
    #[error("set {0} is defined twice")]
    DuplicateSet(SetName),
    /// A zone name is used twice.
    #[error("zone {0} is defined twice")]
    DuplicateZone(ZoneName),
    /// `dhcp` on an interface whose role is not wan.
    #[error("a DHCP client runs only on wan interfaces")]
    DhcpNotOnWan,
    /// An address list is empty.
    #[error("an empty address list matches nothing; leave the field out instead")]
    EmptyPrefixList,
    /// The families of a rule's parts disagree (an IPv4 set in an IPv6 rule, ICMP with IPv6
    /// addresses, …), or of a port forward's source and internal address.
    #[error(
        "family mismatch: {part} is {} but {other} is {}",
        .family.as_str(),
        .other_family.as_str()
    )]
    FamilyMismatch {
        /// The part at fault (the problem's path points at it).
        part: FamilyPart,
        /// Its family.
        family: Family,
        /// The part it disagrees with.
        other: FamilyPart,
        /// That part's family.
        other_family: Family,
    },
    /// A port forward whose internal address is the gateway's own.
    #[error("port forward to the gateway's own address")]
    ForwardToDevice,
    /// A port forward whose internal address lies on no lan subnet.
    #[error("port forward to nowhere: the internal address is on no lan subnet")]
    ForwardToNowhere,
    /// A route's gateway is one of the device's own addresses.
    #[error("the gateway is one of this device's own addresses")]
    GatewayIsOwnAddress,
    /// A route's gateway lies on no connected subnet.
    #[error("the gateway is on no connected subnet")]
    GatewayNotConnected,
    /// An interface is a member of two zones.
    #[error("interface {interface} is already in the zone at {other}")]
    InterfaceInTwoZones {
        /// The interface.
        interface: IfName,
        /// JSON pointer of the other zone.
        other: String,
    },
    /// A prefix list mixes IPv4 and IPv6.
    #[error("a prefix list mixes IPv4 and IPv6")]
    MixedFamilies,
    /// Port 0 for the management listener.
    #[error("the management port cannot be 0")]
    ManagementPortZero,
    /// A subnet overlaps one on another interface.
    #[error("overlaps the subnet at {0}")]
    OverlappingSubnets(String),
    /// A set entry overlaps another entry of the same set.
    #[error("overlaps the entry at {0}")]
    OverlappingSetEntries(String),
    /// Ports on a rule that is not TCP or UDP.
    #[error("ports need proto tcp or udp")]
    PortsWithoutTcpUdp,
    /// A number outside its range.
    #[error("must be between {min} and {max}")]
    OutOfRange {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// `self` used as a zone's name, or as the source zone.
    #[error("\"self\" is the device itself: it cannot be defined as a zone or be a source zone")]
    ReservedZone,
    /// A route whose gateway is of the other family than its destination.
    #[error("the gateway's family differs from the destination's")]
    RouteFamilyMismatch,
    /// A set entry of the other family than the set.
    #[error("entry is not {0}")]
    SetEntryFamily(&'static str),
    /// Too many entries, rules or sets.
    #[error("at most {max} allowed, got {got}")]
    TooMany {
        /// The limit.
        max: usize,
        /// How many there are.
        got: usize,
    },
    /// A zone's interface is not among the interfaces.
    #[error("no interface {0} is configured")]
    UnknownInterface(IfName),
    /// A rule names a set that does not exist.
    #[error("no set {0} is defined")]
    UnknownSet(SetName),
    /// A zone that does not exist.
    #[error("no zone {0} is defined")]
    UnknownZone(ZoneName),
    /// An address is used twice on the device.
    #[error("the address is also at {0}")]
    DuplicateAddress(String),
}

/// A part of a rule or a port forward that implies an address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyPart {
    /// A rule's own `family`.
    RuleFamily,
    /// A rule's `proto: icmp`.
    Icmp,
    /// A rule's `proto: icmpv6`.
    Icmpv6,
    /// A named set a rule matches (`source.set`, `destination.set`).
    Set,
    /// A prefix list a rule matches (`source.prefixes`, `destination.prefixes`).
    Prefixes,
    /// A port forward's `source`.
    Source,
    /// A port forward's `internal_address`.
    InternalAddress,
}

impl std::fmt::Display for FamilyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RuleFamily => "the rule's family",
            Self::Icmp => "icmp",
            Self::Icmpv6 => "icmpv6",
            Self::Set => "set",
            Self::Prefixes => "prefixes",
            Self::Source => "source",
            Self::InternalAddress => "internal_address",
        })
    }
}

/// Every problem found, in the order of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the configuration has {} problem(s); first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
pub struct ValidationErrors(pub Vec<ValidationError>);

/// Collects errors while the checks run.
struct Check<'a> {
    cfg: &'a NetworkConfig,
    errors: Vec<ValidationError>,
    zones: BTreeMap<&'a ZoneName, usize>,
    sets: BTreeMap<&'a SetName, &'a AddressSet>,
}

impl Check<'_> {
    fn err(&mut self, path: impl Into<String>, kind: ErrorKind) {
        self.errors.push(ValidationError {
            path: path.into(),
            kind,
        });
    }

    /// Whether `zone` exists (`self` only where `device_ok`); reports it otherwise.
    fn zone(&mut self, path: String, zone: &ZoneName, device_ok: bool) {
        if zone.is_device() {
            if !device_ok {
                self.err(path, ErrorKind::ReservedZone);
            }
        } else if !self.zones.contains_key(zone) {
            self.err(path, ErrorKind::UnknownZone(zone.clone()));
        }
    }

    fn range(&mut self, path: String, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.err(path, ErrorKind::OutOfRange { min, max });
        }
    }
}

impl NetworkConfig {
    /// Checks the configuration as a whole. Returns every problem, each with its path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Check {
            cfg: self,
            errors: Vec::new(),
            zones: BTreeMap::new(),
            sets: BTreeMap::new(),
        };
        interfaces(&mut c);
        routes(&mut c);
        zones(&mut c);
        sets(&mut c);
        policies(&mut c);
        rules(&mut c);
        nat(&mut c);
        management(&mut c);
        protection(&mut c);
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(c.errors))
        }
    }

    /// Every static address of the device, with the path of each.
    pub fn addresses(&self) -> impl Iterator<Item = (String, &IfName, Role, IpNet)> {
        self.interfaces.iter().enumerate().flat_map(|(i, iface)| {
            iface.addresses.iter().enumerate().map(move |(a, net)| {
                (
                    format!("/interfaces/{i}/addresses/{a}"),
                    &iface.name,
                    iface.role,
                    *net,
                )
            })
        })
    }
}

fn is_link_local(net: &IpNet) -> bool {
    match net.addr() {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn interfaces(c: &mut Check<'_>) {
    let mut names = BTreeSet::new();
    for (i, iface) in c.cfg.interfaces.iter().enumerate() {
        if !names.insert(&iface.name) {
            c.err(
                format!("/interfaces/{i}/name"),
                ErrorKind::DuplicateInterface(iface.name.clone()),
            );
        }
        if iface.dhcp && iface.role != Role::Wan {
            c.err(format!("/interfaces/{i}/dhcp"), ErrorKind::DhcpNotOnWan);
        }
    }
    let all: Vec<(String, &IfName, Role, IpNet)> = c.cfg.addresses().collect();
    for (n, (path, name, _, net)) in all.iter().enumerate() {
        let addr = net.addr();
        if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
            c.err(path.clone(), ErrorKind::AddressUnusable);
            continue;
        }
        for (other_path, other_name, _, other) in &all[..n] {
            if other.addr() == addr {
                c.err(
                    path.clone(),
                    ErrorKind::DuplicateAddress(other_path.clone()),
                );
            } else if other_name != name
                && !is_link_local(net)
                && (other.trunc().contains(&net.network())
                    || net.trunc().contains(&other.network()))
            {
                c.err(
                    path.clone(),
                    ErrorKind::OverlappingSubnets(other_path.clone()),
                );
            }
        }
    }
}

fn routes(c: &mut Check<'_>) {
    let mut seen: BTreeMap<IpNet, usize> = BTreeMap::new();
    for (r, route) in c.cfg.routes.iter().enumerate() {
        let path = format!("/routes/{r}");
        if let Some(first) = seen.insert(route.destination.net(), r) {
            seen.insert(route.destination.net(), first);
            c.err(
                format!("{path}/destination"),
                ErrorKind::DuplicateRoute(format!("/routes/{first}")),
            );
        }
        if Family::of(route.gateway) != Family::of_net(route.destination.net()) {
            c.err(format!("{path}/gateway"), ErrorKind::RouteFamilyMismatch);
            continue;
        }
        let mut own = false;
        let mut connected = false;
        for (_, _, _, net) in c.cfg.addresses() {
            own |= net.addr() == route.gateway;
            connected |= net.trunc().contains(&route.gateway);
        }
        if own {
            c.err(format!("{path}/gateway"), ErrorKind::GatewayIsOwnAddress);
        } else if !connected {
            c.err(format!("{path}/gateway"), ErrorKind::GatewayNotConnected);
        }
    }
}

fn zones(c: &mut Check<'_>) {
    let known: BTreeSet<&IfName> = c.cfg.interfaces.iter().map(|i| &i.name).collect();
    let mut member: BTreeMap<&IfName, usize> = BTreeMap::new();
    for (z, zone) in c.cfg.firewall.zones.iter().enumerate() {
        if zone.name.is_device() {
            c.err(format!("/firewall/zones/{z}/name"), ErrorKind::ReservedZone);
        } else if c.zones.insert(&zone.name, z).is_some() {
            c.err(
                format!("/firewall/zones/{z}/name"),
                ErrorKind::DuplicateZone(zone.name.clone()),
            );
        }
        for (i, iface) in zone.interfaces.iter().enumerate() {
            let path = format!("/firewall/zones/{z}/interfaces/{i}");
            if !known.contains(iface) {
                c.err(path, ErrorKind::UnknownInterface(iface.clone()));
            } else if let Some(other) = member.get(iface) {
                c.err(
                    path,
                    ErrorKind::InterfaceInTwoZones {
                        interface: iface.clone(),
                        other: format!("/firewall/zones/{other}"),
                    },
                );
            } else {
                member.insert(iface, z);
            }
        }
    }
}

fn sets(c: &mut Check<'_>) {
    let sets = &c.cfg.firewall.sets;
    if sets.len() > MAX_SETS {
        c.err(
            "/firewall/sets",
            ErrorKind::TooMany {
                max: MAX_SETS,
                got: sets.len(),
            },
        );
    }
    for (s, set) in sets.iter().enumerate() {
        let path = format!("/firewall/sets/{s}");
        if c.sets.insert(&set.name, set).is_some() {
            c.err(
                format!("{path}/name"),
                ErrorKind::DuplicateSet(set.name.clone()),
            );
        }
        if set.entries.len() > MAX_SET_ENTRIES {
            c.err(
                format!("{path}/entries"),
                ErrorKind::TooMany {
                    max: MAX_SET_ENTRIES,
                    got: set.entries.len(),
                },
            );
            continue;
        }
        let mut right_family = Vec::with_capacity(set.entries.len());
        for (e, entry) in set.entries.iter().enumerate() {
            if Family::of_net(entry.net()) == set.family {
                right_family.push((entry.net(), e));
            } else {
                let want = match set.family {
                    Family::Ipv4 => "IPv4",
                    Family::Ipv6 => "IPv6",
                };
                c.err(
                    format!("{path}/entries/{e}"),
                    ErrorKind::SetEntryFamily(want),
                );
            }
        }
        // Aligned prefixes overlap only by containment: sorted by network then length, an
        // entry overlaps an earlier one exactly when it starts before the furthest end so far.
        right_family.sort();
        let mut reach: Option<(IpAddr, usize)> = None;
        for (net, e) in right_family {
            if let Some((end, first)) = reach
                && net.network() <= end
            {
                c.err(
                    format!("{path}/entries/{e}"),
                    ErrorKind::OverlappingSetEntries(format!("{path}/entries/{first}")),
                );
                continue;
            }
            reach = Some((net.broadcast(), e));
        }
    }
}

fn policies(c: &mut Check<'_>) {
    let mut seen: BTreeMap<(&ZoneName, &ZoneName), usize> = BTreeMap::new();
    for (p, policy) in c.cfg.firewall.policies.iter().enumerate() {
        let path = format!("/firewall/policies/{p}");
        c.zone(format!("{path}/from"), &policy.from, false);
        c.zone(format!("{path}/to"), &policy.to, true);
        if let Some(first) = seen.get(&(&policy.from, &policy.to)) {
            c.err(
                path,
                ErrorKind::DuplicatePolicy(format!("/firewall/policies/{first}")),
            );
        } else {
            seen.insert((&policy.from, &policy.to), p);
        }
    }
}

/// The family an address match implies, reporting its own problems.
fn match_family(c: &mut Check<'_>, path: String, m: &AddressMatch) -> Option<Family> {
    match m {
        AddressMatch::Prefixes(list) => {
            let families: BTreeSet<Family> = list.iter().map(|p| Family::of_net(p.net())).collect();
            if list.is_empty() {
                c.err(format!("{path}/prefixes"), ErrorKind::EmptyPrefixList);
            }
            if families.len() > 1 {
                c.err(format!("{path}/prefixes"), ErrorKind::MixedFamilies);
                return None;
            }
            families.into_iter().next()
        }
        AddressMatch::Set(name) => match c.sets.get(name) {
            Some(set) => Some(set.family),
            None => {
                c.err(format!("{path}/set"), ErrorKind::UnknownSet(name.clone()));
                None
            }
        },
    }
}

/// The one family a rule is about, if it is restricted to one.
pub(crate) fn rule_family(rule: &Rule, sets: &[AddressSet]) -> Option<Family> {
    let of_match = |m: &Option<AddressMatch>| match m {
        Some(AddressMatch::Prefixes(l)) => l.first().map(|p| Family::of_net(p.net())),
        Some(AddressMatch::Set(n)) => sets.iter().find(|s| &s.name == n).map(|s| s.family),
        None => None,
    };
    let of_proto = match rule.proto {
        Some(Proto::Icmp) => Some(Family::Ipv4),
        Some(Proto::Icmpv6) => Some(Family::Ipv6),
        _ => None,
    };
    rule.family
        .or(of_proto)
        .or_else(|| of_match(&rule.source))
        .or_else(|| of_match(&rule.destination))
}

fn rules(c: &mut Check<'_>) {
    let rules = &c.cfg.firewall.rules;
    if rules.len() > MAX_RULES {
        c.err(
            "/firewall/rules",
            ErrorKind::TooMany {
                max: MAX_RULES,
                got: rules.len(),
            },
        );
    }
    for (r, rule) in rules.iter().enumerate() {
        let path = format!("/firewall/rules/{r}");
        c.zone(format!("{path}/from"), &rule.from, false);
        c.zone(format!("{path}/to"), &rule.to, true);
        if !rule.ports.is_empty() && !matches!(rule.proto, Some(Proto::Tcp | Proto::Udp)) {
            c.err(format!("{path}/ports"), ErrorKind::PortsWithoutTcpUdp);
        }
        if let Some(log) = rule.log {
            c.range(
                format!("{path}/log/per_minute"),
                log.per_minute.into(),
                1,
                6000,
            );
        }
        // Every part that implies a family must imply the same one.
        let mut parts: Vec<(String, Family, FamilyPart)> = Vec::new();
        if let Some(f) = rule.family {
            parts.push((format!("{path}/family"), f, FamilyPart::RuleFamily));
        }
        match rule.proto {
            Some(Proto::Icmp) => {
                parts.push((format!("{path}/proto"), Family::Ipv4, FamilyPart::Icmp));
            }
            Some(Proto::Icmpv6) => {
                parts.push((format!("{path}/proto"), Family::Ipv6, FamilyPart::Icmpv6));
            }
            _ => {}
        }
        for (field, m) in [("source", &rule.source), ("destination", &rule.destination)] {
            if let Some(m) = m
                && let Some(f) = match_family(c, format!("{path}/{field}"), m)
            {
                let (what, part) = match m {
                    AddressMatch::Set(_) => ("set", FamilyPart::Set),
                    AddressMatch::Prefixes(_) => ("prefixes", FamilyPart::Prefixes),
                };
                parts.push((format!("{path}/{field}/{what}"), f, part));
            }
        }
        if let Some((_, first, first_what)) = parts.first().cloned() {
            for (p, f, what) in &parts[1..] {
                if *f != first {
                    c.err(
                        p.clone(),
                        ErrorKind::FamilyMismatch {
                            part: *what,
                            family: *f,
                            other: first_what,
                            other_family: first,
                        },
                    );
                }
            }
        }
    }
}

fn nat(c: &mut Check<'_>) {
    for (m, masq) in c.cfg.nat.masquerade.iter().enumerate() {
        c.zone(
            format!("/nat/masquerade/{m}/out_zone"),
            &masq.out_zone,
            false,
        );
    }
    for (f, fwd) in c.cfg.nat.port_forwards.iter().enumerate() {
        let path = format!("/nat/port_forwards/{f}");
        c.zone(format!("{path}/from_zone"), &fwd.from_zone, false);
        if fwd.internal_port == Some(0) {
            c.err(
                format!("{path}/internal_port"),
                ErrorKind::OutOfRange { min: 1, max: 65535 },
            );
        }
        let target = fwd.internal_address;
        if c.cfg.addresses().any(|(_, _, _, net)| net.addr() == target) {
            c.err(
                format!("{path}/internal_address"),
                ErrorKind::ForwardToDevice,
            );
        } else if !c
            .cfg
            .addresses()
            .any(|(_, _, role, net)| role == Role::Lan && net.trunc().contains(&target))
        {
            c.err(
                format!("{path}/internal_address"),
                ErrorKind::ForwardToNowhere,
            );
        }
        if let Some(src) = fwd.source
            && Family::of_net(src.net()) != Family::of(target)
        {
            c.err(
                format!("{path}/source"),
                ErrorKind::FamilyMismatch {
                    part: FamilyPart::Source,
                    family: Family::of_net(src.net()),
                    other: FamilyPart::InternalAddress,
                    other_family: Family::of(target),
                },
            );
        }
    }
}

fn management(c: &mut Check<'_>) {
    let m = &c.cfg.management;
    if m.port == 0 {
        c.err("/management/port", ErrorKind::ManagementPortZero);
    }
    for (z, zone) in m.zones.iter().enumerate() {
        c.zone(format!("/management/zones/{z}"), zone, false);
    }
}

fn protection(c: &mut Check<'_>) {
    let p = &c.cfg.protection;
    if let Some(s) = p.syn_limit {
        c.range(
            "/protection/syn_limit/per_second".into(),
            s.per_second.into(),
            1,
            10_000,
        );
        c.range(
            "/protection/syn_limit/burst".into(),
            s.burst.into(),
            1,
            100_000,
        );
    }
    if let Some(d) = p.drop_log {
        // The daemon's drop summary binds its group before it drops its privileges, so it
        // cannot follow a change: every configuration logs to the one group it listens on.
        c.range(
            "/protection/drop_log/group".into(),
            d.group.into(),
            DROP_LOG_GROUP.into(),
            DROP_LOG_GROUP.into(),
        );
        c.range(
            "/protection/drop_log/per_second".into(),
            d.per_second.into(),
            1,
            1000,
        );
    }
}
