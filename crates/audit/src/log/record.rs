//! Turning an [`Event`] into a frame's two ciphertexts and back.
//!
//! The event kind, outcome and details are sealed under the segment's data key; the personal
//! fields (actor, source address, and the personal fields of the details that
//! [`crate::personal_details`] names: S3.1-40) separately under its personal key, so purging
//! can destroy them alone. A personal detail stays in the data part as its key with the value
//! [`PURGED`], so after a purge the record still shows which fields it had. The associated data binds each ciphertext to the log, the segment, its
//! part and every clear field of its frame, so a ciphertext moved to another place or a clear
//! field rewritten (even with the chain recomputed) no longer decrypts.

use mamori_crypto::aead::Key;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Seq;
use super::clock;
use super::error::LogError;
use super::frame::{CLEAR_LEN, Frame, FrameHead};
use super::segment::LogId;
use crate::{Event, EventKind, Outcome};

/// What actor and source read as after their key was destroyed by a purge.
pub const PURGED: &str = "purged";
/// Largest sealed event body; above it the details are replaced by a note (never dropped).
const MAX_DATA_PLAIN: usize = 48 * 1024;
/// Largest actor or source kept; longer ones are cut (at a character boundary).
const MAX_PERSONAL_FIELD: usize = 1024;
const AAD_DOMAIN: &[u8; 16] = b"mamori/audit/v1\0";
const AAD_LEN: usize = 16 + 1 + 16 + 8 + CLEAR_LEN;

/// One audit record as read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// The event, with `seq`, `time` (UTC, RFC 3339 with milliseconds) and `mono_ms` as the log
    /// assigned them. Actor and source read [`PURGED`] after a purge.
    #[serde(flatten)]
    pub event: Event,
    /// The sealing epoch the record was written in.
    pub epoch: u32,
    /// Whether the record's personal fields were destroyed by a purge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub personal_purged: bool,
}

/// Which ciphertext of a frame.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    Data = 1,
    Personal = 2,
}

#[derive(Serialize)]
struct DataOut<'a> {
    event: &'a EventKind,
    outcome: &'a Outcome,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    details: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct DataIn {
    event: EventKind,
    outcome: Outcome,
    #[serde(default)]
    details: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct PersonalPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// The personal fields of `details`, by key.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    details: serde_json::Map<String, serde_json::Value>,
}

/// An event's two plaintexts, before sealing.
pub(crate) struct Plain {
    pub(crate) data: Zeroizing<Vec<u8>>,
    /// `None` when the event names neither actor nor source.
    pub(crate) personal: Option<Zeroizing<Vec<u8>>>,
}

impl Plain {
    /// Splits and serializes an event, cutting oversize parts instead of refusing the event.
    pub(crate) fn of(event: &Event) -> Plain {
        let (details, personal_details) = split_personal(event);
        let mut data = to_json(&DataOut {
            event: &event.event,
            outcome: &event.outcome,
            details: &details,
        });
        if data.len() > MAX_DATA_PLAIN {
            let note = serde_json::json!({ "truncated": true, "original_bytes": data.len() });
            data = to_json(&DataOut {
                event: &event.event,
                outcome: &event.outcome,
                details: &note,
            });
        }
        let personal = (event.actor.is_some()
            || event.source.is_some()
            || !personal_details.is_empty())
        .then(|| {
            to_json(&PersonalPart {
                actor: event.actor.as_deref().map(cut),
                source: event.source.as_deref().map(cut),
                details: personal_details,
            })
        });
        Plain { data, personal }
    }

    /// The sealed lengths, to decide on a roll before sealing.
    pub(crate) fn sealed_lens(&self) -> (usize, usize) {
        (
            sealed_len(self.data.len()),
            self.personal.as_ref().map_or(0, |p| sealed_len(p.len())),
        )
    }
}

/// The details with each personal field replaced by [`PURGED`], and the personal fields.
fn split_personal(
    event: &Event,
) -> (
    std::borrow::Cow<'_, serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
) {
    let mut personal = serde_json::Map::new();
    let keys = crate::personal_details(event.event, &event.details);
    let Some(fields) = event.details.as_object() else {
        return (std::borrow::Cow::Borrowed(&event.details), personal);
    };
    if !keys.iter().any(|k| fields.contains_key(*k)) {
        return (std::borrow::Cow::Borrowed(&event.details), personal);
    }
    let mut kept = fields.clone();
    for key in keys {
        if let Some(v) = kept.get_mut(*key) {
            let value = match std::mem::replace(v, PURGED.into()) {
                serde_json::Value::String(text) => cut(&text).into(),
                other => other,
            };
            personal.insert((*key).to_string(), value);
        }
    }
    (std::borrow::Cow::Owned(kept.into()), personal)
}

fn to_json<T: Serialize>(v: &T) -> Zeroizing<Vec<u8>> {
    // Serializing these types cannot fail (string keys only); an empty object is the fallback
    // that still opens as a record with no details.
    Zeroizing::new(serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_PERSONAL_FIELD {
        return s.to_string();
    }
    let mut end = MAX_PERSONAL_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Length of a sealed value (version, nonce, ciphertext, tag; see mamori_crypto::aead).
fn sealed_len(plain: usize) -> usize {
    1 + 12 + plain + 16
}

/// The associated data of one ciphertext.
pub(crate) fn aad(part: Part, log_id: &LogId, segment: Seq, head: &FrameHead) -> [u8; AAD_LEN] {
    let mut b = [0u8; AAD_LEN];
    b[..16].copy_from_slice(AAD_DOMAIN);
    b[16] = part as u8;
    b[17..33].copy_from_slice(&log_id.0);
    b[33..41].copy_from_slice(&segment.to_le_bytes());
    b[41..].copy_from_slice(&head.clear_bytes());
    b
}

/// Decrypts a record frame. `personal_key` is `None` after a purge.
pub(crate) fn open(
    frame: &Frame<'_>,
    log_id: &LogId,
    segment: Seq,
    data_key: &Key,
    personal_key: Option<&Key>,
) -> Result<Record, LogError> {
    let seq = frame.head.seq;
    let data = data_key
        .open(&aad(Part::Data, log_id, segment, &frame.head), frame.data)
        .map_err(|_| LogError::Decrypt {
            seq,
            reason: "event data",
        })?;
    let mut body: DataIn = serde_json::from_slice(&data).map_err(|_| LogError::Decrypt {
        seq,
        reason: "event data is not an event",
    })?;
    let (actor, source, purged) = match (frame.personal.is_empty(), personal_key) {
        (true, _) => (None, None, false),
        (false, None) => (Some(PURGED.to_string()), Some(PURGED.to_string()), true),
        (false, Some(k)) => {
            let p = k
                .open(
                    &aad(Part::Personal, log_id, segment, &frame.head),
                    frame.personal,
                )
                .map_err(|_| LogError::Decrypt {
                    seq,
                    reason: "personal data",
                })?;
            let p: PersonalPart = serde_json::from_slice(&p).map_err(|_| LogError::Decrypt {
                seq,
                reason: "personal data is not actor/source",
            })?;
            if let Some(fields) = body.details.as_object_mut() {
                for (k, v) in p.details {
                    fields.insert(k, v);
                }
            }
            (p.actor, p.source, false)
        }
    };
    Ok(Record {
        event: Event {
            seq,
            time: clock::rfc3339(frame.head.utc_ms),
            mono_ms: frame.head.mono_ms,
            event: body.event,
            actor,
            source,
            outcome: body.outcome,
            details: body.details,
        },
        epoch: frame.head.epoch,
        personal_purged: purged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_details_are_replaced_by_a_note_not_dropped() {
        let big = "x".repeat(MAX_DATA_PLAIN + 10);
        let e = Event::new(EventKind::SettingsChanged, Outcome::Success)
            .details(serde_json::json!({ "blob": big }))
            .actor("a".repeat(5000));
        let p = Plain::of(&e);
        assert!(p.data.len() < 200);
        assert!(String::from_utf8_lossy(&p.data).contains("original_bytes"));
        assert!(p.personal.unwrap().len() < MAX_PERSONAL_FIELD + 40);
    }

    #[test]
    fn an_event_without_actor_or_source_has_no_personal_part() {
        assert!(
            Plain::of(&Event::new(EventKind::ServiceStarted, Outcome::Success))
                .personal
                .is_none()
        );
    }

    #[test]
    fn personal_details_go_to_the_personal_part_and_leave_their_key_behind() {
        let e = Event::new(EventKind::UserDeleted, Outcome::Success)
            .actor("admin")
            .details(serde_json::json!({ "user": "alice", "role": "operator" }));
        let p = Plain::of(&e);
        let data = String::from_utf8_lossy(&p.data);
        assert!(!data.contains("alice"), "{data}");
        assert!(data.contains(r#""user":"purged""#) && data.contains("operator"));
        let personal = String::from_utf8_lossy(p.personal.as_deref().unwrap()).to_string();
        assert!(personal.contains(r#""user":"alice""#), "{personal}");
    }

    #[test]
    fn the_allowlist_is_personal_only_in_access_settings() {
        let access =
            serde_json::json!({ "setting": "access", "before": ["192.0.2.7/32"], "after": [] });
        let auth = serde_json::json!({ "setting": "auth", "before": { "lockout_threshold": 5 } });
        for (details, personal) in [(access, true), (auth, false)] {
            let e = Event::new(EventKind::SettingsChanged, Outcome::Success).details(details);
            let p = Plain::of(&e);
            let data = String::from_utf8_lossy(&p.data);
            assert_eq!(
                !data.contains("192.0.2.7") && data.contains("purged"),
                personal
            );
            assert_eq!(p.personal.is_some(), personal, "no actor: only details");
        }
    }

    #[test]
    fn cutting_respects_character_boundaries() {
        let s = "あ".repeat(400);
        let c = cut(&s);
        assert!(c.len() <= MAX_PERSONAL_FIELD && s.starts_with(&c));
    }
}
