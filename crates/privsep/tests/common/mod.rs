//! A small harness for the tests that run child processes as root.
//!
//! These test binaries use `harness = false`: libtest runs each test on a thread of its own, and
//! `confine()` must run in a single-threaded process. Each binary re-executes itself with a
//! `--…-child` argument to get a clean child, and reports in libtest's format.

#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{ChildStdout, ExitCode};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::unistd::{Uid, User};

/// The management user the tests use (as in production).
pub const USER: &str = "_mamori";

pub type TestResult = Result<(), String>;

/// One named test.
pub struct Case {
    pub name: &'static str,
    pub needs_root: bool,
    pub run: fn() -> TestResult,
}

/// Runs the cases (or those whose name contains a non-option argument) and exits like libtest.
pub fn run(cases: &[Case]) -> ExitCode {
    // libtest options are accepted and ignored; those that take a separate value skip it.
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if [
            "--test-threads",
            "--skip",
            "--color",
            "--format",
            "--logfile",
            "-Z",
        ]
        .contains(&a.as_str())
        {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    let started = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in &selected {
        if case.needs_root && !Uid::effective().is_root() {
            println!(
                "test {} ... ignored, needs root (uid {})",
                case.name,
                Uid::effective()
            );
            ignored += 1;
            continue;
        }
        match (case.run)() {
            Ok(()) => {
                println!("test {} ... ok", case.name);
                passed += 1;
            }
            Err(e) => {
                println!("test {} ... FAILED", case.name);
                failures.push((case.name, e));
                failed += 1;
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for (name, e) in &failures {
            println!("\n---- {name} ----\n{e}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        cases.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// Fails the test with a message if `cond` is false.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($msg)+)));
        }
    };
}

/// The management user, created as the parent would if it is missing.
pub fn user() -> Result<User, String> {
    mamori_privsep::parent::ensure_child_user(USER).map_err(|e| e.to_string())
}

/// A temporary directory whose path the management user can traverse.
pub fn tempdir() -> Result<tempfile::TempDir, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Gives `path` to the management user.
pub fn give_to_user(path: &Path, user: &User) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Reads a child's stdout line by line on a thread, so the test can wait with a timeout.
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    pub fn new(stdout: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line that starts with `prefix` (the rest of it), within `timeout`.
    pub fn next_with(&self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                    println!("  | {line}");
                }
                Err(e) => return Err(format!("no {prefix:?} line within {timeout:?}: {e}")),
            }
        }
    }
}

/// A field of `/proc/<pid>/status`, like `Uid` or `CapEff`.
pub fn proc_status(pid: u32, field: &str) -> Result<String, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

// ---- the demo daemon: this test binary as a real parent and its confined child -----------

/// Runs this test binary as a demo daemon when it was started as one: `--demo-parent STATE
/// [--demo-factory FILE]` runs the real privileged parent (with `FILE` as its factory network
/// configuration), which re-executes the binary with `--demo-child STATE`, handed to `child`.
/// `None` when neither flag is given (then the binary runs its tests).
pub fn demo_main(child: fn(&Path) -> u8) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let state = |i: usize| Path::new(args.get(i + 1).map_or("", String::as_str)).to_owned();
    if let Some(i) = args.iter().position(|a| a == "--demo-parent") {
        let factory = args.iter().position(|a| a == "--demo-factory").map(state);
        return Some(ExitCode::from(demo_parent(&state(i), factory)));
    }
    if let Some(i) = args.iter().position(|a| a == "--demo-child") {
        return Some(ExitCode::from(child(&state(i))));
    }
    None
}

/// The real parent over `state`, its child this binary with `--demo-child`; prints
/// `PARENT-EXIT {signal, child_restarts}` or `PARENT-ERROR`.
fn demo_parent(state: &Path, factory: Option<std::path::PathBuf>) -> u8 {
    use mamori_privsep::parent::{ParentConfig, run_parent};
    let mut cfg = ParentConfig::new(state, vec!["--demo-child".into(), state.into()]);
    cfg.factory_network = factory;
    match run_parent(cfg) {
        Ok(exit) => {
            println!(
                "PARENT-EXIT {}",
                serde_json::json!({"signal": exit.signal.as_str(), "child_restarts": exit.child_restarts})
            );
            0
        }
        Err(e) => {
            println!("PARENT-ERROR {e}");
            1
        }
    }
}

/// The child's start, as the management process's: the parent's socket from stdin, then
/// `confine` as the management user with the state directory's writable parts. A failure is
/// printed as `CHILD-ERROR …` and becomes the exit code.
pub fn confined_child(
    state: &Path,
) -> Result<
    (
        mamori_privsep::client::Parent,
        mamori_privsep::sandbox::SandboxReport,
    ),
    u8,
> {
    use mamori_privsep::sandbox::{SandboxConfig, confine};
    let parent = mamori_privsep::client::Parent::from_stdin().map_err(|e| {
        println!("CHILD-ERROR from_stdin: {e}");
        1
    })?;
    let sandbox = SandboxConfig {
        user: USER.into(),
        writable_dirs: mamori_privsep::parent::child_writable_dirs(state),
        readable_paths: vec![],
    };
    let report = confine(&sandbox).map_err(|e| {
        println!("CHILD-ERROR confine: {e}");
        1
    })?;
    Ok((parent, report))
}
