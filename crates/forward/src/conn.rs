//! One connection to a collector: TCP, then TLS unless plain TCP was chosen; and the
//! classification of what can go wrong into [`ErrorKind`]s an administrator can act on.

use std::io;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::Prepared;
use crate::status::ErrorKind;

/// A failure with its kind and a readable message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// An open session.
pub(crate) enum Stream {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl Stream {
    /// The TCP socket underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tls(s) => s.get_ref().0,
            Self::Plain(s) => s,
        }
    }

    /// Writes `buf` and flushes it through TLS into the socket.
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Self::Plain(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// Reads whatever the collector sends (syslog collectors send nothing; this notices a close,
    /// a reset or a TLS alert). Cancel-safe: bytes already read stay in the TLS session.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tls(s) => s.read(buf).await,
            Self::Plain(s) => s.read(buf).await,
        }
    }

    /// The negotiated version and cipher suite.
    pub(crate) fn tls_info(&self) -> (Option<String>, Option<String>) {
        match self {
            Self::Tls(s) => {
                let c = s.get_ref().1;
                (
                    c.protocol_version().map(|v| format!("{v:?}")),
                    c.negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite())),
                )
            }
            Self::Plain(_) => (None, None),
        }
    }

    /// Ends the session politely (TLS close_notify), without waiting long.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            match &mut self {
                Self::Tls(s) => s.shutdown().await,
                Self::Plain(s) => s.shutdown().await,
            }
        })
        .await;
    }
}

/// Connects to the collector and, for TLS, completes the handshake with its certificate
/// verified (and pinned) as configured.
pub(crate) async fn connect(p: &Prepared, timeout: Duration) -> Result<Stream, Failure> {
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host(p.address.as_str())
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Address,
                    format!("cannot resolve {}: {e}", p.address),
                )
            })?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            Failure::new(
                ErrorKind::Connect,
                format!(
                    "cannot connect to {}: {}",
                    p.address,
                    last.unwrap_or_else(|| "no address".into())
                ),
            )
        })?;
        // Batches end with a wait for the peer's acknowledgement: Nagle would hold the last
        // segment back for that same acknowledgement.
        tcp.set_nodelay(true)
            .map_err(|e| Failure::new(ErrorKind::Connect, format!("setting TCP_NODELAY: {e}")))?;
        match &p.tls {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(|e| classify_handshake(&e)),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                ErrorKind::Connect,
                format!(
                    "no connection and TLS session with {} within {} s",
                    p.address,
                    timeout.as_secs_f32()
                ),
            ))
        })
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A failure of the TLS handshake.
pub(crate) fn classify_handshake(e: &io::Error) -> Failure {
    match rustls_error(e) {
        Some(tls) => classify_tls(tls),
        None => Failure::new(
            ErrorKind::Tls,
            format!("TLS handshake failed: {e} (the collector closed the connection?)"),
        ),
    }
}

/// A failure while the session is up (reading or writing). `fresh` is true while the session
/// is not yet confirmed: a close then means the collector refused the device.
pub(crate) fn classify_session(e: &io::Error, fresh: bool) -> Failure {
    if let Some(tls) = rustls_error(e) {
        return classify_tls(tls);
    }
    if fresh {
        return rejected_after_handshake(&e.to_string());
    }
    Failure::new(
        ErrorKind::ConnectionLost,
        format!("connection to the collector lost: {e}"),
    )
}

/// The collector closed the connection (clean end of stream).
pub(crate) fn closed_by_peer(fresh: bool) -> Failure {
    if fresh {
        return rejected_after_handshake("end of stream");
    }
    Failure::new(
        ErrorKind::ConnectionLost,
        "the collector closed the connection",
    )
}

fn rejected_after_handshake(what: &str) -> Failure {
    Failure::new(
        ErrorKind::SessionRejected,
        format!(
            "the collector closed the session right after the handshake ({what}): it probably \
             requires a client certificate and none is configured, or it does not trust the \
             device's certificate"
        ),
    )
}

fn classify_tls(e: &rustls::Error) -> Failure {
    if let Some(m) = mamori_crypto::tls::is_pin_mismatch(e) {
        return Failure::new(
            ErrorKind::CertificatePinMismatch,
            format!("collector certificate refused: {m}"),
        );
    }
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let kind = match c {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => ErrorKind::CertificateExpired,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    ErrorKind::CertificateNameMismatch
                }
                _ => ErrorKind::CertificateUntrusted,
            };
            let why = match kind {
                ErrorKind::CertificateExpired => "it is expired or not yet valid",
                ErrorKind::CertificateNameMismatch => "it is not valid for the configured name",
                _ if matches!(c, CertificateError::UnknownIssuer) => {
                    "it is not signed by the configured CA"
                }
                _ => "it is not acceptable",
            };
            Failure::new(
                kind,
                format!("collector certificate refused: {why} ({c:?})"),
            )
        }
        rustls::Error::AlertReceived(alert) => {
            let kind = match alert {
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::HandshakeFailure => ErrorKind::SessionRejected,
                _ => ErrorKind::Tls,
            };
            Failure::new(
                kind,
                format!(
                    "the collector refused the TLS session (alert {alert:?}); if it asks for a \
                     client certificate, configure the device identity and make the collector \
                     trust it"
                ),
            )
        }
        other => Failure::new(ErrorKind::Tls, format!("TLS failure: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn wrap(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn certificate_failures_have_their_own_kinds() {
        let k = |e| classify_handshake(&wrap(e)).kind;
        assert_eq!(
            k(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            ErrorKind::CertificateUntrusted
        );
        assert_eq!(
            k(rustls::Error::InvalidCertificate(CertificateError::Expired)),
            ErrorKind::CertificateExpired
        );
        assert_eq!(
            k(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            )),
            ErrorKind::CertificateNameMismatch
        );
        let pin = mamori_crypto::tls::SpkiPin::of_spki(b"x");
        assert_eq!(
            k(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(mamori_crypto::tls::PinMismatch {
                    expected: pin,
                    presented: pin,
                }))
            ))),
            ErrorKind::CertificatePinMismatch
        );
        assert_eq!(
            k(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            ErrorKind::SessionRejected
        );
        assert_eq!(
            k(rustls::Error::AlertReceived(AlertDescription::DecodeError)),
            ErrorKind::Tls
        );
        assert!(
            classify_handshake(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )))
            .message
            .contains("not signed by the configured CA")
        );
    }

    #[test]
    fn a_close_right_after_the_handshake_is_a_rejection() {
        assert_eq!(closed_by_peer(true).kind, ErrorKind::SessionRejected);
        assert_eq!(closed_by_peer(false).kind, ErrorKind::ConnectionLost);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify_session(&reset, true).kind,
            ErrorKind::SessionRejected
        );
        assert_eq!(
            classify_session(&reset, false).kind,
            ErrorKind::ConnectionLost
        );
    }
}
