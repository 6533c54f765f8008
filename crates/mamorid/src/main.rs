//! `mamorid`, the device daemon.
//!
//! Started as root, it becomes the privileged parent (no outside sockets, holds the
//! key-encryption key) and re-executes itself as the unprivileged management process with
//! `--child`. Started without root (on a laptop), it runs as one process, and says so in its
//! log and in `GET /api/v1/status`.

mod args;
mod audit_notices;
mod forwarding;
mod management;
mod network;
mod provision;
mod time;

use std::process::ExitCode;

use clap::Parser;
use mamori_privsep::client::Parent;
use mamori_privsep::parent::{ParentConfig, run_parent};

use crate::args::Args;

/// The management process runs as another user and must be able to walk to the state
/// directory. Say so clearly at start, instead of failing later with "permission denied".
fn check_reachable(state_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let absolute = std::path::absolute(state_dir)?;
    for dir in absolute.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o001 == 0
        {
            anyhow::bail!(
                "the state directory {} is not reachable by the management user: {} is not \
                 searchable by others (mode {:o}); use a state directory such as /var/lib/mamori",
                state_dir.display(),
                dir.display(),
                meta.permissions().mode() & 0o7777
            );
        }
    }
    Ok(())
}

/// As root, before the management process exists: the state directory laid out for it, then
/// the audit log created (or checked) by this side, which keeps the verification key.
fn prepare_audit_log(args: &Args, child_user: &str) -> anyhow::Result<()> {
    let user = mamori_privsep::parent::ensure_child_user(child_user)?;
    mamori_privsep::parent::prepare_state_dir(&args.state_dir, user.uid, user.gid)?;
    ensure_audit_log(args)
}

fn ensure_audit_log(args: &Args) -> anyhow::Result<()> {
    let ensured =
        mamori_privsep::audit_custody::ensure_audit_log(&args.state_dir, &args.audit_log_config())?;
    tracing::info!(?ensured, "audit log ready");
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = Args::parse();
    if let Err(e) = args.absolutize() {
        tracing::error!("the state directory path cannot be resolved: {e}");
        return ExitCode::FAILURE;
    }
    let result = if args.child {
        Parent::from_stdin()
            .map_err(anyhow::Error::from)
            .and_then(|parent| management::run(&args, parent))
    } else if nix::unistd::geteuid().is_root() {
        let mut cfg = ParentConfig::new(&args.state_dir, args.for_child());
        cfg.child_user.clone_from(&args.user);
        // Managing the network: the parent puts the last applied (or the factory)
        // configuration in force before the management process binds its listener.
        cfg.factory_network.clone_from(&args.factory_network);
        check_reachable(&args.state_dir)
            .and_then(|()| prepare_audit_log(&args, &cfg.child_user))
            .and_then(|()| run_parent(cfg).map_err(anyhow::Error::from))
            .map(|exit| {
                tracing::info!(signal = ?exit.signal, restarts = exit.child_restarts, "stopped");
            })
    } else {
        tracing::warn!(
            "not started as root: running as a single process WITHOUT privilege separation \
             (development mode; a device starts mamorid as root)"
        );
        ensure_audit_log(&args)
            .and_then(|()| management::run(&args, Parent::in_process(&args.state_dir)))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
