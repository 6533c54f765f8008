//! "Would this candidate cut me off?": the check run before a change from a management session
//! is applied.
//!
//! The check follows a new connection from the session's source to the listener through the
//! candidate the way the rendered ruleset would: which interface it arrives on (connected
//! subnets, then static routes, then a DHCP uplink as the default route), that interface's
//! zone, the management-access list (zones, sources, port), and then the rules to `self` in
//! order, up to the management accept. Connections already established survive any load
//! (`ct state established accept` comes first), so the question is whether the administrator
//! could connect again, which every browser and CLI request needs.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::model::{AddressMatch, Family, NetworkConfig, Proto, Rule};
use crate::names::{IfName, ZoneName};
use crate::validate::rule_family;

/// The management session a change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagementSession {
    /// The administrator's address, as the listener saw it.
    pub source: IpAddr,
    /// The listener's address and port the session is connected to.
    pub listener: SocketAddr,
}

/// Why the candidate would cut the session. Each names the configuration value responsible.
///
/// Not `#[non_exhaustive]`: the web UI explains every cut in Japanese with an exhaustive
/// match, so a new one does not compile until it is translated (S3.1-43).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementCut {
    /// The listener's address is no longer on any interface.
    #[error("the listener's address is on no interface (/interfaces)")]
    ListenerAddressRemoved,
    /// The management port differs from the listener's.
    #[error("the management port would no longer be the listener's port (/management/port)")]
    PortChanged,
    /// No interface leads back to the source (no connected subnet, route or DHCP uplink).
    #[error("no interface leads back to the session's source (/interfaces, /routes)")]
    NoRouteBack,
    /// The interface the session arrives on is in no zone.
    #[error("interface {0} would be in no zone (/firewall/zones)")]
    InterfaceInNoZone(IfName),
    /// The session's zone may not reach the management listener.
    #[error("zone {0} would not be allowed to reach management (/management/zones)")]
    ZoneNotAllowed(ZoneName),
    /// The session's source is outside the management sources.
    #[error("the session's source would be outside /management/sources")]
    SourceNotAllowed,
    /// A rule to `self` drops or rejects the session's connections.
    #[error("the rule at {0} would drop the session's connections")]
    RuleDrops(String),
}

/// Refuses a candidate under which `session`'s source could no longer open a connection to its
/// listener.
pub fn check_keeps_management(
    cfg: &NetworkConfig,
    session: &ManagementSession,
) -> Result<(), ManagementCut> {
    let m = &cfg.management;
    let listener_ip = session.listener.ip();
    let source = canonical(session.source);
    if m.port != session.listener.port() {
        return Err(ManagementCut::PortChanged);
    }
    let has_dhcp = cfg.interfaces.iter().any(|i| i.dhcp);
    if !listener_ip.is_unspecified()
        && !has_dhcp
        && !cfg
            .addresses()
            .any(|(_, _, _, net)| net.addr() == canonical(listener_ip))
    {
        return Err(ManagementCut::ListenerAddressRemoved);
    }
    let ingress = ingress_interface(cfg, source).ok_or(ManagementCut::NoRouteBack)?;
    let zone = cfg
        .zone_of(ingress)
        .ok_or_else(|| ManagementCut::InterfaceInNoZone(ingress.clone()))?;
    if !m.zones.contains(&zone.name) {
        return Err(ManagementCut::ZoneNotAllowed(zone.name.clone()));
    }
    if !m.sources.iter().any(|p| p.net().contains(&source)) {
        return Err(ManagementCut::SourceNotAllowed);
    }
    for (r, rule) in cfg.firewall.rules.iter().enumerate() {
        if rule.to.is_device()
            && rule.from == zone.name
            && matches(
                cfg,
                rule,
                source,
                canonical(listener_ip),
                session.listener.port(),
            )
        {
            return match rule.action {
                crate::model::Action::Accept => Ok(()),
                _ => Err(ManagementCut::RuleDrops(format!("/firewall/rules/{r}"))),
            };
        }
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (a dual-stack listener reports IPv4
/// clients that way).
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The interface a packet from `source` arrives on: the longest connected subnet holding it,
/// else the longest static route to it (through its gateway's interface), else a DHCP uplink.
fn ingress_interface(cfg: &NetworkConfig, source: IpAddr) -> Option<&IfName> {
    let connected = |addr: IpAddr| {
        cfg.addresses()
            .filter(|(_, _, _, net)| net.trunc().contains(&addr))
            .max_by_key(|(_, _, _, net)| net.prefix_len())
            .map(|(_, name, _, _)| name)
    };
    if let Some(name) = connected(source) {
        return Some(name);
    }
    let route = cfg
        .routes
        .iter()
        .filter(|r| r.destination.net().contains(&source))
        .max_by_key(|r| r.destination.net().prefix_len());
    if let Some(route) = route {
        return connected(route.gateway);
    }
    cfg.interfaces
        .iter()
        .find(|i| i.dhcp && Family::of(source) == Family::Ipv4)
        .map(|i| &i.name)
}

/// Whether `rule` matches a new TCP connection from `source` to `dest:port`. An unspecified
/// `dest` (a listener on every address) matches any destination, so a drop rule aimed at one of
/// the device's addresses counts as cutting.
fn matches(cfg: &NetworkConfig, rule: &Rule, source: IpAddr, dest: IpAddr, port: u16) -> bool {
    if rule_family(rule, &cfg.firewall.sets).is_some_and(|f| f != Family::of(source)) {
        return false;
    }
    if rule.proto.is_some_and(|p| p != Proto::Tcp) {
        return false;
    }
    if !rule.ports.is_empty() && !rule.ports.iter().any(|p| p.contains(port)) {
        return false;
    }
    let contains = |m: &Option<AddressMatch>, addr: IpAddr, any: bool| match m {
        None => true,
        Some(_) if any => true,
        Some(AddressMatch::Prefixes(list)) => list.iter().any(|p| p.net().contains(&addr)),
        Some(AddressMatch::Set(name)) => cfg
            .firewall
            .sets
            .iter()
            .filter(|s| &s.name == name)
            .flat_map(|s| &s.entries)
            .any(|p| IpNet::from(*p).contains(&addr)),
    };
    contains(&rule.source, source, false)
        && contains(&rule.destination, dest, dest.is_unspecified())
}
