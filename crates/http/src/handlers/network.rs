//! `GET /api/v1/network/status`: what the wan's DHCP clients are doing — per interface the
//! state (bound, requesting, failed, stopped) and the lease (address and prefix, gateway, DNS
//! servers, server, lease time, when it was obtained and when it runs out).
//!
//! The privileged parent reads it (`Request::DhcpStatus`: dhcpcd's lease files are root's, and
//! it runs the clients); here it is merged with the running configuration, so an interface the
//! configuration puts on DHCP but for which no client runs shows as stopped, and turned into
//! the API's words. The web UI's network overview shows the same ([`read`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mamori_netconfig::{DhcpState, DhcpStatus, IfName, Lease};
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::handlers::config::{config_error, network};
use crate::state::AppState;

/// Asks the privileged parent for its DHCP clients (and whether the list was cut).
pub type DhcpStatusProvider =
    Arc<dyn Fn() -> Result<(Vec<DhcpStatus>, bool), String> + Send + Sync>;

/// The provider of a state built without one (tests of other endpoints).
pub fn unavailable() -> DhcpStatusProvider {
    Arc::new(|| Err("the DHCP status is not available".into()))
}

/// The answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NetworkStatus {
    /// One entry per wan interface with `dhcp: true` in the running configuration, and one for
    /// any other interface the privileged parent still runs a DHCP client for; by name.
    pub dhcp: Vec<DhcpInterface>,
    /// The parent ran more clients than it reports (64); the list is cut.
    pub truncated: bool,
}

/// One wan interface's DHCP client.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DhcpInterface {
    /// The interface.
    pub interface: String,
    /// `bound`: a lease that has not run out and whose address the interface holds;
    /// `requesting`: the client runs and asks a server for a lease; `failed`: the client could
    /// not start, or its lease file is not a lease (`lease_error`); `stopped`: the client does
    /// not run (it exited and is started again shortly, or none runs for this interface).
    pub state: DhcpState,
    /// The interface has `dhcp: true` in the running configuration.
    pub configured: bool,
    /// dhcpcd runs.
    pub running: bool,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// How often it exited on its own and was started again.
    pub restarts: u32,
    /// The lease in dhcpcd's lease file (also one that ran out: see `state`).
    pub lease: Option<LeaseView>,
    /// Why the client does not run, or why it last exited.
    pub error: Option<String>,
    /// Why the lease file could not be read or is not a lease.
    pub lease_error: Option<String>,
}

/// A lease, as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LeaseView {
    /// The leased address with its prefix (`203.0.113.120/24`).
    pub address: String,
    /// The default gateway the lease names, if any.
    pub gateway: Option<String>,
    /// The DNS servers offered (at most 8). The device does not use them.
    pub dns_servers: Vec<String>,
    /// The DHCP server that granted the lease.
    pub server: String,
    /// The lease time in seconds; `null`: infinite.
    pub lease_seconds: Option<u32>,
    /// When the lease was obtained or last renewed, RFC 3339 UTC.
    pub obtained_at: String,
    /// When it runs out unless renewed, RFC 3339 UTC; `null` for an infinite lease.
    pub expires_at: Option<String>,
    /// Seconds until then (0 once it ran out); `null` for an infinite lease.
    pub remaining_seconds: Option<u64>,
}

fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl LeaseView {
    /// The lease in the API's words at `now_unix`; `None` when its times cannot be written as
    /// dates (a file time past year 9999).
    pub fn of(l: &Lease, now_unix: i64) -> Option<Self> {
        let expires_at = match l.expires_unix {
            Some(e) => Some(rfc3339(e)?),
            None => None,
        };
        Some(Self {
            address: l.address.to_string(),
            gateway: l.gateway.map(|g| g.to_string()),
            dns_servers: l.dns.iter().map(ToString::to_string).collect(),
            server: l.server.to_string(),
            lease_seconds: l.lease_secs,
            obtained_at: rfc3339(l.obtained_unix)?,
            expires_at,
            remaining_seconds: l
                .expires_unix
                .map(|e| u64::try_from(e.saturating_sub(now_unix)).unwrap_or(0)),
        })
    }
}

/// Merges what the parent reports with the interfaces the running configuration puts on DHCP,
/// at `now_unix`: every configured interface appears (`stopped` when no client runs for it),
/// and so does every client the parent runs; sorted by interface.
pub fn merge(
    configured: &[IfName],
    reported: Vec<DhcpStatus>,
    now_unix: i64,
) -> Vec<DhcpInterface> {
    let mut out: Vec<DhcpInterface> = reported
        .into_iter()
        .map(|s| {
            let mut lease_error = s.lease_error;
            let lease = s.lease.as_ref().and_then(|l| {
                let view = LeaseView::of(l, now_unix);
                if view.is_none() {
                    lease_error = Some("the lease's times are out of range".into());
                }
                view
            });
            DhcpInterface {
                interface: s.interface.as_str().to_owned(),
                state: if lease.is_none() && s.lease.is_some() {
                    DhcpState::Failed
                } else {
                    s.state
                },
                configured: configured.contains(&s.interface),
                running: s.running,
                pid: s.pid,
                restarts: s.restarts,
                lease,
                error: s.error,
                lease_error,
            }
        })
        .collect();
    for name in configured {
        if !out.iter().any(|d| d.interface == name.as_str()) {
            out.push(DhcpInterface {
                interface: name.as_str().to_owned(),
                state: DhcpState::Stopped,
                configured: true,
                running: false,
                pid: None,
                restarts: 0,
                lease: None,
                error: Some(
                    "no DHCP client runs for this interface: the privileged part of the device has not applied the running configuration"
                        .into(),
                ),
                lease_error: None,
            });
        }
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    out
}

/// The DHCP status of a device that manages its network: 409 (as the configuration endpoints)
/// when it does not, an internal error when the parent does not answer.
pub async fn read(state: &AppState) -> Result<NetworkStatus, ApiError> {
    let net = network(state)?;
    let provider = state.dhcp_status.clone();
    tokio::task::spawn_blocking(move || {
        let running = net.configs.running().map_err(config_error)?;
        let configured: Vec<IfName> = running
            .config
            .interfaces
            .iter()
            .filter(|i| i.dhcp)
            .map(|i| i.name.clone())
            .collect();
        let (reported, truncated) = provider().map_err(ApiError::Internal)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok::<_, ApiError>(NetworkStatus {
            dhcp: merge(&configured, reported, now),
            truncated,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `GET /api/v1/network/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<NetworkStatus>, ApiError> {
    read(&state).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> IfName {
        IfName::parse(n).unwrap()
    }

    fn reported(n: &str, state: DhcpState, lease: Option<Lease>) -> DhcpStatus {
        DhcpStatus {
            interface: name(n),
            state,
            running: state != DhcpState::Stopped,
            pid: Some(7),
            address: None,
            restarts: 1,
            error: None,
            lease,
            lease_error: None,
        }
    }

    fn lease(obtained: i64) -> Lease {
        mamori_netconfig::lease::parse(
            include_bytes!("../../../netconfig/tests/data/dhcpcd-9.4.1.lease"),
            obtained,
        )
        .unwrap()
    }

    #[test]
    fn a_bound_lease_reads_in_the_apis_words() {
        let now = 1_800_000_100;
        let d = merge(
            &[name("wan0")],
            vec![reported(
                "wan0",
                DhcpState::Bound,
                Some(lease(1_800_000_000)),
            )],
            now,
        );
        assert_eq!(d.len(), 1);
        let v = serde_json::to_value(&d[0]).unwrap();
        assert_eq!(v["state"], "bound");
        assert_eq!(v["configured"], true);
        assert_eq!(v["lease"]["address"], "10.99.0.128/24");
        assert_eq!(v["lease"]["gateway"], "10.99.0.1");
        assert_eq!(
            v["lease"]["dns_servers"],
            serde_json::json!(["10.99.0.53", "10.99.0.54"])
        );
        assert_eq!(v["lease"]["server"], "10.99.0.1");
        assert_eq!(v["lease"]["lease_seconds"], 600);
        assert_eq!(v["lease"]["obtained_at"], "2027-01-15T08:00:00Z");
        assert_eq!(v["lease"]["expires_at"], "2027-01-15T08:10:00Z");
        assert_eq!(v["lease"]["remaining_seconds"], 500);
        // Run out: 0 left, never negative.
        let late = merge(
            &[],
            vec![reported("wan0", DhcpState::Requesting, Some(lease(0)))],
            now,
        );
        assert_eq!(late[0].lease.as_ref().unwrap().remaining_seconds, Some(0));
        assert!(!late[0].configured);
    }

    #[test]
    fn configured_interfaces_without_a_client_are_stopped_and_the_rest_sorted() {
        let d = merge(
            &[name("wan1"), name("wan0")],
            vec![
                reported("wan9", DhcpState::Requesting, None),
                reported("wan0", DhcpState::Failed, None),
            ],
            0,
        );
        let got: Vec<_> = d
            .iter()
            .map(|x| (x.interface.as_str(), x.state, x.configured))
            .collect();
        assert_eq!(
            got,
            [
                ("wan0", DhcpState::Failed, true),
                ("wan1", DhcpState::Stopped, true),
                ("wan9", DhcpState::Requesting, false),
            ]
        );
        assert!(
            d[1].error
                .as_deref()
                .unwrap()
                .contains("no DHCP client runs")
        );
        assert!(!d[1].running);
    }

    #[test]
    fn a_lease_whose_times_cannot_be_dates_is_a_failure_not_a_panic() {
        let d = merge(
            &[name("wan0")],
            vec![reported("wan0", DhcpState::Bound, Some(lease(i64::MAX)))],
            0,
        );
        assert_eq!(d[0].state, DhcpState::Failed);
        assert!(d[0].lease.is_none());
        assert!(
            d[0].lease_error
                .as_deref()
                .unwrap()
                .contains("out of range")
        );
    }
}
