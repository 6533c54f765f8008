//! The listeners: HTTPS on TCP, and the local console on a Unix socket.
//!
//! The allowlist and the connection limits are applied when a connection is accepted, before a
//! byte of TLS is read; handshakes and request headers have deadlines; every connection has a
//! maximum lifetime. Nothing here blocks the accept loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_auth::settings::canonical;
use mamori_auth::{AuthService, Origin};
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::extract::ConnInfo;
use crate::state::AppState;

/// Connection limits of the management listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, in total.
    pub max_connections: usize,
    /// Connections open at once from one source address (an IPv6 /64 counts as one).
    pub max_per_source: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to send a request's headers.
    pub header_timeout: Duration,
    /// Longest a connection may stay open.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_per_source: 32,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(600),
        }
    }
}

/// Counts open connections per source.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

impl PerSource {
    fn try_add(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot(self.clone(), ip))
    }
}

struct SourceSlot(Arc<PerSource>, IpAddr);

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut m = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Groups an address for per-source limits: IPv4 as is, IPv6 by /64.
fn source_group(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Audits refused connections at most once a minute per source, so a scan cannot flood the
/// audit log.
#[derive(Default)]
struct RefusalLog(Mutex<HashMap<IpAddr, u64>>);

impl RefusalLog {
    fn should_log(&self, ip: IpAddr, now: u64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 4096 {
            m.clear();
        }
        match m.get(&ip) {
            Some(t) if now < t + 60 => false,
            _ => {
                m.insert(ip, now);
                true
            }
        }
    }
}

fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(32)
        .max_header_list_size(32 * 1024);
    b
}

fn service(
    router: Router,
    conn: ConnInfo,
) -> TowerToHyperService<
    impl tower::Service<
        http::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone,
> {
    TowerToHyperService::new(router.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(conn);
        req
    }))
}

/// Serves `router` (the API and the web UI) over HTTPS on `listener` until the process ends.
pub async fn serve_https(
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    limits: Limits,
) {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_source = Arc::new(PerSource::default());
    let refusals = RefusalLog::default();
    let auth: Arc<AuthService> = state.auth.clone();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = canonical(peer.ip());
        if !auth.access().allows(ip) {
            if refusals.should_log(ip, auth.now()) {
                state.audit_record(
                    Event::new(EventKind::ConnectionRefused, Outcome::Failure)
                        .source(ip.to_string())
                        .details(json!({"reason": "source_not_allowed"})),
                );
            }
            drop(stream);
            continue;
        }
        let Ok(total_permit) = total.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let Some(slot) = per_source.try_add(source_group(ip), limits.max_per_source) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .ok()
            .map(|a| std::net::SocketAddr::new(canonical(a.ip()), a.port()));
        // Per connection, so a changed TLS setting applies to the next connection.
        let acceptor = TlsAcceptor::from(state.tls.config());
        let router = router.clone();
        tokio::spawn(async move {
            let _permits = (total_permit, slot);
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                _ => return,
            };
            let conn = ConnInfo {
                origin: Origin::https(ip),
                local,
            };
            let builder = connection_builder(&limits);
            let serve = builder.serve_connection(TokioIo::new(tls), service(router, conn));
            let _ = tokio::time::timeout(limits.connection_lifetime, serve).await;
        });
    }
}

/// Serves the console API over plain HTTP/1.1 on a Unix socket. Only root and the daemon's own
/// user may connect (checked with the kernel's peer credentials); anyone else is dropped.
pub async fn serve_console(listener: UnixListener, state: AppState, limits: Limits) {
    // The console speaks the JSON API only; there are no pages to render on it.
    let router = crate::router(state.clone(), Vec::new());
    let own_uid = nix::unistd::geteuid().as_raw();
    let total = Arc::new(Semaphore::new(16));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if !uid.is_some_and(|u| u == 0 || u == own_uid) {
            state.audit_record(
                Event::new(EventKind::ConnectionRefused, Outcome::Failure)
                    .source("console")
                    .details(json!({"reason": "console_peer_not_root", "uid": uid})),
            );
            continue;
        }
        let Ok(permit) = total.clone().try_acquire_owned() else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = ConnInfo {
                origin: Origin::CONSOLE,
                local: None,
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let serve = b.serve_connection(TokioIo::new(stream), service(router, conn));
            let _ = tokio::time::timeout(limits.connection_lifetime, serve).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_grouped_by_64_and_mapped_v4_is_v4() {
        assert_eq!(
            source_group("2001:db8::1".parse().unwrap()),
            source_group("2001:db8::2:3".parse().unwrap())
        );
        assert_eq!(
            source_group("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn per_source_slots_are_bounded_and_released() {
        let p = Arc::new(PerSource::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = p.try_add(ip, 2).unwrap();
        let _b = p.try_add(ip, 2).unwrap();
        assert!(p.try_add(ip, 2).is_none());
        drop(a);
        assert!(p.try_add(ip, 2).is_some());
    }
}
