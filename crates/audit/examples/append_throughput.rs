//! Append throughput of the audit log with encryption, chaining and sealing, against writing
//! the same records as plain JSON lines to a file in the same run (issue 4, docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p mamori-audit --example append_throughput -- [records] [dir]
//! taskset -c 0 target/release/examples/append_throughput 500000   # one core
//! ```
//! Prints records/s for both, CPU time, disk bytes per record, and the latency of a single
//! durable append (what a login waits for); then every figure again as one JSON line (the last
//! line, for scripts/bench).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failed run

use std::io::Write;
use std::time::{Duration, Instant};

use mamori_audit::log::{AuditLog, LogConfig};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::aead::Key;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(300_000, |a| a.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let base = args
        .next()
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let events: Vec<Event> = (0..n).map(event).collect();

    // Plain JSON lines, buffered, one fsync at the end: the floor for "writing the records".
    let plain_path = base.join("plain.jsonl");
    let (cpu0, t0) = (cpu_time(), Instant::now());
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&plain_path).unwrap());
        for (i, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e.seq = i as u64 + 1;
            serde_json::to_writer(&mut f, &e).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.into_inner().unwrap().sync_all().unwrap();
    }
    let (plain_wall, plain_cpu) = (t0.elapsed(), cpu_time() - cpu0);
    let plain_bytes = std::fs::metadata(&plain_path).unwrap().len();

    // The audit log: segments, AES-256-GCM, chain, seals, group commit.
    let mut c = LogConfig::default();
    c.capacity_bytes = 1 << 30;
    c.queue_records = 65_536;
    c.enqueue_wait = Duration::from_secs(5);
    c.durable_wait = Duration::from_secs(60);
    let key = Key::generate().unwrap();
    let (log, _vk) = AuditLog::create(&base.join("audit"), &key, c).unwrap();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    for e in events {
        log.append(e).unwrap();
    }
    log.sync().unwrap();
    let (log_wall, log_cpu) = (t0.elapsed(), cpu_time() - cpu0);
    let st = log.status();
    // One producer appending durably, one record at a time: the cost a login pays.
    let t0 = Instant::now();
    let durable_n = 500u32;
    let mut durable = Vec::with_capacity(durable_n as usize);
    for i in 0..durable_n {
        let t = Instant::now();
        log.append_durable(event(u64::from(i))).unwrap();
        durable.push(t.elapsed());
    }
    let durable_each = t0.elapsed() / durable_n;
    durable.sort_unstable();
    // Nearest rank.
    let pct = |p: usize| durable[(durable.len() * p).div_ceil(100).max(1) - 1].as_secs_f64() * 1e3;
    log.close().unwrap();

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("records: {n}");
    println!(
        "plain JSON lines : {:>9.0} records/s wall, {:>9.0} records/CPU-s, {:.0} bytes/record",
        rate(plain_wall),
        rate(plain_cpu),
        plain_bytes as f64 / n as f64
    );
    println!(
        "audit log        : {:>9.0} records/s wall, {:>9.0} records/CPU-s, {:.0} bytes/record ({} segments, epoch {})",
        rate(log_wall),
        rate(log_cpu),
        st.used_bytes as f64 / n as f64,
        st.segments,
        st.epoch
    );
    println!("append_durable, one at a time: {durable_each:?} each (one fsync per record)");
    println!(
        "{}",
        serde_json::json!({
            "records": n,
            "plain_wall_s": plain_wall.as_secs_f64(),
            "plain_cpu_s": plain_cpu.as_secs_f64(),
            "plain_records_per_s": rate(plain_wall),
            "plain_bytes_per_record": plain_bytes as f64 / n as f64,
            "log_wall_s": log_wall.as_secs_f64(),
            "log_cpu_s": log_cpu.as_secs_f64(),
            "log_records_per_s": rate(log_wall),
            "log_bytes_per_record": st.used_bytes as f64 / n as f64,
            "log_segments": st.segments,
            "durable_n": durable_n,
            "durable_mean_ms": durable_each.as_secs_f64() * 1e3,
            "durable_p50_ms": pct(50),
            "durable_p99_ms": pct(99),
        })
    );
}

/// A realistic record: a failed login with user, address and a few details.
fn event(i: u64) -> Event {
    Event::new(EventKind::LoginFailed, Outcome::Failure)
        .actor(format!("operator{}", i % 50))
        .source(format!("192.0.2.{}:{}", i % 250, 40_000 + i % 20_000))
        .details(serde_json::json!({
            "method": "password",
            "channel": "api",
            "reason": "bad_password",
            "failures": i % 5 + 1
        }))
}

/// CPU time of this process: the sum over its threads of the time the scheduler ran them
/// (/proc/self/task/*/schedstat, nanoseconds; a thread that has ended no longer counts, and
/// none ends while a phase is timed here). Falls back to user + system time from
/// /proc/self/stat (10 ms ticks) where schedstat is missing.
fn cpu_time() -> Duration {
    let mut ns = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat"))
                && let Some(Ok(v)) = s.split_whitespace().next().map(str::parse::<u64>)
            {
                ns += v;
                found = true;
            }
        }
    }
    if found {
        return Duration::from_nanos(ns);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat(5): index 11 and 12 after the state field.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
