//! Shared pieces of mamori's measurement tools (not shipped; `scripts/bench` runs them).
//!
//! - [`tls`]: a client configuration that trusts exactly one certificate and never resumes a
//!   session, and a connect that binds a chosen loopback source address first;
//! - [`http1`]: the smallest HTTP/1.1 client that can send a request and read one answer
//!   (`Content-Length`, chunked, or up to the end of the stream), on any byte stream;
//! - [`procfs`]: resident memory, CPU time and children of a process, read from `/proc`;
//! - [`stats`]: medians and percentiles.

pub mod http1;
pub mod procfs;
pub mod stats;
pub mod tls;
