//! The lab's run directory, `/run/mamori-lab/NAME/`: what `up` decided (the management slot,
//! the device's address and state directory), the device's pid file and output, and (unless
//! `--state-dir` names another) the device's state directory. `down` removes it whole.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::plan::{LabName, Mgmt};

/// Where every lab keeps its run directory (tmpfs: gone at reboot, like the namespaces).
pub const RUN_ROOT: &str = "/run/mamori-lab";

/// What `up` recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The management link.
    pub mgmt: Mgmt,
    /// The device, if one was started.
    pub device: Option<SavedDevice>,
}

/// The device `up --with-device` started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedDevice {
    /// Its management URL.
    pub url: String,
    /// Its state directory.
    pub state_dir: PathBuf,
}

/// The run directory of a lab.
pub fn dir(name: &LabName) -> PathBuf {
    Path::new(RUN_ROOT).join(name.as_str())
}

/// The pid file of the lab's device.
pub fn pid_file(name: &LabName) -> PathBuf {
    dir(name).join("mamorid.pid")
}

/// The device's output.
pub fn log_file(name: &LabName) -> PathBuf {
    dir(name).join("mamorid.log")
}

/// The device's default state directory.
pub fn default_state_dir(name: &LabName) -> PathBuf {
    dir(name).join("state")
}

fn io(step: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LabError {
    let step = step.to_owned();
    let path = path.to_owned();
    move |source| LabError::Io { step, path, source }
}

/// Creates the run directory: 0755 like its parent, so the device's unprivileged management
/// user can reach a state directory inside it; the files in it are 0600.
pub fn create(name: &LabName) -> Result<PathBuf, LabError> {
    let d = dir(name);
    for p in [Path::new(RUN_ROOT), d.as_path()] {
        std::fs::create_dir_all(p).map_err(io("create the run directory", p))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(io("create the run directory", p))?;
    }
    Ok(d)
}

/// Writes a small file whole (0600).
pub fn write(step: &str, path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(step, &tmp))?;
    f.write_all(bytes).map_err(io(step, &tmp))?;
    std::fs::rename(&tmp, path).map_err(io(step, path))
}

/// Records what `up` decided.
pub fn save_lab(name: &LabName, saved: &Saved) -> Result<(), LabError> {
    let path = dir(name).join("lab.json");
    let json = serde_json::to_vec_pretty(saved).map_err(|e| LabError::Parse {
        step: "record the lab".into(),
        detail: e.to_string(),
    })?;
    write("record the lab", &path, &json)
}

/// What `up` recorded, if anything (a missing or unreadable record is no record).
pub fn read_lab(name: &LabName) -> Option<Saved> {
    let bytes = std::fs::read(dir(name).join("lab.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The pid in the pid file.
pub fn read_pid(name: &LabName) -> Option<i32> {
    std::fs::read_to_string(pid_file(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes the run directory (and the default state directory in it).
pub fn remove(name: &LabName) -> Result<bool, LabError> {
    let d = dir(name);
    match std::fs::remove_dir_all(&d) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("remove the run directory", &d)(e)),
    }
}
