//! The privilege boundary of `mamorid`.
//!
//! `mamorid` runs as two processes, after OpenBSD's privsep daemons and OpenSSH's monitor: the
//! part that talks to the network holds no privilege, and the part that holds privilege talks to
//! no network.
//!
//! - The **privileged parent** ([`parent`]) runs as root and opens no sockets to the outside (its
//!   one socket besides the channel is a netlink socket to the kernel's nftables notifications,
//!   which it never reads: it hands it to the firewall monitor, see
//!   [`op::Request::NftablesListener`]). It
//!   prepares the state directory, starts the management process by re-executing its own binary,
//!   restarts it with backoff when it dies, and executes a closed set of typed operations for it.
//! - The **management process** (the child) runs under its own unprivileged uid with no
//!   capabilities, `no_new_privs`, a landlock ruleset limiting files to the state directory, and a
//!   seccomp allow-list ([`sandbox`], [`seccomp`]). It holds the TLS listener, the HTTP API and the
//!   encrypted store, and asks the parent for what it cannot do through [`client::Parent`].
//!
//! The files show the boundary: [`op`] is the whole vocabulary (one enum of requests, one of
//! replies), [`wire`] the framing, [`parent`] the root side, [`client`] the child side.
//!
//! # Security properties
//!
//! - The parent trusts no request: frames are capped (requests 16 MiB, replies 1 MiB; the
//!   buffer grows only as bytes arrive, and a frame must arrive whole within 5 s), payloads
//!   must parse as exactly one [`op::Request`] with no unknown fields, and there is one `match`
//!   that dispatches ([`parent::Dispatcher::dispatch`]). Anything malformed ends the child's
//!   session: the parent logs it and kills the child; it never guesses a fix.
//! - No request carries a path, a command or an argv: the parent chooses the files and system
//!   calls itself.
//! - The key-encryption key never leaves the parent. The data key is handed over once per child
//!   lifetime; a second request is refused and logged.
//! - The clock is set only through [`op::Request::SetTime`]: a number of milliseconds, checked
//!   again by the parent (not before this build's date, before 2100, refused while mamori's
//!   chronyd runs unless forced); the parent reads the clock before and after and says both.
//! - The network is changed only through [`op::Request::ApplyNetwork`] (and dry-run through
//!   [`op::Request::CheckNetwork`]): a typed `NetworkConfig` whose names cannot carry nft or ip
//!   syntax, validated again by the parent, which renders the ruleset itself and runs
//!   `mamori_netconfig::Applier`; the answer carries a step and at most 1 KiB of detail.
//! - The child is a fresh `execve` of the binary, so nothing in the parent's memory reaches it.
//!   It gets the socketpair as its standard input, the parent's standard output and error, and a
//!   filtered environment; every other descriptor is close-on-exec.
//!
//! # Confinement order (the child, [`sandbox::confine`])
//!
//! 1. Drop identity: clear the capability bounding, inheritable and ambient sets, then
//!    `setgroups([])`, `setgid`, `setuid` to the management user (keepcaps is off, so the kernel
//!    empties the permitted and effective sets), then check that every set is empty and that
//!    real, effective and saved ids all changed. Arm `PR_SET_PDEATHSIG` (the uid change cleared
//!    it) so the child does not outlive the parent.
//! 2. `PR_SET_NO_NEW_PRIVS`.
//! 3. Landlock: full access beneath the writable directories, read-only beneath the readable
//!    paths, nothing else on the filesystem. Best effort; the status is reported and logged.
//! 4. Seccomp: the allow-list in [`seccomp`], default action kill-process, installed on all
//!    threads (TSYNC). `confine` refuses to run in a process that already has threads.
//!
//! Listeners (the HTTPS port, the console socket) must be bound *before* `confine`: the sandbox
//! allows `accept4` but not `socket`, `bind` or `listen`.
//!
//! # What this crate does not do
//!
//! It does not choose what the management process serves, does not open sockets, does not write
//! the audit log (it logs through `tracing`; the daemon routes that), and does not implement the
//! later operations (reboot, wipe) yet. There is no `unsafe` here: nix, caps, landlock and
//! seccompiler provide the system calls.

use std::io;
use std::path::PathBuf;

pub mod audit_custody;
pub mod client;
pub mod op;
pub mod parent;
pub mod sandbox;
pub mod seccomp;
pub mod wire;

/// The result type of this crate.
pub type Result<T, E = PrivsepError> = std::result::Result<T, E>;

/// Everything that can go wrong at the privilege boundary.
///
/// Sorted by where it happens: on the wire, on the child's side, on the parent's side, while
/// confining. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivsepError {
    /// A frame announced or carried more than the cap of its direction
    /// ([`wire::MAX_REQUEST_FRAME`], [`wire::MAX_REPLY_FRAME`]), or was empty when written.
    #[error("privsep frame of {len} bytes exceeds the {max} byte cap")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The cap of its direction.
        max: usize,
    },
    /// A frame announced a length of zero.
    #[error("privsep frame with length zero")]
    EmptyFrame,
    /// The channel ended in the middle of a frame.
    #[error("privsep frame cut short")]
    Truncated,
    /// A frame's payload is not exactly one known message.
    #[error("privsep message does not parse: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A message could not be encoded (a bug, not input).
    #[error("privsep message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
    /// The peer closed the channel between two frames.
    #[error("privsep channel closed by the peer")]
    ChannelClosed,
    /// Reading or writing the channel failed (including a frame that did not arrive in time).
    #[error("privsep channel I/O: {0}")]
    Channel(#[source] io::Error),
    /// A previous call failed part-way through a frame, so the channel can no longer be trusted
    /// to be in step.
    #[error("privsep channel is out of step after an earlier failure")]
    ChannelBroken,

    /// Standard input is not a socket: the process was not started by the privileged parent.
    #[error(
        "standard input is not the privsep socket; start the management process through the parent"
    )]
    NotASocket,
    /// The parent understood the request and refused it.
    #[error("the privileged parent refused {op}: {reason}")]
    Refused {
        /// The operation.
        op: &'static str,
        /// The parent's reason.
        reason: String,
    },
    /// The parent tried and failed; the detail is in the parent's log.
    #[error("the privileged parent failed {op}: {reason}")]
    Failed {
        /// The operation.
        op: &'static str,
        /// The parent's generic reason.
        reason: String,
    },
    /// The parent answered with a reply that does not belong to the request.
    #[error("the privileged parent answered {op} with an unrelated reply")]
    UnexpectedReply {
        /// The operation that was asked.
        op: &'static str,
    },
    /// A key received from the parent is unusable.
    #[error("data key from the parent is unusable: {0}")]
    Crypto(#[from] mamori_crypto::CryptoError),

    /// The privileged parent was started without root.
    #[error("the privileged parent must run as root")]
    NotRoot,
    /// A user name that `useradd` would not accept, or that could be mistaken for an option.
    #[error("invalid user name {0:?}")]
    InvalidUserName(String),
    /// Looking up a user failed (not: the user does not exist).
    #[error("looking up user {user}: {source}")]
    UserLookup {
        /// The user name.
        user: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The user does not exist.
    #[error("user {0} does not exist")]
    UserMissing(String),
    /// Creating the management user failed.
    #[error("useradd {user} failed: {detail}")]
    UserAdd {
        /// The user name.
        user: String,
        /// Exit status and `useradd`'s message.
        detail: String,
    },
    /// Creating or fixing up the state directory failed.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry of the state directory layout is not what it must be (for example a symlink
    /// where a directory belongs).
    #[error("state directory {path}: {reason}")]
    StateDirUnsafe {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The audit log could not be created, opened or closed by the privileged side.
    #[error("audit log: {0}")]
    AuditLog(String),
    /// Creating or opening the key-encryption key failed.
    #[error(transparent)]
    Keys(#[from] mamori_keys::KeyError),
    /// A system call of the parent's process management failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// Starting the management process failed.
    #[error("starting the management process: {0}")]
    Spawn(#[source] io::Error),

    /// `confine` was called in a process that already runs more than one thread.
    #[error("confine() must run before any thread exists; this process has {0} threads")]
    Threaded(usize),
    /// The process is neither root nor already the management user, so it cannot become it.
    #[error("cannot become user {0}: not running as root")]
    CannotSwitchUser(String),
    /// Changing or reading capability sets failed.
    #[error("capabilities ({step}): {detail}")]
    Capabilities {
        /// Which step.
        step: &'static str,
        /// The cause, as the caps crate reports it.
        detail: String,
    },
    /// A file under `/proc` that confinement relies on could not be read or understood.
    #[error("reading {path}: {detail}")]
    Proc {
        /// The file.
        path: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// After the drop, a capability set is not empty or an id did not change.
    #[error("privileges remain after the drop: {0}")]
    PrivilegesRemain(String),
    /// The parent exited while the child was confining itself.
    #[error("the privileged parent went away during confinement")]
    ParentGone,
    /// Building or enforcing the landlock ruleset failed.
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// Compiling the seccomp filter failed (a bug in the table, not input).
    #[error("seccomp filter: {0}")]
    SeccompFilter(#[from] seccompiler::BackendError),
    /// Installing the seccomp filter failed.
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
}
