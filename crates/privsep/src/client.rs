//! The management process's side of the boundary: asking the privileged parent.
//!
//! Every method of [`Parent`] that asks for something crosses the boundary and is named after
//! the operation in [`crate::op`]. In a separated daemon the request goes over the socketpair the
//! parent passed as standard input ([`Parent::from_stdin`]); in single-process mode (not started
//! as root) the same [`Dispatcher`] runs in-process ([`Parent::in_process`]).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use mamori_crypto::aead::Key;
use mamori_netconfig::{ApplyStep, Generations, NetworkConfig, Rollback};
use mamori_time::{NtpApplied, NtpReport, SetClock, SetClockError, TimeConfig};
use nix::sys::signal::SigSet;
use nix::sys::stat::{SFlag, fstat};
use serde::Serialize;

use crate::op::{Reply, Request};
use crate::parent::{Dispatcher, PARENT_SIGNALS, ensure_kek};
use crate::{PrivsepError, Result, wire};

/// The privileged side, as the management process sees it.
#[derive(Debug)]
pub enum Parent {
    /// A separated parent, reached over the socketpair.
    Channel(Mutex<UnixStream>),
    /// Single-process mode: the operations run in this process, with this process's rights.
    InProcess(Box<Dispatcher>),
}

/// What the parent says about itself ([`Request::Status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParentStatus {
    /// The parent's process id (this process's own in single-process mode).
    pub parent_pid: u32,
    /// The parent's user id: 0 when separated.
    pub parent_uid: u32,
    /// When the parent started, in seconds since the Unix epoch.
    pub started_at_unix: u64,
    /// How many times the parent restarted the management process.
    pub child_restarts: u32,
}

/// The parent's answer to [`Request::CheckNetwork`] and [`Request::ApplyNetwork`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum NetworkOutcome {
    /// `nft -c` accepted the ruleset and the interfaces exist (nothing changed).
    Checked {
        /// Validate + render + the interfaces exist, in milliseconds.
        render_ms: u64,
        /// `nft -c`, in milliseconds.
        check_ms: u64,
    },
    /// The configuration is in force.
    Applied {
        /// Validate + render + the interfaces exist, in milliseconds.
        render_ms: u64,
        /// Reading what a failure would put back, in milliseconds.
        snapshot_ms: u64,
        /// The ruleset to put back was listed from the kernel, not taken from the parent's
        /// memory (the first apply since the parent started).
        snapshot_listed: bool,
        /// `nft -f`, in milliseconds; `None` when the kernel already held exactly this ruleset
        /// and nft did not run.
        load_ms: Option<u64>,
        /// Links, addresses and routes, in milliseconds.
        addresses_ms: u64,
        /// The nftables generations around the load, when nft ran (see
        /// [`Reply::NetworkApplied`]).
        generations: Option<Generations>,
    },
    /// A step failed.
    Refused {
        /// The step.
        step: ApplyStep,
        /// The first lines of the tool's standard error (bounded by the parent).
        detail: String,
        /// What became of the kernel's state.
        rollback: Rollback,
    },
}

/// What the parent did for [`Request::SetTime`].
pub use mamori_time::ClockSet;

impl Parent {
    /// The channel to a privileged parent, which passed it as standard input.
    ///
    /// Fails with [`PrivsepError::NotASocket`] if standard input is not a socket (the process
    /// was started by hand, not by the parent). Standard input is then pointed at `/dev/null`,
    /// so that nothing reading stdin by accident can consume the protocol. Call it first thing
    /// in the child: it also unblocks the signals the parent had blocked for itself (the mask
    /// survives `execve`), so that the parent's SIGTERM stops this process.
    pub fn from_stdin() -> Result<Self> {
        let mut inherited = SigSet::empty();
        for signal in PARENT_SIGNALS {
            inherited.add(signal);
        }
        inherited
            .thread_unblock()
            .map_err(|source| PrivsepError::Sys {
                what: "unblocking signals",
                source,
            })?;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(PrivsepError::Channel)?;
        let stat = fstat(&fd).map_err(|source| PrivsepError::Sys {
            what: "fstat on standard input",
            source,
        })?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
            return Err(PrivsepError::NotASocket);
        }
        let null = File::open("/dev/null").map_err(PrivsepError::Channel)?;
        nix::unistd::dup2_stdin(&null).map_err(|source| PrivsepError::Sys {
            what: "pointing standard input at /dev/null",
            source,
        })?;
        Ok(Self::Channel(Mutex::new(UnixStream::from(fd))))
    }

    /// Single-process mode: no separate parent; the operations run here.
    ///
    /// The key-encryption key is created under `state_dir/keys` on first use if it does not
    /// exist, as the separated parent does at start.
    pub fn in_process(state_dir: impl Into<PathBuf>) -> Self {
        Self::InProcess(Box::new(Dispatcher::new(state_dir)))
    }

    /// Whether a separate privileged process holds the keys and the privileged operations.
    pub fn is_separated(&self) -> bool {
        matches!(self, Self::Channel(_))
    }

    /// Asks for the store's data key ([`Request::DataKey`]). The parent answers this once per
    /// management process.
    pub fn data_key(&self) -> Result<Key> {
        match self.call(Request::DataKey)? {
            Reply::DataKey { key } => Ok(Key::from_bytes(&key)?),
            other => Err(unexpected("DataKey", other)),
        }
    }

    /// Asks the parent about itself ([`Request::Status`]).
    pub fn status(&self) -> Result<ParentStatus> {
        match self.call(Request::Status)? {
            Reply::Status {
                parent_pid,
                parent_uid,
                started_at_unix,
                child_restarts,
            } => Ok(ParentStatus {
                parent_pid,
                parent_uid,
                started_at_unix,
                child_restarts,
            }),
            other => Err(unexpected("Status", other)),
        }
    }

    /// Asks the parent to set the system clock to `unix_ms` ([`Request::SetTime`]).
    ///
    /// This only crosses the boundary; it neither checks the range (the parent does, and
    /// refuses) nor records anything. The management process's caller is
    /// `mamori_time::set_time`, which checks first and writes the audit record.
    pub fn set_time(&self, unix_ms: i64, force: bool) -> Result<ClockSet> {
        match self.call(Request::SetTime { unix_ms, force })? {
            Reply::ClockSet {
                before_unix_ms,
                after_unix_ms,
                ntp_running,
            } => Ok(ClockSet {
                before_unix_ms,
                after_unix_ms,
                ntp_running,
            }),
            other => Err(unexpected("SetTime", other)),
        }
    }

    /// Sends the time configuration to the parent, which (re)starts or stops chronyd
    /// ([`Request::ApplyTime`]). Refused when the parent finds it invalid.
    pub fn apply_time(&self, config: TimeConfig) -> Result<NtpApplied> {
        match self.call(Request::ApplyTime { config })? {
            Reply::TimeApplied { running, error } => Ok(NtpApplied { running, error }),
            other => Err(unexpected("ApplyTime", other)),
        }
    }

    /// Asks the parent how NTP synchronisation is doing ([`Request::TimeStatus`]).
    pub fn time_status(&self) -> Result<NtpReport> {
        match self.call(Request::TimeStatus)? {
            Reply::TimeStatus { report } => Ok(*report),
            other => Err(unexpected("TimeStatus", other)),
        }
    }

    /// Asks the parent whether a network configuration would apply ([`Request::CheckNetwork`]):
    /// validate, render, `nft -c`, interfaces present. Nothing changes.
    pub fn check_network(&self, config: NetworkConfig) -> Result<NetworkOutcome> {
        self.network(
            "CheckNetwork",
            Request::CheckNetwork {
                config: Box::new(config),
            },
        )
    }

    /// Asks the parent to put a network configuration in force ([`Request::ApplyNetwork`]).
    pub fn apply_network(&self, config: NetworkConfig) -> Result<NetworkOutcome> {
        self.network(
            "ApplyNetwork",
            Request::ApplyNetwork {
                config: Box::new(config),
            },
        )
    }

    fn network(&self, op: &'static str, request: Request) -> Result<NetworkOutcome> {
        match self.call(request)? {
            Reply::NetworkChecked {
                render_ms,
                check_ms,
            } => Ok(NetworkOutcome::Checked {
                render_ms,
                check_ms,
            }),
            Reply::NetworkApplied {
                render_ms,
                snapshot_ms,
                snapshot_listed,
                load_ms,
                addresses_ms,
                generations,
            } => Ok(NetworkOutcome::Applied {
                render_ms,
                snapshot_ms,
                snapshot_listed,
                load_ms,
                addresses_ms,
                generations,
            }),
            Reply::NetworkRefused {
                step,
                detail,
                rollback,
            } => Ok(NetworkOutcome::Refused {
                step,
                detail,
                rollback,
            }),
            other => Err(unexpected(op, other)),
        }
    }

    /// Asks the parent for the live sockets of the device's network namespace
    /// ([`Request::Sockets`]); the flag says the list was cut at [`crate::op::MAX_SOCKETS`].
    pub fn sockets(&self) -> Result<(Vec<mamori_inventory::LiveSocket>, bool)> {
        match self.call(Request::Sockets)? {
            Reply::Sockets { sockets, truncated } => Ok((sockets, truncated)),
            other => Err(unexpected("Sockets", other)),
        }
    }

    /// Asks the parent for its nftables notification socket ([`Request::NftablesListener`]),
    /// for the firewall monitor. In process (no privileged parent), the dispatcher's own
    /// listener, if it could open one.
    pub fn nftables_listener(&self) -> Result<OwnedFd> {
        let op = "NftablesListener";
        match self {
            Self::Channel(channel) => {
                let mut stream = channel.lock().map_err(|_| PrivsepError::ChannelBroken)?;
                wire::write_frame(&mut *stream, &Request::NftablesListener)?;
                match wire::read_frame_with_fd(&stream)? {
                    (Reply::NftablesListener {}, Some(fd)) => Ok(fd),
                    (Reply::NftablesListener {}, None) => Err(PrivsepError::UnexpectedReply { op }),
                    (other, _) => Err(unexpected(op, other)),
                }
            }
            Self::InProcess(dispatcher) => {
                dispatcher
                    .share_nftables_listener()
                    .map_err(|e| PrivsepError::Refused {
                        op,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Asks the parent what the wan's DHCP clients are doing ([`Request::DhcpStatus`]); the
    /// flag says the list was cut at [`crate::op::MAX_DHCP_CLIENTS`].
    pub fn dhcp_status(&self) -> Result<(Vec<mamori_netconfig::DhcpStatus>, bool)> {
        match self.call(Request::DhcpStatus)? {
            Reply::DhcpStatus { clients, truncated } => Ok((clients, truncated)),
            other => Err(unexpected("DhcpStatus", other)),
        }
    }

    fn call(&self, request: Request) -> Result<Reply> {
        match self {
            Self::Channel(channel) => {
                // A poisoned lock means a call died part-way through a frame.
                let mut stream = channel.lock().map_err(|_| PrivsepError::ChannelBroken)?;
                wire::write_frame(&mut *stream, &request)?;
                wire::read_frame(&mut *stream)
            }
            Self::InProcess(dispatcher) => {
                if request == Request::DataKey {
                    ensure_kek(dispatcher.state_dir())?;
                }
                Ok(dispatcher.dispatch(request))
            }
        }
    }
}

impl SetClock for Parent {
    fn set_clock(&self, unix_ms: i64, force: bool) -> Result<ClockSet, SetClockError> {
        self.set_time(unix_ms, force).map_err(|e| match e {
            PrivsepError::Refused { reason, .. } => SetClockError::Refused(reason),
            other => SetClockError::Failed(other.to_string()),
        })
    }
}

/// Turns a reply that does not answer `op` into the matching error.
fn unexpected(op: &'static str, reply: Reply) -> PrivsepError {
    match reply {
        Reply::Refused { reason } => PrivsepError::Refused { op, reason },
        Reply::Failed { reason } => PrivsepError::Failed { op, reason },
        _ => PrivsepError::UnexpectedReply { op },
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::parent::serve_one;

    #[test]
    fn in_process_mode_runs_the_same_operations() {
        let dir = tempfile::tempdir().unwrap();
        let p = Parent::in_process(dir.path());
        assert!(!p.is_separated());
        let key = p.data_key().unwrap();
        let sealed = key.seal(b"x", b"v").unwrap();
        assert!(matches!(
            p.data_key(),
            Err(PrivsepError::Refused { op: "DataKey", .. })
        ));
        let again = Parent::in_process(dir.path()).data_key().unwrap();
        assert_eq!(&again.open(b"x", &sealed).unwrap()[..], b"v");
        let status = p.status().unwrap();
        assert_eq!(status.parent_pid, std::process::id());
        assert_eq!(status.child_restarts, 0);
        // No network applied: no DHCP clients.
        assert_eq!(p.dhcp_status().unwrap(), (Vec::new(), false));
    }

    #[test]
    fn a_channel_client_gets_the_key_once_from_a_serving_parent() {
        let dir = tempfile::tempdir().unwrap();
        ensure_kek(dir.path()).unwrap();
        let (mut parent_end, child_end) = UnixStream::pair().unwrap();
        let state = dir.path().to_path_buf();
        let server = thread::spawn(move || {
            let d = Dispatcher::new(state);
            let mut served = 0;
            while serve_one(&mut parent_end, &d).is_ok() {
                served += 1;
            }
            served
        });
        let p = Parent::Channel(Mutex::new(child_end));
        assert!(p.is_separated());
        let key = p.data_key().unwrap();
        let sealed = key.seal(b"x", b"v").unwrap();
        assert!(matches!(p.data_key(), Err(PrivsepError::Refused { .. })));
        assert_eq!(p.status().unwrap().parent_pid, std::process::id());
        drop(p);
        assert_eq!(server.join().unwrap(), 3);
        let reopened = Parent::in_process(dir.path()).data_key().unwrap();
        assert_eq!(&reopened.open(b"x", &sealed).unwrap()[..], b"v");
    }

    #[test]
    fn set_time_out_of_range_comes_back_as_the_parents_refusal() {
        let p = Parent::in_process("/nonexistent");
        match p.set_time(0, true) {
            Err(PrivsepError::Refused {
                op: "SetTime",
                reason,
            }) => {
                assert!(reason.contains("built"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_network_configuration_is_refused_at_validation() {
        let p = Parent::in_process("/nonexistent");
        let config: NetworkConfig = serde_json::from_str(
            r#"{"interfaces":[{"name":"eth1","role":"lan","addresses":["192.168.1.1/24"]},
                {"name":"eth1","role":"lan"}],
                "firewall":{"zones":[{"name":"lan","interfaces":["eth1"]}]},
                "management":{"port":443,"zones":["lan"],"sources":[]}}"#,
        )
        .unwrap();
        for outcome in [
            p.check_network(config.clone()).unwrap(),
            p.apply_network(config).unwrap(),
        ] {
            match outcome {
                NetworkOutcome::Refused {
                    step: ApplyStep::Validate,
                    rollback: Rollback::NothingChanged,
                    detail,
                } => assert!(!detail.is_empty()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_reply_for_another_operation_is_an_error() {
        let (mut parent_end, child_end) = UnixStream::pair().unwrap();
        let server = thread::spawn(move || {
            let _: Request = wire::read_frame(&mut parent_end).unwrap();
            let wrong = Reply::Status {
                parent_pid: 1,
                parent_uid: 0,
                started_at_unix: 0,
                child_restarts: 0,
            };
            wire::write_frame(&mut parent_end, &wrong).unwrap();
        });
        let p = Parent::Channel(Mutex::new(child_end));
        assert!(matches!(
            p.data_key(),
            Err(PrivsepError::UnexpectedReply { op: "DataKey" })
        ));
        server.join().unwrap();
    }
}
