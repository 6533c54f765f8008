//! Helpers for the tests that run real chronyd processes: installing chrony, free loopback
//! ports, NTS certificates, and a loopback NTP server.
//!
//! Every chronyd a test starts runs with `-x` (it never touches the machine's clock), binds
//! 127.0.0.1 only, and is given only 127.0.0.1 as a server. No test ever names another
//! address.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};

/// The chrony user of Debian's package.
pub const CHRONY_USER: &str = "_chrony";

static INSTALL: Mutex<()> = Mutex::new(());

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "chrony"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs Debian's chrony if it is missing (as scripts/test installs its packages), without
/// letting the package start its own service: that one would set the machine's clock from
/// public servers. `policy-rc.d` answering 101 forbids service starts during the install.
pub fn ensure_chrony() -> Result<(), String> {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed() {
        return Ok(());
    }
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(
            policy,
            "#!/bin/sh\n# mamori tests: no service starts\nexit 101\n",
        )
        .map_err(|e| format!("writing {}: {e}", policy.display()))?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {args:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let result = apt(&["update", "-qq"])
        .and_then(|()| apt(&["install", "-y", "-qq", "--no-install-recommends", "chrony"]));
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    result?;
    if installed() {
        Ok(())
    } else {
        Err("chrony is still not installed".into())
    }
}

/// Whether the tests that need root and chrony can run; says why not otherwise.
pub fn can_run() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "needs root (chronyd drops to its own user; the clock needs CAP_SYS_TIME)".into(),
        );
    }
    ensure_chrony()
}

/// A free UDP port on 127.0.0.1 (for an NTP server).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A free TCP port on 127.0.0.1 (for NTS-KE).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A temporary directory the chrony user can traverse.
pub fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn chrony_user() -> User {
    User::from_name(CHRONY_USER)
        .unwrap()
        .expect("the chrony user")
}

fn give_to_chrony(path: &Path) {
    let u = chrony_user();
    std::os::unix::fs::chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
}

/// An NTS server identity: a CA and a certificate for 127.0.0.1 it signed.
pub struct NtsIdentity {
    /// The CA certificate (the trust anchor a client needs).
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server key.
    pub key_pem: String,
}

/// A fresh ECDSA P-256 CA and a server certificate for IP 127.0.0.1.
pub fn nts_identity(name: &str) -> NtsIdentity {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        PKCS_ECDSA_P256_SHA256, SanType,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap())
            .unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.subject_alt_names = vec![SanType::IpAddress(Ipv4Addr::LOCALHOST.into())];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    NtsIdentity {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A chronyd serving its own clock (`local stratum 8`) on 127.0.0.1, optionally with NTS.
/// Killed when dropped.
pub struct LoopbackNtpServer {
    child: Option<Child>,
    pub port: u16,
    pub nts_port: Option<u16>,
    pub dir: PathBuf,
}

impl LoopbackNtpServer {
    /// Starts it in `dir` (created, given to the chrony user) and waits until it listens.
    pub fn start(dir: &Path, nts: Option<&NtsIdentity>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        give_to_chrony(dir);
        let port = free_udp_port();
        let mut conf = format!(
            "local stratum 8\n\
             allow 127.0.0.1\n\
             bindaddress 127.0.0.1\n\
             port {port}\n\
             cmdport 0\n\
             bindcmdaddress /\n\
             pidfile {dir}/server.pid\n\
             driftfile {dir}/drift\n",
            dir = dir.display()
        );
        let mut nts_port = None;
        if let Some(id) = nts {
            let p = free_tcp_port();
            nts_port = Some(p);
            std::fs::write(dir.join("cert.pem"), &id.cert_pem).unwrap();
            std::fs::write(dir.join("key.pem"), &id.key_pem).unwrap();
            std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
            give_to_chrony(&dir.join("key.pem"));
            conf.push_str(&format!(
                "ntsserverkey {dir}/key.pem\n\
                 ntsservercert {dir}/cert.pem\n\
                 ntsport {p}\n\
                 ntsdumpdir {dir}/nts\n",
                dir = dir.display()
            ));
        }
        let conf_path = dir.join("server.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new("/usr/sbin/chronyd")
            // -x: never touch the machine's clock.
            .args(["-x", "-d", "-F", "1", "-u", CHRONY_USER, "-f"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self {
            child: Some(child),
            port,
            nts_port,
            dir: dir.to_path_buf(),
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let needle = format!(":{:04X} ", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let udp = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if udp
                .lines()
                .any(|l| l.contains(&format!("0100007F{needle}")))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the loopback NTP server did not listen:\n{}", self.log());
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Stops it (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LoopbackNtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
