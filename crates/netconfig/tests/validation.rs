//! The checks across fields: each rule, broken on purpose, gives exactly its error at its path;
//! hostile text never reaches the ruleset as syntax; the anti-lockout check; diffs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{factory, from_json};
use mamori_netconfig::{
    Action, AddressMatch, AddressSet, ErrorKind, Family, ManagementCut, ManagementSession,
    NetworkConfig, PortForward, PortProto, PortRange, Prefix, Proto, Route, Rule, SetName,
    ValidationError, ZoneName, check_keeps_management, diff, render,
};

fn zone(name: &str) -> ZoneName {
    ZoneName::parse(name).unwrap()
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

/// The configuration's errors as (path, kind).
fn errors(cfg: &NetworkConfig) -> Vec<(String, ErrorKind)> {
    match cfg.validate() {
        Ok(()) => Vec::new(),
        Err(e) => {
            e.0.into_iter()
                .map(|ValidationError { path, kind }| (path, kind))
                .collect()
        }
    }
}

fn one_error(cfg: &NetworkConfig, path: &str, kind: ErrorKind) {
    assert_eq!(errors(cfg), vec![(path.to_owned(), kind)]);
}

fn set(name: &str, family: Family, entries: &[&str]) -> AddressSet {
    AddressSet {
        name: SetName::parse(name).unwrap(),
        family,
        entries: entries.iter().map(|e| prefix(e)).collect(),
    }
}

fn forward(to: &str) -> PortForward {
    PortForward {
        from_zone: zone("wan"),
        proto: PortProto::Tcp,
        external_ports: PortRange::single(8080).unwrap(),
        internal_address: to.parse().unwrap(),
        internal_port: Some(80),
        source: None,
        comment: None,
    }
}

#[test]
fn the_factory_configuration_is_valid_and_renders() {
    let cfg = factory();
    cfg.validate().unwrap();
    render(&cfg).unwrap();
    assert_eq!(cfg.management.port, 443);
    assert_eq!(cfg.management.zones, vec![zone("lan"), zone("mgmt")]);
    assert!(
        cfg.firewall.rules.is_empty(),
        "the defaults open no service"
    );
    assert!(cfg.protection.anti_spoofing);
    assert!(cfg.protection.syn_limit.is_some());
    assert!(cfg.protection.drop_log.is_some());
}

#[test]
fn json_round_trips_and_unknown_fields_are_refused() {
    let cfg = factory();
    let text = cfg.to_canonical_json();
    assert_eq!(from_json(&text), cfg);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["firewall"]["zones"][0]["colour"] = "red".into();
    assert!(serde_json::from_value::<NetworkConfig>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["extra"] = 1.into();
    assert!(serde_json::from_value::<NetworkConfig>(v).is_err());
    // Omitted protections mean "on".
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("protection");
    assert_eq!(serde_json::from_value::<NetworkConfig>(v).unwrap(), cfg);
}

#[test]
fn the_json_schema_describes_the_model() {
    let schema = serde_json::to_value(schemars::schema_for!(NetworkConfig)).unwrap();
    let text = schema.to_string();
    for word in [
        "interfaces",
        "port_forwards",
        "management",
        "IfName",
        "Prefix",
        "PortRange",
    ] {
        assert!(text.contains(word), "{word} missing from {text}");
    }
    assert_eq!(schema["additionalProperties"], false, "{text}");
}

#[test]
fn overlapping_subnets_on_different_interfaces_are_refused() {
    let mut cfg = factory();
    cfg.interfaces[2]
        .addresses
        .push("192.168.1.128/25".parse().unwrap());
    one_error(
        &cfg,
        "/interfaces/2/addresses/1",
        ErrorKind::OverlappingSubnets("/interfaces/1/addresses/0".into()),
    );
    // Two subnets on one interface may overlap (secondary addresses); link-local is exempt.
    let mut cfg = factory();
    cfg.interfaces[1]
        .addresses
        .push("192.168.1.2/24".parse().unwrap());
    cfg.interfaces[1]
        .addresses
        .push("fe80::1/64".parse().unwrap());
    cfg.interfaces[2]
        .addresses
        .push("fe80::1:1/64".parse().unwrap());
    assert_eq!(errors(&cfg), vec![]);
}

#[test]
fn a_route_through_a_gateway_on_no_connected_subnet_is_refused() {
    let mut cfg = factory();
    cfg.routes.push(Route {
        destination: prefix("10.20.0.0/16"),
        gateway: "192.168.1.254".parse().unwrap(),
        metric: None,
    });
    assert_eq!(errors(&cfg), vec![]);
    cfg.routes.push(Route {
        destination: prefix("10.30.0.0/16"),
        gateway: "172.16.0.1".parse().unwrap(),
        metric: None,
    });
    one_error(&cfg, "/routes/1/gateway", ErrorKind::GatewayNotConnected);
    cfg.routes[1].gateway = "2001:db8:1::1".parse().unwrap();
    one_error(&cfg, "/routes/1/gateway", ErrorKind::RouteFamilyMismatch);
    cfg.routes[1].gateway = "192.168.1.1".parse().unwrap();
    one_error(&cfg, "/routes/1/gateway", ErrorKind::GatewayIsOwnAddress);
}

#[test]
fn a_port_forward_to_nowhere_is_refused() {
    let mut cfg = factory();
    cfg.nat.port_forwards.push(forward("192.168.1.10"));
    assert_eq!(errors(&cfg), vec![]);
    cfg.nat.port_forwards.push(forward("10.99.0.10")); // the mgmt subnet is no lan
    cfg.nat.port_forwards.push(forward("172.16.0.10"));
    cfg.nat.port_forwards.push(forward("192.168.1.1"));
    assert_eq!(
        errors(&cfg),
        vec![
            (
                "/nat/port_forwards/1/internal_address".into(),
                ErrorKind::ForwardToNowhere
            ),
            (
                "/nat/port_forwards/2/internal_address".into(),
                ErrorKind::ForwardToNowhere
            ),
            (
                "/nat/port_forwards/3/internal_address".into(),
                ErrorKind::ForwardToDevice
            ),
        ]
    );
    let mut cfg = factory();
    let mut fwd = forward("fd00:1::10");
    fwd.source = Some(prefix("198.51.100.0/24"));
    cfg.nat.port_forwards.push(fwd);
    let found = errors(&cfg);
    assert!(matches!(
        &found[..],
        [(p, ErrorKind::FamilyMismatch { .. })] if p == "/nat/port_forwards/0/source"
    ));
    assert_eq!(
        found[0].1.to_string(),
        "family mismatch: source is ipv4 but internal_address is ipv6"
    );
}

#[test]
fn zones_name_only_known_interfaces_and_each_interface_once() {
    let mut cfg = factory();
    cfg.firewall.zones[1]
        .interfaces
        .push(mamori_netconfig::IfName::parse("eth9").unwrap());
    one_error(
        &cfg,
        "/firewall/zones/1/interfaces/1",
        ErrorKind::UnknownInterface(mamori_netconfig::IfName::parse("eth9").unwrap()),
    );
    let mut cfg = factory();
    let eth0 = cfg.interfaces[0].name.clone();
    cfg.firewall.zones[2].interfaces.push(eth0.clone());
    one_error(
        &cfg,
        "/firewall/zones/2/interfaces/1",
        ErrorKind::InterfaceInTwoZones {
            interface: eth0,
            other: "/firewall/zones/0".into(),
        },
    );
    let mut cfg = factory();
    cfg.firewall.zones[2].name = ZoneName::device();
    let errs = errors(&cfg);
    assert_eq!(
        errs[0],
        ("/firewall/zones/2/name".into(), ErrorKind::ReservedZone)
    );
}

#[test]
fn rules_must_name_known_zones_and_sets() {
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), zone("dmz"), Action::Accept);
    rule.source = Some(AddressMatch::Set(SetName::parse("nope").unwrap()));
    cfg.firewall.rules.push(rule);
    assert_eq!(
        errors(&cfg),
        vec![
            (
                "/firewall/rules/0/to".into(),
                ErrorKind::UnknownZone(zone("dmz"))
            ),
            (
                "/firewall/rules/0/source/set".into(),
                ErrorKind::UnknownSet(SetName::parse("nope").unwrap())
            ),
        ]
    );
    let mut cfg = factory();
    cfg.firewall
        .rules
        .push(Rule::new(ZoneName::device(), zone("lan"), Action::Accept));
    one_error(&cfg, "/firewall/rules/0/from", ErrorKind::ReservedZone);
    let mut cfg = factory();
    cfg.management.zones.push(zone("guest"));
    one_error(
        &cfg,
        "/management/zones/2",
        ErrorKind::UnknownZone(zone("guest")),
    );
}

#[test]
fn family_mismatches_are_refused() {
    let mut cfg = factory();
    cfg.firewall
        .sets
        .push(set("bad4", Family::Ipv4, &["198.51.100.0/24"]));
    let mut rule = Rule::new(zone("wan"), ZoneName::device(), Action::Drop);
    rule.family = Some(Family::Ipv6);
    rule.source = Some(AddressMatch::Set(SetName::parse("bad4").unwrap()));
    cfg.firewall.rules.push(rule);
    let found = errors(&cfg);
    assert!(matches!(
        &found[..],
        [(p, ErrorKind::FamilyMismatch { .. })] if p == "/firewall/rules/0/source/set"
    ));
    // The API's words for it (the kind is typed; its message is unchanged).
    assert_eq!(
        found[0].1.to_string(),
        "family mismatch: set is ipv4 but the rule's family is ipv6"
    );
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), zone("wan"), Action::Accept);
    rule.proto = Some(Proto::Icmp);
    rule.destination = Some(AddressMatch::Prefixes(vec![prefix("2001:db8::/32")]));
    cfg.firewall.rules.push(rule);
    assert!(matches!(
        &errors(&cfg)[..],
        [(p, ErrorKind::FamilyMismatch { .. })] if p == "/firewall/rules/0/destination/prefixes"
    ));
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), zone("wan"), Action::Accept);
    rule.source = Some(AddressMatch::Prefixes(vec![
        prefix("10.0.0.0/8"),
        prefix("fd00::/8"),
    ]));
    cfg.firewall.rules.push(rule);
    one_error(
        &cfg,
        "/firewall/rules/0/source/prefixes",
        ErrorKind::MixedFamilies,
    );
    let mut cfg = factory();
    cfg.firewall
        .sets
        .push(set("v6", Family::Ipv6, &["fd00::/8", "10.0.0.0/8"]));
    one_error(
        &cfg,
        "/firewall/sets/0/entries/1",
        ErrorKind::SetEntryFamily("IPv6"),
    );
}

#[test]
fn ports_need_tcp_or_udp() {
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Accept);
    rule.ports = vec![PortRange::single(22).unwrap()];
    cfg.firewall.rules.push(rule);
    one_error(
        &cfg,
        "/firewall/rules/0/ports",
        ErrorKind::PortsWithoutTcpUdp,
    );
}

#[test]
fn sets_hold_at_most_50000_entries_that_do_not_overlap() {
    let mut cfg = factory();
    cfg.firewall.sets.push(set(
        "s",
        Family::Ipv4,
        &["10.0.0.0/8", "192.0.2.0/24", "10.1.0.0/16"],
    ));
    one_error(
        &cfg,
        "/firewall/sets/0/entries/2",
        ErrorKind::OverlappingSetEntries("/firewall/sets/0/entries/0".into()),
    );
    let mut cfg = factory();
    let big: Vec<Prefix> = (0..50_001u32)
        .map(|i| {
            Prefix::new(ipnet::IpNet::V4(
                ipnet::Ipv4Net::new((0x0a00_0000 + (i << 8)).into(), 24).unwrap(),
            ))
            .unwrap()
        })
        .collect();
    cfg.firewall.sets.push(AddressSet {
        name: SetName::parse("big").unwrap(),
        family: Family::Ipv4,
        entries: big.clone(),
    });
    one_error(
        &cfg,
        "/firewall/sets/0/entries",
        ErrorKind::TooMany {
            max: 50_000,
            got: 50_001,
        },
    );
    cfg.firewall.sets[0].entries.pop();
    assert_eq!(errors(&cfg), vec![]);
}

#[test]
fn duplicates_are_refused() {
    let mut cfg = factory();
    cfg.interfaces.push(cfg.interfaces[2].clone());
    cfg.interfaces[3].addresses.clear();
    let errs = errors(&cfg);
    assert_eq!(errs[0].0, "/interfaces/3/name");
    let mut cfg = factory();
    cfg.firewall.policies.push(cfg.firewall.policies[0].clone());
    one_error(
        &cfg,
        "/firewall/policies/1",
        ErrorKind::DuplicatePolicy("/firewall/policies/0".into()),
    );
    let mut cfg = factory();
    cfg.interfaces[1].dhcp = true;
    one_error(&cfg, "/interfaces/1/dhcp", ErrorKind::DhcpNotOnWan);
}

/// Puts a text into one field of a configuration's JSON.
type Setter = dyn Fn(&mut serde_json::Value, &str);

/// Every free-text or name field, given quotes, `;`, newlines, `}` or unicode, is refused at
/// parsing, or (comments) accepted and rendered inert.
#[test]
fn hostile_strings_are_refused_or_rendered_inert() {
    let hostile = [
        "a\"b",
        "a;b",
        "a\nb",
        "a}b",
        "a{b",
        "a b",
        "守り",
        "a\u{202e}b",
        "a#b",
        "a\\b",
        "$(reboot)",
        "",
    ];
    let base = factory().to_canonical_json();
    let fields: &[(&str, &Setter)] = &[
        ("interface name", &|v, s| {
            v["interfaces"][0]["name"] = s.into()
        }),
        ("zone name", &|v, s| {
            v["firewall"]["zones"][0]["name"] = s.into()
        }),
        ("zone member", &|v, s| {
            v["firewall"]["zones"][0]["interfaces"][0] = s.into()
        }),
        ("management zone", &|v, s| {
            v["management"]["zones"][0] = s.into()
        }),
        ("policy zone", &|v, s| {
            v["firewall"]["policies"][0]["from"] = s.into()
        }),
        (
            "set name",
            &|v, s| {
                v["firewall"]["sets"] =
                    serde_json::json!([{"name": s, "family": "ipv4", "entries": []}])
            },
        ),
        ("address", &|v, s| {
            v["interfaces"][0]["addresses"][0] = s.into()
        }),
        ("prefix", &|v, s| v["management"]["sources"][0] = s.into()),
        ("port range", &|v, s| {
            v["nat"]["port_forwards"] = serde_json::json!([{"from_zone": "wan", "proto": "tcp",
                "external_ports": s, "internal_address": "192.168.1.10"}])
        }),
        ("role", &|v, s| v["interfaces"][0]["role"] = s.into()),
    ];
    for (field, set) in fields {
        for text in hostile {
            let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
            set(&mut v, text);
            assert!(
                serde_json::from_value::<NetworkConfig>(v).is_err(),
                "{field} accepted {text:?}"
            );
        }
    }
    // Comments: printable text is kept but rendered through a safe ASCII subset; control
    // characters are refused.
    for text in hostile {
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        v["firewall"]["rules"] = serde_json::json!([{"from": "lan", "to": "self",
            "proto": "tcp", "ports": [22], "action": "accept", "comment": text}]);
        v["nat"]["port_forwards"] = serde_json::json!([{"from_zone": "wan", "proto": "tcp",
            "external_ports": 8080, "internal_address": "192.168.1.10", "comment": text}]);
        match serde_json::from_value::<NetworkConfig>(v) {
            Err(_) => assert!(text.contains('\n'), "{text:?} refused"),
            Ok(cfg) => {
                let out = render(&cfg).unwrap();
                for line in out
                    .as_str()
                    .lines()
                    .filter(|l| l.contains("comment \"r0") || l.contains("comment \"pf0"))
                {
                    let comment = line.split("comment \"").nth(1).unwrap();
                    let body = comment.strip_suffix('"').unwrap();
                    assert!(
                        body.chars()
                            .all(|c| c.is_ascii_alphanumeric() || " -_.,:/+=@()".contains(c)),
                        "{text:?} rendered as {line}"
                    );
                }
            }
        }
    }
}

fn session(source: &str, listener: &str) -> ManagementSession {
    ManagementSession {
        source: source.parse::<IpAddr>().unwrap(),
        listener: listener.parse::<SocketAddr>().unwrap(),
    }
}

#[test]
fn management_from_lan_and_mgmt_is_kept_and_wan_is_not_allowed() {
    let cfg = factory();
    let lan = session("192.168.1.50", "192.168.1.1:443");
    check_keeps_management(&cfg, &lan).unwrap();
    check_keeps_management(&cfg, &session("10.99.0.7", "10.99.0.1:443")).unwrap();
    check_keeps_management(&cfg, &session("fd00:1::9", "[fd00:1::1]:443")).unwrap();
    check_keeps_management(&cfg, &session("::ffff:192.168.1.50", "[::]:443")).unwrap();
    assert_eq!(
        check_keeps_management(&cfg, &session("198.51.100.7", "203.0.113.2:443")),
        Err(ManagementCut::ZoneNotAllowed(zone("wan")))
    );
}

/// A candidate that would lock the administrator out is refused, with the value responsible.
#[test]
fn a_candidate_that_would_cut_the_management_session_is_refused() {
    let s = session("192.168.1.50", "192.168.1.1:443");
    // A drop rule from lan to the device.
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Drop);
    rule.proto = Some(Proto::Tcp);
    cfg.firewall.rules.push(rule);
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::RuleDrops("/firewall/rules/0".into()))
    );
    // ... but an accept for the admin's host placed before it keeps the session.
    let mut accept = Rule::new(zone("lan"), ZoneName::device(), Action::Accept);
    accept.source = Some(AddressMatch::Prefixes(vec![prefix("192.168.1.50/32")]));
    cfg.firewall.rules.insert(0, accept);
    check_keeps_management(&cfg, &s).unwrap();
    // A drop of another port or another source does not cut it.
    let mut cfg = factory();
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Reject);
    rule.proto = Some(Proto::Tcp);
    rule.ports = vec![PortRange::single(22).unwrap()];
    cfg.firewall.rules.push(rule);
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Drop);
    rule.source = Some(AddressMatch::Prefixes(vec![prefix("192.168.1.128/25")]));
    cfg.firewall.rules.push(rule);
    check_keeps_management(&cfg, &s).unwrap();
    // A blocklist set holding the admin's address.
    let mut cfg = factory();
    cfg.firewall
        .sets
        .push(set("block", Family::Ipv4, &["192.168.1.0/26"]));
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Drop);
    rule.source = Some(AddressMatch::Set(SetName::parse("block").unwrap()));
    cfg.firewall.rules.push(rule);
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::RuleDrops("/firewall/rules/0".into()))
    );
    // The management list itself.
    let mut cfg = factory();
    cfg.management.zones.retain(|z| z.as_str() != "lan");
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::ZoneNotAllowed(zone("lan")))
    );
    let mut cfg = factory();
    cfg.management.sources = vec![prefix("10.99.0.0/24")];
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::SourceNotAllowed)
    );
    let mut cfg = factory();
    cfg.management.port = 8443;
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::PortChanged)
    );
    // The interface leaves its zone, or the listener's address goes away.
    let mut cfg = factory();
    cfg.firewall.zones[1].interfaces.clear();
    assert!(matches!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::InterfaceInNoZone(_))
    ));
    let mut cfg = factory();
    cfg.interfaces[0].dhcp = false;
    cfg.interfaces[1].addresses = vec!["192.168.2.1/24".parse().unwrap()];
    assert_eq!(
        check_keeps_management(&cfg, &s),
        Err(ManagementCut::ListenerAddressRemoved)
    );
    // A source behind a static route arrives on the gateway's interface.
    let mut cfg = factory();
    cfg.routes.push(Route {
        destination: prefix("172.20.0.0/16"),
        gateway: "10.99.0.254".parse().unwrap(),
        metric: None,
    });
    check_keeps_management(&cfg, &session("172.20.3.4", "10.99.0.1:443")).unwrap();
    cfg.management.zones.retain(|z| z.as_str() != "mgmt");
    assert_eq!(
        check_keeps_management(&cfg, &session("172.20.3.4", "10.99.0.1:443")),
        Err(ManagementCut::ZoneNotAllowed(zone("mgmt")))
    );
}

#[test]
fn diffs_show_the_changed_lines_only_and_are_empty_for_equal_configs() {
    let old = factory();
    assert_eq!(diff(&old, &old, "r1", "r2"), "");
    let mut new = old.clone();
    new.management.port = 8443;
    let mut rule = Rule::new(zone("lan"), ZoneName::device(), Action::Accept);
    rule.proto = Some(Proto::Tcp);
    rule.ports = vec![PortRange::single(22).unwrap()];
    new.firewall.rules.push(rule);
    let d = diff(&old, &new, "r1", "r2");
    assert!(d.starts_with("--- r1\n+++ r2\n"), "{d}");
    assert!(d.contains("-    \"port\": 443,"), "{d}");
    assert!(d.contains("+    \"port\": 8443,"), "{d}");
    assert!(d.contains("+        \"ports\": ["), "{d}");
    assert_eq!(d, diff(&old, &new, "r1", "r2"), "deterministic");
    let removed = d
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .count();
    assert!(removed <= 3, "only the changed lines: {d}");
}

#[test]
fn the_drop_log_stays_on_the_group_the_daemon_listens_on() {
    let mut cfg = factory();
    cfg.validate().unwrap();
    if let Some(d) = cfg.protection.drop_log.as_mut() {
        d.group = 7;
    }
    one_error(
        &cfg,
        "/protection/drop_log/group",
        ErrorKind::OutOfRange { min: 1, max: 1 },
    );
}
