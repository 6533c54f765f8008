//! Network interface monitor (S3.1-35 G, hardware changes): `interface_added` when a link
//! index the monitor has not seen appears, `interface_removed` on `RTM_DELLINK`.
//!
//! Listens to rtnetlink's `RTNLGRP_LINK` on its own socket (no capability needed), so it runs
//! and fails independently of the link monitor. The interfaces present at start are the
//! baseline and are not recorded. After an overrun the links are read again and the
//! differences recorded with `"resync": true`. An interface moved into another network
//! namespace disappears from this one and is recorded as removed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use crate::nl::{NETLINK_ROUTE, NlSocket};
use crate::rtnl::{DumpKind, Dumps, Item, Link, RTNLGRP_LINK, Update};
use crate::worker::{Out, Watch};
use crate::{DEFAULT_RECEIVE_BUFFER, Prepared};

/// Settings of the interface monitor.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// The socket receive buffer to ask for, in bytes.
    pub receive_buffer: usize,
}

impl Default for InterfaceConfig {
    fn default() -> Self {
        Self {
            receive_buffer: DEFAULT_RECEIVE_BUFFER,
        }
    }
}

/// Opens the interface monitor's socket (rtnetlink; no capability needed).
pub fn open(config: InterfaceConfig) -> io::Result<Prepared> {
    let watch = InterfaceWatch {
        config,
        dumps: Dumps::default(),
        known: BTreeMap::new(),
        seen: None,
        synced: false,
        resyncing: false,
    };
    let sock = watch.open()?;
    Ok(Prepared::one(Box::new(watch), sock))
}

struct InterfaceWatch {
    config: InterfaceConfig,
    dumps: Dumps,
    known: BTreeMap<u32, Link>,
    seen: Option<BTreeSet<u32>>,
    synced: bool,
    resyncing: bool,
}

impl InterfaceWatch {
    fn emit(&self, kind: EventKind, link: &Link, out: &Out) {
        let mut details = json!({
            "interface": link.name,
            "index": link.index,
            "mac": link.mac,
            "kind": link.kind,
        });
        if self.resyncing {
            details["resync"] = json!(true);
        }
        out.emit(Event::new(kind, Outcome::Success).details(details));
    }

    fn dump(&mut self, sock: &mut NlSocket) -> io::Result<()> {
        self.dumps.reset();
        self.dumps.request(DumpKind::Links, sock)?;
        self.note_started();
        Ok(())
    }

    fn note_started(&mut self) {
        if !self.dumps.take_started().is_empty() {
            self.seen = Some(BTreeSet::new());
        }
    }
}

impl Watch for InterfaceWatch {
    fn name(&self) -> &'static str {
        "interfaces"
    }

    fn open(&self) -> io::Result<NlSocket> {
        NlSocket::open(NETLINK_ROUTE, &[RTNLGRP_LINK], self.config.receive_buffer)
    }

    fn sync(&mut self, sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        self.resyncing = self.synced;
        self.dump(sock)
    }

    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<()> {
        for item in self.dumps.parse(data, sender, sock, out)? {
            match item {
                Item::Update {
                    update: Update::NewLink(m),
                    from_dump,
                } => {
                    let link = Link::from_message(&m);
                    if from_dump && let Some(seen) = self.seen.as_mut() {
                        seen.insert(link.index);
                    }
                    let new = !self.known.contains_key(&link.index);
                    if new && self.synced {
                        self.emit(EventKind::InterfaceAdded, &link, out);
                    }
                    self.known.insert(link.index, link);
                }
                Item::Update {
                    update: Update::DelLink(m),
                    ..
                } => {
                    let link = self
                        .known
                        .remove(&m.header.index)
                        .unwrap_or_else(|| Link::from_message(&m));
                    if self.synced {
                        self.emit(EventKind::InterfaceRemoved, &link, out);
                    }
                }
                Item::Update { .. } => {}
                Item::DumpDone { complete, .. } => {
                    let seen = self.seen.take();
                    if !complete {
                        continue;
                    }
                    if let Some(seen) = seen {
                        let gone: Vec<Link> = self
                            .known
                            .iter()
                            .filter(|(i, _)| !seen.contains(i))
                            .map(|(_, l)| l.clone())
                            .collect();
                        for link in gone {
                            self.known.remove(&link.index);
                            if self.synced {
                                self.emit(EventKind::InterfaceRemoved, &link, out);
                            }
                        }
                    }
                    if !self.synced {
                        self.synced = true;
                        out.ready();
                    }
                    self.resyncing = false;
                }
            }
        }
        self.note_started();
        Ok(())
    }

    fn overrun(&mut self, sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        self.resyncing = self.synced;
        self.dump(sock)
    }

    fn overrun_details(&self) -> serde_json::Value {
        json!({ "interfaces_known": self.known.len() })
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        self.dumps.deadline()
    }

    fn timer(
        &mut self,
        now: std::time::Instant,
        sock: &mut NlSocket,
        _out: &Out,
    ) -> io::Result<()> {
        self.dumps.timer(now, sock)?;
        self.note_started();
        Ok(())
    }
}
