//! A software security key for tests: answers the service's WebAuthn options the way a browser
//! and a FIDO2 authenticator would (attestation "none", user present and verified), with an
//! ES256, ES384 or RS256 key, and can be told to get things wrong on purpose.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256,
};
use data_encoding::BASE64URL_NOPAD;
use mamori_crypto::digest::sha256;
use serde_json::{Value, json};

/// The origin the tests' web UI is opened at (the default RP id, `localhost`).
pub const ORIGIN: &str = "https://localhost";

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// One software authenticator holding one credential.
pub struct SoftKey {
    signer: Signer,
    /// COSE public key, CBOR-encoded.
    cose_key: Vec<u8>,
    /// The credential id.
    pub cred_id: Vec<u8>,
    /// The signature counter, raised before each assertion.
    pub counter: u32,
}

/// How to answer one ceremony; the default is a faithful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The origin the browser reports.
    pub origin: String,
    /// The RP id whose hash the authenticator signs (default: the one in the options).
    pub rp_id: Option<String>,
    /// Sign, then spoil the signature.
    pub bad_signature: bool,
}

impl Default for Answer {
    fn default() -> Self {
        Self {
            origin: ORIGIN.into(),
            rp_id: None,
            bad_signature: false,
        }
    }
}

impl SoftKey {
    /// An ECDSA P-256 key (COSE ES256, -7).
    pub fn es256() -> Self {
        Self::ec(&ECDSA_P256_SHA256_ASN1_SIGNING, -7, 1)
    }

    /// An ECDSA P-384 key (COSE ES384, -35): outside the policy.
    pub fn es384() -> Self {
        Self::ec(&ECDSA_P384_SHA384_ASN1_SIGNING, -35, 2)
    }

    fn ec(
        alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        cose_alg: i64,
        crv: i64,
    ) -> Self {
        let kp = EcdsaKeyPair::generate(alg).unwrap();
        let point = kp.public_key().as_ref().to_vec();
        let n = (point.len() - 1) / 2;
        let cose_key = cbor_map(&[
            (int(1), int(2)),
            (int(3), int(cose_alg)),
            (int(-1), int(crv)),
            (int(-2), bytes(&point[1..=n])),
            (int(-3), bytes(&point[1 + n..])),
        ]);
        Self::new(Signer::Ec(kp), cose_key)
    }

    /// An RSA 2048 key (COSE RS256, -257): outside the policy.
    pub fn rs256() -> Self {
        let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pk = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
        let cose_key = cbor_map(&[
            (int(1), int(3)),
            (int(3), int(-257)),
            (int(-1), bytes(&pk.n)),
            (int(-2), bytes(&pk.e)),
        ]);
        Self::new(Signer::Rsa(kp), cose_key)
    }

    fn new(signer: Signer, cose_key: Vec<u8>) -> Self {
        Self {
            signer,
            cose_key,
            cred_id: mamori_crypto::random::bytes::<32>().unwrap().to_vec(),
            counter: 0,
        }
    }

    /// Answers `navigator.credentials.create` options faithfully.
    pub fn register(&mut self, options: &Value) -> String {
        self.register_as(options, &Answer::default())
    }

    /// Answers `navigator.credentials.create` options as told.
    pub fn register_as(&mut self, options: &Value, how: &Answer) -> String {
        let o = &options["publicKey"];
        let rp_id = how
            .rp_id
            .clone()
            .unwrap_or_else(|| o["rp"]["id"].as_str().unwrap().to_string());
        let client_data = client_data("webauthn.create", o, &how.origin);
        let mut auth_data = sha256(rp_id.as_bytes()).to_vec();
        // User present, user verified, attested credential data included.
        auth_data.push(0x01 | 0x04 | 0x40);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]);
        auth_data.extend_from_slice(&u16::try_from(self.cred_id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&self.cred_id);
        auth_data.extend_from_slice(&self.cose_key);
        let attestation = cbor_map(&[
            (text("fmt"), text("none")),
            (text("attStmt"), cbor_map(&[])),
            (text("authData"), bytes(&auth_data)),
        ]);
        let id = BASE64URL_NOPAD.encode(&self.cred_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": BASE64URL_NOPAD.encode(&attestation),
                "clientDataJSON": BASE64URL_NOPAD.encode(&client_data),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// Answers `navigator.credentials.get` options faithfully.
    pub fn assert(&mut self, options: &Value) -> String {
        self.assert_as(options, &Answer::default())
    }

    /// Answers `navigator.credentials.get` options as told.
    pub fn assert_as(&mut self, options: &Value, how: &Answer) -> String {
        let o = &options["publicKey"];
        let rp_id = how
            .rp_id
            .clone()
            .unwrap_or_else(|| o["rpId"].as_str().unwrap().to_string());
        self.counter += 1;
        let client_data = client_data("webauthn.get", o, &how.origin);
        let mut auth_data = sha256(rp_id.as_bytes()).to_vec();
        auth_data.push(0x01 | 0x04);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(&client_data));
        let rng = SystemRandom::new();
        let mut signature = match &self.signer {
            Signer::Ec(kp) => kp.sign(&rng, &signed).unwrap().as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, &signed, &mut sig).unwrap();
                sig
            }
        };
        if how.bad_signature {
            // Still well-formed DER, but over something else.
            let last = signature.len() - 1;
            signature[last] ^= 0x01;
        }
        let id = BASE64URL_NOPAD.encode(&self.cred_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": BASE64URL_NOPAD.encode(&auth_data),
                "clientDataJSON": BASE64URL_NOPAD.encode(&client_data),
                "signature": BASE64URL_NOPAD.encode(&signature),
                "userHandle": null,
            },
            "extensions": {},
        })
        .to_string()
    }
}

fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
    json!({
        "type": kind,
        "challenge": options["challenge"].as_str().unwrap(),
        "origin": origin,
        "crossOrigin": false,
    })
    .to_string()
    .into_bytes()
}

// A few lines of CBOR (RFC 8949) encoding: enough for COSE keys and attestation objects.

fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | u8::try_from(n).unwrap()],
        24..=0xff => vec![m | 24, u8::try_from(n).unwrap()],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
            v
        }
    }
}

fn int(i: i64) -> Vec<u8> {
    if i >= 0 {
        head(0, i.unsigned_abs())
    } else {
        head(1, (-1 - i).unsigned_abs())
    }
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn text(s: &str) -> Vec<u8> {
    let mut v = head(3, s.len() as u64);
    v.extend_from_slice(s.as_bytes());
    v
}

fn cbor_map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut v = head(5, entries.len() as u64);
    for (k, val) in entries {
        v.extend_from_slice(k);
        v.extend_from_slice(val);
    }
    v
}
