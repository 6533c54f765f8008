//! One netlink socket: open, subscribe, receive without blocking, send a dump request.
//!
//! A thin layer over `netlink-sys` (which holds the `unsafe` system calls; this crate has none).
//! What it adds is the distinction the monitors need between a datagram, an empty queue, and a
//! receive-buffer overrun (`ENOBUFS`), which is not an error of the socket but a sign that
//! notifications were dropped by the kernel and the state must be read again.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::Socket;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, NetlinkAddr, getsockname, getsockopt, recvmsg, sendto, sockopt};

/// Netlink protocols used here (`linux/netlink.h`).
pub(crate) const NETLINK_ROUTE: isize = 0;
pub(crate) const NETLINK_NETFILTER: isize = 12;
pub(crate) const NETLINK_KOBJECT_UEVENT: isize = 15;

/// Size of the receive buffer for one datagram. Dumps are at most 32 KiB per datagram; uevents
/// are at most 2 KiB (`UEVENT_BUFFER_SIZE`) and notifications smaller still.
const DATAGRAM: usize = 64 * 1024;

/// What one non-blocking receive gave.
#[derive(Debug)]
pub(crate) enum Received {
    /// A datagram of `len` bytes (in the buffer), from netlink port `sender` (0 is the kernel).
    Datagram { sender: u32 },
    /// Nothing is queued.
    Empty,
    /// The kernel dropped notifications because the receive buffer was full (`ENOBUFS`), or a
    /// datagram was larger than our buffer and was cut: either way something was lost.
    Overrun,
}

/// A netlink socket bound to a kernel-assigned port, subscribed to some multicast groups.
///
/// Held as a plain descriptor (opened through `netlink-sys`, then used through nix's safe
/// calls), so a socket opened elsewhere can be adopted: the firewall monitor's socket is the
/// privileged parent's, which leaves and rejoins its group around mamori's own loads.
#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
    port: u32,
    seq: u32,
}

impl NlSocket {
    /// Opens a socket of `protocol`, asks for a receive buffer of `rcvbuf` bytes, and joins the
    /// multicast `groups`.
    ///
    /// The buffer is set with `SO_RCVBUFFORCE` when the process may (CAP_NET_ADMIN), else with
    /// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`.
    pub(crate) fn open(protocol: isize, groups: &[u32], rcvbuf: usize) -> io::Result<Self> {
        let mut sock = Socket::new(protocol)?;
        let addr = sock.bind_auto()?;
        if rcvbuf > 0 {
            let forced = nix::sys::socket::setsockopt(
                &sock.as_fd(),
                nix::sys::socket::sockopt::RcvBufForce,
                &rcvbuf,
            );
            if forced.is_err() {
                sock.set_rx_buf_sz(rcvbuf)?;
            }
        }
        for g in groups {
            sock.add_membership(*g)?;
        }
        // The same socket as a plain descriptor; `sock`'s own closes when it goes.
        let fd = sock.as_fd().try_clone_to_owned()?;
        Ok(Self {
            fd,
            port: addr.port_number(),
            seq: 0,
        })
    }

    /// Adopts a netlink socket opened (bound and subscribed) by someone else.
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Self> {
        let addr: NetlinkAddr = getsockname(fd.as_raw_fd()).map_err(io::Error::from)?;
        Ok(Self {
            fd,
            port: addr.pid(),
            seq: 0,
        })
    }

    /// The kernel-assigned port of this socket (dump replies are addressed to it).
    pub(crate) fn port(&self) -> u32 {
        self.port
    }

    /// The receive buffer the kernel granted (its doubled value, as `getsockopt` reports it).
    pub(crate) fn receive_buffer(&self) -> usize {
        getsockopt(&self.fd, sockopt::RcvBuf).unwrap_or(0)
    }

    /// Receives one datagram into `buf` without blocking.
    pub(crate) fn receive(&self, buf: &mut Vec<u8>) -> io::Result<Received> {
        buf.resize(DATAGRAM, 0);
        loop {
            let mut iov = [IoSliceMut::new(buf.as_mut_slice())];
            // MSG_TRUNC makes the kernel report the datagram's full length, so a cut one is seen.
            let got = recvmsg::<NetlinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            )
            .map(|m| (m.bytes, m.address.map_or(0, |a| a.pid())));
            match got {
                Ok((len, _)) if len > DATAGRAM => {
                    buf.clear();
                    return Ok(Received::Overrun);
                }
                Ok((len, sender)) => {
                    buf.truncate(len);
                    return Ok(Received::Datagram { sender });
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    buf.clear();
                    return match e {
                        Errno::EAGAIN => Ok(Received::Empty),
                        Errno::ENOBUFS => Ok(Received::Overrun),
                        e => Err(e.into()),
                    };
                }
            }
        }
    }

    /// Sends a dump request (`NLM_F_REQUEST | NLM_F_DUMP`) to the kernel; returns its sequence
    /// number, which the replies carry.
    pub(crate) fn request_dump<I>(&mut self, message: I) -> io::Result<u32>
    where
        I: NetlinkSerializable,
    {
        self.request(message, NLM_F_REQUEST | NLM_F_DUMP)
    }

    /// Sends a request with `flags` to the kernel; returns its sequence number.
    pub(crate) fn request<I>(&mut self, message: I, flags: u16) -> io::Result<u32>
    where
        I: NetlinkSerializable,
    {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.send_raw(&bytes)?;
        Ok(self.seq)
    }

    /// Sends raw bytes to the kernel.
    pub(crate) fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        sendto(
            self.fd.as_raw_fd(),
            bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        Ok(())
    }

    /// The next sequence number this socket will use (for hand-built requests).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }
}

impl AsFd for NlSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Splits a datagram into its netlink messages: `(header, payload after the header)`.
///
/// Stops at the first malformed header; returns how many bytes were left unparsed so the caller
/// can count it.
pub(crate) fn split(datagram: &[u8]) -> (Vec<(NetlinkHeader, &[u8])>, usize) {
    const HEADER: usize = 16;
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= HEADER {
        let raw_len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = usize::try_from(raw_len).unwrap_or(usize::MAX);
        if len < HEADER || len > rest.len() {
            break;
        }
        let mut header = NetlinkHeader::default();
        header.length = raw_len;
        header.message_type = u16::from_ne_bytes([rest[4], rest[5]]);
        header.flags = u16::from_ne_bytes([rest[6], rest[7]]);
        header.sequence_number = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        header.port_number = u32::from_ne_bytes([rest[12], rest[13], rest[14], rest[15]]);
        out.push((header, &rest[HEADER..len]));
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    (out, rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_aligned_messages_and_stops_at_a_bad_length() {
        let mut d = Vec::new();
        // message 1: 18 bytes (padded to 20), type 16
        d.extend_from_slice(&18u32.to_ne_bytes());
        d.extend_from_slice(&16u16.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&7u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&[1, 2, 0, 0]);
        // message 2: 16 bytes, type 3 (done)
        d.extend_from_slice(&16u32.to_ne_bytes());
        d.extend_from_slice(&3u16.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&8u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        // a bad header claiming more than there is
        d.extend_from_slice(&999u32.to_ne_bytes());
        d.extend_from_slice(&[0; 12]);
        let (msgs, left) = split(&d);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].0.message_type, 16);
        assert_eq!(msgs[0].0.sequence_number, 7);
        assert_eq!(msgs[0].1, &[1, 2]);
        assert_eq!(msgs[1].0.message_type, 3);
        assert_eq!(left, 16);
    }
}
