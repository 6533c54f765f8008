//! Test helpers: a real Debian rsyslog with its GnuTLS module (rsyslog-gnutls), started by the
//! test on loopback with its own configuration, certificates, pid file and work directory in a
//! temporary directory, killed when the test ends (also on panic: `Drop`; also if the test
//! process dies: `setpriv --pdeathsig KILL`).
//!
//! rsyslog-gnutls was chosen over rsyslog-openssl because research/crates.md verified it as an
//! RFC 5425 receiver. The packages are installed here if missing (as root, with apt-get, as
//! scripts/test does for its packages).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mamori_forward::{
    ClientIdentity, CollectorConfig, Facility, ForwardRecord, ForwarderConfig, Severity, SpkiPin,
    StartAt, TlsSettings, Transport, Tuning,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub const SERVER_NAME: &str = "collector.test";

/// Installs rsyslog and rsyslog-gnutls once per test binary if they are missing.
pub fn ensure_rsyslog() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *done {
        return;
    }
    let packages = ["rsyslog", "rsyslog-gnutls"];
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("installing {missing:?} for the forwarding tests");
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get (the forwarding tests need root on Debian to install rsyslog)");
        assert!(update.success(), "apt-get update failed");
        let install = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get install");
        assert!(install.success(), "installing {missing:?} failed");
    }
    *done = true;
}

/// A certificate and its key, as PEM files and as rustls types.
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key: KeyPair,
}

impl Issued {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
    pub fn pin(&self) -> SpkiPin {
        SpkiPin::of_certificate(&self.cert_der).unwrap()
    }
}

pub fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    CertifiedIssuer::self_signed(params, key).unwrap()
}

/// A server certificate for [`SERVER_NAME`] and 127.0.0.1, issued by `issuer`.
pub fn server_cert(issuer: &CertifiedIssuer<'static, KeyPair>) -> Issued {
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAME);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Issued {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key,
    }
}

/// How rsyslog treats clients.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientAuth {
    /// TLS, no client certificate asked for (StreamDriver.AuthMode anon).
    Anonymous,
    /// TLS, a client certificate valid under the CA file required (x509/certvalid).
    Required,
    /// Plain TCP.
    Plaintext,
}

/// One rsyslogd process and its files.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

pub struct RsyslogSetup<'a> {
    pub server: &'a Issued,
    /// PEM of every CA rsyslog trusts for client certificates (and its own chain).
    pub trusted_pem: String,
    pub auth: ClientAuth,
}

impl Rsyslog {
    pub fn start(dir: &Path, setup: RsyslogSetup<'_>) -> Self {
        ensure_rsyslog();
        fs::create_dir_all(dir.join("work")).unwrap();
        fs::write(dir.join("server.pem"), &setup.server.cert_pem).unwrap();
        fs::write(dir.join("server.key"), setup.server.key.serialize_pem()).unwrap();
        fs::write(dir.join("ca.pem"), &setup.trusted_pem).unwrap();
        let port = free_port();
        let d = dir.display();
        let (global_tls, input) = match setup.auth {
            ClientAuth::Plaintext => (String::new(), r#"module(load="imtcp")"#.to_string()),
            auth => (
                format!(
                    r#"DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{d}/ca.pem"
                       DefaultNetstreamDriverCertFile="{d}/server.pem"
                       DefaultNetstreamDriverKeyFile="{d}/server.key""#
                ),
                format!(
                    r#"module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="{}")"#,
                    if auth == ClientAuth::Required {
                        "x509/certvalid"
                    } else {
                        "anon"
                    }
                ),
            ),
        };
        // Received messages go to received.log, one per line: rsyslog's own parse of the
        // RFC 5424 fields, then the raw message, separated by tabs (our messages hold none:
        // JSON escapes them and header fields are printable ASCII).
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="8k" {global_tls})
{input}
template(name="fields" type="string"
  string="%pri%\t%app-name%\t%hostname%\t%procid%\t%msgid%\t%timereported:::date-rfc3339%\t%structured-data%\t%msg%\t%rawmsg%\n")
ruleset(name="fwd") {{
  action(type="omfile" file="{d}/received.log" template="fields")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="fwd")
*.* action(type="omfile" file="{d}/rsyslog-internal.log")
"#
        );
        fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut r = Self {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let d = &self.dir;
        let _ = fs::remove_file(d.join("rsyslogd.pid"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("rsyslogd.out"))
            .unwrap();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "rsyslogd", "-n", "-f"])
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited ({status}): {}",
                    fs::read_to_string(d.join("rsyslogd.out")).unwrap_or_default()
                );
            }
            // Listening? (A bare TCP probe would make rsyslog log a TLS error; read the
            // listening sockets instead.)
            if listening(self.port) {
                return;
            }
            assert!(Instant::now() < end, "rsyslogd did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> nix::unistd::Pid {
        let id = self.child.as_ref().expect("rsyslogd running").id();
        nix::unistd::Pid::from_raw(i32::try_from(id).unwrap())
    }

    /// Kills rsyslogd (SIGKILL, a crash) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same files.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Freezes rsyslogd (SIGSTOP): it stops reading, like a hung collector.
    pub fn pause(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    }

    /// Lets it run again (SIGCONT).
    pub fn resume(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    }

    /// Every message received so far, in the order rsyslog wrote them.
    pub fn received(&self) -> Vec<Received> {
        let text = fs::read_to_string(self.dir.join("received.log")).unwrap_or_default();
        text.lines().map(Received::parse).collect()
    }

    /// Waits until the messages received satisfy `pred`.
    pub fn wait_received(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if Instant::now() > end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn diagnostics(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "rsyslogd.out:\n{}\nrsyslog-internal.log:\n{}",
            read("rsyslogd.out"),
            read("rsyslog-internal.log")
        )
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused process must be continued to die promptly and release its port.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, state 0A).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

/// One message as rsyslog received and parsed it.
#[derive(Debug, Clone)]
pub struct Received {
    pub pri: String,
    pub app_name: String,
    pub hostname: String,
    pub procid: String,
    pub msgid: String,
    pub timestamp: String,
    pub structured_data: String,
    pub msg: String,
    pub raw: String,
    /// `seq` from the structured data, if it is there.
    pub seq: Option<u64>,
}

impl Received {
    fn parse(line: &str) -> Self {
        let f: Vec<&str> = line.splitn(9, '\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
        let sd = get(6);
        let seq = sd
            .split("seq=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|n| n.parse().ok());
        Self {
            pri: get(0),
            app_name: get(1),
            hostname: get(2),
            procid: get(3),
            msgid: get(4),
            timestamp: get(5),
            structured_data: sd,
            msg: get(7),
            raw: get(8),
            seq,
        }
    }
}

/// Checks what a collector got against the records 1..=`last`: every record arrived, the first
/// arrivals are in order, and any record that arrived more than once lies in one window of at
/// most `batch` consecutive records (the batch in flight when a connection broke). Returns the
/// number of duplicates.
pub fn check_delivery(got: &[Received], last: u64, batch: u64) -> usize {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut first_order = Vec::new();
    let mut unparsed = 0;
    for r in got {
        match r.seq {
            Some(s) => {
                let c = counts.entry(s).or_default();
                if *c == 0 {
                    first_order.push(s);
                }
                *c += 1;
            }
            None => unparsed += 1,
        }
    }
    let missing: Vec<u64> = (1..=last).filter(|s| !counts.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} records missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let mut sorted = first_order.clone();
    sorted.sort_unstable();
    assert_eq!(first_order, sorted, "records first arrived out of order");
    let dups: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        counts.values().all(|c| *c <= 2),
        "a record arrived more than twice"
    );
    if let (Some(lo), Some(hi)) = (dups.first(), dups.last()) {
        assert!(
            hi - lo < batch,
            "duplicates {lo}..={hi} span more than one batch of {batch}"
        );
    }
    // A message cut off when a connection broke (rsyslog submits an incomplete last frame)
    // may lack its structured data; there is at most one per broken connection.
    assert!(unparsed <= 1, "{unparsed} unparsable messages");
    dups.len()
}

/// A record with Japanese details and characters that need escaping.
pub fn record(i: u64) -> ForwardRecord {
    ForwardRecord {
        seq: 0,
        time: time::OffsetDateTime::now_utc(),
        hostname: "gw-test".into(),
        severity: if i.is_multiple_of(2) {
            Severity::Notice
        } else {
            Severity::Warning
        },
        event: if i.is_multiple_of(3) {
            "login.failure".into()
        } else {
            "config.commit".into()
        },
        outcome: if i.is_multiple_of(3) {
            "failure".into()
        } else {
            "success".into()
        },
        actor: Some(format!("管理者\"{i}\"]\\")),
        source: Some("192.0.2.10".into()),
        message: format!("記録 {i}"),
        details: serde_json::json!({"n": i, "note": "ログイン失敗 — 設定を変更しました", "path": "a\\b"}),
    }
}

/// The forwarder's configuration for one collector.
pub fn collector(id: &str, address: &str, transport: Transport) -> CollectorConfig {
    CollectorConfig {
        id: id.into(),
        address: address.into(),
        transport,
        facility: Facility::AuthPriv,
        start_at: StartAt::Oldest,
    }
}

pub fn tls(
    ca: &CertifiedIssuer<'static, KeyPair>,
    pin: Option<SpkiPin>,
    identity: Option<ClientIdentity>,
) -> Transport {
    Transport::Tls(TlsSettings {
        ca_pem: ca.pem(),
        server_name: SERVER_NAME.into(),
        pin,
        client_identity: identity,
    })
}

/// Short timings so that tests do not wait for the production backoff.
pub fn fast_tuning() -> Tuning {
    Tuning {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(3),
        ack_timeout: Duration::from_secs(3),
        confirm_after: Duration::from_millis(500),
        ..Tuning::default()
    }
}

pub fn config(state: &Path, collectors: Vec<CollectorConfig>, tuning: Tuning) -> ForwarderConfig {
    ForwarderConfig {
        state_dir: state.to_path_buf(),
        collectors,
        tuning,
    }
}

/// Appends `n` records to the backlog.
pub fn produce(backlog: &Arc<mamori_forward::MemoryBacklog>, n: u64) {
    for _ in 0..n {
        let next = mamori_forward::Backlog::last_seq(backlog.as_ref()) + 1;
        backlog.append(record(next));
    }
}
