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
//! Later operations (reboot, wipe) are added here when their parent side exists, not before.

use std::fmt;

use mamori_inventory::LiveSocket;
use mamori_netconfig::{ApplyStep, DhcpStatus, Generations, NetworkConfig, Rollback};
use mamori_time::{NtpReport, TimeConfig};
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
    /// Set the system clock (`CLOCK_REALTIME`) to a time an administrator chose.
    ///
    /// - **Does:** reads the clock, sets it with `clock_settime`, reads it again, and replies
    ///   with both readings ([`Reply::ClockSet`]). The management process records the change in
    ///   the audit log with the administrator as the actor.
    /// - **Needs root because:** setting the clock needs `CAP_SYS_TIME`, which only the parent
    ///   has.
    /// - **Parent re-checks:** `unix_ms` must lie in [`check_clock_time`]'s range (not before
    ///   this build's date, before 2100); while mamori's chronyd runs (its pid file names a live
    ///   `chronyd`) the request is refused unless `force` is set, because NTP would slew the
    ///   clock back and the two would fight. Out of range or refused: [`Reply::Refused`].
    SetTime {
        /// The new time, in milliseconds since the Unix epoch (UTC).
        unix_ms: i64,
        /// Set it even while NTP synchronisation runs.
        force: bool,
    },
    /// Put this time configuration in force: (re)start or stop mamori's chronyd.
    ///
    /// - **Does:** renders `STATE/chrony/chrony.conf` from the configuration and starts chronyd
    ///   with it (stopping the one running), or stops chronyd when there are no servers; leaves
    ///   a chronyd that already runs with the same configuration alone. Replies
    ///   [`Reply::TimeApplied`], which says whether chronyd runs and why not (for example
    ///   chrony is not installed; the daemon keeps serving).
    /// - **Needs root because:** chronyd starts as root to set the clock (then drops to
    ///   `_chrony`); the management process may not `execve`.
    /// - **Parent re-checks:** the configuration is typed (`TimeConfig`: host names and
    ///   addresses parsed as `NtpHost`, unknown fields refused) and validated again
    ///   (`TimeConfig::validate`: at most 8 servers, ports, poll intervals, NTS rules). The
    ///   parent chooses every path and chronyd's options itself. Invalid: [`Reply::Refused`].
    ApplyTime {
        /// The configuration, as the management process stored it.
        config: TimeConfig,
    },
    /// How is NTP synchronisation doing?
    ///
    /// - **Does:** asks mamori's chronyd (`chronyc` over its root-only socket) for tracking,
    ///   sources and NTS state, and replies with them and chronyd's recent step notices
    ///   ([`Reply::TimeStatus`]).
    /// - **Needs root because:** chronyd's command socket is reachable only by root and the
    ///   chrony user, and the management process may not `execve` chronyc.
    /// - **Parent re-checks:** nothing to check; the request has no arguments.
    TimeStatus,
    /// Would this network configuration apply? (The dry run.)
    ///
    /// - **Does:** validates the configuration, renders the nftables ruleset, runs
    ///   `nft -c -f -` on it and checks that every interface it names exists; changes nothing.
    ///   Replies [`Reply::NetworkChecked`] or [`Reply::NetworkRefused`] with the step and the
    ///   first lines of nft's standard error.
    /// - **Needs root because:** `nft -c` talks to the kernel's nftables over netlink, which
    ///   needs `CAP_NET_ADMIN`; the management process may neither `execve` nor open netlink
    ///   sockets.
    /// - **Parent re-checks:** the configuration is typed (`NetworkConfig`: interface names
    ///   `[A-Za-z0-9._-]{1,15}`, zone and set names, prefixes without host bits, ports, unknown
    ///   fields refused, so a name with `;` or of 16 bytes does not even parse and ends the
    ///   child's session) and validated again across fields (`NetworkConfig::validate`) before
    ///   anything runs. The parent renders the ruleset itself; no text from the child reaches
    ///   nft or ip.
    CheckNetwork {
        /// The candidate configuration.
        config: Box<NetworkConfig>,
    },
    /// Put this network configuration in force.
    ///
    /// - **Does:** validates and renders the configuration and checks its interfaces exist (as
    ///   [`Request::CheckNetwork`], without the dry run: `nft -f` is one transaction and
    ///   refuses a bad ruleset as a whole, changing nothing), then loads the ruleset with
    ///   `nft -f -` (replacing only mamori's tables) and sets the configured interfaces up,
    ///   their addresses and mamori's static routes with one `ip -batch`
    ///   (`mamori_netconfig::Applier`). If that fails half-way, the previous addresses, routes
    ///   and ruleset (the text the parent loaded last, kept in its memory) are put back. When
    ///   the kernel already holds exactly this ruleset (the same text as the last load and no
    ///   nftables transaction since), nft does not run. Replies [`Reply::NetworkApplied`] with
    ///   the step times, or [`Reply::NetworkRefused`] with the step, bounded detail and what
    ///   became of the state.
    /// - **Needs root because:** `CAP_NET_ADMIN` (nftables, addresses, routes) and `execve`.
    /// - **Parent re-checks:** as [`Request::CheckNetwork`]; it also keeps the record of the
    ///   addresses it set (`STATE/network/addresses.json`, root 0600) and removes only those,
    ///   and after a success writes the configuration to `STATE/network/applied.json` (root
    ///   0600), which it puts in force at its next start before the management process runs.
    ApplyNetwork {
        /// The configuration to apply.
        config: Box<NetworkConfig>,
    },
    /// Which sockets are open in the device's network namespace?
    ///
    /// - **Does:** reads `/proc/net/{tcp,tcp6,udp,udp6}` (TCP in LISTEN, UDP bound and not
    ///   connected) and attributes each socket to a process through `/proc/<pid>/fd`
    ///   (mamorid, its management process, its chronyd, or another); replies
    ///   [`Reply::Sockets`] with at most [`MAX_SOCKETS`] of them. The management process
    ///   compares them with the listener registry (`mamori_inventory::check`).
    /// - **Needs root because:** the management process is confined by landlock to the state
    ///   directory (no `/proc/net`), and another user's `/proc/<pid>/fd` is readable only by
    ///   root.
    /// - **Parent re-checks:** nothing to check; the request has no arguments. It reads only,
    ///   and the reply names ports and process names, no file contents.
    Sockets,
    /// Give me the nftables notification socket.
    ///
    /// - **Does:** replies [`Reply::NftablesListener`] and passes, with that frame
    ///   (`SCM_RIGHTS`), a duplicate of the parent's `NETLINK_NETFILTER` socket subscribed to
    ///   `NFNLGRP_NFTABLES` (`mamori_netconfig::NftablesListener`, opened when the parent
    ///   started). The firewall monitor reads it. The parent leaves the group around its own
    ///   `nft -f` loads (the kernel then builds no notification for them: at 10,000 rules they
    ///   cost 15–20 % of the load) and joins it again; [`Reply::NetworkApplied`] says which
    ///   generations the load went from and to.
    /// - **Needs root because:** joining (and leaving) the group needs `CAP_NET_ADMIN`, which
    ///   the confined management process lacks; holding the socket it owns, the parent can do
    ///   both around each load.
    /// - **Parent re-checks:** nothing to check; no arguments. The socket only receives the
    ///   kernel's nftables notifications of the device's namespace and answers `GETGEN`; it
    ///   changes nothing. Refused ([`Reply::Refused`]) when the parent could not open it.
    NftablesListener,
    /// What are the wan's DHCP clients doing?
    ///
    /// - **Does:** for each dhcpcd the parent runs (one per wan interface with `dhcp: true` in
    ///   the configuration it applied last), says whether it runs, reads its lease from
    ///   dhcpcd's own lease file (`STATE/dhcp/IF/lib/IF.lease`, the DHCPACK it bound, parsed
    ///   as hostile input by `mamori_netconfig::lease`) and the interface's dynamic IPv4
    ///   address (`ip -json address`), and replies [`Reply::DhcpStatus`]: per interface the
    ///   state (bound, requesting, failed, stopped), the lease (address and prefix, gateway,
    ///   DNS servers, server, lease time, obtained and expiry times) and why it failed, for at
    ///   most [`MAX_DHCP_CLIENTS`] interfaces.
    /// - **Needs root because:** the lease files lie in `STATE/dhcp` (root, 0700), and the
    ///   management process may not `execve` ip.
    /// - **Parent re-checks:** nothing to check; the request has no arguments. It reads only
    ///   files it chose itself; a lease file that is not a regular file, is larger than 64 KiB
    ///   or does not parse is reported as the interface's error, never passed on as it is.
    DhcpStatus,
}

/// The most sockets a [`Reply::Sockets`] carries (well under the wire's frame limit).
pub const MAX_SOCKETS: usize = 4096;
/// The most DHCP clients a [`Reply::DhcpStatus`] carries. Each is under 2 KiB (two errors of at
/// most 512 bytes, at most 8 DNS servers), so the reply stays far below the wire's 1 MiB.
pub const MAX_DHCP_CLIENTS: usize = 64;

/// The range a manual time must lie in, shared with the management process's own check
/// (`mamori_time::set_time`): not before this build's date, before 2100.
pub use mamori_time::manual::{
    CLOCK_END_UNIX_MS, CLOCK_FLOOR_FIXED_UNIX_MS, check_clock_time, clock_floor_unix_ms,
};

impl Request {
    /// The operation's name, as on the wire and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DataKey => "DataKey",
            Self::Status => "Status",
            Self::SetTime { .. } => "SetTime",
            Self::ApplyTime { .. } => "ApplyTime",
            Self::TimeStatus => "TimeStatus",
            Self::CheckNetwork { .. } => "CheckNetwork",
            Self::ApplyNetwork { .. } => "ApplyNetwork",
            Self::Sockets => "Sockets",
            Self::NftablesListener => "NftablesListener",
            Self::DhcpStatus => "DhcpStatus",
        }
    }
}

/// The parent's answer to one [`Request`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// The answer to [`Request::SetTime`]: the clock was set.
    ClockSet {
        /// The clock just before it was set, in milliseconds since the Unix epoch.
        before_unix_ms: i64,
        /// The clock just after it was set.
        after_unix_ms: i64,
        /// Whether mamori's chronyd was running (the request was forced).
        ntp_running: bool,
    },
    /// The answer to [`Request::ApplyTime`]: the configuration is in force.
    TimeApplied {
        /// chronyd runs with it (false: no servers, or it could not start).
        running: bool,
        /// Why chronyd does not run although servers are configured (at most 512 bytes).
        error: Option<String>,
    },
    /// The answer to [`Request::TimeStatus`].
    TimeStatus {
        /// chronyd's state, its status and its recent step notices (at most 16).
        report: Box<NtpReport>,
    },
    /// The answer to [`Request::CheckNetwork`]: `nft -c` accepted the ruleset and the
    /// interfaces exist.
    NetworkChecked {
        /// Validate + render + the interfaces exist, in milliseconds.
        render_ms: u64,
        /// `nft -c`, in milliseconds.
        check_ms: u64,
    },
    /// The answer to [`Request::ApplyNetwork`]: the configuration is in force.
    NetworkApplied {
        /// Validate + render + the interfaces exist, in milliseconds.
        render_ms: u64,
        /// Reading what a failure would put back and writing the address record, in
        /// milliseconds.
        snapshot_ms: u64,
        /// The ruleset to put back was listed from the kernel (the first apply since the parent
        /// started, or after a failed restore) rather than taken from memory.
        snapshot_listed: bool,
        /// `nft -f`, in milliseconds; `None` when the kernel already held exactly this ruleset
        /// and nft did not run.
        load_ms: Option<u64>,
        /// Links, addresses and routes (one `ip -batch`), in milliseconds.
        addresses_ms: u64,
        /// The nftables generations around the load (`None`: nft did not run, or a reading
        /// failed), and whether the notifications were paused for it: the load's generation is
        /// `after`; `after - before - 1` other transactions committed unannounced meanwhile.
        generations: Option<Generations>,
    },
    /// The answer to [`Request::CheckNetwork`] or [`Request::ApplyNetwork`] when a step failed.
    NetworkRefused {
        /// The step that failed.
        step: ApplyStep,
        /// The first lines of the tool's standard error or the first validation problems (at
        /// most 8 lines, 1 KiB).
        detail: String,
        /// What became of the kernel's state.
        rollback: Rollback,
    },
    /// The answer to [`Request::Sockets`].
    Sockets {
        /// The live sockets, each with its process when known.
        sockets: Vec<LiveSocket>,
        /// More sockets were open than [`MAX_SOCKETS`]; the rest were left out.
        truncated: bool,
    },
    /// The answer to [`Request::NftablesListener`]; the socket travels with this frame
    /// (`SCM_RIGHTS`), never in it.
    NftablesListener {},
    /// The answer to [`Request::DhcpStatus`].
    DhcpStatus {
        /// One per DHCP client, ordered by interface name.
        clients: Vec<DhcpStatus>,
        /// More clients ran than [`MAX_DHCP_CLIENTS`]; the rest were left out.
        truncated: bool,
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
            Self::ClockSet {
                before_unix_ms,
                after_unix_ms,
                ntp_running,
            } => f
                .debug_struct("ClockSet")
                .field("before_unix_ms", before_unix_ms)
                .field("after_unix_ms", after_unix_ms)
                .field("ntp_running", ntp_running)
                .finish(),
            Self::TimeApplied { running, error } => f
                .debug_struct("TimeApplied")
                .field("running", running)
                .field("error", error)
                .finish(),
            Self::TimeStatus { report } => f
                .debug_struct("TimeStatus")
                .field("report", report)
                .finish(),
            Self::NetworkChecked {
                render_ms,
                check_ms,
            } => f
                .debug_struct("NetworkChecked")
                .field("render_ms", render_ms)
                .field("check_ms", check_ms)
                .finish(),
            Self::NetworkApplied {
                render_ms,
                snapshot_ms,
                snapshot_listed,
                load_ms,
                addresses_ms,
                generations,
            } => f
                .debug_struct("NetworkApplied")
                .field("render_ms", render_ms)
                .field("snapshot_ms", snapshot_ms)
                .field("snapshot_listed", snapshot_listed)
                .field("load_ms", load_ms)
                .field("addresses_ms", addresses_ms)
                .field("generations", generations)
                .finish(),
            Self::NetworkRefused {
                step,
                detail,
                rollback,
            } => f
                .debug_struct("NetworkRefused")
                .field("step", step)
                .field("detail", detail)
                .field("rollback", rollback)
                .finish(),
            Self::Sockets { sockets, truncated } => f
                .debug_struct("Sockets")
                .field("sockets", sockets)
                .field("truncated", truncated)
                .finish(),
            Self::NftablesListener {} => f.debug_struct("NftablesListener").finish(),
            Self::DhcpStatus { clients, truncated } => f
                .debug_struct("DhcpStatus")
                .field("clients", clients)
                .field("truncated", truncated)
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
        assert_eq!(
            serde_json::to_string(&Request::SetTime {
                unix_ms: 1_800_000_000_000,
                force: false
            })
            .unwrap(),
            r#"{"op":"SetTime","args":{"unix_ms":1800000000000,"force":false}}"#
        );
    }

    #[test]
    fn set_time_carries_a_number_and_a_flag_and_nothing_else() {
        for bad in [
            r#"{"op":"SetTime"}"#,
            r#"{"op":"SetTime","args":{"unix_ms":1800000000000}}"#,
            r#"{"op":"SetTime","args":{"unix_ms":"1800000000000","force":false}}"#,
            r#"{"op":"SetTime","args":{"unix_ms":1.5,"force":false}}"#,
            r#"{"op":"SetTime","args":{"unix_ms":1800000000000,"force":false,"clock":"CLOCK_TAI"}}"#,
            r#"{"op":"SetTime","args":{"unix_ms":1800000000000,"force":"yes"}}"#,
        ] {
            assert!(
                serde_json::from_str::<Request>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn apply_time_carries_a_typed_configuration_and_nothing_else() {
        let good = r#"{"op":"ApplyTime","args":{"config":{"servers":[{"host":"127.0.0.1","port":11123}]}}}"#;
        match serde_json::from_str::<Request>(good).unwrap() {
            Request::ApplyTime { config } => assert_eq!(config.servers.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            serde_json::to_string(&Request::TimeStatus).unwrap(),
            r#"{"op":"TimeStatus"}"#
        );
        for bad in [
            r#"{"op":"ApplyTime"}"#,
            r#"{"op":"ApplyTime","args":{}}"#,
            r#"{"op":"ApplyTime","args":{"config":{"servers":[{"host":"a b"}]}}}"#,
            r#"{"op":"ApplyTime","args":{"config":{"servers":[{"host":"x\nallow all"}]}}}"#,
            r#"{"op":"ApplyTime","args":{"config":{"servers":[{"host":"x;y"}]}}}"#,
            r#"{"op":"ApplyTime","args":{"config":{"servers":[],"conf":"allow all"}}}"#,
            r#"{"op":"ApplyTime","args":{"config":{"servers":[]},"path":"/etc/chrony.conf"}}"#,
            r#"{"op":"TimeStatus","args":{"verbose":true}}"#,
            r#"{"op":"Sockets","args":{"pid":1}}"#,
            r#"{"op":"DhcpStatus","args":{"interface":"wan0"}}"#,
            r#"{"op":"DhcpStatus","args":{"path":"/etc/shadow"}}"#,
        ] {
            assert!(
                serde_json::from_str::<Request>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn network_requests_carry_a_typed_configuration_and_nothing_else() {
        let cfg = |ifname: &str| {
            format!(
                r#"{{"interfaces":[{{"name":"{ifname}","role":"lan","addresses":["192.168.1.1/24"]}}],"firewall":{{"zones":[{{"name":"lan","interfaces":["eth1"]}}]}},"management":{{"port":443,"zones":["lan"],"sources":[]}}}}"#
            )
        };
        for op in ["CheckNetwork", "ApplyNetwork"] {
            let good = format!(r#"{{"op":"{op}","args":{{"config":{}}}}}"#, cfg("eth1"));
            match serde_json::from_str::<Request>(&good) {
                Ok(Request::CheckNetwork { config } | Request::ApplyNetwork { config }) => {
                    assert_eq!(config.interfaces.len(), 1);
                }
                other => panic!("{other:?}"),
            }
            for bad in [
                format!(
                    r#"{{"op":"{op}","args":{{"config":{}}}}}"#,
                    cfg("eth1;reboot")
                ),
                format!(
                    r#"{{"op":"{op}","args":{{"config":{}}}}}"#,
                    cfg("abcdefghijklmnop")
                ),
                format!(r#"{{"op":"{op}","args":{{"config":{}}}}}"#, cfg("eth1\nx")),
                format!(r#"{{"op":"{op}","args":{{"config":{}}}}}"#, cfg("")),
                format!(
                    r#"{{"op":"{op}","args":{{"config":{},"ruleset":"flush ruleset"}}}}"#,
                    cfg("eth1")
                ),
                format!(r#"{{"op":"{op}","args":{{}}}}"#),
                format!(r#"{{"op":"{op}"}}"#),
            ] {
                assert!(
                    serde_json::from_str::<Request>(&bad).is_err(),
                    "accepted {bad}"
                );
            }
        }
    }

    #[test]
    fn dhcp_status_is_a_bare_request_and_a_typed_bounded_reply() {
        assert_eq!(
            serde_json::to_string(&Request::DhcpStatus).unwrap(),
            r#"{"op":"DhcpStatus"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"DhcpStatus"}"#).unwrap(),
            Request::DhcpStatus
        );
        let lease = mamori_netconfig::lease::parse(
            include_bytes!("../../netconfig/tests/data/dhcpcd-9.4.1.lease"),
            1_800_000_000,
        )
        .unwrap();
        let status = DhcpStatus {
            interface: mamori_netconfig::IfName::parse("wan0").unwrap(),
            state: mamori_netconfig::DhcpState::Bound,
            running: true,
            pid: Some(42),
            address: Some("10.99.0.128/24".parse().unwrap()),
            restarts: 0,
            error: None,
            lease: Some(lease),
            lease_error: None,
        };
        let reply = Reply::DhcpStatus {
            clients: vec![status; MAX_DHCP_CLIENTS],
            truncated: false,
        };
        let wire = serde_json::to_vec(&reply).unwrap();
        assert!(
            wire.len() < crate::wire::MAX_REPLY_FRAME / 8,
            "{}",
            wire.len()
        );
        assert_eq!(serde_json::from_slice::<Reply>(&wire).unwrap(), reply);
        // The parent's reply is typed too: an unknown state or field is refused.
        let text = String::from_utf8(wire).unwrap();
        for bad in [
            text.replacen(r#""state":"bound""#, r#""state":"happy""#, 1),
            text.replacen(r#""restarts":0"#, r#""restarts":0,"shell":"sh""#, 1),
            text.replacen(
                r#""server":"10.99.0.1""#,
                r#""server":"10.99.0.1; reboot""#,
                1,
            ),
        ] {
            assert_ne!(bad, text);
            assert!(
                serde_json::from_str::<Reply>(&bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn the_clock_range_is_the_build_date_to_the_end_of_2099() {
        let floor = clock_floor_unix_ms();
        assert!(floor >= CLOCK_FLOOR_FIXED_UNIX_MS);
        assert!(check_clock_time(floor).is_ok());
        assert!(check_clock_time(floor - 1).is_err());
        assert!(check_clock_time(0).is_err());
        assert!(check_clock_time(i64::MIN).is_err());
        assert!(check_clock_time(CLOCK_END_UNIX_MS - 1).is_ok());
        assert!(check_clock_time(CLOCK_END_UNIX_MS).is_err());
        assert!(check_clock_time(i64::MAX).is_err());
        // 2100-01-01T00:00:00Z, from its parts.
        assert_eq!(CLOCK_END_UNIX_MS, 4_102_444_800 * 1000);
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
