//! The seccomp allow-list against a real management-process workload, as root.
//!
//! With `--workload-child DIR` this binary binds a TCP and a Unix listener, calls `confine()`,
//! and then does what the management process does: a tokio multi-thread runtime, HTTPS (rustls
//! on aws-lc-rs, HTTP/1.1 and HTTP/2 through hyper and axum), plain HTTP on the Unix socket, redb
//! transactions, durable file writes, tokio::fs and spawn_blocking, timers, a SIGTERM handler,
//! logging to stderr. The test drives it as a client from outside.
//!
//! - `workload_survives_the_seccomp_filter`: the workload runs under the real filter and must
//!   exit cleanly; a missing system call shows as death by SIGSYS.
//! - `every_syscall_of_the_workload_is_on_the_allow_list`: the same workload under `strace -f`
//!   with seccomp skipped (`MAMORI_DANGEROUS_NO_SECCOMP=1`, debug builds only); every system
//!   call made after `landlock_restrict_self` must be on the list. It prints the counts (the
//!   `strace -c` view), which is how the list was derived and how to refine it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use common::{Case, Lines, TestResult, USER};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mamori_crypto::tls::{TlsOptions, client_config, server_config};
use mamori_privsep::sandbox::{DANGEROUS_NO_SECCOMP_ENV, SandboxConfig, confine};
use mamori_privsep::seccomp::{Allowed, allowed};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::sync::Notify;

const TABLE: TableDefinition<&str, u64> = TableDefinition::new("counters");
const REQUESTS: usize = 24;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--workload-child") {
        return ExitCode::from(child(Path::new(&args[i + 1])));
    }
    common::run(&[
        Case {
            name: "workload_survives_the_seccomp_filter",
            needs_root: true,
            run: workload_survives_the_seccomp_filter,
        },
        Case {
            name: "every_syscall_of_the_workload_is_on_the_allow_list",
            needs_root: true,
            run: every_syscall_of_the_workload_is_on_the_allow_list,
        },
    ])
}

// ---- the tests ---------------------------------------------------------------------------

/// JC-STAR ★3 hardening: the management process runs its real work under the seccomp filter.
fn workload_survives_the_seccomp_filter() -> TestResult {
    let (status, _) = run_workload(None)?;
    check!(
        status.success(),
        "the confined workload ended with {status} (signal {:?}); SIGSYS (31) means a system call \
         missing from src/seccomp.rs: run every_syscall_of_the_workload_is_on_the_allow_list to \
         see which",
        status.signal()
    );
    Ok(())
}

/// The allow-list covers every system call the workload makes after confinement.
fn every_syscall_of_the_workload_is_on_the_allow_list() -> TestResult {
    if !cfg!(debug_assertions) {
        println!(
            "  skipped: needs a debug build ({DANGEROUS_NO_SECCOMP_ENV} is ignored in release)"
        );
        return Ok(());
    }
    let Ok(strace) = which("strace") else {
        println!("  skipped: strace is not installed (apt-get install -y strace)");
        return Ok(());
    };
    let trace_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let trace = trace_dir.path().join("trace");
    let (status, _) = run_workload(Some((&strace, &trace)))?;
    check!(status.success(), "traced workload ended with {status}");
    let text = std::fs::read_to_string(&trace).map_err(|e| e.to_string())?;
    let counts = syscalls_after_confinement(&text)?;
    let listed: BTreeSet<&str> = allowed().map(Allowed::name).collect();
    println!("  system calls after confinement (calls, name, on the list):");
    for (name, n) in &counts {
        let mark = if listed.contains(name.as_str()) {
            ""
        } else {
            "  <-- NOT ALLOWED"
        };
        println!("  {n:>7} {name}{mark}");
    }
    let missing: Vec<&String> = counts
        .keys()
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    check!(missing.is_empty(), "not on the allow-list: {missing:?}");
    Ok(())
}

/// Counts the system calls in an `strace -f` log from the first `landlock_restrict_self` on.
fn syscalls_after_confinement(trace: &str) -> Result<BTreeMap<String, usize>, String> {
    let start = trace
        .lines()
        .position(|l| l.contains("landlock_restrict_self("))
        .ok_or("no landlock_restrict_self in the trace: did the child confine itself?")?;
    let mut counts = BTreeMap::new();
    for line in trace.lines().skip(start + 1) {
        // "<pid> name(args) = ret", "<pid> <... name resumed>...", "<pid> +++ exited ...".
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") || rest.starts_with("<...") {
            continue;
        }
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

fn which(name: &str) -> Result<PathBuf, ()> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or(())
}

/// Starts the workload child (optionally under strace), drives it as a client, stops it, and
/// returns its exit status.
fn run_workload(strace: Option<(&Path, &Path)>) -> Result<(ExitStatus, String), String> {
    let user = common::user()?;
    let dir = common::tempdir()?;
    for sub in ["", "store", "run", "tls"] {
        let p = dir.path().join(sub);
        std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
        common::give_to_user(&p, &user)?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = match strace {
        Some((strace, out)) => {
            let mut c = Command::new(strace);
            c.args(["-f", "-qq", "-o"])
                .arg(out)
                .arg("--")
                .arg(&exe)
                .env(DANGEROUS_NO_SECCOMP_ENV, "1");
            c
        }
        None => Command::new(&exe),
    };
    let mut child = cmd
        .arg("--workload-child")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let lines = Lines::new(child.stdout.take().ok_or("no stdout")?);
    let ready = lines.next_with("READY", Duration::from_secs(60));
    let driven = ready.and_then(|ready| drive(&ready, dir.path()));
    if driven.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let summary = driven.map_err(|e| format!("{e} (child: {status})"))?;
    Ok((status, summary))
}

/// The client side: HTTPS over HTTP/1.1 and HTTP/2, plain HTTP on the Unix socket, then /quit.
fn drive(ready: &str, dir: &Path) -> Result<String, String> {
    let mut port = None;
    let mut cert = None;
    for field in ready.split_whitespace() {
        if let Some(p) = field.strip_prefix("port=") {
            port = p.parse::<u16>().ok();
        }
        if let Some(c) = field.strip_prefix("cert=") {
            cert = Some(unhex(c));
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port.ok_or("no port")?));
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.ok_or("no cert")?))
        .map_err(|e| e.to_string())?;
    let socket = dir.join("run/console.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..REQUESTS {
            let roots = roots.clone();
            let socket = socket.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => https_get(addr, roots, false, "/work").await,
                    1 => https_get(addr, roots, true, "/work").await,
                    _ => unix_get(&socket, "/work").await,
                }
            }));
        }
        let mut done = 0;
        for t in tasks {
            let body = t.await.map_err(|e| e.to_string())??;
            if !body.starts_with("ok") {
                return Err(format!("unexpected body {body:?}"));
            }
            done += 1;
        }
        let bye = https_get(addr, roots, false, "/quit").await?;
        Ok(format!("{done} requests, then {bye}"))
    })
}

async fn https_get(
    addr: SocketAddr,
    roots: RootCertStore,
    h2: bool,
    path: &str,
) -> Result<String, String> {
    let mut config = client_config(roots).map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let req = http::Request::get(format!("https://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    body_text(resp).await
}

async fn unix_get(socket: &Path, path: &str) -> Result<String, String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "console")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    body_text(resp).await
}

async fn body_text(resp: http::Response<hyper::body::Incoming>) -> Result<String, String> {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---- the workload (child side) -----------------------------------------------------------

#[derive(Clone)]
struct App {
    db: Arc<Database>,
    dir: PathBuf,
    quit: Arc<Notify>,
}

fn child(dir: &Path) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("info")
        .try_init();
    match workload(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("workload failed: {e}");
            1
        }
    }
}

fn workload(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // Listeners first, as mamorid does: the sandbox has no socket/bind/listen.
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    tcp.set_nonblocking(true)?;
    let port = tcp.local_addr()?.port();
    let console = UnixListener::bind(dir.join("run/console.sock"))?;
    console.set_nonblocking(true)?;

    let report = confine(&SandboxConfig {
        user: USER.into(),
        writable_dirs: vec![dir.to_path_buf()],
        readable_paths: vec![],
    })?;
    tracing::info!(?report, "workload confined");

    // TLS identity generated and stored while confined: getrandom, aws-lc (through rcgen),
    // durable writes.
    let identity = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert_der = identity.cert.der().to_vec();
    let key_der = identity.signing_key.serialize_der();
    mamori_durable::write(
        &dir.join("tls/cert.pem"),
        identity.cert.pem().as_bytes(),
        0o644,
    )?;
    mamori_durable::write(&dir.join("tls/key.der"), &key_der, 0o600)?;
    let chain = vec![CertificateDer::from(cert_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
    let tls = Arc::new(server_config(chain, key, TlsOptions::default())?);
    let cert_hex: String = cert_der.iter().map(|b| format!("{b:02x}")).collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let db = Arc::new(Database::create(dir.join("store/work.redb"))?);
        let app = App {
            db,
            dir: dir.to_path_buf(),
            quit: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/work", get(work))
            .route("/quit", get(quit))
            .with_state(app.clone());
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let console = tokio::net::UnixListener::from_std(console)?;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        println!("READY port={port} cert={cert_hex}");
        std::io::stdout().flush()?;
        loop {
            tokio::select! {
                accepted = tcp.accept() => {
                    let (stream, peer) = accepted?;
                    let _ = stream.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let service = TowerToHyperService::new(router.clone());
                    tokio::spawn(async move {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        tracing::debug!(%peer, "TLS connection");
                        let builder =
                            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    });
                }
                accepted = console.accept() => {
                    let (stream, _) = accepted?;
                    let _peer_uid = stream.peer_cred().map(|c| c.uid()).ok();
                    let service = TowerToHyperService::new(router.clone());
                    tokio::spawn(async move {
                        let mut b = hyper::server::conn::http1::Builder::new();
                        b.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
                        let _ = b.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                () = app.quit.notified() => break,
                _ = term.recv() => break,
            }
        }
        // Let the /quit response go out.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

async fn work(State(app): State<App>) -> Result<String, String> {
    // redb on the blocking pool, as the store is used.
    let db = app.db.clone();
    let n = tokio::task::spawn_blocking(move || -> Result<u64, redb::Error> {
        let w = db.begin_write()?;
        let n = {
            let mut t = w.open_table(TABLE)?;
            let n = t.get("hits")?.map_or(0, |v| v.value()) + 1;
            t.insert("hits", n)?;
            n
        };
        w.commit()?;
        let r = db.begin_read()?;
        let t = r.open_table(TABLE)?;
        // Others may have counted on since; this request's own number is `n`.
        let seen = t.get("hits")?.map_or(0, |v| v.value());
        Ok(if seen >= n { n } else { 0 })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("redb lost a committed write".into());
    }
    // Durable writes and tokio::fs, as the audit log and config revisions do.
    let name = format!("store/rev-{n}");
    let path = app.dir.join(&name);
    mamori_durable::write(&path, format!("revision {n}").as_bytes(), 0o600)
        .map_err(|e| e.to_string())?;
    let back = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| e.to_string())?;
    let moved = app.dir.join(format!("store/old-{n}"));
    tokio::fs::rename(&path, &moved)
        .await
        .map_err(|e| e.to_string())?;
    tokio::fs::remove_file(&moved)
        .await
        .map_err(|e| e.to_string())?;
    tokio::fs::create_dir_all(app.dir.join(format!("store/d-{n}")))
        .await
        .map_err(|e| e.to_string())?;
    let mut entries = tokio::fs::read_dir(app.dir.join("store"))
        .await
        .map_err(|e| e.to_string())?;
    let mut listed = 0;
    while entries
        .next_entry()
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        listed += 1;
    }
    tokio::fs::remove_dir(app.dir.join(format!("store/d-{n}")))
        .await
        .map_err(|e| e.to_string())?;
    let meta = tokio::fs::metadata(app.dir.join("store/work.redb"))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(2)).await;
    tracing::info!(n, listed, db_bytes = meta.len(), "work done");
    Ok(format!("ok {n} {back}"))
}

async fn quit(State(app): State<App>) -> &'static str {
    app.quit.notify_one();
    "bye"
}
