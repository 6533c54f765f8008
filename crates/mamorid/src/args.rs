//! Command-line arguments.

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
    /// Internal: run as the management process under a privileged parent.
    #[arg(long, hide = true)]
    pub child: bool,
}
