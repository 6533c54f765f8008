//! The closed set of privileged operations: everything the management process can ask the
//! privileged parent to do.
//!
//! Reading [`Request`] tells you the whole of what crosses the privilege boundary. Each variant's
//! doc comment says what the operation does, why it needs root, and what the parent checks again
//! on its side. No variant carries a shell string, a free-form argv, or a path: the parent chooses
//! the system calls and the files itself. Adding a variant needs a security review.
//!
//! On the wire both enums are adjacently tagged (`{"op": "Status"}`, later
//! `{"op": "…", "args": {…}}`) and refuse unknown fields, so a request is either exactly one
//! known operation or an error that ends the child's session.
//!
//! Later operations (load an nftables ruleset, set addresses and routes, set the clock, reboot,
//! wipe) are added here when their parent side exists, not before.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A request from the management process to the privileged parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", deny_unknown_fields)]
pub enum Request {
    /// Give me the store's data key.
    ///
    /// - **Does:** opens the key-encryption key (KEK) and unwraps the data-encryption key (DEK)
    ///   kept wrapped beside it, creating and wrapping a fresh DEK on first use; replies with the
    ///   raw DEK ([`Reply::DataKey`]).
    /// - **Needs root because:** the KEK and the wrapped DEK live in `STATE/keys`, a 0700
    ///   root-only directory; the KEK never leaves the parent.
    /// - **Parent re-checks:** answers once per child lifetime. A second request in the same
    ///   session is refused ([`Reply::Refused`]) and logged: a management process that asks
    ///   twice has lost track of its key or is not the process that started.
    DataKey,
    /// Tell me about the parent.
    ///
    /// - **Does:** replies with the parent's pid and uid, when it started and how many times it
    ///   restarted the management process ([`Reply::Status`]).
    /// - **Needs root because:** it does not; it is here so that the status page can show that
    ///   the separation is real (parent uid 0, child not) without the child reading `/proc`.
    /// - **Parent re-checks:** nothing to check; the request has no arguments.
    Status,
}

impl Request {
    /// The operation's name, as on the wire and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DataKey => "DataKey",
            Self::Status => "Status",
        }
    }
}

/// The parent's answer to one [`Request`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", deny_unknown_fields)]
pub enum Reply {
    /// The answer to [`Request::DataKey`]: the raw 32-byte data key. Zeroized on drop, never
    /// shown by `Debug`.
    DataKey {
        /// The raw key bytes.
        key: Zeroizing<Vec<u8>>,
    },
    /// The answer to [`Request::Status`].
    Status {
        /// The parent's process id.
        parent_pid: u32,
        /// The parent's real user id (0 when separated).
        parent_uid: u32,
        /// When the parent started, in seconds since the Unix epoch.
        started_at_unix: u64,
        /// How many times the parent has restarted the management process.
        child_restarts: u32,
    },
    /// The parent understood the request and will not do it (for example a second
    /// [`Request::DataKey`]). The reason is for logs; it never contains secrets.
    Refused {
        /// Why.
        reason: String,
    },
    /// The parent tried and failed (for example the KEK could not be read). The detail is in the
    /// parent's log; the reason here is generic.
    Failed {
        /// What failed, in general terms.
        reason: String,
    },
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataKey { .. } => f
                .debug_struct("DataKey")
                .field("key", &"<redacted>")
                .finish(),
            Self::Status {
                parent_pid,
                parent_uid,
                started_at_unix,
                child_restarts,
            } => f
                .debug_struct("Status")
                .field("parent_pid", parent_pid)
                .field("parent_uid", parent_uid)
                .field("started_at_unix", started_at_unix)
                .field("child_restarts", child_restarts)
                .finish(),
            Self::Refused { reason } => f.debug_struct("Refused").field("reason", reason).finish(),
            Self::Failed { reason } => f.debug_struct("Failed").field("reason", reason).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_fixed_wire_form() {
        assert_eq!(
            serde_json::to_string(&Request::DataKey).unwrap(),
            r#"{"op":"DataKey"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"op":"Status"}"#
        );
    }

    #[test]
    fn unknown_operations_and_fields_are_refused() {
        for bad in [
            r#"{"op":"Reboot"}"#,
            r#"{"op":"Status","extra":1}"#,
            r#"{"op":"Status","args":{"x":1}}"#,
            r#"{"op":"status"}"#,
            r#"{}"#,
            r#""Status""#,
        ] {
            assert!(
                serde_json::from_str::<Request>(bad).is_err(),
                "accepted {bad}"
            );
        }
        let bad = r#"{"op":"Status","args":{"parent_pid":1,"parent_uid":0,"started_at_unix":0,"child_restarts":0,"root":true}}"#;
        assert!(serde_json::from_str::<Reply>(bad).is_err());
    }

    #[test]
    fn debug_never_shows_the_data_key() {
        let reply = Reply::DataKey {
            key: Zeroizing::new(vec![0x42; 32]),
        };
        let shown = format!("{reply:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("66"), "{shown}");
    }
}
