//! `mamori lab up|down|status`: the lab on this host (docs/lab.md). Local and root only, like
//! `audit verify`: it talks to no server and logs in nowhere.

use std::path::PathBuf;

use clap::Subcommand;
use mamori_lab::{DEFAULT_NAME, DEFAULT_PORT, DeviceSpec, Lab, LabError, LabName, LabSpec, Role};

use crate::args::{DEFAULT_STATE_DIR, GlobalOpts};
use crate::error::CliError;
use crate::output::Output;

/// `mamori lab ...`
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Build the lab (idempotent; repairs a half-built one) and optionally start the device in
    /// its gateway. The device's state directory is --state-dir when given, else
    /// /run/mamori-lab/NAME/state (removed by `down`).
    Up {
        /// The lab's name (1-10 of a-z, 0-9); labs with different names coexist.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Start mamorid in the gateway, listening on the management address; print its URL
        /// and, at the first start of its state directory, the label password.
        #[arg(long)]
        with_device: bool,
        /// The mamorid binary (default: the one next to this `mamori`).
        #[arg(long, value_name = "PATH", requires = "with_device")]
        mamorid: Option<PathBuf>,
        /// The device's HTTPS port on the management address.
        #[arg(long, default_value_t = DEFAULT_PORT, requires = "with_device")]
        port: u16,
        /// The device leaves the gateway's network alone (no firewall, no NAT; it listens on
        /// the management address only). By default it manages it from the lab's factory
        /// configuration.
        #[arg(long, requires = "with_device")]
        no_network: bool,
    },
    /// Stop the lab's device and remove everything of the lab (and nothing else).
    Down {
        /// The lab's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Show the lab's namespaces, links, addresses and device.
    Status {
        /// The lab's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
}

fn lab_error(e: LabError) -> CliError {
    match e {
        LabError::NotRoot | LabError::InvalidName(_) => CliError::Usage(e.to_string()),
        e => CliError::Lab(e.to_string()),
    }
}

fn name(s: &str) -> Result<LabName, CliError> {
    LabName::new(s).map_err(lab_error)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v).map_err(|e| CliError::Lab(e.to_string()))
}

/// Runs a lab command.
pub fn run(cmd: LabCmd, global: &GlobalOpts, out: Output) -> Result<(), CliError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(lab_error(LabError::NotRoot));
    }
    match cmd {
        LabCmd::Up {
            name: n,
            with_device,
            mamorid,
            port,
            no_network,
        } => {
            let device = if with_device {
                let mamorid = match mamorid {
                    Some(p) => p,
                    None => std::env::current_exe()
                        .ok()
                        .and_then(|e| Some(e.parent()?.join("mamorid")))
                        .ok_or_else(|| {
                            CliError::Usage("cannot find mamorid: give --mamorid PATH".into())
                        })?,
                };
                // The global --state-dir defaults to the device's own /var/lib/mamori, which
                // the lab never uses: only a directory named explicitly counts.
                let state_dir = (global.state_dir != std::path::Path::new(DEFAULT_STATE_DIR))
                    .then(|| global.state_dir.clone());
                Some(DeviceSpec {
                    mamorid,
                    state_dir,
                    port,
                    manage_network: !no_network,
                })
            } else {
                None
            };
            let spec = LabSpec {
                name: name(&n)?,
                device,
            };
            let report = Lab::up(&spec).map_err(lab_error)?;
            if out.json {
                println!("{}", json(&report)?);
                return Ok(());
            }
            let verb = if report.built { "built" } else { "already up" };
            println!(
                "lab {}: up ({verb}, {:.2} s)",
                report.name,
                report.elapsed_ms as f64 / 1000.0
            );
            for r in &report.repaired {
                println!("  removed leftover: {r}");
            }
            let m = report.mgmt;
            println!(
                "  management link: host {} / {}  ->  gateway {} / {}",
                m.host_v4, m.host_v6, m.gw_v4, m.gw_v6
            );
            if let Some(d) = &report.device {
                let how = if d.started {
                    "started"
                } else {
                    "already running"
                };
                println!("  device: {} (mamorid pid {}, {how})", d.url, d.pid);
                println!("  certificate: {}", d.cert.display());
                println!(
                    "  state: {}   log: {}",
                    d.state_dir.display(),
                    d.log.display()
                );
                match &d.label_password {
                    Some(pw) => println!("initial admin password: {pw}"),
                    None => println!(
                        "  (the label password was printed at the first start of this state \
                         directory)"
                    ),
                }
            }
            println!(
                "  a shell on a lan host: ip netns exec {} bash",
                report.name.netns(Role::Lan1)
            );
            Ok(())
        }
        LabCmd::Down { name: n } => {
            let report = Lab::down(&name(&n)?).map_err(lab_error)?;
            if out.json {
                println!("{}", json(&report)?);
            } else if report.removed.is_empty() {
                println!("lab {}: nothing to remove", report.name);
            } else {
                println!("lab {}: removed", report.name);
                for r in &report.removed {
                    println!("  {r}");
                }
            }
            Ok(())
        }
        LabCmd::Status { name: n } => {
            let status = Lab::status(&name(&n)?).map_err(lab_error)?;
            if out.json {
                println!("{}", json(&status)?);
            } else {
                print!("{status}");
            }
            Ok(())
        }
    }
}
