//! The embedded word lists and a search over them that allocates nothing.
//!
//! Each list is a text file under `data/wordlists/` (see its README for sources and licences),
//! compiled into the binary with `include_str!`. The files hold one lowercase entry per line,
//! sorted bytewise and without duplicates, so a lookup is a binary search over the raw text:
//! no start-up cost and no heap. The tests at the bottom check that invariant on every build.

/// Common passwords (zxcvbn-ts, from a leaked-password corpus): pattern A.
pub(crate) const COMMON_PASSWORDS: &str =
    include_str!("../../../data/wordlists/common-passwords.txt");
/// English dictionary words (SCOWL and a subtitle frequency list): pattern B.
pub(crate) const WORDS_EN: &str = include_str!("../../../data/wordlists/words-en.txt");
/// First names, English and Japanese (romaji): pattern B.
pub(crate) const NAMES_FIRST: &str = include_str!("../../../data/wordlists/names-first.txt");
/// Surnames, English and Japanese (romaji): pattern B.
pub(crate) const NAMES_LAST: &str = include_str!("../../../data/wordlists/names-last.txt");
/// Countries, capitals, Japanese prefectures and large cities: pattern B.
pub(crate) const PLACES: &str = include_str!("../../../data/wordlists/places.txt");

/// Whether `word` is a line of `list`.
///
/// `list` must be sorted bytewise with every line, the last included, ended by `\n`. The search
/// keeps `lo` and `hi` on line starts; each step reads the line around the midpoint.
pub(crate) fn contains(list: &str, word: &str) -> bool {
    let bytes = list.as_bytes();
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // `lo` is a line start, so the line holding `mid` starts at or after `lo`.
        let start = bytes[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |p| lo + p + 1);
        let end = bytes[start..hi]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hi, |p| start + p);
        // Both ends sit next to a `\n` (or at the ends of the text), which are char boundaries.
        let Some(line) = list.get(start..end) else {
            return false;
        };
        match line.cmp(word) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, &str); 5] = [
        ("common-passwords", COMMON_PASSWORDS),
        ("words-en", WORDS_EN),
        ("names-first", NAMES_FIRST),
        ("names-last", NAMES_LAST),
        ("places", PLACES),
    ];

    /// The binary search relies on this; `data/wordlists/fetch.sh` produces it.
    #[test]
    fn every_list_is_sorted_unique_lowercase_and_at_least_four_characters() {
        for (name, list) in ALL {
            assert!(
                list.ends_with('\n'),
                "{name}: last line must end with a newline"
            );
            let lines: Vec<&str> = list.lines().collect();
            assert!(
                lines.len() > 1000,
                "{name}: suspiciously short ({})",
                lines.len()
            );
            for pair in lines.windows(2) {
                assert!(pair[0] < pair[1], "{name}: not sorted/unique at {:?}", pair);
            }
            for line in &lines {
                assert!(line.chars().count() >= 4, "{name}: short entry {line:?}");
                assert_eq!(*line, line.to_lowercase(), "{name}: not lowercase");
                assert!(
                    !line.contains(char::is_whitespace),
                    "{name}: whitespace in {line:?}"
                );
            }
        }
    }

    /// Every entry is found, and strings between entries are not.
    #[test]
    fn binary_search_finds_exactly_the_entries() {
        for (name, list) in ALL {
            for line in list.lines() {
                assert!(contains(list, line), "{name}: {line:?} not found");
                let between = format!("{line}\u{1}");
                assert!(!contains(list, &between), "{name}: {between:?} found");
            }
            assert!(!contains(list, ""));
            assert!(!contains(list, "\u{10ffff}"));
        }
    }

    #[test]
    fn spot_checks_of_the_lists() {
        assert!(contains(COMMON_PASSWORDS, "password"));
        assert!(contains(COMMON_PASSWORDS, "1qaz2wsx"));
        assert!(contains(WORDS_EN, "baseball"));
        assert!(contains(WORDS_EN, "mustang"));
        assert!(contains(NAMES_LAST, "michael") || contains(NAMES_FIRST, "michael"));
        assert!(contains(NAMES_FIRST, "sakura"));
        assert!(contains(NAMES_LAST, "tanaka"));
        assert!(contains(PLACES, "tokyo"));
        assert!(contains(PLACES, "hokkaido"));
        assert!(contains(PLACES, "newyork") || contains(PLACES, "newyorkcity"));
    }
}
