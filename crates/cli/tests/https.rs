//! The `mamori` binary over HTTPS against an in-test server using the policy's TLS
//! configuration and a self-signed device certificate, as the daemon does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Api, DEVICE_JSON, PASSWORD, mamori, router, stderr, stdout};
use mamori_crypto::cert::{IdentityRequest, TlsIdentity, generate};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TCP listener that completes the TLS handshake before handing a connection to axum.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // Failed handshakes (the client rejecting our certificate) are expected here.
            if let Ok(tls) = self.tls.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn identity(dns: &str, ips: &[&str]) -> TlsIdentity {
    generate(&IdentityRequest {
        common_name: "MG-1 SN0001".into(),
        dns_names: vec![dns.into()],
        ip_addresses: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        validity_days: 2,
    })
    .unwrap()
}

struct Server {
    api: Api,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn cacert(&self) -> String {
        self.dir
            .path()
            .join("device-cert.pem")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

/// Serves the stand-in API over TLS with `id`, and writes `id`'s certificate as the cacert.
async fn serve(id: &TlsIdentity) -> Server {
    let (chain, key) = mamori_crypto::cert::rustls_parts(&id.cert_der, &id.key_pkcs8_der);
    let config = mamori_crypto::tls::server_config(chain, key, Default::default()).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener {
        tcp,
        tls: TlsAcceptor::from(Arc::new(config)),
    };
    let api = Api::default();
    let app = router(api.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("device-cert.pem"), &id.cert_pem).unwrap();
    Server {
        api,
        url: format!("https://127.0.0.1:{port}"),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_over_https_with_the_pinned_certificate() {
    let s = serve(&identity("localhost", &["127.0.0.1", "::1"])).await;
    let cacert = s.cacert();
    let out = mamori(
        &["--url", &s.url, "--cacert", &cacert, "device", "--json"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{DEVICE_JSON}\n"));
    assert_eq!(
        s.api.log(),
        [
            ("POST".into(), "/api/v1/auth/login".into()),
            ("GET".into(), "/api/v1/device".into()),
            ("POST".into(), "/api/v1/auth/logout".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_work_like_flags() {
    let s = serve(&identity("localhost", &["127.0.0.1"])).await;
    let cacert = s.cacert();
    let out = mamori(
        &["login"],
        &[
            ("MAMORI_URL", &s.url),
            ("MAMORI_CACERT", &cacert),
            ("MAMORI_USER", "alice"),
            ("MAMORI_PASSWORD", PASSWORD),
        ],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("logged in as alice (role admin)\nsession expires at "),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_certificate_is_not_trusted() {
    let s = serve(&identity("localhost", &["127.0.0.1"])).await;
    // Trust some other device's certificate.
    let other = identity("localhost", &["127.0.0.1"]);
    let wrong = s.dir.path().join("other.pem");
    std::fs::write(&wrong, &other.cert_pem).unwrap();
    let out = mamori(
        &[
            "--url",
            &s.url,
            "--cacert",
            wrong.to_str().unwrap(),
            "device",
        ],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not signed by the certificate in --cacert"),
        "{}",
        stderr(&out)
    );
    assert!(
        s.api.log().is_empty(),
        "no request may pass a failed handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_mismatch_is_explained() {
    // The certificate does not name 127.0.0.1.
    let s = serve(&identity("gateway.example", &["192.0.2.1"])).await;
    let cacert = s.cacert();
    let out = mamori(
        &["--url", &s.url, "--cacert", &cacert, "device"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not valid for the name \"127.0.0.1\""),
        "{err}"
    );
    assert!(
        err.contains("valid for: gateway.example, 192.0.2.1."),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_url_is_refused() {
    let out = mamori(
        &[
            "--url",
            "http://127.0.0.1:1",
            "--cacert",
            "/nonexistent.pem",
            "device",
        ],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTPS only"), "{}", stderr(&out));
}
