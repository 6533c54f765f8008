//! docs/architecture.md stays true to the code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // unwraps are assertions here

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap()
}

/// Every crate under crates/ is described, and every crate the page names exists.
#[test]
fn architecture_names_exactly_the_crates_that_exist() {
    let doc = doc();
    let mut on_disk: Vec<String> = std::fs::read_dir(repo().join("crates"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| format!("crates/{}", e.file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = doc
        .split('`')
        .filter(|s| s.starts_with("crates/") && !s.contains(".rs") && s.matches('/').count() == 1)
        .map(str::to_string)
        .collect();
    named.sort();
    named.dedup();
    assert_eq!(named, on_disk);
}

/// The table of privileged operations lists exactly the variants of `op::Request`.
#[test]
fn architecture_lists_exactly_the_privileged_operations() {
    let op = std::fs::read_to_string(repo().join("crates/privsep/src/op.rs")).unwrap();
    let body = op
        .split("pub enum Request {")
        .nth(1)
        .and_then(|s| s.split("\n}").next())
        .unwrap();
    let mut variants: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(|c: char| !c.is_alphanumeric()).next())
        .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    variants.sort();
    let doc = doc();
    let table = doc
        .split("### The closed set of privileged operations")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    let mut listed: Vec<&str> = table
        .lines()
        .skip(2)
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    listed.sort();
    assert_eq!(listed, variants);
}
