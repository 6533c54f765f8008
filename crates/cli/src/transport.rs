//! How requests reach the daemon: HTTPS with a pinned trust anchor, or plain HTTP/1.1 over the
//! local console Unix socket. Both take the same [`ApiRequest`] and give the same
//! [`ApiResponse`], so the commands do not care which one is in use.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::CliError;

/// Time allowed to establish a connection (TCP + TLS, or the Unix socket).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const UA: &str = concat!("mamori-cli/", env!("CARGO_PKG_VERSION"));

/// One request to the API.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra headers (authentication).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// JSON body, sent with `Content-Type: application/json`.
    pub body: Option<Vec<u8>>,
}

/// One answer of the API.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Where requests go.
#[derive(Debug)]
pub enum Transport {
    /// HTTPS to `--url`, trusting exactly `--cacert`.
    Https(HttpsTransport),
    /// HTTP/1.1 over the console Unix socket.
    Console(ConsoleTransport),
}

impl Transport {
    /// Sends one request and reads the whole answer.
    pub async fn send(&self, req: ApiRequest) -> Result<ApiResponse, CliError> {
        match self {
            Transport::Https(t) => t.send(req).await,
            Transport::Console(t) => t.send(req).await,
        }
    }
}

/// HTTPS through reqwest with the policy's rustls configuration.
#[derive(Debug)]
pub struct HttpsTransport {
    client: reqwest::Client,
    base: reqwest::Url,
    cacert: PathBuf,
}

/// Reads every certificate of a PEM file into a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, CliError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| CliError::Usage(format!("cannot read --cacert {}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(|e| {
            CliError::Connection(format!(
                "TLS: --cacert {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            CliError::Connection(format!(
                "TLS: --cacert {} holds a certificate that cannot be a trust anchor: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(CliError::Connection(format!(
            "TLS: --cacert {} contains no PEM certificate",
            path.display()
        )));
    }
    Ok(roots)
}

impl HttpsTransport {
    /// A client for `url` that trusts exactly the certificates in `cacert`.
    pub fn new(url: &str, cacert: &Path) -> Result<Self, CliError> {
        let base =
            reqwest::Url::parse(url).map_err(|e| CliError::Usage(format!("--url {url}: {e}")))?;
        if base.scheme() != "https" {
            return Err(CliError::Usage(format!(
                "--url {url}: the management API is HTTPS only (use https://, or --console on \
                 the device)"
            )));
        }
        if base.host_str().is_none() {
            return Err(CliError::Usage(format!("--url {url}: no host")));
        }
        let roots = load_roots(cacert)?;
        let config = mamori_crypto::tls::client_config(roots)
            .map_err(|e| CliError::Connection(format!("TLS configuration: {e}")))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The device's access list is about *our* address; never go through a proxy.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(UA)
            .build()
            .map_err(|e| CliError::Connection(format!("TLS client: {}", chain(&e))))?;
        Ok(HttpsTransport {
            client,
            base,
            cacert: cacert.to_owned(),
        })
    }

    async fn send(&self, req: ApiRequest) -> Result<ApiResponse, CliError> {
        let url = self
            .base
            .join(&req.path)
            .map_err(|e| CliError::Usage(format!("bad request path {}: {e}", req.path)))?;
        let mut builder = self
            .client
            .request(req.method, url)
            .header(ACCEPT, "application/json");
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        }
        let resp = builder.send().await.map_err(|e| self.describe_error(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.describe_error(&e))?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }

    fn describe_error(&self, e: &reqwest::Error) -> CliError {
        let target = self.base.origin().ascii_serialization();
        if let Some(tls) = find_rustls_error(e) {
            return CliError::Connection(describe_tls(tls, &self.base, &self.cacert));
        }
        if e.is_timeout() {
            return CliError::Connection(format!("{target}: timed out ({})", chain(e)));
        }
        if e.is_connect() {
            return CliError::Connection(format!("cannot connect to {target}: {}", chain(e)));
        }
        CliError::Connection(format!("{target}: {}", chain(e)))
    }
}

/// Finds a rustls error anywhere in an error's source chain (also inside `io::Error`s, whose
/// `source()` skips the wrapped error).
fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            if let Some(found) = find_rustls_error(inner) {
                return Some(found);
            }
        }
        cur = err.source();
    }
    None
}

/// A message for a TLS failure that tells the administrator what to do.
fn describe_tls(e: &rustls::Error, base: &reqwest::Url, cacert: &Path) -> String {
    use rustls::CertificateError as C;
    let host = base.host_str().unwrap_or("?");
    match e {
        rustls::Error::InvalidCertificate(C::NotValidForName) => format!(
            "TLS: the server certificate is not valid for the name {host:?}; connect with a name \
             the certificate lists (the device certificate names 127.0.0.1, ::1 and localhost)"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => format!(
            "TLS: the server certificate is not valid for the name {host:?}; it is valid for: \
             {}. Use one of those in --url",
            presented
                .iter()
                .map(|n| presented_name(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "TLS: the server's certificate is not signed by the certificate in --cacert {}: \
             wrong --cacert file, or not the device you expect ({e})",
            cacert.display()
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("TLS: the server certificate has expired ({e})")
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            format!("TLS: the server certificate is not valid yet; check the clocks ({e})")
        }
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// `DnsName("a.example")` / `IpAddress(192.0.2.1)` (as rustls lists presented names) → the
/// bare name.
fn presented_name(n: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(rest) = n.strip_prefix(prefix) {
            return rest.trim_end_matches(')').trim_end_matches('"');
        }
    }
    n
}

/// The error and its causes on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Plain HTTP/1.1 over the console Unix socket; one connection per request.
#[derive(Debug)]
pub struct ConsoleTransport {
    socket: PathBuf,
}

impl ConsoleTransport {
    /// A transport for the console socket at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        ConsoleTransport { socket }
    }

    async fn send(&self, req: ApiRequest) -> Result<ApiResponse, CliError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req)).await {
            Ok(result) => result,
            Err(_) => Err(CliError::Connection(format!(
                "console {}: no answer within {} s",
                self.socket.display(),
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn exchange(&self, req: ApiRequest) -> Result<ApiResponse, CliError> {
        let sock = self.socket.display();
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::UnixStream::connect(&self.socket),
        )
        .await
        .map_err(|_| CliError::Connection(format!("console {sock}: connect timed out")))?
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    " (no such socket: is mamorid running? use --state-dir or --console=PATH)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    " (the console is for root or the daemon's user)"
                }
                std::io::ErrorKind::ConnectionRefused => {
                    " (nobody is listening: is mamorid running?)"
                }
                _ => "",
            };
            CliError::Connection(format!("cannot connect to console {sock}: {e}{why}"))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::Connection(format!("console {sock}: {}", chain(&e))))?;
        let driver = tokio::spawn(conn);

        let mut builder = http::Request::builder()
            .method(req.method)
            .uri(req.path.as_str())
            .header(HOST, "localhost")
            .header(USER_AGENT, UA)
            .header(ACCEPT, "application/json");
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let body = match req.body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|e| CliError::Usage(format!("bad request {}: {e}", req.path)))?;
        let closed = |e: hyper::Error| {
            CliError::Connection(format!(
                "console {sock}: {} (the console accepts only root or the daemon's user)",
                chain(&e)
            ))
        };
        let resp = sender.send_request(request).await.map_err(closed)?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(closed)?.to_bytes();
        driver.abort();
        Ok(ApiResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_are_unwrapped() {
        assert_eq!(presented_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(presented_name("IpAddress(::1)"), "::1");
        assert_eq!(presented_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(presented_name("other"), "other");
    }

    #[test]
    fn url_must_be_https() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = HttpsTransport::new("http://127.0.0.1:1", &missing).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let err = HttpsTransport::new("not a url", &missing).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn cacert_problems_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = HttpsTransport::new("https://127.0.0.1:1", &missing).unwrap_err();
        assert!(err.to_string().contains("cannot read --cacert"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = HttpsTransport::new("https://127.0.0.1:1", &empty).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_server_is_a_connection_error() {
        let dir = tempfile::tempdir().unwrap();
        let id = mamori_crypto::cert::generate(&mamori_crypto::cert::IdentityRequest {
            common_name: "test".into(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            validity_days: 1,
        })
        .unwrap();
        let pem = dir.path().join("c.pem");
        std::fs::write(&pem, id.cert_pem).unwrap();
        // A port nobody listens on: bind, learn it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = HttpsTransport::new(&format!("https://127.0.0.1:{port}"), &pem).unwrap();
        let err = t
            .send(ApiRequest {
                method: Method::GET,
                path: "/healthz".into(),
                headers: vec![],
                body: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
    }

    #[tokio::test]
    async fn missing_console_socket_is_a_connection_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = ConsoleTransport::new(dir.path().join("console.sock"));
        let err = t
            .send(ApiRequest {
                method: Method::GET,
                path: "/healthz".into(),
                headers: vec![],
                body: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("no such socket"), "{err}");
    }
}
