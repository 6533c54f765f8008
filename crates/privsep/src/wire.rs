//! Framing on the privsep socketpair: a big-endian `u32` length, then that many bytes of JSON.
//!
//! A frame longer than [`MAX_FRAME`], an empty frame, a frame cut short, or a payload that does
//! not parse as exactly one known message is an error. The parent treats any such error as a
//! protocol violation: it logs it and ends the child's session (kills the child). It never
//! guesses a fix, skips ahead, or resynchronises.
//!
//! I/O is blocking; privileged operations are rare and small. Buffers that may hold key material
//! are zeroized when dropped.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::PrivsepError;

/// The largest payload accepted or sent, in bytes (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Writes `msg` as one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), PrivsepError> {
    let payload = Zeroizing::new(serde_json::to_vec(msg).map_err(PrivsepError::Encode)?);
    if payload.is_empty() || payload.len() > MAX_FRAME {
        return Err(PrivsepError::FrameTooLarge(payload.len()));
    }
    let len =
        u32::try_from(payload.len()).map_err(|_| PrivsepError::FrameTooLarge(payload.len()))?;
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + payload.len()));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload);
    w.write_all(&frame).map_err(PrivsepError::Channel)?;
    w.flush().map_err(PrivsepError::Channel)
}

/// Reads one frame and parses it as a `T`.
///
/// Returns [`PrivsepError::ChannelClosed`] if the peer closed the channel cleanly between
/// frames; every other failure is a protocol violation or an I/O error.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, PrivsepError> {
    let mut len = [0u8; 4];
    let mut got = 0;
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
    if len > MAX_FRAME {
        return Err(PrivsepError::FrameTooLarge(len));
    }
    let mut payload = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PrivsepError::Truncated,
        _ => PrivsepError::Channel(e),
    })?;
    serde_json::from_slice(&payload).map_err(PrivsepError::Malformed)
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
    fn the_length_prefix_is_big_endian() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 15]);
        assert_eq!(&buf[4..], br#"{"op":"Status"}"#);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_payload_is_read() {
        let mut bytes = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes().to_vec();
        // No payload follows: the length alone must be enough to refuse.
        bytes.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut Cursor::new(bytes)).unwrap_err();
        assert!(matches!(err, PrivsepError::FrameTooLarge(n) if n == MAX_FRAME + 1));
        let err = read_frame::<_, Request>(&mut Cursor::new(vec![0xff; 4])).unwrap_err();
        assert!(matches!(err, PrivsepError::FrameTooLarge(_)));
    }

    #[test]
    fn a_frame_at_the_cap_is_read_then_judged_by_its_content() {
        let mut payload = vec![b' '; MAX_FRAME];
        payload[..15].copy_from_slice(br#"{"op":"Status"}"#);
        let got: Request = read_frame(&mut Cursor::new(frame(&payload))).unwrap();
        assert_eq!(got, Request::Status);
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
