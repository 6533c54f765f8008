//! What the network configuration pages show, as plain values for the templates: a readable
//! summary of a configuration, diff lines with their class, a revision's metadata, the pending
//! commit. Everything here is text; the templates escape it.

use mamori_config::{Channel, PendingMarker, RevisionInfo, Step};
use mamori_netconfig::{Action, NetworkConfig, Role, ZoneName};
use time::OffsetDateTime;

use super::texts::Texts;

/// A UTC time to the second: `2026-12-06 05:40:18 UTC`.
pub fn at(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Seconds as the countdown shows them: `m:ss` (`h:mm:ss` from an hour).
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The channel a revision came from, in words.
pub fn channel(t: &Texts, c: Channel) -> &'static str {
    match c {
        Channel::Api => t.ch_api,
        Channel::Cli => t.ch_cli,
        Channel::Ui => t.ch_ui,
        Channel::Console => t.ch_console,
        Channel::Boot => t.ch_boot,
        Channel::Timeout => t.ch_timeout,
    }
}

/// A step of the pipeline, in words.
pub fn step(t: &Texts, step: Step) -> &'static str {
    match step {
        Step::Pending => t.step_pending,
        Step::Validate => t.step_validate,
        Step::Management => t.step_management,
        Step::Check => t.step_check,
        Step::Apply => t.step_apply,
        Step::Probe => t.step_probe,
    }
}

/// A revision's metadata.
#[derive(Debug, Clone)]
pub struct RevisionRow {
    pub id: u64,
    pub author: String,
    pub channel: &'static str,
    pub channel_code: &'static str,
    pub time: String,
    pub comment: String,
}

impl RevisionRow {
    /// `comment` in the reader's language (`words::comment`).
    pub fn of(t: &Texts, i: &RevisionInfo, comment: String) -> Self {
        Self {
            id: i.id,
            author: i.author.clone(),
            channel: channel(t, i.channel),
            channel_code: i.channel.as_str(),
            time: at(i.time),
            comment,
        }
    }
}

/// The commit waiting for confirmation, as the banner shows it.
#[derive(Debug, Clone)]
pub struct PendingView {
    pub revision: u64,
    pub previous: u64,
    pub author: String,
    /// The banner's sentence, filled in.
    pub text: String,
    /// No deadline: a commit without a window, being applied right now.
    pub applying: bool,
    pub deadline: String,
    pub remaining_s: u64,
    pub remaining: String,
    /// The reader committed it and may manage the configuration: the button is theirs.
    pub can_confirm: bool,
    /// Who must confirm, in a sentence.
    pub who: String,
}

impl PendingView {
    pub fn of(
        t: &Texts,
        m: &PendingMarker,
        reader: Option<&str>,
        can_manage: bool,
        now: OffsetDateTime,
    ) -> Self {
        let remaining_s = m
            .deadline
            .map_or(0, |d| u64::try_from((d - now).whole_seconds()).unwrap_or(0));
        let deadline = m.deadline.map(at).unwrap_or_default();
        let mine = reader == Some(m.author.as_str());
        let sentence = if m.deadline.is_some() {
            t.pending_text
        } else {
            t.pending_applying
        };
        let who = if can_manage && !mine {
            t.only_author
        } else {
            t.waits_for_author
        };
        Self {
            revision: m.new_revision,
            previous: m.previous_revision,
            author: m.author.clone(),
            text: sentence
                .replace("{rev}", &m.new_revision.to_string())
                .replace("{prev}", &m.previous_revision.to_string())
                .replace("{deadline}", &deadline)
                .replace("{author}", &m.author),
            applying: m.deadline.is_none(),
            deadline,
            remaining: clock(remaining_s),
            remaining_s,
            can_confirm: mine && can_manage && m.deadline.is_some(),
            who: who.replace("{author}", &m.author),
        }
    }
}

/// One line of a unified diff and how the stylesheet colours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `add`, `del`, `hunk`, `meta` or `ctx`.
    pub class: &'static str,
    pub text: String,
}

/// Splits a unified diff into classed lines.
pub fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|l| DiffLine {
            class: if l.starts_with("+++") || l.starts_with("---") {
                "meta"
            } else if l.starts_with("@@") {
                "hunk"
            } else if l.starts_with('+') {
                "add"
            } else if l.starts_with('-') {
                "del"
            } else {
                "ctx"
            },
            text: l.to_string(),
        })
        .collect()
}

/// One choice of the confirm-window select.
#[derive(Debug, Clone)]
pub struct WindowOption {
    pub value: u32,
    pub label: String,
    pub selected: bool,
}

/// Confirm windows the pages offer, in minutes (0: none).
pub const WINDOWS: [u32; 9] = [0, 1, 2, 3, 5, 10, 15, 30, 60];
/// The longest window the pages accept, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 60;
/// The web UI's default window, in minutes (`mamori_config::CONFIRM_WINDOW_UI`).
pub const DEFAULT_WINDOW_MINUTES: u32 = 3;

/// The select's options with `chosen` selected (a value outside the list is added).
pub fn windows(t: &Texts, chosen: u32) -> Vec<WindowOption> {
    let mut values: Vec<u32> = WINDOWS.to_vec();
    if !values.contains(&chosen) && chosen <= MAX_WINDOW_MINUTES {
        values.push(chosen);
        values.sort_unstable();
    }
    values
        .into_iter()
        .map(|value| WindowOption {
            value,
            label: match value {
                0 => t.window_none.to_string(),
                DEFAULT_WINDOW_MINUTES => t.window_default.replace("{n}", &value.to_string()),
                n => t.window_minutes.replace("{n}", &n.to_string()),
            },
            selected: value == chosen,
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct IfaceRow {
    pub name: String,
    pub role: &'static str,
    pub role_code: &'static str,
    pub addresses: String,
    pub dhcp: bool,
}

#[derive(Debug, Clone)]
pub struct RouteRow {
    pub destination: String,
    pub gateway: String,
    pub metric: String,
}

#[derive(Debug, Clone)]
pub struct ForwardRow {
    pub from_zone: String,
    pub proto: &'static str,
    pub external: String,
    pub to: String,
    pub source: String,
    pub comment: String,
}

#[derive(Debug, Clone)]
pub struct ZoneRow {
    pub name: String,
    pub interfaces: String,
}

#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub from: String,
    pub to: String,
    pub action: &'static str,
    pub action_code: &'static str,
}

#[derive(Debug, Clone)]
pub struct SetRow {
    pub name: String,
    pub family: &'static str,
    pub entries: usize,
}

/// A configuration as a reader takes it in: what each part holds, counted where long.
#[derive(Debug, Clone)]
pub struct Summary {
    pub interfaces: Vec<IfaceRow>,
    pub routes: Vec<RouteRow>,
    pub masquerade: String,
    pub forwards: Vec<ForwardRow>,
    pub zones: Vec<ZoneRow>,
    pub policies: Vec<PolicyRow>,
    pub rules: String,
    pub rule_count: usize,
    pub sets: Vec<SetRow>,
    pub mgmt_port: u16,
    pub mgmt_zones: String,
    pub mgmt_sources: String,
    pub anti_spoofing: &'static str,
    pub syn_limit: String,
    pub drop_log: String,
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>, none: &str) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(", ")
    }
}

fn zone(t: &Texts, z: &ZoneName) -> String {
    if z.is_device() {
        t.the_device.to_string()
    } else {
        z.as_str().to_string()
    }
}

fn action(t: &Texts, a: Action) -> &'static str {
    match a {
        Action::Accept => t.act_accept,
        Action::Drop => t.act_drop,
        Action::Reject => t.act_reject,
    }
}

fn role(t: &Texts, r: Role) -> &'static str {
    match r {
        Role::Lan => t.role_lan,
        Role::Wan => t.role_wan,
        Role::Mgmt => t.role_mgmt,
    }
}

impl Summary {
    pub fn of(t: &Texts, c: &NetworkConfig) -> Self {
        let interfaces = c
            .interfaces
            .iter()
            .map(|i| IfaceRow {
                name: i.name.as_str().to_string(),
                role: role(t, i.role),
                role_code: i.role.as_str(),
                addresses: join(&i.addresses, t.none),
                dhcp: i.dhcp,
            })
            .collect();
        let routes = c
            .routes
            .iter()
            .map(|r| RouteRow {
                destination: r.destination.to_string(),
                gateway: r.gateway.to_string(),
                metric: r.metric.map(|m| m.to_string()).unwrap_or_default(),
            })
            .collect();
        let forwards = c
            .nat
            .port_forwards
            .iter()
            .map(|f| ForwardRow {
                from_zone: f.from_zone.as_str().to_string(),
                proto: f.proto.as_str(),
                external: f.external_ports.to_string(),
                to: match f.internal_port {
                    Some(p) if f.internal_address.is_ipv6() => {
                        format!("[{}]:{p}", f.internal_address)
                    }
                    Some(p) => format!("{}:{p}", f.internal_address),
                    None => f.internal_address.to_string(),
                },
                source: f
                    .source
                    .map_or_else(|| t.anyone.to_string(), |s| s.to_string()),
                comment: f
                    .comment
                    .as_ref()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect();
        let fw = &c.firewall;
        let count = |a: Action| fw.rules.iter().filter(|r| r.action == a).count();
        let rules = if fw.rules.is_empty() {
            t.rules_none.to_string()
        } else {
            t.rules_count
                .replace("{n}", &fw.rules.len().to_string())
                .replace("{accept}", &count(Action::Accept).to_string())
                .replace("{drop}", &count(Action::Drop).to_string())
                .replace("{reject}", &count(Action::Reject).to_string())
        };
        let p = &c.protection;
        Self {
            interfaces,
            routes,
            masquerade: join(c.nat.masquerade.iter().map(|m| m.out_zone.as_str()), t.none),
            forwards,
            zones: fw
                .zones
                .iter()
                .map(|z| ZoneRow {
                    name: z.name.as_str().to_string(),
                    interfaces: join(z.interfaces.iter().map(|i| i.as_str()), t.none),
                })
                .collect(),
            policies: fw
                .policies
                .iter()
                .map(|p| PolicyRow {
                    from: zone(t, &p.from),
                    to: zone(t, &p.to),
                    action: action(t, p.action),
                    action_code: p.action.as_str(),
                })
                .collect(),
            rules,
            rule_count: fw.rules.len(),
            sets: fw
                .sets
                .iter()
                .map(|s| SetRow {
                    name: s.name.as_str().to_string(),
                    family: s.family.as_str(),
                    entries: s.entries.len(),
                })
                .collect(),
            mgmt_port: c.management.port,
            mgmt_zones: join(c.management.zones.iter().map(|z| zone(t, z)), t.none),
            mgmt_sources: join(&c.management.sources, t.none),
            anti_spoofing: if p.anti_spoofing { t.on } else { t.off },
            syn_limit: p.syn_limit.map_or_else(
                || t.off.to_string(),
                |s| {
                    t.syn_value
                        .replace("{rate}", &s.per_second.to_string())
                        .replace("{burst}", &s.burst.to_string())
                },
            ),
            drop_log: p.drop_log.map_or_else(
                || t.off.to_string(),
                |d| {
                    t.drop_log_value
                        .replace("{group}", &d.group.to_string())
                        .replace("{rate}", &d.per_second.to_string())
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use mamori_netconfig::{IfName, Interface, Rule};

    use super::super::texts::{EN, JA};
    use super::*;

    fn config() -> NetworkConfig {
        let mut wan = Interface::new(IfName::parse("eth0").unwrap(), Role::Wan);
        wan.dhcp = true;
        let mut lan = Interface::new(IfName::parse("lan0").unwrap(), Role::Lan);
        lan.addresses = vec!["192.168.77.1/24".parse().unwrap()];
        let mut c = NetworkConfig::factory(vec![wan, lan]);
        c.firewall.rules.push(Rule::new(
            ZoneName::parse("wan").unwrap(),
            ZoneName::device(),
            Action::Drop,
        ));
        c.firewall.rules.push(Rule::new(
            ZoneName::parse("lan").unwrap(),
            ZoneName::device(),
            Action::Accept,
        ));
        c
    }

    #[test]
    fn the_summary_names_every_part_in_both_languages() {
        let s = Summary::of(&EN, &config());
        assert_eq!(s.interfaces.len(), 2);
        assert_eq!(s.interfaces[1].addresses, "192.168.77.1/24");
        assert_eq!(s.interfaces[0].addresses, "none");
        assert!(s.interfaces[0].dhcp);
        assert_eq!(s.masquerade, "wan");
        assert_eq!(s.policies[0].action, "accept");
        assert_eq!(
            s.rules,
            "2 rules (1 accept, 1 drop, 0 reject), checked in order before the policies."
        );
        assert_eq!(s.mgmt_port, 443);
        assert_eq!(s.mgmt_zones, "lan");
        assert_eq!(s.mgmt_sources, "0.0.0.0/0, ::/0");
        assert_eq!(s.anti_spoofing, "on");
        assert!(s.syn_limit.starts_with("25 new TCP"), "{}", s.syn_limit);
        let s = Summary::of(&JA, &config());
        assert_eq!(s.interfaces[0].role, "WAN (上位回線)");
        assert!(
            s.rules.starts_with("2 件 (許可 1、破棄 1、拒否 0)"),
            "{}",
            s.rules
        );
        assert!(!s.syn_limit.contains('{') && !s.drop_log.contains('{'));
    }

    #[test]
    fn diff_lines_are_classed_for_colouring() {
        let d = "--- r1\n+++ r2\n@@ -1,3 +1,3 @@\n {\n-  \"a\": 1\n+  \"a\": 2\n }\n";
        let classes: Vec<_> = diff_lines(d).iter().map(|l| l.class).collect();
        assert_eq!(
            classes,
            ["meta", "meta", "hunk", "ctx", "del", "add", "ctx"]
        );
        assert!(diff_lines("").is_empty());
    }

    #[test]
    fn the_countdown_reads_as_a_clock() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(179), "2:59");
        assert_eq!(clock(3600), "1:00:00");
    }

    #[test]
    fn window_choices_mark_the_default_and_keep_an_unlisted_choice() {
        let w = windows(&EN, DEFAULT_WINDOW_MINUTES);
        assert_eq!(w.iter().filter(|o| o.selected).count(), 1);
        assert_eq!(w[0].label, "None: final at once");
        assert!(w.iter().any(|o| o.selected && o.label == "3 min (default)"));
        let w = windows(&JA, 7);
        assert!(w.iter().any(|o| o.selected && o.label == "7 分"));
        assert_eq!(windows(&EN, 61).iter().filter(|o| o.selected).count(), 0);
    }

    #[test]
    fn every_channel_and_step_has_words() {
        for t in [&EN, &JA] {
            for c in [
                Channel::Api,
                Channel::Cli,
                Channel::Ui,
                Channel::Console,
                Channel::Boot,
                Channel::Timeout,
            ] {
                assert!(!channel(t, c).is_empty());
            }
            for s in [
                Step::Pending,
                Step::Validate,
                Step::Management,
                Step::Check,
                Step::Apply,
                Step::Probe,
            ] {
                assert!(!step(t, s).is_empty(), "{s}");
            }
        }
    }
}
