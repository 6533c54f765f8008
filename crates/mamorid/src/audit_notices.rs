//! Turns what the audit log says about itself (capacity, overwrites, write failures, a repaired
//! tail) into audit events, so they are in the record and reach the collectors (S3.1-35 R3).
//!
//! A thread of its own: the log reports through a queue it never blocks on, and this loop is
//! the only consumer, so recording an event here cannot re-enter the log's writer.

use std::sync::Arc;
use std::time::Duration;

use mamori_audit::Sink;
use mamori_audit::log::AuditLog;

/// Starts the notice thread; it ends with the process.
pub fn spawn(log: Arc<AuditLog>) {
    let spawned = std::thread::Builder::new()
        .name("mamori-audit-notices".into())
        .spawn(move || {
            loop {
                for notice in log.wait_notices(Duration::from_secs(5)) {
                    tracing::warn!(%notice, "audit log");
                    log.record(notice.to_event());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the audit notice thread could not start");
    }
}
