//! Firewall ruleset monitor (S3.1-35 H): one `firewall_ruleset_changed` record per nftables
//! generation.
//!
//! Listens on `NETLINK_NETFILTER` group `NFNLGRP_NFTABLES`. The kernel announces each committed
//! transaction as its object notifications (new/deleted table, chain, rule, set, set elements,
//! stateful object, flowtable) followed by one `NFT_MSG_NEWGEN` carrying the new generation id
//! and the pid and name of the process that committed it. The monitor counts the objects until
//! that message and records one summary: generation, process, counts, and the tables and chains
//! touched (names capped at [`MAX_NAMES`] per list). Rule contents and set elements (which may
//! hold addresses) are counted, never copied.
//!
//! **Capability.** Joining `NFNLGRP_NFTABLES` needs CAP_NET_ADMIN (nfnetlink does not set
//! `NL_CFG_F_NONROOT_RECV`); measured: an unprivileged process gets `EPERM`. Either run this
//! monitor where CAP_NET_ADMIN is held, or let such a process open the socket and pass the
//! descriptor ([`open`] returns it unstarted): the membership is checked when joining, not when
//! receiving. Asking the kernel for the current generation (`NFT_MSG_GETGEN`) also needs the
//! capability in the *sending* process; without it the monitor still works, it only cannot
//! name the generation it started from.
//!
//! **Parsing.** Only the top-level attributes this record needs (table, chain and object names,
//! the generation attributes) are read, with `netlink-packet-core`'s attribute iterator. Rule
//! expressions are not decoded, so an expression this code does not know cannot cost the
//! record.
//!
//! **Overrun.** The objects counted so far are dropped, a `GETGEN` is sent if allowed, and the
//! next record says `"incomplete": true` and how many generations were skipped.
//!
//! **mamori's own loads.** The privileged parent may own this socket and hand it over
//! ([`FirewallConfig::socket`]): then it leaves the group around each load of mamori's own
//! ruleset, so the kernel builds no notification for it (at 10,000 rules they cost 15–20 % of
//! the load), and the management process notes those generations in [`OwnLoads`]. They are
//! recorded by the configuration pipeline (`config_applied`, `config_committed`, with revision
//! and diff), not here, and are not counted as skipped when the next generation arrives.
//!
//! Firewall start/stop and drop summaries (the firewall issue) will be their own event kinds
//! with the same `generation`/`tables` vocabulary in their details.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use mamori_audit::{Event, EventKind, Outcome};
use netlink_packet_core::{NLM_F_REQUEST, NlaBuffer, NlasIterator};
use serde_json::json;

use crate::nl::{self, NETLINK_NETFILTER, NlSocket};
use crate::worker::{Out, Watch};
use crate::{DEFAULT_RECEIVE_BUFFER, Prepared};

/// `NFNLGRP_NFTABLES` (`linux/netfilter/nfnetlink.h`).
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Names listed per list in one record; the counts are always complete.
pub const MAX_NAMES: usize = 64;

/// `NFT_MSG_*` (`linux/netfilter/nf_tables.h`).
mod msg {
    pub const NEWTABLE: u16 = 0;
    pub const DELTABLE: u16 = 2;
    pub const NEWCHAIN: u16 = 3;
    pub const DELCHAIN: u16 = 5;
    pub const NEWRULE: u16 = 6;
    pub const DELRULE: u16 = 8;
    pub const NEWSET: u16 = 9;
    pub const DELSET: u16 = 11;
    pub const NEWSETELEM: u16 = 12;
    pub const DELSETELEM: u16 = 14;
    pub const NEWGEN: u16 = 15;
    pub const GETGEN: u16 = 16;
    pub const NEWOBJ: u16 = 18;
    pub const DELOBJ: u16 = 20;
    pub const NEWFLOWTABLE: u16 = 22;
    pub const DELFLOWTABLE: u16 = 24;
    pub const DESTROYTABLE: u16 = 26;
    pub const DESTROYCHAIN: u16 = 27;
    pub const DESTROYRULE: u16 = 28;
    pub const DESTROYSET: u16 = 29;
    pub const DESTROYSETELEM: u16 = 30;
    pub const DESTROYOBJ: u16 = 31;
    pub const DESTROYFLOWTABLE: u16 = 32;
}

/// Settings of the firewall monitor.
#[derive(Debug, Clone)]
pub struct FirewallConfig {
    /// The socket receive buffer to ask for, in bytes. A large ruleset load announces every
    /// rule; the default holds tens of thousands of notifications. Not used for a given
    /// [`FirewallConfig::socket`].
    pub receive_buffer: usize,
    /// A socket already subscribed to the nftables group (the privileged parent's, shared),
    /// used instead of opening one.
    pub socket: Option<Arc<OwnedFd>>,
    /// The generations mamori committed itself with notifications paused.
    pub own: Arc<OwnLoads>,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            receive_buffer: 4 * DEFAULT_RECEIVE_BUFFER,
            socket: None,
            own: Arc::default(),
        }
    }
}

/// The nftables generations of mamori's own loads, made while the monitor's socket had left
/// the group: noted by whoever applies (the management process, from the parent's answer) and
/// taken out of the monitor's count of skipped generations.
#[derive(Debug, Default)]
pub struct OwnLoads {
    generations: Mutex<VecDeque<u32>>,
}

/// Own generations remembered; older ones are forgotten (then counted as skipped).
const OWN_KEPT: usize = 256;

impl OwnLoads {
    /// Notes `generation` as one of mamori's own loads.
    pub fn note(&self, generation: u32) {
        let mut g = self
            .generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.len() == OWN_KEPT {
            g.pop_front();
        }
        g.push_back(generation);
    }

    /// How many of the generations after `last` up to and excluding `now` were mamori's own
    /// (forgetting them).
    fn take_between(&self, last: u32, now: u32) -> u32 {
        let mut g = self
            .generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let span = now.wrapping_sub(last);
        let before = g.len();
        g.retain(|x| {
            let d = x.wrapping_sub(last);
            !(d > 0 && d < span)
        });
        u32::try_from(before - g.len()).unwrap_or(u32::MAX)
    }
}

/// Opens the firewall monitor's socket, or adopts the one given in `config`. Opening needs
/// CAP_NET_ADMIN (see the module documentation) and fails with `EPERM` without it.
pub fn open(config: FirewallConfig) -> io::Result<Prepared> {
    let watch = FirewallWatch {
        config,
        batch: Batch::default(),
        generation: None,
        incomplete: false,
        getgen_seq: None,
    };
    let sock = watch.open()?;
    Ok(Prepared::one(Box::new(watch), sock))
}

/// What a kind of object did in one generation.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    added: u64,
    deleted: u64,
}

/// The objects of one generation, until its `NEWGEN`.
#[derive(Debug, Default)]
struct Batch {
    counts: BTreeMap<&'static str, Count>,
    /// (family, table) → "added" / "deleted" / "changed".
    tables: BTreeMap<(String, String), &'static str>,
    /// (family, table, chain) → rules added/deleted, and the chain's own change if any.
    chains: BTreeMap<(String, String, String), ChainChange>,
}

#[derive(Debug, Default)]
struct ChainChange {
    chain: Option<&'static str>,
    rules: Count,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn count(&mut self, kind: &'static str, added: bool, n: u64) {
        let c = self.counts.entry(kind).or_default();
        if added {
            c.added += n;
        } else {
            c.deleted += n;
        }
    }

    fn touch_table(&mut self, family: &str, table: &str, change: &'static str) {
        let e = self
            .tables
            .entry((family.to_string(), table.to_string()))
            .or_insert(change);
        // "added"/"deleted" of the table itself win over "changed" (its contents).
        if change != "changed" {
            *e = change;
        }
    }
}

struct FirewallWatch {
    config: FirewallConfig,
    batch: Batch,
    /// The last generation seen.
    generation: Option<u32>,
    /// Notifications were lost since the last record.
    incomplete: bool,
    /// Sequence number of our own GETGEN request, whose reply is not a change.
    getgen_seq: Option<u32>,
}

impl FirewallWatch {
    /// Asks the kernel for the current generation. Needs CAP_NET_ADMIN in this process; without
    /// it the kernel answers EPERM, which is harmless here.
    fn ask_generation(&mut self, sock: &mut NlSocket) {
        let seq = sock.next_seq();
        let mut m = Vec::with_capacity(20);
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg::GETGEN).to_ne_bytes());
        m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0
        m.extend_from_slice(&[0, 0, 0, 0]);
        match sock.send_raw(&m) {
            Ok(()) => self.getgen_seq = Some(seq),
            Err(e) => tracing::debug!(error = %e, "nftables GETGEN not sent"),
        }
    }

    fn object(&mut self, kind: u16, family: &str, attrs: &Attrs) {
        use msg::*;
        let table = attrs.str(1).unwrap_or_default();
        match kind {
            NEWTABLE | DELTABLE | DESTROYTABLE => {
                let added = kind == NEWTABLE;
                self.batch.count("tables", added, 1);
                self.batch
                    .touch_table(family, &table, if added { "added" } else { "deleted" });
            }
            NEWCHAIN | DELCHAIN | DESTROYCHAIN => {
                let added = kind == NEWCHAIN;
                self.batch.count("chains", added, 1);
                self.batch.touch_table(family, &table, "changed");
                let chain = attrs.str(3).unwrap_or_default();
                self.batch
                    .chains
                    .entry((family.to_string(), table, chain))
                    .or_default()
                    .chain = Some(if added { "added" } else { "deleted" });
            }
            NEWRULE | DELRULE | DESTROYRULE => {
                let added = kind == NEWRULE;
                self.batch.count("rules", added, 1);
                self.batch.touch_table(family, &table, "changed");
                let chain = attrs.str(2).unwrap_or_default();
                let c = self
                    .batch
                    .chains
                    .entry((family.to_string(), table, chain))
                    .or_default();
                if added {
                    c.rules.added += 1;
                } else {
                    c.rules.deleted += 1;
                }
            }
            NEWSET | DELSET | DESTROYSET => {
                self.batch.count("sets", kind == NEWSET, 1);
                self.batch.touch_table(family, &table, "changed");
            }
            NEWSETELEM | DELSETELEM | DESTROYSETELEM => {
                // NFTA_SET_ELEM_LIST_ELEMENTS (3) nests one attribute per element.
                let n = attrs.nested_count(3).max(1);
                self.batch.count("set_elements", kind == NEWSETELEM, n);
                self.batch.touch_table(family, &table, "changed");
            }
            NEWOBJ | DELOBJ | DESTROYOBJ => {
                self.batch.count("objects", kind == NEWOBJ, 1);
                self.batch.touch_table(family, &table, "changed");
            }
            NEWFLOWTABLE | DELFLOWTABLE | DESTROYFLOWTABLE => {
                self.batch.count("flowtables", kind == NEWFLOWTABLE, 1);
                self.batch.touch_table(family, &table, "changed");
            }
            _ => {}
        }
    }

    fn generation(&mut self, attrs: &Attrs, out: &Out) {
        let id = attrs.u32_be(1);
        let pid = attrs.u32_be(2);
        let comm = attrs.str(3);
        let skipped = match (self.generation, id) {
            (Some(last), Some(now)) => now
                .wrapping_sub(last)
                .saturating_sub(1)
                .saturating_sub(self.config.own.take_between(last, now)),
            _ => 0,
        };
        let batch = std::mem::take(&mut self.batch);
        let counts: serde_json::Map<String, serde_json::Value> = batch
            .counts
            .iter()
            .map(|(k, c)| {
                (
                    k.to_string(),
                    json!({ "added": c.added, "deleted": c.deleted }),
                )
            })
            .collect();
        let tables: Vec<_> = batch
            .tables
            .iter()
            .take(MAX_NAMES)
            .map(|((family, name), change)| {
                json!({ "family": family, "name": name, "change": change })
            })
            .collect();
        let chains: Vec<_> = batch
            .chains
            .iter()
            .take(MAX_NAMES)
            .map(|((family, table, name), c)| {
                json!({
                    "family": family,
                    "table": table,
                    "name": name,
                    "change": c.chain.unwrap_or("changed"),
                    "rules": { "added": c.rules.added, "deleted": c.rules.deleted },
                })
            })
            .collect();
        let mut details = json!({
            "generation": id,
            "process": (pid.is_some() || comm.is_some()).then(|| json!({ "pid": pid, "name": comm })),
            "counts": counts,
            "tables": tables,
            "chains": chains,
        });
        if batch.tables.len() > MAX_NAMES || batch.chains.len() > MAX_NAMES {
            details["names_truncated"] = json!({
                "tables": batch.tables.len(),
                "chains": batch.chains.len(),
            });
        }
        if self.incomplete {
            details["incomplete"] = json!(true);
        }
        if skipped > 0 {
            details["generations_skipped"] = json!(skipped);
        }
        if batch.is_empty() && !self.incomplete && skipped == 0 {
            // A generation with no object notifications: still a commit, still recorded.
            details["note"] = json!("no object changes announced");
        }
        self.incomplete = false;
        if id.is_some() {
            self.generation = id;
        }
        out.emit(Event::new(EventKind::FirewallRulesetChanged, Outcome::Success).details(details));
    }
}

fn family_name(f: u8) -> String {
    match f {
        0 => "unspec".into(),
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        other => other.to_string(),
    }
}

/// The top-level attributes of one nftables message (after the 4-byte `nfgenmsg`).
struct Attrs<'a> {
    list: Vec<(u16, &'a [u8])>,
}

impl<'a> Attrs<'a> {
    fn parse(payload: &'a [u8]) -> Option<Self> {
        let mut list = Vec::new();
        for nla in NlasIterator::new(payload) {
            let nla: NlaBuffer<&'a [u8]> = nla.ok()?;
            let kind = nla.kind();
            let len = usize::from(nla.length()).checked_sub(4)?;
            let value = nla.into_inner().get(4..4 + len)?;
            list.push((kind, value));
        }
        Some(Self { list })
    }

    fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.list.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    fn str(&self, kind: u16) -> Option<String> {
        let v = self.get(kind)?;
        let v = v.split(|b| *b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(v).into_owned())
    }

    fn u32_be(&self, kind: u16) -> Option<u32> {
        let v = self.get(kind)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    fn nested_count(&self, kind: u16) -> u64 {
        self.get(kind).map_or(0, |v| {
            NlasIterator::new(v).filter(Result::is_ok).count() as u64
        })
    }
}

impl Watch for FirewallWatch {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn open(&self) -> io::Result<NlSocket> {
        match &self.config.socket {
            Some(fd) => NlSocket::adopt(fd.try_clone()?),
            None => NlSocket::open(
                NETLINK_NETFILTER,
                &[NFNLGRP_NFTABLES],
                self.config.receive_buffer,
            ),
        }
    }

    fn sync(&mut self, sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        self.ask_generation(sock);
        out.ready();
        Ok(())
    }

    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        sock: &mut NlSocket,
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
            let reply_to_us = header.port_number == sock.port()
                && Some(header.sequence_number) == self.getgen_seq;
            if reply_to_us {
                if subsys == NFNL_SUBSYS_NFTABLES
                    && kind == msg::NEWGEN
                    && let Some(attrs) = payload.get(4..).and_then(Attrs::parse)
                {
                    // The generation we start from: not a change.
                    self.generation = self.generation.or(attrs.u32_be(1));
                }
                self.getgen_seq = None;
                continue;
            }
            if subsys != NFNL_SUBSYS_NFTABLES {
                continue;
            }
            let (Some(fam), Some(attrs)) = (
                payload.first().copied(),
                payload.get(4..).and_then(Attrs::parse),
            ) else {
                out.update(|s| s.malformed += 1);
                continue;
            };
            out.seen(&format!("msg_{kind}"));
            if kind == msg::NEWGEN {
                self.generation(&attrs, out);
            } else {
                self.object(kind, &family_name(fam), &attrs);
            }
        }
        Ok(())
    }

    fn overrun(&mut self, sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        self.batch = Batch::default();
        self.incomplete = true;
        self.ask_generation(sock);
        Ok(())
    }

    fn overrun_details(&self) -> serde_json::Value {
        json!({ "last_generation": self.generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = Vec::new();
        v.extend_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn attributes_give_names_numbers_and_nested_counts() {
        let mut p = nla(1, b"filter\0");
        p.extend(nla(2, &42u32.to_be_bytes()));
        let mut nested = nla(1, b"a");
        nested.extend(nla(1, b"b"));
        nested.extend(nla(1, b"c"));
        p.extend(nla(3, &nested));
        let a = Attrs::parse(&p).unwrap();
        assert_eq!(a.str(1).as_deref(), Some("filter"));
        assert_eq!(a.u32_be(2), Some(42));
        assert_eq!(a.nested_count(3), 3);
        assert_eq!(a.str(9), None);
    }

    #[test]
    fn a_truncated_attribute_is_refused() {
        let mut p = nla(1, b"filter\0");
        p.truncate(6);
        assert!(Attrs::parse(&p).is_none());
    }
}
