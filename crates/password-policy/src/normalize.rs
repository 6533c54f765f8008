//! Normalised forms of a password: lowercase, leet substitutions undone, and "cores" with the
//! digits and symbols around a word stripped off.

use crate::patterns;

/// Characters other than digits allowed around a short core for it still to count.
const MAX_SYMBOLS_AROUND: usize = 2;

/// Separators people put between the words of a phrase or the parts of an identifier.
pub(crate) const SEPARATORS: [char; 5] = [' ', '-', '_', '.', ':'];

/// A password in the forms the rules compare against. Built once per check.
pub(crate) struct Normalized {
    /// The password lowercased (Unicode lowercase mapping).
    pub lower: String,
    /// Number of characters of `lower`: the measure of "the whole password" for reasons.
    pub len: usize,
    /// `lower`, then `lower` with leet substitutions undone reading `1` as `i` and as `l`
    /// (duplicates removed).
    pub variants: Vec<String>,
}

impl Normalized {
    /// Normalises `password`.
    pub fn new(password: &str) -> Self {
        let lower = password.to_lowercase();
        let len = lower.chars().count();
        let mut variants = vec![lower.clone()];
        for one in ['i', 'l'] {
            let v = unleet(&lower, one);
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        Self {
            lower,
            len,
            variants,
        }
    }

    /// Whether `fragment` is (a normalised form of) the whole password, so that quoting it in
    /// a reason would echo the password back.
    pub fn is_whole(&self, fragment: &str) -> bool {
        fragment.chars().count() >= self.len
    }

    /// The whole-password and core forms that are looked up in the word lists (A, B).
    ///
    /// For each leet reading (none, `1` as `i`, `1` as `l`) the whole password is one form.
    /// Its cores are the stretches between a first and a last letter, where "letter" is taken
    /// both before and after undoing leet: that keeps "Baseball2024!" from becoming
    /// "baseball2o2ai" and "@dmin123" from losing its "a". Each core is also taken with its
    /// separators removed ("New York" → "newyork") and then with a counter at either end
    /// removed ("dragonxyz" → "dragon").
    ///
    /// A core counts only if it is at least half of the password, or if what was stripped
    /// around it is simple: digits with at most two other characters ("Sakura-20240401"), or
    /// counters ("tokyo" in "tokyo12345678", "!!!!!!!caps!"). A 4-letter word among 8 random
    /// symbols is not a password "based on" that word. Only forms of four or more characters
    /// are kept, as the lists hold no shorter entries.
    pub fn cores(&self) -> Vec<String> {
        let lower: Vec<char> = self.lower.chars().collect();
        let n = lower.len();
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: String| {
            if s.chars().count() >= 4 && !out.contains(&s) {
                out.push(s);
            }
        };
        for reading in [None, Some('i'), Some('l')] {
            let mapped: Vec<char> = match reading {
                None => lower.clone(),
                Some(one) => lower.iter().map(|&c| unleet_char(c, one)).collect(),
            };
            push(mapped.iter().collect());
            let (Some(original), Some(deleeted)) = (letter_bounds(&lower), letter_bounds(&mapped))
            else {
                continue;
            };
            for start in [original.0, deleeted.0] {
                for end in [original.1, deleeted.1] {
                    if start >= end {
                        continue;
                    }
                    let core_len = end - start;
                    let prefix: String = lower[..start].iter().collect();
                    let suffix: String = lower[end..].iter().collect();
                    let mostly_core = core_len >= n - core_len;
                    let counters_around =
                        patterns::is_all_runs(&prefix) && patterns::is_all_runs(&suffix);
                    let digits_around = prefix
                        .chars()
                        .chain(suffix.chars())
                        .filter(|c| !c.is_ascii_digit())
                        .count()
                        <= MAX_SYMBOLS_AROUND;
                    if !mostly_core && !counters_around && !digits_around {
                        continue;
                    }
                    let core: String = mapped[start..end].iter().collect();
                    let joined: String = core.chars().filter(|c| !SEPARATORS.contains(c)).collect();
                    let uncounted = patterns::strip_counters(&joined);
                    push(core);
                    push(joined);
                    push(uncounted);
                }
            }
        }
        out
    }
}

/// The positions of the first letter and just after the last letter of `chars`.
fn letter_bounds(chars: &[char]) -> Option<(usize, usize)> {
    let first = chars.iter().position(|c| c.is_alphabetic())?;
    let last = chars.iter().rposition(|c| c.is_alphabetic())?;
    Some((first, last + 1))
}

/// `c` with a leet substitution undone: 0→o, 1→`one`, 3→e, 4→a, 5→s, 7→t, @→a, $→s, !→i.
fn unleet_char(c: char, one: char) -> char {
    match c {
        '0' => 'o',
        '1' => one,
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' => 'a',
        '$' => 's',
        '!' => 'i',
        other => other,
    }
}

/// `s` with leet substitutions undone (see [`unleet_char`]).
pub(crate) fn unleet(s: &str, one: char) -> String {
    s.chars().map(|c| unleet_char(c, one)).collect()
}

/// `s` with only its letters and digits (any script), for comparing identifiers written with
/// different separators ("MR-7000X" and "mr7000x").
pub(crate) fn alphanumeric(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leet_is_undone_with_both_readings_of_one() {
        let n = Normalized::new("P@55w0rd1");
        assert_eq!(n.variants, ["p@55w0rd1", "passwordi", "passwordl"]);
    }

    #[test]
    fn cores_strip_digits_and_symbols_around_the_word() {
        let cores = Normalized::new("Baseball2024!").cores();
        assert!(cores.contains(&"baseball".to_owned()), "{cores:?}");
        let cores = Normalized::new("@dmin123").cores();
        assert!(cores.contains(&"admin".to_owned()), "{cores:?}");
        let cores = Normalized::new("New York 2024").cores();
        assert!(cores.contains(&"newyork".to_owned()), "{cores:?}");
        let cores = Normalized::new("dragonxyz").cores();
        assert!(cores.contains(&"dragon".to_owned()), "{cores:?}");
    }

    #[test]
    fn a_passphrase_keeps_its_words_together() {
        let cores = Normalized::new("correct horse battery staple").cores();
        assert!(!cores.contains(&"correct".to_owned()), "{cores:?}");
        assert!(cores.contains(&"correcthorsebatterystaple".to_owned()));
    }
}
