//! The table of algorithms mamori uses, with the CRYPTREC reference for each.
//!
//! This table is data for people and for the evidence generator. The code that *uses* each
//! algorithm sits in the sibling modules and a test checks that both agree.

use serde::Serialize;

/// One algorithm choice and why it is allowed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Algorithm {
    /// What the product uses it for.
    pub purpose: &'static str,
    /// The algorithm and its parameters.
    pub algorithm: &'static str,
    /// Where the CRYPTREC list (LS-0001-2022R1) or guideline (GL-3001) allows it.
    pub basis: &'static str,
}

/// PBKDF2 iteration count for new password hashes (CRYPTO-POLICY.md: at least 600,000).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// The lowest PBKDF2 iteration count a stored hash may have and still be accepted.
pub const PBKDF2_MIN_ITERATIONS: u32 = 600_000;
/// PBKDF2 salt length in bytes.
pub const PBKDF2_SALT_LEN: usize = 16;
/// PBKDF2 output length in bytes.
pub const PBKDF2_OUTPUT_LEN: usize = 32;
/// AES-GCM nonce length in bytes (96-bit nonces).
pub const AEAD_NONCE_LEN: usize = 12;
/// Messages one key may seal with random 96-bit nonces (NIST SP 800-38D §8.3: 2^32).
pub const AEAD_MESSAGE_LIMIT: u64 = 1 << 32;
/// TOTP time step in seconds (RFC 6238).
pub const TOTP_STEP_SECONDS: u64 = 30;
/// TOTP digits.
pub const TOTP_DIGITS: u32 = 6;
/// COSE algorithm identifiers (RFC 9053) a WebAuthn security key may use: ES256 (-7) only, as
/// CRYPTO-POLICY.md asks. Registration requests exactly these and refuses any other key.
pub const WEBAUTHN_COSE_ALGORITHMS: &[i64] = &[-7];

/// Everything mamori uses, in one place.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        purpose: "TLS protocol versions",
        algorithm: "TLS 1.3, TLS 1.2 (nothing older)",
        basis: "GL-3001 recommended security type",
    },
    Algorithm {
        purpose: "TLS 1.3 cipher suites",
        algorithm: "TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256 (TLS_CHACHA20_POLY1305_SHA256 only if an admin enables it)",
        basis: "LS-0001 authenticated encryption AES-GCM; GL-3001",
    },
    Algorithm {
        purpose: "TLS 1.2 cipher suites",
        algorithm: "ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256",
        basis: "GL-3001 recommended security type; no CBC, no RSA key transport",
    },
    Algorithm {
        purpose: "TLS key exchange groups",
        algorithm: "secp256r1, secp384r1 (no X25519)",
        basis: "LS-0001 ECDH over NIST P-256/P-384",
    },
    Algorithm {
        purpose: "Device TLS key and certificate",
        algorithm: "ECDSA P-256 with SHA-256, generated on the device",
        basis: "LS-0001 ECDSA; LS-0003 128-bit security",
    },
    Algorithm {
        purpose: "Encryption of stored values and key wrapping",
        algorithm: "AES-256-GCM, 96-bit random nonces, at most 2^32 messages per key",
        basis: "LS-0001 AES + GCM",
    },
    Algorithm {
        purpose: "Per-purpose subkeys of the data key",
        algorithm: "HMAC-SHA-256 over a purpose label (the HKDF-Expand step, one block)",
        basis: "LS-0001 HMAC + SHA-256 (HKDF built only from listed primitives)",
    },
    Algorithm {
        purpose: "Password storage",
        algorithm: "PBKDF2-HMAC-SHA-256, 600,000 iterations, 16-byte salt, parameters stored per hash",
        basis: "LS-0001 HMAC + SHA-256 (PBKDF2 built only from listed primitives)",
    },
    Algorithm {
        purpose: "Hashing of tokens, session ids and recovery codes",
        algorithm: "SHA-256",
        basis: "LS-0001 SHA-256",
    },
    Algorithm {
        purpose: "Message authentication",
        algorithm: "HMAC-SHA-256",
        basis: "LS-0001 HMAC",
    },
    Algorithm {
        purpose: "One-time passwords (TOTP)",
        algorithm: "RFC 6238 with HMAC-SHA-256, 6 digits, 30 s step",
        basis: "LS-0001 HMAC + SHA-256 (SHA-1 TOTP not used)",
    },
    Algorithm {
        purpose: "WebAuthn security keys",
        algorithm: "ES256 (ECDSA P-256 with SHA-256), verified by webauthn-rs-core (RustCrypto p256)",
        basis: "LS-0001 ECDSA; LS-0003 128-bit security",
    },
    Algorithm {
        purpose: "Randomness (keys, salts, nonces, session ids, passwords)",
        algorithm: "operating system CSPRNG (getrandom) through AWS-LC",
        basis: "CRYPTO-POLICY.md: never a user-space PRNG",
    },
];
