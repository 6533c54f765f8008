//! Throttling of source addresses after repeated failures (S3.1-04 R1-2 ②).
//!
//! In memory, bounded, and never sleeping: a throttled source gets an immediate refusal with a
//! retry time. IPv6 sources are grouped by /64, since one host usually holds a whole /64.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::settings::canonical;

/// Most sources tracked; beyond it the stalest entry is forgotten.
const CAPACITY: usize = 65_536;

/// What the throttle counts failures by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// One IPv4 address.
    V4(u32),
    /// One IPv6 /64.
    V6(u64),
    /// The local console.
    Console,
}

impl SourceKey {
    /// The key for an address (or the console when there is none).
    pub fn of(addr: Option<IpAddr>) -> Self {
        match addr.map(canonical) {
            Some(IpAddr::V4(v4)) => SourceKey::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => SourceKey::V6((u128::from(v6) >> 64) as u64),
            None => SourceKey::Console,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    strikes: u32,
    blocked_until: u64,
    last: u64,
    last_refusal_noted: u64,
}

/// Failure counts per source.
#[derive(Debug, Default)]
pub struct SourceThrottle {
    entries: HashMap<SourceKey, Entry>,
}

/// Lock or block duration for the `n`-th time (0-based): base × 2ⁿ, at most `max`.
pub fn escalate(base: u64, max: u64, n: u32) -> u64 {
    base.saturating_mul(1u64 << n.min(30)).min(max)
}

impl SourceThrottle {
    /// Seconds until the source may try again, if it is blocked now.
    pub fn blocked(&self, key: SourceKey, now: u64) -> Option<u64> {
        self.entries
            .get(&key)
            .filter(|e| e.blocked_until > now)
            .map(|e| e.blocked_until - now)
    }

    /// Counts a failure; returns the block duration if this failure started a block.
    pub fn fail(
        &mut self,
        key: SourceKey,
        now: u64,
        threshold: u32,
        base: u64,
        max: u64,
    ) -> Option<u64> {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            let stalest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| *k);
            if let Some(k) = stalest {
                self.entries.remove(&k);
            }
        }
        let e = self.entries.entry(key).or_default();
        e.last = now;
        e.failures += 1;
        if e.failures >= threshold {
            let secs = escalate(base, max, e.strikes);
            e.strikes += 1;
            e.failures = 0;
            e.blocked_until = now + secs;
            return Some(secs);
        }
        None
    }

    /// Whether a refusal of this blocked source should be recorded now (at most once a minute).
    pub fn note_refusal(&mut self, key: SourceKey, now: u64) -> bool {
        match self.entries.get_mut(&key) {
            Some(e) if e.last_refusal_noted == 0 || now >= e.last_refusal_noted + 60 => {
                e.last_refusal_noted = now;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// A success from the source clears its count.
    pub fn succeed(&mut self, key: SourceKey) {
        self.entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_blocked_after_the_threshold_and_escalates() {
        let mut t = SourceThrottle::default();
        let k = SourceKey::of(Some("192.0.2.1".parse().unwrap()));
        for _ in 0..2 {
            assert_eq!(t.fail(k, 100, 3, 60, 3600), None);
        }
        assert_eq!(t.fail(k, 100, 3, 60, 3600), Some(60));
        assert_eq!(t.blocked(k, 130), Some(30));
        assert_eq!(t.blocked(k, 160), None);
        for _ in 0..2 {
            t.fail(k, 200, 3, 60, 3600);
        }
        assert_eq!(t.fail(k, 200, 3, 60, 3600), Some(120));
    }

    #[test]
    fn other_sources_are_not_affected() {
        let mut t = SourceThrottle::default();
        let a = SourceKey::of(Some("192.0.2.1".parse().unwrap()));
        let b = SourceKey::of(Some("192.0.2.2".parse().unwrap()));
        t.fail(a, 0, 1, 60, 60);
        assert!(t.blocked(a, 1).is_some());
        assert!(t.blocked(b, 1).is_none());
    }

    #[test]
    fn ipv6_addresses_in_one_64_share_a_key_and_mapped_v4_matches_v4() {
        assert_eq!(
            SourceKey::of(Some("2001:db8::1".parse().unwrap())),
            SourceKey::of(Some("2001:db8::ffff:1".parse().unwrap()))
        );
        assert_ne!(
            SourceKey::of(Some("2001:db8::1".parse().unwrap())),
            SourceKey::of(Some("2001:db8:0:1::1".parse().unwrap()))
        );
        assert_eq!(
            SourceKey::of(Some("::ffff:192.0.2.1".parse().unwrap())),
            SourceKey::of(Some("192.0.2.1".parse().unwrap()))
        );
    }

    #[test]
    fn refusals_of_a_blocked_source_are_noted_once_a_minute() {
        let mut t = SourceThrottle::default();
        let k = SourceKey::of(Some("192.0.2.1".parse().unwrap()));
        t.fail(k, 100, 1, 600, 600);
        assert!(t.note_refusal(k, 101));
        assert!(!t.note_refusal(k, 130));
        assert!(t.note_refusal(k, 161));
    }

    #[test]
    fn escalation_is_capped() {
        assert_eq!(escalate(60, 3600, 0), 60);
        assert_eq!(escalate(60, 3600, 3), 480);
        assert_eq!(escalate(60, 3600, 40), 3600);
    }
}
