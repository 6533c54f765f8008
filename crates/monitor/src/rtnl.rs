//! rtnetlink pieces shared by the link and interface monitors: what a link message says, and a
//! driver for dumps (one at a time per socket, as the kernel requires), told apart from
//! multicast notifications by the reply's port and sequence number.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NetlinkDeserializable, NetlinkHeader,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use serde_json::json;

use crate::nl::{self, NlSocket};
use crate::worker::Out;

/// Multicast groups (`linux/rtnetlink.h`, `enum rtnetlink_groups`).
pub(crate) const RTNLGRP_LINK: u32 = 1;
pub(crate) const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub(crate) const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// What one link message says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    /// The interface's own hardware address (not personal data: it identifies the device's
    /// port, not a person).
    pub mac: Option<String>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the driver reports carrier.
    pub carrier: bool,
    /// RFC 2863 operational state as the kernel names it (`UP`, `DOWN`, `LOWERLAYERDOWN`, …).
    pub oper: String,
    /// The link kind for virtual interfaces (`veth`, `vlan`, `bridge`, …).
    pub kind: Option<String>,
}

impl Link {
    /// Parses a link message.
    pub(crate) fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            oper: "UNKNOWN".to_string(),
            kind: None,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(m) if !m.is_empty() => link.mac = Some(format_mac(m)),
                LinkAttribute::OperState(s) => link.oper = s.to_string(),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.kind = Some(match k {
                                InfoKind::Other(s) => s.clone(),
                                k => k.to_string(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// Whether the interface can carry traffic: administratively up and with carrier.
    ///
    /// Carrier (`IFF_LOWER_UP`) rather than `IFF_RUNNING`: the kernel updates the carrier bit
    /// when the driver reports it, while the operational state follows through the link-watch
    /// worker, which batches changes (up to a second late); the recorded `oper_state` is the
    /// one the kernel had at that moment.
    pub(crate) fn up(&self) -> bool {
        self.admin_up && self.carrier
    }

    /// The fields every link event carries.
    pub(crate) fn details(&self) -> serde_json::Value {
        json!({
            "interface": self.name,
            "index": self.index,
            "mac": self.mac,
            "kind": self.kind,
            "admin_up": self.admin_up,
            "carrier": self.carrier,
            "oper_state": self.oper,
        })
    }
}

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Which table a dump reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DumpKind {
    Links,
    Routes,
}

/// An rtnetlink message as the monitors see it.
#[derive(Debug)]
pub(crate) enum Update {
    NewLink(LinkMessage),
    DelLink(LinkMessage),
    NewRoute(RouteMessage),
    DelRoute(RouteMessage),
}

/// What a datagram held, in order.
#[derive(Debug)]
pub(crate) enum Item {
    /// A notification or a dump entry (`from_dump` tells which).
    Update { update: Update, from_dump: bool },
    /// A dump finished; `complete` is false when the kernel flagged it interrupted or failed
    /// (the dump has been asked for again).
    DumpDone { kind: DumpKind, complete: bool },
}

/// A dump with no reply for this long is asked for again: after an overrun its request's
/// answer (or an `EBUSY` refusal while an abandoned dump still ran) may have been dropped with
/// the rest of the queue.
const DUMP_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause before asking again for a dump the kernel refused (`EBUSY` while an earlier dump of
/// this socket still runs).
const DUMP_RETRY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct InFlight {
    seq: u32,
    kind: DumpKind,
    interrupted: bool,
    last_reply: Instant,
}

/// Runs dumps one after another on one socket.
#[derive(Debug, Default)]
pub(crate) struct Dumps {
    queue: VecDeque<DumpKind>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    started: Vec<DumpKind>,
}

impl Dumps {
    /// Asks for a dump of `kind` (after the ones already waiting; a kind already waiting is not
    /// asked for twice).
    pub(crate) fn request(&mut self, kind: DumpKind, sock: &mut NlSocket) -> io::Result<()> {
        if !self.queue.contains(&kind) {
            self.queue.push_back(kind);
        }
        self.pump(sock)
    }

    /// Forgets the dumps in flight and waiting (after an overrun their replies may be lost).
    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.in_flight = None;
        self.retry_at = None;
        self.started.clear();
    }

    /// The dumps that were sent to the kernel since the last call, in order. Their entries
    /// arrive in later datagrams, so a caller that looks after each `request`, `parse` and
    /// `timer` can prepare for them in time.
    pub(crate) fn take_started(&mut self) -> Vec<DumpKind> {
        std::mem::take(&mut self.started)
    }

    /// Whether a dump is running or waiting.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some() || !self.queue.is_empty()
    }

    /// When [`Dumps::timer`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (&self.in_flight, self.retry_at) {
            (Some(f), _) => Some(f.last_reply + DUMP_TIMEOUT),
            (None, Some(t)) => Some(t),
            (None, None) => None,
        }
    }

    /// Re-sends a dump whose replies stopped, or one the kernel refused a moment ago.
    pub(crate) fn timer(&mut self, now: Instant, sock: &mut NlSocket) -> io::Result<()> {
        if let Some(f) = &self.in_flight
            && now >= f.last_reply + DUMP_TIMEOUT
        {
            tracing::debug!(kind = ?f.kind, "dump unanswered; asking again");
            let kind = f.kind;
            self.in_flight = None;
            self.queue.push_front(kind);
            return self.pump(sock);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            return self.pump(sock);
        }
        Ok(())
    }

    fn pump(&mut self, sock: &mut NlSocket) -> io::Result<()> {
        if self.in_flight.is_some() || self.retry_at.is_some() {
            return Ok(());
        }
        let Some(kind) = self.queue.pop_front() else {
            return Ok(());
        };
        let seq = match kind {
            DumpKind::Links => {
                sock.request_dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
            }
            DumpKind::Routes => {
                sock.request_dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))?
            }
        };
        self.in_flight = Some(InFlight {
            seq,
            kind,
            interrupted: false,
            last_reply: Instant::now(),
        });
        self.started.push(kind);
        Ok(())
    }

    /// Parses a datagram from `sender` into items. Messages that do not parse are counted in
    /// the status (`malformed`) and skipped.
    pub(crate) fn parse(
        &mut self,
        datagram: &[u8],
        sender: u32,
        sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<Vec<Item>> {
        let mut items = Vec::new();
        if sender != 0 {
            // Only the kernel speaks on these groups; anything else is not trusted.
            out.update(|s| s.ignored += 1);
            return Ok(items);
        }
        let (messages, left) = nl::split(datagram);
        if left > 0 {
            out.update(|s| s.malformed += 1);
        }
        for (header, payload) in messages {
            out.update(|s| s.messages += 1);
            let ours = header.port_number == sock.port();
            let dump = match &mut self.in_flight {
                Some(f) if ours && header.sequence_number == f.seq => {
                    f.last_reply = Instant::now();
                    if header.flags & NLM_F_DUMP_INTR != 0 {
                        f.interrupted = true;
                    }
                    Some(f.kind)
                }
                _ => None,
            };
            if let Some(kind) = dump
                && (header.message_type == NLMSG_DONE || header.message_type == NLMSG_ERROR)
            {
                let refused = header.message_type == NLMSG_ERROR;
                let complete = !refused && !self.in_flight.as_ref().is_some_and(|f| f.interrupted);
                self.in_flight = None;
                if !complete {
                    // Interrupted by changes while it ran (ask again now), or refused (EBUSY
                    // while an abandoned dump runs: ask again shortly).
                    self.queue.push_front(kind);
                    if refused {
                        self.retry_at = Some(Instant::now() + DUMP_RETRY);
                    }
                }
                items.push(Item::DumpDone { kind, complete });
                self.pump(sock)?;
                continue;
            }
            // A notification carries the port of the process whose request caused it (an
            // `ip route del` names ip's socket); the datagram itself came from the kernel.
            // Replies of a dump abandoned after an overrun carry our port and an old sequence
            // number: they are current state and are taken as notifications.
            if header.message_type == NLMSG_DONE || header.message_type == NLMSG_ERROR {
                continue;
            }
            match decode(&header, payload) {
                Ok(Some(update)) => items.push(Item::Update {
                    update,
                    from_dump: dump.is_some(),
                }),
                Ok(None) => {}
                Err(()) => out.update(|s| s.malformed += 1),
            }
        }
        Ok(items)
    }
}

fn decode(header: &NetlinkHeader, payload: &[u8]) -> Result<Option<Update>, ()> {
    match RouteNetlinkMessage::deserialize(header, payload) {
        Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(Update::NewLink(m))),
        Ok(RouteNetlinkMessage::DelLink(m)) => Ok(Some(Update::DelLink(m))),
        Ok(RouteNetlinkMessage::NewRoute(m)) => Ok(Some(Update::NewRoute(m))),
        Ok(RouteNetlinkMessage::DelRoute(m)) => Ok(Some(Update::DelRoute(m))),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::debug!(error = %e, "rtnetlink message did not parse");
            Err(())
        }
    }
}
