//! The management process: everything that faces the network, confined.
//!
//! Order of start-up (each step needs what the previous one left):
//! 1. gather what needs the wider file system: the provisioning file, the host name and the
//!    MAC addresses;
//! 2. bind the HTTPS listener and the console socket (possibly on privileged ports, as root);
//! 3. get the data key from the privileged parent (the key-encryption key never comes here);
//! 4. confine: become the management user, drop every capability, no_new_privs, landlock to
//!    the state directory's store/audit/tls/run, seccomp allow-list;
//! 5. open the store and the audit log, provision on first start, load the TLS identity;
//! 6. start the runtime, send the time configuration to the parent (chronyd), start the
//!    clock-step watcher and the synchronisation poller, and serve until SIGTERM.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mamori_audit::log::AuditLog;
use mamori_audit::{Event, EventKind, Outcome, Sink};
use mamori_auth::{AuthService, DeviceFacts, SystemClock};
use mamori_crypto::tls::{self, TlsOptions};
use mamori_http::state::{DeviceIdentity, StatusProvider, TlsControl};
use mamori_http::{AppState, Limits};
use mamori_privsep::client::Parent;
use mamori_privsep::parent::child_writable_dirs;
use mamori_privsep::sandbox::{SandboxConfig, confine};
use mamori_store::Store;
use serde_json::json;

use crate::args::Args;
use crate::provision;

/// The console socket's path under the state directory.
pub fn console_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("run/console.sock")
}

fn host_facts() -> DeviceFacts {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let macs = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
                .map(|s| s.trim().to_string())
                .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
                .collect()
        })
        .unwrap_or_default();
    DeviceFacts {
        hostname,
        macs,
        ..DeviceFacts::default()
    }
}

/// The host's own unicast addresses (no link-local ones), for the certificate when listening on
/// all addresses.
fn host_ips() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<std::net::IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .filter(|ip| match ip {
            std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn bind_console(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by an earlier run would make bind fail; it is ours to replace.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Runs the management process until SIGTERM or SIGINT.
pub fn run(args: &Args, parent: Parent) -> anyhow::Result<()> {
    // Started as a re-exec of `/proc/self/exe`, this process would be called "exe" in `ps` and
    // `/proc/<pid>/comm` (what the port inventory and an administrator see); name it like the
    // parent.
    if let Err(e) = nix::sys::prctl::set_name(c"mamorid") {
        tracing::warn!(error = %e, "the process name could not be set");
    }
    // Nothing this process creates is for anyone else to read (the certificate is widened
    // explicitly).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let state_dir = args.state_dir.clone();
    // 1. Everything read from outside the state directory, before landlock closes it.
    let manufacturing = provision::manufacturing(
        args.provision_file.as_deref(),
        args.model.as_deref(),
        args.serial.as_deref(),
    )?;
    let mut facts = host_facts();
    let host_ips = host_ips();
    let factory_network = args
        .factory_network
        .as_deref()
        .map(crate::network::read_factory)
        .transpose()?;
    // System monitors (S3.1-35 A, F, G, H): their netlink sockets are opened now, while this
    // process still has the privilege to join the nftables group; they start recording once
    // the audit log is open. The software check hashes the running binary, readable after
    // confinement only by its own path.
    let executable = std::fs::read_link("/proc/self/exe").ok();
    let mut software = mamori_monitor::SoftwareConfig::new(
        state_dir.join("audit/software"),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(exe) = &executable {
        software.executable = exe.clone();
    }
    let mut monitor_config = mamori_monitor::Config::all(Some(software));
    if let Some(factory) = &factory_network {
        // The drop summary (S3.1-35 H) listens on the drop-log group, which binding needs
        // CAP_NET_ADMIN for: now, before confinement. Validation keeps every configuration on
        // the group mamori listens on.
        monitor_config =
            monitor_config.with_drops(factory.protection.drop_log.map_or(1, |d| d.group));
    }
    // The firewall monitor reads the parent's nftables notification socket, which the parent
    // takes out of the group around its own loads (they cost the kernel a notification per
    // rule otherwise); in process, the dispatcher's. Without either it opens its own.
    let own_loads = Arc::new(mamori_monitor::OwnLoads::default());
    if let Some(firewall) = monitor_config.firewall.as_mut() {
        match parent.nftables_listener() {
            Ok(fd) => {
                firewall.socket = Some(Arc::new(fd));
                firewall.own = own_loads.clone();
            }
            Err(e) => {
                tracing::warn!(error = %e, "the parent's nftables socket is not available; the firewall monitor opens its own");
            }
        }
    }
    let monitors = mamori_monitor::Monitors::open(monitor_config);
    for (name, error) in monitors.failed() {
        tracing::warn!(monitor = name, %error, "a system monitor could not start");
    }
    // 2. Listeners.
    let tcp = TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    tcp.set_nonblocking(true)?;
    let console = bind_console(&console_socket(&state_dir))?;
    if !parent.is_separated() {
        for d in child_writable_dirs(&state_dir) {
            mamori_durable::create_dir(&d, 0o700)
                .with_context(|| format!("creating {}", d.display()))?;
        }
    }
    // 3. The data key.
    let dek = parent
        .data_key()
        .context("getting the data key from the parent")?;
    // 4. Confinement (only with a privileged parent: a laptop run has nothing to drop).
    let sandbox = if parent.is_separated() {
        let report = confine(&SandboxConfig {
            user: args.user.clone(),
            writable_dirs: child_writable_dirs(&state_dir),
            // The commit-confirm marker notes the boot and its uptime (a restart within the
            // boot is told from a reboot, and a window is measured in a clock no time step
            // moves).
            readable_paths: executable
                .iter()
                .cloned()
                .chain(
                    ["/proc/sys/kernel/random/boot_id", "/proc/uptime"]
                        .into_iter()
                        .map(PathBuf::from),
                )
                .collect(),
        })
        .context("confining the management process")?;
        tracing::info!(?report, "management process confined");
        Some(report)
    } else {
        None
    };
    // 5. Store, audit, provisioning, TLS.
    let audit_master = mamori_privsep::audit_custody::master_key(&dek)?;
    let store = Arc::new(
        Store::open(&state_dir.join("store/mamori.redb"), dek).context("opening the store")?,
    );
    // Created by the privileged side, which keeps its verification key; this process writes.
    let audit = Arc::new(
        AuditLog::open(
            &state_dir.join(mamori_privsep::audit_custody::AUDIT_LOG_DIR),
            &audit_master,
            args.audit_log_config(),
        )
        .context("opening the audit log")?,
    );
    drop(audit_master);
    crate::audit_notices::spawn(audit.clone());
    mamori_durable::create_dir(&state_dir.join("audit/software"), 0o700)
        .context("creating the software record's directory")?;
    // The link monitor's records also tell the network service when a link came back, so it
    // can put back what the kernel removed with the link (routes, IPv6 addresses).
    let links_back = Arc::new(tokio::sync::Notify::new());
    let monitors = Arc::new(monitors.start(Arc::new(crate::network::LinkWatch::new(
        audit.clone(),
        links_back.clone(),
    ))));
    let (identity, label) = provision::provision(&store, &manufacturing, &facts)?;
    facts.model.clone_from(&identity.model);
    facts.serial.clone_from(&identity.serial);
    if let Some(label) = label {
        audit.record(
            Event::new(EventKind::DeviceProvisioned, Outcome::Success)
                .details(json!({"model": identity.model, "serial": identity.serial})),
        );
        // The device's label: printed once, on the console only, and kept only as a hash.
        println!("initial admin password: {label}");
        use std::io::Write;
        std::io::stdout().flush()?;
    }
    let tls_record = provision::tls(
        &store,
        args.listen,
        &host_ips,
        &state_dir.join("tls/device-cert.pem"),
    )?;
    let tls_options: TlsOptions = store
        .get(
            mamori_store::Table::Settings,
            mamori_http::handlers::tls::SETTINGS_KEY,
        )?
        .unwrap_or_default();
    // The device's own certificate, for collectors that ask for a client certificate.
    let client_identity = {
        let (cert_chain, key) =
            mamori_crypto::cert::rustls_parts(&tls_record.cert_der, &tls_record.key_der);
        mamori_forward::ClientIdentity { cert_chain, key }
    };
    let tls_control = Arc::new(TlsControl::new(
        tls_options,
        Box::new(move |options| {
            let (chain, key) =
                mamori_crypto::cert::rustls_parts(&tls_record.cert_der, &tls_record.key_der);
            tls::server_config(chain, key, options)
        }),
    )?);

    let hostname = facts.hostname.clone();
    let auth = Arc::new(AuthService::new(
        store.clone(),
        audit.clone(),
        Arc::new(SystemClock),
        facts,
    )?);
    let parent = Arc::new(parent);
    let status: StatusProvider = {
        let parent = parent.clone();
        let listen = args.listen;
        let monitors = monitors.clone();
        let audit = audit.clone();
        Arc::new(move || {
            let parent_status = parent.status().ok();
            json!({
                "privilege_separation": {
                    "enabled": parent.is_separated(),
                    "mode": if parent.is_separated() { "separated" } else { "single_process" },
                    "parent_pid": parent_status.map(|s| s.parent_pid),
                    "parent_uid": parent_status.map(|s| s.parent_uid),
                    "child_restarts": parent_status.map(|s| s.child_restarts),
                    "child_pid": std::process::id(),
                    "child_uid": nix::unistd::geteuid().as_raw(),
                    "landlock": sandbox.as_ref().map_or("not_applied", |r| r.landlock.as_str()),
                    "seccomp": sandbox.as_ref().is_some_and(|r| r.seccomp),
                    "no_new_privs": sandbox.as_ref().is_some_and(|r| r.no_new_privs),
                },
                "listeners": [
                    {"kind": "https", "address": listen.to_string()},
                    {"kind": "console", "address": "unix:run/console.sock"},
                ],
                "monitors": monitors.status(),
                "audit_log": audit.status(),
            })
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mamori-mgmt")
        .build()?;
    // Audit forwarding: its cursors live in the audit directory, the only one besides the
    // store this process may write.
    let forwarding_settings: mamori_http::handlers::forwarding::ForwardingSettings = store
        .get(
            mamori_store::Table::Settings,
            mamori_http::handlers::forwarding::SETTINGS_KEY,
        )?
        .unwrap_or_default();
    let forwarding = {
        let _in_runtime = runtime.enter();
        crate::forwarding::Control::start(
            audit.clone(),
            hostname,
            client_identity,
            state_dir.join("audit/forward"),
            forwarding_settings,
        )
    };
    // Time: the configuration goes to the parent (chronyd), the step watcher starts (a thread,
    // after confinement), the poller records synchronisation changes.
    let time_config: mamori_time::TimeConfig = store
        .get(
            mamori_store::Table::Settings,
            mamori_http::handlers::time::SETTINGS_KEY,
        )?
        .unwrap_or_default();
    let time = {
        let _in_runtime = runtime.enter();
        crate::time::TimeService::start(parent.clone(), audit.clone(), time_config)
    };
    // The network: the history opened, a commit left pending reverted, the running revision
    // applied, the confirm ticker started.
    let network = match factory_network {
        Some(factory) => {
            let _in_runtime = runtime.enter();
            Some(crate::network::start(
                parent.clone(),
                audit.clone(),
                store.clone(),
                factory,
                args.listen,
                links_back,
                own_loads,
            )?)
        }
        None => None,
    };
    let state = AppState::new(
        auth.clone(),
        audit.clone(),
        DeviceIdentity {
            model: identity.model.clone(),
            serial: identity.serial.clone(),
            firmware_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        status,
        tls_control,
        store,
        forwarding,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
    .with_time(time);
    let state = match network {
        Some(n) => state.with_network(n),
        None => state,
    };
    let state = state.with_ports({
        // The parent reads the socket tables (this process cannot, once confined); the
        // comparison with the listener registry happens here.
        let parent = parent.clone();
        let configured = mamori_inventory::Configured { https: args.listen };
        Arc::new(
            move || -> Result<mamori_http::handlers::ports::Ports, String> {
                let (sockets, truncated) = parent.sockets().map_err(|e| e.to_string())?;
                Ok(mamori_http::handlers::ports::Ports::new(
                    mamori_inventory::check(&configured, sockets),
                    truncated,
                ))
            },
        )
    });
    let state = state.with_dhcp_status({
        // The wan's DHCP clients run under the parent, their lease files are root's.
        let parent = parent.clone();
        Arc::new(move || parent.dhcp_status().map_err(|e| e.to_string()))
    });
    let ui = mamori_webui::Ui::new()?;
    // 6. Serve.
    runtime.block_on(async move {
        let limits = Limits::default();
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let console = tokio::net::UnixListener::from_std(console)?;
        // The HTTPS listener serves the JSON API and the web UI; the console, the API only.
        let router = mamori_webui::attach(
            mamori_http::router(state.clone(), mamori_webui::endpoints()),
            ui,
        );
        tokio::spawn(mamori_http::serve_https(tcp, router, state.clone(), limits));
        tokio::spawn(mamori_http::serve_console(console, state.clone(), limits));
        let sweeper = auth.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tick.tick().await;
                let s = sweeper.clone();
                let _ = tokio::task::spawn_blocking(move || s.sweep()).await;
            }
        });
        audit.record(
            Event::new(EventKind::ServiceStarted, Outcome::Success).details(json!({
                "listeners": [{"kind": "https", "address": args.listen.to_string()}, {"kind": "console"}],
                "privilege_separation": parent.is_separated(),
            })),
        );
        tracing::info!(listen = %args.listen, separated = parent.is_separated(), "management service ready");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        audit.record(Event::new(EventKind::ServiceStopped, Outcome::Success));
        tracing::info!("management service stopping");
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}
