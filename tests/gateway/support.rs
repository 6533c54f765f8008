//! The gateway under test: a lab (`mamori_lab`) with mamorid running in its gateway namespace
//! and managing its network from the lab's factory configuration, an admin client on the
//! management link, and probes from the lab's hosts.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mamori_lab::{DeviceSpec, Lab, LabName, LabSpec, Mgmt, Role, UpReport};
use nix::sched::{CloneFlags, setns};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use crate::common::eventually;
use crate::common::{ADMIN_PASSWORD, Answer, Client, bin};

static LABS: AtomicU32 = AtomicU32::new(0);

/// The lan host 1, lan host 2 and wan host addresses, and the gateway's.
pub const LAN1: &str = "192.168.77.10";
pub const GW_LAN: &str = "192.168.77.1";
pub const GW_WAN: &str = "203.0.113.2";
pub const GW_LAN_V6: &str = "fd6d:616d:6f72:2::1";
pub const GW_WAN_V6: &str = "fd6d:616d:6f72:1::2";

/// A lab with its device; taken down on drop, also when a test panics.
pub struct Gateway {
    pub name: LabName,
    pub report: UpReport,
    pub label: Option<String>,
}

impl Gateway {
    /// A new lab `g<pid><n>` with mamorid managing the gateway.
    pub fn up() -> Gateway {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the gateway tests need root"
        );
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let name = LabName::new(&format!("g{}{n}", std::process::id() % 100_000)).unwrap();
        // A lab left by a killed earlier run of this name would be repaired by `up`.
        let report = Lab::up(&spec(&name)).unwrap_or_else(|e| panic!("lab up: {e}"));
        let label = report
            .device
            .as_ref()
            .and_then(|d| d.label_password.clone());
        Gateway {
            name,
            report,
            label,
        }
    }

    pub fn mgmt(&self) -> &Mgmt {
        &self.report.mgmt
    }

    pub fn netns(&self, role: Role) -> String {
        self.name.netns(role)
    }

    /// The device's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.report.device.as_ref().unwrap().state_dir
    }

    /// An HTTPS client on the management link, trusting exactly the device's certificate.
    pub fn client(&self) -> Client {
        let cert = self.state_dir().join("tls/device-cert.pem");
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        for c in CertificateDer::pem_file_iter(&cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = mamori_crypto::tls::client_config(roots).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .cookie_store(true)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Client {
            http,
            base: format!("https://{}", self.mgmt().gw_v4),
        }
    }

    /// Logs in as admin (changing the label password the first time) with a fresh
    /// re-authentication.
    pub fn admin(&mut self) -> Client {
        let c = self.client();
        if let Some(label) = self.label.take() {
            let r = c.login("admin", &label);
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let r = c.post(
                "/api/v1/auth/password",
                &json!({"current": label, "new": ADMIN_PASSWORD}),
            );
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        } else {
            let r = c.login("admin", ADMIN_PASSWORD);
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        c.reauth(ADMIN_PASSWORD);
        c
    }

    /// SIGKILL to the device's whole process group: a power cut as far as mamori can tell.
    pub fn kill9(&self) {
        let pid = self.report.device.as_ref().unwrap().pid;
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(
            eventually(Duration::from_secs(10), || !Path::new(&format!(
                "/proc/{pid}"
            ))
            .exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z"))),
            "the device did not die"
        );
    }

    /// `Lab::up` once more for this lab, as `mamori lab up --with-device` run again.
    pub fn up_again(&self) -> UpReport {
        Lab::up(&spec(&self.name)).unwrap_or_else(|e| panic!("lab up again: {e}"))
    }

    /// What a rebuild would change: the inode of each namespace of the lab and the interface
    /// index of each of its links (the host's end of the management link too).
    pub fn identity(&self) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut links = |ns: Option<&str>, place: String| {
            let mut cmd = Command::new("ip");
            if let Some(ns) = ns {
                cmd.args(["-n", ns]);
            }
            let o = cmd.args(["-j", "link", "show"]).output().unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            for l in v.as_array().unwrap() {
                let name = l["ifname"].as_str().unwrap();
                if ns.is_some() || name == self.name.host_if() {
                    out.push((format!("{place}/{name}"), l["ifindex"].as_u64().unwrap()));
                }
            }
        };
        links(None, "host".into());
        for role in Role::ALL {
            let ns = self.netns(role);
            links(Some(&ns), ns.clone());
        }
        for role in Role::ALL {
            let ns = self.netns(role);
            let ino = std::fs::metadata(Path::new("/run/netns").join(&ns))
                .unwrap()
                .ino();
            out.push((ns, ino));
        }
        out
    }

    /// Starts the device again on the same state directory (the lab stays).
    pub fn restart(&mut self) {
        let mut s = spec(&self.name);
        if let Some(d) = s.device.as_mut() {
            d.state_dir = Some(self.state_dir().to_path_buf());
        }
        let report = Lab::up(&s).unwrap_or_else(|e| panic!("lab up (restart): {e}"));
        assert!(report.device.as_ref().unwrap().started);
        self.report = report;
    }

    /// `nft -s list table inet mamori` (and the NAT table) in the gateway, without counters
    /// and without the SYN limiter's dynamic entries (traffic adds and expires those).
    pub fn ruleset(&self) -> String {
        let mut out = String::new();
        for t in ["mamori", "mamori_nat"] {
            let table = run_in(
                &self.netns(Role::Gw),
                &["nft", "-s", "list", "table", "inet", t],
            );
            let dynamic = |l: &str| l.contains("limit rate over") && !l.contains("add @");
            for line in table.lines().filter(|l| !dynamic(l)) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The gateway's addresses and routes (JSON of `ip`, without lifetimes and counters that
    /// change by themselves).
    pub fn addresses_and_routes(&self) -> String {
        let ns = self.netns(Role::Gw);
        // Link-local addresses and their routes are the kernel's (regenerated, reordered, when
        // a link comes back), not the configuration's.
        let mut out = String::new();
        for line in run_in(&ns, &["ip", "-br", "addr"]).lines() {
            let kept: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !w.starts_with("fe80:"))
                .collect();
            out.push_str(&kept.join(" "));
            out.push('\n');
        }
        for family in ["-4", "-6"] {
            let routes = run_in(&ns, &["ip", family, "route", "show", "table", "main"]);
            for line in routes.lines().filter(|l| !l.starts_with("fe80::")) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The running configuration and its revision.
    pub fn running(&self, c: &Client) -> (u64, Value) {
        let r = c.get("/api/v1/config");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        (
            r.body["revision"]["id"].as_u64().unwrap(),
            r.body["config"].clone(),
        )
    }

    /// Commits `config` with a confirm window of `seconds` (0: none).
    pub fn commit(&self, c: &Client, config: &Value, seconds: u32, comment: &str) -> Answer {
        c.post(
            "/api/v1/config/commit",
            &json!({"config": config, "comment": comment, "confirm_seconds": seconds}),
        )
    }

    /// Audit events of one kind, newest first.
    pub fn events(&self, c: &Client, kind: &str) -> Vec<Value> {
        let r = c.get(&format!("/api/v1/audit/events?event={kind}&limit=100"));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["events"]
            .as_array()
            .or_else(|| r.body.as_array())
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.name) {
            eprintln!("lab {} down: {e}", self.name);
        }
    }
}

fn spec(name: &LabName) -> LabSpec {
    LabSpec {
        name: name.clone(),
        device: Some(DeviceSpec {
            mamorid: bin("mamorid"),
            state_dir: None,
            port: mamori_lab::DEFAULT_PORT,
            manage_network: true,
        }),
    }
}

/// Runs a command in a namespace; its standard output (panics if it fails).
pub fn run_in(ns: &str, argv: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a TCP connection from namespace `ns` to `addr:port` is accepted within `timeout`.
pub fn connects(ns: &str, addr: &str, port: u16, timeout: Duration) -> bool {
    let ns = ns.to_owned();
    let target = SocketAddr::new(addr.parse::<IpAddr>().unwrap(), port);
    std::thread::spawn(move || {
        let f = std::fs::File::open(Path::new("/run/netns").join(&ns)).unwrap();
        setns(f, CloneFlags::CLONE_NEWNET).unwrap();
        TcpStream::connect_timeout(&target, timeout).is_ok()
    })
    .join()
    .unwrap()
}

/// An HTTPS request from namespace `ns` with curl, checking the device's certificate; the
/// HTTP status, or `None` when no answer came within `timeout`.
pub fn https_status(ns: &str, cert: &Path, url: &str, timeout: Duration) -> Option<u16> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(cert)
        .args(["--max-time", &format!("{:.1}", timeout.as_secs_f64())])
        .arg("-g")
        .arg(url)
        .output()
        .unwrap();
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (code != 0).then_some(code)
}

/// A TCP server in namespace `ns` on `addr:port` answering every connection with a short HTTP
/// response (python3 without `http.server`, whose reverse DNS lookup at bind time hangs in a
/// namespace without a resolver). Killed on drop.
pub struct TcpServer(std::process::Child);

impl TcpServer {
    pub fn start(ns: &str, addr: &str, port: u16) -> TcpServer {
        const SCRIPT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')
    c.close()
"#;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", SCRIPT, addr])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        TcpServer(child)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
