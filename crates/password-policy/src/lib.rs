//! Password strength policy for JC-STAR ★3 **S3.1-02** (spec/REQUIREMENTS.md).
//!
//! [`Policy::check`] decides whether a password may be set: by any user changing a password,
//! at the forced change on first boot (S3.1-02 R2-1, R2-2 ①), and by the factory tooling to
//! check a generated per-device initial password (R1). It returns `Ok(())` or the first
//! [`Rejection`], which names the [`Rule`] and says in English and Japanese what was found.
//!
//! # The rules, in the order they are checked
//!
//! The first failure wins.
//!
//! - **Length** ([`Rule::Length`]): the password has at least [`Policy::min_length`] and at most
//!   [`Policy::max_length`] Unicode scalar values (not bytes, not grapheme clusters). A
//!   password containing control characters (`char::is_control`: C0, DEL, C1) is also
//!   rejected under this rule: they cannot be typed reliably on every client, and a NUL or
//!   newline can be truncated or split by the layers a password crosses (forms, PAM, files).
//! - **D, public information** ([`Rule::D`]): case-insensitively, the password contains none
//!   of the user name, model name, serial number, host name or any Wi-Fi SSID (each when it is
//!   3 characters or longer; also compared with separators removed and with leet undone), nor
//!   the user name written backwards, nor any of the device's MAC addresses in any common form
//!   (`:`, `-`, `.` or no separators, any case), nor the last 6 or more hex digits of one.
//! - **A, common strings and patterns** ([`Rule::A`]):
//!   - keyboard walks on a US QWERTY (or the same-lettered JIS) layout, runs of 4 or more
//!     touching keys, cover at least 60 % of the password ("qwertyui", "1qaz2wsx", "zxcvbn");
//!     runs of digits alone count only next to a letter walk, and are otherwise left to C;
//!   - the password is mostly common default or product strings ("admin", "root", "password",
//!     "passw0rd", "qwerty", "letmein", "welcome", "guest", "default", "changeme", "mamori"):
//!     fewer than 8 characters are left once they are removed, after lowercasing and undoing
//!     leet (0→o, 1→i or l, 3→e, 4→a, 5→s, 7→t, @→a, $→s, !→i);
//!   - the password, lowercased and de-leeted, or its core (with the digits and symbols around
//!     it stripped), is on the common-password list. This is checked **last**, after B and C: a
//!     common password that is a word or name ("baseball", "michael") is reported under B, and
//!     one that is a counter ("12345678", "aaaaaaaa") under C, as the standard classifies them.
//! - **B, words and names** ([`Rule::B`]): the password's core, normalised as above, is an
//!   English dictionary word, a first name or surname (English and Japanese romaji), or a place
//!   name (countries, capitals, Japanese prefectures, large cities), or one of those plus a
//!   counter ("Baseball2024!", "Michael#1234", "tokyo12345678", "dragonxyz"). Only whole cores
//!   are matched, so a passphrase of several words ("correct horse battery staple") passes.
//! - **C, counters** ([`Rule::C`]): the password is mostly repeated characters ("aaaaaaaa"),
//!   ascending or descending sequences of letters or digits ("12345678", "abcdefgh",
//!   "98765432"), repeated blocks ("abcabcabc", "12121212") or a combination ("1234abcd"):
//!   such runs (3 characters or more; blocks repeated at least twice) leave fewer than 4
//!   characters or cover at least 60 % of it.
//!
//! # What it does not do
//!
//! - It does not hash, store or compare passwords, and it keeps no history: reuse of old
//!   passwords is the caller's business.
//! - It does not estimate entropy or crack time (no zxcvbn scoring). The rules are the
//!   standard's pattern list A–D, checked deterministically, so a rejection can be explained.
//! - It does not normalise Unicode (NFC/NFKC); the caller hashes exactly the bytes it got.
//! - It decides; whether a failure is enforced or only warned about (R2-2 allows either) is the
//!   caller's choice. mamori enforces.
//!
//! # Security properties
//!
//! - A reason never quotes the whole password or a normalised form of all of it; it may quote
//!   the fragment that matched (a word, a walk, an identifier). Rejections can therefore go to
//!   the audit log.
//! - No `unsafe`, no panics on any input, and no allocation proportional to anything but the
//!   password, whose length is checked first; the maximum length is capped at 1024.
//! - The word lists are compiled in (`data/wordlists/`, sources and licences in its README)
//!   and searched by binary search over the embedded text: nothing is loaded at run time and
//!   nothing is built at start-up.

mod common;
mod keyboard;
mod lists;
mod normalize;
mod patterns;
mod public_info;
mod reason;
mod words;

use serde::Serialize;

use crate::normalize::Normalized;
use crate::reason::Finding;

/// Lowest minimum length: S3.1-02 requires at least 8 characters, always.
const MIN_LENGTH_FLOOR: usize = 8;
/// Highest minimum length.
const MIN_LENGTH_CEILING: usize = 64;
/// Lowest maximum length: a 64-character password (a password manager's) always fits.
const MAX_LENGTH_FLOOR: usize = 64;
/// Highest maximum length: bounds the work a check does.
const MAX_LENGTH_CEILING: usize = 1024;

/// Length limits of the password policy. The pattern rules A–D are fixed.
///
/// Values outside the allowed ranges are not an error: [`Policy::check`] clamps them into range,
/// so a misconfigured policy is never weaker than S3.1-02 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Minimum number of characters (Unicode scalar values). Default 12; clamped to 8..=64.
    pub min_length: usize,
    /// Maximum number of characters. Default 128; clamped to 64..=1024.
    pub max_length: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 128,
        }
    }
}

/// Public information about the device and the account that a password must not be built on
/// (S3.1-02 D). Empty fields, and fields shorter than 3 characters, are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The name of the account whose password is set.
    pub username: &'a str,
    /// The model name or number of the device (as on its label).
    pub model: &'a str,
    /// The device's serial number.
    pub serial: &'a str,
    /// The device's host name.
    pub hostname: &'a str,
    /// The device's MAC addresses, in any common notation.
    pub macs: &'a [String],
    /// The Wi-Fi SSIDs the device broadcasts or ships with.
    pub ssids: &'a [String],
}

/// Why a password was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The rule that failed.
    pub rule: Rule,
    /// What was found, in English: one sentence whose subject is the password, e.g.
    /// `contains the keyboard pattern "qwerty"`. Never contains the whole password.
    pub reason: String,
    /// The same in Japanese, e.g. `キーボードの並び「qwerty」が含まれています`.
    pub reason_ja: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the password {}", self.reason)
    }
}

impl std::error::Error for Rejection {}

/// The rules of S3.1-02 that a password can fail. Serialised as `"length"`, `"A"`, `"B"`,
/// `"C"`, `"D"`. The order is the standard's, not alphabetical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Too short, too long, or containing control characters.
    Length,
    /// A) common strings or simple patterns: "admin", "root", "QWERTY", keyboard walks,
    /// common passwords.
    #[serde(rename = "A")]
    A,
    /// B) well-known words, personal names or place names: "baseball", "mustang", "michael".
    #[serde(rename = "B")]
    B,
    /// C) incrementing counters, repeats and sequences: "123456", "aaaaaaaa", "1234abcd".
    #[serde(rename = "C")]
    C,
    /// D) public information: MAC address, Wi-Fi SSID, serial number, model or product name,
    /// and the user name.
    #[serde(rename = "D")]
    D,
}

impl Policy {
    /// Checks `password` against the length limits and the patterns A–D of S3.1-02, with `ctx`
    /// as the public information for D. Returns the first rule that fails (see the crate
    /// documentation for the order).
    pub fn check(&self, password: &str, ctx: &Context) -> Result<(), Rejection> {
        let min = self.min_length.clamp(MIN_LENGTH_FLOOR, MIN_LENGTH_CEILING);
        let max = self.max_length.clamp(MAX_LENGTH_FLOOR, MAX_LENGTH_CEILING);
        let len = password.chars().count();
        if len < min {
            return Err(Finding::TooShort { min }.into());
        }
        if len > max {
            return Err(Finding::TooLong { max }.into());
        }
        if password.chars().any(char::is_control) {
            return Err(Finding::ControlCharacters.into());
        }

        let pw = Normalized::new(password);
        if let Some(f) = public_info::find(&pw, ctx) {
            return Err(f.into());
        }
        if let Some(walk) = keyboard::find(&pw.lower) {
            let walk = (!pw.is_whole(&walk)).then_some(walk);
            return Err(Finding::KeyboardPattern { walk }.into());
        }
        if let Some(f) = common::find_common_string(&pw) {
            return Err(f.into());
        }
        let cores = pw.cores();
        if let Some(f) = words::find(&pw, &cores) {
            return Err(f.into());
        }
        if let Some(segment) = patterns::find(&pw.lower) {
            let whole = pw.is_whole(&segment.text);
            return Err(Finding::Counter { segment, whole }.into());
        }
        if let Some(f) = common::find_common_password(&pw, &cores) {
            return Err(f.into());
        }
        Ok(())
    }
}
