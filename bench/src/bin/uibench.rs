//! `uibench`: page weight and server time of the web UI of a real `mamorid`, with nginx serving
//! the same HTML bytes as a reference.
//!
//! It starts `mamorid` in device mode (as root) on a new state directory and a free loopback
//! port, and logs in through the UI as a browser does: `GET /ui/login` (which sets the pre-login
//! CSRF cookie `__Host-csrf` and puts the same value in the form), `POST /ui/login` with the
//! label password, the setup page, and `POST /ui/setup` to replace the label password. Every
//! request carries what a browser sends (`Sec-Fetch-*`, `Origin` on POST, the cookies it was
//! given, `Accept-Encoding`), over HTTP/1.1 on one keep-alive TLS connection per browser.
//!
//! For each page it prints:
//! - `weight ...`: the HTML, and every stylesheet, script and image the HTML references
//!   (`<link href>`, `<script src>`, `<img src>`, and `url()` in the stylesheets), in bytes as
//!   decoded, in Japanese and in English; the bytes read from the TCP socket for all of them (TLS
//!   records: HTTP heads, bodies and record overhead) for a first visit; and the
//!   `Content-Encoding` the server chose although the client offered gzip, br and zstd.
//! - `time ...`: `--count` sequential GETs of the page on one keep-alive connection, each timed
//!   from writing the request to reading the whole answer (p50/p95/p99, nearest rank), and the
//!   server's CPU time per request. With `--nginx-addr`, the same HTML bytes (written to
//!   `--nginx-root` as a static file) are fetched from nginx on its own keep-alive connection,
//!   alternating request by request with mamori, so drifting machine load hits both alike.
//!
//! And also the live password check (`POST /ui/password/check`, form in, JSON out) on the setup
//! page, and a full login (`POST /ui/login` with the password, the 303, and the dashboard it
//! leads to).
//!
//! Everything it starts is stopped before it returns, also on error. nginx is started (and
//! stopped) by `scripts/bench`, with the TLS settings of its other comparison.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use mamori_bench::{http1, procfs, stats, tls};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Page weight and server time of the web UI.
#[derive(Debug, Parser)]
struct Args {
    /// The `mamorid` binary to measure.
    #[arg(long)]
    mamorid: PathBuf,
    /// Timed GETs per page (after the warm-up).
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Untimed GETs per page first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Timed live password checks (each of an acceptable and a refused candidate).
    #[arg(long, default_value_t = 100)]
    checks: usize,
    /// Timed full logins.
    #[arg(long, default_value_t = 10)]
    logins: usize,
    /// Language of the timed pages (`ja` or `en`); the weight is given in both.
    #[arg(long, default_value = "ja")]
    lang: String,
    /// nginx to compare with: its address (HTTPS).
    #[arg(long, requires_all = ["nginx_cert", "nginx_root"])]
    nginx_addr: Option<SocketAddr>,
    /// nginx's certificate (PEM).
    #[arg(long)]
    nginx_cert: Option<PathBuf>,
    /// The directory nginx serves at `/`: the pages' HTML and the assets are written there.
    #[arg(long)]
    nginx_root: Option<PathBuf>,
    /// nginx's master process, for its CPU time (master and workers).
    #[arg(long)]
    nginx_pid: Option<u32>,
    /// Pins this client to the first CPU and both servers (every thread) to the last, with
    /// `taskset`, so every request wakes the server on the other CPU. Unpinned, the scheduler
    /// sometimes runs client and server on one CPU and sometimes on two, and a whole series
    /// comes out 2-3x faster or slower by that alone.
    #[arg(long)]
    pin: bool,
}

/// The longest a start may take.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The longest a stop may take before the process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Each answer must come within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The page-weight target (issue 3): HTML + CSS + JS of a page.
const BUDGET_BYTES: usize = 100 * 1024;

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---- the daemon

/// A running `mamorid` on a new state directory; stopped when dropped.
struct Device {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    label: mpsc::Receiver<String>,
}

impl Device {
    fn start(mamorid: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mamori-uibench-")
            .tempdir()
            .context("creating a temporary directory")?;
        // The management user must be able to walk to the state directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = std::fs::File::create(dir.path().join("mamorid.log"))?;
        let mut child = Command::new(std::path::absolute(mamorid)?)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {}", mamorid.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, label) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(pw) = line.strip_prefix("initial admin password: ") {
                    let _ = tx.send(pw.to_owned());
                }
            }
        });
        Ok(Self {
            child: Some(child),
            dir,
            addr,
            label,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("state/tls/device-cert.pem")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("mamorid.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Waits until `GET /healthz` answers 200 over TLS; returns the client configuration that
    /// trusts the device's certificate.
    async fn wait_serving(&mut self) -> anyhow::Result<Arc<ClientConfig>> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "mamorid exited during start ({status}):\n{}",
                    self.log_tail()
                );
            }
            if started.elapsed() > START_DEADLINE {
                bail!(
                    "mamorid did not serve within {START_DEADLINE:?}:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(cfg) = tls::client_config(&self.cert_path()) {
                let probe = async {
                    let mut c = Conn::open(cfg.clone(), self.addr).await?;
                    let (r, _, _) = c
                        .exchange(&http1::get("127.0.0.1", "/healthz", true))
                        .await?;
                    anyhow::Ok(r.status)
                };
                if let Ok(Ok(200)) = tokio::time::timeout(Duration::from_secs(5), probe).await {
                    return Ok(cfg);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn label_password(&self) -> anyhow::Result<String> {
        self.label
            .recv_timeout(Duration::from_secs(5))
            .context("no label password on stdout")
    }

    /// The parent and the management process (read once the device serves).
    fn processes(&self) -> Vec<u32> {
        procfs::with_children(self.pid())
    }

    /// SIGTERM to the parent, then SIGKILL to whatever is left of its group.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time of these processes' threads together, in ns: the scheduler's own account
/// (`/proc/PID/task/TID/schedstat`, first field), exact where `utime`/`stime` count 10 ms
/// ticks. Threads that have ended are not counted; the servers' threads live as long as they do.
fn cpu_ns(pids: &[u32]) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.filter_map(Result::ok) {
            let ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            total += ns.unwrap_or(0);
        }
    }
    total
}

// ---- a TLS connection that counts the bytes on the socket

/// A stream that counts the bytes read from it.
struct Counting<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) {
            let n = buf.filled().len().saturating_sub(before);
            this.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One keep-alive HTTP/1.1 connection over TLS.
struct Conn {
    stream: TlsStream<Counting<TcpStream>>,
    buf: Vec<u8>,
    read: Arc<AtomicU64>,
    protocol: String,
}

impl Conn {
    async fn open(config: Arc<ClientConfig>, addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: tcp,
            read: read.clone(),
        };
        let stream = TlsConnector::from(config)
            .connect(tls::server_name("127.0.0.1")?, counted)
            .await?;
        let (_, session) = stream.get_ref();
        let protocol = match (
            session.protocol_version(),
            session.negotiated_cipher_suite(),
        ) {
            (Some(v), Some(s)) => format!("{v:?},{:?}", s.suite()),
            _ => "unknown".to_owned(),
        };
        Ok(Self {
            stream,
            buf: Vec::new(),
            read,
            protocol,
        })
    }

    /// Sends `request`, reads the answer; returns it, the bytes read from the socket for it,
    /// and the time from writing to having the whole answer, in ms.
    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(http1::Response, u64, f64)> {
        let before = self.read.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            REQUEST_TIMEOUT,
            http1::exchange(&mut self.stream, &mut self.buf, request),
        )
        .await
        .context("no answer in time")??;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let wire = self.read.load(Ordering::Relaxed) - before;
        Ok((r, wire, ms))
    }

    /// [`Conn::exchange`] on a connection that must stay open for the next request.
    async fn keep(&mut self, request: &[u8]) -> anyhow::Result<(http1::Response, u64, f64)> {
        let (r, wire, ms) = self.exchange(request).await?;
        ensure!(
            r.header("connection") != Some("close"),
            "the server closed the keep-alive connection"
        );
        Ok((r, wire, ms))
    }
}

// ---- a browser

/// What a browser sends: its cookies, its language, fetch metadata.
struct Browser {
    conn: Conn,
    authority: String,
    jar: BTreeMap<String, String>,
    lang: String,
}

/// One answer as the browser got it.
struct Hit {
    resp: http1::Response,
    wire: u64,
    ms: f64,
}

impl Hit {
    fn location(&self) -> &str {
        self.resp.header("location").unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.resp.body).into_owned()
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    async fn open(config: Arc<ClientConfig>, addr: SocketAddr, lang: &str) -> anyhow::Result<Self> {
        Ok(Self {
            conn: Conn::open(config, addr).await?,
            authority: addr.to_string(),
            jar: BTreeMap::new(),
            lang: lang.to_owned(),
        })
    }

    /// The request a browser sends for a navigation (`GET`) or a form post (`POST` with a
    /// urlencoded body), or a subresource (`dest` = `style`, `script`, `image`).
    fn request(&self, method: &str, path: &str, body: Option<&str>, dest: &str) -> Vec<u8> {
        let accept = match dest {
            "document" => "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "style" => "text/css,*/*;q=0.1",
            "image" => "image/avif,image/webp,image/svg+xml,image/*,*/*;q=0.8",
            "empty" => "*/*",
            _ => "*/*",
        };
        let mode = match dest {
            "document" => "navigate",
            "empty" => "cors",
            _ => "no-cors",
        };
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mamori-uibench\r\n\
             Accept: {accept}\r\nAccept-Language: {}\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
             Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: {mode}\r\nSec-Fetch-Dest: {dest}\r\n\
             Connection: keep-alive\r\n",
            self.authority, self.lang
        );
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        match body {
            Some(b) => r.push_str(&format!(
                "Origin: https://{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{b}",
                self.authority,
                b.len()
            )),
            None => r.push_str("\r\n"),
        }
        r.into_bytes()
    }

    /// Sends a request and keeps the cookies the answer sets (or clears).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        dest: &str,
    ) -> anyhow::Result<Hit> {
        let request = self.request(method, path, body, dest);
        let (resp, wire, ms) = self
            .conn
            .keep(&request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        for (name, value) in &resp.headers {
            if name != "set-cookie" {
                continue;
            }
            let mut attrs = value.split(';');
            let Some((k, v)) = attrs.next().and_then(|kv| kv.trim().split_once('=')) else {
                continue;
            };
            let expired = attrs.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if expired || v.is_empty() {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
        Ok(Hit { resp, wire, ms })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<Hit> {
        self.send("GET", path, None, "document").await
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> anyhow::Result<Hit> {
        self.send("POST", path, Some(&form(pairs)), "document")
            .await
    }

    /// Follows a 303 as a browser does (a GET of its `Location`).
    async fn follow(&mut self, hit: &Hit) -> anyhow::Result<Hit> {
        ensure!(
            hit.resp.status == 303,
            "expected a redirect, got {}: {}",
            hit.resp.status,
            hit.text()
        );
        let to = hit.location().to_owned();
        self.get(&to).await
    }
}

// ---- HTML

/// The attributes of every `<name ...>` tag in `html` (names in lower case, `&amp;` decoded).
fn tags(html: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(&open) {
        let start = at + i + open.len();
        at = start;
        // `<linkfoo` is not `<link`.
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            continue;
        }
        let Some(end) = html[start..].find('>') else {
            break;
        };
        out.push(attributes(&html[start..start + end]));
        at = start + end;
    }
    out
}

fn attributes(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace() || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            if let Some(q) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let body = &r[1..];
                let close = body.find(q).unwrap_or(body.len());
                value = body[..close].to_owned();
                rest = body.get(close + 1..).unwrap_or_default();
            } else {
                let close = r.find(|c: char| c.is_ascii_whitespace()).unwrap_or(r.len());
                value = r[..close].to_owned();
                rest = &r[close..];
            }
        } else if name.is_empty() {
            rest = rest.get(1..).unwrap_or_default();
        }
        if !name.is_empty() {
            out.insert(name, value.replace("&amp;", "&"));
        }
        rest = rest.trim_start();
    }
    out
}

/// The CSRF token the page's forms carry.
fn csrf_field(html: &str) -> anyhow::Result<String> {
    tags(html, "input")
        .into_iter()
        .find(|a| a.get("name").is_some_and(|n| n == "csrf"))
        .and_then(|a| a.get("value").cloned())
        .filter(|v| !v.is_empty())
        .context("no csrf field in the page")
}

/// What a page loads: (URL, fetch destination), in document order, each URL once.
fn subresources(html: &str) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |url: Option<&String>, dest: &'static str| {
        if let Some(u) = url.filter(|u| u.starts_with('/') && !u.starts_with("//"))
            && !out.iter().any(|(o, _)| o == u)
        {
            out.push((u.clone(), dest));
        }
    };
    for a in tags(html, "link") {
        let rel = a
            .get("rel")
            .map(|r| r.to_ascii_lowercase())
            .unwrap_or_default();
        let dest = if rel.split_whitespace().any(|r| r == "stylesheet") {
            "style"
        } else if rel.split_whitespace().any(|r| r == "icon") {
            "image"
        } else if rel
            .split_whitespace()
            .any(|r| r == "preload" || r == "modulepreload")
        {
            "script"
        } else {
            continue;
        };
        add(a.get("href"), dest);
    }
    for a in tags(html, "script") {
        add(a.get("src"), "script");
    }
    for a in tags(html, "img") {
        add(a.get("src"), "image");
    }
    out
}

/// `url(...)` references in a stylesheet (not `data:`).
fn css_urls(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = css;
    while let Some(i) = rest.find("url(") {
        rest = &rest[i + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        let u = rest[..end].trim().trim_matches(|c| c == '"' || c == '\'');
        if u.starts_with('/') && !u.starts_with("//") {
            out.push(u.to_owned());
        }
        rest = &rest[end..];
    }
    out
}

// ---- measurements

/// A page's weight in one language.
#[derive(Debug, Default)]
struct Weight {
    status: u16,
    ctype: String,
    html: usize,
    css: usize,
    js: usize,
    img: usize,
    other: usize,
    /// Bytes read from the socket for the HTML and everything it loads (first visit).
    wire: u64,
    /// Bytes read from the socket for the HTML alone (a later visit: the assets are cached).
    wire_html: u64,
    /// `Content-Encoding` values seen (`identity` for none).
    encodings: Vec<String>,
    refs: Vec<String>,
}

impl Weight {
    fn total(&self) -> usize {
        self.html + self.css + self.js + self.img + self.other
    }
}

/// Pins `servers` (all their threads, present and future) to the last CPU and `clients` to the
/// first; returns what was done, as `client:CPU,server:CPU`.
fn pin(servers: &[u32], clients: &[u32]) -> anyhow::Result<String> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    ensure!(cpus >= 2, "--pin needs two CPUs, this machine has {cpus}");
    let last = cpus - 1;
    for (pids, cpu) in [(servers, last), (clients, 0)] {
        for pid in pids {
            let out = Command::new("taskset")
                .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
                .output()
                .context("running taskset (util-linux)")?;
            ensure!(
                out.status.success(),
                "taskset for process {pid}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(format!("client:{},server:{last}", 0))
}

/// The steal share of the machine's CPU time since boot, as (steal, total) in `/proc/stat`
/// ticks.
fn steal_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    Some((*v.get(7)?, v.iter().take(8).sum()))
}

/// Who used the machine while this ran: the CPU time of the whole machine, this client, and
/// the servers, to tell how much of it was other people's.
struct Census {
    machine: (u64, u64),
    steal: (u64, u64),
    client_ms: u64,
    mamori_ns: u64,
    nginx_ns: u64,
    at: Instant,
}

impl Census {
    fn take(mamori: &[u32], nginx: &[u32]) -> Self {
        Self {
            machine: procfs::machine_cpu_ms().unwrap_or_default(),
            steal: steal_ticks().unwrap_or_default(),
            client_ms: procfs::cpu_ms(std::process::id()).unwrap_or_default(),
            mamori_ns: cpu_ns(mamori),
            nginx_ns: cpu_ns(nginx),
            at: Instant::now(),
        }
    }

    /// `machine ...`: the share of all CPUs (percent) used by others (steal included) and
    /// by the hypervisor's other guests alone (steal), between `self` and `now`.
    fn line(&self, now: &Census) -> String {
        let busy = now.machine.0.saturating_sub(self.machine.0) as f64;
        let total = now.machine.1.saturating_sub(self.machine.1).max(1) as f64;
        let client = now.client_ms.saturating_sub(self.client_ms) as f64;
        let mamori = now.mamori_ns.saturating_sub(self.mamori_ns) as f64 / 1e6;
        let nginx = now.nginx_ns.saturating_sub(self.nginx_ns) as f64 / 1e6;
        let steal = now.steal.0.saturating_sub(self.steal.0) as f64
            / now.steal.1.saturating_sub(self.steal.1).max(1) as f64;
        format!(
            "machine wall_s={:.1} others_cpu_pct={:.0} steal_pct={:.0} client_cpu_ms={client:.0} \
             mamori_cpu_ms={mamori:.0} nginx_cpu_ms={nginx:.0}",
            now.at.duration_since(self.at).as_secs_f64(),
            ((busy - client - mamori - nginx) / total * 100.0).max(0.0),
            steal * 100.0,
        )
    }
}

/// A page to measure: how the browser asks for it and what it must answer.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    path: String,
    /// A form to post instead of a GET.
    form: Option<String>,
    dest: &'static str,
    expect: u16,
}

impl Target {
    fn page(name: &str, path: &str, expect: u16) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            form: None,
            dest: "document",
            expect,
        }
    }

    fn method(&self) -> &'static str {
        if self.form.is_some() { "POST" } else { "GET" }
    }

    async fn fetch(&self, b: &mut Browser) -> anyhow::Result<Hit> {
        b.send(self.method(), &self.path, self.form.as_deref(), self.dest)
            .await
    }
}

/// Fetches the page and everything it loads, as a first visit (nothing cached).
async fn weigh(b: &mut Browser, t: &Target, lang: &str) -> anyhow::Result<(Weight, Vec<u8>)> {
    let saved = std::mem::replace(&mut b.lang, lang.to_owned());
    let page = t.fetch(b).await;
    b.lang = saved;
    let page = page?;
    let path = &t.path;
    ensure!(
        page.resp.status == t.expect,
        "{} {path} ({lang}) answered {} (expected {})",
        t.method(),
        page.resp.status,
        t.expect
    );
    let mut w = Weight {
        ctype: page
            .resp
            .header("content-type")
            .unwrap_or("-")
            .replace(' ', ""),
        status: page.resp.status,
        html: page.resp.body.len(),
        wire: page.wire,
        wire_html: page.wire,
        ..Weight::default()
    };
    let mut encodings = vec![
        page.resp
            .header("content-encoding")
            .unwrap_or("identity")
            .to_owned(),
    ];
    let html = page.text();
    let mut queue = subresources(&html);
    let mut i = 0;
    while i < queue.len() {
        let (url, dest) = queue[i].clone();
        i += 1;
        let hit = b.send("GET", &url, None, dest).await?;
        ensure!(
            hit.resp.status == 200,
            "{url} (loaded by {path}) answered {}",
            hit.resp.status
        );
        encodings.push(
            hit.resp
                .header("content-encoding")
                .unwrap_or("identity")
                .to_owned(),
        );
        let ctype = hit
            .resp
            .header("content-type")
            .unwrap_or_default()
            .to_owned();
        let n = hit.resp.body.len();
        if ctype.starts_with("text/css") {
            w.css += n;
            for u in css_urls(&hit.text()) {
                if !queue.iter().any(|(q, _)| *q == u) {
                    queue.push((u, "image"));
                }
            }
        } else if ctype.contains("javascript") {
            w.js += n;
        } else if ctype.starts_with("image/") {
            w.img += n;
        } else {
            w.other += n;
        }
        w.wire += hit.wire;
        w.refs
            .push(url.split('?').next().unwrap_or_default().to_owned());
    }
    encodings.sort();
    encodings.dedup();
    w.encodings = encodings;
    Ok((w, page.resp.body))
}

fn pct(values: &[f64], p: f64) -> String {
    stats::percentile(values, p).map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// Timings of one thing on one server.
#[derive(Debug, Default)]
struct Series {
    ms: Vec<f64>,
    cpu_ns: u64,
}

impl Series {
    fn line(&self, prefix: &str) -> String {
        let n = self.ms.len().max(1) as f64;
        format!(
            "{prefix}_p50_ms={} {prefix}_p95_ms={} {prefix}_p99_ms={} {prefix}_cpu_us={:.1}",
            pct(&self.ms, 50.0),
            pct(&self.ms, 95.0),
            pct(&self.ms, 99.0),
            self.cpu_ns as f64 / 1000.0 / n
        )
    }
}

/// nginx as the reference: a connection, the directory it serves, its processes.
struct Nginx {
    conn: Conn,
    root: PathBuf,
    /// nginx's master and workers (none if not given).
    pids: Vec<u32>,
}

impl Nginx {
    fn request(path: &str, lang: &str) -> Vec<u8> {
        // What the browser sends for a navigation, without cookies (nginx ignores them).
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mamori-uibench\r\n\
             Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
             Accept-Language: {lang}\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
             Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\
             Connection: keep-alive\r\n\r\n"
        )
        .into_bytes()
    }

    /// Writes `body` under the served directory as `name`; returns its URL path.
    fn publish(&self, name: &str, body: &[u8]) -> anyhow::Result<String> {
        let file = self.root.join(name);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&file, body)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        Ok(format!("/{name}"))
    }
}

/// `count` timed requests of the page from mamori (through `b`), each followed by a GET of the
/// same bytes from nginx when there is one; `warmup` untimed of each first.
async fn time_page(
    b: &mut Browser,
    dev: &[u32],
    nginx: &mut Option<Nginx>,
    t: &Target,
    count: usize,
    warmup: usize,
) -> anyhow::Result<String> {
    let (name, path, dest, expect) = (&t.name, &t.path, t.dest, t.expect);
    // The bytes to give nginx: what mamori answers now, in the timed language.
    let first = t.fetch(b).await?;
    ensure!(
        first.resp.status == expect,
        "{path} answered {} (expected {expect}): {}",
        first.resp.status,
        first.text().chars().take(300).collect::<String>()
    );
    let body = first.resp.body.clone();
    let static_path = match nginx {
        Some(n) => {
            // Pages as NAME.html; assets under their own file name.
            let file = if dest == "document" {
                format!("ui/{name}.html")
            } else {
                format!("ui/assets/{name}")
            };
            let published = n.publish(&file, &body)?;
            let (r, _, _) = n.conn.keep(&Nginx::request(&published, &b.lang)).await?;
            ensure!(
                r.status == 200 && r.body == body,
                "nginx did not serve the same bytes for {name}: {} with {} bytes",
                r.status,
                r.body.len()
            );
            Some(published)
        }
        None => None,
    };
    let nginx_req = static_path.as_deref().map(|p| Nginx::request(p, &b.lang));

    let mut m = Series::default();
    let mut x = Series::default();
    let mut sizes = Vec::new();
    for round in 0..warmup + count {
        let timed = round >= warmup;
        let cpu0 = cpu_ns(dev);
        let hit = t.fetch(b).await?;
        let cpu1 = cpu_ns(dev);
        ensure!(
            hit.resp.status == expect,
            "{path} answered {} during the run",
            hit.resp.status
        );
        if timed {
            m.ms.push(hit.ms);
            m.cpu_ns += cpu1.saturating_sub(cpu0);
            sizes.push(hit.resp.body.len());
        }
        if let (Some(n), Some(req)) = (nginx.as_mut(), nginx_req.as_deref()) {
            let c0 = cpu_ns(&n.pids);
            let (r, _, ms) = n.conn.keep(req).await?;
            let c1 = cpu_ns(&n.pids);
            ensure!(r.status == 200, "nginx answered {} for {name}", r.status);
            if timed {
                x.ms.push(ms);
                x.cpu_ns += c1.saturating_sub(c0);
            }
        }
    }
    sizes.sort_unstable();
    sizes.dedup();
    let mut line = format!(
        "time page={name} method={} path={path} status={expect} n={count} bytes={} {}",
        t.method(),
        body.len(),
        m.line("mamori")
    );
    if nginx.is_some() {
        let ratio = |p: f64| match (stats::percentile(&m.ms, p), stats::percentile(&x.ms, p)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        line.push_str(&format!(
            " {} ratio_p50={} ratio_p95={} ratio_p99={}",
            x.line("nginx"),
            ratio(50.0),
            ratio(95.0),
            ratio(99.0)
        ));
    }
    if sizes.len() > 1 {
        line.push_str(&format!(
            " sizes_varied={}..{}",
            sizes[0],
            sizes[sizes.len() - 1]
        ));
    }
    Ok(line)
}

fn weight_line(t: &Target, ja: &Weight, en: &Weight) -> String {
    let (name, path) = (&t.name, &t.path);
    let max = ja.total().max(en.total());
    let mut enc = ja.encodings.clone();
    enc.extend(en.encodings.iter().cloned());
    enc.sort();
    enc.dedup();
    format!(
        "weight page={name} method={} path={path} status={} type={} html_ja={} html_en={} css={} js={} img={} \
         other={} total_ja={} total_en={} budget={BUDGET_BYTES} within_budget={} \
         wire_ja={} wire_en={} wire_html_ja={} wire_html_en={} encoding={} refs={}",
        t.method(),
        ja.status,
        ja.ctype,
        ja.html,
        en.html,
        ja.css,
        ja.js,
        ja.img,
        ja.other,
        ja.total(),
        en.total(),
        if max <= BUDGET_BYTES { "yes" } else { "no" },
        ja.wire,
        en.wire,
        ja.wire_html,
        en.wire_html,
        enc.join(","),
        ja.refs.join(","),
    )
}

/// A password that meets the rules (several unrelated words), for setup and the checks.
const NEW_PASSWORD: &str = "violet tractor 4417 mango harbour";
/// A candidate the rules refuse (a common password).
const REFUSED: &str = "password123";

async fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "run as root: the device mode needs it"
    );
    ensure!(args.lang == "ja" || args.lang == "en", "--lang is ja or en");
    let lang = args.lang.as_str();
    let mut dev = Device::start(&args.mamorid)?;
    let config = dev.wait_serving().await?;
    let label = dev.label_password()?;
    let addr = dev.addr;
    let procs = dev.processes();
    ensure!(
        procs.len() == 2,
        "expected the parent and one management process, found {procs:?}"
    );

    let mut nginx = match (&args.nginx_addr, &args.nginx_cert, &args.nginx_root) {
        (Some(a), Some(c), Some(r)) => Some(Nginx {
            conn: Conn::open(tls::client_config(c)?, *a).await?,
            root: r.clone(),
            pids: args
                .nginx_pid
                .map(procfs::with_children)
                .unwrap_or_default(),
        }),
        _ => None,
    };

    let pinned = if args.pin {
        let server_pids: Vec<u32> = procs
            .iter()
            .chain(nginx.iter().flat_map(|n| n.pids.iter()))
            .copied()
            .collect();
        pin(&server_pids, &[std::process::id()])?
    } else {
        "no".to_owned()
    };
    println!("pinned={pinned}");
    let census = Census::take(&procs, nginx.as_ref().map_or(&[], |n| &n.pids));

    // A browser arrives: the login page sets the pre-login CSRF cookie and puts the same
    // value in the form (double submit).
    let mut admin = Browser::open(config.clone(), addr, lang).await?;
    println!(
        "lang={lang} count={} warmup={} mamori_tls={} nginx_tls={}",
        args.count,
        args.warmup,
        admin.conn.protocol,
        nginx.as_ref().map_or("-", |n| n.conn.protocol.as_str())
    );
    let login = Target::page("login", "/ui/login", 200);
    let (login_ja, login_html) = weigh(&mut admin, &login, "ja").await?;
    let (login_en, _) = weigh(&mut admin, &login, "en").await?;
    let cookie = admin
        .jar
        .get("__Host-csrf")
        .cloned()
        .context("the login page set no __Host-csrf cookie")?;
    let token = csrf_field(&String::from_utf8_lossy(&login_html))?;
    ensure!(
        token == cookie,
        "the login form's token is not the cookie's value"
    );
    let mut weights = vec![weight_line(&login, &login_ja, &login_en)];

    // Log in with the label password: the session may only replace it.
    let hit = admin
        .post(
            "/ui/login",
            &[
                ("csrf", &token),
                ("next", "/ui/"),
                ("username", "admin"),
                ("password", &label),
            ],
        )
        .await?;
    ensure!(
        hit.resp.status == 303 && hit.location() == "/ui/setup",
        "login with the label password: {} to {:?}",
        hit.resp.status,
        hit.location()
    );
    ensure!(
        !admin.jar.contains_key("__Host-csrf"),
        "the pre-login cookie outlived the login"
    );
    let setup = Target::page("setup", "/ui/setup", 200);
    let (setup_ja, setup_html) = weigh(&mut admin, &setup, "ja").await?;
    let (setup_en, _) = weigh(&mut admin, &setup, "en").await?;
    weights.push(weight_line(&setup, &setup_ja, &setup_en));
    let token = csrf_field(&String::from_utf8_lossy(&setup_html))?;

    // The setup page can only be timed now, while the session may do nothing else.
    let mut times = vec![
        time_page(
            &mut admin,
            &procs,
            &mut nginx,
            &setup,
            args.count,
            args.warmup,
        )
        .await?,
    ];

    // The live password check, as the setup page's script posts it while the user types.
    for (kind, candidate, ok) in [("ok", NEW_PASSWORD, true), ("refused", REFUSED, false)] {
        let mut s = Series::default();
        let body = form(&[("csrf", &token), ("password", candidate)]);
        for round in 0..args.warmup.min(5) + args.checks {
            let cpu0 = cpu_ns(&procs);
            let hit = admin
                .send("POST", "/ui/password/check", Some(&body), "empty")
                .await?;
            let cpu1 = cpu_ns(&procs);
            ensure!(
                hit.resp.status == 200,
                "password check: {} {}",
                hit.resp.status,
                hit.text()
            );
            let v: serde_json::Value = serde_json::from_slice(&hit.resp.body)?;
            ensure!(
                v["ok"] == ok,
                "password check of the {kind} candidate said {v}"
            );
            if round >= args.warmup.min(5) {
                s.ms.push(hit.ms);
                s.cpu_ns += cpu1.saturating_sub(cpu0);
            }
        }
        println!(
            "check candidate={kind} n={} {}",
            args.checks,
            s.line("mamori")
        );
    }

    // Replace the label password; the session becomes a full one.
    let hit = admin
        .post(
            "/ui/setup",
            &[
                ("csrf", &token),
                ("current", &label),
                ("new", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await?;
    ensure!(
        hit.resp.status == 303 && hit.location() == "/ui/",
        "setup: {} to {:?}: {}",
        hit.resp.status,
        hit.location(),
        hit.text()
    );

    let mut pages = vec![
        Target::page("dashboard", "/ui/", 200),
        Target::page("account", "/ui/account", 200),
        Target::page("mfa", "/ui/account/mfa", 200),
        Target::page("users", "/ui/users", 200),
        Target::page("access", "/ui/access", 200),
        Target::page("reauth", "/ui/reauth?next=/ui/users", 200),
        Target::page("security", "/ui/security", 200),
        Target::page("error404", "/ui/no-such-page", 404),
    ];
    // The error page (error.html) as a browser meets it: a form whose token does not match.
    pages.push(Target {
        form: Some(form(&[
            ("csrf", "forged"),
            ("lang", "en"),
            ("next", "/ui/"),
        ])),
        ..Target::page("error403", "/ui/language", 403)
    });
    for t in &pages {
        let (ja, _) = weigh(&mut admin, t, "ja").await?;
        let (en, _) = weigh(&mut admin, t, "en").await?;
        weights.push(weight_line(t, &ja, &en));
    }
    for w in &weights {
        println!("{w}");
    }

    // The login page as a browser reloads it (it has its pre-login cookie by then).
    let mut visitor = Browser::open(config.clone(), addr, lang).await?;
    visitor.get("/ui/login").await?;
    times.push(
        time_page(
            &mut visitor,
            &procs,
            &mut nginx,
            &login,
            args.count,
            args.warmup,
        )
        .await?,
    );
    for t in &pages {
        times.push(time_page(&mut admin, &procs, &mut nginx, t, args.count, args.warmup).await?);
    }
    // The assets, which nginx serves as what it is built for.
    let html = admin.get("/ui/").await?.text();
    for (url, dest) in subresources(&html) {
        let name = url
            .split('?')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or("asset")
            .to_owned();
        let t = Target {
            dest,
            ..Target::page(&name, &url, 200)
        };
        times.push(
            time_page(&mut admin, &procs, &mut nginx, &t, args.count, args.warmup)
                .await?
                .replacen("time ", "time asset=yes ", 1),
        );
    }
    for t in &times {
        println!("{t}");
    }

    // Full logins: the login form posted, the 303 followed to the dashboard. Each on the
    // visitor's connection with a new cookie jar (a new browser profile), logged out after.
    let mut post_to_dashboard = Series::default();
    let mut with_login_page = Vec::new();
    for round in 0..1 + args.logins {
        visitor.jar.clear();
        let page = visitor.get("/ui/login").await?;
        let token = csrf_field(&page.text())?;
        let cpu0 = cpu_ns(&procs);
        let post = visitor
            .post(
                "/ui/login",
                &[
                    ("csrf", &token),
                    ("next", "/ui/"),
                    ("username", "admin"),
                    ("password", NEW_PASSWORD),
                ],
            )
            .await?;
        let dash = visitor.follow(&post).await?;
        let cpu1 = cpu_ns(&procs);
        ensure!(
            dash.resp.status == 200 && post.location() == "/ui/",
            "login went to {:?}, then {}",
            post.location(),
            dash.resp.status
        );
        if round > 0 {
            post_to_dashboard.ms.push(post.ms + dash.ms);
            post_to_dashboard.cpu_ns += cpu1.saturating_sub(cpu0);
            with_login_page.push(page.ms + post.ms + dash.ms);
        }
        let token = csrf_field(&dash.text())?;
        let out = visitor.post("/ui/logout", &[("csrf", &token)]).await?;
        ensure!(out.resp.status == 303, "logout: {}", out.resp.status);
    }
    println!(
        "fulllogin n={} {} with_login_page_p50_ms={}",
        args.logins,
        post_to_dashboard.line("mamori"),
        pct(&with_login_page, 50.0)
    );

    println!(
        "{}",
        census.line(&Census::take(
            &procs,
            nginx.as_ref().map_or(&[], |n| &n.pids)
        ))
    );
    dev.stop();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_page_loads() {
        let html = r#"<head><link rel="icon" href="/assets/icon.svg?v=1" type="image/svg+xml">
<link rel="stylesheet" href="/assets/ui.css?v=1"><script src="/assets/ui.js?v=1" defer></script>
<linkish href="/no"><img alt="x" src='/a.png'><img src="data:image/png;base64,AA"></head>"#;
        assert_eq!(
            subresources(html),
            [
                ("/assets/icon.svg?v=1".to_owned(), "image"),
                ("/assets/ui.css?v=1".to_owned(), "style"),
                ("/assets/ui.js?v=1".to_owned(), "script"),
                ("/a.png".to_owned(), "image"),
            ]
        );
    }

    #[test]
    fn finds_the_csrf_field() {
        let html = r#"<form><input type="hidden" name="next" value="/ui/">
<input type="hidden" name="csrf" value="ab12"></form>"#;
        assert_eq!(csrf_field(html).ok().as_deref(), Some("ab12"));
        assert!(csrf_field("<input name=\"csrf\" value=\"\">").is_err());
    }

    #[test]
    fn css_urls_skip_data() {
        assert_eq!(
            css_urls("a{background:url(\"/x.svg\")} b{background:url(data:image/png;base64,A)}"),
            ["/x.svg"]
        );
    }

    #[test]
    fn forms_are_urlencoded() {
        assert_eq!(form(&[("a b", "x&y=é")]), "a+b=x%26y%3D%C3%A9");
    }
}
