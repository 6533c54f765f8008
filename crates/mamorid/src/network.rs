//! Network management in the management process: the configuration history and commit-confirm
//! (`mamori_config::Configs`) over the privileged parent's `CheckNetwork` / `ApplyNetwork`.
//!
//! At start, in this order: the history is opened with the device's factory configuration as
//! the rescue revision; a pending marker that survived a restart is reverted
//! ([`Configs::recover_at_start`]); the running revision is applied (the parent loaded the last
//! configuration it applied before this process started, so the firewall never has a gap); a
//! ticker reverts a commit whose confirm window ran out. Every outcome is an audit record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mamori_audit::log::AuditLog;
use mamori_audit::{Event, EventKind, Outcome as AuditOutcome, Sink};
use mamori_config::{Apply, ApplyError, ApplyFailure, Channel, Configs, Options};
use mamori_http::handlers::config::{Network, outcome_event};
use mamori_monitor::OwnLoads;
use mamori_netconfig::{NetworkConfig, Rollback};
use mamori_privsep::client::{NetworkOutcome, Parent};
use mamori_store::Store;
use serde_json::json;
use tokio::sync::Notify;

/// How often a pending commit's deadline is checked.
const TICK: Duration = Duration::from_secs(1);
/// How long to wait after a link came back before putting the configuration back: a cable
/// being plugged in bounces, and one apply covers every link that came back meanwhile.
const SETTLE: Duration = Duration::from_secs(1);
/// First and longest wait before applying again after a failure.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The audit sink given to the system monitors: records everything, and notices when a link
/// came back (or a flapping link's events were summarised).
pub struct LinkWatch {
    audit: Arc<AuditLog>,
    links_back: Arc<Notify>,
}

impl LinkWatch {
    /// Records into `audit`; notifies `links_back`.
    pub fn new(audit: Arc<AuditLog>, links_back: Arc<Notify>) -> Self {
        Self { audit, links_back }
    }
}

impl Sink for LinkWatch {
    fn record(&self, event: Event) {
        if matches!(
            event.event,
            EventKind::LinkUp | EventKind::LinkEventsSuppressed | EventKind::InterfaceAdded
        ) {
            self.links_back.notify_one();
        }
        self.audit.record(event);
    }
}

/// Reads the factory configuration (before confinement: it lies outside the state directory).
pub fn read_factory(path: &std::path::Path) -> anyhow::Result<NetworkConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the factory network {}", path.display()))?;
    let cfg: NetworkConfig = serde_json::from_str(&text)
        .with_context(|| format!("parsing the factory network {}", path.display()))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("the factory network {} is invalid: {e}", path.display()))?;
    Ok(cfg)
}

/// The privileged parent as the pipeline's [`Apply`].
pub struct ParentApply {
    parent: Arc<Parent>,
    https: std::net::SocketAddr,
    /// The generations of the parent's loads, which the firewall monitor did not hear.
    own_loads: Arc<OwnLoads>,
    audit: Arc<dyn Sink>,
}

impl ParentApply {
    /// Notes the generation of a load the parent made with the firewall monitor's socket out
    /// of the notification group; other programs' transactions committed in that window were
    /// not heard either, and are recorded here as such.
    fn noted(&self, outcome: &NetworkOutcome) {
        let NetworkOutcome::Applied {
            generations: Some(g),
            ..
        } = outcome
        else {
            return;
        };
        if !g.quiet {
            return;
        }
        self.own_loads.note(g.after);
        let others = g.others();
        if others > 0 {
            // Not counted again by the monitor as skipped.
            for k in 1..=others {
                self.own_loads.note(g.before.wrapping_add(k));
            }
            self.audit.record(system_event(
                Event::new(EventKind::FirewallRulesetChanged, AuditOutcome::Success).details(
                    json!({
                        "incomplete": true,
                        "generations_skipped": others,
                        "generation": g.after.wrapping_sub(1),
                        "note": "another program changed the ruleset while mamori loaded its own; \
                                 its changes were not announced",
                    }),
                ),
            ));
        }
    }
}

fn refused(outcome: NetworkOutcome) -> Result<NetworkOutcome, ApplyError> {
    match outcome {
        NetworkOutcome::Refused {
            step,
            detail,
            rollback,
        } => Err(ApplyError(format!(
            "{}: {detail} (state: {rollback:?})",
            step.as_str()
        ))),
        ok => Ok(ok),
    }
}

impl Apply for ParentApply {
    fn check(&self, cfg: &NetworkConfig) -> Result<(), ApplyError> {
        let outcome = self
            .parent
            .check_network(cfg.clone())
            .map_err(|e| ApplyError(e.to_string()))?;
        refused(outcome).map(drop)
    }

    fn apply(&self, cfg: &NetworkConfig) -> Result<(), ApplyError> {
        let outcome = self
            .parent
            .apply_network(cfg.clone())
            .map_err(|e| ApplyError(e.to_string()))?;
        let outcome = refused(outcome)?;
        self.noted(&outcome);
        tracing::info!(?outcome, "network configuration applied");
        Ok(())
    }

    /// The parent's ApplyNetwork validates, renders, checks the interfaces and loads the
    /// ruleset as one nftables transaction, which the kernel checks whole before committing:
    /// whatever `nft -c` would refuse, the load refuses with nothing changed. So a commit costs
    /// one kernel pass (docs/benchmarks.md: a dry run costs as much as the load).
    fn checks_while_applying(&self) -> bool {
        true
    }

    fn apply_checked(&self, cfg: &NetworkConfig) -> Result<(), ApplyFailure> {
        let outcome = self
            .parent
            .apply_network(cfg.clone())
            .map_err(|e| match e {
                // Refused before a byte was sent: nothing changed.
                e @ mamori_privsep::PrivsepError::FrameTooLarge { .. } => ApplyFailure::Refused(
                    ApplyError(format!("the configuration is too large: {e}")),
                ),
                e => ApplyFailure::Failed(ApplyError(e.to_string())),
            })?;
        match outcome {
            NetworkOutcome::Refused {
                step,
                detail,
                rollback: Rollback::NothingChanged,
            } => Err(ApplyFailure::Refused(ApplyError(format!(
                "{}: {detail}",
                step.as_str()
            )))),
            other => {
                let outcome = refused(other).map_err(ApplyFailure::Failed)?;
                self.noted(&outcome);
                tracing::info!(?outcome, "network configuration applied");
                Ok(())
            }
        }
    }

    /// The parent answers and the management listener is still open. Whether an administrator
    /// can still reach it from where they are is the confirm window's question.
    fn probe(&self) -> Result<(), ApplyError> {
        let (sockets, _) = self
            .parent
            .sockets()
            .map_err(|e| ApplyError(format!("the privileged parent did not answer: {e}")))?;
        let port = self.https.port();
        let listening = sockets
            .iter()
            .any(|s| s.transport == mamori_inventory::Transport::Tcp && s.port == port);
        if listening {
            Ok(())
        } else {
            Err(ApplyError(format!(
                "the management listener (TCP port {port}) is no longer open"
            )))
        }
    }
}

/// Opens the history, reverts what a restart left pending, applies the running revision and
/// starts the ticker (on the current tokio runtime).
pub fn start(
    parent: Arc<Parent>,
    audit: Arc<AuditLog>,
    store: Arc<Store>,
    factory: NetworkConfig,
    https: std::net::SocketAddr,
    links_back: Arc<Notify>,
    own_loads: Arc<OwnLoads>,
) -> anyhow::Result<Arc<Network>> {
    let configs = Arc::new(
        Configs::open(store, factory, Options::default())
            .context("opening the configuration history")?,
    );
    let apply: Arc<dyn Apply + Send + Sync> = Arc::new(ParentApply {
        parent,
        https,
        own_loads,
        audit: audit.clone(),
    });
    match configs.recover_at_start(&*apply) {
        Ok(Some(outcome)) => {
            tracing::warn!(?outcome, "a commit left pending by a restart was reverted");
            audit.record(system_event(outcome_event(&outcome, Channel::Boot)));
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "reverting a commit left pending by a restart failed");
            audit.record(system_event(
                Event::new(EventKind::ConfigReverted, AuditOutcome::Failure)
                    .details(json!({"reason": "restart", "error": e.to_string()})),
            ));
        }
    }
    let running = configs.running().context("reading the running revision")?;
    let started = std::time::Instant::now();
    let applied = apply.apply(&running.config);
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let applied_failed = applied.is_err();
    match &applied {
        Ok(()) => tracing::info!(
            revision = running.info.id,
            ms,
            "network configuration in force"
        ),
        Err(e) => {
            tracing::error!(revision = running.info.id, error = %e, "the running network configuration could not be applied");
        }
    }
    audit.record(system_event(
        Event::new(
            EventKind::ConfigApplied,
            if applied.is_ok() {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
        )
        .details(json!({
            "revision": running.info.id,
            "ms": ms,
            "error": applied.err().map(|e| e.0),
        })),
    ));
    if applied_failed {
        // The reconciler tries again (a link may not have been ready).
        links_back.notify_one();
    }
    let network = Arc::new(Network::new(configs, apply));
    spawn_ticker(network.clone(), audit.clone());
    spawn_reconciler(network.clone(), audit, links_back);
    Ok(network)
}

/// Records of mamori's own doing: the actor is mamori, the source the device itself.
fn system_event(e: Event) -> Event {
    e.actor(mamori_config::SYSTEM_AUTHOR).source("local")
}

/// Puts the running configuration back after links came back (S3.1-33 R2: a cable pulled and
/// plugged in again keeps the configuration), recorded as `config_applied` with reason
/// `link_up`; and retries an apply that failed (at start a link may not be ready), after 5 s,
/// then doubling up to a minute, recording the first failure and the success after it.
fn spawn_reconciler(network: Arc<Network>, audit: Arc<AuditLog>, links_back: Arc<Notify>) {
    tokio::spawn(async move {
        let mut retry: Option<Duration> = None;
        loop {
            match retry {
                Some(delay) => {
                    // A link coming back is a reason to try at once.
                    let _ = tokio::time::timeout(delay, links_back.notified()).await;
                }
                None => links_back.notified().await,
            }
            tokio::time::sleep(SETTLE).await;
            let n = network.clone();
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || n.configs.reapply(&*n.apply)).await;
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let reason = if retry.is_some() { "retry" } else { "link_up" };
            let error = match result {
                Ok(Ok(Ok(revision))) => {
                    retry = None;
                    audit.record(system_event(
                        Event::new(EventKind::ConfigApplied, AuditOutcome::Success)
                            .details(json!({"reason": reason, "revision": revision, "ms": ms})),
                    ));
                    continue;
                }
                Ok(Ok(Err(e))) => e.0,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(%error, "putting the network configuration back failed; retrying");
            if retry.is_none() {
                audit.record(system_event(
                    Event::new(EventKind::ConfigApplied, AuditOutcome::Failure)
                        .details(json!({"reason": reason, "error": error, "ms": ms})),
                ));
            }
            retry = Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)));
        }
    });
}

fn spawn_ticker(network: Arc<Network>, audit: Arc<AuditLog>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let n = network.clone();
            let result = tokio::task::spawn_blocking(move || {
                n.configs.tick(time::OffsetDateTime::now_utc(), &*n.apply)
            })
            .await;
            match result {
                Ok(Ok(Some(outcome))) => {
                    tracing::warn!(
                        ?outcome,
                        "a commit was not confirmed in time and was reverted"
                    );
                    audit.record(system_event(outcome_event(&outcome, Channel::Timeout)));
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reverting an unconfirmed commit failed");
                    audit.record(system_event(
                        Event::new(EventKind::ConfigReverted, AuditOutcome::Failure)
                            .details(json!({"reason": "not_confirmed", "error": e.to_string()})),
                    ));
                    // The marker stays due; do not spin on a failing apply.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Err(e) => tracing::error!(error = %e, "the configuration ticker's task failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use mamori_netconfig::{AddressSet, Family, Prefix, SetName};

    /// A configuration too large for the privsep channel is refused before a byte is sent:
    /// nothing changed, so the commit is a refusal, not an apply to revert.
    #[test]
    fn a_configuration_too_large_for_the_channel_is_a_refusal() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        // Nobody reads the other end: a frame that did go out would block, so fail instead.
        ours.set_write_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let parent = Arc::new(Parent::Channel(std::sync::Mutex::new(ours)));
        struct Nowhere;
        impl Sink for Nowhere {
            fn record(&self, _: Event) {}
        }
        let audit = Arc::new(Nowhere);
        let apply = ParentApply {
            parent,
            https: "127.0.0.1:443".parse().expect("address"),
            own_loads: Arc::default(),
            audit,
        };
        let mut cfg = NetworkConfig::factory(Vec::new());
        // At least 24 bytes of JSON per entry (`"2001:db8::1:0/128",`…): over 16 MiB.
        let entries = (0..800_000u32)
            .map(|i| {
                Prefix::parse(&format!(
                    "2001:db8::{:x}:{:x}/128",
                    i >> 16 | 0x1000,
                    i & 0xffff
                ))
                .expect("prefix")
            })
            .collect();
        cfg.firewall.sets.push(AddressSet {
            name: SetName::parse("big").expect("name"),
            family: Family::Ipv6,
            entries,
        });
        match apply.apply_checked(&cfg) {
            Err(ApplyFailure::Refused(e)) => assert!(e.0.contains("too large"), "{e:?}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
