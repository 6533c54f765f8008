//! The chrony driver: chronyd started with mamori's own configuration, and chronyc reading its
//! status over the Unix command socket.
//!
//! This runs in the privileged parent (root): chronyd must start as root to set the clock and
//! then drops to the chrony user itself (`-u`), and the command socket is reachable only by
//! root and that user. The management process cannot run it (its seccomp filter forbids
//! `execve` and `socket`).
//!
//! chronyd runs in the foreground (`-d`) as our child, so we know its pid without trusting a
//! pid file, and its log (standard error) comes to us: each line goes to `tracing`, and the
//! steps it reports ("System clock was stepped by …") are kept for the step watcher
//! ([`ChronyStepLog`]). `-F 1` turns on chronyd's own seccomp filter, as Debian's service does.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};

use crate::TimeError;
use crate::config::TimeConfig;
use crate::render::{ChronyPaths, RenderOptions, render};
use crate::status::{self, AuthData, NtpData, Source, TimeStatus, Tracking};
use crate::step::{DetectedStep, NtpSteps, boottime_ns};

/// How long chronyd may take to open its command socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long chronyd may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long one chronyc command may take (chronyc itself retries for a while when chronyd
/// does not answer).
const CHRONYC_TIMEOUT: Duration = Duration::from_secs(10);
/// How many of chronyd's last log lines are kept for error messages.
const LOG_TAIL: usize = 20;

/// How to run chronyd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChronyOptions {
    /// The chronyd binary (Debian: `/usr/sbin/chronyd`).
    pub chronyd: PathBuf,
    /// The chronyc binary (Debian: `/usr/bin/chronyc`).
    pub chronyc: PathBuf,
    /// The user chronyd drops to (Debian: `_chrony`).
    pub user: String,
    /// Let chronyd set the clock. Off (`-x`): it measures and reports but never touches the
    /// clock (tests, and a device whose clock someone else keeps).
    pub control_clock: bool,
    /// chronyd's own seccomp filter (`-F 1`).
    pub seccomp: bool,
}

impl ChronyOptions {
    /// The device: Debian's chrony, the `_chrony` user, chronyd keeps the clock.
    pub fn for_device() -> Self {
        Self {
            chronyd: "/usr/sbin/chronyd".into(),
            chronyc: "/usr/bin/chronyc".into(),
            user: "_chrony".into(),
            control_clock: true,
            seccomp: true,
        }
    }

    /// Like [`ChronyOptions::for_device`], but chronyd never sets the clock (`-x`).
    pub fn observe_only() -> Self {
        Self {
            control_clock: false,
            ..Self::for_device()
        }
    }
}

/// A running chronyd of ours. Dropping it stops chronyd.
#[derive(Debug)]
pub struct Chrony {
    child: Child,
    client: ChronyClient,
    paths: ChronyPaths,
    log: Arc<Mutex<VecDeque<String>>>,
    steps: ChronyStepLog,
    log_thread: Option<JoinHandle<()>>,
}

impl Chrony {
    /// Renders `chrony.conf` from `cfg`, lays out chronyd's directories, starts chronyd and
    /// waits until it answers on its command socket.
    pub fn start(
        cfg: &TimeConfig,
        paths: ChronyPaths,
        render_opts: &RenderOptions,
        opts: &ChronyOptions,
    ) -> Result<Self, TimeError> {
        let text = render(cfg, &paths, render_opts)?;
        let user = User::from_name(&opts.user)
            .map_err(|source| TimeError::Clock {
                what: "looking up the chrony user",
                source,
            })?
            .ok_or_else(|| TimeError::ChronyUserMissing(opts.user.clone()))?;
        prepare_dirs(&paths, &user)?;
        let conf = paths.config_file();
        mamori_durable::write(&conf, text.as_bytes(), 0o644).map_err(|source| {
            TimeError::ChronyDir {
                path: conf.clone(),
                source,
            }
        })?;

        // Through env, a missing chronyd would only be an exit status 127: say it plainly.
        if !opts.chronyd.is_file() {
            return Err(TimeError::ChronydSpawn(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", opts.chronyd.display()),
            )));
        }
        // The parent blocks SIGTERM, SIGINT and SIGCHLD; chronyd must not inherit that.
        let mut cmd = mamori_spawn::with_default_signals(&opts.chronyd);
        cmd.arg("-d").arg("-f").arg(&conf).arg("-u").arg(&opts.user);
        if !opts.control_clock {
            cmd.arg("-x");
        }
        if opts.seccomp {
            cmd.args(["-F", "1"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .current_dir("/")
            .spawn()
            .map_err(TimeError::ChronydSpawn)?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let steps = ChronyStepLog::default();
        let log_thread = child.stderr.take().map(|stderr| {
            let (log, steps) = (Arc::clone(&log), steps.clone());
            std::thread::spawn(move || read_log(stderr, &log, &steps))
        });
        let mut chrony = Self {
            child,
            client: ChronyClient::new(&opts.chronyc, paths.socket()),
            paths,
            log,
            steps,
            log_thread,
        };
        chrony.wait_ready()?;
        tracing::info!(
            target: "mamori::chrony",
            pid = chrony.child.id(),
            control_clock = opts.control_clock,
            "chronyd started"
        );
        Ok(chrony)
    }

    fn wait_ready(&mut self) -> Result<(), TimeError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(TimeError::ChronydSpawn)? {
                // Let the log thread drain what chronyd said before it died.
                if let Some(t) = self.log_thread.take() {
                    let _ = t.join();
                }
                return Err(TimeError::ChronydExited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            // Ours is ready when its pid file names it (not another chronyd on the same files)
            // and the command socket answers.
            let ours = std::fs::read_to_string(self.paths.pid_file())
                .is_ok_and(|pid| pid.trim() == self.child.id().to_string());
            if ours && self.client.tracking().is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.log_tail();
                self.stop_now();
                return Err(TimeError::ChronydNotReady { log });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of chronyd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether chronyd still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The client for its command socket.
    pub fn client(&self) -> &ChronyClient {
        &self.client
    }

    /// The steps chronyd made, for the step watcher.
    pub fn steps(&self) -> ChronyStepLog {
        self.steps.clone()
    }

    /// chronyd's status ([`ChronyClient::status`]).
    pub fn status(&self) -> Result<TimeStatus, TimeError> {
        self.client.status()
    }

    /// The last lines chronyd logged.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Stops chronyd: SIGTERM, SIGKILL after 5 s. Returns its exit status if it could be
    /// collected.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.stop_now()
    }

    fn stop_now(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.join_log();
            return Some(status);
        }
        let pid = i32::try_from(self.child.id()).ok().map(Pid::from_raw);
        if let Some(pid) = pid {
            // Our own unreaped child: the pid cannot have been reused.
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        let mut status = None;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        if status.is_none() {
            tracing::warn!(target: "mamori::chrony", "chronyd ignored SIGTERM; killing it");
            let _ = self.child.kill();
            status = self.child.wait().ok();
        }
        self.join_log();
        tracing::info!(target: "mamori::chrony", ?status, "chronyd stopped");
        status
    }

    fn join_log(&mut self) {
        if let Some(t) = self.log_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Chrony {
    fn drop(&mut self) {
        if self.log_thread.is_some() || matches!(self.child.try_wait(), Ok(None)) {
            self.stop_now();
        }
    }
}

/// `STATE/chrony` (root, 0755) and `STATE/chrony/var` (the chrony user, 0750). A symlink in
/// either place is refused.
fn prepare_dirs(paths: &ChronyPaths, user: &User) -> Result<(), TimeError> {
    ensure_dir(&paths.conf_dir, 0o755, Uid::from_raw(0), Gid::from_raw(0))?;
    ensure_dir(&paths.var_dir, 0o750, user.uid, user.gid)
}

fn ensure_dir(path: &Path, mode: u32, uid: Uid, gid: Gid) -> Result<(), TimeError> {
    let io = |source| TimeError::ChronyDir {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.file_type().is_dir() {
        return Err(TimeError::ChronyDirUnsafe {
            path: path.to_path_buf(),
            reason: "not a directory (a symlink?)",
        });
    }
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw())).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// Reads chronyd's standard error until it closes: every line to `tracing`, the last few kept,
/// steps remembered.
fn read_log(stderr: impl Read, log: &Mutex<VecDeque<String>>, steps: &ChronyStepLog) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        tracing::info!(target: "mamori::chrony", "{line}");
        if let Some(step_s) = parse_step_line(&line) {
            steps.note(step_s);
        }
        if let Ok(mut l) = log.lock() {
            if l.len() == LOG_TAIL {
                l.pop_front();
            }
            l.push_back(line);
        }
    }
}

/// The step in a chronyd log line "System clock was stepped by -1.707730 seconds", in
/// seconds.
fn parse_step_line(line: &str) -> Option<f64> {
    let rest = line.split("System clock was stepped by ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The steps chronyd said it made, with the boot time we read its message at.
#[derive(Debug, Clone, Default)]
pub struct ChronyStepLog {
    seen: Arc<Mutex<VecDeque<(i64, i64)>>>,
}

/// chronyd's message arrives within this much of the step (either side).
const STEP_MATCH_WINDOW_NS: i64 = 10 * 1_000_000_000;

/// One step chronyd reported: when its message was read and by how much it stepped. Both sides
/// of the privilege boundary read the same `CLOCK_BOOTTIME`, so the parent's notices can be
/// handed to the management process's step watcher as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepNotice {
    /// `CLOCK_BOOTTIME` when chronyd's message was read, in nanoseconds.
    pub boottime_ns: i64,
    /// The step chronyd reported, in nanoseconds.
    pub step_ns: i64,
}

/// How many step notices are kept (and sent across the boundary at most).
pub const MAX_STEP_NOTICES: usize = 16;

impl ChronyStepLog {
    /// The steps remembered, oldest first (at most [`MAX_STEP_NOTICES`]).
    pub fn notices(&self) -> Vec<StepNotice> {
        self.seen.lock().map_or_else(
            |_| Vec::new(),
            |s| {
                s.iter()
                    .map(|&(boottime_ns, step_ns)| StepNotice {
                        boottime_ns,
                        step_ns,
                    })
                    .collect()
            },
        )
    }

    /// Adds notices received from elsewhere (the parent), skipping those already known and
    /// keeping the newest [`MAX_STEP_NOTICES`].
    pub fn merge(&self, notices: &[StepNotice]) {
        if let Ok(mut s) = self.seen.lock() {
            for n in notices.iter().take(MAX_STEP_NOTICES) {
                if !s.contains(&(n.boottime_ns, n.step_ns)) {
                    s.push_back((n.boottime_ns, n.step_ns));
                }
            }
            s.make_contiguous().sort_unstable();
            while s.len() > MAX_STEP_NOTICES {
                s.pop_front();
            }
        }
    }

    /// Remembers a step of `step_s` seconds, seen now.
    pub fn note(&self, step_s: f64) {
        #[allow(clippy::cast_possible_truncation)] // saturating float-to-int is the intent
        let step_ns = (step_s * 1e9) as i64;
        let Ok(now) = boottime_ns() else { return };
        if let Ok(mut s) = self.seen.lock() {
            if s.len() == MAX_STEP_NOTICES {
                s.pop_front();
            }
            s.push_back((now, step_ns));
        }
    }
}

impl NtpSteps for ChronyStepLog {
    fn explains(&self, step: &DetectedStep) -> bool {
        let tolerance = (step.step_ns.saturating_abs() / 10).max(100_000_000);
        self.seen.lock().is_ok_and(|s| {
            s.iter().any(|&(at, step_ns)| {
                (at - step.boottime_ns).saturating_abs() <= STEP_MATCH_WINDOW_NS
                    && (step_ns - step.step_ns).saturating_abs() <= tolerance
            })
        })
    }
}

/// Talks to chronyd over its Unix command socket with `chronyc -n -c -h SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChronyClient {
    chronyc: PathBuf,
    socket: PathBuf,
}

impl ChronyClient {
    /// A client for the chronyd listening on `socket`.
    pub fn new(chronyc: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        Self {
            chronyc: chronyc.into(),
            socket: socket.into(),
        }
    }

    /// The four reports, put together.
    pub fn status(&self) -> Result<TimeStatus, TimeError> {
        let tracking = self.tracking()?;
        let sources = self.sources()?;
        let auth = self.auth_data()?;
        let ntp = self.ntp_data()?;
        Ok(status::combine(&tracking, &sources, &auth, &ntp))
    }

    /// `tracking`.
    pub fn tracking(&self) -> Result<Tracking, TimeError> {
        status::parse_tracking(&self.run("tracking")?)
    }

    /// `sources`.
    pub fn sources(&self) -> Result<Vec<Source>, TimeError> {
        status::parse_sources(&self.run("sources")?)
    }

    /// `authdata`.
    pub fn auth_data(&self) -> Result<Vec<AuthData>, TimeError> {
        status::parse_authdata(&self.run("authdata")?)
    }

    /// `ntpdata`.
    pub fn ntp_data(&self) -> Result<Vec<NtpData>, TimeError> {
        status::parse_ntpdata(&self.run("ntpdata")?)
    }

    fn run(&self, command: &'static str) -> Result<String, TimeError> {
        let child = Command::new(&self.chronyc)
            .arg("-n")
            .arg("-c")
            .arg("-h")
            .arg(&self.socket)
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .spawn()
            .map_err(TimeError::ChronycSpawn)?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(CHRONYC_TIMEOUT) {
            Ok(out) => out.map_err(TimeError::ChronycSpawn)?,
            Err(_) => {
                if let Ok(pid) = i32::try_from(pid) {
                    // Not yet reaped (the waiting thread has not returned), so still ours.
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                return Err(TimeError::ChronycTimeout { command });
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() || stderr.contains("Cannot talk to daemon") {
            if stderr.contains("Could not open connection to daemon")
                || stderr.contains("Cannot talk to daemon")
            {
                return Err(TimeError::ChronydUnreachable);
            }
            return Err(TimeError::Chronyc {
                command,
                detail: format!("{}: {stderr}", output.status),
            });
        }
        String::from_utf8(output.stdout).map_err(|_| TimeError::ChronycOutput {
            command,
            detail: "not UTF-8".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronyd_step_lines_are_understood() {
        assert_eq!(
            parse_step_line("2022-01-03T14:32:43Z System clock was stepped by -1.707730 seconds"),
            Some(-1.70773)
        );
        assert_eq!(
            parse_step_line("System clock was stepped by 16.044301 seconds"),
            Some(16.044301)
        );
        assert_eq!(
            parse_step_line("System clock wrong by 4.005564 seconds"),
            None
        );
        assert_eq!(parse_step_line("Selected source 127.0.0.1"), None);
    }

    #[test]
    fn a_logged_step_explains_a_seen_step_of_the_same_size_at_the_same_time() {
        let log = ChronyStepLog::default();
        log.note(-3.0);
        let now = boottime_ns().unwrap();
        let seen = |step_ns: i64, boottime_ns: i64| DetectedStep {
            step_ns,
            after_ns: 1_800_000_000_000_000_000,
            boottime_ns,
            kernel_signalled: true,
            sets: 1,
        };
        assert!(log.explains(&seen(-3_050_000_000, now + 200_000_000)));
        assert!(!log.explains(&seen(3_000_000_000, now)), "other direction");
        assert!(!log.explains(&seen(-5_000_000_000, now)), "other size");
        assert!(
            !log.explains(&seen(-3_000_000_000, now + 60_000_000_000)),
            "a minute later"
        );
    }

    #[test]
    fn a_missing_chronyc_or_socket_is_a_clear_error() {
        let c = ChronyClient::new("/nonexistent/chronyc", "/nonexistent/chronyd.sock");
        assert!(matches!(c.tracking(), Err(TimeError::ChronycSpawn(_))));
        if Path::new("/usr/bin/chronyc").exists() {
            let dir = tempfile::tempdir().unwrap();
            let c = ChronyClient::new("/usr/bin/chronyc", dir.path().join("chronyd.sock"));
            match c.status() {
                Err(TimeError::ChronydUnreachable) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
