//! Starting the daemons the privileged parent keeps running (chronyd, dhcpcd) as init would:
//! every signal at its default disposition and none blocked.
//!
//! A process inherits its parent's signal mask and its ignored signals across `fork` and
//! `execve`, and std's `Command` resets neither (it resets SIGPIPE only). The parent blocks
//! SIGTERM, SIGINT and SIGCHLD to read them from a signalfd, and whoever started mamorid may
//! have left signals ignored (`nohup`): a daemon started with that state ignores SIGTERM and
//! never sees SIGCHLD. Resetting it between `fork` and `execve` in our own process needs
//! `pre_exec`, which is `unsafe`; unblocking in the parent's thread instead would let a
//! SIGTERM to the parent kill it the default way. coreutils' `env --default-signal` resets
//! every disposition and unblocks every signal in the child, then executes the program in the
//! same process (same pid, so the caller's `Child` is the daemon).
//!
//! What it does not do: it does not touch the environment, descriptors, working directory,
//! process group or namespaces; the caller sets those on the returned [`Command`] as usual.

use std::ffi::OsStr;
use std::process::Command;

/// coreutils' `env` (Debian's package `coreutils`, always installed).
pub const ENV: &str = "/usr/bin/env";

/// A command that runs `program` with default signal dispositions and an empty signal mask,
/// whatever the calling thread blocks or its process ignores. Add the program's arguments to
/// it. `program` without a `/` is looked up in the command's `PATH`; it must not contain `=`
/// (env would take it for a variable to set).
pub fn with_default_signals(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(ENV);
    // `--` ends env's options, so a program starting with `-` is not read as one.
    cmd.arg("--default-signal").arg("--").arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use nix::sys::signal::{SigSet, Signal};

    use super::*;

    /// The masks `grep` finds in its own status: (blocked, ignored).
    fn masks_of(mut cmd: Command) -> (u64, u64) {
        let out = cmd.args(["^Sig", "/proc/self/status"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mask = |field: &str| {
            let hex = text.lines().find_map(|l| l.strip_prefix(field)).unwrap();
            u64::from_str_radix(hex.trim(), 16).unwrap()
        };
        (mask("SigBlk:"), mask("SigIgn:"))
    }

    #[test]
    fn the_program_runs_under_env_with_its_own_arguments() {
        let mut cmd = with_default_signals("/usr/sbin/chronyd");
        cmd.arg("-d");
        assert_eq!(cmd.get_program(), ENV);
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["--default-signal", "--", "/usr/sbin/chronyd", "-d"]);
    }

    /// The signals the privileged parent blocks are blocked in its child without the helper,
    /// and not with it. (Ignored signals are tested with chronyd, in mamori-time.)
    #[test]
    fn a_program_started_by_a_thread_that_blocks_signals_blocks_none() {
        let blocked = std::thread::spawn(|| {
            let mut set = SigSet::empty();
            for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
                set.add(s);
            }
            set.thread_block().unwrap();
            (
                masks_of(Command::new("grep")),
                masks_of(with_default_signals("grep")),
            )
        })
        .join()
        .unwrap();
        let (inherited, reset) = blocked;
        assert_ne!(
            inherited.0, 0,
            "std's Command passed the mask on: {inherited:x?}"
        );
        assert_eq!(reset.0, 0, "{reset:x?}");
    }
}
