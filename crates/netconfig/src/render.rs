//! The nftables script for a configuration: one file, loaded with `nft -f` as one transaction.
//!
//! # Layout
//!
//! mamori owns exactly two tables and never touches any other (a collector's, a container
//! runtime's): `table inet mamori` (filtering) and `table inet mamori_nat` (NAT). Each is
//! written as
//!
//! ```text
//! table inet mamori
//! delete table inet mamori
//! table inet mamori { ... }
//! ```
//!
//! The first line creates the table if it is missing, so the `delete` never fails; the whole
//! file is one netlink batch, so the kernel switches from the old tables to the new ones at
//! once or, if anything in the file is refused, keeps the old ones untouched.
//!
//! `table inet mamori`, in the order a packet meets it:
//!
//! - `prerouting` (priority raw): loopback, DHCP replies on DHCP interfaces and neighbour
//!   discovery (hop limit 255), which cannot pass a reverse-path check before an address or
//!   route exists, are let through; then anti-spoofing `fib saddr . iif oif missing drop` (logged,
//!   rate-limited).
//! - `input` (policy drop): loopback; `ct state invalid drop`; established and related
//!   accepted; the ICMPv6 that IPv6 needs (neighbour discovery with hop limit 255, packet too
//!   big and the other errors, both rate-limited); DHCP replies on DHCP interfaces; the
//!   management port jumps to `mgmt_guard`, which drops anything outside the management zones
//!   and sources; the rules to `self` in order; the management accept; the policies to `self`;
//!   a rate-limited log of what falls through. Every accept of new traffic to the device jumps to
//!   `self_accept`: the per-source SYN limit (dynamic sets `syn_v4`/`syn_v6`), then accept — so
//!   only SYNs the device would accept take an entry in the limiter's sets.
//! - `forward` (policy drop): invalid dropped, established/related accepted, port-forwarded
//!   connections (`ct status dnat`) accepted, ICMPv6 errors; the rules between zones in order;
//!   the policies; a rate-limited log.
//!
//! Named sets are `u_NAME` (interval sets, entries sorted); mamori's own are `mgmt_src_v4`,
//! `mgmt_src_v6`, `syn_v4`, `syn_v6`. Every rule and port forward carries a comment `rN` or
//! `pfN` with its index, so an error or a counter maps back to the configuration.
//!
//! Interfaces are matched by name (`iifname`), so a ruleset loads before its interfaces exist
//! and keeps working when a cable is replugged or a USB adapter comes back with a new index.
//!
//! The output is deterministic: the same configuration gives the same bytes.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{Action, AddressMatch, Family, NetworkConfig, PortForward, Proto, Rule};
use crate::names::{IfName, ZoneName};
use crate::validate::{ValidationErrors, rule_family};

/// The filter table's name.
pub const FILTER_TABLE: &str = "mamori";
/// The NAT table's name.
pub const NAT_TABLE: &str = "mamori_nat";
/// The nflog group used for rule logs when drop logging is off.
const DEFAULT_LOG_GROUP: u16 = 1;

/// A rendered ruleset: the text given to `nft -f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset(String);

impl Ruleset {
    /// The script.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The script, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// A ruleset from text that did not come from [`render`] (a test corrupting a ruleset, a
    /// stored revision read back). Nothing is checked: `nft -c` is the check.
    pub fn dangerous_from_text(text: String) -> Self {
        Self(text)
    }
}

/// Validates `cfg` and renders it.
pub fn render(cfg: &NetworkConfig) -> Result<Ruleset, ValidationErrors> {
    cfg.validate()?;
    let mut out = String::with_capacity(4096);
    Renderer { cfg, out: &mut out }.all();
    Ok(Ruleset(out))
}

struct Renderer<'a> {
    cfg: &'a NetworkConfig,
    out: &'a mut String,
}

/// `"a", "b"` for nft's anonymous sets of names.
fn names(list: &[&IfName]) -> String {
    let quoted: Vec<String> = list.iter().map(|n| format!("\"{n}\"")).collect();
    if quoted.len() == 1 {
        quoted.join("")
    } else {
        format!("{{ {} }}", quoted.join(", "))
    }
}

fn family_word(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ip",
        Family::Ipv6 => "ip6",
    }
}

fn nfproto(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "meta nfproto ipv4",
        Family::Ipv6 => "meta nfproto ipv6",
    }
}

impl<'a> Renderer<'a> {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push('\t');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// The interfaces of a zone, in the order configured.
    fn zone_interfaces(&self, zone: &ZoneName) -> Vec<&'a IfName> {
        let cfg: &'a NetworkConfig = self.cfg;
        cfg.firewall
            .zones
            .iter()
            .filter(|z| &z.name == zone)
            .flat_map(|z| z.interfaces.iter())
            .collect()
    }

    /// The interfaces running a DHCP client.
    fn dhcp_interfaces(&self) -> Vec<&'a IfName> {
        let cfg: &'a NetworkConfig = self.cfg;
        cfg.interfaces
            .iter()
            .filter(|i| i.dhcp)
            .map(|i| &i.name)
            .collect()
    }

    fn log_group(&self) -> u16 {
        self.cfg
            .protection
            .drop_log
            .map_or(DEFAULT_LOG_GROUP, |d| d.group)
    }

    fn all(&mut self) {
        self.line(
            0,
            "# mamori ruleset: generated from the network configuration, do not edit",
        );
        self.line(0, &format!("table inet {FILTER_TABLE}"));
        self.line(0, &format!("delete table inet {FILTER_TABLE}"));
        self.line(0, &format!("table inet {FILTER_TABLE} {{"));
        self.sets();
        self.prerouting();
        self.input();
        self.mgmt_guard();
        self.self_accept();
        self.forward();
        self.line(0, "}");
        self.line(0, &format!("table inet {NAT_TABLE}"));
        self.line(0, &format!("delete table inet {NAT_TABLE}"));
        self.line(0, &format!("table inet {NAT_TABLE} {{"));
        self.nat();
        self.line(0, "}");
    }

    fn interval_set(&mut self, name: &str, family: Family, entries: &[ipnet::IpNet]) {
        let mut sorted = entries.to_vec();
        sorted.sort();
        sorted.dedup();
        self.line(1, &format!("set {name} {{"));
        let ty = match family {
            Family::Ipv4 => "ipv4_addr",
            Family::Ipv6 => "ipv6_addr",
        };
        self.line(2, &format!("type {ty}"));
        self.line(2, "flags interval");
        if !sorted.is_empty() {
            self.line(2, "elements = {");
            let last = sorted.len() - 1;
            for (i, net) in sorted.iter().enumerate() {
                let sep = if i == last { "" } else { "," };
                self.line(3, &format!("{net}{sep}"));
            }
            self.line(2, "}");
        }
        self.line(1, "}");
    }

    fn sets(&mut self) {
        let cfg = self.cfg;
        for family in [Family::Ipv4, Family::Ipv6] {
            let entries: Vec<ipnet::IpNet> = cfg
                .management
                .sources
                .iter()
                .map(|p| p.net())
                .filter(|n| Family::of_net(*n) == family)
                .collect();
            let name = match family {
                Family::Ipv4 => "mgmt_src_v4",
                Family::Ipv6 => "mgmt_src_v6",
            };
            self.interval_set(name, family, &entries);
        }
        for set in &cfg.firewall.sets {
            let entries: Vec<ipnet::IpNet> = set.entries.iter().map(|p| p.net()).collect();
            self.interval_set(&format!("u_{}", set.name), set.family, &entries);
        }
        if cfg.protection.syn_limit.is_some() {
            for (name, ty) in [("syn_v4", "ipv4_addr"), ("syn_v6", "ipv6_addr")] {
                self.line(1, &format!("set {name} {{"));
                self.line(2, &format!("type {ty}"));
                self.line(2, "flags dynamic,timeout");
                self.line(2, "size 65536");
                self.line(2, "timeout 60s");
                self.line(1, "}");
            }
        }
    }

    fn drop_log(&mut self, indent: usize, what: &str) {
        if let Some(log) = self.cfg.protection.drop_log {
            self.line(
                indent,
                &format!(
                    "limit rate {}/second burst {} packets log prefix \"mamori drop {what}: \" group {}",
                    log.per_second,
                    log.per_second.saturating_mul(2),
                    log.group
                ),
            );
        }
    }

    fn prerouting(&mut self) {
        self.line(1, "chain prerouting {");
        self.line(
            2,
            "type filter hook prerouting priority raw; policy accept;",
        );
        if self.cfg.protection.anti_spoofing {
            self.line(2, "iifname \"lo\" accept");
            let dhcp = self.dhcp_interfaces();
            if !dhcp.is_empty() {
                self.line(
                    2,
                    &format!(
                        "iifname {} udp sport 67 udp dport 68 accept comment \"dhcp replies before an address\"",
                        names(&dhcp)
                    ),
                );
            }
            self.line(
                2,
                "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept",
            );
            if let Some(log) = self.cfg.protection.drop_log {
                self.line(
                    2,
                    &format!(
                        "fib saddr . iif oif missing limit rate {}/second burst {} packets log prefix \"mamori drop spoofed: \" group {}",
                        log.per_second,
                        log.per_second.saturating_mul(2),
                        log.group
                    ),
                );
            }
            self.line(
                2,
                "fib saddr . iif oif missing counter drop comment \"anti-spoofing\"",
            );
        }
        self.line(1, "}");
    }

    fn input(&mut self) {
        let cfg = self.cfg;
        self.line(1, "chain input {");
        self.line(2, "type filter hook input priority filter; policy drop;");
        self.line(2, "iifname \"lo\" accept");
        self.line(2, "ct state invalid counter drop");
        self.line(2, "ct state established,related accept");
        self.line(
            2,
            "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 limit rate 500/second burst 1000 packets accept",
        );
        self.line(
            2,
            "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } limit rate 100/second burst 200 packets accept",
        );
        let dhcp = self.dhcp_interfaces();
        if !dhcp.is_empty() {
            self.line(
                2,
                &format!(
                    "iifname {} udp sport 67 udp dport 68 accept comment \"dhcp client\"",
                    names(&dhcp)
                ),
            );
        }
        let port = cfg.management.port;
        self.line(2, &format!("tcp dport {port} jump mgmt_guard"));
        for (r, rule) in cfg.firewall.rules.iter().enumerate() {
            if rule.to.is_device() {
                self.rule(r, rule);
            }
        }
        self.line(
            2,
            &format!(
                "tcp dport {port} {} comment \"management\"",
                self.accept_to_device()
            ),
        );
        self.policies(true);
        self.drop_log(2, "input");
        self.line(1, "}");
    }

    /// The verdict of a rule or policy to the device: an accept goes through `self_accept`
    /// (the SYN limit) when there is one.
    fn to_device(&self, action: Action) -> &'static str {
        match action {
            Action::Accept => self.accept_to_device(),
            other => verdict(other),
        }
    }

    fn accept_to_device(&self) -> &'static str {
        if self.cfg.protection.syn_limit.is_some() {
            "jump self_accept"
        } else {
            "accept"
        }
    }

    /// The per-source SYN limit, on the way to an accept to the device only: SYNs the firewall
    /// drops anyway (everything from wan) never take an entry in the limiter's set, so a flood
    /// from random sources cannot fill it and leave new sources unlimited (the set's `add`
    /// fails when full, and the rule then does not match).
    fn self_accept(&mut self) {
        let Some(syn) = self.cfg.protection.syn_limit else {
            return;
        };
        self.line(1, "chain self_accept {");
        for (set, word) in [("syn_v4", "ip"), ("syn_v6", "ip6")] {
            self.line(
                2,
                &format!(
                    "tcp flags & (fin|syn|rst|ack) == syn add @{set} {{ {word} saddr limit rate over {}/second burst {} packets }} counter drop comment \"syn flood\"",
                    syn.per_second, syn.burst
                ),
            );
        }
        self.line(2, "accept");
        self.line(1, "}");
    }

    fn mgmt_guard(&mut self) {
        let cfg = self.cfg;
        let zones: Vec<&IfName> = cfg
            .management
            .zones
            .iter()
            .flat_map(|z| self.zone_interfaces(z))
            .collect();
        self.line(1, "chain mgmt_guard {");
        if zones.is_empty() {
            self.line(2, "counter drop");
        } else {
            self.line(
                2,
                &format!("iifname != {} counter drop", with_braces(&zones)),
            );
            self.line(2, "meta nfproto ipv4 ip saddr != @mgmt_src_v4 counter drop");
            self.line(
                2,
                "meta nfproto ipv6 ip6 saddr != @mgmt_src_v6 counter drop",
            );
        }
        self.line(1, "}");
    }

    fn forward(&mut self) {
        let cfg = self.cfg;
        self.line(1, "chain forward {");
        self.line(2, "type filter hook forward priority filter; policy drop;");
        self.line(2, "ct state invalid counter drop");
        self.line(2, "ct state established,related accept");
        if !cfg.nat.port_forwards.is_empty() {
            self.line(2, "ct status dnat accept comment \"port forwards\"");
        }
        self.line(
            2,
            "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept",
        );
        for (r, rule) in cfg.firewall.rules.iter().enumerate() {
            if !rule.to.is_device() {
                self.rule(r, rule);
            }
        }
        self.policies(false);
        self.drop_log(2, "forward");
        self.line(1, "}");
    }

    fn policies(&mut self, to_device: bool) {
        let cfg = self.cfg;
        for policy in &cfg.firewall.policies {
            if policy.to.is_device() != to_device {
                continue;
            }
            let from = self.zone_interfaces(&policy.from);
            if from.is_empty() {
                continue;
            }
            let mut text = format!("iifname {}", names(&from));
            if !to_device {
                let to = self.zone_interfaces(&policy.to);
                if to.is_empty() {
                    continue;
                }
                let _ = write!(text, " oifname {}", names(&to));
            }
            let action = if to_device {
                self.to_device(policy.action)
            } else {
                verdict(policy.action)
            };
            let _ = write!(
                text,
                " {action} comment \"policy {} to {}\"",
                policy.from, policy.to
            );
            self.line(2, &text);
        }
    }

    fn address(&self, family: Option<Family>, dir: &str, m: &AddressMatch) -> String {
        match m {
            AddressMatch::Prefixes(list) => {
                let f = family.unwrap_or(Family::Ipv4);
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                let body = if items.len() == 1 {
                    items.join("")
                } else {
                    format!("{{ {} }}", items.join(", "))
                };
                format!("{} {dir} {body}", family_word(f))
            }
            AddressMatch::Set(name) => {
                let f = family.unwrap_or(Family::Ipv4);
                format!("{} {dir} @u_{name}", family_word(f))
            }
        }
    }

    fn rule(&mut self, r: usize, rule: &Rule) {
        let from = self.zone_interfaces(&rule.from);
        let to = if rule.to.is_device() {
            Vec::new()
        } else {
            self.zone_interfaces(&rule.to)
        };
        if from.is_empty() || (!rule.to.is_device() && to.is_empty()) {
            self.line(2, &format!("# r{r}: a zone of this rule has no interface"));
            return;
        }
        let family = rule_family(rule, &self.cfg.firewall.sets);
        let mut m = format!("iifname {}", names(&from));
        if !to.is_empty() {
            let _ = write!(m, " oifname {}", names(&to));
        }
        if let Some(f) = family {
            let _ = write!(m, " {}", nfproto(f));
        }
        if let Some(src) = &rule.source {
            let _ = write!(m, " {}", self.address(family, "saddr", src));
        }
        if let Some(dst) = &rule.destination {
            let _ = write!(m, " {}", self.address(family, "daddr", dst));
        }
        match rule.proto {
            Some(p @ (Proto::Tcp | Proto::Udp)) => {
                let word = if p == Proto::Tcp { "tcp" } else { "udp" };
                let _ = write!(m, " meta l4proto {word}");
                if !rule.ports.is_empty() {
                    let ports: Vec<String> = rule.ports.iter().map(ToString::to_string).collect();
                    let body = if ports.len() == 1 {
                        ports.join("")
                    } else {
                        format!("{{ {} }}", ports.join(", "))
                    };
                    let _ = write!(m, " {word} dport {body}");
                }
            }
            Some(Proto::Icmp) => m.push_str(" meta l4proto icmp"),
            Some(Proto::Icmpv6) => m.push_str(" meta l4proto ipv6-icmp"),
            None => {}
        }
        if let Some(log) = rule.log {
            self.line(
                2,
                &format!(
                    "{m} limit rate {}/minute log prefix \"mamori r{r}: \" group {}",
                    log.per_minute,
                    self.log_group()
                ),
            );
        }
        let comment = match &rule.comment {
            Some(c) => format!("r{r}: {}", c.rendered(100)),
            None => format!("r{r}"),
        };
        let action = if rule.to.is_device() {
            self.to_device(rule.action)
        } else {
            verdict(rule.action)
        };
        self.line(2, &format!("{m} counter {action} comment \"{comment}\""));
    }

    fn nat(&mut self) {
        let cfg = self.cfg;
        self.line(1, "chain prerouting {");
        self.line(
            2,
            "type nat hook prerouting priority dstnat; policy accept;",
        );
        for (f, fwd) in cfg.nat.port_forwards.iter().enumerate() {
            self.port_forward(f, fwd);
        }
        self.line(1, "}");
        self.line(1, "chain postrouting {");
        self.line(
            2,
            "type nat hook postrouting priority srcnat; policy accept;",
        );
        for masq in &cfg.nat.masquerade {
            let out = self.zone_interfaces(&masq.out_zone);
            if !out.is_empty() {
                self.line(
                    2,
                    &format!("oifname {} meta nfproto ipv4 masquerade", names(&out)),
                );
            }
        }
        self.line(1, "}");
    }

    fn port_forward(&mut self, f: usize, fwd: &PortForward) {
        let from = self.zone_interfaces(&fwd.from_zone);
        if from.is_empty() {
            self.line(2, &format!("# pf{f}: its zone has no interface"));
            return;
        }
        let family = Family::of(fwd.internal_address);
        let mut text = format!("iifname {} {}", names(&from), nfproto(family));
        if let Some(src) = fwd.source {
            let _ = write!(text, " {} saddr {src}", family_word(family));
        }
        let proto = fwd.proto.as_str();
        let _ = write!(
            text,
            " meta l4proto {proto} {proto} dport {} dnat {} to ",
            fwd.external_ports,
            family_word(family)
        );
        match (fwd.internal_address, fwd.internal_port) {
            (IpAddr::V4(a), Some(p)) => {
                let _ = write!(text, "{a}:{p}");
            }
            (IpAddr::V4(a), None) => {
                let _ = write!(text, "{a}");
            }
            (IpAddr::V6(a), Some(p)) => {
                let _ = write!(text, "[{a}]:{p}");
            }
            (IpAddr::V6(a), None) => {
                let _ = write!(text, "{a}");
            }
        }
        let comment = match &fwd.comment {
            Some(c) => format!("pf{f}: {}", c.rendered(100)),
            None => format!("pf{f}"),
        };
        let _ = write!(text, " comment \"{comment}\"");
        self.line(2, &text);
    }
}

/// Always braces (for `!=`, which needs a set).
fn with_braces(list: &[&IfName]) -> String {
    let quoted: Vec<String> = list.iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

fn verdict(action: Action) -> &'static str {
    action.as_str()
}
