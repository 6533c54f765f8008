//! How many bytes written to a TCP socket its peer has not acknowledged yet.
//!
//! This is the only module of the crate with `unsafe`, and it holds one `ioctl` call:
//! `SIOCOUTQ` gives, for a connected TCP socket, the bytes in the send queue that the peer's TCP
//! has not acknowledged (sent and unacknowledged, plus not yet sent). Neither nix 0.31 nor
//! rustix 1.1 wraps it (nor `TCP_INFO`), so the call is made here through nix's libc re-export.
//! The call is sound because the descriptor is borrowed from a live socket for the duration of
//! the call and the kernel writes exactly one `int` into a local we own.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use nix::libc;

/// Bytes written to `socket` that its peer's TCP has not acknowledged yet.
pub(crate) fn unacknowledged(socket: &impl AsFd) -> io::Result<usize> {
    let mut pending: libc::c_int = 0;
    // SAFETY: the descriptor comes from a borrowed, open socket and stays valid for the call;
    // SIOCOUTQ (TIOCOUTQ on Linux, include/uapi/linux/sockios.h) writes a single int through
    // the pointer, which points to `pending`, a live local of that type.
    let rc = unsafe {
        libc::ioctl(
            socket.as_fd().as_raw_fd(),
            libc::TIOCOUTQ,
            &mut pending as *mut libc::c_int,
        )
    };
    nix::errno::Errno::result(rc).map_err(io::Error::from)?;
    usize::try_from(pending).map_err(|_| io::Error::other("negative send queue length"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unwraps are assertions here

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn counts_bytes_until_the_peer_acknowledges_them() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert_eq!(unacknowledged(&client).unwrap(), 0);
        client.write_all(b"hello").unwrap();
        // Loopback acknowledges at once; the bytes need not be read by the application.
        assert!(wait_for(|| unacknowledged(&client).unwrap() == 0));
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();

        // A peer that stops reading: once its receive window is full, bytes stay unacknowledged.
        client.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match client.write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let pending = unacknowledged(&client).unwrap();
        assert!(pending > 0 && pending <= written, "{pending} of {written}");
        // Reading it all lets the peer acknowledge everything.
        server.set_nonblocking(true).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        assert!(wait_for(|| {
            while let Ok(n) = server.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            unacknowledged(&client).unwrap() == 0
        }));
    }
}
