//! Durability end-to-end tests: the real daemon, killed with SIGKILL mid-operation and started
//! again on the same state (a power cut as far as the software can tell).

// Helpers outside #[test] functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../security/support.rs"]
mod support;

mod power_cut;
