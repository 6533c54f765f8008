//! `tlsload`: new-connection HTTPS load, the same for mamorid and for nginx.
//!
//! Every request opens a NEW TCP connection, runs a full TLS handshake (the client configuration
//! is the product's, with session resumption disabled), sends `GET PATH` with
//! `Connection: close`, reads the whole answer, and waits for the server to close. `concurrency`
//! such loops run at once for `duration` seconds or until `max-requests` have been started,
//! whichever comes first; a request that takes longer than `timeout` counts as an error.
//!
//! Connections are spread over the loopback source addresses 127.0.0.2, 127.0.0.3, … (one per
//! worker, round robin), bound before connecting, so a per-source connection limit on the server
//! does not cap the test.
//!
//! Prints one line of `key=value` fields: requests, errors, requests per second, p50 and p99
//! latency (connect to complete answer), the negotiated protocol, suite and group, the CPU
//! time the client and (with `--server-pid`) the server processes spent per request, and how
//! busy the machine was (`machine_busy_pct`) and how much of it was neither (`others_cpu_pct`,
//! in percent of all CPUs), since a shared machine's other work moves requests/s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mamori_bench::{http1, procfs, stats, tls};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// New-connection TLS load client.
#[derive(Debug, Parser)]
struct Args {
    /// Server address, for example 127.0.0.1:8443.
    #[arg(long)]
    addr: SocketAddr,
    /// PEM file with the certificate to trust (the server's self-signed certificate).
    #[arg(long)]
    cacert: PathBuf,
    /// Name to verify the certificate against (an IP address or a DNS name).
    #[arg(long, default_value = "127.0.0.1")]
    server_name: String,
    /// Path to GET.
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Upper bound on requests started.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Number of loopback source addresses to spread over (127.0.0.2 onwards); 0 lets the
    /// kernel choose (127.0.0.1).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Client runtime threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Server process whose CPU time (with its children's) to report; may be repeated.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Label printed with the results.
    #[arg(long, default_value = "server")]
    label: String,
}

struct Ctx {
    connector: TlsConnector,
    name: ServerName<'static>,
    addr: SocketAddr,
    request: Vec<u8>,
    end: Instant,
    max_requests: u64,
    started: AtomicU64,
    timeout: Duration,
    negotiated: OnceLock<String>,
}

#[derive(Default)]
struct WorkerResult {
    latencies_ms: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
}

/// One request on a new connection; returns the time from connect to complete answer.
async fn one(ctx: &Ctx, local: Option<IpAddr>) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut stream = tls::connect(&ctx.connector, &ctx.name, ctx.addr, local)
        .await
        .context("connect/handshake")?;
    if ctx.negotiated.get().is_none() {
        let (_, conn) = stream.get_ref();
        let _ = ctx.negotiated.set(format!(
            "protocol={} suite={} group={}",
            conn.protocol_version()
                .map_or_else(|| "none".to_owned(), |v| format!("{v:?}")),
            conn.negotiated_cipher_suite()
                .map_or_else(|| "none".to_owned(), |s| format!("{:?}", s.suite())),
            conn.negotiated_key_exchange_group()
                .map_or_else(|| "none".to_owned(), |g| format!("{:?}", g.name())),
        ));
    }
    let mut buf = Vec::new();
    let answer = http1::exchange(&mut stream, &mut buf, &ctx.request)
        .await
        .context("request")?;
    let elapsed = t0.elapsed();
    anyhow::ensure!(answer.status == 200, "status {}", answer.status);
    // The server closes (Connection: close); wait for it so TIME_WAIT stays on its side.
    let _ = tokio::time::timeout(Duration::from_secs(1), http1::drain_to_end(&mut stream)).await;
    Ok(elapsed)
}

async fn worker(ctx: Arc<Ctx>, local: Option<IpAddr>) -> WorkerResult {
    let mut r = WorkerResult::default();
    while Instant::now() < ctx.end && ctx.started.fetch_add(1, Ordering::Relaxed) < ctx.max_requests
    {
        let failure = match tokio::time::timeout(ctx.timeout, one(&ctx, local)).await {
            Ok(Ok(d)) => {
                r.latencies_ms.push(d.as_secs_f64() * 1000.0);
                None
            }
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some("timeout".to_owned()),
        };
        if let Some(e) = failure {
            r.errors += 1;
            r.first_error.get_or_insert(e);
            // Do not spin on a refusing server.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    r
}

fn server_cpu_ms(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| procfs::cpu_ms(p)).sum()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "concurrency must be at least 1");
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 600.0,
        "duration must be in (0, 600] seconds"
    );
    let config = tls::client_config(&args.cacert)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let server_pids: Vec<u32> = args
        .server_pid
        .iter()
        .flat_map(|&p| procfs::with_children(p))
        .collect();
    let ctx = Arc::new(Ctx {
        connector: TlsConnector::from(config),
        name: tls::server_name(&args.server_name)?,
        addr: args.addr,
        request: http1::get(&args.server_name, &args.path, true),
        end: Instant::now() + Duration::from_secs_f64(args.duration),
        max_requests: args.max_requests,
        started: AtomicU64::new(0),
        timeout: Duration::from_secs_f64(args.timeout),
        negotiated: OnceLock::new(),
    });
    let machine0 = procfs::machine_cpu_ms().unwrap_or((0, 0));
    let server_cpu0 = server_cpu_ms(&server_pids);
    let client_cpu0 = procfs::cpu_ms(std::process::id()).unwrap_or(0);
    let t0 = Instant::now();
    let results: Vec<WorkerResult> = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(args.concurrency);
        for i in 0..args.concurrency {
            let local = (args.sources > 0).then(|| {
                let n = u8::try_from(i % usize::from(args.sources)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n))
            });
            tasks.push(tokio::spawn(worker(ctx.clone(), local)));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let client_cpu = procfs::cpu_ms(std::process::id())
        .unwrap_or(0)
        .saturating_sub(client_cpu0);
    let server_cpu = server_cpu_ms(&server_pids).saturating_sub(server_cpu0);
    let machine1 = procfs::machine_cpu_ms().unwrap_or((0, 0));
    let busy = machine1.0.saturating_sub(machine0.0);
    let total = machine1.1.saturating_sub(machine0.1).max(1);
    // What everything else on the machine used meanwhile (other people's builds and tests).
    let others_pct = busy.saturating_sub(client_cpu + server_cpu) as f64 * 100.0 / total as f64;
    let busy_pct = busy as f64 * 100.0 / total as f64;
    runtime.shutdown_timeout(Duration::from_secs(1));

    let latencies: Vec<f64> = results
        .iter()
        .flat_map(|r| r.latencies_ms.iter().copied())
        .collect();
    let ok = latencies.len() as f64;
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let first_error = results
        .iter()
        .find_map(|r| r.first_error.clone())
        .unwrap_or_default();
    let per_req_us = |cpu_ms: u64| {
        if ok > 0.0 {
            format!("{:.0}", cpu_ms as f64 * 1000.0 / ok)
        } else {
            "-".to_owned()
        }
    };
    println!(
        "label={} concurrency={} duration_s={elapsed:.2} requests={} errors={errors} rps={:.1} \
         p50_ms={:.2} p99_ms={:.2} {} client_cpu_us_per_req={} server_cpu_us_per_req={} \
         machine_busy_pct={busy_pct:.0} others_cpu_pct={others_pct:.0} first_error={:?}",
        args.label,
        args.concurrency,
        latencies.len(),
        ok / elapsed,
        stats::percentile(&latencies, 50.0).unwrap_or(f64::NAN),
        stats::percentile(&latencies, 99.0).unwrap_or(f64::NAN),
        ctx.negotiated.get().map_or("protocol=none", String::as_str),
        per_req_us(client_cpu),
        if server_pids.is_empty() {
            "-".to_owned()
        } else {
            per_req_us(server_cpu)
        },
        first_error,
    );
    Ok(())
}
