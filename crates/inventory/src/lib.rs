//! The port and service inventory (S3.1-23 R1, S3.1-26 R1).
//!
//! [`listeners`] is the listener registry: every socket the product can open, and every service
//! it deliberately does not serve, declared once with its purpose (English and Japanese), its
//! transport, where its address comes from, when it opens, what authentication it needs and which
//! requirement it answers. The open-port list in `docs/en/ports.md` and `docs/ja/ports.md` is
//! checked against it by a test, and `GET /api/v1/system/ports` serves it.
//!
//! [`scan`] reads the live sockets of the calling process's network namespace
//! (`/proc/net/{tcp,tcp6,udp,udp6}`: TCP in LISTEN, UDP bound and not connected) and attributes
//! each to a process through `/proc/<pid>/fd`. [`check`] compares the two into an
//! [`Inventory`]: what is live, what is live and not declared (`unexpected`), what is declared
//! and not live (`missing`).
//!
//! A listener on a [`PortSource::Fixed`] port (the wan's DHCP client on UDP 68) is open only
//! while its process runs: a socket there answers to it only when the declared process
//! ([`Holder`]) holds it — any other process on that port is unexpected — and it is never
//! missing.
//!
//! Who reads `/proc`: the management process is confined (landlock gives it only the state
//! directory; after dropping to the management user it could not read root's `/proc/<pid>/fd`
//! anyway), so the scan runs in the privileged parent on request (`Request::Sockets` in
//! `mamori-privsep`), which is why this is a crate of its own: the parent scans, the management
//! process compares and serves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod registry;

pub use registry::{
    Direction, Exposure, Holder, Lang, Listener, PortSource, Text, listeners, markdown_table,
};

/// TCP or UDP.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP (a listening socket).
    Tcp,
    /// UDP (a bound, unconnected socket).
    Udp,
    /// A Unix domain socket (not reachable from the network).
    Unix,
}

/// The address family a socket table belongs to (`tcp`/`udp` or `tcp6`/`udp6`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `/proc/net/tcp`, `/proc/net/udp`.
    Ipv4,
    /// `/proc/net/tcp6`, `/proc/net/udp6` (also v4-mapped addresses of a dual-stack socket).
    Ipv6,
}

/// Which process holds a socket, as far as the product can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// mamorid itself: the privileged parent (or the single process on a laptop).
    Mamorid,
    /// mamorid's management process (a child of the parent running the same executable).
    MamoridManagement,
    /// The chronyd that mamorid started.
    Chronyd,
    /// A dhcpcd that mamorid's privileged parent started for a wan interface with DHCP, or one
    /// of its helper processes (same process group, command name `dhcpcd`).
    Dhcpcd,
    /// Any other process in the namespace.
    Other,
}

/// The process a socket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub name: String,
    /// What it is to mamori.
    pub role: Role,
}

/// One live socket that accepts traffic from the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSocket {
    /// TCP or UDP.
    pub transport: Transport,
    /// The table it was read from.
    pub family: Family,
    /// Local address (v4-mapped IPv6 addresses are shown as IPv4).
    pub address: IpAddr,
    /// Local port.
    pub port: u16,
    /// The socket's inode.
    pub inode: u64,
    /// The process holding it; `None` when no readable `/proc/<pid>/fd` names it.
    pub owner: Option<Owner>,
}

/// A live socket and the registry entry it answers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Checked {
    /// The socket.
    #[serde(flatten)]
    pub socket: LiveSocket,
    /// The id of the listener it is (none: unexpected).
    pub listener: Option<&'static str>,
}

/// A declared, open listener that is not live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Missing {
    /// The listener's id.
    pub listener: &'static str,
    /// Its transport.
    pub transport: Transport,
    /// The address it should be bound to.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
}

/// The registry checked against the live sockets.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Inventory {
    /// Every declared listener, open or deliberately not served.
    pub declared: Vec<Listener>,
    /// Every live TCP listener and bound UDP socket in the device's network namespace.
    pub live: Vec<Checked>,
    /// Live sockets no declared listener accounts for.
    pub unexpected: Vec<LiveSocket>,
    /// Declared open listeners not found live.
    pub missing: Vec<Missing>,
}

impl Inventory {
    /// No surprise either way.
    pub fn consistent(&self) -> bool {
        self.unexpected.is_empty() && self.missing.is_empty()
    }
}

/// What this device is configured with, to resolve the registry's address sources.
#[derive(Debug, Clone, Copy)]
pub struct Configured {
    /// `--listen`: the HTTPS management listener.
    pub https: SocketAddr,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `holder` is the process that owns a socket.
fn held_by(holder: Holder, owner: Option<&Owner>) -> bool {
    matches!(
        (holder, owner.map(|o| o.role)),
        (Holder::Dhcpcd, Some(Role::Dhcpcd))
            | (
                Holder::Mamorid,
                Some(Role::Mamorid | Role::MamoridManagement)
            )
    )
}

/// Compares the registry with the live sockets.
pub fn check(configured: &Configured, live: Vec<LiveSocket>) -> Inventory {
    let declared = listeners();
    let expected: Vec<(&'static str, Transport, SocketAddr)> = declared
        .iter()
        .filter(|l| l.exposure == Exposure::Network)
        .filter_map(|l| match l.port {
            PortSource::Listen => Some((l.id, l.transport, configured.https)),
            _ => None,
        })
        .collect();
    // Open only while their process runs: matched by port and holder, on any IPv4 address
    // (dhcpcd binds the leased one), never missing.
    let clients: Vec<&Listener> = declared
        .iter()
        .filter(|l| l.exposure == Exposure::Network && matches!(l.port, PortSource::Fixed(_)))
        .collect();
    let mut live: Vec<Checked> = live
        .into_iter()
        .map(|socket| {
            let listener = expected
                .iter()
                .find(|(_, t, addr)| {
                    *t == socket.transport
                        && addr.port() == socket.port
                        && canonical(addr.ip()) == canonical(socket.address)
                })
                .map(|(id, _, _)| *id)
                .or_else(|| {
                    clients
                        .iter()
                        .find(|l| {
                            l.transport == socket.transport
                                && l.port == PortSource::Fixed(socket.port)
                                && socket.address.is_ipv4()
                                && held_by(l.holder, socket.owner.as_ref())
                        })
                        .map(|l| l.id)
                });
            Checked { socket, listener }
        })
        .collect();
    live.sort_by_key(|c| {
        (
            c.socket.transport,
            c.socket.port,
            c.socket.family,
            c.socket.address,
        )
    });
    let unexpected = live
        .iter()
        .filter(|c| c.listener.is_none())
        .map(|c| c.socket.clone())
        .collect();
    let missing = expected
        .iter()
        .filter(|(id, _, _)| !live.iter().any(|c| c.listener == Some(*id)))
        .map(|(id, t, addr)| Missing {
            listener: id,
            transport: *t,
            address: addr.ip(),
            port: addr.port(),
        })
        .collect();
    Inventory {
        declared,
        live,
        unexpected,
        missing,
    }
}

/// The pids the scanning process knows about.
#[derive(Debug, Clone, Default)]
pub struct KnownPids {
    /// The chronyd mamorid started, if it runs.
    pub chronyd: Option<u32>,
    /// The process groups of the dhcpcds mamorid started (each led by one of them): their
    /// processes called `dhcpcd` are [`Role::Dhcpcd`].
    pub dhcpcd: Vec<u32>,
}

/// Converts the TCP table's entries: sockets in LISTEN only.
pub fn from_tcp(family: Family, entries: Vec<procfs::net::TcpNetEntry>) -> Vec<LiveSocket> {
    entries
        .into_iter()
        .filter(|e| e.state == procfs::net::TcpState::Listen)
        .map(|e| socket(Transport::Tcp, family, e.local_address, e.inode))
        .collect()
}

/// Converts the UDP table's entries: bound and not connected (a connected UDP socket, such as
/// an NTP client's, takes datagrams only from its peer).
pub fn from_udp(family: Family, entries: Vec<procfs::net::UdpNetEntry>) -> Vec<LiveSocket> {
    entries
        .into_iter()
        .filter(|e| e.remote_address.port() == 0 && e.remote_address.ip().is_unspecified())
        .map(|e| socket(Transport::Udp, family, e.local_address, e.inode))
        .collect()
}

fn socket(transport: Transport, family: Family, local: SocketAddr, inode: u64) -> LiveSocket {
    LiveSocket {
        transport,
        family,
        address: canonical(local.ip()),
        port: local.port(),
        inode,
        owner: None,
    }
}

/// Reads the live sockets of the calling process's network namespace and attributes them to
/// processes. Tables that cannot be read are an error; processes whose `fd` directory cannot
/// be read (another user's, without root) leave their sockets unattributed.
pub fn scan(known: KnownPids) -> procfs::ProcResult<Vec<LiveSocket>> {
    let mut live = from_tcp(Family::Ipv4, procfs::net::tcp()?);
    live.extend(from_tcp(Family::Ipv6, procfs::net::tcp6()?));
    live.extend(from_udp(Family::Ipv4, procfs::net::udp()?));
    live.extend(from_udp(Family::Ipv6, procfs::net::udp6()?));
    let owners = owners(&known);
    for s in &mut live {
        s.owner = owners.get(&s.inode).cloned();
    }
    Ok(live)
}

fn owners(known: &KnownPids) -> HashMap<u64, Owner> {
    let me = std::process::id();
    let my_exe = std::fs::read_link("/proc/self/exe").ok();
    let mut map = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return map;
    };
    for p in all.flatten() {
        let Ok(fds) = p.fd() else { continue };
        let inodes: Vec<u64> = fds
            .flatten()
            .filter_map(|fd| match fd.target {
                procfs::process::FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect();
        if inodes.is_empty() {
            continue;
        }
        let pid = u32::try_from(p.pid()).unwrap_or(0);
        let stat = p.stat().ok();
        let name = stat.as_ref().map(|s| s.comm.clone()).unwrap_or_default();
        let ppid = stat.as_ref().map(|s| u32::try_from(s.ppid).unwrap_or(0));
        let pgrp = stat.as_ref().map(|s| u32::try_from(s.pgrp).unwrap_or(0));
        let role = if pid == me {
            Role::Mamorid
        } else if known.chronyd == Some(pid) {
            Role::Chronyd
        } else if name == "dhcpcd" && pgrp.is_some_and(|g| known.dhcpcd.contains(&g)) {
            // Its helpers (privileged, network and BPF proxies) are children of one another,
            // not of the parent; the group is the one the parent made for the dhcpcd it started.
            Role::Dhcpcd
        } else if ppid == Some(me) && my_exe.is_some() && p.exe().ok() == my_exe {
            Role::MamoridManagement
        } else {
            Role::Other
        };
        for inode in inodes {
            map.insert(
                inode,
                Owner {
                    pid,
                    name: name.clone(),
                    role,
                },
            );
        }
    }
    map
}

#[cfg(test)]
mod tests;
