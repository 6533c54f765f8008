//! Test helpers: a guard that takes a lab down, ICMP echo from inside a namespace (no `ping`
//! binary needed), running commands in the lab; `traffic`: a lab with a configured gateway,
//! servers and probes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod traffic;

use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mamori_lab::{Lab, LabName, LabSpec, LabState};
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6,
    SockaddrStorage, recvfrom, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

/// Takes its lab down when dropped, also when a test panics.
pub struct Guard(pub LabName);

impl Guard {
    /// A lab name unique to this test process: `PREFIX` + pid digits, at most 10 bytes.
    pub fn name(prefix: &str) -> LabName {
        let pid = std::process::id() % 100_000;
        LabName::new(&format!("{prefix}{pid}")).unwrap()
    }

    /// Brings up a lab without a device and returns its guard.
    pub fn up(name: LabName) -> (Guard, mamori_lab::UpReport) {
        assert!(nix::unistd::geteuid().is_root(), "the lab tests need root");
        let g = Guard(name.clone());
        let r = Lab::up(&LabSpec { name, device: None }).unwrap();
        assert_eq!(Lab::status(&g.0).unwrap().state, LabState::Up);
        (g, r)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.0) {
            eprintln!("lab {} down: {e}", self.0);
        }
    }
}

static PROBE: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// Sends ICMP echo requests from namespace `ns` (None: the host) to `dst` with `ttl`, up to
/// `tries` of them one second apart; true when a reply from `dst` came back.
pub fn ping_ttl(ns: Option<&str>, dst: IpAddr, ttl: u8, tries: u16) -> bool {
    let ns = ns.map(str::to_owned);
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            let f = std::fs::File::open(Path::new("/run/netns").join(&ns)).unwrap();
            setns(f, CloneFlags::CLONE_NEWNET).unwrap();
        }
        let v4 = dst.is_ipv4();
        let (fam, proto) = if v4 {
            (AddressFamily::Inet, SockProtocol::Icmp)
        } else {
            (AddressFamily::Inet6, SockProtocol::IcmpV6)
        };
        let sock = socket(fam, SockType::Raw, SockFlag::SOCK_CLOEXEC, proto).unwrap();
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000)).unwrap();
        if v4 {
            setsockopt(&sock, sockopt::Ipv4Ttl, &i32::from(ttl)).unwrap();
        } else {
            setsockopt(&sock, sockopt::Ipv6Ttl, &i32::from(ttl)).unwrap();
        }
        // Distinct per probe, so concurrent probes in one namespace never take each other's
        // replies.
        let id = u16::try_from(std::process::id() % 0x8000).unwrap()
            ^ PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for seq in 0..tries {
            let mut pkt = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(b"mamori-lab-probe");
            if v4 {
                // The kernel fills in the ICMPv6 checksum itself, not the ICMP one.
                let c = checksum(&pkt);
                pkt[2..4].copy_from_slice(&c.to_be_bytes());
            }
            let sent = match dst {
                IpAddr::V4(a) => sendto(
                    sock.as_raw_fd(),
                    &pkt,
                    &SockaddrIn::from(SocketAddrV4::new(a, 0)),
                    MsgFlags::empty(),
                ),
                IpAddr::V6(a) => sendto(
                    sock.as_raw_fd(),
                    &pkt,
                    &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
                    MsgFlags::empty(),
                ),
            };
            if sent.is_err() {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut buf = [0u8; 1500];
            while Instant::now() < deadline {
                let Ok((n, from)) = recvfrom::<SockaddrStorage>(sock.as_raw_fd(), &mut buf) else {
                    continue;
                };
                let from_ip: Option<IpAddr> = from.and_then(|f| {
                    f.as_sockaddr_in()
                        .map(|s| IpAddr::V4(s.ip()))
                        .or_else(|| f.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
                });
                // A raw IPv4 socket hands over the IP header too.
                let icmp = if v4 {
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    &buf[ihl.min(n)..n]
                } else {
                    &buf[..n]
                };
                let reply = if v4 { 0 } else { 129 };
                if icmp.len() >= 8
                    && icmp[0] == reply
                    && icmp[4..6] == id.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                    && from_ip == Some(dst)
                {
                    return true;
                }
            }
        }
        false
    })
    .join()
    .unwrap()
}

/// ICMP echo with the default hop limit, up to three tries.
pub fn ping(ns: Option<&str>, dst: impl Into<IpAddr>) -> bool {
    ping_ttl(ns, dst.into(), 64, 3)
}

/// `ip ARGS` on the host; its stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces on the host.
pub fn netns_names() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The workspace's mamorid (target/<profile>/mamorid next to the test's deps directory), or
/// `MAMORID`.
pub fn mamorid() -> PathBuf {
    if let Some(p) = std::env::var_os("MAMORID") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join("mamorid");
    assert!(
        p.exists(),
        "{} not found: run `cargo build -p mamorid` first (scripts/test builds every binary)",
        p.display()
    );
    p
}
