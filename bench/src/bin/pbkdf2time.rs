//! `pbkdf2time`: how long one password hash takes at the policy's PBKDF2 cost.
//!
//! Calls `mamori_crypto::password::hash` (PBKDF2-HMAC-SHA-256, the policy's iteration count,
//! fresh salt) once to warm up and then `--count` times, and prints the median, minimum and
//! maximum in milliseconds as `key=value` fields.

use std::time::Instant;

use clap::Parser;
use mamori_bench::stats;
use mamori_crypto::policy::PBKDF2_ITERATIONS;

/// PBKDF2 timing loop.
#[derive(Debug, Parser)]
struct Args {
    /// Hashes to time (1–100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let password = "Fjord-Lantern-58-quiet";
    mamori_crypto::password::hash(password)?;
    let mut times = Vec::new();
    for _ in 0..args.count {
        let t0 = Instant::now();
        let phc = mamori_crypto::password::hash(password)?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(phc);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "pbkdf2_iterations={PBKDF2_ITERATIONS} count={} median_ms={:.1} min_ms={min:.1} max_ms={max:.1}",
        args.count,
        stats::median(&times).unwrap_or(f64::NAN),
    );
    Ok(())
}
