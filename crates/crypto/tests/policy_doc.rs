//! docs/crypto-policy.md lists exactly the algorithms of `policy::ALGORITHMS`, row for row.
#![allow(clippy::unwrap_used)] // unwraps are assertions here

use mamori_crypto::policy::ALGORITHMS;

#[test]
fn the_documented_crypto_table_is_the_shipped_one() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/crypto-policy.md"
    ))
    .unwrap();
    let section = doc.split("## What the product uses").nth(1).unwrap();
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let shipped: Vec<Vec<String>> = ALGORITHMS
        .iter()
        .map(|a| {
            vec![
                a.purpose.to_string(),
                a.algorithm.to_string(),
                a.basis.to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, shipped);
}
