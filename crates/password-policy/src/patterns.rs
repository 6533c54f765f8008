//! Pattern C: counters, repeated characters, sequences and repeated blocks.
//!
//! Every character that belongs to one of these runs is marked:
//! - a character repeated three or more times ("aaa");
//! - an ascending or descending sequence of three or more letters or digits ("abc", "987",
//!   and "7890", where 0 follows 9);
//! - a block of two or more characters repeated at least twice in a row ("abab", "abcabc").
//!
//! The password is mostly such runs, and rejected, when fewer than four characters are left
//! unmarked or the runs cover at least 60 % of it. So "12345678", "1234abcd", "abcabcabcabc"
//! and "9876543210ab" are rejected, while a passphrase that happens to contain "abc" is not.

/// Minimum length of a repeat or sequence run.
const MIN_RUN: usize = 3;
/// Fewer unmarked characters than this: the password is a counter.
const MIN_LEFT: usize = 4;
/// Runs covering at least this share (percent) of the password: the password is a counter.
const MOSTLY_PERCENT: usize = 60;

/// What kind of run a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One character repeated.
    Repeat,
    /// Consecutive letters or digits, up or down.
    Sequence,
    /// A block of `n` characters repeated.
    Block(usize),
}

/// One run found in the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// What it is.
    pub kind: Kind,
    /// Its characters (for a block: the whole repeated run).
    pub text: String,
}

/// The result of marking runs in a string.
struct Marks {
    marked: Vec<bool>,
    longest: Option<(usize, usize, Kind)>,
}

impl Marks {
    fn mark(&mut self, start: usize, len: usize, kind: Kind) {
        for m in self.marked.iter_mut().skip(start).take(len) {
            *m = true;
        }
        if self.longest.is_none_or(|(_, l, _)| len > l) {
            self.longest = Some((start, len, kind));
        }
    }
}

/// Marks every run in `chars` (already lowercased).
fn analyse(chars: &[char]) -> Marks {
    let n = chars.len();
    let mut marks = Marks {
        marked: vec![false; n],
        longest: None,
    };
    // Repeats (period 1) and repeated blocks (period 2..=n/2): a stretch where every character
    // equals the one `period` places later is periodic; it holds two full blocks when the
    // stretch has at least `period` matches (for period 1, three equal characters need two).
    for period in 1..=n / 2 {
        let needed = if period == 1 { MIN_RUN - 1 } else { period };
        let mut i = 0;
        while i + period < n {
            let start = i;
            while i + period < n && chars[i] == chars[i + period] {
                i += 1;
            }
            let matches = i - start;
            if matches >= needed {
                let kind = if period == 1 {
                    Kind::Repeat
                } else {
                    Kind::Block(period)
                };
                marks.mark(start, matches + period, kind);
            }
            if matches == 0 {
                i += 1;
            }
        }
    }
    // Sequences up and down. Runs may share their turning character ("abcba").
    for step in [1, -1] {
        let mut i = 0;
        while i < n {
            let mut j = i;
            while j + 1 < n && is_step(chars[j], chars[j + 1], step) {
                j += 1;
            }
            if j + 1 - i >= MIN_RUN {
                marks.mark(i, j + 1 - i, Kind::Sequence);
            }
            i = if j > i { j } else { i + 1 };
        }
    }
    marks
}

/// Whether `b` follows `a` by `step` in the alphabet or among the digits (0 follows 9).
fn is_step(a: char, b: char, step: i32) -> bool {
    let same_class = (a.is_ascii_digit() && b.is_ascii_digit())
        || (a.is_ascii_lowercase() && b.is_ascii_lowercase());
    if !same_class {
        return false;
    }
    let diff = i64::from(u32::from(b)) - i64::from(u32::from(a));
    diff == i64::from(step) || (a.is_ascii_digit() && diff == -9 * i64::from(step))
}

/// The pattern-C finding for `lower` (the lowercased password), if it is mostly runs.
pub(crate) fn find(lower: &str) -> Option<Segment> {
    let chars: Vec<char> = lower.chars().collect();
    let marks = analyse(&chars);
    let covered = marks.marked.iter().filter(|&&m| m).count();
    let left = chars.len() - covered;
    let mostly = covered * 100 >= chars.len() * MOSTLY_PERCENT;
    if left >= MIN_LEFT && !mostly {
        return None;
    }
    let (start, len, kind) = marks.longest?;
    Some(Segment {
        kind,
        text: chars.iter().skip(start).take(len).collect(),
    })
}

/// Whether `s` consists of runs only (nothing left unmarked), e.g. "abcd" or "aaaa".
pub(crate) fn is_all_runs(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    analyse(&chars).marked.iter().all(|&m| m)
}

/// `s` without runs at its start and end ("dragonxyz" → "dragon", "aaamonkey" → "monkey").
pub(crate) fn strip_counters(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let marks = analyse(&chars);
    let start = marks.marked.iter().position(|&m| !m).unwrap_or(chars.len());
    let end = marks
        .marked
        .iter()
        .rposition(|&m| !m)
        .map_or(start, |p| p + 1);
    chars[start..end].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Kind> {
        find(s).map(|seg| seg.kind)
    }

    #[test]
    fn repeats_sequences_and_blocks_are_found() {
        assert_eq!(kind("aaaaaaaa"), Some(Kind::Repeat));
        assert_eq!(kind("12345678"), Some(Kind::Sequence));
        assert_eq!(kind("98765432"), Some(Kind::Sequence));
        assert_eq!(kind("abcdefgh"), Some(Kind::Sequence));
        assert_eq!(kind("1234567890"), Some(Kind::Sequence));
        assert_eq!(kind("12121212"), Some(Kind::Block(2)));
        assert_eq!(kind("abcabcabcabc"), Some(Kind::Block(3)));
        assert!(find("1234abcd").is_some());
        assert!(find("abcd1234").is_some());
        assert!(find("9876543210ab").is_some());
    }

    #[test]
    fn ordinary_passwords_have_few_runs() {
        assert_eq!(find("correct horse battery staple"), None);
        assert_eq!(find("vq7#mz2p!lx9"), None);
        assert_eq!(find("tsukimi-dango-kaze-7"), None);
        assert_eq!(find("きょうはいいてんきですね"), None);
        assert_eq!(find("xk7q1234567m"), None); // 7 of 12 in runs: under 60 %
    }

    #[test]
    fn the_longest_run_is_reported() {
        let seg = find("12345678").unwrap();
        assert_eq!(seg.text, "12345678");
        let seg = find("abcabcabcabc").unwrap();
        assert_eq!(seg.kind, Kind::Block(3));
        assert_eq!(seg.text, "abcabcabcabc");
    }

    #[test]
    fn counters_are_stripped_from_the_ends() {
        assert_eq!(strip_counters("dragonxyz"), "dragon");
        assert_eq!(strip_counters("aaamonkey"), "monkey");
        assert_eq!(strip_counters("abcd"), "");
        assert!(is_all_runs("abcd"));
        assert!(!is_all_runs("abcx"));
    }
}
