//! Forwarding throughput to a real rsyslog over TLS on loopback (for docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p mamori-forward --example forward_throughput -- [records] [batch]
//! ```
//!
//! Starts rsyslogd (Debian rsyslog + rsyslog-gnutls, installed if missing) with a generated CA
//! and server certificate, fills an in-memory backlog with `records` audit-like records
//! (default 200,000) — a backlog waiting after an outage — and times [`deliver_all`] until the
//! collector's TCP has acknowledged the last one; then waits until rsyslog has written them
//! all and reports both rates. One JSON line on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mamori_forward::{Backlog, MemoryBacklog, Tuning, deliver_all};
use support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(200_000, |a| a.parse().unwrap());
    let batch: usize = args.next().map_or(1000, |a| a.parse().unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("bench CA");
    let server = server_cert(&ca);
    let rsyslog = Rsyslog::start(
        &tmp.path().join("rsyslog"),
        RsyslogSetup {
            server: &server,
            trusted_pem: ca.pem(),
            auth: ClientAuth::Anonymous,
        },
    );
    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, records);
    let sample = backlog.read_from(1, 1).unwrap();
    let bytes_per_record = mamori_forward::rfc5424::format_message(
        &sample[0],
        mamori_forward::Facility::AuthPriv,
        8192,
    )
    .len();

    let started = Instant::now();
    let delivery = deliver_all(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector(
                "bench",
                &rsyslog.address(),
                tls(&ca, Some(server.pin()), None),
            )],
            Tuning {
                batch_records: batch,
                ..Tuning::default()
            },
        ),
        records,
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    let acked = delivery.elapsed.as_secs_f64();
    let got = rsyslog.wait_received(Duration::from_secs(600), |g| g.len() as u64 >= records);
    let written = started.elapsed().as_secs_f64();
    assert_eq!(got.len() as u64, records, "{}", rsyslog.diagnostics());
    let s = &delivery.status[0];
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "batch_records": batch,
            "bytes_per_message": bytes_per_record,
            "tls_version": s.tls_version,
            "cipher_suite": s.cipher_suite,
            "acknowledged_seconds": acked,
            "acknowledged_records_per_s": records as f64 / acked,
            "written_by_rsyslog_seconds": written,
            "written_records_per_s": records as f64 / written,
        })
    );
}
