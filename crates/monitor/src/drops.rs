//! Drop summary (S3.1-35 H, firewall operation): the firewall's rate-limited drop logs,
//! summarised into one `firewall_dropped` record per interval.
//!
//! mamori's ruleset (`mamori_netconfig::render`) logs what it drops to an nflog group
//! (`protection.drop_log.group`, default 1), rate-limited per chain
//! (`limit rate N/second ... log prefix "mamori drop input: " group G`; likewise `forward` and
//! `spoofed`), and rules with `log` set log as `"mamori r<N>: "` to the same group. This monitor
//! is the group's listener (`NFULNL_CFG_CMD_BIND` on `NETLINK_NETFILTER`, copy mode packet with
//! [`DropConfig::copy_range`] bytes: the network and transport headers; the rest of the packet
//! never reaches this process). For each message it reads the prefix, the in and out
//! interfaces, the source address, the transport protocol and the destination port, and counts
//! them. Every [`DropConfig::interval`] it records **one** `firewall_dropped` if anything was
//! logged, and nothing otherwise:
//!
//! ```json
//! {"interval_s": 60, "group": 1, "logged": 212, "sampled": true, "note": "...",
//!  "by_chain": {"input": 180, "spoofed": 30, "r3": 2},
//!  "by_proto": {"tcp": 150, "udp": 60, "icmp": 2},
//!  "top_sources": [{"address": "198.51.100.7", "count": 120}, ...],
//!  "top_ports": [{"proto": "tcp", "port": 23, "count": 90}, ...],
//!  "interfaces": {"in": {"wan0": 212}, "out": {}},
//!  "sources": {"tracked": 41, "other": 0, "cap": 4096},
//!  "ports": {"tracked": 17, "other": 0, "cap": 4096},
//!  "foreign": 0}
//! ```
//!
//! **Samples, not totals.** The logs are rate-limited per chain (5 a second by default), so
//! `logged` is the number of log messages, not of dropped packets; a flood shows as each chain at
//! its limit. The record says so (`"sampled": true`, `note`). The exact totals are the rules'
//! counters in nftables.
//!
//! **Bounded.** At most [`DropConfig::max_tracked`] distinct sources and as many distinct
//! (protocol, port) pairs are counted per interval; messages from further ones are counted under
//! `other`. Chains and interfaces are capped at 64 names each. The record lists the ten busiest
//! sources and ports. So memory stays bounded (about 0.4 MiB at the default cap of 4096) and
//! the audit log gets at most one record per interval however much is dropped.
//!
//! **Only mamori's messages.** A message whose prefix does not start with `mamori ` (another
//! ruleset logging to the same group) is counted as `foreign` and otherwise ignored; an interval
//! with only foreign messages records nothing. A message `mamori r<N>: ` is a rule's log, whatever
//! the rule's verdict.
//!
//! **Personal data.** `top_sources` holds addresses of stations (S3.1-40): `mamori_audit`'s
//! `personal_details` keeps it under the segment's personal key, so an audit purge removes it.
//! The destination address and the packet contents are never kept.
//!
//! **Interface names.** nflog gives interface indexes. When a record is due, the monitor dumps
//! the links on its own rtnetlink socket (opened with the nflog one, so it works after the
//! process is confined: only `sendto`/`recvfrom`) and names them; an index that is gone by then
//! shows as `ifindex N`.
//!
//! **Capability.** Binding a group needs CAP_NET_ADMIN in the process that *sends* the bind
//! (nfnetlink checks the opener and the sender); measured: `EPERM` without. The kernel also
//! answers `EPERM` (not `EBUSY`) when another socket already listens on the group. Open it
//! before the process drops its capabilities; a group changed later needs the monitor opened
//! again by a process that has the capability. Reading the messages needs nothing.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mamori_audit::{Event, EventKind, Outcome};
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkMessage;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};

use crate::nflog::{self, Attrs, Headers};
use crate::nl::{self, NETLINK_NETFILTER, NETLINK_ROUTE, NlSocket, Received};
use crate::worker::{Out, Watch};
use crate::{DEFAULT_RECEIVE_BUFFER, Prepared};

/// The default interval between two records.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The default cap on distinct sources, and on distinct ports, counted per interval.
pub const DEFAULT_MAX_TRACKED: usize = 4096;
/// The default number of bytes of each logged packet the kernel copies: an IPv4 header with
/// options (60) or an IPv6 header with extension headers, and the start of the transport header.
pub const DEFAULT_COPY_RANGE: u32 = 128;
/// Sources and ports listed in a record.
pub const TOP: usize = 10;
/// Names of chains, and of interfaces, counted per interval; more are counted under `other`.
const MAX_NAMES: usize = 64;
/// A chain name (from the prefix) longer than this, or with other than letters, digits, `_`,
/// `-` and `.`, is counted under `other`.
const MAX_CHAIN_NAME: usize = 32;
/// The kernel sends what it has logged after at most this many hundredths of a second (its
/// default is 100, one second; sooner keeps a record's interval close to the packets').
const FLUSH_CS: u32 = 10;
/// How long the bind waits for the kernel's answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long naming the interfaces may take before a record goes out with indexes.
const NAMES_TIMEOUT: Duration = Duration::from_millis(500);
/// `RTM_NEWLINK`.
const RTM_NEWLINK: u16 = 16;
/// `IFLA_IFNAME`.
const IFLA_IFNAME: u16 = 3;

/// What every record says about its counts.
pub const SAMPLED_NOTE: &str = "drop logs are rate-limited per chain, so these are samples: \
    'logged' counts log messages, not dropped packets; the rules' counters in nftables have the totals";

/// Settings of the drop summary.
#[derive(Debug, Clone)]
pub struct DropConfig {
    /// The nflog group to listen on: the running configuration's `protection.drop_log.group`
    /// (rule logs go to it too; 1 when drop logging is off).
    pub group: u16,
    /// One record per interval, if anything was logged.
    pub interval: Duration,
    /// Distinct sources, and distinct (protocol, port) pairs, counted per interval.
    pub max_tracked: usize,
    /// Bytes of each packet the kernel copies to this process (headers only).
    pub copy_range: u32,
    /// The socket receive buffer to ask for, in bytes.
    pub receive_buffer: usize,
}

impl DropConfig {
    /// The defaults, listening on `group`.
    pub fn new(group: u16) -> Self {
        Self {
            group,
            interval: DEFAULT_INTERVAL,
            max_tracked: DEFAULT_MAX_TRACKED,
            copy_range: DEFAULT_COPY_RANGE,
            receive_buffer: DEFAULT_RECEIVE_BUFFER,
        }
    }
}

impl Default for DropConfig {
    /// Group 1, the default of `protection.drop_log`.
    fn default() -> Self {
        Self::new(1)
    }
}

/// Opens the drop summary's sockets and binds the nflog group. Needs CAP_NET_ADMIN (see the
/// module documentation); fails with `EPERM` without it or when another socket listens on the
/// group.
pub fn open(config: DropConfig) -> io::Result<Prepared> {
    // Names for interface indexes; without it the record says `ifindex N`.
    let names = match NlSocket::open(NETLINK_ROUTE, &[], 0) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "drop summary: no rtnetlink socket; interfaces by index");
            None
        }
    };
    let watch = DropWatch {
        summary: Summary::new(config.max_tracked),
        config,
        names,
        next: None,
    };
    let sock = watch.open()?;
    Ok(Prepared::one(Box::new(watch), sock))
}

/// The key a log prefix is counted under: `None` for a message that is not mamori's.
///
/// `"mamori drop input: "` → `input`, `"mamori drop spoofed: "` → `spoofed`,
/// `"mamori r12: "` → `r12`; another `mamori ` prefix counts under its first word, or `other`
/// if that is not a plain name.
pub(crate) fn chain_key(prefix: &[u8]) -> Option<String> {
    let rest = prefix.strip_prefix(b"mamori ")?;
    let rest = rest.strip_prefix(b"drop ").unwrap_or(rest);
    let word = rest
        .split(|b| *b == b':' || b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    let plain = !word.is_empty()
        && word.len() <= MAX_CHAIN_NAME
        && word
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    Some(if plain {
        String::from_utf8_lossy(word).into_owned()
    } else {
        "other".to_string()
    })
}

/// The counts of one interval.
#[derive(Debug)]
pub(crate) struct Summary {
    max_tracked: usize,
    logged: u64,
    foreign: u64,
    overruns: u64,
    by_chain: BTreeMap<String, u64>,
    by_proto: BTreeMap<&'static str, u64>,
    sources: HashMap<IpAddr, u64>,
    sources_other: u64,
    ports: HashMap<(u8, u16), u64>,
    ports_other: u64,
    in_if: BTreeMap<u32, u64>,
    out_if: BTreeMap<u32, u64>,
    if_other: (u64, u64),
}

/// Adds one to `key` in `map` if the key is there or the map has fewer than `cap` keys;
/// returns whether it did.
fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, cap: usize) -> bool {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
        true
    } else if map.len() < cap {
        map.insert(key, 1);
        true
    } else {
        false
    }
}

fn bump_ordered<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, cap: usize) -> bool {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
        true
    } else if map.len() < cap {
        map.insert(key, 1);
        true
    } else {
        false
    }
}

/// The `n` entries with the highest counts, ties by key.
fn top<K: Ord + Copy>(map: &HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut all: Vec<(K, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

fn seconds(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        json!(d.as_secs())
    } else {
        json!(d.as_secs_f64())
    }
}

impl Summary {
    pub(crate) fn new(max_tracked: usize) -> Self {
        Self {
            max_tracked,
            logged: 0,
            foreign: 0,
            overruns: 0,
            by_chain: BTreeMap::new(),
            by_proto: BTreeMap::new(),
            sources: HashMap::new(),
            sources_other: 0,
            ports: HashMap::new(),
            ports_other: 0,
            in_if: BTreeMap::new(),
            out_if: BTreeMap::new(),
            if_other: (0, 0),
        }
    }

    /// Counts one message of mamori's.
    pub(crate) fn add(
        &mut self,
        chain: String,
        indev: Option<u32>,
        outdev: Option<u32>,
        headers: Option<Headers>,
    ) {
        self.logged += 1;
        if !bump_ordered(&mut self.by_chain, chain, MAX_NAMES) {
            *self.by_chain.entry("other".to_string()).or_insert(0) += 1;
        }
        if let Some(i) = indev
            && !bump_ordered(&mut self.in_if, i, MAX_NAMES)
        {
            self.if_other.0 += 1;
        }
        if let Some(i) = outdev
            && !bump_ordered(&mut self.out_if, i, MAX_NAMES)
        {
            self.if_other.1 += 1;
        }
        let Some(h) = headers else {
            *self.by_proto.entry("unknown").or_insert(0) += 1;
            return;
        };
        *self.by_proto.entry(nflog::proto_name(h.proto)).or_insert(0) += 1;
        if !bump(&mut self.sources, h.src, self.max_tracked) {
            self.sources_other += 1;
        }
        if let Some(port) = h.dport
            && !bump(&mut self.ports, (h.proto, port), self.max_tracked)
        {
            self.ports_other += 1;
        }
    }

    /// Counts a message that is not mamori's.
    pub(crate) fn foreign(&mut self) {
        self.foreign += 1;
    }

    /// Whether a record is due: something of mamori's was logged.
    pub(crate) fn any(&self) -> bool {
        self.logged > 0
    }

    /// The interface indexes counted.
    fn interfaces(&self) -> impl Iterator<Item = u32> + '_ {
        self.in_if.keys().chain(self.out_if.keys()).copied()
    }

    /// The record's details; `names` names interface indexes.
    pub(crate) fn details(
        &self,
        interval: Duration,
        group: u16,
        names: &BTreeMap<u32, String>,
    ) -> Value {
        let name = |i: &u32| {
            names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("ifindex {i}"))
        };
        let by_name = |map: &BTreeMap<u32, u64>, other: u64| {
            let mut out = serde_json::Map::new();
            for (i, n) in map {
                let e = out.entry(name(i)).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + n);
            }
            if other > 0 {
                out.insert("other".into(), json!(other));
            }
            Value::Object(out)
        };
        let top_sources: Vec<Value> = top(&self.sources, TOP)
            .into_iter()
            .map(|(a, n)| json!({ "address": a.to_string(), "count": n }))
            .collect();
        let top_ports: Vec<Value> = top(&self.ports, TOP)
            .into_iter()
            .map(
                |((p, port), n)| json!({ "proto": nflog::proto_name(p), "port": port, "count": n }),
            )
            .collect();
        let mut d = json!({
            "interval_s": seconds(interval),
            "group": group,
            "logged": self.logged,
            "sampled": true,
            "note": SAMPLED_NOTE,
            "by_chain": self.by_chain,
            "by_proto": self.by_proto,
            "top_sources": top_sources,
            "top_ports": top_ports,
            "interfaces": {
                "in": by_name(&self.in_if, self.if_other.0),
                "out": by_name(&self.out_if, self.if_other.1),
            },
            "sources": { "tracked": self.sources.len(), "other": self.sources_other, "cap": self.max_tracked },
            "ports": { "tracked": self.ports.len(), "other": self.ports_other, "cap": self.max_tracked },
            "foreign": self.foreign,
        });
        if self.overruns > 0 {
            d["incomplete"] = json!(true);
            d["overruns"] = json!(self.overruns);
        }
        d
    }
}

struct DropWatch {
    config: DropConfig,
    /// rtnetlink socket for naming interfaces (no groups; dumps only).
    names: Option<NlSocket>,
    summary: Summary,
    /// When the current interval ends.
    next: Option<Instant>,
}

impl DropWatch {
    /// Index → name of the current links (empty if they cannot be read).
    fn link_names(&mut self) -> BTreeMap<u32, String> {
        let mut names = BTreeMap::new();
        let Some(sock) = self.names.as_mut() else {
            return names;
        };
        if let Err(e) = dump_link_names(sock, &mut names) {
            tracing::warn!(error = %e, "drop summary: interfaces not named");
        }
        names
    }

    fn record(&mut self, out: &Out) {
        let names = if self.summary.interfaces().next().is_some() {
            self.link_names()
        } else {
            BTreeMap::new()
        };
        let details = self
            .summary
            .details(self.config.interval, self.config.group, &names);
        out.emit(Event::new(EventKind::FirewallDropped, Outcome::Success).details(details));
    }
}

/// Waits up to `timeout` for `sock` to be readable.
fn wait_readable(sock: &NlSocket, timeout: Duration) -> io::Result<bool> {
    let ms = u16::try_from(timeout.as_millis().clamp(1, 60_000)).unwrap_or(60_000);
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The error code of an `NLMSG_ERROR` payload (0 is an acknowledgement).
fn error_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?))
}

/// Waits for the kernel's answer to request `seq`.
fn wait_ack(sock: &NlSocket, seq: u32, timeout: Duration) -> io::Result<()> {
    let end = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        match sock.receive(&mut buf)? {
            Received::Datagram { sender: 0 } => {
                for (h, p) in nl::split(&buf).0 {
                    if h.message_type == NLMSG_ERROR && h.sequence_number == seq {
                        return match error_code(p) {
                            Some(0) => Ok(()),
                            Some(code) => Err(io::Error::from_raw_os_error(code.saturating_neg())),
                            None => Err(io::Error::other("malformed acknowledgement")),
                        };
                    }
                    // Packets logged between the bind and its answer are not counted.
                }
            }
            Received::Datagram { .. } | Received::Overrun => {}
            Received::Empty => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() || !wait_readable(sock, left)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no answer from nfnetlink_log",
                    ));
                }
            }
        }
    }
}

/// Reads the links' names into `names` with one `RTM_GETLINK` dump.
fn dump_link_names(sock: &mut NlSocket, names: &mut BTreeMap<u32, String>) -> io::Result<()> {
    let mut buf = Vec::new();
    // Whatever an earlier, abandoned dump left.
    while let Received::Datagram { .. } | Received::Overrun = sock.receive(&mut buf)? {}
    let seq = sock.request_dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    let end = Instant::now() + NAMES_TIMEOUT;
    loop {
        match sock.receive(&mut buf)? {
            Received::Datagram { sender: 0 } => {
                for (h, p) in nl::split(&buf).0 {
                    if h.sequence_number != seq || h.port_number != sock.port() {
                        continue;
                    }
                    match h.message_type {
                        NLMSG_DONE => return Ok(()),
                        NLMSG_ERROR => {
                            let code = error_code(p).unwrap_or(0).saturating_neg();
                            return Err(io::Error::from_raw_os_error(code));
                        }
                        RTM_NEWLINK => {
                            // struct ifinfomsg: family, pad, type (2), index (4), flags, change
                            let index = p
                                .get(4..8)
                                .and_then(|b| b.try_into().ok())
                                .map(i32::from_ne_bytes)
                                .and_then(|i| u32::try_from(i).ok());
                            let name = p.get(16..).and_then(|a| {
                                Attrs::new(a)
                                    .find(|(k, _)| *k == IFLA_IFNAME)
                                    .map(|(_, v)| {
                                        let v = v.split(|b| *b == 0).next().unwrap_or_default();
                                        String::from_utf8_lossy(v).into_owned()
                                    })
                            });
                            if let (Some(i), Some(n)) = (index, name) {
                                names.insert(i, n);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Received::Datagram { .. } => {}
            Received::Overrun => return Err(io::Error::other("link dump overran")),
            Received::Empty => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() || !wait_readable(sock, left)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "link dump unanswered",
                    ));
                }
            }
        }
    }
}

impl Watch for DropWatch {
    fn name(&self) -> &'static str {
        "drops"
    }

    fn open(&self) -> io::Result<NlSocket> {
        let mut sock = NlSocket::open(NETLINK_NETFILTER, &[], self.config.receive_buffer)?;
        let seq = sock.next_seq();
        let group = self.config.group;
        sock.send_raw(&nflog::bind_request(
            group,
            self.config.copy_range,
            FLUSH_CS,
            seq,
        ))?;
        wait_ack(&sock, seq, ACK_TIMEOUT).map_err(|e| {
            let why = if e.kind() == io::ErrorKind::PermissionDenied {
                " (needs CAP_NET_ADMIN; also refused when another socket listens on the group)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("binding nflog group {group}: {e}{why}"))
        })?;
        Ok(sock)
    }

    fn sync(&mut self, _sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        if self.next.is_none() {
            self.next = Some(Instant::now() + self.config.interval);
        }
        out.ready();
        Ok(())
    }

    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        _sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<()> {
        if sender != 0 {
            out.update(|s| s.ignored += 1);
            return Ok(());
        }
        let (messages, left) = nl::split(data);
        if left > 0 {
            out.update(|s| s.malformed += 1);
        }
        for (header, payload) in messages {
            out.update(|s| s.messages += 1);
            let subsys = header.message_type >> 8;
            let kind = header.message_type & 0xff;
            if subsys != nflog::NFNL_SUBSYS_ULOG || kind != nflog::NFULNL_MSG_PACKET {
                // A late answer, or something this monitor did not ask for.
                continue;
            }
            let Some(p) = nflog::packet(payload) else {
                out.update(|s| s.malformed += 1);
                continue;
            };
            match p.prefix.and_then(chain_key) {
                Some(chain) => {
                    out.seen("packet");
                    let headers = p.payload.and_then(|b| nflog::headers(p.family, b));
                    self.summary.add(chain, p.indev, p.outdev, headers);
                }
                None => {
                    out.seen("foreign");
                    self.summary.foreign();
                }
            }
        }
        Ok(())
    }

    fn overrun(&mut self, _sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        // Log messages were lost; nothing to read again. The record says it is incomplete.
        self.summary.overruns += 1;
        Ok(())
    }

    fn overrun_details(&self) -> Value {
        json!({ "group": self.config.group })
    }

    fn deadline(&self) -> Option<Instant> {
        self.next
    }

    fn timer(&mut self, now: Instant, _sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        out.seen("interval");
        if self.summary.any() {
            self.record(out);
        }
        self.summary = Summary::new(self.config.max_tracked);
        let interval = self.config.interval.max(Duration::from_millis(10));
        let mut next = self.next.unwrap_or(now) + interval;
        if next <= now {
            // Late (a slow sink): start again from now rather than catch up.
            next = now + interval;
        }
        self.next = Some(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::tests::{Rng, ipv4_packet, packet_message};

    fn h(src: &str, proto: u8, port: Option<u16>) -> Option<Headers> {
        Some(Headers {
            src: src.parse().unwrap(),
            proto,
            dport: port,
        })
    }

    #[test]
    fn prefixes_map_to_chains_and_others_are_foreign() {
        assert_eq!(chain_key(b"mamori drop input: ").as_deref(), Some("input"));
        assert_eq!(
            chain_key(b"mamori drop forward: ").as_deref(),
            Some("forward")
        );
        assert_eq!(
            chain_key(b"mamori drop spoofed: ").as_deref(),
            Some("spoofed")
        );
        assert_eq!(chain_key(b"mamori r12: ").as_deref(), Some("r12"));
        assert_eq!(chain_key(b"mamori drop x\"y: ").as_deref(), Some("other"));
        assert_eq!(chain_key(b"mamori : ").as_deref(), Some("other"));
        assert_eq!(
            chain_key(&[b"mamori ".as_ref(), &[b'a'; 40]].concat()).as_deref(),
            Some("other")
        );
        assert_eq!(chain_key(b"mamori"), None);
        assert_eq!(chain_key(b"ulogd: "), None);
        assert_eq!(chain_key(b"MAMORI drop input: "), None);
        assert_eq!(chain_key(b""), None);
    }

    #[test]
    fn a_summary_counts_chains_protocols_sources_ports_and_interfaces() {
        let mut s = Summary::new(DEFAULT_MAX_TRACKED);
        assert!(!s.any());
        s.foreign();
        assert!(!s.any(), "foreign messages alone record nothing");
        for _ in 0..5 {
            s.add("input".into(), Some(2), None, h("192.0.2.7", 6, Some(22)));
        }
        s.add("input".into(), Some(2), None, h("192.0.2.8", 17, Some(53)));
        s.add(
            "forward".into(),
            Some(2),
            Some(3),
            h("2001:db8::9", 58, None),
        );
        s.add("spoofed".into(), Some(9), None, None);
        assert!(s.any());
        let names = BTreeMap::from([(2, "wan0".to_string()), (3, "lan0".to_string())]);
        let d = s.details(Duration::from_secs(60), 1, &names);
        assert_eq!(d["interval_s"], 60);
        assert_eq!(d["logged"], 8);
        assert_eq!(d["sampled"], true);
        assert_eq!(d["foreign"], 1);
        assert_eq!(
            d["by_chain"],
            json!({"input": 6, "forward": 1, "spoofed": 1})
        );
        assert_eq!(
            d["by_proto"],
            json!({"tcp": 5, "udp": 1, "icmpv6": 1, "unknown": 1})
        );
        assert_eq!(
            d["top_sources"][0],
            json!({"address": "192.0.2.7", "count": 5})
        );
        assert_eq!(d["top_sources"].as_array().unwrap().len(), 3);
        assert_eq!(
            d["top_ports"],
            json!([
                {"proto": "tcp", "port": 22, "count": 5},
                {"proto": "udp", "port": 53, "count": 1},
            ])
        );
        assert_eq!(
            d["interfaces"],
            json!({"in": {"wan0": 7, "ifindex 9": 1}, "out": {"lan0": 1}})
        );
        assert_eq!(d["sources"], json!({"tracked": 3, "other": 0, "cap": 4096}));
        assert!(d.get("incomplete").is_none());
        let d = s.details(Duration::from_millis(1500), 1, &names);
        assert_eq!(d["interval_s"], 1.5);
    }

    /// 10,000 distinct sources and ports against the default cap: 4096 are tracked, the rest
    /// counted as other, the record lists ten.
    #[test]
    fn the_cap_holds_with_many_sources_and_ports() {
        let mut s = Summary::new(DEFAULT_MAX_TRACKED);
        for i in 0..10_000u32 {
            let a = std::net::Ipv4Addr::from(0xc633_0000 + i);
            let port = u16::try_from(i).unwrap();
            s.add(
                format!("r{i}"),
                Some(i),
                None,
                Some(Headers {
                    src: IpAddr::V4(a),
                    proto: 6,
                    dport: Some(port),
                }),
            );
        }
        assert!(s.sources.len() <= DEFAULT_MAX_TRACKED);
        assert!(s.ports.len() <= DEFAULT_MAX_TRACKED);
        assert!(s.by_chain.len() <= MAX_NAMES + 1);
        assert!(s.in_if.len() <= MAX_NAMES);
        let d = s.details(DEFAULT_INTERVAL, 1, &BTreeMap::new());
        assert_eq!(d["logged"], 10_000);
        assert_eq!(d["sources"]["tracked"], 4096);
        assert_eq!(d["sources"]["other"], 10_000 - 4096);
        assert_eq!(d["ports"]["other"], 10_000 - 4096);
        assert_eq!(d["top_sources"].as_array().unwrap().len(), TOP);
        assert_eq!(d["top_ports"].as_array().unwrap().len(), TOP);
        assert_eq!(d["by_chain"]["other"], 10_000 - 64);
        assert_eq!(d["interfaces"]["in"]["other"], 10_000 - 64);
        assert!(d.to_string().len() < 16 * 1024, "{}", d.to_string().len());
    }

    #[test]
    fn corrupted_messages_counted_into_a_summary_never_panic() {
        let sample = packet_message(
            1,
            b"mamori drop input: ",
            2,
            &ipv4_packet([192, 0, 2, 1], [10, 0, 0, 1], 17, 53),
        );
        let mut s = Summary::new(16);
        let mut rng = Rng::new(7);
        for _ in 0..20_000 {
            let mut m = sample.clone();
            let at = rng.below(m.len());
            m[at] ^= u8::try_from(rng.next() & 0xff).unwrap_or(1);
            m.truncate(m.len() - rng.below(8));
            if let Some(p) = nflog::packet(&m) {
                match p.prefix.and_then(chain_key) {
                    Some(c) => s.add(
                        c,
                        p.indev,
                        p.outdev,
                        p.payload.and_then(|b| nflog::headers(p.family, b)),
                    ),
                    None => s.foreign(),
                }
            }
        }
        assert!(s.sources.len() <= 16);
        let _ = s.details(DEFAULT_INTERVAL, 1, &BTreeMap::new());
    }
}
