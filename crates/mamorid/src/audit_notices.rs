//! Turns what the audit log says about itself (capacity, overwrites, write failures, a repaired
//! tail) into audit events, so they are in the record and reach the collectors (S3.1-35 R3).
//!
//! A thread of its own: the log reports through a queue it never blocks on, and this loop is
//! the only consumer, so recording an event here cannot re-enter the log's writer.

use std::sync::Arc;
use std::time::Duration;

use mamori_audit::log::{AuditLog, LogNotice};
use mamori_audit::{Event, EventKind, Outcome, Sink};
use serde_json::json;

/// Starts the notice thread; it ends with the process.
pub fn spawn(log: Arc<AuditLog>) {
    let spawned = std::thread::Builder::new()
        .name("mamori-audit-notices".into())
        .spawn(move || {
            loop {
                for notice in log.wait_notices(Duration::from_secs(5)) {
                    tracing::warn!(%notice, "audit log");
                    log.record(event_for(&notice));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the audit notice thread could not start");
    }
}

/// The event recording one notice.
pub fn event_for(notice: &LogNotice) -> Event {
    let message = notice.to_string();
    let (kind, outcome, details) = match notice {
        LogNotice::CapacityThresholdCrossed {
            percent,
            used_bytes,
            capacity_bytes,
        } => (
            EventKind::AuditLogCapacity,
            Outcome::Failure,
            json!({"percent": percent, "used_bytes": used_bytes, "capacity_bytes": capacity_bytes}),
        ),
        LogNotice::RecordsOverwritten {
            records,
            unread,
            first_kept_seq,
        } => (
            EventKind::AuditLogOverwritten,
            Outcome::Failure,
            json!({"records": records, "unread": unread, "first_kept_seq": first_kept_seq}),
        ),
        LogNotice::WriteRecovered { failed_attempts } => (
            EventKind::AuditLogWriteFailed,
            Outcome::Success,
            json!({"recovered_after_attempts": failed_attempts}),
        ),
        LogNotice::EventsDropped { count, total } => (
            EventKind::AuditLogWriteFailed,
            Outcome::Failure,
            json!({"refused": count, "refused_since_start": total}),
        ),
        _ => (
            EventKind::AuditLogWriteFailed,
            Outcome::Failure,
            serde_json::Value::Null,
        ),
    };
    let details = match details {
        serde_json::Value::Object(mut m) => {
            m.insert("message".into(), message.into());
            serde_json::Value::Object(m)
        }
        _ => json!({ "message": message }),
    };
    Event::new(kind, outcome).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_becomes_an_event_that_says_what_happened() {
        let e = event_for(&LogNotice::CapacityThresholdCrossed {
            percent: 80,
            used_bytes: 80,
            capacity_bytes: 100,
        });
        assert_eq!(e.event, EventKind::AuditLogCapacity);
        assert_eq!(e.details["percent"], 80);
        assert!(e.details["message"].as_str().unwrap().contains("80 %"));
        let e = event_for(&LogNotice::RecordsOverwritten {
            records: 10,
            unread: 4,
            first_kept_seq: 11,
        });
        assert_eq!(e.event, EventKind::AuditLogOverwritten);
        assert_eq!(e.details["unread"], 4);
        let e = event_for(&LogNotice::WriteFailing {
            error: "disk full".into(),
        });
        assert_eq!(e.event, EventKind::AuditLogWriteFailed);
        assert!(e.details["message"].as_str().unwrap().contains("disk full"));
    }
}
