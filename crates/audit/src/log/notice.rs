//! What the log tells its owner: capacity warnings, overwrites, drops, write failures, repairs.
//!
//! Notices are queued (bounded) and taken by the caller, on the caller's thread. The writer
//! never calls back into the caller, so a caller that logs an audit event about a notice cannot
//! deadlock the writer, and `append` itself never waits longer than its configured bound.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::Seq;

/// Notices kept until taken; older ones are counted as lost beyond this.
const NOTICE_LIMIT: usize = 256;

/// Something the log's owner should record as an event or show (S3.1-35 R3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogNotice {
    /// The log's used space rose past a warning threshold (80 or 90 % of its capacity).
    CapacityThresholdCrossed {
        /// The threshold crossed.
        percent: u8,
        /// Bytes in use.
        used_bytes: u64,
        /// The configured capacity.
        capacity_bytes: u64,
    },
    /// Events were refused because the queue stayed full (the disk is failing or too slow).
    EventsDropped {
        /// Refused since the previous notice of this kind.
        count: u64,
        /// Refused since the log was opened.
        total: u64,
    },
    /// More notices came than were taken; this many were lost.
    NoticesLost {
        /// How many.
        count: u64,
    },
    /// The oldest segments were deleted to make room.
    RecordsOverwritten {
        /// Records deleted.
        records: u64,
        /// Of those, records the forwarder had not acknowledged.
        unread: u64,
        /// The oldest record still in the log.
        first_kept_seq: Seq,
    },
    /// `open` found the last segment ending in a torn (incomplete or damaged) write, from a
    /// crash or power loss, and cut it off. No record acknowledged as durable is ever in it.
    TornTailCut {
        /// The segment.
        file: PathBuf,
        /// Where the cut was made.
        offset: u64,
        /// Bytes cut.
        bytes: u64,
        /// Where the cut bytes were kept (when not all zero), for inspection.
        kept_as: Option<PathBuf>,
    },
    /// Writing failed; events wait in the queue and the writer keeps retrying.
    WriteFailing {
        /// The error.
        error: String,
    },
    /// Writing works again after failures.
    WriteRecovered {
        /// Failed attempts before it worked.
        failed_attempts: u64,
    },
}

impl fmt::Display for LogNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CapacityThresholdCrossed {
                percent,
                used_bytes,
                capacity_bytes,
            } => write!(
                f,
                "audit log is over {percent} % full ({used_bytes} of {capacity_bytes} bytes); the oldest records will be overwritten"
            ),
            Self::EventsDropped { count, total } => write!(
                f,
                "{count} audit events were refused because the log could not keep up ({total} since start)"
            ),
            Self::NoticesLost { count } => write!(f, "{count} audit log notices were lost"),
            Self::RecordsOverwritten {
                records,
                unread,
                first_kept_seq,
            } => write!(
                f,
                "{records} oldest audit records were overwritten ({unread} not yet forwarded); the log now starts at record {first_kept_seq}"
            ),
            Self::TornTailCut {
                file,
                offset,
                bytes,
                ..
            } => write!(
                f,
                "{bytes} bytes at the end of {} (offset {offset}) did not form valid records and were cut off: a crash, or tampering",
                file.display()
            ),
            Self::WriteFailing { error } => write!(f, "the audit log cannot write: {error}"),
            Self::WriteRecovered { failed_attempts } => write!(
                f,
                "the audit log writes again after {failed_attempts} failed attempts"
            ),
        }
    }
}

impl LogNotice {
    /// The audit event that records this notice: the log's own troubles are in the record, and
    /// reach the collectors, like any other security event (S3.1-35 R3).
    pub fn to_event(&self) -> crate::Event {
        use crate::{Event, EventKind, Outcome};
        use serde_json::json;
        let (kind, outcome, mut details) = match self {
            Self::CapacityThresholdCrossed {
                percent,
                used_bytes,
                capacity_bytes,
            } => (
                EventKind::AuditLogCapacity,
                Outcome::Failure,
                json!({"percent": percent, "used_bytes": used_bytes, "capacity_bytes": capacity_bytes}),
            ),
            Self::RecordsOverwritten {
                records,
                unread,
                first_kept_seq,
            } => (
                EventKind::AuditLogOverwritten,
                Outcome::Failure,
                json!({"records": records, "unread": unread, "first_kept_seq": first_kept_seq}),
            ),
            Self::TornTailCut {
                file,
                offset,
                bytes,
                kept_as,
            } => (
                EventKind::AuditLogRepaired,
                Outcome::Failure,
                json!({"file": file.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "offset": offset, "bytes": bytes,
                    "kept_as": kept_as.as_ref().and_then(|k| k.file_name())
                        .map(|n| n.to_string_lossy().into_owned())}),
            ),
            Self::WriteRecovered { failed_attempts } => (
                EventKind::AuditLogWriteFailed,
                Outcome::Success,
                json!({"recovered_after_attempts": failed_attempts}),
            ),
            Self::EventsDropped { count, total } => (
                EventKind::AuditLogWriteFailed,
                Outcome::Failure,
                json!({"refused": count, "refused_since_start": total}),
            ),
            Self::NoticesLost { count } => (
                EventKind::AuditLogWriteFailed,
                Outcome::Failure,
                json!({"notices_lost": count}),
            ),
            Self::WriteFailing { .. } => {
                (EventKind::AuditLogWriteFailed, Outcome::Failure, json!({}))
            }
        };
        details["message"] = self.to_string().into();
        Event::new(kind, outcome).details(details)
    }
}

/// The bounded queue of notices.
#[derive(Default)]
pub(crate) struct NoticeBox {
    inner: Mutex<(VecDeque<LogNotice>, u64)>,
    ready: Condvar,
}

impl NoticeBox {
    /// Queues a notice. Repeated drops and overwrites are merged into the queued notice of the
    /// same kind, so a long outage or a flood cannot push the rare notices (write failing,
    /// thresholds) out of the bounded queue.
    pub(crate) fn push(&self, notice: LogNotice) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queued) = g.0.iter_mut().rev().find(|q| same_kind(q, &notice))
            && merge(queued, &notice)
        {
            return;
        }
        if g.0.len() >= NOTICE_LIMIT {
            g.0.pop_front();
            g.1 += 1;
        }
        g.0.push_back(notice);
        self.ready.notify_all();
    }

    pub(crate) fn take(&self) -> Vec<LogNotice> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Self::drain(&mut g)
    }

    pub(crate) fn wait(&self, timeout: Duration) -> Vec<LogNotice> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut g, _) = self
            .ready
            .wait_timeout_while(g, timeout, |g| g.0.is_empty() && g.1 == 0)
            .unwrap_or_else(PoisonError::into_inner);
        Self::drain(&mut g)
    }

    fn drain(g: &mut (VecDeque<LogNotice>, u64)) -> Vec<LogNotice> {
        let mut out: Vec<LogNotice> = g.0.drain(..).collect();
        if g.1 > 0 {
            out.push(LogNotice::NoticesLost { count: g.1 });
            g.1 = 0;
        }
        out
    }
}

fn same_kind(a: &LogNotice, b: &LogNotice) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Adds `new` into `queued` where both count the same thing; false if they do not merge.
fn merge(queued: &mut LogNotice, new: &LogNotice) -> bool {
    match (queued, new) {
        (
            LogNotice::EventsDropped { count, total },
            LogNotice::EventsDropped { count: c, total: t },
        ) => {
            *count += c;
            *total = (*total).max(*t);
            true
        }
        (
            LogNotice::RecordsOverwritten {
                records,
                unread,
                first_kept_seq,
            },
            LogNotice::RecordsOverwritten {
                records: r,
                unread: u,
                first_kept_seq: f,
            },
        ) => {
            *records += r;
            *unread += u;
            *first_kept_seq = (*first_kept_seq).max(*f);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_drops_merge_and_do_not_push_out_a_write_failure() {
        let b = NoticeBox::default();
        b.push(LogNotice::WriteFailing {
            error: "disk full".into(),
        });
        for i in 1..=1000 {
            b.push(LogNotice::EventsDropped {
                count: 2,
                total: 2 * i,
            });
        }
        assert_eq!(
            b.take(),
            [
                LogNotice::WriteFailing {
                    error: "disk full".into()
                },
                LogNotice::EventsDropped {
                    count: 2000,
                    total: 2000
                },
            ]
        );
    }

    #[test]
    fn a_flood_of_notices_is_bounded_and_the_loss_reported() {
        let b = NoticeBox::default();
        for i in 0..(NOTICE_LIMIT as u64 + 5) {
            b.push(LogNotice::WriteRecovered { failed_attempts: i });
        }
        let got = b.take();
        assert_eq!(got.len(), NOTICE_LIMIT + 1);
        assert_eq!(got.last(), Some(&LogNotice::NoticesLost { count: 5 }));
        assert!(b.wait(Duration::from_millis(1)).is_empty());
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn every_notice_becomes_an_event_that_says_what_happened() {
        let e = LogNotice::CapacityThresholdCrossed {
            percent: 80,
            used_bytes: 80,
            capacity_bytes: 100,
        }
        .to_event();
        assert_eq!(e.event, EventKind::AuditLogCapacity);
        assert_eq!(e.details["percent"], 80);
        assert!(e.details["message"].as_str().unwrap().contains("80 %"));
        let e = LogNotice::RecordsOverwritten {
            records: 10,
            unread: 4,
            first_kept_seq: 11,
        }
        .to_event();
        assert_eq!(e.event, EventKind::AuditLogOverwritten);
        assert_eq!(e.details["unread"], 4);
        let e = LogNotice::TornTailCut {
            file: PathBuf::from("/x/seg-1.log"),
            offset: 2876,
            bytes: 100,
            kept_as: Some(PathBuf::from("/x/seg-1.log.torn-2876")),
        }
        .to_event();
        assert_eq!(e.event, EventKind::AuditLogRepaired);
        assert_eq!(e.details["kept_as"], "seg-1.log.torn-2876");
        let e = LogNotice::WriteFailing {
            error: "disk full".into(),
        }
        .to_event();
        assert_eq!(e.event, EventKind::AuditLogWriteFailed);
        assert!(e.details["message"].as_str().unwrap().contains("disk full"));
    }
}
