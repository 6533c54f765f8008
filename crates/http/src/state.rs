//! What every handler can reach.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use mamori_audit::log::AuditLog;
use mamori_auth::{AuthError, AuthService};
use mamori_crypto::CryptoError;
use mamori_crypto::tls::TlsOptions;
use mamori_store::Store;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::ServerConfig;

use crate::error::ApiError;

/// The device's identity, as shown to authenticated users.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeviceIdentity {
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware (software) version.
    pub firmware_version: String,
}

/// Builds a server configuration for given options (the key and certificate are captured).
pub type TlsBuilder = Box<dyn Fn(TlsOptions) -> Result<ServerConfig, CryptoError> + Send + Sync>;

/// The live TLS configuration of the HTTPS listener. Changing the options rebuilds it; new
/// connections use the new one, open ones keep theirs.
pub struct TlsControl {
    current: RwLock<(TlsOptions, Arc<ServerConfig>)>,
    build: TlsBuilder,
}

impl std::fmt::Debug for TlsControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsControl")
            .field("options", &self.options())
            .finish()
    }
}

impl TlsControl {
    /// Builds the first configuration.
    pub fn new(options: TlsOptions, build: TlsBuilder) -> Result<Self, CryptoError> {
        let config = Arc::new(build(options)?);
        Ok(Self {
            current: RwLock::new((options, config)),
            build,
        })
    }

    /// The configuration for the next connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().1.clone(), |c| c.1.clone())
    }

    /// The options in force.
    pub fn options(&self) -> TlsOptions {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().0, |c| c.0)
    }

    /// Rebuilds the configuration with new options.
    pub fn set(&self, options: TlsOptions) -> Result<(), CryptoError> {
        let config = Arc::new((self.build)(options)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (options, config);
        Ok(())
    }
}

/// A function that reports the process and sandbox status for `GET /api/v1/status`.
pub type StatusProvider = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Shared state of the management service.
#[derive(Clone)]
pub struct AppState {
    /// The authentication service.
    pub auth: Arc<AuthService>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Device identity.
    pub device: Arc<DeviceIdentity>,
    /// Process and sandbox status.
    pub status: StatusProvider,
    /// The live TLS configuration.
    pub tls: Arc<TlsControl>,
    /// The store, for settings that are not the authentication service's.
    pub store: Arc<Store>,
    /// The audit log forwarder (its settings and status).
    pub forwarding: Arc<dyn crate::handlers::forwarding::ForwardingControl>,
    /// Time: NTP status and configuration, the manual set-time ([`AppState::with_time`]).
    pub time: Arc<dyn crate::handlers::time::TimeControl>,
    /// The port inventory ([`AppState::with_ports`]).
    pub ports: crate::handlers::ports::PortsProvider,
    /// Network management ([`AppState::with_network`]); none when the device manages no
    /// network (no `--factory-network`).
    pub network: Option<Arc<crate::handlers::config::Network>>,
    /// The wan's DHCP clients, from the privileged parent ([`AppState::with_dhcp_status`]).
    pub dhcp_status: crate::handlers::network::DhcpStatusProvider,
    /// Bounds concurrent password hashing so a login flood cannot starve the device.
    hashing: Arc<Semaphore>,
    /// One large (configuration) body in memory at a time, whether or not the device manages
    /// its network: such a body is read and checked before that question is answered.
    pub(crate) large_bodies: Arc<Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// How long a request waits for a free password-hashing slot before answering "busy".
const HASHING_WAIT: Duration = Duration::from_secs(10);

impl AppState {
    /// Builds the state. `hashing_slots` bounds concurrent password hashes (one per core is
    /// right: each hash keeps a core busy for ~80 ms).
    #[allow(clippy::too_many_arguments)] // one per shared service; a builder would add nothing
    pub fn new(
        auth: Arc<AuthService>,
        audit: Arc<AuditLog>,
        device: DeviceIdentity,
        status: StatusProvider,
        tls: Arc<TlsControl>,
        store: Arc<Store>,
        forwarding: Arc<dyn crate::handlers::forwarding::ForwardingControl>,
        hashing_slots: usize,
    ) -> Self {
        Self {
            auth,
            audit,
            device: Arc::new(device),
            status,
            tls,
            store,
            forwarding,
            time: Arc::new(crate::handlers::time::NoTime),
            ports: crate::handlers::ports::unavailable(),
            network: None,
            dhcp_status: crate::handlers::network::unavailable(),
            hashing: Arc::new(Semaphore::new(hashing_slots.max(1))),
            large_bodies: Arc::new(Semaphore::new(1)),
        }
    }

    /// The same state with the daemon's time functions (without them, the time endpoints
    /// answer that time is not available).
    #[must_use]
    pub fn with_time(mut self, time: Arc<dyn crate::handlers::time::TimeControl>) -> Self {
        self.time = time;
        self
    }

    /// The same state with network management.
    #[must_use]
    pub fn with_network(mut self, network: Arc<crate::handlers::config::Network>) -> Self {
        self.network = Some(network);
        self
    }

    /// The same state with the daemon's DHCP status (without it, the network status endpoint
    /// answers with an internal error on a device that manages its network).
    #[must_use]
    pub fn with_dhcp_status(
        mut self,
        dhcp_status: crate::handlers::network::DhcpStatusProvider,
    ) -> Self {
        self.dhcp_status = dhcp_status;
        self
    }

    /// The same state with the daemon's port inventory (without it, the ports endpoint answers
    /// with an internal error).
    #[must_use]
    pub fn with_ports(mut self, ports: crate::handlers::ports::PortsProvider) -> Self {
        self.ports = ports;
        self
    }

    /// Records an audit event.
    pub fn audit_record(&self, event: mamori_audit::Event) {
        use mamori_audit::Sink;
        self.audit.record(event);
    }

    /// Runs a service call that does store I/O on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AuthService) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let auth = self.auth.clone();
        tokio::task::spawn_blocking(move || f(&auth))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::from)
    }

    /// Runs a service call that hashes a password: on the blocking pool, at most
    /// `hashing_slots` at a time. The event loop never waits on it.
    pub async fn run_hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AuthService) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(HASHING_WAIT, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Busy)?
            .map_err(|_| ApiError::Busy)?;
        let out = self.run(f).await;
        drop(permit);
        out
    }
}
