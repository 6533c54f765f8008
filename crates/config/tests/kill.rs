//! A real kill -9 of the committing process: this test binary runs itself again as a child,
//! which commits with a confirm window and is killed (SIGKILL) either while the window is open
//! or while the privileged apply is still loading. The parent then opens the store as a
//! restarted daemon would: `recover_at_start` must revert to the previous revision, in the store
//! and in "the kernel" (a file the child's recorder wrote).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use mamori_config::{
    Apply, ApplyError, CONFIRM_WINDOW_API, Channel, Options, Outcome, RevertReason,
};
use mamori_netconfig::NetworkConfig;

const DIR_VAR: &str = "MAMORI_CONFIG_KILL_DIR";
const MODE_VAR: &str = "MAMORI_CONFIG_KILL_MODE";

fn killed_during(mode: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::new();
    let store = tmp.path().join("store.redb");
    let kernel = tmp.path().join("kernel.json");
    std::fs::write(tmp.path().join("key"), disk.key).unwrap();
    {
        // Before the child: revision 2 is the running one.
        let c = open_at(&store, &disk.key, Options::default());
        let r = Recorder::in_file(&kernel);
        c.commit(with_rules(2), meta("alice", Channel::Cli, "good"), None, &r)
            .unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill_child", "--exact", "--nocapture", "--include-ignored"])
        .env(DIR_VAR, tmp.path())
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the child exited before it was ready")
            .unwrap();
        if line.contains("CHILD READY") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was not killed: {status}");

    // "The kernel" holds the unconfirmed candidate.
    let r = Recorder::in_file(&kernel);
    assert_eq!(r.kernel().unwrap(), json(&with_rules(8)));
    let c = open_at(&store, &disk.key, Options::default());
    let m = c.pending().unwrap().expect("the marker survived the kill");
    assert_eq!((m.new_revision, m.previous_revision), (3, 2));
    assert_eq!(m.deadline.is_none(), mode == "apply_final");
    let out = c.recover_at_start(&r).unwrap().unwrap();
    assert!(
        matches!(
            out,
            Outcome::Reverted {
                from: 3,
                to: 2,
                recorded: Some(4),
                reason: RevertReason::Restart {
                    same_boot: Some(true),
                    ..
                }
            }
        ),
        "{out:?}"
    );
    assert_eq!(json(&c.running().unwrap().config), json(&with_rules(2)));
    assert_eq!(
        std::fs::read_to_string(&kernel).unwrap(),
        json(&with_rules(2))
    );
    assert!(c.pending().unwrap().is_none());
    assert!(c.recover_at_start(&r).unwrap().is_none());
}

#[test]
fn kill_9_during_the_confirm_window_reverts_at_start() {
    killed_during("window");
}

#[test]
fn kill_9_during_the_apply_reverts_at_start() {
    killed_during("apply");
}

#[test]
fn kill_9_during_the_apply_of_a_commit_without_window_reverts_at_start() {
    killed_during("apply_final");
}

/// Loads the candidate into "the kernel", says so, and never returns: the parent kills it here.
struct HangInApply(Recorder);

impl Apply for HangInApply {
    fn check(&self, cfg: &NetworkConfig) -> Result<(), ApplyError> {
        self.0.check(cfg)
    }
    fn apply(&self, cfg: &NetworkConfig) -> Result<(), ApplyError> {
        self.0.apply(cfg)?;
        ready();
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    fn probe(&self) -> Result<(), ApplyError> {
        self.0.probe()
    }
}

fn ready() {
    let mut out = std::io::stdout();
    writeln!(out, "CHILD READY").unwrap();
    out.flush().unwrap();
}

#[test]
#[ignore = "the child process of the kill_9 tests"]
fn kill_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    let key = std::fs::read(dir.join("key")).unwrap();
    let c = open_at(&dir.join("store.redb"), &key, Options::default());
    let r = Recorder::in_file(&dir.join("kernel.json"));
    let m = meta("alice", Channel::Cli, "risky");
    match std::env::var(MODE_VAR).unwrap().as_str() {
        "window" => {
            let out = c
                .commit(with_rules(8), m, Some(CONFIRM_WINDOW_API), &r)
                .unwrap();
            assert!(matches!(out, Outcome::Committed { revision: 3, .. }));
            ready();
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        "apply" => {
            c.commit(with_rules(8), m, Some(CONFIRM_WINDOW_API), &HangInApply(r))
                .unwrap();
            unreachable!("killed in apply");
        }
        "apply_final" => {
            c.commit(with_rules(8), m, None, &HangInApply(r)).unwrap();
            unreachable!("killed in apply");
        }
        other => panic!("mode {other}"),
    }
}
