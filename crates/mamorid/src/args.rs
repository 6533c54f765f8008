//! Command-line arguments.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The mamori device daemon.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Args {
    /// State directory (store, keys, audit log, TLS certificate, console socket).
    #[arg(long, default_value = "/var/lib/mamori")]
    pub state_dir: PathBuf,
    /// Address of the HTTPS management listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Manufacturing provisioning file (TOML: model, serial), read at first start.
    #[arg(long)]
    pub provision_file: Option<PathBuf>,
    /// Model name, if no provisioning file is given (first start only).
    #[arg(long)]
    pub model: Option<String>,
    /// Serial number, if no provisioning file is given (first start only).
    #[arg(long)]
    pub serial: Option<String>,
    /// User the management process runs as (created as a system user if missing).
    #[arg(long, default_value = mamori_privsep::parent::DEFAULT_CHILD_USER)]
    pub user: String,
    /// Audit log capacity in MiB (1-65536). When full, the oldest records are overwritten, with
    /// warnings at 80 % and 90 %; the default holds about a day of a busy gateway and weeks of
    /// a quiet one (docs/en/audit.md).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub audit_capacity_mib: u64,
    /// The device's factory network configuration (JSON, a `NetworkConfig`: its interfaces with
    /// their roles and factory addresses, the secure default firewall). Given, mamori manages
    /// the network: the parent loads the last applied configuration (or this one) before the
    /// management process starts, and this one is the rescue configuration. Not given, mamori
    /// touches no interface, route or firewall rule (a development machine).
    #[arg(long)]
    pub factory_network: Option<PathBuf>,
    /// Internal: run as the management process under a privileged parent.
    #[arg(long, hide = true)]
    pub child: bool,
}

impl Args {
    /// Makes the paths absolute: the management process starts in `/`, so a relative path
    /// given on the command line would name something else there.
    pub fn absolutize(&mut self) -> std::io::Result<()> {
        self.state_dir = std::path::absolute(&self.state_dir)?;
        if let Some(p) = &self.provision_file {
            self.provision_file = Some(std::path::absolute(p)?);
        }
        if let Some(p) = &self.factory_network {
            self.factory_network = Some(std::path::absolute(p)?);
        }
        Ok(())
    }

    /// The audit log's configuration: the capacity asked for, in segments of at most 4 MiB and
    /// at least eight of them, so overwriting the oldest frees a small share at a time.
    pub fn audit_log_config(&self) -> mamori_audit::log::LogConfig {
        let capacity = self.audit_capacity_mib * 1024 * 1024;
        let mut cfg = mamori_audit::log::LogConfig::default();
        cfg.capacity_bytes = capacity;
        cfg.segment_bytes = (capacity / 8).clamp(128 * 1024, 4 * 1024 * 1024);
        cfg
    }

    /// The arguments for the management process: these, spelled out, plus `--child`.
    pub fn for_child(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            "--state-dir".into(),
            self.state_dir.clone().into(),
            "--listen".into(),
            self.listen.to_string().into(),
            "--user".into(),
            self.user.clone().into(),
        ];
        out.extend([
            "--audit-capacity-mib".into(),
            self.audit_capacity_mib.to_string().into(),
        ]);
        if let Some(p) = &self.provision_file {
            out.extend(["--provision-file".into(), p.clone().into_os_string()]);
        }
        if let Some(p) = &self.factory_network {
            out.extend(["--factory-network".into(), p.clone().into_os_string()]);
        }
        if let Some(m) = &self.model {
            out.extend(["--model".into(), m.into()]);
        }
        if let Some(s) = &self.serial {
            out.extend(["--serial".into(), s.into()]);
        }
        out.push("--child".into());
        out
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_child_gets_the_same_arguments_with_absolute_paths() {
        let mut a = Args::parse_from([
            "mamorid",
            "--state-dir",
            "state",
            "--listen",
            "127.0.0.1:9443",
            "--serial",
            "S1",
        ]);
        a.absolutize().unwrap();
        let child =
            Args::parse_from(std::iter::once(OsString::from("mamorid")).chain(a.for_child()));
        assert!(child.state_dir.is_absolute());
        assert_eq!(child.state_dir, a.state_dir);
        assert_eq!(child.listen, a.listen);
        assert_eq!(child.serial.as_deref(), Some("S1"));
        assert!(child.child);
    }
}
