//! Pattern B: the password's core is a dictionary word, a personal name or a place name.

use crate::lists;
use crate::normalize::Normalized;
use crate::patterns;
use crate::reason::{Finding, WordKind};

/// The lists searched, in the order their names appear in a reason.
const LISTS: [(WordKind, &str); 4] = [
    (WordKind::Name, lists::NAMES_FIRST),
    (WordKind::Name, lists::NAMES_LAST),
    (WordKind::Place, lists::PLACES),
    (WordKind::Dictionary, lists::WORDS_EN),
];

/// The first core of `pw` that is a word, name or place.
///
/// Only whole cores are matched, never words inside the password, so a passphrase of several
/// words passes. A core that is itself only a counter ("abcd", "aaaa") is left to pattern C.
pub(crate) fn find(pw: &Normalized, cores: &[String]) -> Option<Finding> {
    for core in cores {
        if patterns::is_all_runs(core) {
            continue;
        }
        for (kind, list) in LISTS {
            if lists::contains(list, core) {
                return Some(Finding::Word {
                    kind,
                    word: (!pw.is_whole(core)).then(|| core.clone()),
                });
            }
        }
    }
    None
}
