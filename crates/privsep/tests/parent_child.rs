//! The privileged parent and the management child, end to end, as root.
//!
//! This binary is also the "daemon" under test: with `--demo-parent STATE` it runs
//! `run_parent`, which re-executes it with `--demo-child STATE`; the child confines itself, asks
//! for the data key (twice: the second must be refused) and the status over the socketpair, and
//! prints what it got on a `CHILD` line. The test drives it from outside: it reads those lines,
//! checks users and keys, kills the child to see it restarted, and stops the parent with
//! SIGTERM.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::{Case, Lines, TestResult};
use mamori_keys::{FileKeyProvider, load_or_create_data_key};
use mamori_privsep::PrivsepError;
use mamori_privsep::client::Parent;
use mamori_privsep::parent::{CHILD_DIRS, DATA_KEY_FILE, KEK_FILE};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Set in the environment to make the first child break the protocol.
const MISBEHAVE_ENV: &str = "MAMORI_TEST_MISBEHAVE";

fn main() -> ExitCode {
    // The parent's log (stderr) helps when a case fails.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("mamori=debug")
        .try_init();
    if let Some(code) = common::demo_main(demo_child) {
        return code;
    }
    common::run(&[
        Case {
            name: "child_gets_the_data_key_once_and_status_from_a_root_parent_and_is_restarted_after_sigkill",
            needs_root: true,
            run: child_gets_the_data_key_once_and_status_from_a_root_parent_and_is_restarted_after_sigkill,
        },
        Case {
            name: "a_child_that_breaks_the_protocol_is_killed_and_replaced",
            needs_root: true,
            run: a_child_that_breaks_the_protocol_is_killed_and_replaced,
        },
        Case {
            name: "the_management_process_refuses_to_start_without_a_parent",
            needs_root: false,
            run: the_management_process_refuses_to_start_without_a_parent,
        },
    ])
}

// ---- the demo daemon ---------------------------------------------------------------------

fn demo_child(state: &Path) -> u8 {
    let (parent, report) = match common::confined_child(state) {
        Ok(started) => started,
        Err(code) => return code,
    };
    if std::env::var_os(MISBEHAVE_ENV).is_some() {
        let marker = state.join("store/misbehaved");
        if !marker.exists() {
            let _ = std::fs::write(&marker, b"once");
            println!("MISBEHAVING {}", std::process::id());
            let _ = std::io::stdout().flush();
            // A frame of garbage, as a compromised child might send.
            if let Parent::Channel(chan) = &parent
                && let Ok(mut s) = chan.lock()
            {
                let _ = s.write_all(&[
                    0, 0, 0, 9, b'{', b'"', b'o', b'p', b'"', b':', b'1', b'}', b' ',
                ]);
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
    let key = parent.data_key();
    let second = parent.data_key();
    let status = parent.status();
    let sealed = key
        .as_ref()
        .ok()
        .and_then(|k| k.seal(b"privsep/e2e", b"sealed by the child").ok())
        .map(hex);
    let wrote = std::fs::write(
        state
            .join("store")
            .join(format!("child-{}", std::process::id())),
        b"x",
    )
    .is_ok();
    let line = json!({
        "pid": std::process::id(),
        "uid": nix::unistd::getuid().as_raw(),
        "report": report,
        "key": key.as_ref().err().map(ToString::to_string),
        "sealed": sealed,
        "second_refused": matches!(second, Err(PrivsepError::Refused { .. })),
        "status": status.as_ref().ok(),
        "status_error": status.as_ref().err().map(ToString::to_string),
        "separated": parent.is_separated(),
        "wrote_store": wrote,
    });
    println!("CHILD {line}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn hex(bytes: Vec<u8>) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---- the tests ---------------------------------------------------------------------------

struct Daemon {
    parent: Child,
    lines: Lines,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.parent.try_wait() {
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
    }
}

fn start(env: &[(&str, &str)]) -> Result<Daemon, String> {
    common::user()?;
    let dir = common::tempdir()?;
    let state = dir.path().join("state");
    let mut parent = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--demo-parent")
        .arg(&state)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = parent.stdout.take().ok_or("no stdout")?;
    Ok(Daemon {
        parent,
        lines: Lines::new(stdout),
        state,
        _dir: dir,
    })
}

fn next_child(d: &Daemon) -> Result<Value, String> {
    let line = d.lines.next_with("CHILD ", Duration::from_secs(30))?;
    serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
}

fn pid_of(v: &Value) -> Result<u32, String> {
    v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| format!("no pid in {v}"))
}

fn gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        // A zombie still has a /proc entry; its State line says Z.
        match common::proc_status(pid, "State") {
            Err(_) => return true,
            Ok(s) if s.starts_with('Z') => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

fn stop(d: &mut Daemon) -> Result<Value, String> {
    let pid = Pid::from_raw(i32::try_from(d.parent.id()).map_err(|e| e.to_string())?);
    let asked = Instant::now();
    kill(pid, Signal::SIGTERM).map_err(|e| e.to_string())?;
    let line = d.lines.next_with("PARENT-EXIT", Duration::from_secs(20))?;
    let status = d.parent.wait().map_err(|e| e.to_string())?;
    check!(status.success(), "parent exit {status}");
    // The parent gives the child 5 s before SIGKILL; a child that obeys SIGTERM is gone sooner.
    check!(
        asked.elapsed() < Duration::from_secs(4),
        "stopping took {:?}: the child did not obey SIGTERM",
        asked.elapsed()
    );
    serde_json::from_str(&line).map_err(|e| e.to_string())
}

/// The data key reaches the management process over the socketpair exactly once per child
/// lifetime, and it is the real store key (it opens under the DEK unwrapped from the KEK); the
/// child runs as `_mamori` while the parent is root; a child killed with SIGKILL is restarted.
fn child_gets_the_data_key_once_and_status_from_a_root_parent_and_is_restarted_after_sigkill()
-> TestResult {
    let user = common::user()?;
    let mut d = start(&[])?;
    let first = next_child(&d)?;
    let child_pid = pid_of(&first)?;
    let parent_pid = d.parent.id();

    // Who runs as whom, seen from outside.
    let uid_of = |pid: u32| common::proc_status(pid, "Uid");
    check!(
        uid_of(parent_pid)?.starts_with("0\t"),
        "parent uid {}",
        uid_of(parent_pid)?
    );
    let want = user.uid.as_raw().to_string();
    check!(
        uid_of(child_pid)?.split_whitespace().all(|u| u == want),
        "child uid {}",
        uid_of(child_pid)?
    );
    check!(
        common::proc_status(child_pid, "PPid")? == parent_pid.to_string(),
        "the child is the parent's"
    );

    // What the child got.
    check!(first["key"].is_null(), "data key error: {}", first["key"]);
    check!(
        first["second_refused"] == true,
        "second DataKey not refused: {first}"
    );
    check!(first["separated"] == true, "{first}");
    check!(first["wrote_store"] == true, "{first}");
    check!(first["report"]["seccomp"] == true, "{first}");
    check!(first["report"]["landlock"] == "FullyEnforced", "{first}");
    let status = &first["status"];
    check!(status["parent_uid"] == 0, "{first}");
    check!(status["parent_pid"] == parent_pid, "{first}");
    check!(status["child_restarts"] == 0, "{first}");

    // The key the child got is the store's DEK under the KEK the parent holds.
    let kek = FileKeyProvider::open(&d.state.join(KEK_FILE)).map_err(|e| e.to_string())?;
    let (dek, created) =
        load_or_create_data_key(&kek, &d.state.join(DATA_KEY_FILE)).map_err(|e| e.to_string())?;
    check!(!created, "the parent should have created the wrapped DEK");
    let sealed = unhex(first["sealed"].as_str().ok_or("no sealed value")?);
    let opened = dek
        .open(b"privsep/e2e", &sealed)
        .map_err(|e| e.to_string())?;
    check!(&opened[..] == b"sealed by the child", "opened {opened:?}");

    // The layout the parent made.
    let meta = |p: &str| std::fs::symlink_metadata(d.state.join(p)).map_err(|e| e.to_string());
    check!(
        meta("keys")?.uid() == 0 && meta("keys")?.mode() & 0o777 == 0o700,
        "keys dir"
    );
    check!(meta(KEK_FILE)?.uid() == 0, "kek owner");
    for sub in CHILD_DIRS {
        check!(meta(sub)?.uid() == user.uid.as_raw(), "{sub} owner");
    }

    // The parent holds no socket but the socketpair, and the nftables notification socket
    // it hands to the firewall monitor (a netlink socket to the kernel it never reads).
    check!(
        only_unix_sockets(parent_pid)?,
        "parent holds a socket other than Unix ones and the nftables listener"
    );

    // SIGKILL the child: a new one appears, counted, and gets its own one data key.
    kill(
        Pid::from_raw(i32::try_from(child_pid).map_err(|e| e.to_string())?),
        Signal::SIGKILL,
    )
    .map_err(|e| e.to_string())?;
    let killed_at = Instant::now();
    let second = next_child(&d)?;
    let restarted_after = killed_at.elapsed();
    check!(pid_of(&second)? != child_pid, "same pid after restart");
    check!(
        restarted_after >= Duration::from_millis(900),
        "restarted after {restarted_after:?}, before the 1 s backoff"
    );
    check!(second["status"]["child_restarts"] == 1, "{second}");
    check!(
        second["key"].is_null(),
        "restarted child got no key: {second}"
    );
    check!(second["second_refused"] == true, "{second}");

    // SIGTERM the parent: it stops the child and exits.
    let exit = stop(&mut d)?;
    check!(exit["signal"] == "SIGTERM", "{exit}");
    check!(exit["child_restarts"] == 1, "{exit}");
    check!(
        gone(pid_of(&second)?, Duration::from_secs(5)),
        "the child outlived the parent"
    );
    Ok(())
}

/// A child that sends a malformed frame has its session ended: the parent kills it and starts
/// a new one (STYLE §5.2: never guess a fix).
fn a_child_that_breaks_the_protocol_is_killed_and_replaced() -> TestResult {
    let mut d = start(&[(MISBEHAVE_ENV, "1")])?;
    let bad: u32 = d
        .lines
        .next_with("MISBEHAVING", Duration::from_secs(30))?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let good = next_child(&d)?;
    check!(
        pid_of(&good)? != bad,
        "the misbehaving child was not replaced"
    );
    check!(
        gone(bad, Duration::from_secs(5)),
        "the misbehaving child lives"
    );
    check!(good["status"]["child_restarts"] == 1, "{good}");
    check!(good["key"].is_null(), "{good}");
    let exit = stop(&mut d)?;
    check!(exit["signal"] == "SIGTERM", "{exit}");
    Ok(())
}

/// Started by hand (stdin not the socketpair), the management process refuses to run as a
/// separated child instead of talking to whatever its stdin is.
fn the_management_process_refuses_to_start_without_a_parent() -> TestResult {
    let dir = common::tempdir()?;
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--demo-child")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    check!(
        out.status.code() == Some(1),
        "{:?} {stdout}",
        out.status.signal()
    );
    check!(
        stdout.contains("CHILD-ERROR from_stdin") && stdout.contains("not the privsep socket"),
        "{stdout}"
    );
    Ok(())
}

/// Whether every socket `pid` holds is a Unix socket or a `NETLINK_NETFILTER` socket in the
/// nftables group alone (no TCP, UDP, packet or other netlink socket).
fn only_unix_sockets(pid: u32) -> Result<bool, String> {
    let unix = std::fs::read_to_string("/proc/net/unix").map_err(|e| e.to_string())?;
    let netlink = std::fs::read_to_string("/proc/net/netlink").map_err(|e| e.to_string())?;
    let inodes: Vec<&str> = unix
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .chain(netlink.lines().skip(1).filter_map(|l| {
            // sk Eth Pid Groups … Inode: protocol 12, group mask of NFNLGRP_NFTABLES (7).
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"12") && f.get(3) == Some(&"00000040"))
                .then(|| f.get(9).copied())
                .flatten()
        }))
        .collect();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())? {
        let link =
            std::fs::read_link(fd.map_err(|e| e.to_string())?.path()).map_err(|e| e.to_string())?;
        let link = link.to_string_lossy();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            && !inodes.contains(&inode)
        {
            return Ok(false);
        }
    }
    Ok(true)
}
