//! Helpers of the security and durability suites, on top of the shared harness: raw clients
//! without a cookie jar, the console socket, the audit log, settings changes, bound TCP sockets,
//! single-algorithm TLS handshakes and daemons started in ways the harness does not offer (IPv6,
//! a non-root user).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::common::*;

/// Words that must never reach an unauthenticated client: the software, its parts and the OS.
pub const SOFTWARE_WORDS: &[&str] = &[
    "mamori", "0.1.0", "rustls", "hyper", "axum", "tokio", "serde", "linux", "debian",
];

/// Security headers every HTTP answer of the management service carries.
pub fn assert_security_headers(what: &str, headers: &reqwest::header::HeaderMap) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        get("strict-transport-security").starts_with("max-age="),
        "{what}: HSTS missing: {headers:?}"
    );
    let csp = get("content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: CSP is {csp:?}"
    );
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    assert!(headers.get("server").is_none(), "{what}: Server header");
}

/// Fails if an answer (status line aside) names any of `words`, case-insensitively.
pub fn assert_reveals_nothing(what: &str, a: &Answer, words: &[String]) {
    let mut all = a.text.to_lowercase();
    for (name, value) in &a.headers {
        all.push('\n');
        all.push_str(name.as_str());
        all.push_str(": ");
        all.push_str(&String::from_utf8_lossy(value.as_bytes()).to_lowercase());
    }
    for w in words {
        assert!(
            !all.contains(&w.to_lowercase()),
            "{what}: the answer names {w:?}:\n{all}"
        );
    }
}

/// A client that trusts exactly the device certificate at `cert`, without a cookie jar, so
/// tests set `Cookie` headers themselves.
pub fn raw_client_for(cert: &Path, local: &str) -> reqwest::blocking::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = mamori_crypto::tls::client_config(roots).unwrap();
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// [`raw_client_for`] a harness device.
pub fn raw_client(d: &Device, local: &str) -> reqwest::blocking::Client {
    raw_client_for(&d.cert_path(), local)
}

/// The `__Host-mamori-session` value an answer sets, if any.
pub fn set_session_cookie(a: &Answer) -> Option<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix("__Host-mamori-session=")
                .map(str::to_string)
        })
}

/// A source address of its own for the `n`-th use: 127.1.x.y, away from the 127.0.0.x
/// addresses the tests name on purpose.
pub fn fresh_source(n: u32) -> String {
    format!("127.1.{}.{}", (n / 250) % 250, n % 250 + 1)
}

/// The newest audit events (oldest first).
pub fn audit(admin: &Client) -> Vec<Value> {
    let r = admin.get("/api/v1/audit/events?limit=1000");
    assert_eq!(r.status, StatusCode::OK, "audit: {}", r.text);
    r.body.as_array().cloned().unwrap_or_default()
}

/// Audit events of one kind.
pub fn events<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == kind).collect()
}

/// Re-authenticates and changes the authentication settings with `change`.
pub fn set_auth_settings(admin: &Client, change: impl FnOnce(&mut Value)) {
    let r = admin.get("/api/v1/settings/auth");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut s = r.body;
    change(&mut s);
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put("/api/v1/settings/auth", &s);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "settings: {}", r.text);
}

/// A user's entry in the user list.
pub fn user_entry(admin: &Client, name: &str) -> Option<Value> {
    let r = admin.get("/api/v1/users");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .cloned()
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until `/healthz` answers `ok` over TLS.
pub fn wait_healthy(d: &Device) {
    let c = raw_client(d, "127.0.0.1");
    assert!(
        eventually(Duration::from_secs(30), || {
            c.get(d.url("/healthz"))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t == "ok")
        }),
        "the device did not become healthy"
    );
}

/// A median, in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------- console

/// An answer read from the console socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl RawAnswer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                v.split(';')
                    .next()?
                    .trim()
                    .strip_prefix("__Host-mamori-session=")
                    .map(str::to_string)
            })
    }
}

/// Sends raw bytes to the console socket and reads the answer until the server closes.
pub fn console_raw(socket: &Path, request: &[u8]) -> RawAnswer {
    let mut s = UnixStream::connect(socket).expect("connect to the console socket");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer on the console: {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "chunked console answers are not parsed here"
    );
    RawAnswer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        text: body.to_string(),
    }
}

/// One HTTP/1.1 request on the console socket, optionally with a JSON body and a session.
pub fn console(
    d: &Device,
    method: &str,
    path: &str,
    body: Option<&Value>,
    session: Option<&str>,
) -> RawAnswer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if let Some(s) = session {
        req.push_str(&format!("Cookie: __Host-mamori-session={s}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    console_raw(&d.console_socket(), req.as_bytes())
}

/// Logs in on the console.
pub fn console_login(d: &Device, username: &str, password: &str) -> RawAnswer {
    console(
        d,
        "POST",
        "/api/v1/auth/login",
        Some(&json!({"username": username, "password": password})),
        None,
    )
}

// ------------------------------------------------------------------------------- sockets, TLS

/// A TCP connection to `addr` from the local address `local`.
pub fn tcp_from(local: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let local: IpAddr = local.parse().unwrap();
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.bind(&SocketAddr::new(local, 0).into())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_write_timeout(Some(Duration::from_secs(15)))?;
    Ok(s)
}

/// What a completed handshake negotiated.
#[derive(Debug)]
pub struct Negotiated {
    pub version: rustls::ProtocolVersion,
    pub suite: rustls::CipherSuite,
    pub group: Option<rustls::NamedGroup>,
}

/// A rustls client offering exactly `suites` and `groups` over `versions`, trusting `roots`.
pub fn client_config_with(
    roots: rustls::RootCertStore,
    suites: Vec<rustls::SupportedCipherSuite>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites,
        kx_groups: groups,
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Runs a TLS handshake from `local` to `addr` and, if it completes, asks for `/healthz` over
/// it. Errors carry the reason (alert, reset, ...).
pub fn handshake(
    addr: SocketAddr,
    local: &str,
    config: rustls::ClientConfig,
) -> Result<Negotiated, String> {
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = tcp_from(local, addr).map_err(|e| format!("tcp: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let negotiated = Negotiated {
        version: tls.conn.protocol_version().unwrap(),
        suite: tls.conn.negotiated_cipher_suite().unwrap().suite(),
        group: tls.conn.negotiated_key_exchange_group().map(|g| g.name()),
    };
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    if !(text.starts_with("HTTP/1.1 200") && text.ends_with("ok")) {
        return Err(format!("handshake done but /healthz answered {text:?}"));
    }
    Ok(negotiated)
}

/// Runs `openssl` with `args` (stdin closed) and returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (Debian package openssl; scripts/test installs it)");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

// ------------------------------------------------------------------------------- /proc

/// A field of /proc/PID/status, e.g. `Uid` or `CapEff`.
pub fn proc_status(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every process id.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("PPid:"))
                        .map(|v| v.trim().parse::<u32>().ok() == Some(parent))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Socket inodes a process holds open.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            t.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// One row of /proc/net/{tcp,tcp6,udp,udp6}.
#[derive(Debug, Clone)]
pub struct NetRow {
    pub table: &'static str,
    pub local_port: u16,
    pub state: String,
    pub inode: u64,
}

/// Every TCP and UDP socket of this network namespace, v4 and v6.
pub fn net_rows() -> Vec<NetRow> {
    let mut rows = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                .unwrap_or(0);
            rows.push(NetRow {
                table,
                local_port: port,
                state: f[3].to_string(),
                inode: f[9].parse().unwrap_or(0),
            });
        }
    }
    rows
}

// ------------------------------------------------------------------------------- daemons

/// A daemon started outside the harness: on another address family or as another user.
pub struct Daemon {
    pub state: PathBuf,
    pub addr: SocketAddr,
    pub label_password: Option<String>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `mamorid` listening on `listen` (port 0: a free one), run directly as root or, with
    /// `user`, through `runuser -u USER` with a state directory that user owns.
    pub fn start(listen: IpAddr, user: Option<&str>) -> Daemon {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("mamori-sec-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.path().join("state");
        if let Some(u) = user {
            std::fs::create_dir(&state).unwrap();
            let pw = nix::unistd::User::from_name(u)
                .unwrap()
                .expect("user exists");
            nix::unistd::chown(&state, Some(pw.uid), Some(pw.gid)).unwrap();
        }
        let port = {
            let l = std::net::TcpListener::bind(SocketAddr::new(listen, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = SocketAddr::new(listen, port);
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(bin("mamorid"));
                c
            }
            None => Command::new(bin("mamorid")),
        };
        cmd.arg("--state-dir")
            .arg(&state)
            .arg("--listen")
            .arg(addr.to_string());
        let (child, rx) = launch(cmd);
        let mut d = Daemon {
            state,
            addr,
            label_password: None,
            child: Some(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.label_password.is_none() {
            if let Ok(pw) = rx.recv_timeout(Duration::from_millis(100)) {
                d.label_password = Some(pw);
            }
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mamorid exited during start: {status}");
            }
            assert!(Instant::now() < deadline, "no label password within 30 s");
        }
        let cert = d.state.join("tls/device-cert.pem");
        assert!(
            eventually(Duration::from_secs(30), || {
                // The label is printed before the certificate is written.
                cert.exists()
                    && raw_client_for(&cert, d.local_ip())
                        .get(format!("https://{}/healthz", d.addr))
                        .send()
                        .is_ok_and(|r| r.status() == StatusCode::OK)
            }),
            "mamorid did not serve within 30 s"
        );
        d
    }

    fn local_ip(&self) -> &'static str {
        if self.addr.is_ipv6() {
            "::1"
        } else {
            "127.0.0.1"
        }
    }

    /// The PID of what was started (`runuser` when started as another user).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// A client with a cookie jar from `local`.
    pub fn client_from(&self, local: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.state.join("tls/device-cert.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = mamori_crypto::tls::client_config(roots).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .cookie_store(true)
            .local_address(local.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Client {
            http,
            base: format!("https://{}", self.addr),
        }
    }

    /// Logs in with the label password, sets [`ADMIN_PASSWORD`] and returns the client.
    pub fn admin(&self) -> Client {
        let c = self.client_from(self.local_ip());
        let label = self.label_password.clone().unwrap();
        let r = c.login("admin", &label);
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = c.post(
            "/api/v1/auth/password",
            &json!({"current": label, "new": ADMIN_PASSWORD}),
        );
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        c
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------------------- files

/// Every regular file beneath `dir`.
pub fn files_beneath(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The workspace root (tests/..).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
