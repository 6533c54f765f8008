//! RFC 5424 messages and RFC 5425 / RFC 6587 octet-counting frames.
//!
//! One record becomes
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME mamori - MSGID [mamori@32473 seq="…" outcome="…" actor="…" source="…"] BOM{"message":"…","details":…}
//! ```
//!
//! - PRI is facility × 8 + severity (authpriv = 10 by default, so an informational record is
//!   `<86>`).
//! - TIMESTAMP is UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
//! - HOSTNAME (≤ 255) and MSGID (≤ 32, the event kind) are printable US-ASCII as RFC 5424
//!   requires: other characters become `_`, longer values are cut; empty ones are `-`.
//! - PROCID is `-`: a record outlives the process that wrote it.
//! - The SD-ID `mamori@32473` uses 32473, the private enterprise number RFC 5612 reserves for
//!   documentation, until the product has its own. `actor` and `source` are left out when the
//!   record has none. Values escape `"`, `\` and `]` with a backslash (RFC 5424 §6.3.3);
//!   control characters become U+FFFD so that no value can start a new line in a line-based
//!   collector; each value is cut at [`MAX_PARAM_VALUE_BYTES`] (ending in `…`).
//! - MSG is UTF-8 with the byte order mark RFC 5424 §6.4 asks for, then one JSON object.
//!
//! **Size.** A message is at most `max_message_bytes` octets (default [`DEFAULT_MAX_MESSAGE_BYTES`],
//! 8192: RFC 5425 §4.3.1 says receivers SHOULD take 8192, and rsyslog's default `maxMessageSize`
//! is 8 KiB; never less than [`MIN_MAX_MESSAGE_BYTES`], the 2048 every receiver MUST take). The
//! header and structured data are never cut; when the whole would be longer, MSG is cut at a
//! character boundary and the structured data says so with `truncated="<bytes MSG had>"`. A
//! truncated MSG is therefore no longer valid JSON, and the marker tells a reader why.
//!
//! **Frame.** `MSG-LEN SP SYSLOG-MSG`, with MSG-LEN the decimal octet count (RFC 5425 §4.3,
//! RFC 6587 §3.4.1), so the content may hold any byte, newlines included.

use std::fmt::Write as _;

use time::format_description::FormatItem;
use time::macros::format_description;

use crate::record::{Facility, ForwardRecord};

/// The APP-NAME of every message.
pub const APP_NAME: &str = "mamori";
/// The SD-ID of the product's structured data element: `name@PEN` with the documentation PEN
/// of RFC 5612 (32473) until the product has its own enterprise number.
pub const SD_ID: &str = "mamori@32473";
/// The default bound of one message, header included (see the module documentation).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8192;
/// The smallest bound that may be configured: what RFC 5425 receivers MUST accept. The header
/// and structured data of any record fit well inside it.
pub const MIN_MAX_MESSAGE_BYTES: usize = 2048;
/// The longest structured-data value, in octets after escaping.
pub const MAX_PARAM_VALUE_BYTES: usize = 256;

const HOSTNAME_MAX: usize = 255;
const MSGID_MAX: usize = 32;
const BOM: &str = "\u{FEFF}";
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats one record as an RFC 5424 message of at most `max_message_bytes` octets
/// (raised to [`MIN_MAX_MESSAGE_BYTES`] if lower).
pub fn format_message(
    record: &ForwardRecord,
    facility: Facility,
    max_message_bytes: usize,
) -> Vec<u8> {
    let max = max_message_bytes.max(MIN_MAX_MESSAGE_BYTES);
    let msg = msg_json(record);
    let full = header(record, facility, None);
    if full.len() + 1 + BOM.len() + msg.len() <= max {
        return assemble(&full, &msg);
    }
    let marked = header(record, facility, Some(msg.len()));
    let room = max.saturating_sub(marked.len() + 1 + BOM.len());
    let cut = floor_char_boundary(&msg, room);
    assemble(&marked, &msg[..cut])
}

/// Appends the octet-counting frame of `message` to `out`.
pub fn frame(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// Escapes a structured-data parameter value (RFC 5424 §6.3.3), replaces control characters
/// with U+FFFD and cuts the result at `max_bytes` octets (ending it in `…` when cut).
pub fn escape_param_value(value: &str, max_bytes: usize) -> String {
    fn piece(c: char) -> ([char; 2], usize) {
        match c {
            '"' | '\\' | ']' => (['\\', c], 2),
            c if c.is_control() => (['\u{FFFD}', ' '], 1),
            c => ([c, ' '], 1),
        }
    }
    let pieces = || value.chars().map(piece);
    let full: usize = pieces()
        .map(|(p, n)| p[..n].iter().map(|c| c.len_utf8()).sum::<usize>())
        .sum();
    const ELLIPSIS: char = '…';
    // Room for the text when it does not fit whole: the ellipsis takes the rest.
    let room = if full <= max_bytes {
        full
    } else {
        max_bytes.saturating_sub(ELLIPSIS.len_utf8())
    };
    let mut out = String::with_capacity(room + ELLIPSIS.len_utf8());
    for (p, n) in pieces() {
        let len: usize = p[..n].iter().map(|c| c.len_utf8()).sum();
        if out.len() + len > room {
            break;
        }
        out.extend(&p[..n]);
    }
    if full > max_bytes {
        out.push(ELLIPSIS);
    }
    out
}

fn assemble(header: &str, msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 1 + BOM.len() + msg.len());
    out.extend_from_slice(header.as_bytes());
    out.push(b' ');
    out.extend_from_slice(BOM.as_bytes());
    out.extend_from_slice(msg.as_bytes());
    out
}

fn msg_json(record: &ForwardRecord) -> String {
    /// Field order is fixed by the struct: the summary first, then the details.
    #[derive(serde::Serialize)]
    struct Msg<'a> {
        #[serde(skip_serializing_if = "str::is_empty")]
        message: &'a str,
        details: &'a serde_json::Value,
    }
    serde_json::to_string(&Msg {
        message: &record.message,
        details: &record.details,
    })
    // Serialising a string and a JSON value into a String cannot fail.
    .unwrap_or_default()
}

/// Everything before MSG: HEADER SP STRUCTURED-DATA.
fn header(record: &ForwardRecord, facility: Facility, truncated_from: Option<usize>) -> String {
    let pri = u16::from(facility.code()) * 8 + u16::from(record.severity.code());
    let time = record
        .time
        .to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        // Only a year outside 0..=9999 fails, which the `time` crate cannot hold here.
        .unwrap_or_else(|_| "-".to_string());
    let mut h = format!(
        "<{pri}>1 {time} {} {APP_NAME} - {} [{SD_ID}",
        printable_ascii(&record.hostname, HOSTNAME_MAX),
        printable_ascii(&record.event, MSGID_MAX),
    );
    let mut param = |name: &str, value: &str| {
        // Writing into a String cannot fail.
        let _ = write!(
            h,
            " {name}=\"{}\"",
            escape_param_value(value, MAX_PARAM_VALUE_BYTES)
        );
    };
    param("seq", &record.seq.to_string());
    param("outcome", &record.outcome);
    if let Some(actor) = &record.actor {
        param("actor", actor);
    }
    if let Some(source) = &record.source {
        param("source", source);
    }
    if let Some(n) = truncated_from {
        param("truncated", &n.to_string());
    }
    h.push(']');
    h
}

/// A header field of PRINTUSASCII (33..=126), at most `max` characters, `-` when empty.
fn printable_ascii(value: &str, max: usize) -> String {
    let s: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if s.is_empty() { "-".to_string() } else { s }
}

/// The largest index ≤ `at` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unwraps are assertions here

    use time::macros::datetime;

    use super::*;
    use crate::record::Severity;

    fn record() -> ForwardRecord {
        ForwardRecord {
            seq: 42,
            time: datetime!(2026-01-02 12:04:05.678_9 +09:00),
            hostname: "gw-1".into(),
            severity: Severity::Warning,
            event: "login.failure".into(),
            outcome: "failure".into(),
            actor: Some("admin".into()),
            source: Some("192.0.2.7".into()),
            message: "ログイン失敗".into(),
            details: serde_json::json!({"reason": "パスワードが違います", "attempt": 3}),
        }
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_record_becomes_one_exact_rfc_5424_message() {
        let m = format_message(&record(), Facility::AuthPriv, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(
            text(&m),
            "<84>1 2026-01-02T03:04:05.678Z gw-1 mamori - login.failure \
             [mamori@32473 seq=\"42\" outcome=\"failure\" actor=\"admin\" source=\"192.0.2.7\"] \
             \u{FEFF}{\"message\":\"ログイン失敗\",\"details\":{\"attempt\":3,\"reason\":\"パスワードが違います\"}}"
        );
    }

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        let mut r = record();
        r.severity = Severity::Informational;
        assert!(format_message(&r, Facility::AuthPriv, 8192).starts_with(b"<86>1 "));
        r.severity = Severity::Notice;
        assert!(format_message(&r, Facility::Auth, 8192).starts_with(b"<37>1 "));
        r.severity = Severity::Emergency;
        assert!(format_message(&r, Facility::Auth, 8192).starts_with(b"<32>1 "));
        r.severity = Severity::Debug;
        assert!(format_message(&r, Facility::AuthPriv, 8192).starts_with(b"<87>1 "));
    }

    #[test]
    fn the_msg_starts_with_a_byte_order_mark_right_after_the_structured_data() {
        let m = format_message(&record(), Facility::AuthPriv, 8192);
        let s = text(&m);
        let at = s.find("] ").unwrap() + 2;
        assert_eq!(&m[at..at + 3], b"\xEF\xBB\xBF");
        let json: serde_json::Value = serde_json::from_str(&s[at + 3..]).unwrap();
        assert_eq!(json["details"]["reason"], "パスワードが違います");
        assert_eq!(json["message"], "ログイン失敗");
        // An empty summary is left out rather than sent empty.
        let mut r = record();
        r.message.clear();
        let m = format_message(&r, Facility::AuthPriv, 8192);
        assert!(text(&m).ends_with(
            "\u{FEFF}{\"details\":{\"attempt\":3,\"reason\":\"パスワードが違います\"}}"
        ));
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        assert_eq!(escape_param_value(r#"a"b\c]d[e"#, 256), r#"a\"b\\c\]d[e"#);
        let mut r = record();
        r.actor = Some(r#"x"] [evil@1 a="b"#.into());
        r.source = None;
        let m = format_message(&r, Facility::AuthPriv, 8192);
        assert!(
            text(&m).contains(r#" actor="x\"\] [evil@1 a=\"b"]"#),
            "{}",
            text(&m)
        );
        assert!(!text(&m).contains("source="), "absent values are left out");
    }

    #[test]
    fn control_characters_never_reach_the_wire_raw() {
        assert_eq!(
            escape_param_value("a\nb\rc\u{0}d\u{85}", 256),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        let mut r = record();
        r.details = serde_json::json!({"line": "one\ntwo\u{1b}[31m"});
        r.actor = Some("bob\nFAKE LINE".into());
        let m = format_message(&r, Facility::AuthPriv, 8192);
        assert!(!m.iter().any(|b| *b < 0x20 || *b == 0x7f), "{}", text(&m));
    }

    #[test]
    fn long_param_values_are_cut_with_an_ellipsis_at_a_character_boundary() {
        let v = "認".repeat(200); // 600 bytes
        let e = escape_param_value(&v, MAX_PARAM_VALUE_BYTES);
        assert!(e.len() <= MAX_PARAM_VALUE_BYTES);
        assert!(e.ends_with('…'));
        assert_eq!(e.chars().filter(|c| *c == '認').count(), (256 - 3) / 3);
        // Escapes count: a value of quotes doubles in size.
        let e = escape_param_value(&"\"".repeat(300), 10);
        assert_eq!(e, "\\\"\\\"\\\"…");
        // A value that fits exactly is not cut.
        assert_eq!(escape_param_value("abcd", 4), "abcd");
        assert_eq!(escape_param_value("abcde", 4), "a…");
    }

    #[test]
    fn header_fields_are_printable_ascii_within_their_lengths() {
        let mut r = record();
        r.hostname = "ゲート ウェイ".into();
        r.event = "an.event.kind.much.longer.than.thirty.two".into();
        let m = format_message(&r, Facility::AuthPriv, 8192);
        let fields: Vec<&str> = text(&m).splitn(7, ' ').collect();
        assert_eq!(fields[2], "_______");
        assert_eq!(fields[3], "mamori");
        assert_eq!(fields[4], "-");
        assert_eq!(fields[5], "an.event.kind.much.longer.than.t");
        r.hostname.clear();
        r.event.clear();
        let m = format_message(&r, Facility::AuthPriv, 8192);
        assert!(text(&m).starts_with("<84>1 2026-01-02T03:04:05.678Z - mamori - - [mamori@32473"));
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        let m = format_message(&record(), Facility::AuthPriv, 8192);
        let mut out = b"previous".to_vec();
        frame(&m, &mut out);
        let framed = &out[b"previous".len()..];
        let sp = framed.iter().position(|b| *b == b' ').unwrap();
        let len: usize = text(&framed[..sp]).parse().unwrap();
        assert_eq!(len, m.len());
        assert_eq!(&framed[sp + 1..], &m[..]);
        assert!(
            len > text(&m).chars().count(),
            "multibyte characters counted as bytes"
        );
        let mut out = Vec::new();
        frame(b"", &mut out);
        assert_eq!(out, b"0 ");
    }

    #[test]
    fn an_oversized_record_is_cut_in_msg_only_and_marked() {
        let mut r = record();
        r.details = serde_json::json!({"blob": "ア".repeat(10_000)});
        let untouched_header = text(&format_message(&record(), Facility::AuthPriv, 8192))
            .split(" source=\"192.0.2.7\"")
            .next()
            .unwrap()
            .to_string();
        let full_msg_len = msg_json(&r).len();
        for max in [2048, 2049, 2050, 4096, 8191, 8192] {
            let m = format_message(&r, Facility::AuthPriv, max);
            assert!(m.len() <= max && m.len() >= max - 3, "{max}: {}", m.len());
            let s = text(&m); // still valid UTF-8
            assert!(s.starts_with(&untouched_header));
            assert!(
                s.contains(&format!(
                    " source=\"192.0.2.7\" truncated=\"{full_msg_len}\"] \u{FEFF}{{\"message\""
                )),
                "{s}"
            );
        }
        // Below the RFC 5425 floor the floor applies.
        assert!(format_message(&r, Facility::AuthPriv, 100).len() <= 2048);
        assert!(format_message(&r, Facility::AuthPriv, 100).len() > 2000);
        // A record that fits is never marked.
        let m = format_message(&record(), Facility::AuthPriv, 2048);
        assert!(!text(&m).contains("truncated="));
    }

    #[test]
    fn the_largest_possible_header_still_leaves_room_for_msg_at_the_floor() {
        let r = ForwardRecord {
            seq: u64::MAX,
            hostname: "h".repeat(1000),
            event: "e".repeat(1000),
            outcome: "\"".repeat(1000),
            actor: Some("]".repeat(1000)),
            source: Some("\\".repeat(1000)),
            details: serde_json::json!({"blob": "x".repeat(5000)}),
            ..record()
        };
        let m = format_message(&r, Facility::AuthPriv, MIN_MAX_MESSAGE_BYTES);
        assert!(m.len() <= MIN_MAX_MESSAGE_BYTES);
        let s = text(&m);
        let bom = s.find('\u{FEFF}').unwrap();
        assert!(bom < 1300, "header is {bom} bytes");
        assert!(s.contains("truncated=\""));
        assert!(
            s[bom..].starts_with("\u{FEFF}{\"message\""),
            "MSG keeps its start"
        );
    }
}
