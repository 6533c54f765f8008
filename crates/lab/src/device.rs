//! The device: `mamorid` started in the gateway's namespace, found again by its namespace, and
//! stopped by `down`.

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::plan::{LabName, Mgmt, Role};
use crate::rundir::{self, Saved, SavedDevice};
use crate::status::DeviceStatus;
use crate::{LabError, ip};

/// The line mamorid prints once, at its first start.
const LABEL_LINE: &str = "initial admin password: ";

/// How long `up` waits for the device to serve.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What to start.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The `mamorid` binary.
    pub mamorid: PathBuf,
    /// Its state directory (default: `/run/mamori-lab/NAME/state`, removed by `down`; a
    /// directory given here is kept).
    pub state_dir: Option<PathBuf>,
    /// The HTTPS port on the management address.
    pub port: u16,
    /// The device manages the gateway's network: it gets the lab's factory configuration
    /// ([`crate::network::gateway_config`]) as `--factory-network` and listens on every
    /// address (`[::]:PORT`), its firewall admitting management from the lan and the
    /// management link only. False: it listens on the management address only and touches
    /// no interface, route or firewall rule.
    pub manage_network: bool,
}

/// A device that serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The privileged parent's pid.
    pub pid: i32,
    /// `https://MGMT[:PORT]/`.
    pub url: String,
    /// The certificate it serves (pin it).
    pub cert: PathBuf,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Its output.
    pub log: PathBuf,
    /// The label (initial admin) password, printed at the first start of a state directory
    /// only.
    pub label_password: Option<String>,
    /// Whether this `up` started it (false: it was already running).
    pub started: bool,
}

/// The URL of the management listener.
pub fn url(mgmt: &Mgmt, port: u16) -> String {
    if port == 443 {
        format!("https://{}/", mgmt.gw_v4)
    } else {
        format!("https://{}:{port}/", mgmt.gw_v4)
    }
}

fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Alive and not a zombie waiting for its parent.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// The mamorid processes in the gateway's namespace.
fn mamorids(name: &LabName) -> Result<Vec<i32>, LabError> {
    Ok(ip::netns_pids(&name.netns(Role::Gw))?
        .into_iter()
        .filter(|&p| alive(p) && comm(p).as_deref() == Some("mamorid"))
        .collect())
}

/// The device part of the status.
pub fn status(
    name: &LabName,
    gw_present: bool,
    saved: Option<&Saved>,
) -> Result<DeviceStatus, LabError> {
    let pids = if gw_present {
        mamorids(name)?
    } else {
        Vec::new()
    };
    let dev = saved.and_then(|s| s.device.as_ref());
    let log = rundir::log_file(name);
    Ok(DeviceStatus {
        running: !pids.is_empty(),
        pids,
        pid_file: rundir::read_pid(name),
        url: dev.map(|d| d.url.clone()),
        cert: dev.map(|d| d.state_dir.join("tls/device-cert.pem")),
        state_dir: dev.map(|d| d.state_dir.clone()),
        log: log.exists().then_some(log),
    })
}

/// Starts mamorid in the gateway's namespace on the management address and waits until it
/// accepts connections from the host.
pub fn start(name: &LabName, mgmt: &Mgmt, spec: &DeviceSpec) -> Result<DeviceInfo, LabError> {
    let fail = |step: &str, detail: String| LabError::Device {
        step: step.to_owned(),
        detail,
    };
    if !spec.mamorid.is_file() {
        return Err(fail(
            "find mamorid",
            format!(
                "{} does not exist (build it, or give --mamorid PATH)",
                spec.mamorid.display()
            ),
        ));
    }
    let mamorid = std::path::absolute(&spec.mamorid).unwrap_or_else(|_| spec.mamorid.clone());
    let state_dir = match &spec.state_dir {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => rundir::default_state_dir(name),
    };
    // The address the lab waits on; with network management the device listens on every
    // address and its firewall decides who reaches it.
    let reach = SocketAddr::new(mgmt.gw_v4.into(), spec.port);
    let listen = if spec.manage_network {
        SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), spec.port)
    } else {
        reach
    };
    let factory = rundir::dir(name).join("factory-network.json");
    if spec.manage_network {
        crate::network::write_gateway_config(&factory, mgmt).map_err(|source| LabError::Io {
            step: "write the gateway's factory network configuration".into(),
            path: factory.clone(),
            source,
        })?;
    }
    let log_path = rundir::log_file(name);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|source| LabError::Io {
            step: "open the device's log".into(),
            path: log_path.clone(),
            source,
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log_err = log.try_clone().map_err(|source| LabError::Io {
        step: "open the device's log".into(),
        path: log_path.clone(),
        source,
    })?;
    // `ip netns exec` execs mamorid in place: the child's pid is mamorid's. Its own process
    // group keeps a Ctrl-C of the terminal that ran `up` away from it.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &name.netns(Role::Gw)])
        .arg(&mamorid)
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--listen")
        .arg(listen.to_string())
        .args(
            spec.manage_network
                .then(|| {
                    [
                        std::ffi::OsString::from("--factory-network"),
                        factory.into(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| fail("start mamorid", e.to_string()))?;
    let pid = i32::try_from(child.id()).map_err(|e| fail("start mamorid", e.to_string()))?;
    rundir::write(
        "write the pid file",
        &rundir::pid_file(name),
        format!("{pid}\n").as_bytes(),
    )?;
    let url = url(mgmt, spec.port);
    rundir::save_lab(
        name,
        &Saved {
            mgmt: *mgmt,
            device: Some(SavedDevice {
                url: url.clone(),
                state_dir: state_dir.clone(),
            }),
        },
    )?;
    let cert = state_dir.join("tls/device-cert.pem");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(
                "wait for mamorid to serve",
                format!(
                    "it exited ({status}); its output ends with:\n{}",
                    tail(&log_path)
                ),
            ));
        }
        if cert.exists() && TcpStream::connect_timeout(&reach, Duration::from_millis(500)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(
                "wait for mamorid to serve",
                format!(
                    "no answer on {reach} within {} s; its output ends with:\n{}",
                    START_TIMEOUT.as_secs(),
                    tail(&log_path)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reap it when it ends, so a long-lived caller (a test) keeps no zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(DeviceInfo {
        pid,
        url,
        cert,
        state_dir,
        label_password: label_password(&log_path, log_start),
        log: log_path,
        started: true,
    })
}

/// The label password, if the device printed it after `from` in its log.
fn label_password(log: &Path, from: u64) -> Option<String> {
    let mut f = std::fs::File::open(log).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(LABEL_LINE))
        .map(|p| p.trim().to_owned())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..]
        .iter()
        .filter(|l| !l.starts_with(LABEL_LINE))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops every process of the lab: first the device's privileged parent (SIGTERM, so it stops
/// its management process and chronyd itself), then whatever still runs in any of the lab's
/// namespaces (SIGTERM, then SIGKILL). Returns what it stopped.
pub fn stop_all(name: &LabName, namespaces: &[String]) -> Result<Vec<String>, LabError> {
    let mut stopped = Vec::new();
    let in_lab = |nss: &[String]| -> Result<Vec<i32>, LabError> {
        let mut pids = Vec::new();
        for ns in nss {
            pids.extend(ip::netns_pids(ns)?.into_iter().filter(|&p| alive(p)));
        }
        Ok(pids)
    };
    let mut pids = in_lab(namespaces)?;
    // The pid file counts only if that process is in one of the lab's namespaces (a stale pid
    // may belong to anything by now).
    if let Some(parent) = rundir::read_pid(name).filter(|p| pids.contains(p)) {
        let _ = kill(Pid::from_raw(parent), Signal::SIGTERM);
        if wait_gone(&[parent], STOP_TIMEOUT) {
            stopped.push(format!("mamorid {parent} (SIGTERM)"));
        } else {
            let _ = kill(Pid::from_raw(parent), Signal::SIGKILL);
            stopped.push(format!("mamorid {parent} (SIGKILL)"));
        }
        pids = in_lab(namespaces)?;
    }
    if pids.is_empty() {
        return Ok(stopped);
    }
    let names: Vec<String> = pids
        .iter()
        .map(|&p| comm(p).unwrap_or_else(|| "process".into()))
        .collect();
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let gone = wait_gone(&pids, Duration::from_secs(3));
    for (&p, what) in pids.iter().zip(names) {
        if !gone && alive(p) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            stopped.push(format!("{what} {p} (SIGKILL)"));
        } else {
            stopped.push(format!("{what} {p} (SIGTERM)"));
        }
    }
    wait_gone(&pids, STOP_TIMEOUT);
    Ok(stopped)
}
