//! The management process's confinement: one straight-line function, [`confine`], in a fixed
//! order. Each step comes right after the last thing that needed what it takes away.
//!
//! Call it once, early in `main`, after binding the listeners and before creating the tokio
//! runtime or any other thread:
//!
//! 0. Check the process is single-threaded and look up the user (reads `/etc/passwd`).
//! 1. Identity: clear the capability bounding, inheritable and ambient sets; `setgroups([])`,
//!    `setgid`, `setuid` (keepcaps is off, so the kernel clears the permitted and effective
//!    sets); check real/effective/saved ids and that every capability set is empty; arm the
//!    parent-death signal, which the uid change cleared.
//! 2. `PR_SET_NO_NEW_PRIVS`: no exec can grant privileges again (and seccomp and landlock
//!    require it).
//! 3. Landlock: full access beneath `writable_dirs`, read access beneath `readable_paths`,
//!    nothing else on the filesystem. Best effort on kernels without ABI 5; the status is logged
//!    and reported.
//! 4. Seccomp: the allow-list in [`crate::seccomp`], default kill-process, on all threads.
//!
//! In debug builds only, `MAMORI_DANGEROUS_NO_SECCOMP=1` skips step 4 (and says so loudly);
//! release builds ignore it.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User, getppid, getresgid, getresuid, setgid, setgroups, setuid};
use serde::{Deserialize, Serialize};

use crate::{PrivsepError, Result, seccomp};

/// The environment variable that skips seccomp in debug builds. Never set it in production;
/// release builds ignore it.
pub const DANGEROUS_NO_SECCOMP_ENV: &str = "MAMORI_DANGEROUS_NO_SECCOMP";

/// What to confine the process to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The user to become (it must exist; the parent creates it).
    pub user: String,
    /// Directories the process may read and write beneath (the state directory's
    /// store/audit/tls/run).
    pub writable_dirs: Vec<PathBuf>,
    /// Files and directories the process may only read (beneath).
    pub readable_paths: Vec<PathBuf>,
}

/// What [`confine`] achieved, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// The user id the process now runs as.
    pub uid: u32,
    /// The group id the process now runs as.
    pub gid: u32,
    /// Landlock enforcement: `FullyEnforced`, `PartiallyEnforced` or `NotEnforced`.
    pub landlock: String,
    /// Whether the seccomp allow-list is installed.
    pub seccomp: bool,
    /// Whether `no_new_privs` is set.
    pub no_new_privs: bool,
}

/// Confines the calling process, in the order described in the module documentation.
///
/// The process must be single-threaded. If it runs as root it becomes `cfg.user`; if it already
/// runs as that user (single-process mode started by that user) the identity step only checks
/// that no capabilities are held.
pub fn confine(cfg: &SandboxConfig) -> Result<SandboxReport> {
    // (0) Preconditions. Landlock's restrict_self applies to the calling thread only.
    let threads = thread_count()?;
    if threads != 1 {
        return Err(PrivsepError::Threaded(threads));
    }
    let user = User::from_name(&cfg.user)
        .map_err(|source| PrivsepError::UserLookup {
            user: cfg.user.clone(),
            source,
        })?
        .ok_or_else(|| PrivsepError::UserMissing(cfg.user.clone()))?;
    let parent = getppid();

    // (1) Identity. Root: drop the bounding set (needs CAP_SETPCAP, so before setuid), the
    // inheritable and ambient sets (setuid keeps those), then the ids.
    let was_root = Uid::effective().is_root();
    if was_root {
        caps_step("clear bounding", caps::clear(None, caps::CapSet::Bounding))?;
        caps_step(
            "clear inheritable",
            caps::clear(None, caps::CapSet::Inheritable),
        )?;
        caps_step("clear ambient", caps::clear(None, caps::CapSet::Ambient))?;
        prctl::set_keepcaps(false).map_err(sys("PR_SET_KEEPCAPS"))?;
        setgroups(&[]).map_err(sys("setgroups"))?;
        setgid(user.gid).map_err(sys("setgid"))?;
        setuid(user.uid).map_err(sys("setuid"))?;
    } else if Uid::current() != user.uid {
        return Err(PrivsepError::CannotSwitchUser(cfg.user.clone()));
    }
    check_identity(user.uid, user.gid, was_root)?;
    if was_root {
        // Started by the privileged parent: do not outlive it.
        prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("PR_SET_PDEATHSIG"))?;
        if getppid() != parent {
            return Err(PrivsepError::ParentGone);
        }
    }

    // (2) No new privileges, ever.
    prctl::set_no_new_privs().map_err(sys("PR_SET_NO_NEW_PRIVS"))?;
    let no_new_privs = prctl::get_no_new_privs().map_err(sys("PR_GET_NO_NEW_PRIVS"))?;

    // (3) Landlock: the filesystem shrinks to the listed paths.
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(
            &cfg.writable_dirs,
            AccessFs::from_all(abi),
        ))?
        .add_rules(path_beneath_rules(
            &cfg.readable_paths,
            AccessFs::from_read(abi),
        ))?
        .restrict_self()?;
    let landlock = format!("{:?}", status.ruleset);
    match status.ruleset {
        RulesetStatus::FullyEnforced => {
            tracing::info!(target: "mamori::privsep", landlock, "landlock enforced")
        }
        RulesetStatus::PartiallyEnforced | RulesetStatus::NotEnforced => {
            tracing::warn!(target: "mamori::privsep", landlock, "landlock not fully enforced by this kernel")
        }
    }

    // (4) Seccomp, last: from here on only the allow-list's system calls exist.
    let seccomp = if dangerous_no_seccomp() {
        tracing::error!(
            target: "mamori::privsep",
            "DANGER: {DANGEROUS_NO_SECCOMP_ENV} is set: running WITHOUT the seccomp filter (debug build only)"
        );
        false
    } else {
        seccomp::install()?;
        true
    };

    Ok(SandboxReport {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        landlock,
        seccomp,
        no_new_privs,
    })
}

/// Whether the debug-only escape hatch is set. Always `false` in release builds.
fn dangerous_no_seccomp() -> bool {
    cfg!(debug_assertions) && std::env::var_os(DANGEROUS_NO_SECCOMP_ENV).is_some_and(|v| v == "1")
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> PrivsepError {
    move |source| PrivsepError::Sys { what, source }
}

fn caps_step(
    step: &'static str,
    r: std::result::Result<(), caps::errors::CapsError>,
) -> Result<()> {
    r.map_err(|e| PrivsepError::Capabilities {
        step,
        detail: e.to_string(),
    })
}

/// Checks that real, effective and saved ids are the target, that there are no supplementary
/// groups, and that no capability set holds anything (the bounding set only when it was
/// dropped here; an unprivileged user cannot drop it).
fn check_identity(uid: Uid, gid: Gid, dropped_bounding: bool) -> Result<()> {
    let ids = getresuid().map_err(sys("getresuid"))?;
    let gids = getresgid().map_err(sys("getresgid"))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3] {
        return Err(PrivsepError::PrivilegesRemain(format!(
            "uids {}/{}/{}, expected {uid}",
            ids.real, ids.effective, ids.saved
        )));
    }
    if [gids.real, gids.effective, gids.saved] != [gid; 3] {
        return Err(PrivsepError::PrivilegesRemain(format!(
            "gids {}/{}/{}, expected {gid}",
            gids.real, gids.effective, gids.saved
        )));
    }
    if dropped_bounding {
        let groups = nix::unistd::getgroups().map_err(sys("getgroups"))?;
        if !groups.is_empty() {
            return Err(PrivsepError::PrivilegesRemain(format!(
                "supplementary groups {groups:?}"
            )));
        }
    }
    // The kernel's own view, which also covers capabilities newer than the caps crate knows.
    let status = read_proc("/proc/thread-self/status")?;
    let mut sets = vec!["CapInh", "CapPrm", "CapEff", "CapAmb"];
    if dropped_bounding {
        sets.push("CapBnd");
    }
    for set in sets {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(set)?.strip_prefix(':'))
            .map(str::trim);
        if value.is_none_or(|v| !v.trim_start_matches('0').is_empty()) {
            return Err(PrivsepError::PrivilegesRemain(format!(
                "{set} is {}",
                value.unwrap_or("missing")
            )));
        }
    }
    Ok(())
}

/// The number of threads of this process, from `/proc/self/status`.
fn thread_count() -> Result<usize> {
    read_proc("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| PrivsepError::Proc {
            path: "/proc/self/status",
            detail: "no Threads: line".into(),
        })
}

fn read_proc(path: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| PrivsepError::Proc {
        path,
        detail: e.to_string(),
    })
}
