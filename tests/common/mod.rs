//! The harness shared by every suite: a real `mamorid` on a free loopback port with its own
//! state directory, and clients that trust exactly its certificate.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// A password that passes the policy, used after the label password is changed.
pub const ADMIN_PASSWORD: &str = "Fjord-Lantern-58-quiet";

/// Directory holding the workspace's built binaries (target/debug or target/release).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary; fails clearly if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A running daemon.
pub struct Device {
    pub state: PathBuf,
    pub addr: SocketAddr,
    pub label_password: Option<String>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    /// The executable started by [`Device::spawn`]; `None`: the workspace's `mamorid`.
    binary: Option<PathBuf>,
    /// The network namespace the daemon runs in; `None`: the host's, on loopback. Declared
    /// last: dropped (deleted) after `Drop` has stopped the daemon.
    netns: Option<Netns>,
}

/// How to start a [`Device`] other than the default (the workspace's `mamorid`, on loopback
/// in the host's network namespace): `Device::builder().netns().binary(path).start()`.
#[derive(Debug, Default)]
pub struct DeviceBuilder {
    args: Vec<String>,
    binary: Option<PathBuf>,
    netns: bool,
    managed_network: bool,
}

impl DeviceBuilder {
    /// Extra arguments for `mamorid` (for example `--serial X`).
    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self
    }

    /// Runs this executable instead of the workspace's `mamorid` (it must be readable and
    /// executable by the management user, in a directory it can traverse).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Runs the daemon in a network namespace of its own ([`Netns`]), listening on the
    /// namespace's end of a veth pair; clients connect from the host's end. Needs root.
    pub fn netns(mut self) -> Self {
        self.netns = true;
        self
    }

    /// Runs the daemon in a network namespace of its own ([`DeviceBuilder::netns`]) that it
    /// manages (`--factory-network`): a `lan0` (role lan, 192.168.77.1/24; one end of a veth
    /// pair inside the namespace, as a dummy interface would be) and the
    /// namespace's end of the veth pair renamed `mgmt0` (role mgmt, the address clients
    /// connect to), the management port being the listener's, from both zones. The firewall,
    /// addresses and routes it applies stay inside the namespace. Needs root.
    pub fn managed_network(mut self) -> Self {
        self.netns = true;
        self.managed_network = true;
        self
    }

    pub fn start(self) -> Device {
        let mut netns = self.netns.then(Netns::new);
        if self.managed_network
            && let Some(ns) = netns.as_mut()
        {
            // A veth pair inside the namespace stands in for a dummy interface: kernels
            // without the dummy driver exist (a microVM's); the peer just keeps lan0 up.
            ns.run(&[
                "ip",
                "link",
                "add",
                "lan0",
                "type",
                "veth",
                "peer",
                "name",
                "lan0-peer",
            ]);
            ns.run(&["ip", "link", "set", "lan0-peer", "up"]);
            ns.rename_ns_if("mgmt0");
        }
        let addr = match &netns {
            Some(ns) => SocketAddr::from((ns.device_ip, free_port())),
            None => SocketAddr::from(([127, 0, 0, 1], free_port())),
        };
        let mut args = self.args;
        let mut factory = None;
        if self.managed_network
            && let Some(ns) = &netns
        {
            factory = Some(factory_network(ns, addr.port()));
        }
        let mut d = Device::prepare(addr, Vec::new());
        if let Some(cfg) = factory {
            let path = d.state.parent().unwrap().join("factory-network.json");
            std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
            args.extend(["--factory-network".into(), path.display().to_string()]);
        }
        d.extra_args = args;
        d.binary = self.binary;
        d.netns = netns;
        d.spawn();
        d
    }
}

impl Device {
    /// Starts a fresh device in a new temporary state directory.
    pub fn start() -> Device {
        Self::start_with(&[])
    }

    /// Starts a fresh device with extra arguments (for example `--serial X`).
    pub fn start_with(extra: &[&str]) -> Device {
        Self::builder().args(extra).start()
    }

    /// Options for starting a device another way ([`DeviceBuilder`]).
    pub fn builder() -> DeviceBuilder {
        DeviceBuilder::default()
    }

    /// A device in a new temporary state directory, not yet started.
    fn prepare(addr: SocketAddr, extra_args: Vec<String>) -> Device {
        let dir = tempfile::Builder::new()
            .prefix("mamori-test-")
            .tempdir()
            .unwrap();
        // The management user must be able to traverse to the state directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.path().join("state");
        Device {
            state,
            addr,
            label_password: None,
            child: None,
            _dir: Some(dir),
            extra_args,
            binary: None,
            netns: None,
        }
    }

    /// The network namespace the daemon runs in, if it has its own.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// Starts (again) the daemon on this state directory and waits until it serves.
    pub fn spawn(&mut self) {
        let binary = self.binary.clone().unwrap_or_else(|| bin("mamorid"));
        // `ip netns exec` execs the daemon in place (no fork): the child is still mamorid.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.arg("--state-dir")
            .arg(&self.state)
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.extra_args);
        let (child, rx) = launch(cmd);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(pw) = rx.try_recv() {
                self.label_password = Some(pw);
            }
            if self.cert_path().exists() && std::net::TcpStream::connect(self.addr).is_ok() {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mamorid exited during start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "mamorid did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // On first start the label line comes before the listener; catch it if it raced.
        if self.label_password.is_none()
            && let Ok(pw) = rx.recv_timeout(Duration::from_millis(300))
        {
            self.label_password = Some(pw);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.state.join("tls/device-cert.pem")
    }

    pub fn console_socket(&self) -> PathBuf {
        self.state.join("run/console.sock")
    }

    /// The PID of the privileged parent (or the single process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL to the whole process group: a power cut as far as the software can tell.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }

    /// The certificate the device serves, as rustls roots.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.cert_path()).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// An HTTPS client that trusts exactly the device certificate, with a cookie jar. It
    /// connects from 127.0.0.1, or from the host's end of the veth pair for a device in its own
    /// network namespace.
    pub fn client(&self) -> Client {
        match &self.netns {
            Some(ns) => self.client_from(&ns.host_ip.to_string()),
            None => self.client_from("127.0.0.1"),
        }
    }

    /// The same, connecting from another loopback address (127.0.0.0/8 is all ours; a device
    /// in its own network namespace is reached only from its veth's host address).
    pub fn client_from(&self, local: &str) -> Client {
        let tls = mamori_crypto::tls::client_config(self.roots()).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .cookie_store(true)
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Client {
            http,
            base: format!("https://{}", self.addr),
        }
    }

    /// Logs in with the label password, changes it to [`ADMIN_PASSWORD`], and returns the
    /// logged-in client.
    pub fn admin(&self) -> Client {
        let c = self.client();
        let label = self
            .label_password
            .clone()
            .expect("label password seen at first start");
        let r = c.post(
            "/api/v1/auth/login",
            &json!({"username": "admin", "password": label}),
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = c.post(
            "/api/v1/auth/password",
            &json!({"current": label, "new": ADMIN_PASSWORD}),
        );
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        c
    }
}

/// The factory network of a [`DeviceBuilder::managed_network`] device listening on `port`.
pub fn factory_network(ns: &Netns, port: u16) -> Value {
    json!({
        "interfaces": [
            {"name": "lan0", "role": "lan", "addresses": ["192.168.77.1/24"]},
            {"name": ns.ns_if, "role": "mgmt", "addresses": [format!("{}/30", ns.device_ip)]},
        ],
        "firewall": {
            "zones": [
                {"name": "lan", "interfaces": ["lan0"]},
                {"name": "mgmt", "interfaces": [ns.ns_if]},
            ],
        },
        "management": {"port": port, "zones": ["lan", "mgmt"], "sources": ["0.0.0.0/0", "::/0"]},
    })
}

/// Counts the namespaces this test process made (names and addresses are unique per process).
static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace of its own for a device, so that its system monitors (links, upstream,
/// interfaces, nftables) see only what its test does: `mt<pid>-<n>`, with `lo` up and a veth
/// pair `mh<pid><n>` (host, `host_ip`/30) to `mn<pid><n>` (namespace, `device_ip`/30), in
/// 10.200.0.0/16. Deleted on drop, also when a test panics (the device stops its daemon first);
/// namespaces left by test processes that are gone are deleted by the next one.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// The host's end of the veth pair.
    pub host_if: String,
    /// The namespace's end, where the device listens.
    pub ns_if: String,
    pub host_ip: Ipv4Addr,
    pub device_ip: Ipv4Addr,
}

impl Netns {
    pub fn new() -> Netns {
        assert!(is_root(), "a network namespace needs root");
        clean_stale_netns();
        let pid = std::process::id();
        let n = NETNS_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("mt{pid}-{n}");
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["netns", "add", &name]);
        // From here on, drop cleans up whatever was made.
        let mut ns = Netns {
            name,
            host_if: format!("mh{pid}{n}"),
            ns_if: format!("mn{pid}{n}"),
            host_ip: Ipv4Addr::UNSPECIFIED,
            device_ip: Ipv4Addr::UNSPECIFIED,
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        run(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
            "netns",
            &ns.name,
        ]);
        // A /30 of 10.200.0.0/16 from the pid and counter, skipping any the host already has an
        // address in (another test process).
        let start = (pid.wrapping_mul(64).wrapping_add(n)) % 16384;
        let net = (0..16384)
            .map(|i| (start + i) % 16384)
            .map(|k| u32::from(Ipv4Addr::new(10, 200, 0, 0)) + k * 4)
            .find(|&net| {
                let prefix = format!("{}/30", Ipv4Addr::from(net));
                Command::new("ip")
                    .args(["-4", "-o", "addr", "show", "to", &prefix])
                    .output()
                    .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
            })
            .expect("a free /30 in 10.200.0.0/16");
        ns.host_ip = Ipv4Addr::from(net + 1);
        ns.device_ip = Ipv4Addr::from(net + 2);
        run(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        run(&["link", "set", &ns.host_if, "up"]);
        let device = format!("{}/30", ns.device_ip);
        ns.run(&["ip", "addr", "add", &device, "dev", &ns.ns_if]);
        ns.run(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns
    }

    /// Renames the namespace's end of the veth pair (its address stays).
    pub fn rename_ns_if(&mut self, name: &str) {
        let old = self.ns_if.clone();
        self.run(&["ip", "link", "set", &old, "down"]);
        self.run(&["ip", "link", "set", &old, "name", name]);
        self.run(&["ip", "link", "set", name, "up"]);
        self.ns_if = name.to_string();
    }

    /// Runs a command inside the namespace; panics if it fails.
    pub fn run(&self, cmd: &[&str]) -> Output {
        let out = self.try_run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command inside the namespace.
    pub fn try_run(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes with its last process.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Deletes namespaces `mt<pid>-<n>` of test processes that are gone (killed before their
/// guard ran).
fn clean_stale_netns() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, n)) = name.strip_prefix("mt").and_then(|r| r.split_once('-')) else {
            continue;
        };
        if pid.parse::<u32>().is_ok()
            && n.parse::<u32>().is_ok()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
    }
}

/// Starts a prepared `mamorid` command in its own process group (so a kill reaches the parent
/// and the management process), drains its output, and hands back the label password line
/// when the device prints it.
pub fn launch(mut cmd: Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn")
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn mamorid");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pw) = line.strip_prefix("initial admin password: ") {
                let _ = tx.send(pw.to_string());
            }
        }
    });
    // Keep stderr drained (and visible with --nocapture).
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[mamorid] {line}");
        }
    });
    (child, rx)
}

/// Reads a whole answer.
pub fn answer(r: reqwest::blocking::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A blocking HTTPS client bound to one device.
pub struct Client {
    pub http: reqwest::blocking::Client,
    pub base: String,
}

impl Client {
    fn read(r: reqwest::Result<reqwest::blocking::Response>) -> Answer {
        answer(r.expect("request failed at the transport level"))
    }

    pub fn get(&self, path: &str) -> Answer {
        Self::read(self.http.get(format!("{}{}", self.base, path)).send())
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        Self::read(
            self.http
                .post(format!("{}{}", self.base, path))
                .json(body)
                .send(),
        )
    }

    pub fn put(&self, path: &str, body: &Value) -> Answer {
        Self::read(
            self.http
                .put(format!("{}{}", self.base, path))
                .json(body)
                .send(),
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> Answer {
        Self::read(
            self.http
                .patch(format!("{}{}", self.base, path))
                .json(body)
                .send(),
        )
    }

    pub fn delete(&self, path: &str) -> Answer {
        Self::read(self.http.delete(format!("{}{}", self.base, path)).send())
    }

    /// Sends raw bytes with a given content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        Self::read(
            self.http
                .post(format!("{}{}", self.base, path))
                .header("content-type", content_type)
                .body(body)
                .send(),
        )
    }

    pub fn login(&self, username: &str, password: &str) -> Answer {
        self.post(
            "/api/v1/auth/login",
            &json!({"username": username, "password": password}),
        )
    }

    pub fn reauth(&self, password: &str) {
        let r = self.post("/api/v1/auth/reauth", &json!({"password": password}));
        assert_eq!(r.status, StatusCode::OK, "reauth: {}", r.text);
    }
}

/// Waits until `f` is true or the timeout passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
