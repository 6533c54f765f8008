//! Keyboard walks on a US QWERTY layout (pattern A).
//!
//! The Japanese JIS layout has the same letter and digit rows, so walks typed on it are found
//! too. Two keys are neighbours when they touch: left and right on a row, and the two keys
//! above and the two below on the staggered rows ("q" touches "1", "2", "w", "a"). A shifted
//! character counts as its key ("!" is "1"). A walk is a run of four or more characters in
//! which each is a neighbour of the one before.
//!
//! A password is a keyboard pattern when walks cover at least 60 % of its characters and at
//! least one walk is not made of digits only. Runs of digits alone ("12345678") are counters,
//! left to pattern C; but next to a letter walk they count ("qwer1234").

/// The rows of the main block, unshifted, each staggered half a key right of the one above.
const ROWS: [&str; 4] = [
    "1234567890-=",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
];
/// Shifted characters and their unshifted keys.
const SHIFTED: [(&str, &str); 4] = [
    ("!@#$%^&*()_+", "1234567890-="),
    ("{}|", "[]\\"),
    (":\"", ";'"),
    ("<>?", ",./"),
];
/// Minimum length of a walk.
const MIN_WALK: usize = 4;
/// Walks covering at least this share (percent) of the password make it a keyboard pattern.
const MOSTLY_PERCENT: usize = 60;

/// Row and column of the key that types `c` (lowercase), if it is on the main block.
fn key(c: char) -> Option<(usize, usize)> {
    let c = SHIFTED
        .iter()
        .find_map(|(shifted, plain)| {
            shifted
                .chars()
                .position(|s| s == c)
                .and_then(|i| plain.chars().nth(i))
        })
        .unwrap_or(c);
    ROWS.iter()
        .enumerate()
        .find_map(|(row, keys)| keys.chars().position(|k| k == c).map(|col| (row, col)))
}

/// Whether the keys typing `a` and `b` touch (and are not the same key).
fn neighbours(a: char, b: char) -> bool {
    let (Some((ra, ca)), Some((rb, cb))) = (key(a), key(b)) else {
        return false;
    };
    if ra == rb {
        ca.abs_diff(cb) == 1
    } else if rb + 1 == ra {
        // `b` is on the row above: the keys at the same column and one to the right.
        cb == ca || cb == ca + 1
    } else if ra + 1 == rb {
        // `b` is on the row below: the keys at the same column and one to the left.
        cb == ca || cb + 1 == ca
    } else {
        false
    }
}

/// The longest walk that is not digits only, if walks make up most of `lower`.
pub(crate) fn find(lower: &str) -> Option<String> {
    let chars: Vec<char> = lower.chars().collect();
    let mut walks: Vec<&[char]> = Vec::new();
    let mut start = 0;
    for i in 1..=chars.len() {
        if i == chars.len() || !neighbours(chars[i - 1], chars[i]) {
            if i - start >= MIN_WALK {
                walks.push(&chars[start..i]);
            }
            start = i;
        }
    }
    let covered: usize = walks.iter().map(|w| w.len()).sum();
    if covered * 100 < chars.len() * MOSTLY_PERCENT {
        return None;
    }
    walks
        .iter()
        .filter(|w| !w.iter().all(char::is_ascii_digit))
        .rev() // the first of equally long walks
        .max_by_key(|w| w.len())
        .map(|w| w.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_has_the_expected_neighbours() {
        for (a, b) in [
            ('q', 'w'),
            ('q', '1'),
            ('q', '2'),
            ('q', 'a'),
            ('a', 'z'),
            ('g', 'h'),
        ] {
            assert!(neighbours(a, b), "{a}{b}");
            assert!(neighbours(b, a), "{b}{a}");
        }
        for (a, b) in [
            ('q', 'q'),
            ('q', 's'),
            ('a', 'x'),
            ('1', 'a'),
            ('z', '2'),
            ('p', '!'),
        ] {
            assert!(!neighbours(a, b), "{a}{b}");
        }
        assert!(neighbours('!', '@'));
        assert!(neighbours('1', 'q'));
    }

    #[test]
    fn walks_are_found() {
        assert_eq!(find("qwertyui").as_deref(), Some("qwertyui"));
        assert_eq!(find("asdfgh").as_deref(), Some("asdfgh"));
        assert_eq!(find("zxcvbn").as_deref(), Some("zxcvbn"));
        assert_eq!(find("1qaz2wsx3edc").as_deref(), Some("1qaz"));
        assert_eq!(find("qwer1234").as_deref(), Some("qwer"));
        assert_eq!(find("!@#$%^&*").as_deref(), Some("!@#$%^&*"));
    }

    #[test]
    fn digit_runs_alone_are_left_to_rule_c() {
        assert_eq!(find("12345678"), None);
        assert_eq!(find("9876543210ab"), None);
    }

    #[test]
    fn ordinary_passwords_are_not_walks() {
        assert_eq!(find("correct horse battery staple"), None);
        assert_eq!(find("vq7#mz2p!lx9"), None);
        assert_eq!(find("tsukimi-dango-kaze-7"), None);
    }
}
