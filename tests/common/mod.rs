//! The harness shared by every suite: a real `mamorid` on a free loopback port with its own
//! state directory, and clients that trust exactly its certificate.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
}

impl Device {
    /// Starts a fresh device in a new temporary state directory.
    pub fn start() -> Device {
        Self::start_with(&[])
    }

    /// Starts a fresh device with extra arguments (for example `--serial X`).
    pub fn start_with(extra: &[&str]) -> Device {
        let dir = tempfile::Builder::new()
            .prefix("mamori-test-")
            .tempdir()
            .unwrap();
        // The management user must be able to traverse to the state directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.path().join("state");
        let mut d = Device {
            state,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            label_password: None,
            child: None,
            _dir: Some(dir),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    /// Starts (again) the daemon on this state directory and waits until it serves.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(bin("mamorid"));
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

    /// An HTTPS client that trusts exactly the device certificate, with a cookie jar.
    pub fn client(&self) -> Client {
        self.client_from("127.0.0.1")
    }

    /// The same, connecting from another loopback address (127.0.0.0/8 is all ours).
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
