//! The audit records this crate writes: `time_changed` (S3.1-35 R1 D: a time change with the
//! time before and after) and `time_sync_changed` (synchronisation gained or lost).
//!
//! `time_changed` details:
//!
//! | field | meaning |
//! |---|---|
//! | `before` | what the clock showed (or would show) just before the change, RFC 3339 UTC, ms |
//! | `after` | what it showed just after |
//! | `step_ms` | `after - before` in milliseconds (negative: backwards) |
//! | `cause` | `manual` (an administrator, named as the actor), `ntp` (chronyd), `unknown` |
//! | `sets` | only when several small sets added up to the step: how many |
//! | `requested`, `forced`, `reason` | manual changes only: the time asked for, whether NTP was running and the change forced, why it was refused |
//!
//! `time_sync_changed` details: `synchronised`, `reference`, `stratum`, `offset_ms`,
//! `nts_authenticated` (of the selected source), `leap`.

use mamori_audit::{Event, EventKind, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::status::TimeStatus;
use crate::step::rfc3339_ms;

/// Why the clock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An administrator set it (the actor says who).
    Manual,
    /// chronyd stepped it.
    Ntp,
    /// Nobody mamori knows of: a step by another process with `CAP_SYS_TIME`, or a step the
    /// watcher could not match.
    Unknown,
}

/// A change of the clock: before and after, in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFigures {
    /// What the clock showed (or would have shown) without the change.
    pub before_ns: i64,
    /// What it showed after.
    pub after_ns: i64,
    /// How many sets added up to it (1 for a single step).
    pub sets: u32,
}

impl StepFigures {
    /// The step in milliseconds: exactly `after - before` as the record shows them (both
    /// truncated to the millisecond).
    pub fn step_ms(&self) -> i64 {
        self.after_ns
            .div_euclid(1_000_000)
            .saturating_sub(self.before_ns.div_euclid(1_000_000))
    }
}

fn time_text(ns: i64) -> serde_json::Value {
    rfc3339_ms(ns).map_or(serde_json::Value::Null, serde_json::Value::from)
}

/// A `time_changed` record for a step the watcher saw (no actor).
pub fn time_changed(figures: &StepFigures, cause: Cause) -> Event {
    let mut details = json!({
        "before": time_text(figures.before_ns),
        "after": time_text(figures.after_ns),
        "step_ms": figures.step_ms(),
        "cause": cause,
    });
    if figures.sets > 1 {
        details["sets"] = json!(figures.sets);
    }
    Event::new(EventKind::TimeChanged, Outcome::Success)
        .source("local")
        .details(details)
}

/// A `time_changed` record for a manual change an administrator made (or tried).
pub(crate) fn manual_time_changed(
    actor: &str,
    source: &str,
    requested_ms: i64,
    outcome: Result<(StepFigures, bool), &str>,
) -> Event {
    let requested = time_text(requested_ms.saturating_mul(1_000_000));
    let (outcome, details) = match outcome {
        Ok((figures, forced)) => (
            Outcome::Success,
            json!({
                "before": time_text(figures.before_ns),
                "after": time_text(figures.after_ns),
                "step_ms": figures.step_ms(),
                "cause": Cause::Manual,
                "requested": requested,
                "forced": forced,
            }),
        ),
        Err(reason) => (
            Outcome::Failure,
            json!({
                "cause": Cause::Manual,
                "requested": requested,
                "reason": reason,
            }),
        ),
    };
    Event::new(EventKind::TimeChanged, outcome)
        .actor(actor)
        .source(source)
        .details(details)
}

/// Turns a series of status readings into `time_sync_changed` records: one when
/// synchronisation is first reached, then one at every change (gained or lost).
///
/// Feed it every reading (for example every 16 s); a reading that failed (chronyd not
/// answering) counts as not synchronised.
#[derive(Debug, Clone, Default)]
pub struct SyncTracker {
    synchronised: Option<bool>,
}

impl SyncTracker {
    /// A tracker that has seen nothing yet (an unsynchronised start is not recorded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The record for this reading, if synchronisation changed.
    pub fn observe(&mut self, status: &TimeStatus) -> Option<Event> {
        let now = status.synchronised;
        let before = self.synchronised.replace(now);
        if before == Some(now) || (before.is_none() && !now) {
            return None;
        }
        let selected = status.selected();
        let outcome = if now {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        Some(
            Event::new(EventKind::TimeSyncChanged, outcome)
                .source("local")
                .details(json!({
                    "synchronised": now,
                    "reference": status.reference,
                    "stratum": status.stratum,
                    "offset_ms": status.offset_ms,
                    "nts_authenticated": selected.is_some_and(|s| s.nts_authenticated),
                    "leap": status.leap,
                })),
        )
    }

    /// The record for a reading that failed, if the clock counted as synchronised until now.
    pub fn observe_failure(&mut self, error: &crate::TimeError) -> Option<Event> {
        let before = self.synchronised.replace(false);
        (before == Some(true)).then(|| {
            Event::new(EventKind::TimeSyncChanged, Outcome::Failure)
                .source("local")
                .details(json!({
                    "synchronised": false,
                    "reason": error.to_string(),
                }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Leap, SourceMode, SourceState, SourceStatus};

    fn status(synchronised: bool) -> TimeStatus {
        TimeStatus {
            synchronised,
            reference: synchronised.then(|| "192.0.2.1".to_owned()),
            reference_id: if synchronised { "C0000201" } else { "00000000" }.into(),
            stratum: if synchronised { 3 } else { 0 },
            offset_ms: 0.25,
            last_offset_ms: 0.1,
            last_update: None,
            update_interval_s: 64.0,
            leap: if synchronised {
                Leap::Normal
            } else {
                Leap::NotSynchronised
            },
            sources: vec![SourceStatus {
                address: "192.0.2.1".into(),
                mode: SourceMode::Server,
                state: if synchronised {
                    SourceState::Selected
                } else {
                    SourceState::Unusable
                },
                stratum: 2,
                poll: 6,
                reach: 255,
                last_rx_s: Some(3),
                offset_ms: 0.2,
                error_ms: 1.0,
                nts: true,
                nts_authenticated: true,
                nts_cookies: 8,
                nts_ke_attempts: 0,
            }],
        }
    }

    #[test]
    fn sync_is_recorded_when_gained_and_when_lost_not_while_it_stays() {
        let mut t = SyncTracker::new();
        assert!(t.observe(&status(false)).is_none(), "unsynchronised start");
        let gained = t.observe(&status(true)).unwrap();
        assert_eq!(gained.event, EventKind::TimeSyncChanged);
        assert_eq!(gained.outcome, Outcome::Success);
        assert_eq!(gained.details["synchronised"], true);
        assert_eq!(gained.details["reference"], "192.0.2.1");
        assert_eq!(gained.details["nts_authenticated"], true);
        assert!(t.observe(&status(true)).is_none());
        let lost = t.observe(&status(false)).unwrap();
        assert_eq!(lost.outcome, Outcome::Failure);
        assert_eq!(lost.details["synchronised"], false);
        assert_eq!(lost.details["nts_authenticated"], false);
        assert!(t.observe(&status(false)).is_none());
        t.observe(&status(true)).unwrap();
        let failed = t
            .observe_failure(&crate::TimeError::ChronydUnreachable)
            .unwrap();
        assert_eq!(failed.outcome, Outcome::Failure);
        assert!(
            t.observe_failure(&crate::TimeError::ChronydUnreachable)
                .is_none()
        );
    }

    #[test]
    fn a_synchronised_start_is_recorded() {
        assert!(SyncTracker::new().observe(&status(true)).is_some());
    }

    #[test]
    fn manual_records_name_the_actor_and_the_request() {
        let ok = manual_time_changed(
            "alice",
            "192.0.2.9",
            1_800_000_005_000,
            Ok((
                StepFigures {
                    before_ns: 1_800_000_000_000_000_000,
                    after_ns: 1_800_000_005_000_100_000,
                    sets: 1,
                },
                false,
            )),
        );
        assert_eq!(ok.actor.as_deref(), Some("alice"));
        assert_eq!(ok.source.as_deref(), Some("192.0.2.9"));
        assert_eq!(ok.outcome, Outcome::Success);
        assert_eq!(ok.details["cause"], "manual");
        assert_eq!(ok.details["before"], "2027-01-15T08:00:00.000Z");
        assert_eq!(ok.details["after"], "2027-01-15T08:00:05.000Z");
        assert_eq!(ok.details["requested"], "2027-01-15T08:00:05.000Z");
        assert_eq!(ok.details["step_ms"], 5000);
        let refused = manual_time_changed("alice", "console", 0, Err("before the build"));
        assert_eq!(refused.outcome, Outcome::Failure);
        assert_eq!(refused.details["reason"], "before the build");
        assert_eq!(refused.details["requested"], "1970-01-01T00:00:00.000Z");
    }
}
