//! Capacity accounting: warning thresholds and overwrite counting.

use super::Seq;
use super::notice::LogNotice;

/// Used-space warning thresholds, percent of the capacity.
pub(crate) const THRESHOLDS: [u8; 2] = [80, 90];
/// A threshold warns again only after usage fell this many points below it, so a full log
/// that deletes and refills a segment does not warn on every roll.
const REARM_POINTS: u64 = 10;

/// Integer percent, rounded down.
pub(crate) fn percent(used: u64, capacity: u64) -> u8 {
    if capacity == 0 {
        return 100;
    }
    u8::try_from((u128::from(used) * 100 / u128::from(capacity)).min(100)).unwrap_or(100)
}

/// Which thresholds have warned and not re-armed yet.
#[derive(Debug, Default)]
pub(crate) struct Thresholds {
    warned: [bool; THRESHOLDS.len()],
}

impl Thresholds {
    /// Notices for thresholds crossed upwards since the last check.
    pub(crate) fn check(&mut self, used: u64, capacity: u64) -> Vec<LogNotice> {
        let pct = u64::from(percent(used, capacity));
        let mut out = Vec::new();
        for (i, &t) in THRESHOLDS.iter().enumerate() {
            if pct >= u64::from(t) && !self.warned[i] {
                self.warned[i] = true;
                out.push(LogNotice::CapacityThresholdCrossed {
                    percent: t,
                    used_bytes: used,
                    capacity_bytes: capacity,
                });
            } else if pct + REARM_POINTS <= u64::from(t) {
                self.warned[i] = false;
            }
        }
        out
    }
}

/// Records `first..next_first` deleted, of which those after `acknowledged` were unread.
pub(crate) fn unread(first: Seq, next_first: Seq, acknowledged: Seq) -> u64 {
    next_first.saturating_sub(first.max(acknowledged.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_warn_once_each_and_rearm_well_below() {
        let mut t = Thresholds::default();
        assert!(t.check(70, 100).is_empty());
        assert_eq!(t.check(85, 100).len(), 1);
        assert_eq!(t.check(95, 100).len(), 1);
        assert!(t.check(100, 100).is_empty());
        assert!(
            t.check(88, 100).is_empty(),
            "a roll at a full log must not warn again"
        );
        assert!(t.check(60, 100).is_empty());
        assert_eq!(t.check(91, 100).len(), 2);
    }

    #[test]
    fn unread_counts_only_records_after_the_acknowledged_seq() {
        assert_eq!(unread(1, 101, 0), 100);
        assert_eq!(unread(1, 101, 50), 50);
        assert_eq!(unread(1, 101, 500), 0);
    }
}
