//! Forwarding of audit records to syslog collectors: RFC 5424 messages over TLS (RFC 5425),
//! from a persisted cursor, with store-and-forward (★3 S3.1-35 R5, S3.1-20).
//!
//! # How it works
//! The audit log is the queue. For each configured collector a tokio task keeps a cursor (the
//! sequence number of the next record to deliver) in a small file of its own, reads records
//! from the log ([`Backlog`]) in batches, formats each as an RFC 5424 message
//! ([`rfc5424`]), writes the batch in octet-counting frames over TLS, and waits until the
//! collector has *acknowledged* the whole batch before it saves the new cursor. During an
//! outage nothing is dropped: records wait in the log, and after reconnecting the task resends
//! from the saved cursor, in order. Producers are never blocked: the forwarder only reads.
//!
//! # What "acknowledged" means, and its limits
//! Syslog over TLS has no application-level acknowledgement. A batch counts as delivered once
//! the collector's TCP has acknowledged every byte of it: after the batch is flushed through
//! TLS into the socket, the task polls the socket's unacknowledged byte count (`SIOCOUTQ`,
//! see `outq.rs`) until it is zero. Then the cursor is saved (temp file, fsync, rename). So:
//!
//! - If the connection breaks before that, the whole batch is sent again on the next
//!   connection: **a collector sees duplicates of at most the one batch that was in flight**
//!   (at most [`Tuning::batch_records`] records). Every record carries its sequence number
//!   (`seq` in the structured data) so duplicates can be recognised.
//! - TCP acknowledgement means the bytes reached the collector's kernel, not that the
//!   collector processed or stored them. If the collector process dies after its TCP
//!   acknowledged a batch but before it read or wrote it (rsyslog also keeps received messages
//!   in memory queues unless configured with a disk-assisted queue), those records are lost
//!   for that collector. RELP (application-level acknowledgements) would close that gap; it is
//!   not implemented.
//! - A collector that refuses the device (it requires a client certificate, or does not trust
//!   ours) completes the TLS 1.3 handshake from our side and then closes the connection after
//!   its TCP acknowledged our first bytes. So the first batch of every new connection counts
//!   as delivered only once the connection has stayed open for [`Tuning::confirm_after`]
//!   (1 s by default); a rejection later than that would go unnoticed for that batch.
//!
//! # Security
//! TLS comes from `mamori-crypto` only (versions, suites and groups of the crypto policy).
//! The collector's certificate must chain to the configured CA and be valid for the configured
//! name; optionally its key must match a SHA-256 pin. The device's own certificate is sent if
//! the collector asks. There is no fallback to plain TCP: [`Transport::InsecurePlaintext`]
//! exists only as an explicit choice that the caller gates and shows as a warning.

pub mod backlog;
pub mod config;
mod conn;
mod cursor;
mod outq;
pub mod record;
pub mod rfc5424;
pub mod status;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use backlog::{Backlog, BacklogError, MemoryBacklog};
pub use config::{
    CollectorConfig, ConfigError, ForwarderConfig, StartAt, TlsSettings, Transport, Tuning,
};
pub use mamori_crypto::tls::{ClientIdentity, SpkiPin};
pub use record::{Facility, ForwardRecord, Severity};
pub use status::{CollectorStatus, ErrorKind, LinkState, StatusError, TransportKind};

/// The running forwarder: one task per collector.
///
/// Dropping it stops the tasks too (without waiting); [`Forwarder::shutdown`] waits for them.
pub struct Forwarder {
    backlog: Arc<dyn Backlog>,
    collectors: Vec<watch::Receiver<CollectorStatus>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Forwarder {
    /// Checks the configuration and starts one task per collector on the current tokio
    /// runtime. Nothing is sent before this returns `Ok`; an invalid collector fails the
    /// whole call, so a typo never silently disables forwarding.
    pub fn start(backlog: Arc<dyn Backlog>, config: ForwarderConfig) -> Result<Self, ConfigError> {
        config.tuning.validate()?;
        let mut prepared = Vec::new();
        for c in &config.collectors {
            if prepared.iter().any(|p: &config::Prepared| p.id == c.id) {
                return Err(ConfigError::DuplicateId(c.id.clone()));
            }
            prepared.push(c.prepare()?);
        }
        mamori_durable::create_dir(&config.state_dir, 0o700).map_err(ConfigError::StateDir)?;
        let (shutdown, _) = watch::channel(false);
        let mut collectors = Vec::new();
        let mut tasks = Vec::new();
        for p in prepared {
            let cursor_path = cursor::path(&config.state_dir, &p.id);
            // Read now, so that the first status shows the saved position.
            let (saved, cursor_error) = match cursor::load(&cursor_path, &p.id) {
                Ok(c) => (c, None),
                Err(e) => (
                    None,
                    Some(StatusError {
                        kind: ErrorKind::Cursor,
                        message: format!(
                            "the saved cursor is unreadable ({e}); delivering from the oldest \
                             record (the collector may see duplicates)"
                        ),
                        at: time::OffsetDateTime::now_utc(),
                    }),
                ),
            };
            let (status, rx) = watch::channel(CollectorStatus {
                id: p.id.clone(),
                address: p.address.clone(),
                server_name: p.server_name.clone(),
                transport: if p.tls.is_some() {
                    TransportKind::Tls
                } else {
                    TransportKind::InsecurePlaintext
                },
                state: LinkState::Connecting,
                connected: false,
                tls_version: None,
                cipher_suite: None,
                cursor: saved.unwrap_or(0),
                last_seq: 0,
                lag: 0,
                delivered: 0,
                skipped: 0,
                last_success: None,
                connected_since: None,
                last_error: cursor_error,
                consecutive_failures: 0,
                next_attempt: None,
            });
            if p.tls.is_none() {
                tracing::warn!(collector = %p.id, "log forwarding in PLAIN TEXT: records are readable on the network");
            }
            let worker = worker::Worker {
                cursor_path,
                p,
                tuning: config.tuning,
                backlog: backlog.clone(),
                status,
                shutdown: shutdown.subscribe(),
            };
            tasks.push(tokio::spawn(worker.run(saved)));
            collectors.push(rx);
        }
        Ok(Self {
            backlog,
            collectors,
            shutdown,
            tasks,
        })
    }

    /// The status of every collector, in configuration order, with `last_seq` and `lag` read
    /// from the log now.
    pub fn status(&self) -> Vec<CollectorStatus> {
        let last = self.backlog.last_seq();
        self.collectors
            .iter()
            .map(|rx| with_lag(rx.borrow().clone(), last))
            .collect()
    }

    /// The status of one collector.
    pub fn collector_status(&self, id: &str) -> Option<CollectorStatus> {
        let last = self.backlog.last_seq();
        self.collectors
            .iter()
            .find(|rx| rx.borrow().id == id)
            .map(|rx| with_lag(rx.borrow().clone(), last))
    }

    /// A receiver that sees every change of a collector's status (for pushing to a UI).
    /// `last_seq` and `lag` in it are as of the collector's last change.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<CollectorStatus>> {
        self.collectors
            .iter()
            .find(|rx| rx.borrow().id == id)
            .cloned()
    }

    /// Waits until a collector's status satisfies `pred`, at most `timeout`. Returns the
    /// status that satisfied it, or `None` on timeout or unknown id.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        mut pred: impl FnMut(&CollectorStatus) -> bool,
    ) -> Option<CollectorStatus> {
        let mut rx = self.subscribe(id)?;
        let last = self.backlog.clone();
        tokio::time::timeout(timeout, async {
            rx.wait_for(|s| pred(&with_lag(s.clone(), last.last_seq())))
                .await
                .ok()
                .map(|s| with_lag(s.clone(), last.last_seq()))
        })
        .await
        .ok()
        .flatten()
    }

    /// Stops every task (an unacknowledged batch is resent on the next start) and waits for
    /// them to end.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

fn with_lag(mut s: CollectorStatus, last: u64) -> CollectorStatus {
    s.last_seq = last;
    s.lag = if s.cursor == 0 {
        last
    } else {
        (last + 1).saturating_sub(s.cursor)
    };
    s
}

/// The result of [`deliver_all`].
#[derive(Debug, Clone)]
pub struct Delivery {
    /// From start to the last collector's acknowledgement of `until_seq`.
    pub elapsed: Duration,
    /// The final status of each collector.
    pub status: Vec<CollectorStatus>,
}

/// For measurements and tests: starts a forwarder, waits until every collector has delivered
/// every record up to `until_seq` (at most `timeout`), stops it and reports how long it took.
pub async fn deliver_all(
    backlog: Arc<dyn Backlog>,
    config: ForwarderConfig,
    until_seq: u64,
    timeout: Duration,
) -> Result<Delivery, DeliverError> {
    let started = Instant::now();
    let forwarder = Forwarder::start(backlog, config)?;
    let ids: Vec<String> = forwarder.status().into_iter().map(|s| s.id).collect();
    for id in &ids {
        let left = timeout.saturating_sub(started.elapsed());
        if forwarder
            .wait_for(id, left, |s| s.cursor > until_seq)
            .await
            .is_none()
        {
            let status = forwarder.status();
            forwarder.shutdown().await;
            return Err(DeliverError::Timeout(status));
        }
    }
    let elapsed = started.elapsed();
    let status = forwarder.status();
    forwarder.shutdown().await;
    Ok(Delivery { elapsed, status })
}

/// Why [`deliver_all`] did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Not everything was delivered in time; the status of each collector then.
    #[error("not delivered in time: {0:?}")]
    Timeout(Vec<CollectorStatus>),
}
