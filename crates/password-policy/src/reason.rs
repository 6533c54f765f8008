//! What a rule found, and how that is said in English and Japanese.
//!
//! A reason names the pattern or word that was found, quoting it when it is only part of the
//! password. It never quotes the whole password (or a normalised form of all of it): rejected
//! passwords end up in logs and audit records, and users retry with small variations.

use crate::patterns::{Kind, Segment};
use crate::{Rejection, Rule};

/// A piece of public information (pattern D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Hostname,
    Mac,
    Model,
    Serial,
    Ssid,
    Username,
}

impl Field {
    fn en(self) -> &'static str {
        match self {
            Self::Hostname => "host name",
            Self::Mac => "MAC address",
            Self::Model => "model name",
            Self::Serial => "serial number",
            Self::Ssid => "Wi-Fi SSID",
            Self::Username => "user name",
        }
    }

    fn ja(self) -> &'static str {
        match self {
            Self::Hostname => "ホスト名",
            Self::Mac => "MAC アドレス",
            Self::Model => "機種名",
            Self::Serial => "シリアル番号",
            Self::Ssid => "Wi-Fi の SSID",
            Self::Username => "ユーザー名",
        }
    }
}

/// Which list a word was found in (pattern B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordKind {
    Dictionary,
    Name,
    Place,
}

impl WordKind {
    fn en(self) -> &'static str {
        match self {
            Self::Dictionary => "dictionary word",
            Self::Name => "personal name",
            Self::Place => "place name",
        }
    }

    fn ja(self) -> &'static str {
        match self {
            Self::Dictionary => "辞書にある単語",
            Self::Name => "人名",
            Self::Place => "地名",
        }
    }
}

/// One failed check. `None` in a quoted field means "the whole password", which is not quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Length: fewer characters than the minimum.
    TooShort { min: usize },
    /// Length: more characters than the maximum.
    TooLong { max: usize },
    /// Length: control characters (which cannot be typed reliably and may be truncated).
    ControlCharacters,
    /// D: the password contains an identifier of the device or account.
    PublicInfo { field: Field, value: Option<String> },
    /// D: the password contains the user name written backwards.
    ReversedUsername { value: Option<String> },
    /// D: the password contains a MAC address or its last 6+ hex digits.
    MacAddress { last_bytes: String },
    /// A: the password is mostly a default or product string ("admin", "password").
    CommonString { value: Option<String> },
    /// A: the password is mostly keyboard walks.
    KeyboardPattern { walk: Option<String> },
    /// A: the password, or its core, is on the common-password list.
    CommonPassword { base: Option<String> },
    /// B: the password's core is a word, name or place.
    Word {
        kind: WordKind,
        word: Option<String>,
    },
    /// C: the password is mostly counters, repeats and sequences.
    Counter { segment: Segment, whole: bool },
}

impl Finding {
    /// The rule this finding breaks.
    pub fn rule(&self) -> Rule {
        match self {
            Self::TooShort { .. } | Self::TooLong { .. } | Self::ControlCharacters => Rule::Length,
            Self::PublicInfo { .. } | Self::ReversedUsername { .. } | Self::MacAddress { .. } => {
                Rule::D
            }
            Self::CommonString { .. }
            | Self::KeyboardPattern { .. }
            | Self::CommonPassword { .. } => Rule::A,
            Self::Word { .. } => Rule::B,
            Self::Counter { .. } => Rule::C,
        }
    }

    fn en(&self) -> String {
        match self {
            Self::TooShort { min } => format!("is shorter than {min} characters"),
            Self::TooLong { max } => format!("is longer than {max} characters"),
            Self::ControlCharacters => "contains control characters".to_owned(),
            Self::PublicInfo { field, value } => match value {
                Some(v) => format!("contains the {} {v:?}", field.en()),
                None => format!("is the {}", field.en()),
            },
            Self::ReversedUsername { value } => match value {
                Some(v) => format!("contains the user name written backwards ({v:?})"),
                None => "is the user name written backwards".to_owned(),
            },
            Self::MacAddress { last_bytes } => format!(
                "contains the MAC address ending in {last_bytes}, or its last 6 or more hex digits"
            ),
            Self::CommonString { value } => match value {
                Some(v) => format!("is mostly the common string {v:?}"),
                None => "is a common default string".to_owned(),
            },
            Self::KeyboardPattern { walk } => match walk {
                Some(w) => format!("contains the keyboard pattern {w:?}"),
                None => "is a keyboard pattern".to_owned(),
            },
            Self::CommonPassword { base } => match base {
                Some(b) => {
                    format!("is the common password {b:?} with characters substituted or added")
                }
                None => "is on the list of commonly used passwords".to_owned(),
            },
            Self::Word { kind, word } => match word {
                Some(w) => format!("is built on the {} {w:?}", kind.en()),
                None => format!("is a {}", kind.en()),
            },
            Self::Counter { segment, whole } => {
                let text = &segment.text;
                match (segment.kind, whole) {
                    (Kind::Repeat, true) => "is one character repeated".to_owned(),
                    (Kind::Repeat, false) => {
                        format!("is mostly repeated characters such as {text:?}")
                    }
                    (Kind::Sequence, true) => "is a sequence of consecutive characters".to_owned(),
                    (Kind::Sequence, false) => format!("is mostly sequences such as {text:?}"),
                    (Kind::Block(n), _) => format!(
                        "is mostly the block {:?} repeated",
                        text.chars().take(n).collect::<String>()
                    ),
                }
            }
        }
    }

    fn ja(&self) -> String {
        match self {
            Self::TooShort { min } => format!("{min}文字未満です"),
            Self::TooLong { max } => format!("{max}文字を超えています"),
            Self::ControlCharacters => "制御文字が含まれています".to_owned(),
            Self::PublicInfo { field, value } => match value {
                Some(v) => format!("{}「{v}」が含まれています", field.ja()),
                None => format!("{}そのものです", field.ja()),
            },
            Self::ReversedUsername { value } => match value {
                Some(v) => format!("ユーザー名を逆から書いた「{v}」が含まれています"),
                None => "ユーザー名を逆から書いたものです".to_owned(),
            },
            Self::MacAddress { last_bytes } => format!(
                "末尾が {last_bytes} の MAC アドレス、またはその末尾6桁以上の16進数が含まれています"
            ),
            Self::CommonString { value } => match value {
                Some(v) => format!("ほとんどがよく使われる文字列「{v}」です"),
                None => "よく使われる初期設定の文字列です".to_owned(),
            },
            Self::KeyboardPattern { walk } => match walk {
                Some(w) => format!("キーボードの並び「{w}」が含まれています"),
                None => "キーボードの並びそのものです".to_owned(),
            },
            Self::CommonPassword { base } => match base {
                Some(b) => format!(
                    "よく使われるパスワード「{b}」の文字を置き換えたり付け足したりしたものです"
                ),
                None => "よく使われるパスワードの一覧に載っています".to_owned(),
            },
            Self::Word { kind, word } => match word {
                Some(w) => format!("{}「{w}」をもとにしています", kind.ja()),
                None => format!("{}そのものです", kind.ja()),
            },
            Self::Counter { segment, whole } => {
                let text = &segment.text;
                match (segment.kind, whole) {
                    (Kind::Repeat, true) => "同じ文字の繰り返しです".to_owned(),
                    (Kind::Repeat, false) => {
                        format!("ほとんどが「{text}」のような同じ文字の繰り返しです")
                    }
                    (Kind::Sequence, true) => "連続した文字の並びです".to_owned(),
                    (Kind::Sequence, false) => {
                        format!("ほとんどが「{text}」のような連続した文字の並びです")
                    }
                    (Kind::Block(n), _) => format!(
                        "ほとんどが「{}」の繰り返しです",
                        text.chars().take(n).collect::<String>()
                    ),
                }
            }
        }
    }
}

impl From<Finding> for Rejection {
    fn from(finding: Finding) -> Self {
        Self {
            rule: finding.rule(),
            reason: finding.en(),
            reason_ja: finding.ja(),
        }
    }
}
