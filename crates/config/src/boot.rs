//! The boot-relative note kept with a pending marker.
//!
//! Linux gives every boot a random id (`/proc/sys/kernel/random/boot_id`) and counts uptime in
//! `CLOCK_BOOTTIME` (`/proc/uptime`, suspend included), which no `settimeofday` moves. The
//! marker's deadline is UTC, the only clock that means anything after a power cut; the note
//! records the same deadline in the boot's own clock, so that a reader knows whether it runs in
//! the boot that wrote the marker, and how much of the window remains regardless of a step of
//! the wall clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const UPTIME: &str = "/proc/uptime";

/// The boot a marker was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootNote {
    /// The kernel's boot id then (`None` where unreadable).
    pub boot_id: Option<String>,
    /// Uptime (ms since boot, `CLOCK_BOOTTIME`) when written.
    pub uptime_ms: Option<u64>,
    /// Uptime at the deadline, in the same boot.
    pub deadline_uptime_ms: Option<u64>,
}

impl BootNote {
    /// The note for now, with a window of `window` from now.
    pub fn now(window: Option<Duration>) -> Self {
        let uptime_ms = uptime_ms();
        let window_ms = window.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
        Self {
            boot_id: boot_id(),
            uptime_ms,
            deadline_uptime_ms: uptime_ms.zip(window_ms).map(|(u, w)| u.saturating_add(w)),
        }
    }

    /// Whether this process runs in the boot that wrote the note (`None`: unknown).
    pub fn same_boot(&self) -> Option<bool> {
        let then = self.boot_id.as_deref()?;
        let now = boot_id()?;
        Some(then == now)
    }

    /// Time left before the deadline by this boot's clock; `None` in another boot, or when
    /// there is no window or no reading.
    pub fn remaining(&self) -> Option<Duration> {
        if self.same_boot() != Some(true) {
            return None;
        }
        let deadline = self.deadline_uptime_ms?;
        let now = uptime_ms()?;
        Some(Duration::from_millis(deadline.saturating_sub(now)))
    }
}

fn boot_id() -> Option<String> {
    let text = std::fs::read_to_string(BOOT_ID).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn uptime_ms() -> Option<u64> {
    let text = std::fs::read_to_string(UPTIME).ok()?;
    let secs = text.split_whitespace().next()?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let whole: u64 = whole.parse().ok()?;
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let frac: u64 = frac.parse().ok()?;
    whole.checked_mul(1000)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_note_of_this_boot_is_of_this_boot() {
        let n = BootNote::now(Some(Duration::from_secs(600)));
        assert_eq!(n.same_boot(), Some(true));
        let left = n.remaining().unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        let other = BootNote {
            boot_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ..n
        };
        assert_eq!(other.same_boot(), Some(false));
        assert_eq!(other.remaining(), None);
    }
}
