//! The management process's seccomp allow-list, as data: one line per system call (or per
//! allowed argument value), each naming the feature that needs it.
//!
//! The list covers a tokio multi-thread runtime, hyper/axum over rustls (aws-lc-rs), redb and
//! other file I/O in the state directory, accepting TCP and Unix connections on listeners bound
//! before confinement, and logging to standard error.
//!
//! How it was derived: `tests/seccomp_workload.rs` runs that workload (HTTPS over HTTP/1.1 and
//! HTTP/2, plain HTTP on a Unix socket, redb transactions, durable writes, tokio::fs,
//! spawn_blocking, timers, a SIGTERM handler) after `confine()` under `strace -f`, and lists every
//! system call made after `landlock_restrict_self`; the test fails if one is missing here, and a
//! second test runs the same workload under the real filter. On x86_64 (Debian 12, glibc 2.36, kernel 6.18) that
//! workload makes 47 distinct calls, all listed. The other lines are calls named for paths the
//! workload does not reach every time (`sched_yield`, `nanosleep`, `ppoll`, `pipe2`, `dup`,
//! `sendmsg`, the clocks' vDSO fallbacks, `tgkill` for `abort()`), each with its reason: an
//! unlisted call kills the management process, so a plausible benign path is listed rather than
//! left to kill it in the field.
//!
//! Everything else kills the process (`SECCOMP_RET_KILL_PROCESS`): among others `execve`,
//! `fork`/`vfork` (and `clone` without `CLONE_THREAD`), `ptrace`, `mount`, the `setuid` family,
//! `socket` other than IPv4/IPv6 (so no netlink or packet sockets), `bind`, `listen`, `bpf`,
//! `kexec_load`, `init_module`, `perf_event_open`, `userfaultfd`, `io_uring_setup`, `keyctl`,
//! `unshare`, `setns`, `chroot`, `pivot_root`, `reboot`.
//!
//! Two filters are installed, in this order:
//!
//! 1. [`clone3_enosys_filter`]: `clone3` fails with `ENOSYS` (everything else passes). Its
//!    flags sit in memory where seccomp cannot read them; glibc then falls back to `clone`,
//!    whose flags are a register that the allow-list checks (threads only, no new processes or
//!    namespaces).
//! 2. [`allow_list_filter`]: the table below; default action kill-process.
//!
//! The kernel runs every installed filter and takes the strictest answer, so `clone3` must be in
//! the table too (the first filter turns it into `ENOSYS`; without the entry the second would
//! kill). The allow-list goes last because it forbids `seccomp` and `prctl(PR_SET_NO_NEW_PRIVS)`.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::Result;

/// One line of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// The `libc` constant naming the system call (`SYS_read`); see [`Allowed::name`].
    pub sys: &'static str,
    /// The system call number on this architecture.
    pub nr: i64,
    /// Which calls are allowed.
    pub only: Only,
    /// The feature that needs it.
    pub why: &'static str,
}

impl Allowed {
    /// The system call's name (`read`).
    pub fn name(&self) -> &'static str {
        self.sys.strip_prefix("SYS_").unwrap_or(self.sys)
    }
}

/// A restriction on a system call's arguments. Several lines for the same call are alternatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// Any arguments.
    Any,
    /// The 32-bit argument `arg` (0-based) equals `value`.
    ArgEq {
        /// Argument index.
        arg: u8,
        /// Required value.
        value: u64,
    },
    /// The 64-bit argument `arg` masked with `mask` equals `value`.
    ArgMasked {
        /// Argument index.
        arg: u8,
        /// Bits to look at.
        mask: u64,
        /// Required value of those bits.
        value: u64,
    },
    /// The 32-bit argument `arg` is this process's id (filled in when the filter is built).
    ArgIsOwnPid {
        /// Argument index.
        arg: u8,
    },
}

macro_rules! allow {
    ($sys:ident, $why:literal) => {
        allow!($sys, Only::Any, $why)
    };
    ($sys:ident, $only:expr, $why:literal) => {
        Allowed {
            sys: stringify!($sys),
            nr: libc::$sys,
            only: $only,
            why: $why,
        }
    };
}

/// An ioctl request number as a filter value (`Ioctl` is `c_ulong` on glibc, `c_int` elsewhere).
#[allow(clippy::unnecessary_cast)]
const fn ioctl_request(request: libc::Ioctl) -> u64 {
    request as u64
}

// `as u64` below widens positive `c_int`/`c_ulong` constants; none is negative.
const PROT_EXEC: u64 = libc::PROT_EXEC as u64;
const NOT_EXEC: Only = Only::ArgMasked {
    arg: 2,
    mask: PROT_EXEC,
    value: 0,
};
/// `clone` may only make threads: `CLONE_THREAD` set, no namespace flags.
const THREADS_ONLY: Only = Only::ArgMasked {
    arg: 0,
    mask: (libc::CLONE_THREAD
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64,
    value: libc::CLONE_THREAD as u64,
};

/// System calls with the same meaning on x86_64 and aarch64.
pub const COMMON: &[Allowed] = &[
    // Memory.
    allow!(SYS_brk, "malloc: growing the heap"),
    allow!(
        SYS_mmap,
        NOT_EXEC,
        "malloc arenas, thread stacks; never executable (no JIT, no dlopen after confinement)"
    ),
    allow!(
        SYS_mprotect,
        NOT_EXEC,
        "guard pages of thread stacks and malloc arenas; never executable"
    ),
    allow!(SYS_munmap, "free, thread stacks"),
    allow!(SYS_mremap, "realloc of large blocks (glibc)"),
    allow!(
        SYS_madvise,
        "free returning memory (glibc), thread stack reuse, aws-lc MADV_WIPEONFORK"
    ),
    // Threads and synchronisation.
    allow!(
        SYS_clone,
        THREADS_ONLY,
        "std::thread::spawn (tokio workers and blocking pool) through glibc's clone fallback"
    ),
    allow!(
        SYS_clone3,
        "glibc tries it first for threads; the first filter answers ENOSYS so it falls back to clone"
    ),
    allow!(SYS_set_robust_list, "glibc: start of every new thread"),
    allow!(
        SYS_rseq,
        "glibc: start of every new thread (restartable sequences)"
    ),
    allow!(SYS_futex, "Mutex, Condvar, thread park/unpark, join"),
    allow!(
        SYS_sched_getaffinity,
        "available_parallelism (tokio worker count), pthread_getattr_np"
    ),
    allow!(SYS_sched_yield, "spin-then-yield loops in std and tokio"),
    allow!(SYS_exit, "a thread ending (blocking pool threads time out)"),
    allow!(SYS_exit_group, "process exit"),
    allow!(SYS_getpid, "tracing, abort()"),
    allow!(SYS_gettid, "tracing thread ids, abort()"),
    allow!(
        SYS_tgkill,
        Only::ArgIsOwnPid { arg: 0 },
        "abort() raising SIGABRT in this process only (panic = \"abort\")"
    ),
    allow!(
        SYS_prctl,
        Only::ArgEq {
            arg: 0,
            value: libc::PR_SET_NAME as u64
        },
        "thread names (tokio-runtime-worker)"
    ),
    // Signals.
    allow!(SYS_rt_sigaction, "tokio::signal handlers, abort()"),
    allow!(SYS_rt_sigprocmask, "glibc thread creation, abort()"),
    allow!(SYS_rt_sigreturn, "return from a signal handler"),
    allow!(
        SYS_sigaltstack,
        "std's stack overflow handler, set up in every new thread"
    ),
    allow!(
        SYS_restart_syscall,
        "the kernel restarting a sleep interrupted by a signal"
    ),
    // Time and randomness.
    allow!(
        SYS_clock_gettime,
        "Instant/SystemTime when the vDSO falls back to a system call"
    ),
    allow!(SYS_clock_getres, "clock resolution (vDSO fallback)"),
    allow!(SYS_gettimeofday, "SystemTime (vDSO fallback)"),
    allow!(SYS_nanosleep, "thread::sleep"),
    allow!(SYS_clock_nanosleep, "thread::sleep (glibc)"),
    allow!(
        SYS_timerfd_create,
        "clock-step watcher (mamori-time): a CLOCK_REALTIME timer the kernel cancels on a step"
    ),
    allow!(
        SYS_timerfd_settime,
        "clock-step watcher (mamori-time): arming it with TFD_TIMER_CANCEL_ON_SET"
    ),
    allow!(
        SYS_getrandom,
        "aws-lc-rs key and nonce generation, HashMap seeds"
    ),
    // Event loop.
    allow!(SYS_epoll_create1, "tokio/mio: the reactor"),
    allow!(SYS_epoll_ctl, "tokio/mio: registering sockets"),
    allow!(
        SYS_epoll_pwait,
        "tokio/mio: waiting for events (aarch64 has no epoll_wait)"
    ),
    allow!(SYS_eventfd2, "tokio/mio: waking the reactor"),
    allow!(SYS_ppoll, "std and rustls helpers polling a descriptor"),
    allow!(SYS_pipe2, "std/tokio helpers that need a pipe"),
    allow!(
        SYS_socketpair,
        Only::ArgEq {
            arg: 0,
            value: libc::AF_UNIX as u64
        },
        "tokio::signal's self-pipe (AF_UNIX only)"
    ),
    allow!(SYS_dup, "try_clone of files and sockets"),
    allow!(SYS_dup3, "try_clone of files and sockets"),
    // Files in the state directory (landlock limits which ones).
    allow!(
        SYS_openat,
        "opening files: redb, audit segments, TLS identity, durable writes"
    ),
    allow!(SYS_close, "closing descriptors"),
    allow!(SYS_read, "reading files and sockets"),
    allow!(SYS_write, "writing files and sockets, logging to stderr"),
    allow!(SYS_pread64, "redb page reads"),
    allow!(SYS_pwrite64, "redb page writes"),
    allow!(SYS_readv, "vectored socket and file reads"),
    allow!(SYS_writev, "vectored socket writes (hyper), stderr"),
    allow!(SYS_lseek, "file positions"),
    allow!(SYS_fsync, "durable writes: file and directory fsync"),
    allow!(SYS_fdatasync, "redb commits"),
    allow!(SYS_ftruncate, "redb file growth, set_len"),
    allow!(SYS_fallocate, "file preallocation"),
    allow!(SYS_flock, "redb's lock on its database file"),
    allow!(
        SYS_fcntl,
        "descriptor flags (CLOEXEC, NONBLOCK), record locks"
    ),
    allow!(SYS_statx, "metadata (std::fs)"),
    allow!(SYS_newfstatat, "metadata (glibc stat/fstat)"),
    allow!(SYS_fstat, "metadata of open files"),
    allow!(SYS_renameat, "durable writes: rename over the target"),
    allow!(
        SYS_renameat2,
        "durable writes: rename over the target (glibc)"
    ),
    allow!(SYS_unlinkat, "removing files and directories"),
    allow!(SYS_mkdirat, "creating directories"),
    allow!(SYS_getdents64, "listing directories (audit segments)"),
    allow!(
        SYS_readlinkat,
        "system monitors: resolving sysfs device links (read-only; landlock still bounds opens)"
    ),
    allow!(SYS_fchmod, "permissions of files created by durable writes"),
    allow!(
        SYS_fchmodat,
        "permissions of directories and files (set_permissions)"
    ),
    // Sockets handed over or bound before confinement.
    allow!(
        SYS_accept4,
        "accepting TCP (HTTPS) and Unix (console) connections"
    ),
    allow!(SYS_getsockname, "local address of a listener or connection"),
    allow!(
        SYS_getpeername,
        "peer address of a connection (audit, rate limits)"
    ),
    allow!(
        SYS_setsockopt,
        "TCP_NODELAY, keepalive on accepted connections"
    ),
    allow!(SYS_getsockopt, "SO_ERROR and peer credentials"),
    allow!(SYS_shutdown, "closing connections"),
    allow!(SYS_recvfrom, "socket reads"),
    allow!(SYS_sendto, "socket writes"),
    allow!(SYS_recvmsg, "socket reads (Unix sockets, privsep channel)"),
    allow!(SYS_sendmsg, "socket writes (Unix sockets, privsep channel)"),
    // Audit forwarding (mamori-forward): outbound TCP to the configured syslog collectors,
    // found by running the device with a collector configured. IPv4 and IPv6 only: no Unix,
    // netlink or packet sockets. Collector addresses are IP literals in practice: name
    // resolution would also need /etc/resolv.conf, which landlock keeps closed.
    allow!(
        SYS_socket,
        Only::ArgEq {
            arg: 0,
            value: libc::AF_INET as u64
        },
        "audit forwarding: TCP connection to an IPv4 syslog collector"
    ),
    allow!(
        SYS_socket,
        Only::ArgEq {
            arg: 0,
            value: libc::AF_INET6 as u64
        },
        "audit forwarding: TCP connection to an IPv6 syslog collector"
    ),
    allow!(
        SYS_connect,
        "audit forwarding: connecting to a syslog collector"
    ),
    // Descriptor control, identity.
    allow!(
        SYS_ioctl,
        Only::ArgEq {
            arg: 1,
            value: ioctl_request(libc::FIONBIO)
        },
        "set_nonblocking on sockets (std, tokio)"
    ),
    allow!(
        SYS_ioctl,
        Only::ArgEq {
            arg: 1,
            value: ioctl_request(libc::TCGETS)
        },
        "isatty() on stderr, to decide on coloured logs"
    ),
    allow!(
        SYS_ioctl,
        Only::ArgEq {
            arg: 1,
            value: ioctl_request(libc::TIOCOUTQ)
        },
        "audit forwarding: SIOCOUTQ, bytes a collector's TCP has not yet acknowledged"
    ),
    allow!(SYS_getuid, "status page: own uid"),
    allow!(SYS_geteuid, "status page: own uid"),
    allow!(SYS_getgid, "status page: own gid"),
    allow!(SYS_getegid, "status page: own gid"),
    allow!(SYS_uname, "aws-lc and glibc feature checks"),
];

/// System calls that exist only on x86_64 (aarch64 has only the `*at` and `p*` forms).
#[cfg(target_arch = "x86_64")]
pub const ARCH: &[Allowed] = &[
    allow!(SYS_epoll_wait, "tokio/mio: waiting for events"),
    allow!(SYS_poll, "std helpers polling a descriptor"),
    allow!(SYS_rename, "durable writes: glibc rename()"),
    allow!(SYS_unlink, "removing files: glibc unlink()"),
    allow!(SYS_mkdir, "creating directories: glibc mkdir()"),
    allow!(SYS_rmdir, "removing directories: glibc rmdir()"),
    allow!(SYS_chmod, "set_permissions: glibc chmod()"),
    allow!(
        SYS_readlink,
        "system monitors: resolving sysfs and executable links (glibc readlink())"
    ),
];

/// System calls that exist only on aarch64.
#[cfg(target_arch = "aarch64")]
pub const ARCH: &[Allowed] = &[];

/// The whole allow-list for this architecture.
pub fn allowed() -> impl Iterator<Item = &'static Allowed> {
    COMMON.iter().chain(ARCH.iter())
}

fn target_arch() -> Result<TargetArch> {
    Ok(TargetArch::try_from(std::env::consts::ARCH)?)
}

/// Filter 1: `clone3` answers `ENOSYS`, everything else passes.
pub fn clone3_enosys_filter() -> Result<BpfProgram> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let errno = u32::try_from(libc::ENOSYS).unwrap_or(38);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        target_arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// Filter 2: the allow-list; anything not on it kills the process.
pub fn allow_list_filter() -> Result<BpfProgram> {
    let own_pid = u64::from(std::process::id());
    let mut rules: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for line in allowed() {
        let condition = match line.only {
            Only::Any => None,
            Only::ArgEq { arg, value } => Some(SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                value,
            )?),
            Only::ArgMasked { arg, mask, value } => Some(SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(mask),
                value,
            )?),
            Only::ArgIsOwnPid { arg } => Some(SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                own_pid,
            )?),
        };
        // `None` means "any arguments", which wins over any restriction on the same call.
        let entry = rules.entry(line.nr).or_insert_with(|| Some(Vec::new()));
        match (condition, entry) {
            (None, entry) => *entry = None,
            (Some(c), Some(alternatives)) => alternatives.push(SeccompRule::new(vec![c])?),
            (Some(_), None) => {}
        }
    }
    let rules = rules
        .into_iter()
        .map(|(nr, alternatives)| (nr, alternatives.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        target_arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// Installs both filters on every thread of the process (TSYNC), in order. After this the
/// process can never widen its system calls again.
pub fn install() -> Result<()> {
    let first = clone3_enosys_filter()?;
    let second = allow_list_filter()?;
    seccompiler::apply_filter_all_threads(&first)?;
    seccompiler::apply_filter_all_threads(&second)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_line_has_a_reason_and_no_line_is_repeated() {
        let mut seen = BTreeSet::new();
        for a in allowed() {
            assert!(a.why.len() > 5, "{} has no reason", a.name());
            assert!(
                seen.insert((a.nr, format!("{:?}", a.only))),
                "{} twice",
                a.name()
            );
        }
    }

    #[test]
    fn sockets_only_for_tcp_to_collectors() {
        // socket() only for IPv4/IPv6 (audit forwarding); never netlink, packet or Unix.
        for a in allowed().filter(|a| a.name() == "socket") {
            assert!(
                matches!(a.only, Only::ArgEq { arg: 0, value } if value == libc::AF_INET as u64 || value == libc::AF_INET6 as u64),
                "{a:?}"
            );
        }
    }

    #[test]
    fn dangerous_calls_are_not_on_the_list() {
        let names: BTreeSet<&str> = allowed().map(Allowed::name).collect();
        for forbidden in [
            "execve",
            "execveat",
            "fork",
            "vfork",
            "ptrace",
            "mount",
            "umount2",
            "setuid",
            "setgid",
            "setresuid",
            "setresgid",
            "setgroups",
            "capset",
            "bind",
            "listen",
            "bpf",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "keyctl",
            "add_key",
            "unshare",
            "setns",
            "chroot",
            "pivot_root",
            "reboot",
            "seccomp",
            "process_vm_writev",
            "kill",
            "memfd_create",
            "landlock_create_ruleset",
        ] {
            assert!(!names.contains(forbidden), "{forbidden} is allowed");
        }
    }

    #[test]
    fn both_filters_compile() {
        assert!(!clone3_enosys_filter().unwrap().is_empty());
        let prog = allow_list_filter().unwrap();
        assert!(prog.len() < 4096, "{} instructions", prog.len());
    }
}
