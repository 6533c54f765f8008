//! Framing on the privsep socketpair: a big-endian `u32` length, then that many bytes of JSON.
//!
//! Each direction has its own cap, set by the message type ([`Message::MAX_FRAME`]): a request
//! (child to parent) may carry a whole network configuration, up to [`MAX_REQUEST_FRAME`]
//! (16 MiB; 10,000 rules and a 50,000-entry address set are about 2.3 MB of JSON); a reply
//! (parent to child) is small and typed, up to [`MAX_REPLY_FRAME`] (1 MiB). A frame longer than
//! its cap, an empty frame, a frame cut short, or a payload that does not parse as exactly one
//! known message is an error. The parent treats any such error as a protocol violation: it
//! logs it and ends the child's session (kills the child). It never guesses a fix, skips
//! ahead, or resynchronises. A sender refuses to write a frame over the cap
//! ([`PrivsepError::FrameTooLarge`]), so a configuration too large for the channel is an error
//! for the management process, not a violation.
//!
//! One reply carries a descriptor ([`crate::op::Reply::NftablesListener`]): it is attached to
//! the frame's bytes with `SCM_RIGHTS` ([`write_frame_with_fd`]) and taken with them
//! ([`read_frame_with_fd`]), through rustix's safe wrappers (the received descriptor is an
//! `OwnedFd` from the start, so nothing here is `unsafe`).
//!
//! The length is checked before anything is allocated, and the payload buffer grows with the
//! bytes that actually arrive (64 KiB first, doubling), so a peer that announces 16 MiB and
//! sends little costs little. I/O is blocking; the parent bounds the time a frame may take
//! (`parent.rs`). Buffers that may hold key material are zeroized when dropped, including the
//! ones left behind when the buffer grows.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::PrivsepError;
use crate::op::{Reply, Request};

/// The largest request payload (child to parent), in bytes: 16 MiB. The HTTP API accepts
/// configuration bodies of the same size.
pub const MAX_REQUEST_FRAME: usize = 16 << 20;
/// The largest reply payload (parent to child), in bytes: 1 MiB. The largest reply is a list of
/// at most [`crate::op::MAX_SOCKETS`] sockets, well under it.
pub const MAX_REPLY_FRAME: usize = 1 << 20;
/// The payload buffer's first size; it doubles as bytes arrive, up to the announced length.
const FIRST_READ: usize = 64 << 10;

/// A message that crosses the channel, with the cap of its direction.
pub trait Message: Serialize + DeserializeOwned {
    /// The largest payload of this message type, in bytes.
    const MAX_FRAME: usize;
}

impl Message for Request {
    const MAX_FRAME: usize = MAX_REQUEST_FRAME;
}

impl Message for Reply {
    const MAX_FRAME: usize = MAX_REPLY_FRAME;
}

/// Writes `msg` as one frame; refuses (writes nothing) if it exceeds its direction's cap.
pub fn write_frame<W: Write, T: Message>(w: &mut W, msg: &T) -> Result<(), PrivsepError> {
    let frame = encode(msg)?;
    w.write_all(&frame).map_err(PrivsepError::Channel)?;
    w.flush().map_err(PrivsepError::Channel)
}

/// Writes `msg` as one frame with the descriptor `fd` attached to its bytes (`SCM_RIGHTS`):
/// the receiver must read it with [`read_frame_with_fd`] (a plain read discards the
/// descriptor, which the kernel then closes).
pub fn write_frame_with_fd<T: Message>(
    stream: &UnixStream,
    msg: &T,
    fd: BorrowedFd<'_>,
) -> Result<(), PrivsepError> {
    let frame = encode(msg)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(PrivsepError::Channel(io::Error::other(
            "no room for the descriptor",
        )));
    }
    let sent = loop {
        match sendmsg(
            stream,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(PrivsepError::Channel(e.into())),
        }
    };
    // The descriptor went with the first bytes; the rest (if any) is plain data.
    let mut w = stream;
    w.write_all(frame.get(sent..).unwrap_or_default())
        .map_err(PrivsepError::Channel)
}

/// Reads one frame written by [`write_frame_with_fd`]: the message and the descriptor that
/// came with it (none if the sender attached none; any beyond the first are closed).
pub fn read_frame_with_fd<T: Message>(
    stream: &UnixStream,
) -> Result<(T, Option<OwnedFd>), PrivsepError> {
    let mut len = [0u8; 4];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut len)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(PrivsepError::Channel(e.into())),
        }
    };
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(PrivsepError::Channel(io::Error::other(
            "a descriptor was cut off",
        )));
    }
    let mut fd = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for f in fds {
                fd.get_or_insert(f);
            }
        }
    }
    let mut r = stream;
    let msg = read_rest(&mut r, len, got.bytes)?;
    Ok((msg, fd))
}

/// The frame of `msg`: length and payload; refused if it exceeds its direction's cap.
fn encode<T: Message>(msg: &T) -> Result<Zeroizing<Vec<u8>>, PrivsepError> {
    let payload = Zeroizing::new(serde_json::to_vec(msg).map_err(PrivsepError::Encode)?);
    let too_large = || PrivsepError::FrameTooLarge {
        len: payload.len(),
        max: T::MAX_FRAME,
    };
    if payload.is_empty() || payload.len() > T::MAX_FRAME {
        return Err(too_large());
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + payload.len()));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Reads one frame and parses it as a `T`.
///
/// Returns [`PrivsepError::ChannelClosed`] if the peer closed the channel cleanly between
/// frames; every other failure is a protocol violation or an I/O error.
pub fn read_frame<R: Read, T: Message>(r: &mut R) -> Result<T, PrivsepError> {
    read_rest(r, [0u8; 4], 0)
}

/// Reads the rest of a frame whose first `got` bytes of length prefix are in `len`.
fn read_rest<R: Read, T: Message>(
    r: &mut R,
    mut len: [u8; 4],
    mut got: usize,
) -> Result<T, PrivsepError> {
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(PrivsepError::ChannelClosed),
            Ok(0) => return Err(PrivsepError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PrivsepError::Channel(e)),
        }
    }
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(PrivsepError::EmptyFrame);
    }
    if len > T::MAX_FRAME {
        return Err(PrivsepError::FrameTooLarge {
            len,
            max: T::MAX_FRAME,
        });
    }
    let payload = read_payload(r, len)?;
    serde_json::from_slice(&payload).map_err(PrivsepError::Malformed)
}

/// Reads exactly `len` bytes into a buffer that grows (zeroizing what it leaves behind) only
/// as bytes arrive.
fn read_payload<R: Read>(r: &mut R, len: usize) -> Result<Zeroizing<Vec<u8>>, PrivsepError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(len.min(FIRST_READ)));
    while buf.len() < len {
        if buf.len() == buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                buf.capacity().saturating_mul(2).min(len),
            ));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let start = buf.len();
        let end = buf.capacity().min(len);
        // Within the capacity: no reallocation.
        buf.resize(end, 0);
        let got = loop {
            match r.read(&mut buf[start..end]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PrivsepError::Channel(e)),
            }
        };
        buf.truncate(start + got);
        if got == 0 {
            return Err(PrivsepError::Truncated);
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::op::{Reply, Request};

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn requests_and_replies_survive_a_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::DataKey).unwrap();
        write_frame(&mut buf, &Request::Status).unwrap();
        let status = Reply::Status {
            parent_pid: 1,
            parent_uid: 0,
            started_at_unix: 1_700_000_000,
            child_restarts: 3,
        };
        write_frame(&mut buf, &status).unwrap();
        let mut r = Cursor::new(buf);
        assert_eq!(read_frame::<_, Request>(&mut r).unwrap(), Request::DataKey);
        assert_eq!(read_frame::<_, Request>(&mut r).unwrap(), Request::Status);
        assert_eq!(read_frame::<_, Reply>(&mut r).unwrap(), status);
        assert!(matches!(
            read_frame::<_, Request>(&mut r),
            Err(PrivsepError::ChannelClosed)
        ));
    }

    #[test]
    fn a_descriptor_travels_with_its_frame_and_only_with_it() {
        use std::io::Read as _;
        use std::os::fd::AsFd as _;
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pipe_r, pipe_w) = std::io::pipe().unwrap();
        let w = OwnedFd::from(pipe_w);
        let reply = Reply::NftablesListener {};
        write_frame_with_fd(&a, &reply, w.as_fd()).unwrap();
        drop(w);
        // A plain frame after it: no descriptor.
        write_frame(&mut &a, &Reply::Refused { reason: "x".into() }).unwrap();
        let (got, fd) = read_frame_with_fd::<Reply>(&b).unwrap();
        assert_eq!(got, reply);
        // The received descriptor is the pipe's write end: what goes in comes out.
        let mut w = std::fs::File::from(fd.expect("a descriptor"));
        w.write_all(b"ok").unwrap();
        drop(w);
        let mut out = String::new();
        pipe_r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "ok");
        let (got, fd) = read_frame_with_fd::<Reply>(&b).unwrap();
        assert!(matches!(got, Reply::Refused { .. }) && fd.is_none());
        drop(a);
        assert!(matches!(
            read_frame_with_fd::<Reply>(&b),
            Err(PrivsepError::ChannelClosed)
        ));
    }

    #[test]
    fn the_length_prefix_is_big_endian() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 15]);
        assert_eq!(&buf[4..], br#"{"op":"Status"}"#);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_payload_is_read() {
        for (max, reply) in [(MAX_REQUEST_FRAME, false), (MAX_REPLY_FRAME, true)] {
            let mut bytes = u32::try_from(max + 1).unwrap().to_be_bytes().to_vec();
            // No payload follows: the length alone must be enough to refuse.
            bytes.extend_from_slice(b"{}");
            let err = if reply {
                read_frame::<_, Reply>(&mut Cursor::new(bytes)).map(drop)
            } else {
                read_frame::<_, Request>(&mut Cursor::new(bytes)).map(drop)
            }
            .unwrap_err();
            assert!(
                matches!(err, PrivsepError::FrameTooLarge { len, max: m } if len == max + 1 && m == max),
                "{err}"
            );
        }
        let err = read_frame::<_, Request>(&mut Cursor::new(vec![0xff; 4])).unwrap_err();
        assert!(matches!(err, PrivsepError::FrameTooLarge { .. }));
    }

    #[test]
    fn the_caps_are_16_mib_for_requests_and_1_mib_for_replies() {
        assert_eq!(MAX_REQUEST_FRAME, 16 * 1024 * 1024);
        assert_eq!(MAX_REPLY_FRAME, 1024 * 1024);
        // A reply between the two caps is refused by the reader of replies.
        let mut payload = vec![b' '; MAX_REPLY_FRAME + 1];
        payload[..15].copy_from_slice(br#"{"op":"Status"}"#);
        let err = read_frame::<_, Reply>(&mut Cursor::new(frame(&payload))).unwrap_err();
        assert!(matches!(err, PrivsepError::FrameTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_frame_at_the_cap_is_read_then_judged_by_its_content() {
        let mut payload = vec![b' '; MAX_REQUEST_FRAME];
        payload[..15].copy_from_slice(br#"{"op":"Status"}"#);
        let got: Request = read_frame(&mut Cursor::new(frame(&payload))).unwrap();
        assert_eq!(got, Request::Status);
        payload.push(b' ');
        let err = read_frame::<_, Request>(&mut Cursor::new(frame(&payload))).unwrap_err();
        assert!(matches!(err, PrivsepError::FrameTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_frame_over_its_cap_is_not_written() {
        let reason = "x".repeat(MAX_REPLY_FRAME);
        let mut out = Vec::new();
        let err = write_frame(&mut out, &Reply::Refused { reason }).unwrap_err();
        assert!(
            matches!(err, PrivsepError::FrameTooLarge { max, .. } if max == MAX_REPLY_FRAME),
            "{err}"
        );
        assert!(out.is_empty());
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_large_frame_arriving_in_pieces_is_read_whole_and_a_short_one_is_truncated() {
        // 3 MB of padding around a request: the buffer grows past 64 KiB several times.
        let mut payload = br#"{"op":"Status"}"#.to_vec();
        payload.resize(3_000_000, b' ');
        let bytes = frame(&payload);
        for step in [1000, 65_536, 1 << 20] {
            let got: Request = read_frame(&mut Trickle { data: &bytes, step }).unwrap();
            assert_eq!(got, Request::Status);
        }
        let err = read_frame::<_, Request>(&mut Trickle {
            data: &bytes[..bytes.len() - 1],
            step: 100_000,
        })
        .unwrap_err();
        assert!(matches!(err, PrivsepError::Truncated), "{err}");
        // Announcing 16 MiB and sending a few bytes allocates the first 64 KiB only.
        let mut liar = u32::try_from(MAX_REQUEST_FRAME)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        liar.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut Cursor::new(liar)).unwrap_err();
        assert!(matches!(err, PrivsepError::Truncated), "{err}");
    }

    #[test]
    fn an_empty_or_truncated_frame_is_refused() {
        let err = read_frame::<_, Request>(&mut Cursor::new(vec![0, 0, 0, 0])).unwrap_err();
        assert!(matches!(err, PrivsepError::EmptyFrame));
        let err = read_frame::<_, Request>(&mut Cursor::new(vec![0, 0])).unwrap_err();
        assert!(matches!(err, PrivsepError::Truncated));
        let mut short = frame(br#"{"op":"Status"}"#);
        short.truncate(10);
        let err = read_frame::<_, Request>(&mut Cursor::new(short)).unwrap_err();
        assert!(matches!(err, PrivsepError::Truncated));
    }

    #[test]
    fn garbage_json_is_refused() {
        for bad in [
            &b"not json"[..],
            b"{\"op\":",
            b"\xff\xfe",
            b"null",
            b"[1,2]",
        ] {
            let err = read_frame::<_, Request>(&mut Cursor::new(frame(bad))).unwrap_err();
            assert!(matches!(err, PrivsepError::Malformed(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_unknown_field_or_operation_is_refused() {
        for bad in [
            &br#"{"op":"DataKey","as_root":true}"#[..],
            br#"{"op":"Status","args":{"verbose":true}}"#,
            br#"{"op":"Exec","args":{"argv":["/bin/sh"]}}"#,
        ] {
            let err = read_frame::<_, Request>(&mut Cursor::new(frame(bad))).unwrap_err();
            assert!(matches!(err, PrivsepError::Malformed(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_refused() {
        let err = read_frame::<_, Request>(&mut Cursor::new(frame(br#"{"op":"Status"} {}"#)))
            .unwrap_err();
        assert!(matches!(err, PrivsepError::Malformed(_)));
    }
}
