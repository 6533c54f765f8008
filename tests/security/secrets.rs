//! S3.1-17 R1 and S3.1-18 R2: no credential is hard-coded, neither in the shipped binaries nor
//! in the source tree; the per-device label password exists only on the device.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::support::*;

/// This file and the script hold the patterns as needles; they are not findings.
const SELF: &[&str] = &["tests/security/secrets.rs", "scripts/scan-secrets.sh"];

/// Offsets of PEM private-key blocks: `-----BEGIN <LABEL>PRIVATE KEY-----` with the label made
/// of capitals and spaces (PKCS#8, RSA, EC, ENCRYPTED, OPENSSH...). A lone `-----BEGIN ` or a
/// lone `PRIVATE KEY` label string, as PEM parsers and writers carry, is not a key.
fn pem_private_keys(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(bytes, b"-----BEGIN ") {
        let rest = &bytes[at + 11..bytes.len().min(at + 11 + 40)];
        let label_len = rest
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || **b == b' ' || b.is_ascii_digit())
            .count();
        let label = &rest[..label_len];
        if (label.ends_with(b"PRIVATE KEY") || label == b"OPENSSH PRIVATE KEY")
            && rest[label_len..].starts_with(b"-----")
        {
            out.push(at);
        }
    }
    out
}

/// AWS-style access key ids: `AKIA` and 16 capitals or digits.
fn aws_keys(bytes: &[u8]) -> Vec<String> {
    memchr::memmem::find_iter(bytes, b"AKIA")
        .filter_map(|at| {
            let k = bytes.get(at..at + 20)?;
            (k[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
            .then(|| String::from_utf8_lossy(k).to_string())
        })
        .collect()
}

/// `password = "…"` / `password: "…"` with a non-empty literal, in Rust source.
fn hardcoded_passwords(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = l[from..].find("password") {
            let after = l[from + i + 8..].trim_start();
            if let Some(rest) = after.strip_prefix('=').map(str::trim_start)
                && rest.starts_with('"')
                && !rest.starts_with("\"\"")
            {
                out.push(format!("line {}: {}", n + 1, line.trim()));
            }
            from += i + 8;
        }
    }
    out
}

fn tracked_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git");
    assert!(out.status.success());
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).to_string()))
        .filter(|p| !SELF.iter().any(|s| p == Path::new(s)))
        .collect()
}

fn binaries() -> Vec<PathBuf> {
    vec![bin("mamorid"), bin("mamori")]
}

/// The scanners find what they look for (so a clean result means something).
#[test]
fn the_secret_scanners_find_planted_secrets() {
    let key = format!(
        "x\n-----BEGIN {}PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n",
        "EC "
    );
    assert_eq!(pem_private_keys(key.as_bytes()).len(), 1);
    let pkcs8 = format!("-----BEGIN {}-----", "PRIVATE KEY");
    assert_eq!(pem_private_keys(pkcs8.as_bytes()).len(), 1);
    let ssh = format!("-----BEGIN {} PRIVATE KEY-----", "OPENSSH");
    assert_eq!(pem_private_keys(ssh.as_bytes()).len(), 1);
    assert!(pem_private_keys(b"-----BEGIN CERTIFICATE-----").is_empty());
    assert!(pem_private_keys(b"-----BEGIN \0PRIVATE KEY\0RSA PRIVATE KEY").is_empty());
    let aws = format!("{}{}", "AKIA", "IOSFODNN7EXAMPLE");
    assert_eq!(aws_keys(aws.as_bytes()), [aws]);
    assert!(aws_keys(b"AKIAlowercase00000000").is_empty());
    let src = format!(
        "let {} = \"{}\";\nlet password = String::new();",
        "db_password", "hunter2"
    );
    assert_eq!(hardcoded_passwords(&src).len(), 1);
    assert!(hardcoded_passwords("if password == \"\" {").is_empty());
}

/// S3.1-17 R1: the shipped binaries contain no private key and no AWS-style key.
#[test]
fn the_binaries_contain_no_private_key_or_cloud_key() {
    for b in binaries() {
        let bytes = std::fs::read(&b).unwrap();
        let keys = pem_private_keys(&bytes);
        assert!(
            keys.is_empty(),
            "{}: PEM private key at {keys:?}",
            b.display()
        );
        let aws = aws_keys(&bytes);
        assert!(aws.is_empty(), "{}: {aws:?}", b.display());
        eprintln!("{}: {} bytes, clean", b.display(), bytes.len());
    }
}

/// S3.1-18 R2: the tracked source tree holds no private key, no AWS-style key and, in Rust
/// code outside the test suites and the (unshipped) benchmark tools, no hard-coded password
/// literal.
#[test]
fn the_source_tree_contains_no_private_key_cloud_key_or_hardcoded_password() {
    let root = workspace_root();
    let files = tracked_files();
    assert!(files.len() > 50, "git ls-files found only {}", files.len());
    let mut findings = Vec::new();
    for rel in &files {
        let Ok(bytes) = std::fs::read(root.join(rel)) else {
            continue; // deleted in the working tree
        };
        if !pem_private_keys(&bytes).is_empty() {
            findings.push(format!("{}: PEM private key", rel.display()));
        }
        for k in aws_keys(&bytes) {
            findings.push(format!("{}: AWS key {k}", rel.display()));
        }
        // Tests and the benchmark tools (bench/, not shipped) use fixed passwords as inputs.
        let is_test = rel
            .components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "bench")
            || rel.file_name().is_some_and(|n| n == "tests.rs");
        if rel.extension().is_some_and(|e| e == "rs") && !is_test {
            let text = String::from_utf8_lossy(&bytes);
            for f in hardcoded_passwords(&text) {
                findings.push(format!("{}: {f}", rel.display()));
            }
        }
    }
    assert!(findings.is_empty(), "{findings:#?}");
    eprintln!("{} tracked files clean", files.len());
}

/// S3.1-17 R1 / S3.1-02 R1: a device's label password is generated on the device: it is in
/// no binary and no tracked file, and two devices get different ones.
#[test]
fn the_label_password_is_in_no_binary_and_no_tracked_file() {
    let a = Device::start();
    let b = Device::start();
    let la = a.label_password.clone().unwrap();
    let lb = b.label_password.clone().unwrap();
    assert_ne!(la, lb, "two devices share a label password");
    for bin in binaries() {
        let bytes = std::fs::read(&bin).unwrap();
        for l in [&la, &lb] {
            assert!(!contains(&bytes, l.as_bytes()), "{l} in {}", bin.display());
        }
    }
    let root = workspace_root();
    for rel in tracked_files() {
        if let Ok(bytes) = std::fs::read(root.join(&rel)) {
            for l in [&la, &lb] {
                assert!(!contains(&bytes, l.as_bytes()), "{l} in {}", rel.display());
            }
        }
    }
}

/// The scan script gives the same verdict as these tests (CI and auditors run it alone).
#[test]
fn the_scan_script_finds_nothing() {
    let script = workspace_root().join("scripts/scan-secrets.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(bin_dir())
        .current_dir(workspace_root())
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "scan-secrets.sh failed:\n{text}");
}
