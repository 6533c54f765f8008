//! The two clocks every record carries.
//!
//! UTC for people and for day-granular purging; CLOCK_BOOTTIME (monotonic, and unlike
//! CLOCK_MONOTONIC it keeps counting through a suspend) so that a wall-clock step shows as a
//! jump of UTC against it instead of as a silent reordering.

use nix::time::{ClockId, clock_gettime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds in a UTC day (no leap seconds in Unix time).
pub(crate) const DAY_MS: i64 = 86_400_000;

/// UTC now, in milliseconds since the Unix epoch (negative before 1970, which a broken RTC can give).
pub(crate) fn utc_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// Milliseconds since boot. Zero if the clock cannot be read (it cannot fail on Linux).
pub(crate) fn mono_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let millis = u64::try_from(ts.tv_nsec()).unwrap_or(0) / 1_000_000;
            secs.saturating_mul(1000).saturating_add(millis)
        }
        Err(_) => 0,
    }
}

/// The UTC day number of a time, for rolling segments at midnight.
pub(crate) fn day_of(utc_ms: i64) -> i64 {
    utc_ms.div_euclid(DAY_MS)
}

/// RFC 3339 with milliseconds, the form records are shown and exported in.
pub(crate) fn rfc3339(utc_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(utc_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A time as UTC milliseconds (saturating far outside the representable range).
pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(if t.year() < 1970 {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_milliseconds_in_utc() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn days_split_at_utc_midnight_also_before_1970() {
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn monotonic_time_does_not_go_backwards() {
        let a = mono_ms();
        let b = mono_ms();
        assert!(a > 0 && b >= a);
    }
}
