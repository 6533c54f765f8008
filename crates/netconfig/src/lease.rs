//! dhcpcd's lease file, read and checked: what the wan's DHCP server gave (address and prefix,
//! gateway, DNS servers, the server itself, the lease time) and when.
//!
//! dhcpcd 9 writes the DHCPACK it bound, as it came off the wire (the BOOTP message of RFC 2131
//! with the options of RFC 2132), to `/var/lib/dhcpcd/IF.lease` — in the client's mount
//! namespace `STATE/dhcp/IF/lib/IF.lease` ([`crate::dhcp`]) — and writes it again at every
//! renewal. The file's modification time is when the lease was obtained: dhcpcd itself works
//! out what is left of a lease from it when it starts again.
//!
//! The message came from the wan, so it is parsed as hostile input: at most
//! [`MAX_LEASE_BYTES`], every length checked before it is used, only the fields of [`Lease`]
//! kept, and anything malformed, cut short or out of place a [`LeaseError`], never a panic.
//!
//! What this does not do: use any of it. The device takes its address and routes from dhcpcd,
//! which sets them itself; the DNS servers are shown, not used.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The largest lease file read (a DHCP message fits one UDP datagram; dhcpcd's are a few hundred
/// bytes).
pub const MAX_LEASE_BYTES: usize = 64 * 1024;
/// The most DNS servers kept from a lease; the rest are left out.
pub const MAX_DNS: usize = 8;
/// A lease time of all ones: infinite (RFC 2132 §9.2).
const INFINITE: u32 = u32::MAX;
/// The fixed BOOTP header before the options: op … file (RFC 2131 §2).
const HEADER: usize = 236;
/// The magic cookie that starts the options (RFC 2131 §3).
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// DHCPACK (option 53).
const ACK: u8 = 5;

/// One DHCP lease as dhcpcd bound it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The leased address with the prefix of its subnet mask (option 1; without one, the
    /// address's class, as dhcpcd does).
    pub address: Ipv4Net,
    /// The default gateway: the default route of the classless static routes (option 121) when
    /// the server sent them (a client then ignores option 3, RFC 3442), else the first router
    /// (option 3); none when the lease names no default route.
    pub gateway: Option<Ipv4Addr>,
    /// The DNS servers offered (option 6), at most [`MAX_DNS`]. The device does not use them.
    pub dns: Vec<Ipv4Addr>,
    /// The server that granted the lease (option 54).
    pub server: Ipv4Addr,
    /// The lease time in seconds (option 51); `None`: infinite.
    pub lease_secs: Option<u32>,
    /// When dhcpcd wrote the lease (bound or renewed it), in seconds since the Unix epoch.
    pub obtained_unix: i64,
    /// When the lease runs out unless renewed; `None` for an infinite lease.
    pub expires_unix: Option<i64>,
}

impl Lease {
    /// Whether the lease has run out at `now_unix`.
    pub fn expired(&self, now_unix: i64) -> bool {
        self.expires_unix.is_some_and(|e| e <= now_unix)
    }
}

/// Why a lease file is not a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The leased address cannot be a host's own.
    #[error("the leased address {0} is not a unicast host address")]
    BadAddress(Ipv4Addr),
    /// An option's length does not fit its type.
    #[error("option {code} ({name}) has a length of {len}")]
    BadLength {
        /// Option code.
        code: u8,
        /// What it is.
        name: &'static str,
        /// Its length.
        len: usize,
    },
    /// The subnet mask is not a run of ones followed by zeros, or is 0.0.0.0.
    #[error("the subnet mask {0} is not a valid mask")]
    BadMask(Ipv4Addr),
    /// Option overload (52) names no known field.
    #[error("option overload (52) has the value {0}, not 1, 2 or 3")]
    BadOverload(u8),
    /// The classless static routes (option 121) do not parse.
    #[error("the classless static routes (option 121) are malformed")]
    BadRoutes,
    /// The server identifier cannot be a server's address.
    #[error("the server identifier {0} is not a unicast address")]
    BadServer(Ipv4Addr),
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// An option the lease must have is not there.
    #[error("the lease has no {0} option")]
    Missing(&'static str),
    /// No magic cookie after the header: not a DHCP message.
    #[error("no DHCP magic cookie after the BOOTP header")]
    NoMagicCookie,
    /// The file is not a plain file (a symlink, a directory…).
    #[error("{0}: not a regular file")]
    NotAFile(String),
    /// The message is a DHCP message, but not the acknowledgement a lease is made of.
    #[error("not a DHCPACK (message type {0})")]
    NotAnAck(u8),
    /// The message is not a server's reply.
    #[error("not a BOOTP reply (op {0})")]
    NotAReply(u8),
    /// An option runs past the end of its field.
    #[error("option {code} runs past the end of the {field} (cut short?)")]
    Truncated {
        /// Option code.
        code: u8,
        /// `options`, `file` or `sname`.
        field: &'static str,
    },
    /// More than [`MAX_LEASE_BYTES`].
    #[error("larger than {MAX_LEASE_BYTES} bytes")]
    TooLarge,
    /// Shorter than the BOOTP header and the cookie.
    #[error("{0} bytes: shorter than a DHCP message ({min} at least)", min = HEADER + COOKIE.len())]
    TooShort(usize),
    /// A field of options does not end with the end option.
    #[error("the {0} field has no end option (cut short?)")]
    Unterminated(&'static str),
}

/// The lease file of `interface` under a client's `lib` directory (dhcpcd's `IF.lease`).
pub fn lease_file(lib: &Path, interface: &str) -> std::path::PathBuf {
    lib.join(format!("{interface}.lease"))
}

/// Reads and parses the lease file at `path`: `Ok(None)` when there is none (no lease yet, or
/// released). A symlink or anything but a regular file is refused; at most
/// [`MAX_LEASE_BYTES`] are read.
pub fn read(path: &Path) -> Result<Option<Lease>, LeaseError> {
    let io = |e: std::io::Error| LeaseError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        // The directory is root's, but a link there must still not lead elsewhere.
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink: ELOOP.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(LeaseError::NotAFile(path.display().to_string()));
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(LeaseError::NotAFile(path.display().to_string()));
    }
    let mut bytes = Vec::new();
    let cap = u64::try_from(MAX_LEASE_BYTES).unwrap_or(u64::MAX);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse(&bytes, meta.mtime()).map(Some)
}

/// Parses a lease (a DHCPACK as dhcpcd stores it) obtained at `obtained_unix`.
pub fn parse(bytes: &[u8], obtained_unix: i64) -> Result<Lease, LeaseError> {
    if bytes.len() > MAX_LEASE_BYTES {
        return Err(LeaseError::TooLarge);
    }
    let (Some(header), Some(cookie), Some(options)) = (
        bytes.get(..HEADER),
        bytes.get(HEADER..HEADER + COOKIE.len()),
        bytes.get(HEADER + COOKIE.len()..),
    ) else {
        return Err(LeaseError::TooShort(bytes.len()));
    };
    let op = header.first().copied().unwrap_or_default();
    if op != 2 {
        return Err(LeaseError::NotAReply(op));
    }
    if cookie != COOKIE {
        return Err(LeaseError::NoMagicCookie);
    }
    let mut found = BTreeMap::new();
    walk(options, "options", &mut found)?;
    // Option overload (RFC 2131 §4.1): the file and sname fields carry options too, read after
    // the options field, file first.
    if let Some(overload) = found.get(&52) {
        let value = fixed::<1>(52, "option overload", overload)?[0];
        let (file, sname) = match value {
            1 => (true, false),
            2 => (false, true),
            3 => (true, true),
            other => return Err(LeaseError::BadOverload(other)),
        };
        if file {
            walk(header.get(108..236).unwrap_or_default(), "file", &mut found)?;
        }
        if sname {
            walk(header.get(44..108).unwrap_or_default(), "sname", &mut found)?;
        }
    }
    let option = |code: u8, name: &'static str| found.get(&code).ok_or(LeaseError::Missing(name));

    let kind = fixed::<1>(53, "message type", option(53, "message type (53)")?)?[0];
    if kind != ACK {
        return Err(LeaseError::NotAnAck(kind));
    }
    let yiaddr = ipv4(header.get(16..20).unwrap_or_default());
    if !is_unicast(yiaddr) {
        return Err(LeaseError::BadAddress(yiaddr));
    }
    let prefix = match found.get(&1) {
        Some(mask) => {
            let mask = Ipv4Addr::from(fixed::<4>(1, "subnet mask", mask)?);
            prefix_of(mask).ok_or(LeaseError::BadMask(mask))?
        }
        None => classful(yiaddr).ok_or(LeaseError::BadAddress(yiaddr))?,
    };
    let address = Ipv4Net::new(yiaddr, prefix).map_err(|_| LeaseError::BadAddress(yiaddr))?;
    let server = Ipv4Addr::from(fixed::<4>(
        54,
        "server identifier",
        option(54, "server identifier (54)")?,
    )?);
    if !is_unicast(server) {
        return Err(LeaseError::BadServer(server));
    }
    let lease_secs = match u32::from_be_bytes(fixed::<4>(
        51,
        "lease time",
        option(51, "lease time (51)")?,
    )?) {
        INFINITE => None,
        secs => Some(secs),
    };
    let gateway = match found.get(&121) {
        Some(routes) => default_route(routes)?,
        None => match found.get(&3) {
            Some(routers) => Some(addresses(3, "router", routers)?[0]),
            None => None,
        },
    };
    let dns = match found.get(&6) {
        Some(servers) => {
            let mut all = addresses(6, "domain name server", servers)?;
            all.truncate(MAX_DNS);
            all
        }
        None => Vec::new(),
    };
    Ok(Lease {
        address,
        gateway,
        dns,
        server,
        lease_secs,
        obtained_unix,
        expires_unix: lease_secs.map(|s| obtained_unix.saturating_add(i64::from(s))),
    })
}

/// Collects the options of one field into `into`, an option that appears again appended to the
/// first (RFC 3396). Pad (0) is skipped; the field must end with the end option (255).
fn walk(
    field: &[u8],
    name: &'static str,
    into: &mut BTreeMap<u8, Vec<u8>>,
) -> Result<(), LeaseError> {
    let mut rest = field;
    loop {
        match rest {
            [] => return Err(LeaseError::Unterminated(name)),
            [255, ..] => return Ok(()),
            [0, tail @ ..] => rest = tail,
            [code, tail @ ..] => {
                let truncated = LeaseError::Truncated {
                    code: *code,
                    field: name,
                };
                let (&len, tail) = tail.split_first().ok_or(truncated.clone())?;
                let len = usize::from(len);
                let value = tail.get(..len).ok_or(truncated)?;
                into.entry(*code).or_default().extend_from_slice(value);
                rest = tail.get(len..).unwrap_or_default();
            }
        }
    }
}

/// An option of exactly `N` bytes.
fn fixed<const N: usize>(
    code: u8,
    name: &'static str,
    value: &[u8],
) -> Result<[u8; N], LeaseError> {
    <[u8; N]>::try_from(value).map_err(|_| LeaseError::BadLength {
        code,
        name,
        len: value.len(),
    })
}

/// An option that is a non-empty list of IPv4 addresses.
fn addresses(code: u8, name: &'static str, value: &[u8]) -> Result<Vec<Ipv4Addr>, LeaseError> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return Err(LeaseError::BadLength {
            code,
            name,
            len: value.len(),
        });
    }
    Ok(value.chunks_exact(4).map(ipv4).collect())
}

/// The router of the default route (width 0) among classless static routes (RFC 3442:
/// a width, the significant octets of the destination, a router), or none.
fn default_route(mut routes: &[u8]) -> Result<Option<Ipv4Addr>, LeaseError> {
    if routes.is_empty() {
        return Err(LeaseError::BadRoutes);
    }
    let mut default = None;
    while let Some((&width, rest)) = routes.split_first() {
        if width > 32 {
            return Err(LeaseError::BadRoutes);
        }
        let significant = usize::from(width).div_ceil(8);
        let router = rest
            .get(significant..significant + 4)
            .ok_or(LeaseError::BadRoutes)?;
        if width == 0 && default.is_none() {
            default = Some(ipv4(router));
        }
        routes = rest.get(significant + 4..).unwrap_or_default();
    }
    Ok(default)
}

/// Four bytes as an address (shorter input reads as zeros; callers pass four).
fn ipv4(b: &[u8]) -> Ipv4Addr {
    let mut o = [0u8; 4];
    for (d, s) in o.iter_mut().zip(b) {
        *d = *s;
    }
    Ipv4Addr::from(o)
}

/// A host's own address could be this: not 0.0.0.0/8, loopback, multicast, class E or
/// broadcast.
fn is_unicast(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first != 0 && !a.is_loopback() && !a.is_multicast() && first < 240
}

/// The prefix length of a contiguous, non-zero mask.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    // Shifting out the ones must leave nothing (`checked_shl` is `None` for all 32).
    if ones == 0 || bits.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(ones).ok()
}

/// The prefix of the address's class (A /8, B /16, C /24), what dhcpcd assumes without a mask.
fn classful(a: Ipv4Addr) -> Option<u8> {
    match a.octets()[0] {
        0..=127 => Some(8),
        128..=191 => Some(16),
        192..=223 => Some(24),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dhcpcd 9.4.1's lease file after a DHCPACK from dnsmasq 2.89 (captured in a lab
    /// namespace): 10.99.0.128/24 for 600 s from 10.99.0.1, router 10.99.0.1, DNS 10.99.0.53
    /// and 10.99.0.54, renewal and rebinding times, broadcast address, then end and padding.
    const CAPTURED: &[u8] = include_bytes!("../tests/data/dhcpcd-9.4.1.lease");
    const OBTAINED: i64 = 1_796_546_201;

    /// A message built field by field: header with `yiaddr`, the cookie, then `options`.
    fn message(yiaddr: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER];
        m[0] = 2;
        m[16..20].copy_from_slice(&yiaddr);
        m.extend_from_slice(&COOKIE);
        m.extend_from_slice(options);
        m
    }

    /// ACK, server 192.0.2.1, 3600 s, mask /26, then `extra`, then end.
    fn ack(extra: &[u8]) -> Vec<u8> {
        let mut o = vec![
            53, 1, 5, 54, 4, 192, 0, 2, 1, 51, 4, 0, 0, 14, 16, 1, 4, 255, 255, 255, 192,
        ];
        o.extend_from_slice(extra);
        o.push(255);
        message([192, 0, 2, 77], &o)
    }

    #[test]
    fn a_lease_dhcpcd_wrote_reads_as_what_the_server_gave() {
        let l = parse(CAPTURED, OBTAINED).unwrap();
        assert_eq!(l.address, "10.99.0.128/24".parse().unwrap());
        assert_eq!(l.gateway, Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(
            l.dns,
            [Ipv4Addr::new(10, 99, 0, 53), Ipv4Addr::new(10, 99, 0, 54)]
        );
        assert_eq!(l.server, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(l.lease_secs, Some(600));
        assert_eq!(l.obtained_unix, OBTAINED);
        assert_eq!(l.expires_unix, Some(OBTAINED + 600));
        assert!(!l.expired(OBTAINED + 599));
        assert!(l.expired(OBTAINED + 600));
    }

    #[test]
    fn a_file_on_disk_is_read_with_its_modification_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = lease_file(dir.path(), "wan0");
        assert_eq!(read(&path), Ok(None), "no file: no lease yet");
        std::fs::write(&path, CAPTURED).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().mtime();
        let l = read(&path).unwrap().unwrap();
        assert_eq!(l.obtained_unix, mtime);
        assert_eq!(l.expires_unix, Some(mtime + 600));

        // A symlink to it, a directory, a file too large: refused, not followed or read whole.
        let link = dir.path().join("link.lease");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(read(&link), Err(LeaseError::NotAFile(_))));
        let sub = dir.path().join("dir.lease");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(read(&sub), Err(LeaseError::NotAFile(_))));
        let big = dir.path().join("big.lease");
        std::fs::write(&big, vec![0u8; MAX_LEASE_BYTES + 1]).unwrap();
        assert_eq!(read(&big), Err(LeaseError::TooLarge));
    }

    #[test]
    fn every_truncation_of_a_real_lease_is_an_error() {
        // Up to the end option (the rest is padding) every cut loses something.
        let end = CAPTURED.iter().rposition(|b| *b == 255).unwrap();
        for len in 0..=end {
            let r = parse(&CAPTURED[..len], OBTAINED);
            assert!(r.is_err(), "{len} bytes parsed: {r:?}");
        }
        assert_eq!(parse(&[], 0), Err(LeaseError::TooShort(0)));
        assert_eq!(parse(&CAPTURED[..239], 0), Err(LeaseError::TooShort(239)));
        assert_eq!(
            parse(&CAPTURED[..240], 0),
            Err(LeaseError::Unterminated("options"))
        );
        assert_eq!(
            parse(&CAPTURED[..242], 0),
            Err(LeaseError::Truncated {
                code: 53,
                field: "options"
            })
        );
    }

    #[test]
    fn hostile_leases_are_errors_never_panics() {
        let cases: Vec<(Vec<u8>, LeaseError)> = vec![
            // A request, not a reply.
            (
                {
                    let mut m = ack(&[]);
                    m[0] = 1;
                    m
                },
                LeaseError::NotAReply(1),
            ),
            (
                {
                    let mut m = ack(&[]);
                    m[HEADER] = 0;
                    m
                },
                LeaseError::NoMagicCookie,
            ),
            // An offer, a NAK.
            (
                message([192, 0, 2, 7], &[53, 1, 2, 255]),
                LeaseError::NotAnAck(2),
            ),
            (
                message([192, 0, 2, 7], &[53, 1, 6, 255]),
                LeaseError::NotAnAck(6),
            ),
            (
                message([192, 0, 2, 7], &[255]),
                LeaseError::Missing("message type (53)"),
            ),
            (
                message([192, 0, 2, 7], &[53, 2, 5, 5, 255]),
                LeaseError::BadLength {
                    code: 53,
                    name: "message type",
                    len: 2,
                },
            ),
            // The address a host could not have.
            (
                message([0, 0, 0, 0], &[53, 1, 5, 255]),
                LeaseError::BadAddress(Ipv4Addr::UNSPECIFIED),
            ),
            (
                message([255, 255, 255, 255], &[53, 1, 5, 255]),
                LeaseError::BadAddress(Ipv4Addr::BROADCAST),
            ),
            (
                message([224, 0, 0, 1], &[53, 1, 5, 255]),
                LeaseError::BadAddress(Ipv4Addr::new(224, 0, 0, 1)),
            ),
            (
                message([127, 0, 0, 1], &[53, 1, 5, 255]),
                LeaseError::BadAddress(Ipv4Addr::LOCALHOST),
            ),
            // Masks with holes, or none at all.
            (
                message([192, 0, 2, 7], &[53, 1, 5, 1, 4, 255, 0, 255, 0, 255]),
                LeaseError::BadMask(Ipv4Addr::new(255, 0, 255, 0)),
            ),
            (
                message([192, 0, 2, 7], &[53, 1, 5, 1, 4, 0, 0, 0, 0, 255]),
                LeaseError::BadMask(Ipv4Addr::UNSPECIFIED),
            ),
            (
                message([192, 0, 2, 7], &[53, 1, 5, 1, 3, 255, 255, 255, 255]),
                LeaseError::BadLength {
                    code: 1,
                    name: "subnet mask",
                    len: 3,
                },
            ),
            // No server, a server that is not one, no lease time.
            (
                message([192, 0, 2, 7], &[53, 1, 5, 51, 4, 0, 0, 1, 0, 255]),
                LeaseError::Missing("server identifier (54)"),
            ),
            (
                message([192, 0, 2, 7], &[53, 1, 5, 54, 4, 255, 255, 255, 255, 255]),
                LeaseError::BadServer(Ipv4Addr::BROADCAST),
            ),
            (
                message([192, 0, 2, 7], &[53, 1, 5, 54, 4, 192, 0, 2, 1, 255]),
                LeaseError::Missing("lease time (51)"),
            ),
            // Lists of addresses of the wrong size.
            (
                ack(&[3, 0]),
                LeaseError::BadLength {
                    code: 3,
                    name: "router",
                    len: 0,
                },
            ),
            (
                ack(&[6, 5, 1, 1, 1, 1, 1]),
                LeaseError::BadLength {
                    code: 6,
                    name: "domain name server",
                    len: 5,
                },
            ),
            // Classless routes: a width over 32, a router cut short.
            (ack(&[121, 5, 33, 0, 0, 0, 0]), LeaseError::BadRoutes),
            (ack(&[121, 3, 0, 192, 0]), LeaseError::BadRoutes),
            (ack(&[121, 0]), LeaseError::BadRoutes),
            // An option whose length runs past the end of the message.
            (
                message([192, 0, 2, 7], &[53, 1, 5, 6, 200, 1, 2, 3]),
                LeaseError::Truncated {
                    code: 6,
                    field: "options",
                },
            ),
            // Overload of a field that does not end, or with a value it cannot have.
            (ack(&[52, 1, 1]), LeaseError::Unterminated("file")),
            (ack(&[52, 1, 4]), LeaseError::BadOverload(4)),
            (vec![2; MAX_LEASE_BYTES + 1], LeaseError::TooLarge),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(&bytes, 0), Err(want.clone()), "{want}");
            assert!(!want.to_string().is_empty());
        }
        // Random bytes and every single-byte change of a real lease: errors or leases, no panic.
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            let len = usize::try_from(x % 600).unwrap();
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect();
            let _ = parse(&bytes, i64::MAX);
        }
        for i in 0..CAPTURED.len() {
            for v in [0u8, 1, 4, 52, 121, 255] {
                let mut m = CAPTURED.to_vec();
                m[i] = v;
                if let Ok(l) = parse(&m, i64::MAX) {
                    assert!(l.dns.len() <= MAX_DNS);
                    assert_eq!(
                        l.expires_unix.map(|e| e >= l.obtained_unix),
                        l.lease_secs.map(|_| true)
                    );
                }
            }
        }
    }

    #[test]
    fn options_follow_the_rfcs_where_they_say_how() {
        // Infinite lease: no expiry.
        let mut m = ack(&[]);
        let at = m.windows(3).position(|w| w == [51, 4, 0]).unwrap();
        m[at + 2..at + 6].copy_from_slice(&[255; 4]);
        let l = parse(&m, 100).unwrap();
        assert_eq!((l.lease_secs, l.expires_unix), (None, None));
        assert!(!l.expired(i64::MAX));
        assert_eq!(l.address, "192.0.2.77/26".parse().unwrap());
        assert_eq!((l.gateway, l.dns.len()), (None, 0));

        // Classless static routes win over the router option (RFC 3442); a route to
        // 10.0.0.0/8 first, then the default route.
        let l = parse(
            &ack(&[
                3, 4, 192, 0, 2, 9, 121, 11, 8, 10, 192, 0, 2, 2, 0, 192, 0, 2, 3,
            ]),
            0,
        )
        .unwrap();
        assert_eq!(l.gateway, Some(Ipv4Addr::new(192, 0, 2, 3)));
        let l = parse(&ack(&[3, 4, 192, 0, 2, 9, 121, 6, 8, 10, 192, 0, 2, 2]), 0).unwrap();
        assert_eq!(l.gateway, None, "121 without a default route: none");
        let l = parse(&ack(&[3, 8, 192, 0, 2, 9, 192, 0, 2, 10]), 0).unwrap();
        assert_eq!(
            l.gateway,
            Some(Ipv4Addr::new(192, 0, 2, 9)),
            "the first router"
        );

        // A long option split in two (RFC 3396): one list; more than MAX_DNS kept to MAX_DNS.
        let mut extra = vec![6, 20];
        extra.extend((1..=5).flat_map(|i| [198, 51, 100, i]));
        extra.extend([6, 20]);
        extra.extend((6..=10).flat_map(|i| [198, 51, 100, i]));
        let l = parse(&ack(&extra), 0).unwrap();
        assert_eq!(l.dns.len(), MAX_DNS);
        assert_eq!(l.dns[7], Ipv4Addr::new(198, 51, 100, 8));

        // Options in the file field (overload 1), after pads.
        let mut m = message([198, 51, 100, 20], &[52, 1, 1, 53, 1, 5, 255]);
        let file = [0, 0, 54, 4, 198, 51, 100, 1, 51, 4, 0, 0, 0, 60, 255];
        m[108..108 + file.len()].copy_from_slice(&file);
        let l = parse(&m, 0).unwrap();
        assert_eq!(l.server, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(l.lease_secs, Some(60));
        assert_eq!(l.address.prefix_len(), 24, "no mask: the class's (C)");

        // A timestamp at the end of time does not overflow.
        let l = parse(&ack(&[]), i64::MAX).unwrap();
        assert_eq!(l.expires_unix, Some(i64::MAX));
    }

    #[test]
    fn masks_and_classes() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of(Ipv4Addr::new(128, 0, 0, 0)), Some(1));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 1)), None);
        assert_eq!(prefix_of(Ipv4Addr::new(0, 0, 0, 0)), None);
        assert_eq!(classful(Ipv4Addr::new(10, 1, 2, 3)), Some(8));
        assert_eq!(classful(Ipv4Addr::new(172, 16, 0, 1)), Some(16));
        assert_eq!(classful(Ipv4Addr::new(240, 0, 0, 1)), None);
    }
}
