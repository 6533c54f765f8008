//! Running `nft`: the dry run (`nft -c -f`), the load (`nft -f`) and listing; and reading the
//! kernel's nftables generation ([`Nft::generation`]).
//!
//! The script is passed on standard input (`-f -`) or as a file path; nft is started with an
//! argument vector, never through a shell. In the product the privileged parent runs these;
//! tests and the benchmark run them directly, optionally inside a network namespace
//! (`ip netns exec NAME nft ...`).
//!
//! The generation is read without nft (no nft command prints it): one `NFT_MSG_GETGEN` request
//! on a `NETLINK_NETFILTER` socket of this process, answered by the kernel with
//! `NFT_MSG_NEWGEN`. The socket talks to the local kernel only, is opened for the one request
//! and closed again, and only the generation attribute of the kernel's answer is read.
//!
//! [`NftablesListener`] is the socket the firewall monitor reads (`NFNLGRP_NFTABLES`), owned
//! by the privileged parent so that it can leave the group around mamori's own loads (see
//! [`crate::apply`], "Not announcing its own loads") and join it again: both need
//! CAP_NET_ADMIN, which the management process, which reads the socket, does not have.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockname,
    recvfrom, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::render::Ruleset;

/// Why nft did not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// nft could not be started (not installed, no permission).
    #[error("could not run nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// nft refused the script; its standard error says where.
    #[error("nft refused the ruleset (exit status {status:?}): {stderr}")]
    Rejected {
        /// nft's exit status, if it exited.
        status: Option<i32>,
        /// What nft wrote to standard error.
        stderr: String,
    },
    /// nft's output was not UTF-8.
    #[error("nft wrote output that is not UTF-8")]
    Output,
    /// The kernel's nftables generation could not be read.
    #[error("reading the nftables generation: {0}")]
    Generation(String),
}

/// How to run nft: directly, or inside a named network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nft {
    netns: Option<String>,
}

impl Nft {
    /// nft in the caller's network namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// nft inside the named network namespace (through `ip netns exec`). The name is passed as
    /// one argument, never interpreted by a shell.
    pub fn in_netns(name: &str) -> Self {
        Self {
            netns: Some(name.to_owned()),
        }
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(NftError::Spawn)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error means nft exited early; its status and stderr tell why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(NftError::Spawn)?;
        if out.status.success() {
            String::from_utf8(out.stdout).map_err(|_| NftError::Output)
        } else {
            Err(NftError::Rejected {
                status: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
            })
        }
    }

    /// Dry run: `nft -c -f -`. The kernel checks the whole batch and commits nothing.
    pub fn check(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(ruleset.as_str()))
            .map(drop)
    }

    /// Dry run of a script file: `nft -c -f PATH`.
    pub fn check_file(&self, path: &Path) -> Result<(), NftError> {
        let path = path.to_str().ok_or(NftError::Output)?;
        self.run(&["-c", "-f", path], None).map(drop)
    }

    /// Load: `nft -f -`, one transaction.
    pub fn load(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(ruleset.as_str())).map(drop)
    }

    /// `nft list tables`: one `table FAMILY NAME` per line.
    pub fn list_tables(&self) -> Result<Vec<String>, NftError> {
        Ok(self
            .run(&["list", "tables"], None)?
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// `nft -s list table inet NAME`: the table without counters or quotas, loadable again.
    pub fn list_table_stateless(&self, name: &str) -> Result<String, NftError> {
        self.run(&["-s", "list", "table", "inet", name], None)
    }

    /// `nft list ruleset` (or `nft -j list ruleset` with `json`).
    pub fn list_ruleset(&self, json: bool) -> Result<String, NftError> {
        if json {
            self.run(&["-j", "list", "ruleset"], None)
        } else {
            self.run(&["list", "ruleset"], None)
        }
    }
}

/// `NFNL_SUBSYS_NFTABLES` (`linux/netfilter/nfnetlink.h`).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN`, the kernel's answer (`linux/netfilter/nf_tables.h`).
const NFT_MSG_NEWGEN: u16 = 15;
/// `NFT_MSG_GETGEN`, the request.
const NFT_MSG_GETGEN: u16 = 16;
/// `NFTA_GEN_ID`: the generation, a big-endian `u32`.
const NFTA_GEN_ID: u16 = 1;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// The request's sequence number (one request per socket).
const GETGEN_SEQ: u32 = 1;

impl Nft {
    /// The kernel's nftables generation in this namespace: a counter the kernel moves by one
    /// for every committed nftables transaction, of any program and any table. A dry run
    /// (`nft -c`) and a refused batch do not move it, so an unchanged generation means no
    /// table changed. Needs `CAP_NET_ADMIN`.
    pub fn generation(&self) -> Result<u32, NftError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| NftError::Generation(format!("{what}: {e}"));
        let sock = open_netfilter(self.netns.as_deref())
            .map_err(|e| fail("NETLINK_NETFILTER socket", &e))?;
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(2, 0))
            .map_err(|e| fail("socket timeout", &e))?;
        let mut request = Vec::with_capacity(20);
        request.extend_from_slice(&20u32.to_ne_bytes());
        request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
        request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        request.extend_from_slice(&GETGEN_SEQ.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, resource id 0.
        request.extend_from_slice(&[0, 0, 0, 0]);
        sendto(
            sock.as_raw_fd(),
            &request,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|e| fail("GETGEN", &e))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let (n, from) = recvfrom::<NetlinkAddr>(sock.as_raw_fd(), &mut buf)
                .map_err(|e| fail("NEWGEN", &e))?;
            // Only the kernel (port 0) answers; anything else is not ours to read.
            if from.is_none_or(|a| a.pid() != 0) {
                continue;
            }
            match parse_newgen(buf.get(..n).unwrap_or_default()) {
                Some(Ok(id)) => return Ok(id),
                Some(Err(errno)) => {
                    return Err(fail("GETGEN", &nix::errno::Errno::from_raw(-errno)));
                }
                None => {}
            }
        }
    }
}

/// `NFNLGRP_NFTABLES` (`linux/netfilter/nfnetlink.h`): the nftables notifications.
const NFNLGRP_NFTABLES: u32 = 7;

/// A `NETLINK_NETFILTER` socket subscribed to the nftables notifications of its namespace,
/// which can leave and rejoin the group: the privileged parent keeps it and hands duplicates of
/// it ([`NftablesListener::share`]) to the firewall monitor, and gives it to its applier as the
/// [`crate::LoadQuiet`] of mamori's own loads.
///
/// Membership is set by binding the socket again with the same port and a new group mask (the
/// legacy `nl_groups` of `sockaddr_nl`, which covers groups 1 to 32): nix has a safe `bind`,
/// and no `NETLINK_ADD_MEMBERSHIP` option.
#[derive(Debug)]
pub struct NftablesListener {
    fd: OwnedFd,
    port: u32,
}

impl NftablesListener {
    /// Opens the socket in the caller's namespace (or the named one), asks for a receive
    /// buffer of `rcvbuf` bytes (`SO_RCVBUFFORCE`, needing CAP_NET_ADMIN like the group), and
    /// joins the group.
    pub fn open(netns: Option<&str>, rcvbuf: usize) -> std::io::Result<Self> {
        let fd = open_netfilter(netns)?;
        if rcvbuf > 0 {
            setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf)?;
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, Self::GROUPS))?;
        let port = getsockname::<NetlinkAddr>(fd.as_raw_fd())?.pid();
        Ok(Self { fd, port })
    }

    /// The group mask of `NFNLGRP_NFTABLES`.
    const GROUPS: u32 = 1 << (NFNLGRP_NFTABLES - 1);

    /// A duplicate of the socket (the same socket: the same queue, the same membership).
    pub fn share(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    fn subscribe(&self, groups: u32) -> std::io::Result<()> {
        bind(self.fd.as_raw_fd(), &NetlinkAddr::new(self.port, groups))?;
        Ok(())
    }
}

impl crate::LoadQuiet for NftablesListener {
    fn pause(&self) -> std::io::Result<()> {
        self.subscribe(0)
    }

    fn resume(&self) -> std::io::Result<()> {
        self.subscribe(Self::GROUPS)
    }
}

/// A `NETLINK_NETFILTER` socket in the caller's network namespace, or in the named one
/// (`/run/netns/NAME`, as `ip netns` keeps them): a thread of its own enters that namespace
/// (`setns` changes only the calling thread) and the socket stays bound to the namespace it
/// was created in.
fn open_netfilter(netns: Option<&str>) -> std::io::Result<OwnedFd> {
    let open = || {
        socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(std::io::Error::from)
    };
    let Some(name) = netns else {
        return open();
    };
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a network namespace name",
        ));
    }
    let ns = File::open(Path::new("/run/netns").join(name))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            open()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
    })
}

/// The generation in a datagram answering [`GETGEN_SEQ`]: `Some(Ok(id))`, `Some(Err(errno))`
/// for the kernel's error (negative errno), `None` when the datagram holds neither.
fn parse_newgen(mut data: &[u8]) -> Option<Result<u32, i32>> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
    while data.len() >= 16 {
        let len = usize::try_from(u32_at(data, 0)?).ok()?;
        let kind = u16_at(data, 4)?;
        let seq = u32_at(data, 8)?;
        if len < 16 || len > data.len() {
            return None;
        }
        let msg = data.get(..len)?;
        if seq == GETGEN_SEQ {
            if kind == NLMSG_ERROR {
                let errno = i32::from_ne_bytes(msg.get(16..20)?.try_into().ok()?);
                if errno != 0 {
                    return Some(Err(errno));
                }
            } else if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
                // nlmsghdr (16) + nfgenmsg (4), then attributes: length, type, value, padding.
                let mut attrs = msg.get(20..)?;
                while attrs.len() >= 4 {
                    let alen = usize::from(u16_at(attrs, 0)?);
                    let atype = u16_at(attrs, 2)? & 0x3fff;
                    if alen < 4 || alen > attrs.len() {
                        return None;
                    }
                    if atype == NFTA_GEN_ID && alen == 8 {
                        let id = u32::from_be_bytes(attrs.get(4..8)?.try_into().ok()?);
                        return Some(Ok(id));
                    }
                    attrs = attrs.get(alen.next_multiple_of(4).min(attrs.len())..)?;
                }
            }
        }
        data = data.get(len.next_multiple_of(4).min(data.len())..)?;
    }
    None
}

/// Dry run of a script file with the nft of this namespace: `nft -c -f PATH`.
pub fn render_check(path: &Path) -> Result<(), NftError> {
    Nft::new().check_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(16 + body.len()).unwrap_or(0).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn the_generation_is_read_from_the_answer_to_our_request_only() {
        let newgen = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;
        let mut body = vec![0, 0, 0, 0];
        // NFTA_GEN_PROC_NAME first ("nft\0"), then NFTA_GEN_ID.
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&3u16.to_ne_bytes());
        body.extend_from_slice(b"nft\0");
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&NFTA_GEN_ID.to_ne_bytes());
        body.extend_from_slice(&4242u32.to_be_bytes());
        assert_eq!(
            parse_newgen(&message(newgen, GETGEN_SEQ, &body)),
            Some(Ok(4242))
        );
        // Another sequence number first (a notification), then ours.
        let mut two = message(newgen, 99, &body);
        two.extend(message(newgen, GETGEN_SEQ, &body));
        assert_eq!(parse_newgen(&two), Some(Ok(4242)));
        assert_eq!(parse_newgen(&message(newgen, 99, &body)), None);
        let eperm = message(NLMSG_ERROR, GETGEN_SEQ, &(-1i32).to_ne_bytes());
        assert_eq!(parse_newgen(&eperm), Some(Err(-1)));
        // Cut short or lying about lengths: nothing, no panic.
        let whole = message(newgen, GETGEN_SEQ, &body);
        for cut in 0..whole.len() {
            assert_eq!(parse_newgen(&whole[..cut]), None, "{cut}");
        }
        let mut liar = whole.clone();
        liar[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_newgen(&liar), None);
    }
}
