//! S3.1-20 R3 and the project's crypto policy (CRYPTO-POLICY.md): only TLS 1.3/1.2 with
//! AES-GCM and the NIST groups P-256/P-384; the device key is ECDSA P-256 and unique per device
//! (S3.1-19).

use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group as kx};
use rustls::version::{TLS12, TLS13};
use rustls::{CipherSuite, NamedGroup, ProtocolVersion};

use crate::common::*;
use crate::support::*;

fn connect_arg(d: &Device) -> String {
    d.addr.to_string()
}

/// S3.1-20 R3: `openssl s_client` offering only what the policy excludes is refused every
/// time (the server answers with an alert, after reading the client's hello); the same client
/// with policy algorithms gets through, so the refusals are the server's.
#[test]
fn openssl_handshakes_outside_the_policy_are_refused() {
    let d = Device::start();
    let addr = connect_arg(&d);
    let base = [
        "s_client",
        "-connect",
        addr.as_str(),
        "-servername",
        "device",
    ];
    let refused: &[(&str, &[&str])] = &[
        ("TLS 1.0", &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        ("TLS 1.1", &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        (
            "TLS 1.2 CBC",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"],
        ),
        (
            "TLS 1.2 CBC SHA1",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"],
        ),
        (
            "TLS 1.2 RSA key transport",
            &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        ),
        (
            "TLS 1.2 DHE",
            &["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
        ),
        (
            "TLS 1.3 ChaCha20",
            &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
        ),
        (
            "TLS 1.2 ChaCha20",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
        ),
        ("X25519 (TLS 1.3)", &["-tls1_3", "-groups", "X25519"]),
        ("X25519 (TLS 1.2)", &["-tls1_2", "-groups", "X25519"]),
        ("X448", &["-groups", "X448"]),
        ("P-521", &["-groups", "P-521"]),
    ];
    for (name, extra) in refused {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (ok, out) = openssl(&args);
        assert!(!ok, "{name}: handshake succeeded:\n{out}");
        assert!(
            !out.contains("New, TLSv1"),
            "{name}: a session was established:\n{out}"
        );
        // The hello went out and the server answered with an alert, not silence: the client
        // did not refuse on its own.
        assert!(
            !out.contains("written 0 bytes") && !out.contains("no protocols available"),
            "{name}: the client never offered it:\n{out}"
        );
        assert!(
            out.contains("alert") || out.contains("read 7 bytes"),
            "{name}: no alert from the server:\n{out}"
        );
    }
    let accepted: &[(&str, &[&str], &str)] = &[
        (
            "TLS 1.3 P-256",
            &["-tls1_3", "-groups", "P-256"],
            "TLS_AES_256_GCM_SHA384",
        ),
        (
            "TLS 1.3 P-384 AES-128",
            &[
                "-tls1_3",
                "-groups",
                "P-384",
                "-ciphersuites",
                "TLS_AES_128_GCM_SHA256",
            ],
            "TLS_AES_128_GCM_SHA256",
        ),
        (
            "TLS 1.2 ECDHE-ECDSA-AES128-GCM",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
    ];
    for (name, extra, cipher) in accepted {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (_, out) = openssl(&args);
        assert!(
            out.contains(&format!("Cipher is {cipher}")),
            "{name}: expected {cipher}:\n{out}"
        );
    }
}

fn expect_ok(
    d: &Device,
    name: &str,
    suite: rustls::SupportedCipherSuite,
    group: &'static dyn rustls::crypto::SupportedKxGroup,
    version: &'static rustls::SupportedProtocolVersion,
) -> Negotiated {
    let cfg = client_config_with(d.roots(), vec![suite], vec![group], &[version]);
    let n = handshake(d.addr, "127.0.0.1", cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(n.suite, suite.suite(), "{name}");
    assert_eq!(n.group, Some(group.name()), "{name}");
    eprintln!("{name}: {n:?}");
    n
}

fn expect_refused(
    d: &Device,
    name: &str,
    suites: Vec<rustls::SupportedCipherSuite>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) {
    let cfg = client_config_with(d.roots(), suites, groups, versions);
    match handshake(d.addr, "127.0.0.1", cfg) {
        Ok(n) => panic!("{name}: the device accepted {n:?}"),
        Err(e) => eprintln!("{name}: refused ({e})"),
    }
}

/// S3.1-20 R3: a rustls client offering one policy suite and one policy group completes the
/// handshake and is served; one offering only X25519 or only ChaCha20 is refused.
#[test]
fn rustls_gets_exactly_the_policy_suites_and_groups() {
    let d = Device::start();
    for (name, suite, group) in [
        (
            "TLS 1.3 AES-256-GCM P-256",
            cs::TLS13_AES_256_GCM_SHA384,
            kx::SECP256R1,
        ),
        (
            "TLS 1.3 AES-256-GCM P-384",
            cs::TLS13_AES_256_GCM_SHA384,
            kx::SECP384R1,
        ),
        (
            "TLS 1.3 AES-128-GCM P-256",
            cs::TLS13_AES_128_GCM_SHA256,
            kx::SECP256R1,
        ),
        (
            "TLS 1.3 AES-128-GCM P-384",
            cs::TLS13_AES_128_GCM_SHA256,
            kx::SECP384R1,
        ),
    ] {
        let n = expect_ok(&d, name, suite, group, &TLS13);
        assert_eq!(n.version, ProtocolVersion::TLSv1_3);
    }
    for (name, suite, group) in [
        (
            "TLS 1.2 ECDHE-ECDSA-AES256-GCM P-256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            kx::SECP256R1,
        ),
        (
            "TLS 1.2 ECDHE-ECDSA-AES128-GCM P-384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            kx::SECP384R1,
        ),
    ] {
        let n = expect_ok(&d, name, suite, group, &TLS12);
        assert_eq!(n.version, ProtocolVersion::TLSv1_2);
    }
    expect_refused(
        &d,
        "TLS 1.3 X25519 only",
        vec![cs::TLS13_AES_256_GCM_SHA384, cs::TLS13_AES_128_GCM_SHA256],
        vec![kx::X25519],
        &[&TLS13],
    );
    expect_refused(
        &d,
        "TLS 1.2 X25519 only",
        vec![cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
        vec![kx::X25519],
        &[&TLS12],
    );
    expect_refused(
        &d,
        "TLS 1.3 X25519MLKEM768 only",
        vec![cs::TLS13_AES_256_GCM_SHA384],
        vec![kx::X25519MLKEM768],
        &[&TLS13],
    );
    expect_refused(
        &d,
        "TLS 1.3 ChaCha20 only",
        vec![cs::TLS13_CHACHA20_POLY1305_SHA256],
        vec![kx::SECP256R1],
        &[&TLS13],
    );
    expect_refused(
        &d,
        "TLS 1.2 ChaCha20 only",
        vec![cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
        vec![kx::SECP256R1],
        &[&TLS12],
    );
    // A client that offers everything gets the strongest policy choice.
    let all = rustls::crypto::aws_lc_rs::default_provider();
    let cfg = client_config_with(
        d.roots(),
        all.cipher_suites,
        all.kx_groups,
        &[&TLS13, &TLS12],
    );
    let n = handshake(d.addr, "127.0.0.1", cfg).unwrap();
    eprintln!("default client: {n:?}");
    assert_eq!(n.version, ProtocolVersion::TLSv1_3);
    assert_eq!(n.suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert!(
        matches!(
            n.group,
            Some(NamedGroup::secp256r1) | Some(NamedGroup::secp384r1)
        ),
        "{n:?}"
    );
}

fn public_key_pem(cert: &std::path::Path) -> String {
    let (ok, out) = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
    assert!(ok, "{out}");
    out
}

/// S3.1-05 R1, S3.1-19 R2: the served certificate is ECDSA P-256 signed with SHA-256, and two
/// devices get different certificates and different keys.
#[test]
fn the_device_certificate_is_ecdsa_p256_and_unique_per_device() {
    let a = Device::start();
    let b = Device::start();
    let (ok, text) = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        a.cert_path().to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("id-ecPublicKey"), "{text}");
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    // The certificate served is the one on disk (the handshake pins exactly that one).
    handshake(
        a.addr,
        "127.0.0.1",
        mamori_crypto::tls::client_config(a.roots()).unwrap(),
    )
    .unwrap();
    let ca = std::fs::read(a.cert_path()).unwrap();
    let cb = std::fs::read(b.cert_path()).unwrap();
    assert_ne!(ca, cb, "two devices share a certificate");
    let (ka, kb) = (
        public_key_pem(&a.cert_path()),
        public_key_pem(&b.cert_path()),
    );
    assert!(ka.contains("BEGIN PUBLIC KEY"), "{ka}");
    assert_ne!(ka, kb, "two devices share a key");
    // And a's client does not trust b.
    assert!(
        handshake(
            b.addr,
            "127.0.0.1",
            mamori_crypto::tls::client_config(a.roots()).unwrap()
        )
        .is_err()
    );
}

/// CRYPTO-POLICY.md: ChaCha20-Poly1305 is on the CRYPTREC list and off by default; an admin
/// (after re-authentication) may enable it, new connections then get it, X25519 stays refused,
/// and disabling it refuses it again. A non-reauthenticated session cannot change it.
#[test]
fn chacha20_is_off_by_default_and_only_an_admin_can_enable_it() {
    let d = Device::start();
    let admin = d.admin();
    let chacha = || {
        client_config_with(
            d.roots(),
            vec![cs::TLS13_CHACHA20_POLY1305_SHA256],
            vec![kx::SECP256R1],
            &[&TLS13],
        )
    };
    assert!(handshake(d.addr, "127.0.0.1", chacha()).is_err());
    let r = admin.get("/api/v1/settings/tls");
    assert_eq!(r.body["allow_chacha20"], false, "{}", r.text);
    let r = admin.put(
        "/api/v1/settings/tls",
        &serde_json::json!({"allow_chacha20": true}),
    );
    assert_eq!(r.code(), "reauth_required", "{}", r.text);
    assert!(handshake(d.addr, "127.0.0.1", chacha()).is_err());

    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put(
        "/api/v1/settings/tls",
        &serde_json::json!({"allow_chacha20": true}),
    );
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let n = handshake(d.addr, "127.0.0.1", chacha()).expect("ChaCha20 once enabled");
    assert_eq!(n.suite, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    expect_refused(
        &d,
        "X25519 with ChaCha20 enabled",
        vec![cs::TLS13_CHACHA20_POLY1305_SHA256],
        vec![kx::X25519],
        &[&TLS13],
    );
    let r = admin.put(
        "/api/v1/settings/tls",
        &serde_json::json!({"allow_chacha20": false}),
    );
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(handshake(d.addr, "127.0.0.1", chacha()).is_err());
}
