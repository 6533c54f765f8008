//! The management process's confinement, tested on real child processes as root.
//!
//! Each test re-executes this binary with `--sandbox-child CASE DIR`; the child calls
//! `confine()` with DIR as its only writable directory and then does one thing. The parent side
//! checks the outcome from outside: exit code, the signal that killed it, `/proc/<pid>/status`.

mod common;

use std::ffi::CString;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use common::{Case, Lines, TestResult, USER};
use mamori_privsep::PrivsepError;
use mamori_privsep::sandbox::{DANGEROUS_NO_SECCOMP_ENV, SandboxConfig, SandboxReport, confine};
use nix::sys::signal::Signal;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sandbox-child") {
        let code = child(&args[i + 1], Path::new(&args[i + 2]));
        return ExitCode::from(code);
    }
    common::run(&[
        Case {
            name: "confined_child_writes_its_directory_and_nothing_else",
            needs_root: true,
            run: confined_child_writes_its_directory_and_nothing_else,
        },
        Case {
            name: "confined_child_runs_as_the_user_with_no_capabilities_and_no_new_privs",
            needs_root: true,
            run: confined_child_runs_as_the_user_with_no_capabilities_and_no_new_privs,
        },
        Case {
            name: "confined_child_can_still_start_threads_and_sleep",
            needs_root: true,
            run: confined_child_can_still_start_threads_and_sleep,
        },
        Case {
            name: "forbidden_syscalls_kill_the_process_with_sigsys",
            needs_root: true,
            run: forbidden_syscalls_kill_the_process_with_sigsys,
        },
        Case {
            name: "confine_refuses_a_process_that_already_has_threads",
            needs_root: true,
            run: confine_refuses_a_process_that_already_has_threads,
        },
        Case {
            name: "the_no_seccomp_escape_hatch_works_only_in_debug_builds",
            needs_root: true,
            run: the_no_seccomp_escape_hatch_works_only_in_debug_builds,
        },
    ])
}

// ---- parent side -------------------------------------------------------------------------

struct Confined {
    child: Child,
    lines: Lines,
    dir: tempfile::TempDir,
}

fn start(case: &str, env: &[(&str, &str)]) -> Result<Confined, String> {
    let user = common::user()?;
    let dir = common::tempdir()?;
    common::give_to_user(dir.path(), &user)?;
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--sandbox-child")
        .arg(case)
        .arg(dir.path())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    Ok(Confined {
        child,
        lines: Lines::new(stdout),
        dir,
    })
}

fn finish(c: &mut Confined) -> Result<ExitStatus, String> {
    drop(c.child.stdin.take());
    c.child.wait().map_err(|e| e.to_string())
}

fn report(c: &Confined) -> Result<SandboxReport, String> {
    let json = c.lines.next_with("REPORT", Duration::from_secs(20))?;
    serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))
}

/// JC-STAR S3.1: the management process can change only its own state directory (landlock).
fn confined_child_writes_its_directory_and_nothing_else() -> TestResult {
    let mut c = start("fs", &[])?;
    let r = report(&c)?;
    check!(r.landlock == "FullyEnforced", "landlock {}", r.landlock);
    let outcome = c.lines.next_with("FS", Duration::from_secs(20))?;
    let status = finish(&mut c)?;
    check!(status.success(), "child: {status}; {outcome}");
    check!(outcome == "ok", "{outcome}");
    let written = std::fs::read(c.dir.path().join("sub2/file")).map_err(|e| e.to_string())?;
    check!(written == b"written while confined", "content {written:?}");
    Ok(())
}

/// The management process runs as its own user, with every capability set empty (bounding
/// included) and no_new_privs, as the kernel reports it from outside.
fn confined_child_runs_as_the_user_with_no_capabilities_and_no_new_privs() -> TestResult {
    let user = common::user()?;
    let mut c = start("ids", &[])?;
    let r = report(&c)?;
    c.lines.next_with("READY", Duration::from_secs(20))?;
    let pid = c.child.id();
    let uid = user.uid.as_raw().to_string();
    let gid = user.gid.as_raw().to_string();
    let uids = common::proc_status(pid, "Uid")?;
    let gids = common::proc_status(pid, "Gid")?;
    check!(
        uids.split_whitespace().all(|u| u == uid),
        "Uid {uids}, want {uid}"
    );
    check!(
        gids.split_whitespace().all(|g| g == gid),
        "Gid {gids}, want {gid}"
    );
    check!(common::proc_status(pid, "Groups")?.is_empty(), "groups");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = common::proc_status(pid, set)?;
        check!(v.trim_start_matches('0').is_empty(), "{set} = {v}");
    }
    check!(common::proc_status(pid, "NoNewPrivs")? == "1", "NoNewPrivs");
    check!(common::proc_status(pid, "Seccomp")? == "2", "Seccomp mode");
    check!(
        common::proc_status(pid, "Seccomp_filters")? == "2",
        "two seccomp filters (clone3 ENOSYS + allow-list)"
    );
    check!(
        r.uid == user.uid.as_raw() && r.gid == user.gid.as_raw(),
        "{r:?}"
    );
    check!(r.seccomp && r.no_new_privs, "{r:?}");
    let status = finish(&mut c)?;
    check!(status.success(), "child: {status}");
    Ok(())
}

/// The allow-list is not so tight that the runtime's basics die: threads (clone3 → ENOSYS →
/// clone with CLONE_THREAD), sleeping, writing to stderr, exiting.
fn confined_child_can_still_start_threads_and_sleep() -> TestResult {
    let mut c = start("allowed", &[])?;
    let status = finish(&mut c)?;
    check!(status.success(), "child: {status}");
    Ok(())
}

/// A system call outside the allow-list kills the whole process with SIGSYS (Firecracker's
/// "malicious program" test).
fn forbidden_syscalls_kill_the_process_with_sigsys() -> TestResult {
    for case in [
        "execve",
        "ptrace",
        "fork",
        "netlink",
        "setuid",
        "kill-parent",
    ] {
        let mut c = start(case, &[])?;
        let status = finish(&mut c)?;
        check!(
            status.signal() == Some(Signal::SIGSYS as i32),
            "{case}: expected death by SIGSYS, got {status}"
        );
    }
    Ok(())
}

fn confine_refuses_a_process_that_already_has_threads() -> TestResult {
    let mut c = start("threaded", &[])?;
    let status = finish(&mut c)?;
    check!(status.success(), "child: {status}");
    Ok(())
}

/// `MAMORI_DANGEROUS_NO_SECCOMP=1` skips seccomp in debug builds (and only seccomp: landlock
/// and the uid drop still apply); a release build ignores it and the forbidden call kills.
fn the_no_seccomp_escape_hatch_works_only_in_debug_builds() -> TestResult {
    let mut c = start("hatch", &[(DANGEROUS_NO_SECCOMP_ENV, "1")])?;
    let r = report(&c)?;
    let status = finish(&mut c)?;
    if cfg!(debug_assertions) {
        check!(!r.seccomp, "debug build must honour the hatch: {r:?}");
        check!(r.landlock == "FullyEnforced" && r.no_new_privs, "{r:?}");
        check!(status.success(), "child: {status}");
    } else {
        check!(r.seccomp, "release build must ignore the hatch: {r:?}");
        check!(
            status.signal() == Some(Signal::SIGSYS as i32),
            "child: {status}"
        );
    }
    Ok(())
}

// ---- child side --------------------------------------------------------------------------

fn child(case: &str, dir: &Path) -> u8 {
    if case == "threaded" {
        let _t = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(30)));
        return match confine(&config(dir)) {
            Err(PrivsepError::Threaded(n)) if n >= 2 => 0,
            other => {
                println!("FS confine in a threaded process: {other:?}");
                1
            }
        };
    }
    let report = match confine(&config(dir)) {
        Ok(r) => r,
        Err(e) => {
            println!("CONFINE-FAILED {e}");
            return 2;
        }
    };
    println!(
        "REPORT {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    match case {
        "fs" => {
            let outcome = fs_checks(dir);
            println!("FS {}", outcome.as_ref().err().map_or("ok", String::as_str));
            u8::from(outcome.is_err())
        }
        "ids" => {
            println!("READY");
            let _ = std::io::stdout().flush();
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            0
        }
        "allowed" => {
            let t = std::thread::spawn(|| 6 * 7);
            let v = t.join().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(10));
            eprintln!("confined child computed {v} on a thread");
            if v == 42 { 0 } else { 1 }
        }
        "execve" => {
            let path = CString::from(c"/bin/true");
            let r = nix::unistd::execv(&path, &[&path]);
            println!("survived execve: {r:?}");
            3
        }
        "ptrace" | "hatch" => {
            let r = nix::sys::ptrace::traceme();
            println!("survived ptrace: {r:?}");
            if case == "hatch" { 0 } else { 3 }
        }
        "fork" => {
            let r = Command::new("/bin/true").status();
            println!("survived fork: {r:?}");
            3
        }
        "netlink" => {
            use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
            let r = socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::empty(),
                SockProtocol::NetlinkRoute,
            );
            println!("survived socket(AF_NETLINK): {r:?}");
            3
        }
        "setuid" => {
            let r = nix::unistd::setuid(nix::unistd::Uid::from_raw(0));
            println!("survived setuid(0): {r:?}");
            3
        }
        "kill-parent" => {
            let r = nix::sys::signal::kill(nix::unistd::getppid(), Signal::SIGTERM);
            println!("survived kill: {r:?}");
            3
        }
        other => {
            println!("unknown case {other}");
            4
        }
    }
}

fn config(dir: &Path) -> SandboxConfig {
    SandboxConfig {
        user: USER.into(),
        writable_dirs: vec![dir.to_path_buf()],
        readable_paths: vec![],
    }
}

/// What landlock must allow and deny; `Err` names the first surprise.
fn fs_checks(dir: &Path) -> Result<(), String> {
    let denied = |what: &str, r: std::io::Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(()),
        other => Err(format!("{what}: expected EACCES, got {other:?}")),
    };
    std::fs::create_dir(dir.join("sub")).map_err(|e| format!("mkdir in own dir: {e}"))?;
    std::fs::write(dir.join("sub/file"), b"written while confined")
        .map_err(|e| format!("write in own dir: {e}"))?;
    std::fs::rename(dir.join("sub"), dir.join("sub2")).map_err(|e| format!("rename: {e}"))?;
    let listed = std::fs::read_dir(dir).map_err(|e| format!("list own dir: {e}"))?;
    if listed.count() != 1 {
        return Err("own dir should hold one entry".into());
    }
    // World-readable: only landlock stands in the way.
    denied("read /etc/passwd", std::fs::read("/etc/passwd").map(drop))?;
    denied(
        "open /etc/shadow",
        std::fs::File::open("/etc/shadow").map(drop),
    )?;
    // /tmp is world-writable: only landlock stands in the way.
    let outside = format!("/tmp/mamori-sandbox-{}", std::process::id());
    denied("write /tmp/x", std::fs::write(&outside, b"x"))?;
    denied("list /", std::fs::read_dir("/").map(drop))?;
    Ok(())
}
