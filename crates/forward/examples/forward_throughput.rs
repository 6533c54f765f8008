//! Forwarding throughput to a real rsyslog over TLS on loopback (for docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p mamori-forward --example forward_throughput -- [records] [batch] [tls|plaintext]
//! ```
//!
//! Starts rsyslogd (Debian rsyslog + rsyslog-gnutls, installed if missing) with a generated CA
//! and server certificate, fills an in-memory backlog with `records` audit-like records
//! (default 200,000) — a backlog waiting after an outage — and times [`deliver_all`] until the
//! collector's TCP has acknowledged the last one; then waits until rsyslog has written them
//! all and reports both rates. One JSON line on stdout.
//!
//! `plaintext` is the reference for the cost of TLS: the same records, the same forwarder and
//! the same rsyslog configuration, but `Transport::InsecurePlaintext` to a plain `imtcp`
//! input. The JSON line also gives the CPU time the sender (this process, during delivery) and
//! rsyslogd (from start of delivery to the last record written) spent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mamori_forward::{Backlog, MemoryBacklog, Transport, Tuning, deliver_all};
use support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(200_000, |a| a.parse().unwrap());
    let batch: usize = args.next().map_or(1000, |a| a.parse().unwrap());
    let plaintext = match args.next().as_deref() {
        None | Some("tls") => false,
        Some("plaintext") => true,
        Some(other) => panic!("transport is tls or plaintext, not {other}"),
    };

    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("bench CA");
    let server = server_cert(&ca);
    let rsyslog = Rsyslog::start(
        &tmp.path().join("rsyslog"),
        RsyslogSetup {
            server: &server,
            trusted_pem: ca.pem(),
            auth: if plaintext {
                ClientAuth::Plaintext
            } else {
                ClientAuth::Anonymous
            },
        },
    );
    let rsyslog_pid = std::fs::read_to_string(rsyslog.dir.join("rsyslogd.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    let backlog = Arc::new(MemoryBacklog::default());
    produce(&backlog, records);
    let sample = backlog.read_from(1, 1).unwrap();
    let bytes_per_record = mamori_forward::rfc5424::format_message(
        &sample[0],
        mamori_forward::Facility::AuthPriv,
        8192,
    )
    .len();

    let transport = if plaintext {
        Transport::InsecurePlaintext
    } else {
        tls(&ca, Some(server.pin()), None)
    };
    let rsyslog_cpu0 = rsyslog_pid.map(process_cpu);
    let cpu0 = process_cpu(std::process::id());
    let started = Instant::now();
    let delivery = deliver_all(
        backlog.clone(),
        config(
            &tmp.path().join("state"),
            vec![collector("bench", &rsyslog.address(), transport)],
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
    let sender_cpu = process_cpu(std::process::id()) - cpu0;
    // Counting lines as they are appended, rather than reading and parsing the whole file each
    // time (which for a million records would cost more than rsyslog's own work).
    let got = wait_lines(
        &rsyslog.dir.join("received.log"),
        records,
        Duration::from_secs(600),
    );
    let written = started.elapsed().as_secs_f64();
    let rsyslog_cpu = rsyslog_pid
        .zip(rsyslog_cpu0)
        .map(|(p, c0)| process_cpu(p) - c0);
    assert_eq!(got, records, "{}", rsyslog.diagnostics());
    assert_eq!(
        last_seq(&rsyslog.dir.join("received.log")),
        Some(records),
        "the last line is not the last record"
    );
    let s = &delivery.status[0];
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "transport": if plaintext { "plaintext" } else { "tls" },
            "batch_records": batch,
            "bytes_per_message": bytes_per_record,
            "tls_version": s.tls_version,
            "cipher_suite": s.cipher_suite,
            "acknowledged_seconds": acked,
            "acknowledged_records_per_s": records as f64 / acked,
            "written_by_rsyslog_seconds": written,
            "written_records_per_s": records as f64 / written,
            "sender_cpu_s": sender_cpu,
            "rsyslog_cpu_s": rsyslog_cpu,
        })
    );
}

/// Waits until `path` holds `want` lines (or `timeout` passed); returns the count.
fn wait_lines(path: &Path, want: u64, timeout: Duration) -> u64 {
    let end = Instant::now() + timeout;
    let (mut lines, mut offset) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if let Ok(mut f) = std::fs::File::open(path) {
            f.seek(SeekFrom::Start(offset)).unwrap();
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                offset += n as u64;
                lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
        if lines >= want || Instant::now() > end {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `seq` in the structured data of the file's last line.
fn last_seq(path: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail);
    let line = tail.trim_end_matches('\n').rsplit('\n').next()?;
    line.split("seq=\"").nth(1)?.split('"').next()?.parse().ok()
}

/// User + system CPU seconds of process `pid`, all its threads (/proc/PID/stat, 10 ms ticks).
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat(5): index 11 and 12 after the state field.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}
