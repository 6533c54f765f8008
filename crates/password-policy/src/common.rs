//! Pattern A, except keyboard walks: default and product strings, and the common-password list.

use crate::lists;
use crate::normalize::Normalized;
use crate::reason::Finding;

/// Strings that default and guessed passwords are made of, and this product's name. Longest
/// first, so that "passw0rd" is removed before anything inside it.
const COMMON_STRINGS: [&str; 11] = [
    "changeme", "passw0rd", "password", "default", "letmein", "welcome", "mamori", "qwerty",
    "admin", "guest", "root",
];
/// A password is "mostly" common strings when fewer characters than this are left once they
/// are removed.
const MIN_REST: usize = 8;

/// The first common string that makes up most of `pw`, in any of its leet readings.
pub(crate) fn find_common_string(pw: &Normalized) -> Option<Finding> {
    for variant in &pw.variants {
        let mut rest = variant.clone();
        let mut first = None;
        for s in COMMON_STRINGS {
            if rest.contains(s) {
                first.get_or_insert(s);
                rest = rest.replace(s, "");
            }
        }
        if let Some(s) = first
            && rest.chars().count() < MIN_REST
        {
            return Some(Finding::CommonString {
                value: (!pw.is_whole(s)).then(|| s.to_owned()),
            });
        }
    }
    None
}

/// The first form of `pw` (whole or core, see [`Normalized::cores`]) on the common-password
/// list.
pub(crate) fn find_common_password(pw: &Normalized, cores: &[String]) -> Option<Finding> {
    cores
        .iter()
        .find(|c| lists::contains(lists::COMMON_PASSWORDS, c))
        .map(|c| Finding::CommonPassword {
            base: (!pw.is_whole(c)).then(|| c.clone()),
        })
}
