//! The nfnetlink_log wire format (`linux/netfilter/nfnetlink_log.h`): the configuration request
//! the drop monitor sends, the packet messages it reads, and the IPv4/IPv6 headers at the start
//! of each logged packet.
//!
//! Hand-written rather than taken from a crate: the monitor needs six packet attributes and one
//! configuration request, and everything here reads from byte slices with `get`, so a short or
//! lying message gives `None`, never a panic or an out-of-bounds read (the tests feed every
//! truncation and random corruptions of real messages). Nothing here allocates except the
//! request it builds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};

/// `NFNL_SUBSYS_ULOG` (`linux/netfilter/nfnetlink.h`).
pub(crate) const NFNL_SUBSYS_ULOG: u16 = 4;
/// `NFULNL_MSG_PACKET`: one logged packet.
pub(crate) const NFULNL_MSG_PACKET: u16 = 0;
/// `NFULNL_MSG_CONFIG`: configuration of an instance (a group).
const NFULNL_MSG_CONFIG: u16 = 1;

/// Packet attributes (`enum nfulnl_attr_type`).
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// Configuration attributes (`enum nfulnl_attr_config`).
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
/// `NFULNL_CFG_CMD_BIND`: this socket becomes the listener of the group.
const NFULNL_CFG_CMD_BIND: u8 = 1;
/// `NFULNL_COPY_PACKET`: copy the first `copy_range` bytes of the packet.
const NFULNL_COPY_PACKET: u8 = 2;

/// Attribute type bits that are flags, not the type (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `sizeof(struct nfgenmsg)`.
const NFGENMSG: usize = 4;

/// The request that binds `group` to the sending socket, in copy-packet mode with
/// `copy_range` bytes, flushed to the socket after at most `flush_cs` hundredths of a second.
/// Asks for an acknowledgement (`NLM_F_ACK`): the kernel refuses a group that another socket
/// listens on, and the caller waits for that answer.
pub(crate) fn bind_request(group: u16, copy_range: u32, flush_cs: u32, seq: u32) -> Vec<u8> {
    let mut attrs = Vec::with_capacity(32);
    push_attr(&mut attrs, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    // struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; } (packed)
    let mut mode = [0u8; 6];
    mode[..4].copy_from_slice(&copy_range.to_be_bytes());
    mode[4] = NFULNL_COPY_PACKET;
    push_attr(&mut attrs, NFULA_CFG_MODE, &mode);
    push_attr(&mut attrs, NFULA_CFG_TIMEOUT, &flush_cs.to_be_bytes());

    let len = 16 + NFGENMSG + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id = the group (big-endian)
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&group.to_be_bytes());
    m.extend_from_slice(&attrs);
    m
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Netlink attributes in `data`: `(type without flags, value)`. Stops at the first attribute
/// whose length is shorter than its header or longer than what is left; `complete()` tells
/// whether that happened.
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
    broken: bool,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            rest: data,
            broken: false,
        }
    }

    /// Whether every byte was read as attributes (nothing broken, nothing left over).
    pub(crate) fn complete(&self) -> bool {
        !self.broken && self.rest.is_empty()
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.broken {
            return None;
        }
        let (Some(len), Some(kind)) = (ne_u16(self.rest, 0), ne_u16(self.rest, 2)) else {
            self.broken = true;
            return None;
        };
        let len = usize::from(len);
        let Some(value) = self.rest.get(4..len).filter(|_| len >= 4) else {
            self.broken = true;
            return None;
        };
        let aligned = (len + 3) & !3;
        // The last attribute may lack its padding.
        self.rest = self.rest.get(aligned..).unwrap_or(&[]);
        Some((kind & NLA_TYPE_MASK, value))
    }
}

/// A native-endian `u16` at `at` (netlink headers and attribute headers are host order).
fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// What one `NFULNL_MSG_PACKET` says. Borrowed from the datagram.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    /// The nflog group (`nfgenmsg.res_id`).
    pub group: u16,
    /// The protocol family of the hook (`NFPROTO_IPV4` 2, `NFPROTO_IPV6` 10, …).
    pub family: u8,
    /// `NFULA_PACKET_HDR`: the link-layer protocol (ethertype) and the netfilter hook.
    pub hw_protocol: Option<u16>,
    /// The log prefix without its terminating NUL.
    pub prefix: Option<&'a [u8]>,
    /// Interface the packet came in on.
    pub indev: Option<u32>,
    /// Interface the packet was to go out of.
    pub outdev: Option<u32>,
    /// The first bytes of the packet from its network header (at most the copy range).
    pub payload: Option<&'a [u8]>,
}

/// Parses the payload (after the netlink header) of an `NFULNL_MSG_PACKET`. `None` when the
/// `nfgenmsg` is missing or an attribute is broken.
pub(crate) fn packet(payload: &[u8]) -> Option<Packet<'_>> {
    let family = *payload.first()?;
    let group = be_u16(payload, 2)?;
    let mut p = Packet {
        group,
        family,
        ..Packet::default()
    };
    let mut attrs = Attrs::new(payload.get(NFGENMSG..)?);
    for (kind, value) in attrs.by_ref() {
        match kind {
            NFULA_PACKET_HDR => p.hw_protocol = be_u16(value, 0),
            NFULA_IFINDEX_INDEV => p.indev = be_u32(value, 0),
            NFULA_IFINDEX_OUTDEV => p.outdev = be_u32(value, 0),
            NFULA_PAYLOAD => p.payload = Some(value),
            NFULA_PREFIX => {
                p.prefix = Some(value.split(|b| *b == 0).next().unwrap_or_default());
            }
            _ => {}
        }
    }
    attrs.complete().then_some(p)
}

/// IANA protocol numbers whose header starts with the source and destination port.
const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;

/// The network and transport headers of a logged packet, as far as they were copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Headers {
    pub src: IpAddr,
    /// The transport protocol (IPv6: after the extension headers).
    pub proto: u8,
    /// The destination port (TCP, UDP, SCTP, UDP-Lite; not for non-first fragments).
    pub dport: Option<u16>,
}

/// Reads the IPv4 or IPv6 header at the start of `payload`. `family` is the nfgenmsg family:
/// 2 or 10 must agree with the version in the packet; any other family (bridge, netdev) is
/// taken at the packet's word.
pub(crate) fn headers(family: u8, payload: &[u8]) -> Option<Headers> {
    let version = payload.first()? >> 4;
    match (family, version) {
        (2 | 0 | 5 | 7, 4) => ipv4(payload),
        (10 | 0 | 5 | 7, 6) => ipv6(payload),
        _ => None,
    }
}

fn ipv4(b: &[u8]) -> Option<Headers> {
    let ihl = usize::from(b.first()? & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let proto = *b.get(9)?;
    let src: [u8; 4] = b.get(12..16)?.try_into().ok()?;
    // The destination is not kept: it is the device or the network behind it.
    b.get(16..20)?;
    let fragment_offset = be_u16(b, 6)? & 0x1fff;
    let dport = if fragment_offset == 0 && has_ports(proto) {
        be_u16(b, ihl + 2)
    } else {
        None
    };
    Some(Headers {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        proto,
        dport,
    })
}

/// Extension headers followed at most (a packet with more is reported without its ports).
const MAX_EXTENSION_HEADERS: usize = 8;

fn ipv6(b: &[u8]) -> Option<Headers> {
    let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
    b.get(24..40)?;
    let mut next = *b.get(6)?;
    let mut at = 40usize;
    let mut first_fragment = true;
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            // hop-by-hop, routing, destination options: length in 8-octet units after the first
            0 | 43 | 60 => {
                let (Some(n), Some(l)) = (b.get(at).copied(), b.get(at + 1).copied()) else {
                    break;
                };
                next = n;
                at += (usize::from(l) + 1) * 8;
            }
            // fragment: fixed 8 octets; the offset is in the upper 13 bits of octets 2-3
            44 => {
                let Some(n) = b.get(at).copied() else { break };
                first_fragment = be_u16(b, at + 2).is_some_and(|v| v >> 3 == 0);
                next = n;
                at += 8;
            }
            // authentication header: length in 4-octet units, minus 2
            51 => {
                let (Some(n), Some(l)) = (b.get(at).copied(), b.get(at + 1).copied()) else {
                    break;
                };
                next = n;
                at += (usize::from(l) + 2) * 4;
            }
            _ => break,
        }
    }
    let known = !matches!(next, 0 | 43 | 60 | 44 | 51);
    let dport = if known && first_fragment && has_ports(next) {
        be_u16(b, at + 2)
    } else {
        None
    };
    Some(Headers {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        // Extension headers not followed to their end leave the protocol unknown here.
        proto: if known { next } else { 255 },
        dport,
    })
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, TCP | UDP | SCTP | UDPLITE)
}

/// The name of a transport protocol, for the summary.
pub(crate) fn proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        TCP => "tcp",
        UDP => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        59 => "none",
        103 => "pim",
        112 => "vrrp",
        SCTP => "sctp",
        UDPLITE => "udplite",
        _ => "other",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_attr(&mut v, kind, value);
        v
    }

    /// An IPv4 packet header (+ transport header start) from `src` to `dst`.
    pub(crate) fn ipv4_packet(src: [u8; 4], dst: [u8; 4], proto: u8, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    /// The netlink payload (nfgenmsg + attributes) of a packet message as the kernel sends it.
    pub(crate) fn packet_message(group: u16, prefix: &[u8], indev: u32, ip: &[u8]) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend_from_slice(&group.to_be_bytes());
        m.extend(attr(NFULA_PACKET_HDR, &[0x08, 0x00, 1, 0]));
        m.extend(attr(NFULA_IFINDEX_INDEV, &indev.to_be_bytes()));
        m.extend(attr(NFULA_PAYLOAD, ip));
        let mut pre = prefix.to_vec();
        pre.push(0);
        m.extend(attr(NFULA_PREFIX, &pre));
        m
    }

    #[test]
    fn a_packet_message_gives_prefix_interfaces_and_headers() {
        let ip = ipv4_packet([192, 0, 2, 7], [10, 0, 0, 1], UDP, 5353);
        let m = packet_message(3, b"mamori drop input: ", 7, &ip);
        let p = packet(&m).unwrap();
        assert_eq!(p.group, 3);
        assert_eq!(p.family, 2);
        assert_eq!(p.hw_protocol, Some(0x0800));
        assert_eq!(p.prefix, Some(&b"mamori drop input: "[..]));
        assert_eq!(p.indev, Some(7));
        assert_eq!(p.outdev, None);
        let h = headers(p.family, p.payload.unwrap()).unwrap();
        assert_eq!(h.src, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(h.proto, UDP);
        assert_eq!(h.dport, Some(5353));
    }

    #[test]
    fn ipv6_extension_headers_are_followed_and_fragments_have_no_port() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        p.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        // hop-by-hop (8 octets) → destination options (16 octets) → TCP
        p.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x9c, 0x40, 0, 22]);
        let h = headers(10, &p).unwrap();
        assert_eq!(h.proto, TCP);
        assert_eq!(h.dport, Some(22));
        assert_eq!(h.src, "2001:db8::7".parse::<IpAddr>().unwrap());

        // fragment header, offset 8 (not the first fragment): protocol known, no port
        let mut f = p[..40].to_vec();
        f[6] = 44;
        f.extend_from_slice(&[UDP, 0, 0, 8 << 3, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x9c, 0x40, 0, 53]);
        let h = headers(10, &f).unwrap();
        assert_eq!(h.proto, UDP);
        assert_eq!(h.dport, None);
        // the first fragment has its port
        f[40 + 3] = 0;
        assert_eq!(headers(10, &f).unwrap().dport, Some(53));
        // a family that disagrees with the packet's version is refused
        assert!(headers(2, &f).is_none());
    }

    #[test]
    fn ipv4_non_first_fragment_has_no_port_and_options_are_skipped() {
        let mut ip = ipv4_packet([192, 0, 2, 1], [10, 0, 0, 1], TCP, 80);
        ip[6] = 0x00;
        ip[7] = 0x10;
        assert_eq!(headers(2, &ip).unwrap().dport, None);
        // IHL 6: one option word before the TCP header
        let mut o = ipv4_packet([192, 0, 2, 1], [10, 0, 0, 1], TCP, 80);
        o[0] = 0x46;
        o.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(headers(2, &o).unwrap().dport, Some(80));
        // IHL below 5 is not IPv4
        o[0] = 0x44;
        assert!(headers(2, &o).is_none());
    }

    #[test]
    fn the_bind_request_is_one_config_message_with_ack() {
        let m = bind_request(513, 128, 10, 9);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            (4 << 8) | 1
        );
        assert_eq!(
            u16::from_ne_bytes(m[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&m[16..20], &[0, 0, 2, 1]);
        let attrs: Vec<_> = Attrs::new(&m[20..]).collect();
        assert_eq!(attrs[0], (NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND][..]));
        assert_eq!(attrs[1], (NFULA_CFG_MODE, &[0, 0, 0, 128, 2, 0][..]));
        assert_eq!(attrs[2], (NFULA_CFG_TIMEOUT, &[0, 0, 0, 10][..]));
    }

    /// A small deterministic generator (xorshift), so the corruption test needs no crate.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }

    /// Every truncation and 20,000 random corruptions of real messages: parsing never panics,
    /// and a truncated message is either refused or yields only what it still holds.
    #[test]
    fn truncated_and_corrupted_messages_never_panic() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        v6.extend_from_slice(&[0x20, 1, 0x0d, 0xb8].repeat(8));
        v6.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        v6.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0, 0x9c, 0x40, 0, 53]);
        let samples = [
            packet_message(
                1,
                b"mamori drop spoofed: ",
                2,
                &ipv4_packet([198, 51, 100, 9], [10, 0, 0, 1], TCP, 443),
            ),
            packet_message(1, b"mamori r12: ", 4, &v6),
        ];
        for full in &samples {
            assert!(packet(full).is_some());
            for cut in 0..full.len() {
                let part = &full[..cut];
                if let Some(p) = packet(part)
                    && let Some(pl) = p.payload
                {
                    let _ = headers(p.family, pl);
                }
                // The packet bytes alone, cut anywhere.
                let _ = headers(2, &full[..cut]);
                let _ = headers(10, &full[..cut]);
            }
        }
        let mut rng = Rng::new(0x6d61_6d6f_7269);
        for i in 0..20_000 {
            let mut m = samples[i % 2].clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(m.len());
                m[at] = u8::try_from(rng.next() & 0xff).unwrap_or(0);
            }
            if rng.below(4) == 0 {
                let len = rng.below(m.len());
                m.truncate(len);
            }
            if let Some(p) = packet(&m)
                && let Some(pl) = p.payload
            {
                let _ = headers(p.family, pl);
            }
        }
        // Lengths that lie: zero, shorter than the header, longer than the data.
        for bad in [0u16, 2, 3, 0xffff] {
            let mut m = vec![2, 0, 0, 1];
            m.extend_from_slice(&bad.to_ne_bytes());
            m.extend_from_slice(&NFULA_PREFIX.to_ne_bytes());
            m.extend_from_slice(b"mamori");
            assert!(packet(&m).is_none(), "length {bad}");
        }
    }
}
