//! How big the log may grow and how it paces itself.

use std::time::Duration;

use super::error::LogError;

/// Smallest segment accepted (a frame is at most 64 KiB, see frame.rs).
const MIN_SEGMENT_BYTES: u64 = 128 * 1024;
/// Largest segment accepted: keeps each segment key far below the AES-GCM message limit of
/// the crypto policy (2^32) and a segment small enough to read into memory at once.
const MAX_SEGMENT_BYTES: u64 = 256 * 1024 * 1024;

/// The audit log's settings. Start from [`LogConfig::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogConfig {
    /// Total bytes of all segments. When a new segment would not fit, the oldest segments are
    /// deleted (overwrite-oldest, S3.1-35 R2).
    ///
    /// Default 128 MiB. A typical record (user, address and port, four detail fields) takes
    /// 342 bytes on disk (measured with `examples/append_throughput`: 105 bytes of frame, two
    /// AES-GCM envelopes of 29 bytes, about 180 bytes of JSON), so 128 MiB holds about 390,000
    /// records:
    /// - normal use of a gateway (logins, configuration changes, link events, rate-limited
    ///   firewall summaries) is in the order of 1,000–20,000 records a day: 3 weeks or more;
    /// - "about one day of normal use" (S3.1-35 R2b) still holds at a sustained 4.5 records/s
    ///   (390,000 a day), a rate only an attack or a fault produces;
    /// - it is 1.6 % of an 8 GB eMMC, and 32 segments of 4 MiB make each overwrite step 3 %.
    pub capacity_bytes: u64,
    /// A segment is closed and a new one started at this size (and at UTC midnight, so purging
    /// personal data works by whole days). Default 4 MiB.
    pub segment_bytes: u64,
    /// The sealing key evolves after this much monotonic time (and at every open). A thief of
    /// the running writer's key can forge records back to the start of the current epoch, no
    /// further. Default 15 minutes, as journald's `--interval`.
    pub epoch_interval: Duration,
    /// Events waiting for the writer, at most. Memory bound: about 300 bytes each. When the disk
    /// fails, events wait here; when it is full, new events are refused and counted. Default
    /// 16,384 (a third of a second at 50,000 records/s, minutes of any real load).
    pub queue_records: usize,
    /// How long `append` waits for room in a full queue before refusing. Default 50 ms.
    pub enqueue_wait: Duration,
    /// How long `append_durable` and `sync` wait for the fsync before reporting
    /// [`LogError::NotDurable`](super::LogError::NotDurable). Default 2 s.
    pub durable_wait: Duration,
    /// Records written per group commit (one write and one fsync), at most. Default 4,096.
    pub batch_records: usize,
    /// Pause between attempts while writing fails. Default 500 ms.
    pub retry_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            capacity_bytes: 128 * 1024 * 1024,
            segment_bytes: 4 * 1024 * 1024,
            epoch_interval: Duration::from_secs(15 * 60),
            queue_records: 16_384,
            enqueue_wait: Duration::from_millis(50),
            durable_wait: Duration::from_secs(2),
            batch_records: 4_096,
            retry_interval: Duration::from_millis(500),
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<(), LogError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(LogError::Config("segment_bytes must be 128 KiB to 256 MiB"));
        }
        if self.capacity_bytes < self.segment_bytes.saturating_mul(2) {
            return Err(LogError::Config(
                "capacity_bytes must hold at least two segments",
            ));
        }
        if self.epoch_interval.is_zero() {
            return Err(LogError::Config("epoch_interval must not be zero"));
        }
        if self.queue_records == 0 || self.batch_records == 0 {
            return Err(LogError::Config(
                "queue_records and batch_records must not be zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_bad_sizes_are_refused() {
        LogConfig::default().validate().unwrap();
        let c = LogConfig {
            capacity_bytes: LogConfig::default().segment_bytes,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
        let c = LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
