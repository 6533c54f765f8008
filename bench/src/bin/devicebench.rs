//! `devicebench`: start-up time, idle memory and login latency of a real `mamorid`.
//!
//! Each subcommand starts the daemon it measures on a free loopback port with a new state
//! directory under the system temporary directory, and stops it (SIGTERM, then SIGKILL to its
//! process group) before it returns, also on error. Results are `key=value` lines; `*_all`
//! lines list every run, the other values are medians over the runs.
//!
//! - `startup`: time from spawning `mamorid` to the first successful HTTPS `GET /healthz`, on a
//!   new state directory (first start: provisioning, key and certificate generation, one PBKDF2)
//!   and again on the same directory (restart).
//! - `rss`: `VmRSS` of the daemon's processes after start, a few logins and a quiet period.
//!   `separated` is the device mode (started as root: privileged parent and management child);
//!   `single` runs it as `nobody` through `runuser`, which gives the one-process mode.
//! - `login`: latency of sequential `POST /api/v1/auth/login` on one keep-alive connection.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use mamori_bench::{http1, procfs, stats, tls};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// Measurements of a real mamorid.
#[derive(Debug, Parser)]
struct Args {
    /// The `mamorid` binary to measure.
    #[arg(long)]
    mamorid: PathBuf,
    /// What to measure.
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Start-to-serving time: first start and restart.
    Startup {
        /// Runs (each: a first start on a new state directory, then a restart).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// How the daemon runs.
        #[arg(long, value_enum, default_value_t = Mode::Separated)]
        mode: Mode,
    },
    /// Resident memory after start, a few logins and a quiet period.
    Rss {
        /// How the daemon runs.
        #[arg(long, value_enum, default_value_t = Mode::Separated)]
        mode: Mode,
        /// Runs, each on a new device.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Logins before measuring.
        #[arg(long, default_value_t = 3)]
        logins: usize,
        /// Seconds to wait after the last login.
        #[arg(long, default_value_t = 5)]
        settle: u64,
    },
    /// Login latency over one keep-alive connection.
    Login {
        /// Logins per round.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Rounds, each on a new connection to the same device.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// How the daemon runs.
        #[arg(long, value_enum, default_value_t = Mode::Separated)]
        mode: Mode,
    },
}

/// How the daemon is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// As root: privileged parent plus confined management process (the device).
    Separated,
    /// As `nobody` via `runuser`: one process, no privilege separation.
    Single,
}

/// The longest a start may take before it counts as failed.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The longest a stop may take before the process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Each login answer must come within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A state directory and a port: one device, started and stopped any number of times.
struct Lab {
    mamorid: PathBuf,
    mode: Mode,
    dir: tempfile::TempDir,
    state: PathBuf,
    addr: SocketAddr,
}

impl Lab {
    fn new(mamorid: &Path, mode: Mode) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mamori-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        // The management user (or nobody) must be able to walk to the state directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let state = dir.path().join("state");
        if mode == Mode::Single {
            std::fs::create_dir(&state)?;
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
            let nobody = nix::unistd::User::from_name("nobody")?.context("no user nobody")?;
            nix::unistd::chown(&state, Some(nobody.uid), Some(nobody.gid))?;
        }
        Ok(Self {
            mamorid: std::path::absolute(mamorid)?,
            mode,
            dir,
            state,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        })
    }

    fn cert_path(&self) -> PathBuf {
        self.state.join("tls/device-cert.pem")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mamorid.log")
    }

    /// Spawns the daemon; the clock for start-up time starts here.
    fn spawn(&self) -> anyhow::Result<Running> {
        let mut cmd = match self.mode {
            Mode::Separated => Command::new(&self.mamorid),
            Mode::Single => {
                let mut c = Command::new("runuser");
                c.args(["-u", "nobody", "--"]).arg(&self.mamorid);
                c
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        cmd.arg("--state-dir")
            .arg(&self.state)
            .arg("--listen")
            .arg(self.addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.mamorid.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, label) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(pw) = line.strip_prefix("initial admin password: ") {
                    let _ = tx.send(pw.to_owned());
                }
            }
        });
        Ok(Running {
            child: Some(child),
            mamorid: std::fs::canonicalize(&self.mamorid)?,
            mode: self.mode,
            started,
            label,
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Waits until `GET /healthz` answers 200 over TLS; returns the time since spawn.
    fn wait_serving(
        &self,
        rt: &tokio::runtime::Runtime,
        dev: &mut Running,
    ) -> anyhow::Result<Duration> {
        let mut config: Option<Arc<ClientConfig>> = None;
        loop {
            if let Some(child) = dev.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "mamorid exited during start ({status}):\n{}",
                    self.log_tail()
                );
            }
            if dev.started.elapsed() > START_DEADLINE {
                bail!(
                    "mamorid did not serve within {START_DEADLINE:?}:\n{}",
                    self.log_tail()
                );
            }
            if config.is_none() && self.cert_path().exists() {
                config = tls::client_config(&self.cert_path()).ok();
            }
            if let Some(cfg) = &config {
                let ok = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), healthz(cfg.clone(), self.addr))
                        .await
                        .is_ok_and(|r| r.is_ok_and(|status| status == 200))
                });
                if ok {
                    return Ok(dev.started.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A started daemon; stopped when dropped.
struct Running {
    child: Option<Child>,
    mamorid: PathBuf,
    mode: Mode,
    started: Instant,
    label: mpsc::Receiver<String>,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The label password printed at first start.
    fn label_password(&self) -> anyhow::Result<String> {
        self.label
            .recv_timeout(Duration::from_secs(5))
            .context("no label password on stdout (not a first start?)")
    }

    /// The `mamorid` processes: (parent or single process, management child if any).
    fn processes(&self) -> anyhow::Result<(u32, Option<u32>)> {
        let pid = self.pid();
        // The management process is a re-execution of /proc/self/exe, so its name is "exe";
        // recognise it by its executable.
        let mamorid_children = |p: u32| -> Vec<u32> {
            procfs::children(p)
                .into_iter()
                .filter(|&c| procfs::exe(c).is_some_and(|e| e == self.mamorid))
                .collect()
        };
        match self.mode {
            Mode::Separated => {
                let kids = mamorid_children(pid);
                anyhow::ensure!(
                    kids.len() == 1,
                    "expected one management process, found {kids:?}"
                );
                Ok((pid, kids.first().copied()))
            }
            Mode::Single => {
                // runuser stays as the parent of the daemon.
                let kids = mamorid_children(pid);
                anyhow::ensure!(
                    kids.len() == 1,
                    "expected one mamorid under runuser, found {kids:?}"
                );
                anyhow::ensure!(
                    procfs::children(kids[0]).is_empty(),
                    "the single process has children"
                );
                Ok((kids[0], None))
            }
        }
    }

    /// SIGTERM (to the parent, or to the group under runuser), then SIGKILL to the group.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = match self.mode {
            Mode::Separated => kill(pid, Signal::SIGTERM),
            Mode::Single => killpg(pid, Signal::SIGTERM),
        };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left in the group (a management process, runuser's child).
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn healthz(config: Arc<ClientConfig>, addr: SocketAddr) -> anyhow::Result<u16> {
    let connector = TlsConnector::from(config);
    let name = tls::server_name("127.0.0.1")?;
    let mut stream = tls::connect(&connector, &name, addr, None).await?;
    let mut buf = Vec::new();
    let r = http1::exchange(
        &mut stream,
        &mut buf,
        &http1::get("127.0.0.1", "/healthz", true),
    )
    .await?;
    Ok(r.status)
}

/// `count` logins on one keep-alive connection; returns each one's time in ms.
async fn login_round(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    password: &str,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let connector = TlsConnector::from(config);
    let name = tls::server_name("127.0.0.1")?;
    let mut stream = tls::connect(&connector, &name, addr, None).await?;
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    let request = http1::post_json("127.0.0.1", "/api/v1/auth/login", &body);
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            REQUEST_TIMEOUT,
            http1::exchange(&mut stream, &mut buf, &request),
        )
        .await
        .context("login timed out")??;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            r.status == 200,
            "login answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        anyhow::ensure!(
            r.header("connection") != Some("close"),
            "the server closed the keep-alive connection"
        );
    }
    Ok(times)
}

fn fmt_all(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn med(values: &[f64]) -> String {
    stats::median(values).map_or_else(|| "-".to_owned(), |m| format!("{m:.1}"))
}

fn startup(
    rt: &tokio::runtime::Runtime,
    mamorid: &Path,
    mode: Mode,
    runs: usize,
) -> anyhow::Result<()> {
    let mut first = Vec::new();
    let mut restart = Vec::new();
    for _ in 0..runs {
        let lab = Lab::new(mamorid, mode)?;
        let mut dev = lab.spawn()?;
        first.push(lab.wait_serving(rt, &mut dev)?.as_secs_f64() * 1000.0);
        dev.stop();
        let mut dev = lab.spawn()?;
        restart.push(lab.wait_serving(rt, &mut dev)?.as_secs_f64() * 1000.0);
        dev.stop();
    }
    println!("first_start_ms={}", med(&first));
    println!("first_start_ms_all={}", fmt_all(&first));
    println!("restart_ms={}", med(&restart));
    println!("restart_ms_all={}", fmt_all(&restart));
    Ok(())
}

/// Memory of one process, in KiB (threads: a count).
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    vmrss: u64,
    anon: u64,
    file: u64,
    pss: u64,
    threads: u64,
}

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = |field: &str| {
        procfs::status_kib(pid, field).with_context(|| format!("{field} of process {pid}"))
    };
    Ok(Memory {
        vmrss: status("VmRSS")?,
        anon: status("RssAnon")?,
        file: status("RssFile")?,
        pss: procfs::rollup_kib(pid, "Pss").with_context(|| format!("Pss of process {pid}"))?,
        threads: status("Threads")?,
    })
}

fn rss(
    rt: &tokio::runtime::Runtime,
    mamorid: &Path,
    mode: Mode,
    runs: usize,
    logins: usize,
    settle: u64,
) -> anyhow::Result<()> {
    let mut totals = Vec::new();
    let mut mains = Vec::new();
    let mut children = Vec::new();
    let mut pss_totals = Vec::new();
    for run in 1..=runs {
        let lab = Lab::new(mamorid, mode)?;
        let mut dev = lab.spawn()?;
        lab.wait_serving(rt, &mut dev)?;
        let password = dev.label_password()?;
        let config = tls::client_config(&lab.cert_path())?;
        rt.block_on(login_round(config, lab.addr, &password, logins))?;
        std::thread::sleep(Duration::from_secs(settle));
        let (main_pid, child_pid) = dev.processes()?;
        let m = memory(main_pid)?;
        let c = child_pid.map(memory).transpose()?.unwrap_or_default();
        let total = m.vmrss + c.vmrss;
        let pss = m.pss + c.pss;
        println!(
            "run={run} mode={mode:?} main_vmrss_kib={} main_anon_kib={} main_file_kib={} \
             main_pss_kib={} main_threads={} child_vmrss_kib={} child_anon_kib={} \
             child_file_kib={} child_pss_kib={} child_threads={} total_vmrss_kib={total} \
             total_pss_kib={pss}",
            m.vmrss, m.anon, m.file, m.pss, m.threads, c.vmrss, c.anon, c.file, c.pss, c.threads,
        );
        totals.push(total as f64);
        mains.push(m.vmrss as f64);
        children.push(c.vmrss as f64);
        pss_totals.push(pss as f64);
        dev.stop();
    }
    println!("main_kib={}", med(&mains));
    println!("child_kib={}", med(&children));
    println!("total_kib={}", med(&totals));
    println!("total_kib_all={}", fmt_all(&totals));
    println!("total_pss_kib={}", med(&pss_totals));
    Ok(())
}

fn login(
    rt: &tokio::runtime::Runtime,
    mamorid: &Path,
    mode: Mode,
    count: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let lab = Lab::new(mamorid, mode)?;
    let mut dev = lab.spawn()?;
    lab.wait_serving(rt, &mut dev)?;
    let password = dev.label_password()?;
    let config = tls::client_config(&lab.cert_path())?;
    let mut p50 = Vec::new();
    let mut p95 = Vec::new();
    for _ in 0..rounds {
        let times = rt.block_on(login_round(config.clone(), lab.addr, &password, count))?;
        p50.push(stats::percentile(&times, 50.0).unwrap_or(f64::NAN));
        p95.push(stats::percentile(&times, 95.0).unwrap_or(f64::NAN));
        println!("round_ms={}", fmt_all(&times));
    }
    dev.stop();
    println!("login_p50_ms={}", med(&p50));
    println!("login_p50_ms_all={}", fmt_all(&p50));
    println!("login_p95_ms={}", med(&p95));
    println!("login_p95_ms_all={}", fmt_all(&p95));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "run as root: the device mode needs it, and the single-process mode uses runuser"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.what {
        What::Startup { runs, mode } => startup(&rt, &args.mamorid, mode, runs),
        What::Rss {
            mode,
            runs,
            logins,
            settle,
        } => rss(&rt, &args.mamorid, mode, runs, logins, settle),
        What::Login {
            count,
            rounds,
            mode,
        } => login(&rt, &args.mamorid, mode, count, rounds),
    }
}
