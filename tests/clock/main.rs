//! Tests that move the machine's clock (time through the running device: manual set-time,
//! outside steps, NTP from a loopback chronyd).
//!
//! They are a test binary of their own because the clock is the whole machine's: cargo runs
//! test binaries one after another, so no other suite's timestamps, sessions or lockouts see
//! these steps, and inside this binary every test holds the one clock lock.

#[path = "../common/mod.rs"]
mod common;

// The functional suites' helpers; this binary uses a few of them.
#[allow(dead_code)]
#[path = "../functional/support.rs"]
mod support;

mod time;
