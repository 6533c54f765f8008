//! Pattern D: passwords built on public information about the device or the account.

use crate::Context;
use crate::normalize::{Normalized, SEPARATORS, alphanumeric, unleet};
use crate::reason::{Field, Finding};

/// Identifiers shorter than this are not searched for: they would match by chance.
const MIN_IDENTIFIER: usize = 3;
/// Number of hex digits of a MAC address whose tail must not appear (the last 6 or more).
const MAC_TAIL: usize = 6;

/// The first piece of public information that `pw` is built on.
pub(crate) fn find(pw: &Normalized, ctx: &Context) -> Option<Finding> {
    let fields = [
        (Field::Username, ctx.username),
        (Field::Model, ctx.model),
        (Field::Serial, ctx.serial),
        (Field::Hostname, ctx.hostname),
    ];
    let ssids = ctx.ssids.iter().map(|s| (Field::Ssid, s.as_str()));
    for (field, value) in fields.into_iter().chain(ssids) {
        if let Some(found) = contains_identifier(pw, value) {
            return Some(Finding::PublicInfo {
                field,
                value: quotable(pw, found),
            });
        }
    }
    let reversed: String = ctx.username.trim().chars().rev().collect();
    if let Some(found) = contains_identifier(pw, &reversed) {
        return Some(Finding::ReversedUsername {
            value: quotable(pw, found),
        });
    }
    for mac in ctx.macs {
        match mac_hex(mac) {
            Some(hex) => {
                let tail = &hex[hex.len() - MAC_TAIL..];
                let compact: String = pw
                    .lower
                    .chars()
                    .filter(|c| !SEPARATORS.contains(c))
                    .collect();
                if compact.contains(tail) {
                    return Some(Finding::MacAddress {
                        last_bytes: format!("{}:{}", &hex[8..10], &hex[10..12]),
                    });
                }
            }
            // Not a recognisable MAC address: search for it as written.
            None => {
                if let Some(found) = contains_identifier(pw, mac) {
                    return Some(Finding::PublicInfo {
                        field: Field::Mac,
                        value: quotable(pw, found),
                    });
                }
            }
        }
    }
    None
}

/// `value`, quoted only if it is not (a form of) the whole password.
fn quotable(pw: &Normalized, found: String) -> Option<String> {
    (!pw.is_whole(&found)).then_some(found)
}

/// Whether the password contains `value` (3 characters or more), compared case-insensitively,
/// then with separators removed on both sides, then with leet undone on both sides. Returns the
/// identifier as it was found, lowercased.
fn contains_identifier(pw: &Normalized, value: &str) -> Option<String> {
    let value = value.trim().to_lowercase();
    if value.chars().count() < MIN_IDENTIFIER {
        return None;
    }
    if pw.lower.contains(&value) {
        return Some(value);
    }
    let compact = alphanumeric(&value);
    if compact.chars().count() >= MIN_IDENTIFIER && alphanumeric(&pw.lower).contains(&compact) {
        return Some(value);
    }
    for one in ['i', 'l'] {
        if unleet(&pw.lower, one).contains(&unleet(&value, one)) {
            return Some(value);
        }
    }
    None
}

/// The 12 lowercase hex digits of a MAC address written as `00:1A:2B:3C:4D:5E`,
/// `00-1a-2b-3c-4d-5e`, `001a.2b3c.4d5e` or `001A2B3C4D5E`.
fn mac_hex(mac: &str) -> Option<String> {
    let mut hex = String::with_capacity(12);
    for c in mac.trim().chars() {
        if c.is_ascii_hexdigit() {
            hex.push(c.to_ascii_lowercase());
        } else if !SEPARATORS.contains(&c) {
            return None;
        }
    }
    (hex.len() == 12).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_are_read_in_every_common_form() {
        for form in [
            "00:1A:2B:3C:4D:5E",
            "00-1a-2b-3c-4d-5e",
            "001a.2b3c.4d5e",
            "001A2B3C4D5E",
        ] {
            assert_eq!(mac_hex(form).as_deref(), Some("001a2b3c4d5e"), "{form}");
        }
        assert_eq!(mac_hex("00:1A:2B"), None);
        assert_eq!(mac_hex("not a mac"), None);
    }
}
