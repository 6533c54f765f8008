//! Forwarding to a real rsyslog (Debian rsyslog + rsyslog-gnutls) started by each test on
//! loopback: delivery intact and in order, outages, hung collectors, untrusted and mis-pinned
//! collectors, mutual TLS, plain TCP only when chosen.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use mamori_forward::rfc5424::{DEFAULT_MAX_MESSAGE_BYTES, format_message};
use mamori_forward::{
    Backlog, ClientIdentity, ErrorKind, Facility, Forwarder, LinkState, MemoryBacklog, Transport,
    TransportKind,
};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn anon_collector(
    dir: &std::path::Path,
) -> (
    Rsyslog,
    rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    Issued,
) {
    let ca = ca("collector CA");
    let server = server_cert(&ca);
    let r = Rsyslog::start(
        dir,
        RsyslogSetup {
            server: &server,
            trusted_pem: ca.pem(),
            auth: ClientAuth::Anonymous,
        },
    );
    (r, ca, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_intact_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (rsyslog, ca, server) = anon_collector(&tmp.path().join("rsyslog"));
    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, 24);
    // One record far over the 8 KiB bound: cut in MSG, marked, header intact.
    let mut big = record(25);
    big.details = serde_json::json!({"blob": "大".repeat(10_000)});
    backlog.append(big);
    produce(&backlog, 25);
    let state = tmp.path().join("state");
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &state,
            vec![collector(
                "siem",
                &rsyslog.address(),
                tls(&ca, Some(server.pin()), None),
            )],
            fast_tuning(),
        ),
    )
    .unwrap();
    let status = fwd
        .wait_for("siem", WAIT, |s| s.cursor == 51)
        .await
        .unwrap_or_else(|| panic!("{:?}\n{}", fwd.status(), rsyslog.diagnostics()));
    assert!(status.connected);
    assert_eq!(status.state, LinkState::Connected);
    assert_eq!((status.lag, status.delivered, status.skipped), (0, 50, 0));
    assert!(status.last_success.is_some());
    assert!(status.last_error.is_none(), "{:?}", status.last_error);
    assert_eq!(status.transport, TransportKind::Tls);
    assert!(status.tls_version.is_some() && status.cipher_suite.is_some());
    // The status is what the API serves.
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "connected");
    assert_eq!(json["cursor"], 51);
    assert_eq!(json["transport"], "tls");

    let got = rsyslog.wait_received(WAIT, |g| g.len() >= 50);
    assert_eq!(got.len(), 50, "{}", rsyslog.diagnostics());
    let sent = backlog.read_from(1, 100).unwrap();
    for (i, (r, rec)) in got.iter().zip(&sent).enumerate() {
        let n = i as u64 + 1;
        assert_eq!(r.seq, Some(n));
        // rsyslog received exactly the bytes formatted (no cut, no re-encoding).
        let ours = format_message(rec, Facility::AuthPriv, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(r.raw.as_bytes(), &ours[..], "record {n}");
        // And parsed them as RFC 5424, field by field, as written here by hand.
        let (pri, msgid, outcome) = match (n.is_multiple_of(2), n.is_multiple_of(3)) {
            (even, true) => (if even { "85" } else { "84" }, "login.failure", "failure"),
            (even, false) => (if even { "85" } else { "84" }, "config.commit", "success"),
        };
        assert_eq!(r.pri, pri, "authpriv (10) * 8 + notice (5) or warning (4)");
        assert_eq!(r.app_name, "mamori");
        assert_eq!(r.hostname, "gw-test");
        assert_eq!(r.procid, "-");
        assert_eq!(r.msgid, msgid);
        let truncated = if n == 25 {
            let marker = r
                .structured_data
                .split(" truncated=\"")
                .nth(1)
                .and_then(|x| x.split('"').next())
                .unwrap()
                .parse::<usize>()
                .unwrap();
            assert!(marker > 30_000, "MSG had {marker} bytes");
            format!(" truncated=\"{marker}\"")
        } else {
            String::new()
        };
        assert_eq!(
            r.structured_data,
            format!(
                "[mamori@32473 seq=\"{n}\" outcome=\"{outcome}\" actor=\"管理者\\\"{n}\\\"\\]\\\\\" source=\"192.0.2.10\"{truncated}]"
            )
        );
        let msg = r
            .msg
            .strip_prefix('\u{FEFF}')
            .expect("MSG starts with a BOM");
        if n == 25 {
            assert!(ours.len() <= DEFAULT_MAX_MESSAGE_BYTES && ours.len() > 8000);
            assert!(msg.starts_with("{\"message\":\"記録 25\",\"details\":{\"blob\":\"大大大"));
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(msg).unwrap();
        assert_eq!(v["message"], format!("記録 {n}"));
        assert_eq!(v["details"]["note"], "ログイン失敗 — 設定を変更しました");
        assert_eq!(v["details"]["path"], "a\\b");
        assert_eq!(v["details"]["n"], n);
    }

    // The cursor is persisted: a new forwarder (a daemon restart) sends only what is new.
    fwd.shutdown().await;
    produce(&backlog, 3);
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &state,
            vec![collector(
                "siem",
                &rsyslog.address(),
                tls(&ca, Some(server.pin()), None),
            )],
            fast_tuning(),
        ),
    )
    .unwrap();
    assert_eq!(fwd.status()[0].cursor, 51, "the saved cursor");
    assert_eq!(fwd.status()[0].lag, 3);
    fwd.wait_for("siem", WAIT, |s| s.cursor == 54)
        .await
        .unwrap();
    let got = rsyslog.wait_received(WAIT, |g| g.len() >= 53);
    assert_eq!(check_delivery(&got, 53, 1), 0);
    assert_eq!(got.len(), 53, "nothing sent twice across a restart");
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_delivery_resumes_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rsyslog, ca, _server) = anon_collector(&tmp.path().join("rsyslog"));
    let backlog = Arc::new(MemoryBacklog::default());
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector("siem", &rsyslog.address(), tls(&ca, None, None))],
            fast_tuning(),
        ),
    )
    .unwrap();
    produce(&backlog, 100);
    fwd.wait_for("siem", WAIT, |s| s.cursor == 101)
        .await
        .unwrap();
    // Wait until rsyslog has written them, so that killing it loses nothing it acknowledged.
    let got = rsyslog.wait_received(WAIT, |g| g.len() >= 100);
    assert_eq!(got.len(), 100);

    rsyslog.kill();
    // Records keep coming during the outage; producers are never blocked.
    let producer = {
        let backlog = backlog.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                produce(&backlog, 5);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let down = fwd
        .wait_for("siem", WAIT, |s| {
            !s.connected
                && s.last_error.as_ref().map(|e| e.kind) == Some(ErrorKind::Connect)
                && s.lag >= 50
        })
        .await
        .unwrap_or_else(|| panic!("{:?}", fwd.status()));
    assert_eq!(down.cursor, 101, "nothing counted as delivered while down");
    producer.await.unwrap();
    let during = fwd.status()[0].clone();
    assert_eq!(during.lag, 300);
    assert!(during.consecutive_failures >= 1);
    assert!(matches!(
        during.state,
        LinkState::Waiting | LinkState::Connecting
    ));

    rsyslog.restart();
    produce(&backlog, 50);
    fwd.wait_for("siem", WAIT, |s| s.cursor == 451 && s.connected)
        .await
        .unwrap_or_else(|| panic!("{:?}\n{}", fwd.status(), rsyslog.diagnostics()));
    let got = rsyslog.wait_received(WAIT, |g| g.len() >= 450);
    let dups = check_delivery(&got, 450, fast_tuning().batch_records as u64);
    assert_eq!(dups, 0, "the outage began with nothing in flight");
    let after = fwd.status()[0].clone();
    assert_eq!(after.lag, 0);
    assert!(after.last_success.unwrap() > after.last_error.as_ref().unwrap().at);
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_gets_at_most_the_batch_in_flight_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (rsyslog, ca, _server) = anon_collector(&tmp.path().join("rsyslog"));
    let backlog = Arc::new(MemoryBacklog::default());
    let tuning = mamori_forward::Tuning {
        batch_records: 200,
        ack_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..fast_tuning()
    };
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector("siem", &rsyslog.address(), tls(&ca, None, None))],
            tuning,
        ),
    )
    .unwrap();
    produce(&backlog, 10);
    fwd.wait_for("siem", WAIT, |s| s.cursor == 11)
        .await
        .unwrap();

    // rsyslog stops reading. Its kernel keeps acknowledging until its receive buffer is full;
    // then a batch stays unacknowledged, the forwarder gives the connection up and cannot
    // open another (the handshake gets no answer).
    rsyslog.pause();
    let mut padded = 0;
    let stalled = loop {
        for _ in 0..500 {
            let mut r = record(0);
            r.details = serde_json::json!({"pad": "x".repeat(2000)});
            backlog.append(r);
        }
        padded += 500;
        let s = fwd
            .wait_for("siem", Duration::from_millis(300), |s| {
                s.last_error.as_ref().map(|e| e.kind) == Some(ErrorKind::NotAcknowledged)
            })
            .await;
        if let Some(s) = s {
            break s;
        }
        assert!(padded < 60_000, "never stalled: {:?}", fwd.status());
    };
    assert!(stalled.lag > 0);
    let last = backlog.last_seq();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rsyslog.resume();
    fwd.wait_for("siem", Duration::from_secs(120), |s| s.cursor == last + 1)
        .await
        .unwrap_or_else(|| panic!("{:?}\n{}", fwd.status(), rsyslog.diagnostics()));
    let got = rsyslog.wait_received(Duration::from_secs(60), |g| {
        g.iter().filter_map(|r| r.seq).max() == Some(last) && g.len() as u64 >= last
    });
    let dups = check_delivery(&got, last, 200);
    eprintln!("{last} records, {dups} delivered twice");
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_mispinned_collector_receives_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A collector whose certificate comes from another CA, for the same name.
    let rogue_ca = ca("rogue CA");
    let rogue_server = server_cert(&rogue_ca);
    let rogue = Rsyslog::start(
        &tmp.path().join("rogue"),
        RsyslogSetup {
            server: &rogue_server,
            trusted_pem: rogue_ca.pem(),
            auth: ClientAuth::Anonymous,
        },
    );
    // The real collector, but the configured pin is of another key.
    let (real, ca, _server) = anon_collector(&tmp.path().join("real"));
    let other_key = server_cert(&ca).pin();

    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, 20);
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![
                collector("rogue", &rogue.address(), tls(&ca, None, None)),
                collector("pinned", &real.address(), tls(&ca, Some(other_key), None)),
            ],
            fast_tuning(),
        ),
    )
    .unwrap();
    let s = fwd
        .wait_for("rogue", WAIT, |s| {
            s.last_error.is_some() && s.consecutive_failures >= 2
        })
        .await
        .unwrap();
    let e = s.last_error.unwrap();
    assert_eq!(e.kind, ErrorKind::CertificateUntrusted, "{e:?}");
    assert!(
        e.message.contains("not signed by the configured CA"),
        "{}",
        e.message
    );
    assert!(!s.connected);
    assert_eq!((s.cursor, s.delivered, s.lag), (0, 0, 20));

    let s = fwd
        .wait_for("pinned", WAIT, |s| {
            s.last_error.is_some() && s.consecutive_failures >= 2
        })
        .await
        .unwrap();
    let e = s.last_error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::CertificatePinMismatch, "{e:?}");
    assert!(e.message.contains(&other_key.to_string()), "{}", e.message);
    assert_eq!((s.cursor, s.delivered), (0, 0));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["last_error"]["kind"], "certificate_pin_mismatch");

    tokio::time::sleep(Duration::from_millis(500)).await;
    fwd.shutdown().await;
    assert!(
        rogue.received().is_empty(),
        "the rogue collector got records"
    );
    assert!(
        real.received().is_empty(),
        "the mis-pinned collector got records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_works_with_the_device_identity_and_fails_visibly_without() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("collector CA");
    let server = server_cert(&ca);
    // The device's own identity, generated as the product does; the collector trusts it.
    let device = mamori_crypto::cert::generate(&mamori_crypto::cert::IdentityRequest {
        common_name: "mamori device".into(),
        dns_names: vec!["gw.test".into()],
        ip_addresses: vec![],
        validity_days: 30,
    })
    .unwrap();
    let rsyslog = Rsyslog::start(
        &tmp.path().join("rsyslog"),
        RsyslogSetup {
            server: &server,
            trusted_pem: format!("{}{}", ca.pem(), device.cert_pem),
            auth: ClientAuth::Required,
        },
    );
    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, 30);
    let state = tmp.path().join("state");

    // Without the identity: refused, visibly, and nothing counted as delivered even though
    // rsyslog's TCP acknowledged the first batch before its TLS layer hung up.
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &state,
            vec![collector("siem", &rsyslog.address(), tls(&ca, None, None))],
            fast_tuning(),
        ),
    )
    .unwrap();
    let s = fwd
        .wait_for("siem", WAIT, |s| s.consecutive_failures >= 3)
        .await
        .unwrap_or_else(|| panic!("{:?}", fwd.status()));
    let e = s.last_error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::SessionRejected, "{e:?}");
    assert!(e.message.contains("client certificate"), "{}", e.message);
    assert_eq!((s.cursor, s.delivered), (0, 0), "{s:?}");
    fwd.shutdown().await;
    assert!(rsyslog.received().is_empty());
    assert!(
        rsyslog
            .diagnostics()
            .contains("did not provide a certificate"),
        "{}",
        rsyslog.diagnostics()
    );

    // With it: everything, from the start.
    let (chain, key) = mamori_crypto::cert::rustls_parts(&device.cert_der, &device.key_pkcs8_der);
    let identity = ClientIdentity {
        cert_chain: chain,
        key,
    };
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &state,
            vec![collector(
                "siem",
                &rsyslog.address(),
                tls(&ca, None, Some(identity)),
            )],
            fast_tuning(),
        ),
    )
    .unwrap();
    let s = fwd
        .wait_for("siem", WAIT, |s| s.cursor == 31)
        .await
        .unwrap_or_else(|| panic!("{:?}\n{}", fwd.status(), rsyslog.diagnostics()));
    assert!(s.connected);
    let got = rsyslog.wait_received(WAIT, |g| g.len() >= 30);
    assert_eq!(check_delivery(&got, 30, 1), 0);
    assert_eq!(got.len(), 30);
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_only_when_chosen_and_shown_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("unused");
    let server = server_cert(&ca);
    let plain_listener = |name: &str| {
        Rsyslog::start(
            &tmp.path().join(name),
            RsyslogSetup {
                server: &server,
                trusted_pem: ca.pem(),
                auth: ClientAuth::Plaintext,
            },
        )
    };
    // Two plain-TCP collectors (each its own rsyslog: a TLS ClientHello on rsyslog's plain
    // port stalls that input until the connection closes).
    let chosen = plain_listener("chosen");
    let mistaken = plain_listener("mistaken");
    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, 5);
    let fwd = Forwarder::start(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![
                collector("plain", &chosen.address(), Transport::InsecurePlaintext),
                // A TLS collector pointed at a plain listener fails; it never falls back.
                collector("tls", &mistaken.address(), tls(&ca, None, None)),
            ],
            fast_tuning(),
        ),
    )
    .unwrap();
    let plain = fwd
        .wait_for("plain", WAIT, |s| s.cursor == 6)
        .await
        .unwrap();
    assert_eq!(plain.transport, TransportKind::InsecurePlaintext);
    assert_eq!(
        serde_json::to_value(&plain).unwrap()["transport"],
        "insecure_plaintext"
    );
    assert!(plain.tls_version.is_none());
    let tls = fwd
        .wait_for("tls", WAIT, |s| s.consecutive_failures >= 1)
        .await
        .unwrap();
    assert_eq!((tls.cursor, tls.delivered), (0, 0));
    assert!(!tls.connected);
    assert_eq!(tls.transport, TransportKind::Tls);
    fwd.shutdown().await;
    let got = chosen.wait_received(WAIT, |g| g.len() >= 5);
    assert_eq!(check_delivery(&got, 5, 1), 0);
    assert!(got.iter().all(|r| r.app_name == "mamori"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leaked: Vec<_> = mistaken
        .received()
        .into_iter()
        .filter(|r| r.raw.contains("mamori"))
        .collect();
    assert!(leaked.is_empty(), "records sent in clear: {leaked:?}");
}
