//! TLS client side of the measurements, built on the product's own client configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// [`mamori_crypto::tls::client_config`] (TLS 1.3/1.2, AES-GCM only, P-256 then P-384), trusting
/// exactly the certificates in `cert_pem`, with session resumption disabled so that every
/// connection is a full handshake.
pub fn client_config(cert_pem: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .with_context(|| format!("reading {}", cert_pem.display()))?;
    for cert in certs {
        roots.add(cert.with_context(|| format!("parsing {}", cert_pem.display()))?)?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no certificate in {}",
        cert_pem.display()
    );
    let mut config = mamori_crypto::tls::client_config(roots)?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server name to verify: an IP address or a DNS name.
pub fn server_name(name: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).with_context(|| format!("server name {name:?}"))
}

/// Opens a TCP connection to `addr` (from `local` when given: bound before connecting) and runs
/// a TLS handshake on it.
pub async fn connect(
    connector: &TlsConnector,
    name: &ServerName<'static>,
    addr: SocketAddr,
    local: Option<IpAddr>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    connector.connect(name.clone(), tcp).await
}
