//! What "acknowledged" means, checked against an in-process TCP collector whose reading the
//! test controls (plain TCP, so the bytes on the wire are the frames): a batch the peer's TCP
//! has not acknowledged is never counted as delivered, and after a broken connection only
//! that batch is sent again.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mamori_forward::{ErrorKind, Forwarder, MemoryBacklog, Transport, Tuning};
use support::*;

/// Splits an octet-counted stream into messages; a cut-off last frame is dropped.
fn frames(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = bytes.iter().position(|b| *b == b' ') {
        let len: usize = std::str::from_utf8(&bytes[..sp]).unwrap().parse().unwrap();
        if bytes.len() < sp + 1 + len {
            break;
        }
        out.push(String::from_utf8(bytes[sp + 1..sp + 1 + len].to_vec()).unwrap());
        bytes = &bytes[sp + 1 + len..];
    }
    out
}

fn seq(message: &str) -> u64 {
    message
        .split("seq=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .parse()
        .unwrap()
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_counts_only_once_acknowledged_and_only_it_is_sent_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // A tiny receive buffer, and nobody reading yet: the collector's TCP acknowledges a few
    // kilobytes and then nothing.
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
    let address = listener.local_addr().unwrap().to_string();

    let backlog = Arc::new(MemoryBacklog::default());
    for _ in 0..300 {
        let mut r = record(0);
        r.details = serde_json::json!({"pad": "x".repeat(1000)});
        backlog.append(r);
    }
    let batch = 100;
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector("c", &address, Transport::InsecurePlaintext)],
            Tuning {
                batch_records: batch,
                ack_timeout: Duration::from_secs(2),
                ..fast_tuning()
            },
        ),
    )
    .unwrap();
    let (first, _) = listener.accept().unwrap();
    // The first batch (≈110 KB) fits in the forwarder's socket buffer, so writing it succeeds,
    // but it is not acknowledged: it must not count.
    let s = fwd
        .wait_for("c", Duration::from_secs(20), |s| s.last_error.is_some())
        .await
        .unwrap();
    assert_eq!(
        s.last_error.as_ref().unwrap().kind,
        ErrorKind::NotAcknowledged,
        "{s:?}"
    );
    assert_eq!((s.cursor, s.delivered), (0, 0));
    assert!(
        s.last_error
            .as_ref()
            .unwrap()
            .message
            .contains("unacknowledged")
    );

    // The forwarder gave that connection up and opens another; now the collector reads both.
    let (second, _) = listener.accept().unwrap();
    let first = tokio::task::spawn_blocking(move || read_all(first));
    let second = tokio::task::spawn_blocking(move || read_all(second));
    let s = fwd
        .wait_for("c", Duration::from_secs(30), |s| s.cursor == 301)
        .await
        .unwrap_or_else(|| panic!("{:?}", fwd.status()));
    assert_eq!(s.delivered, 300);
    fwd.shutdown().await;
    let first = frames(&first.await.unwrap());
    let second = frames(&second.await.unwrap());

    // The abandoned connection carried (part of) batch 1 only; the new one everything from
    // the cursor, 1 on: so only batch 1 arrives twice.
    let first_seqs: Vec<u64> = first.iter().map(|m| seq(m)).collect();
    let second_seqs: Vec<u64> = second.iter().map(|m| seq(m)).collect();
    assert!(!first_seqs.is_empty());
    assert!(
        first_seqs.iter().all(|s| *s <= batch as u64),
        "{first_seqs:?}"
    );
    assert_eq!(
        first_seqs,
        (1..=first_seqs.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(second_seqs, (1..=300).collect::<Vec<_>>());
}

/// A collector that completes the TLS handshake and then hangs up without reading, as rsyslog
/// does when it requires a client certificate and gets none (TLS 1.3: the handshake is done for
/// the client before the server has looked at its certificate). Its TCP has acknowledged the
/// first batch by then; that must not count as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_hanging_up_right_after_the_handshake_gets_nothing_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("collector CA");
    let server = server_cert(&ca);
    let config_tls = mamori_crypto::tls::server_config(
        vec![server.cert_der.clone()],
        server.key_der(),
        mamori_crypto::tls::TlsOptions::default(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config_tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let sessions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sessions.clone();
    let server_task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // Long enough for the forwarder's batch to arrive and be acknowledged by
                    // this side's kernel; shorter than the confirmation period.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    drop(tls);
                }
            });
        }
    });

    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, 20);
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector("c", &address, tls(&ca, None, None))],
            fast_tuning(),
        ),
    )
    .unwrap();
    let s = fwd
        .wait_for("c", Duration::from_secs(20), |s| {
            s.consecutive_failures >= 3
        })
        .await
        .unwrap_or_else(|| panic!("{:?}", fwd.status()));
    assert!(sessions.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(
        s.last_error.as_ref().unwrap().kind,
        ErrorKind::SessionRejected,
        "{s:?}"
    );
    assert_eq!((s.cursor, s.delivered), (0, 0), "{s:?}");
    fwd.shutdown().await;
    server_task.abort();
}
