//! Link and upstream monitor (S3.1-35 A): `link_down` / `link_up` per interface, with flap
//! damping, and `upstream_lost` / `upstream_restored` per address family.
//!
//! Listens to rtnetlink's `RTNLGRP_LINK`, `RTNLGRP_IPV4_ROUTE` and `RTNLGRP_IPV6_ROUTE`
//! (no capability needed). At start it dumps links, then routes, and takes what it finds as the
//! baseline without recording events.
//!
//! * A link is *up* when it is administratively up and has carrier (see [`Link::up`]).
//! * **Flap damping.** For each interface and direction, at most one event per
//!   [`LinkConfig::debounce`]; changes held back are counted, and when the window ends one
//!   `link_events_suppressed` record gives the counts. If the link's state then differs from the
//!   last one recorded, that state is recorded too, so the log never ends on a stale state. So
//!   one interface produces at most four records per window however fast it flaps.
//! * **Upstream.** The upstream of a family is available when a default route (prefix length 0,
//!   main table, unicast) exists whose outgoing interface — or one of whose next hops' — is up.
//!   Losing it (the route disappears, or its interface loses carrier) records `upstream_lost`;
//!   getting it back records `upstream_restored`. IPv4 removes routes silently when an interface
//!   goes administratively down (no `RTM_DELROUTE`), so every change of an interface's
//!   administrative state re-reads the routes. Routes through nexthop objects (`RTA_NH_ID`) name
//!   no interface and are not considered.
//! * **Overrun.** Links and routes are read again; differences are recorded (with
//!   `"resync": true`), after the worker's `monitor_events_missed` record.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mamori_audit::{Event, EventKind, Outcome};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use serde_json::json;

use crate::nl::{NETLINK_ROUTE, NlSocket};
use crate::rtnl::{
    DumpKind, Dumps, Item, Link, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, Update,
};
use crate::worker::{Out, Watch};
use crate::{DEFAULT_RECEIVE_BUFFER, Prepared};

/// The main routing table (`RT_TABLE_MAIN`).
const RT_TABLE_MAIN: u32 = 254;

/// Settings of the link monitor.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// At most one `link_down` and one `link_up` per interface in this time; the rest are
    /// counted into a `link_events_suppressed` summary. Default one second.
    pub debounce: Duration,
    /// The routing table whose default routes make the upstream. Default the main table (254).
    pub route_table: u32,
    /// The socket receive buffer to ask for, in bytes.
    pub receive_buffer: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(1),
            route_table: RT_TABLE_MAIN,
            receive_buffer: DEFAULT_RECEIVE_BUFFER,
        }
    }
}

/// Opens the link monitor's socket (rtnetlink; no capability needed).
pub fn open(config: LinkConfig) -> io::Result<Prepared> {
    let watch = LinkWatch::new(config);
    let sock = watch.open()?;
    Ok(Prepared::one(Box::new(watch), sock))
}

/// Flap damping state of one interface.
#[derive(Debug, Default)]
struct Damper {
    /// Earliest time another event of each direction (`[down, up]`) may be recorded.
    next_allowed: [Option<Instant>; 2],
    /// Changes held back in the current window, per direction.
    suppressed: [u64; 2],
    /// When the current window's summary is due.
    flush_at: Option<Instant>,
    /// When the first change of the window was held back.
    since: Option<Instant>,
    /// The last state recorded in the log.
    recorded_up: Option<bool>,
}

/// A default route as far as the upstream is concerned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DefaultRoute {
    family: Family,
    /// Interfaces it leaves through (one, or several for a multipath route).
    oifs: Vec<u32>,
    gateway: Option<IpAddr>,
    metric: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

struct LinkWatch {
    config: LinkConfig,
    dumps: Dumps,
    links: BTreeMap<u32, Link>,
    dampers: BTreeMap<u32, Damper>,
    routes: BTreeSet<DefaultRoute>,
    /// Upstream availability per family; `None` until the family has had a default route.
    upstream: BTreeMap<Family, bool>,
    /// Entries seen during the running dump of each kind (mark and sweep).
    seen_links: Option<BTreeSet<u32>>,
    seen_routes: Option<BTreeSet<DefaultRoute>>,
    /// A complete link dump has been read since the socket was opened.
    links_read: bool,
    /// Baseline taken (the first link and route dumps finished).
    synced: bool,
    /// The state being read again after an overrun.
    resyncing: bool,
}

impl LinkWatch {
    fn new(config: LinkConfig) -> Self {
        Self {
            config,
            dumps: Dumps::default(),
            links: BTreeMap::new(),
            dampers: BTreeMap::new(),
            routes: BTreeSet::new(),
            upstream: BTreeMap::new(),
            seen_links: None,
            seen_routes: None,
            links_read: false,
            synced: false,
            resyncing: false,
        }
    }

    fn start_dumps(&mut self, sock: &mut NlSocket) -> io::Result<()> {
        self.dumps.reset();
        self.links_read = false;
        self.dumps.request(DumpKind::Links, sock)?;
        self.dumps.request(DumpKind::Routes, sock)?;
        self.note_started();
        Ok(())
    }

    /// Starts the sweep set of each dump just sent: what the dump does not list is gone.
    fn note_started(&mut self) {
        for kind in self.dumps.take_started() {
            match kind {
                DumpKind::Links => self.seen_links = Some(BTreeSet::new()),
                DumpKind::Routes => self.seen_routes = Some(BTreeSet::new()),
            }
        }
    }

    fn link(&mut self, new: Link, from_dump: bool, sock: &mut NlSocket, out: &Out, now: Instant) {
        if from_dump && let Some(seen) = self.seen_links.as_mut() {
            seen.insert(new.index);
        }
        let old = self.links.insert(new.index, new.clone());
        if old.as_ref().is_some_and(|o| o.admin_up != new.admin_up) {
            if !new.admin_up {
                // IPv4 drops the routes through an interface taken down without telling
                // (no RTM_DELROUTE): do the same at once, so the interface coming back up
                // before the dump below answers cannot look like a restored upstream.
                let index = new.index;
                self.routes
                    .retain(|r| !(r.family == Family::Ipv4 && r.oifs == [index]));
            }
            // And read the routes again to be sure (multipath routes lose only a next hop).
            if let Err(e) = self.dumps.request(DumpKind::Routes, sock) {
                tracing::warn!(error = %e, "route dump request failed");
            }
        }
        if !self.synced {
            return;
        }
        let was_up = old.as_ref().map(Link::up);
        let is_up = new.up();
        if was_up == Some(is_up) {
            return;
        }
        if old.is_none() && !is_up {
            // A new interface that is down: nothing to report (interface_added is the
            // hardware monitor's record).
            return;
        }
        self.transition(&new, is_up, out, now);
        self.update_upstream(out, "interface link change");
    }

    /// Records (or holds back) one change of `link` to `up`.
    fn transition(&mut self, link: &Link, up: bool, out: &Out, now: Instant) {
        let debounce = self.config.debounce;
        let d = self.dampers.entry(link.index).or_default();
        let dir = usize::from(up);
        if d.next_allowed[dir].is_none_or(|t| now >= t) {
            d.next_allowed[dir] = Some(now + debounce);
            d.recorded_up = Some(up);
            let mut details = link.details();
            if self.resyncing {
                details["resync"] = json!(true);
            }
            out.emit(Event::new(link_kind(up), Outcome::Success).details(details));
        } else {
            d.suppressed[dir] += 1;
            d.since.get_or_insert(now);
            let due = d.next_allowed[dir].unwrap_or(now);
            d.flush_at = Some(d.flush_at.map_or(due, |f| f.max(due)));
        }
    }

    fn flush(&mut self, now: Instant, out: &Out) {
        let debounce = self.config.debounce;
        for (index, d) in self.dampers.iter_mut() {
            if d.flush_at.is_none_or(|t| now < t) {
                continue;
            }
            d.flush_at = None;
            let link = self.links.get(index);
            let mut details = link.map_or_else(|| json!({ "index": index }), Link::details);
            details["suppressed"] = json!({
                "link_down": d.suppressed[0],
                "link_up": d.suppressed[1],
            });
            details["window_ms"] = json!(
                d.since
                    .map_or(0, |s| now.saturating_duration_since(s).as_millis())
            );
            out.emit(
                Event::new(EventKind::LinkEventsSuppressed, Outcome::Success).details(details),
            );
            d.suppressed = [0, 0];
            d.since = None;
            if let Some(link) = link {
                let up = link.up();
                if d.recorded_up != Some(up) {
                    // The log must end on the link's real state.
                    d.recorded_up = Some(up);
                    d.next_allowed[usize::from(up)] = Some(now + debounce);
                    let mut details = link.details();
                    details["after_suppression"] = json!(true);
                    out.emit(Event::new(link_kind(up), Outcome::Success).details(details));
                }
            }
        }
        // Forget interfaces that are gone once their window is over.
        self.dampers
            .retain(|i, d| self.links.contains_key(i) || d.flush_at.is_some());
    }

    fn route(&mut self, msg: &RouteMessage, add: bool, from_dump: bool) {
        let Some(route) = default_route(msg, self.config.route_table) else {
            return;
        };
        if add {
            if from_dump && let Some(seen) = self.seen_routes.as_mut() {
                seen.insert(route.clone());
            }
            self.routes.insert(route);
        } else {
            self.routes.remove(&route);
        }
    }

    /// Recomputes the upstream of each family and records changes.
    fn update_upstream(&mut self, out: &Out, reason: &str) {
        if !self.synced {
            return;
        }
        for family in [Family::Ipv4, Family::Ipv6] {
            let routes: Vec<&DefaultRoute> =
                self.routes.iter().filter(|r| r.family == family).collect();
            let available = routes.iter().any(|r| {
                r.oifs
                    .iter()
                    .any(|i| self.links.get(i).is_some_and(Link::up))
            });
            let before = self.upstream.get(&family).copied();
            if routes.is_empty() && before.is_none() {
                continue; // this family never had an upstream
            }
            self.upstream.insert(family, available);
            if before.is_none() || before == Some(available) {
                continue;
            }
            let describe = |r: &&DefaultRoute| {
                json!({
                    "interfaces": r.oifs.iter().map(|i| json!({
                        "interface": self.links.get(i).map(|l| l.name.clone()),
                        "index": i,
                        "up": self.links.get(i).is_some_and(Link::up),
                    })).collect::<Vec<_>>(),
                    "gateway": r.gateway.map(|g| g.to_string()),
                    "metric": r.metric,
                })
            };
            let mut details = json!({
                "family": family.name(),
                "default_routes": routes.iter().map(describe).collect::<Vec<_>>(),
                "reason": if available { reason.to_string() } else if routes.is_empty() {
                    "default route removed".to_string()
                } else {
                    format!("{reason}: no default route's interface has link")
                },
            });
            if self.resyncing {
                details["resync"] = json!(true);
            }
            let kind = if available {
                EventKind::UpstreamRestored
            } else {
                EventKind::UpstreamLost
            };
            out.emit(Event::new(kind, Outcome::Success).details(details));
        }
    }

    fn baseline_upstream(&mut self) {
        for family in [Family::Ipv4, Family::Ipv6] {
            let routes: Vec<&DefaultRoute> =
                self.routes.iter().filter(|r| r.family == family).collect();
            if routes.is_empty() {
                continue;
            }
            let available = routes.iter().any(|r| {
                r.oifs
                    .iter()
                    .any(|i| self.links.get(i).is_some_and(Link::up))
            });
            self.upstream.insert(family, available);
        }
    }
}

fn link_kind(up: bool) -> EventKind {
    if up {
        EventKind::LinkUp
    } else {
        EventKind::LinkDown
    }
}

/// The default route a route message describes, if it is one of `table`.
fn default_route(msg: &RouteMessage, table: u32) -> Option<DefaultRoute> {
    let family = match msg.header.address_family {
        AddressFamily::Inet => Family::Ipv4,
        AddressFamily::Inet6 => Family::Ipv6,
        _ => return None,
    };
    if msg.header.destination_prefix_length != 0 || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut route_table = u32::from(msg.header.table);
    let mut oifs = Vec::new();
    let mut gateway = None;
    let mut metric = 0;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Table(t) => route_table = *t,
            RouteAttribute::Oif(i) => oifs.push(*i),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) => {
                oifs.extend(hops.iter().map(|h| h.interface_index));
            }
            _ => {}
        }
    }
    if route_table != table || oifs.is_empty() {
        return None;
    }
    oifs.sort_unstable();
    oifs.dedup();
    Some(DefaultRoute {
        family,
        oifs,
        gateway,
        metric,
    })
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Watch for LinkWatch {
    fn name(&self) -> &'static str {
        "links"
    }

    fn open(&self) -> io::Result<NlSocket> {
        NlSocket::open(
            NETLINK_ROUTE,
            &[RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE],
            self.config.receive_buffer,
        )
    }

    fn sync(&mut self, sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        self.resyncing = self.synced;
        self.start_dumps(sock)
    }

    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<()> {
        let now = Instant::now();
        for item in self.dumps.parse(data, sender, sock, out)? {
            match item {
                Item::Update { update, from_dump } => match update {
                    Update::NewLink(m) => {
                        self.link(Link::from_message(&m), from_dump, sock, out, now)
                    }
                    Update::DelLink(m) => {
                        self.links.remove(&m.header.index);
                        self.routes.retain(|r| !r.oifs.contains(&m.header.index));
                        self.update_upstream(out, "interface removed");
                    }
                    Update::NewRoute(m) => {
                        self.route(&m, true, from_dump);
                        if !from_dump {
                            self.update_upstream(out, "default route added");
                        }
                    }
                    Update::DelRoute(m) => {
                        self.route(&m, false, from_dump);
                        self.update_upstream(out, "default route removed");
                    }
                },
                Item::DumpDone {
                    kind: DumpKind::Links,
                    complete,
                } => {
                    let seen = self.seen_links.take();
                    if complete && let Some(seen) = seen {
                        // Links the dump did not list are gone.
                        self.links.retain(|i, _| seen.contains(i));
                        self.links_read = true;
                    }
                }
                Item::DumpDone {
                    kind: DumpKind::Routes,
                    complete,
                } => {
                    let seen = self.seen_routes.take();
                    if !complete {
                        continue;
                    }
                    if let Some(seen) = seen {
                        self.routes.retain(|r| seen.contains(r));
                    }
                    if self.synced {
                        self.update_upstream(out, "routes read again");
                    } else if self.links_read {
                        self.synced = true;
                        self.baseline_upstream();
                        out.ready();
                    }
                    if !self.dumps.busy() {
                        self.resyncing = false;
                    }
                }
            }
        }
        // After the items: a dump started while parsing (a follow-up or a retry) has its
        // entries in later datagrams, and the Done just handled must not take its sweep set.
        self.note_started();
        Ok(())
    }

    fn overrun(&mut self, sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        self.resyncing = self.synced;
        self.start_dumps(sock)
    }

    fn overrun_details(&self) -> serde_json::Value {
        json!({ "interfaces_known": self.links.len() })
    }

    fn deadline(&self) -> Option<Instant> {
        self.dampers
            .values()
            .filter_map(|d| d.flush_at)
            .chain(self.dumps.deadline())
            .min()
    }

    fn timer(&mut self, now: Instant, sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        self.flush(now, out);
        self.dumps.timer(now, sock)?;
        self.note_started();
        Ok(())
    }
}
